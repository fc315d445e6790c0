//! Bad input never hurts a node: each malformed connection or message is closed or dropped
//! with a warning naming the peer, while a well-behaved association keeps talking.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use akkord_actor::address::{Address, UniqueAddress};
use akkord_remote::frame::{encode_frame, encode_preamble, split_frames};
use akkord_remote::handshake::{
    build_request, HandshakeAcceptor, SharedSecret, MAX_HANDSHAKE_FRAME_LEN,
};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::transport::{Destination, InboundHandler, Transport};
use akkord_remote::wire::{
    ActorRefData, HandshakeRequest, HandshakeResponse, RejectReason, UserEnvelope,
};
use akkord_remote::{Lane, RemoteSettings};
use bytes::Bytes;
use common::{logs, warn_lines_with};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const SECRET: &str = "cluster-secret";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Ping(u64);

/// Handler that decodes user messages with a registry, like an actor system would.
struct Decoding {
    registry: SerializationRegistry,
    pings: mpsc::UnboundedSender<(UniqueAddress, u64)>,
}

impl InboundHandler for Decoding {
    fn on_user_message(&self, from: &UniqueAddress, _lane: Lane, envelope: UserEnvelope) {
        if let Some(message) = self.registry.deserialize_inbound(from, &envelope) {
            if let Ok(ping) = message.downcast::<Ping>() {
                let _ = self.pings.send((from.clone(), ping.0));
            }
        }
    }
}

struct Peer {
    transport: Transport,
    pings: mpsc::UnboundedReceiver<(UniqueAddress, u64)>,
}

async fn start_peer(settings: RemoteSettings) -> Peer {
    let mut registry = SerializationRegistry::new();
    registry.register::<Ping>("test.Ping").unwrap();
    let (pings_tx, pings) = mpsc::unbounded_channel();
    let handler = Arc::new(Decoding {
        registry,
        pings: pings_tx,
    });
    let transport = Transport::bind(settings, handler).await.unwrap();
    Peer { transport, pings }
}

fn node_settings() -> RemoteSettings {
    let mut settings = common::settings();
    settings.secret = Some(SharedSecret::new(SECRET));
    settings.handshake_timeout = Duration::from_millis(300);
    settings
}

fn ping_envelope(n: u64) -> UserEnvelope {
    UserEnvelope {
        recipient: 1,
        sender: None,
        manifest: "test.Ping".into(),
        payload: Bytes::from(postcard::to_stdvec(&Ping(n)).unwrap()),
    }
}

/// Checks that the node and the good peer still exchange pings in both directions.
async fn conversation_continues(node: &mut Peer, good: &mut Peer, round: u64) {
    let to_node = Destination::Node(node.transport.local_address().clone());
    let to_good = Destination::Node(good.transport.local_address().clone());
    good.transport
        .send(&to_node, Lane::Ordinary, &ping_envelope(round))
        .unwrap();
    node.transport
        .send(&to_good, Lane::Ordinary, &ping_envelope(round))
        .unwrap();
    let node_address = node.transport.local_address().clone();
    let good_address = good.transport.local_address().clone();
    for (peer, expected_from) in [(&mut *node, good_address), (&mut *good, node_address)] {
        let (from, n) = tokio::time::timeout(Duration::from_secs(10), peer.pings.recv())
            .await
            .expect("conversation stopped")
            .unwrap();
        assert_eq!(from, expected_from);
        assert_eq!(n, round);
    }
}

/// Identity of a raw test client that speaks the protocol by hand.
fn raw_identity(uid: u64) -> UniqueAddress {
    UniqueAddress::new(Address::new("test", "127.0.0.1", 1).unwrap(), uid)
}

fn opening(lane: Lane, request: &HandshakeRequest) -> Vec<u8> {
    let mut bytes = encode_preamble(lane).to_vec();
    bytes.extend_from_slice(&encode_frame(request, MAX_HANDSHAKE_FRAME_LEN).unwrap());
    bytes
}

async fn read_response(stream: &mut TcpStream) -> HandshakeResponse {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).await.unwrap();
    HandshakeResponse::decode(body.as_slice()).unwrap()
}

/// Connects and completes a valid handshake on the ordinary lane.
async fn handshaken(port: u16, node: &UniqueAddress, uid: u64) -> TcpStream {
    let secret = SharedSecret::new(SECRET);
    let request = build_request(
        &raw_identity(uid),
        Some(node),
        Lane::Ordinary,
        Some(&secret),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(&opening(Lane::Ordinary, &request))
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.accepted);
    stream
}

/// Waits until the node closes `stream`.
async fn closed_by_node(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn wait_for_warn(parts: &[&str]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let lines = warn_lines_with(parts);
        if !lines.is_empty() || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Bad {
    Garbage,
    WrongMagic,
    UnknownLane,
    UnknownVersion,
    WrongSystem,
    WrongSecret,
    OtherIncarnation,
    OversizedFrame,
    TruncatedFrame,
    UndecodableFrame,
    UnknownManifest,
    UndecodablePayload,
    Silent,
}

/// What a case must lead to: the connection closed or open, and a warning with these words.
struct Expected {
    closed: bool,
    reject: Option<RejectReason>,
    words: &'static str,
}

fn expected(case: Bad) -> Expected {
    let closed = |words| Expected {
        closed: true,
        reject: None,
        words,
    };
    let rejected = |reason, words| Expected {
        closed: true,
        reject: Some(reason),
        words,
    };
    let dropped = |words| Expected {
        closed: false,
        reject: None,
        words,
    };
    match case {
        Bad::Garbage => closed("wrong magic"),
        Bad::WrongMagic => closed("wrong magic"),
        Bad::UnknownLane => closed("unknown lane byte 9"),
        Bad::UnknownVersion => rejected(
            RejectReason::ProtocolVersion,
            "unsupported protocol version 99",
        ),
        Bad::WrongSystem => rejected(RejectReason::SystemName, "wrong system name"),
        Bad::WrongSecret => rejected(RejectReason::Secret, "shared-secret proof"),
        Bad::OtherIncarnation => {
            rejected(RejectReason::WrongIncarnation, "addressed to incarnation")
        }
        Bad::OversizedFrame => closed("oversized frame"),
        Bad::TruncatedFrame => closed("truncated frame"),
        Bad::UndecodableFrame => closed("undecodable frame"),
        Bad::UnknownManifest => dropped("unknown manifest"),
        Bad::UndecodablePayload => dropped("failed to deserialize"),
        Bad::Silent => closed("handshake timed out"),
    }
}

/// Runs one bad case; returns the stream, the words that name the peer in the warning, and
/// the handshake response when one came.
async fn run_case(
    case: Bad,
    port: u16,
    node: &UniqueAddress,
    uid: u64,
) -> (TcpStream, String, Option<HandshakeResponse>) {
    let secret = SharedSecret::new(SECRET);
    let me = raw_identity(uid);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let socket = stream.local_addr().unwrap().to_string();
    let handshake_case = |mut request: HandshakeRequest, fix: &dyn Fn(&mut HandshakeRequest)| {
        fix(&mut request);
        opening(Lane::Ordinary, &request)
    };
    let good_request = build_request(&me, Some(node), Lane::Ordinary, Some(&secret));
    let rejected_opening = match case {
        Bad::UnknownVersion => Some(handshake_case(good_request.clone(), &|r| {
            r.protocol_version = 99
        })),
        Bad::WrongSystem => {
            let other = UniqueAddress::new(Address::new("other", "127.0.0.1", 1).unwrap(), uid);
            Some(opening(
                Lane::Ordinary,
                &build_request(&other, None, Lane::Ordinary, Some(&secret)),
            ))
        }
        Bad::WrongSecret => {
            let wrong = SharedSecret::new("guess");
            Some(opening(
                Lane::Ordinary,
                &build_request(&me, Some(node), Lane::Ordinary, Some(&wrong)),
            ))
        }
        Bad::OtherIncarnation => {
            let old = UniqueAddress::new(node.address.clone(), node.uid.wrapping_add(1));
            Some(opening(
                Lane::Ordinary,
                &build_request(&me, Some(&old), Lane::Ordinary, Some(&secret)),
            ))
        }
        _ => None,
    };
    if let Some(bytes) = rejected_opening {
        stream.write_all(&bytes).await.unwrap();
        let response = read_response(&mut stream).await;
        return (stream, socket, Some(response));
    }
    match case {
        Bad::Garbage => stream
            .write_all(&[0x00, 0x13, 0x37, 0xfe, 0x42, 0x99, 0x00])
            .await
            .unwrap(),
        Bad::WrongMagic => stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap(),
        Bad::UnknownLane => stream.write_all(b"AKKD\x09").await.unwrap(),
        Bad::Silent => {}
        _ => {
            drop(stream);
            stream = handshaken(port, node, uid).await;
            let socket = stream.local_addr().unwrap().to_string();
            match case {
                Bad::OversizedFrame => stream
                    .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2])
                    .await
                    .unwrap(),
                Bad::TruncatedFrame => {
                    stream
                        .write_all(&[0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
                        .await
                        .unwrap();
                    stream.shutdown().await.unwrap();
                }
                Bad::UndecodableFrame => stream
                    .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
                    .await
                    .unwrap(),
                Bad::UnknownManifest | Bad::UndecodablePayload => {
                    let mut envelope = ping_envelope(0);
                    if matches!(case, Bad::UnknownManifest) {
                        envelope.manifest = "no.such.Type".into();
                    } else {
                        envelope.payload =
                            Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
                    }
                    stream
                        .write_all(&encode_frame(&envelope, 1 << 16).unwrap())
                        .await
                        .unwrap();
                    // A sound frame after the bad message must still be delivered.
                    stream
                        .write_all(&encode_frame(&ping_envelope(777), 1 << 16).unwrap())
                        .await
                        .unwrap();
                    return (stream, me.to_string(), None);
                }
                _ => unreachable!("case {case:?} handled above"),
            }
            return (stream, socket, None);
        }
    }
    (stream, socket, None)
}

#[tokio::test]
async fn bad_input_is_isolated() {
    logs();
    let mut node = start_peer(node_settings()).await;
    let mut good = start_peer(node_settings()).await;
    let node_address = node.transport.local_address().clone();
    let port = node_address.address.port();
    conversation_continues(&mut node, &mut good, 0).await;

    let cases = [
        Bad::Garbage,
        Bad::WrongMagic,
        Bad::UnknownLane,
        Bad::UnknownVersion,
        Bad::WrongSystem,
        Bad::WrongSecret,
        Bad::OtherIncarnation,
        Bad::OversizedFrame,
        Bad::TruncatedFrame,
        Bad::UndecodableFrame,
        Bad::UnknownManifest,
        Bad::UndecodablePayload,
        Bad::Silent,
    ];
    for (round, case) in cases.into_iter().enumerate() {
        let uid = 1000 + round as u64;
        let expected = expected(case);
        let (mut stream, peer_words, response) = run_case(case, port, &node_address, uid).await;

        if let Some(reason) = expected.reject {
            let response = response.unwrap_or_else(|| panic!("{case:?}: no handshake response"));
            assert!(!response.accepted, "{case:?}: handshake accepted");
            assert_eq!(response.reason, reason as i32, "{case:?}: wrong reason");
        }
        if expected.closed {
            assert!(
                closed_by_node(&mut stream).await,
                "{case:?}: connection left open"
            );
        } else {
            // The connection stays open and the next sound message arrives.
            let (from, n) = tokio::time::timeout(Duration::from_secs(5), node.pings.recv())
                .await
                .unwrap_or_else(|_| panic!("{case:?}: message after the bad one was lost"))
                .unwrap();
            assert_eq!(from.uid, uid, "{case:?}");
            assert_eq!(n, 777, "{case:?}");
        }
        let lines = wait_for_warn(&[expected.words, &peer_words]).await;
        assert_eq!(
            lines.len(),
            1,
            "{case:?}: warnings naming {peer_words}: {lines:?}"
        );
        if matches!(case, Bad::UnknownManifest | Bad::UndecodablePayload) {
            assert!(lines[0].contains("test.Ping") || lines[0].contains("no.such.Type"));
        }

        conversation_continues(&mut node, &mut good, round as u64 + 1).await;
    }
}

/// Frames cut at every kind of point, the length header included, arrive whole and in
/// order, whether they are read in place (no sender) or decoded on their own (a sender).
#[tokio::test]
async fn frames_cut_across_reads_arrive_whole() {
    let mut node = start_peer(node_settings()).await;
    let node_address = node.transport.local_address().clone();
    let uid = 4242;
    let mut stream = handshaken(node_address.address.port(), &node_address, uid).await;
    stream.set_nodelay(true).unwrap();

    let frames: Vec<Bytes> = (0..8u64)
        .map(|n| {
            let mut envelope = ping_envelope(n);
            if n % 3 == 1 {
                envelope.sender = Some(ActorRefData::default());
            }
            encode_frame(&envelope, 1 << 20).unwrap()
        })
        .collect();
    // Where each frame is cut: inside its length header, right after it, or in its body.
    let cut = |n: usize| [1, 2, 3, 4, 5, frames[n].len() / 2, frames[n].len() - 1][n % 7];

    stream.write_all(&frames[0][..cut(0)]).await.unwrap();
    for n in 0..frames.len() {
        // The rest of frame n and the start of frame n + 1 go in one write.
        let mut piece = frames[n][cut(n)..].to_vec();
        if let Some(next) = frames.get(n + 1) {
            piece.extend_from_slice(&next[..cut(n + 1)]);
        }
        stream.write_all(&piece).await.unwrap();
        // Frame n is complete only now, so the node has part of frame n + 1 buffered when
        // it delivers frame n.
        let (from, ping) = tokio::time::timeout(Duration::from_secs(10), node.pings.recv())
            .await
            .unwrap_or_else(|_| panic!("frame {n} was not delivered"))
            .unwrap();
        assert_eq!(from.uid, uid);
        assert_eq!(ping, n as u64);
    }
    assert!(
        node.pings.try_recv().is_err(),
        "a frame was delivered twice"
    );
}

/// Starts a fake peer that completes one handshake and then never reads.
async fn stuck_peer() -> (Address, tokio::task::JoinHandle<Vec<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = Address::new("test", "127.0.0.1", port).unwrap();
    let identity = UniqueAddress::new(address.clone(), 4242);
    let task = tokio::spawn(async move {
        let acceptor = HandshakeAcceptor::new(identity, Some(SharedSecret::new(SECRET)));
        let response = encode_frame(&acceptor.response(Ok(())), MAX_HANDSHAKE_FRAME_LEN).unwrap();
        let mut open_connections = Vec::new();
        // The node opens at most one connection per lane it uses.
        let (mut stream, _): (TcpStream, SocketAddr) = listener.accept().await.unwrap();
        let mut opening = vec![0u8; 1024];
        let n = stream.read(&mut opening).await.unwrap();
        assert!(n > 5, "expected a handshake");
        stream.write_all(&response).await.unwrap();
        open_connections.push(stream);
        open_connections
    });
    (address, task)
}

#[tokio::test]
async fn stuck_reader_does_not_block_others() {
    logs();
    let mut node = start_peer(node_settings()).await;
    let mut good = start_peer(node_settings()).await;
    let (stuck, accepted) = stuck_peer().await;
    let to_stuck = Destination::Address(stuck.clone());
    let payload = vec![0u8; 1024];
    let started = std::time::Instant::now();
    for i in 0..20_000u64 {
        let envelope = UserEnvelope {
            recipient: i,
            sender: None,
            manifest: "test.Blob".into(),
            payload: Bytes::from(payload.clone()),
        };
        let _ = node.transport.send(&to_stuck, Lane::Ordinary, &envelope);
        if i % 2000 == 0 {
            // Let the writer connect and fill the socket.
            tokio::task::yield_now().await;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "sending blocked"
    );
    let _open_connections = tokio::time::timeout(Duration::from_secs(5), accepted)
        .await
        .expect("node never connected to the stuck peer")
        .unwrap();
    let dropped = node.transport.stats().dropped_queue_full[Lane::Ordinary.index()];
    assert!(
        dropped > 0,
        "nothing dropped for a peer that stopped reading"
    );
    let lines = wait_for_warn(&["outbound queue full", &stuck.to_string()]).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    for round in 0..5 {
        conversation_continues(&mut node, &mut good, round).await;
    }
}

#[test]
fn frame_helper_splits_opening() {
    let request = build_request(&raw_identity(1), None, Lane::Control, None);
    let bytes = opening(Lane::Control, &request);
    let frames = split_frames(&bytes[5..], MAX_HANDSHAKE_FRAME_LEN).unwrap();
    assert_eq!(
        HandshakeRequest::decode(frames[0].clone()).unwrap(),
        request
    );
}
