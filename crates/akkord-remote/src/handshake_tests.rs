use super::*;
use crate::frame::{encode_preamble, split_frames};

fn node(system: &str, port: u16, uid: u64) -> UniqueAddress {
    UniqueAddress::new(Address::new(system, "127.0.0.1", port).unwrap(), uid)
}

fn not_quarantined(_: &UniqueAddress) -> bool {
    false
}

fn connection_bytes(lane: Lane, request: &HandshakeRequest) -> Vec<u8> {
    let mut bytes = encode_preamble(lane).to_vec();
    bytes.extend_from_slice(&encode_frame(request, MAX_HANDSHAKE_FRAME_LEN).unwrap());
    bytes
}

fn decode_response(response: &Bytes) -> HandshakeResponse {
    let frames = split_frames(response, MAX_HANDSHAKE_FRAME_LEN).unwrap();
    assert_eq!(frames.len(), 1);
    HandshakeResponse::decode(frames[0].clone()).unwrap()
}

fn reject_reason(acceptor: HandshakeAcceptor, bytes: &[u8]) -> RejectReason {
    let mut handshake = InboundHandshake::new(acceptor);
    match handshake.feed(bytes, &not_quarantined) {
        HandshakeProgress::Rejected {
            rejection,
            response,
            ..
        } => {
            let decoded = decode_response(&response);
            assert!(!decoded.accepted);
            assert_eq!(decoded.reason, rejection.reason as i32);
            rejection.reason
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn accepts_and_keeps_leftover() {
    let server = node("sys", 2552, 11);
    let client = node("sys", 2553, 22);
    let secret = SharedSecret::new("s3cret");
    let request = build_request(&client, Some(&server), Lane::Ordinary, Some(&secret));
    let mut bytes = connection_bytes(Lane::Ordinary, &request);
    bytes.extend_from_slice(&[0, 0, 0, 1, 42]);

    let mut handshake = InboundHandshake::new(HandshakeAcceptor::new(server.clone(), Some(secret)));
    match handshake.feed(&bytes, &not_quarantined) {
        HandshakeProgress::Accepted {
            lane,
            peer,
            response,
            leftover,
            duplex,
        } => {
            assert_eq!(lane, Lane::Ordinary);
            assert_eq!(peer, client);
            assert!(!duplex, "build_request does not offer the connection back");
            assert_eq!(&leftover[..], &[0, 0, 0, 1, 42]);
            let decoded = decode_response(&response);
            assert!(decoded.accepted);
            assert_eq!(
                check_response(&decoded, &server.address, Some(11)).unwrap(),
                server
            );
        }
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[test]
fn reports_duplex_request() {
    let server = node("sys", 2552, 11);
    let mut request = build_request(&node("sys", 2553, 22), None, Lane::Control, None);
    request.duplex = true;
    let bytes = connection_bytes(Lane::Control, &request);
    let mut handshake = InboundHandshake::new(HandshakeAcceptor::new(server, None));
    match handshake.feed(&bytes, &not_quarantined) {
        HandshakeProgress::Accepted { duplex, .. } => assert!(duplex),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[test]
fn needs_more_until_request_complete() {
    let server = node("sys", 2552, 11);
    let request = build_request(&node("sys", 1, 2), None, Lane::Control, None);
    let bytes = connection_bytes(Lane::Control, &request);
    let mut handshake = InboundHandshake::new(HandshakeAcceptor::new(server, None));
    for &byte in &bytes[..bytes.len() - 1] {
        assert!(matches!(
            handshake.feed(&[byte], &not_quarantined),
            HandshakeProgress::NeedMore
        ));
    }
    assert!(matches!(
        handshake.feed(&bytes[bytes.len() - 1..], &not_quarantined),
        HandshakeProgress::Accepted { .. }
    ));
    assert!(matches!(
        handshake.feed(&[0], &not_quarantined),
        HandshakeProgress::Failed(_)
    ));
}

#[test]
fn rejects_each_bad_field() {
    let server = node("sys", 2552, 11);
    let client = node("sys", 2553, 22);
    let secret = SharedSecret::new("right");
    let acceptor = || HandshakeAcceptor::new(server.clone(), Some(secret.clone()));
    let good = build_request(&client, Some(&server), Lane::Control, Some(&secret));

    let mut version = good.clone();
    version.protocol_version = 99;
    let mut system = build_request(&node("other", 2553, 22), None, Lane::Control, Some(&secret));
    system.system_name = "other".into();
    let wrong_secret = build_request(
        &client,
        Some(&server),
        Lane::Control,
        Some(&SharedSecret::new("wrong")),
    );
    let no_secret = build_request(&client, Some(&server), Lane::Control, None);
    let other_lane_proof = build_request(&client, Some(&server), Lane::Large, Some(&secret));
    let incarnation = build_request(
        &client,
        Some(&node("sys", 2552, 12)),
        Lane::Control,
        Some(&secret),
    );
    let mut no_sender = good.clone();
    no_sender.from = None;
    let mut bad_port = good.clone();
    bad_port.from.as_mut().unwrap().port = 1 << 20;

    let cases = [
        (version, RejectReason::ProtocolVersion),
        (system, RejectReason::SystemName),
        (wrong_secret, RejectReason::Secret),
        (no_secret, RejectReason::Secret),
        (other_lane_proof, RejectReason::Secret),
        (incarnation, RejectReason::WrongIncarnation),
        (no_sender, RejectReason::InvalidRequest),
        (bad_port, RejectReason::InvalidRequest),
    ];
    for (request, expected) in cases {
        let reason = reject_reason(acceptor(), &connection_bytes(Lane::Control, &request));
        assert_eq!(reason, expected, "request {request:?}");
    }
}

#[test]
fn rejects_quarantined_sender() {
    let server = node("sys", 2552, 11);
    let client = node("sys", 2553, 22);
    let request = build_request(&client, None, Lane::Control, None);
    let mut handshake = InboundHandshake::new(HandshakeAcceptor::new(server, None));
    let quarantined = |peer: &UniqueAddress| peer.uid == 22;
    let progress = handshake.feed(&connection_bytes(Lane::Control, &request), &quarantined);
    assert!(matches!(
        progress,
        HandshakeProgress::Rejected { rejection, .. } if rejection.reason == RejectReason::Quarantined
    ));
}

#[test]
fn fails_without_reply_on_foreign_bytes() {
    let server = node("sys", 2552, 11);
    let inputs: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n",
        &[b'A', b'K', b'K', b'D', 7],
        &[b'A', b'K', b'K', b'D', 0, 0, 0, 0, 3, 0xff, 0xff, 0xff],
        &[b'A', b'K', b'K', b'D', 0, 0xff, 0xff, 0xff, 0xff],
    ];
    for input in inputs {
        let mut handshake = InboundHandshake::new(HandshakeAcceptor::new(server.clone(), None));
        let progress = handshake.feed(input, &not_quarantined);
        assert!(
            matches!(progress, HandshakeProgress::Failed(_)),
            "input {input:?} gave {progress:?}"
        );
    }
}

#[test]
fn client_reads_rejection_with_responder() {
    let server = node("sys", 2552, 11);
    let acceptor = HandshakeAcceptor::new(server.clone(), None);
    let rejection = HandshakeRejection::new(RejectReason::WrongIncarnation, "moved on");
    let response = acceptor.response(Err(&rejection));
    let error = check_response(&response, &server.address, Some(10)).unwrap_err();
    assert_eq!(
        error,
        OutboundHandshakeError::Rejected {
            reason: RejectReason::WrongIncarnation,
            message: "moved on".into(),
            responder: Some(server),
        }
    );
}

#[test]
fn client_rejects_acceptance_from_unexpected_incarnation() {
    let server = node("sys", 2552, 11);
    let response = HandshakeAcceptor::new(server.clone(), None).response(Ok(()));
    assert!(matches!(
        check_response(&response, &server.address, Some(12)),
        Err(OutboundHandshakeError::InvalidResponse(_))
    ));
}

#[test]
fn secret_debug_is_redacted() {
    let text = format!("{:?}", SharedSecret::new("hunter2"));
    assert!(!text.contains("hunter2"));
}
