//! Property tests: every wire message survives encoding, framing and decoding unchanged, and
//! its encoded length equals `encoded_len()`.

use akkord_remote::frame::{encode_frame, split_frames, FRAME_HEADER_LEN};
use akkord_remote::wire::*;
use bytes::Bytes;
use proptest::option;
use proptest::prelude::*;
use prost::Message;

const MAX_LEN: usize = 1 << 20;

fn unique_address() -> impl Strategy<Value = UniqueAddressData> {
    (
        "[a-z0-9_-]{0,12}",
        "[a-z0-9.:]{0,20}",
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(system, host, port, uid)| UniqueAddressData {
            system,
            host,
            port,
            uid,
        })
}

fn actor_ref() -> impl Strategy<Value = ActorRefData> {
    (option::of(unique_address()), any::<u64>(), "\\PC{0,20}")
        .prop_map(|(node, id, path)| ActorRefData { node, id, path })
}

fn user_envelope() -> impl Strategy<Value = UserEnvelope> {
    (
        any::<u64>(),
        option::of(actor_ref()),
        "\\PC{0,30}",
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(recipient, sender, manifest, payload)| UserEnvelope {
            recipient,
            sender,
            manifest,
            payload: Bytes::from(payload),
        })
}

fn handshake_request() -> impl Strategy<Value = HandshakeRequest> {
    (
        any::<u32>(),
        "\\PC{0,16}",
        option::of(unique_address()),
        option::of(unique_address()),
        option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        any::<bool>(),
    )
        .prop_map(
            |(protocol_version, system_name, from, to, secret_proof, duplex)| HandshakeRequest {
                protocol_version,
                system_name,
                from,
                to,
                secret_proof,
                duplex,
            },
        )
}

fn handshake_response() -> impl Strategy<Value = HandshakeResponse> {
    (
        any::<bool>(),
        option::of(unique_address()),
        0..7i32,
        "\\PC{0,40}",
    )
        .prop_map(|(accepted, from, reason, message)| HandshakeResponse {
            accepted,
            from,
            reason,
            message,
        })
}

fn control_frame() -> impl Strategy<Value = ControlFrame> {
    let message = prop_oneof![
        (any::<u64>(), option::of(user_envelope())).prop_map(|(seq_nr, envelope)| {
            ControlMessage::System(SystemEnvelope { seq_nr, envelope })
        }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(cumulative, to_uid)| ControlMessage::Ack(Ack { cumulative, to_uid })),
        any::<u64>().prop_map(|nonce| ControlMessage::Heartbeat(HeartbeatRequest { nonce })),
        (any::<u64>(), any::<u64>()).prop_map(|(nonce, uid)| {
            ControlMessage::HeartbeatResponse(HeartbeatResponse { nonce, uid })
        }),
        (option::of(unique_address()), "\\PC{0,40}").prop_map(|(quarantined, reason)| {
            ControlMessage::Quarantine(QuarantineNotice {
                quarantined,
                reason,
            })
        }),
        user_envelope().prop_map(ControlMessage::User),
    ];
    option::of(message).prop_map(|message| ControlFrame { message })
}

fn check_round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(
    message: &M,
) -> Result<(), TestCaseError> {
    let bytes = message.encode_to_vec();
    prop_assert_eq!(bytes.len(), message.encoded_len());
    prop_assert_eq!(&M::decode(bytes.as_slice())?, message);

    let frame = encode_frame(message, MAX_LEN)?;
    prop_assert_eq!(frame.len(), FRAME_HEADER_LEN + message.encoded_len());
    let mut two_frames = frame.to_vec();
    two_frames.extend_from_slice(&frame);
    let bodies = split_frames(&two_frames, MAX_LEN)?;
    prop_assert_eq!(bodies.len(), 2);
    for body in bodies {
        prop_assert_eq!(&M::decode(body)?, message);
    }
    Ok(())
}

proptest! {
    #[test]
    fn handshake_request_round_trips(message in handshake_request()) {
        check_round_trip(&message)?;
    }

    #[test]
    fn handshake_response_round_trips(message in handshake_response()) {
        check_round_trip(&message)?;
    }

    #[test]
    fn user_envelope_round_trips(message in user_envelope()) {
        check_round_trip(&message)?;
    }

    #[test]
    fn control_frame_round_trips(message in control_frame()) {
        check_round_trip(&message)?;
    }

    #[test]
    fn actor_ref_round_trips(message in actor_ref()) {
        check_round_trip(&message)?;
    }

    #[test]
    fn frame_split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = split_frames(&bytes, 64);
    }
}
