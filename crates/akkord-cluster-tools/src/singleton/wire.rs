//! Encoding of hand-over protocol messages on the transport, with prost so that nodes of
//! two versions can talk during a rolling update.

use bytes::Bytes;
use prost::Message;

use super::handover::HandOverMessage;

/// Prefix of the extension protocol manifest; the singleton's name follows it, so several
/// singletons run side by side.
const MANIFEST_PREFIX: &str = "akkord.singleton.";

/// Kind value of `HandOverToMe` on the wire.
const HAND_OVER_TO_ME: u32 = 1;
/// Kind value of `HandOverDone` on the wire.
const HAND_OVER_DONE: u32 = 2;

/// A hand-over protocol message as encoded on the wire.
#[derive(Clone, PartialEq, Message)]
struct WireMessage {
    /// Message kind: [`HAND_OVER_TO_ME`] or [`HAND_OVER_DONE`].
    #[prost(uint32, tag = "1")]
    kind: u32,
}

/// Failure to decode a hand-over protocol message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The bytes are not a valid protobuf message.
    #[error("malformed hand-over message: {0}")]
    Malformed(String),
    /// The kind is unknown, for example from a newer version.
    #[error("unknown hand-over message kind {0}")]
    UnknownKind(u32),
}

/// Returns the extension protocol manifest of the singleton `name`.
pub(crate) fn manifest(name: &str) -> String {
    format!("{MANIFEST_PREFIX}{name}")
}

/// Encodes `message` for the transport.
pub(crate) fn encode(message: HandOverMessage) -> Bytes {
    let kind = match message {
        HandOverMessage::HandOverToMe => HAND_OVER_TO_ME,
        HandOverMessage::HandOverDone => HAND_OVER_DONE,
    };
    WireMessage { kind }.encode_to_vec().into()
}

/// Decodes a message received from the transport.
pub(crate) fn decode(payload: &[u8]) -> Result<HandOverMessage, DecodeError> {
    let wire =
        WireMessage::decode(payload).map_err(|error| DecodeError::Malformed(error.to_string()))?;
    match wire.kind {
        HAND_OVER_TO_ME => Ok(HandOverMessage::HandOverToMe),
        HAND_OVER_DONE => Ok(HandOverMessage::HandOverDone),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [HandOverMessage::HandOverToMe, HandOverMessage::HandOverDone] {
            let bytes = encode(message);
            assert_eq!(bytes.len(), 2, "one tag byte and one varint byte");
            assert_eq!(decode(&bytes), Ok(message));
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(decode(&[0x08, 0x07]), Err(DecodeError::UnknownKind(7)));
        assert!(matches!(decode(&[0x08]), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            decode(&[0xff, 0xff]),
            Err(DecodeError::Malformed(_))
        ));
        // An empty message decodes as kind 0, which is unknown.
        assert_eq!(decode(&[]), Err(DecodeError::UnknownKind(0)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
