//! Protocol messages exchanged between nodes, encoded as protobuf with `prost` derive.
//!
//! The encoding is schema-evolvable: a decoder skips fields it does not know, so a node can
//! read messages from a newer version that added fields. Field tags are part of the wire
//! format and never change meaning; a removed field leaves its tag unused.
//!
//! Which message a frame carries depends on the lane and the connection state:
//!
//! | lane | first frame (client → server) | reply (server → client) | later frames (client → server) |
//! |---|---|---|---|
//! | any | [`HandshakeRequest`] | [`HandshakeResponse`] | |
//! | control | | | [`ControlFrame`] |
//! | ordinary, large | | | [`UserEnvelope`] |

use akkord_actor::address::{Address, AddressError, UniqueAddress};
use bytes::Bytes;

/// One incarnation of a node on the wire: address parts and the 64-bit uid.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct UniqueAddressData {
    /// Actor system name.
    #[prost(string, tag = "1")]
    pub system: String,
    /// Host name or IP address, without brackets for IPv6.
    #[prost(string, tag = "2")]
    pub host: String,
    /// TCP port; values above 65535 are invalid.
    #[prost(uint32, tag = "3")]
    pub port: u32,
    /// Random incarnation uid chosen when the node started.
    #[prost(fixed64, tag = "4")]
    pub uid: u64,
}

/// Reference to an actor on some node: the node incarnation, the actor id and a path for humans.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ActorRefData {
    /// Node incarnation that hosts the actor.
    #[prost(message, optional, tag = "1")]
    pub node: Option<UniqueAddressData>,
    /// Actor id, unique within the node incarnation.
    #[prost(uint64, tag = "2")]
    pub id: u64,
    /// Human-readable path, such as `/user/orders`; not used for routing.
    #[prost(string, tag = "3")]
    pub path: String,
}

/// First frame of every connection: who is calling whom.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HandshakeRequest {
    /// Protocol version of the caller, [`crate::handshake::PROTOCOL_VERSION`].
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    /// Actor system name of the caller; the receiver rejects a different one.
    #[prost(string, tag = "2")]
    pub system_name: String,
    /// Caller incarnation, with the address the caller listens on.
    #[prost(message, optional, tag = "3")]
    pub from: Option<UniqueAddressData>,
    /// Receiver incarnation the caller expects, or none on first contact with an address.
    #[prost(message, optional, tag = "4")]
    pub to: Option<UniqueAddressData>,
    /// HMAC-SHA256 of the handshake fields under the shared cluster secret, when one is set.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub secret_proof: Option<Vec<u8>>,
    /// True when the caller also reads lane frames that the receiver writes back on this
    /// connection. The receiver may then send to the caller without opening a connection of
    /// its own. A caller that leaves it unset only writes to the connection.
    #[prost(bool, tag = "6")]
    pub duplex: bool,
}

/// Reply to a [`HandshakeRequest`]: accepted, or rejected with a reason.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HandshakeResponse {
    /// True when the receiver accepted the connection.
    #[prost(bool, tag = "1")]
    pub accepted: bool,
    /// Receiver incarnation, sent with both outcomes so a caller learns about a restart.
    #[prost(message, optional, tag = "2")]
    pub from: Option<UniqueAddressData>,
    /// Reason of a rejection, a [`RejectReason`] value.
    #[prost(enumeration = "RejectReason", tag = "3")]
    pub reason: i32,
    /// Human-readable detail of a rejection; never contains a secret.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// Reason for rejecting a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RejectReason {
    /// No reason given, or a reason this version does not know.
    Unspecified = 0,
    /// The caller speaks a protocol version the receiver does not support.
    ProtocolVersion = 1,
    /// The caller belongs to a different actor system.
    SystemName = 2,
    /// The shared-secret proof is missing or wrong.
    Secret = 3,
    /// The caller addressed another incarnation of the receiver's address.
    WrongIncarnation = 4,
    /// The receiver quarantined the caller's incarnation.
    Quarantined = 5,
    /// The request is missing a required field or has an invalid one.
    InvalidRequest = 6,
}

/// A user message: recipient actor id, optional sender, manifest and serialized payload.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct UserEnvelope {
    /// Id of the recipient actor on the receiving node incarnation.
    #[prost(uint64, tag = "1")]
    pub recipient: u64,
    /// Sender of the message, for replies, when there is one.
    #[prost(message, optional, tag = "2")]
    pub sender: Option<ActorRefData>,
    /// Stable name of the message type, used to pick the deserializer.
    #[prost(string, tag = "3")]
    pub manifest: String,
    /// Serialized message.
    #[prost(bytes = "bytes", tag = "4")]
    pub payload: Bytes,
}

impl UserEnvelope {
    /// Creates an envelope without a sender.
    pub fn without_sender(recipient: u64, manifest: &str, payload: impl Into<Bytes>) -> Self {
        Self {
            recipient,
            sender: None,
            manifest: manifest.to_owned(),
            payload: payload.into(),
        }
    }
}

/// A system message (watch, unwatch, terminated and the like) with its sequence number.
///
/// Sequence numbers start at 1 for each pair of sender and receiver incarnations.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SystemEnvelope {
    /// Sequence number assigned by the sender, starting at 1.
    #[prost(uint64, tag = "1")]
    pub seq_nr: u64,
    /// The message itself.
    #[prost(message, optional, tag = "2")]
    pub envelope: Option<UserEnvelope>,
}

/// Acknowledgement of system messages.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Ack {
    /// Every sequence number up to and including this one was delivered.
    #[prost(uint64, tag = "1")]
    pub cumulative: u64,
    /// Uid of the incarnation that sent the acknowledged messages; a stale ack is ignored.
    #[prost(fixed64, tag = "2")]
    pub to_uid: u64,
}

/// Heartbeat request of remote death watch.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HeartbeatRequest {
    /// Number chosen by the requester, echoed in the response.
    #[prost(uint64, tag = "1")]
    pub nonce: u64,
}

/// Heartbeat response of remote death watch.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HeartbeatResponse {
    /// Nonce of the request this response belongs to.
    #[prost(uint64, tag = "1")]
    pub nonce: u64,
    /// Uid of the responding incarnation.
    #[prost(fixed64, tag = "2")]
    pub uid: u64,
}

/// Notice that the sender quarantined the receiver's incarnation and will not talk to it again.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct QuarantineNotice {
    /// The quarantined incarnation.
    #[prost(message, optional, tag = "1")]
    pub quarantined: Option<UniqueAddressData>,
    /// Human-readable reason.
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// Frame of the control lane after the handshake.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ControlFrame {
    /// The message; `None` when a newer peer sent a kind this version does not know.
    #[prost(oneof = "ControlMessage", tags = "1, 2, 3, 4, 5, 6")]
    pub message: Option<ControlMessage>,
}

/// Messages of the control lane.
#[derive(Clone, PartialEq, Eq, prost::Oneof)]
pub enum ControlMessage {
    /// A system message with its sequence number.
    #[prost(message, tag = "1")]
    System(SystemEnvelope),
    /// Acknowledgement of system messages.
    #[prost(message, tag = "2")]
    Ack(Ack),
    /// Heartbeat request.
    #[prost(message, tag = "3")]
    Heartbeat(HeartbeatRequest),
    /// Heartbeat response.
    #[prost(message, tag = "4")]
    HeartbeatResponse(HeartbeatResponse),
    /// Quarantine notice.
    #[prost(message, tag = "5")]
    Quarantine(QuarantineNotice),
    /// A user message sent on the control lane.
    #[prost(message, tag = "6")]
    User(UserEnvelope),
}

impl From<&UniqueAddress> for UniqueAddressData {
    fn from(node: &UniqueAddress) -> Self {
        Self {
            system: node.address.system().to_owned(),
            host: node.address.host().to_owned(),
            port: u32::from(node.address.port()),
            uid: node.uid,
        }
    }
}

impl TryFrom<&UniqueAddressData> for UniqueAddress {
    type Error = AddressError;

    fn try_from(data: &UniqueAddressData) -> Result<Self, Self::Error> {
        let port = u16::try_from(data.port)
            .map_err(|_| AddressError::InvalidPort(data.port.to_string()))?;
        let address = Address::new(data.system.clone(), data.host.clone(), port)?;
        Ok(UniqueAddress::new(address, data.uid))
    }
}

/// Returns the encoded length of a [`UserEnvelope`] without a sender, from its parts.
pub(crate) fn user_envelope_len(recipient: u64, manifest: &str, payload: &[u8]) -> usize {
    use prost::encoding::{encoded_len_varint, key_len, uint64};
    let field = |tag: u32, len: usize| match len {
        0 => 0,
        len => key_len(tag) + encoded_len_varint(len as u64) + len,
    };
    let recipient_len = match recipient {
        0 => 0,
        recipient => uint64::encoded_len(1, &recipient),
    };
    recipient_len + field(3, manifest.len()) + field(4, payload.len())
}

/// Encodes a [`UserEnvelope`] without a sender from its parts, so a send need not build
/// one. Writes the same bytes as the derived encoder.
pub(crate) fn encode_user_envelope(
    recipient: u64,
    manifest: &str,
    payload: &[u8],
    buffer: &mut impl bytes::BufMut,
) {
    use prost::encoding::uint64;
    if recipient != 0 {
        uint64::encode(1, &recipient, buffer);
    }
    encode_bytes_field(3, manifest.as_bytes(), buffer);
    encode_bytes_field(4, payload, buffer);
}

/// A [`UserEnvelope`] without a sender, read from a frame without copying.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UserParts<'a> {
    pub(crate) recipient: u64,
    pub(crate) manifest: &'a str,
    /// A slice of the frame.
    pub(crate) payload: &'a [u8],
}

/// Reads a [`UserEnvelope`] from `frame` when it has no sender and only known fields, each
/// once.
///
/// Returns `None` for any other frame, malformed ones included. The caller then decodes it
/// with the derived decoder, which applies the full rules and reports errors.
pub(crate) fn decode_user_parts(frame: &[u8]) -> Option<UserParts<'_>> {
    let (recipient, manifest, payload) = decode_user_fields(frame)?;
    Some(UserParts {
        recipient,
        manifest: std::str::from_utf8(manifest).ok()?,
        payload,
    })
}

/// Reads the recipient, manifest and payload of a frame that [`decode_user_parts`] accepts
/// when its manifest is valid UTF-8, without checking the manifest.
pub(crate) fn decode_user_fields(frame: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    use prost::encoding::{decode_key, decode_varint, WireType};
    let mut rest: &[u8] = frame;
    let mut recipient = None;
    let mut manifest = None;
    let mut payload = None;
    while !rest.is_empty() {
        let (tag, wire_type) = decode_key(&mut rest).ok()?;
        match (tag, wire_type) {
            (1, WireType::Varint) if recipient.is_none() => {
                recipient = Some(decode_varint(&mut rest).ok()?);
            }
            (3 | 4, WireType::LengthDelimited) => {
                let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
                if len > rest.len() {
                    return None;
                }
                let start = frame.len() - rest.len();
                let field = start..start + len;
                rest = &rest[len..];
                let slot = if tag == 3 {
                    &mut manifest
                } else {
                    &mut payload
                };
                if slot.replace(field).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let field =
        |range: Option<std::ops::Range<usize>>| range.map_or(&[][..], |range| &frame[range]);
    Some((recipient.unwrap_or(0), field(manifest), field(payload)))
}

/// Encodes a length-delimited field, omitted when empty as proto3 does.
fn encode_bytes_field(tag: u32, bytes: &[u8], buffer: &mut impl bytes::BufMut) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    if !bytes.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buffer);
        encode_varint(bytes.len() as u64, buffer);
        buffer.put_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn unique_address_converts_both_ways() {
        let node = UniqueAddress::new(Address::new("sys", "::1", 2552).unwrap(), 7);
        let data = UniqueAddressData::from(&node);
        assert_eq!(UniqueAddress::try_from(&data).unwrap(), node);
    }

    #[test]
    fn unique_address_rejects_large_port() {
        let data = UniqueAddressData {
            system: "sys".into(),
            host: "h".into(),
            port: 70_000,
            uid: 1,
        };
        assert!(matches!(
            UniqueAddress::try_from(&data),
            Err(AddressError::InvalidPort(_))
        ));
    }

    #[test]
    fn decoder_skips_unknown_fields() {
        let mut bytes = Ack {
            cumulative: 9,
            to_uid: 3,
        }
        .encode_to_vec();
        // Field 15, varint 1: a field a newer version might add.
        bytes.extend_from_slice(&[15 << 3, 1]);
        let decoded = Ack::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.cumulative, 9);
        assert_eq!(decoded.to_uid, 3);
    }

    #[test]
    fn unknown_control_kind_decodes_to_none() {
        // Field 15 (length-delimited, empty): a control message kind from a newer version.
        let decoded = ControlFrame::decode([15 << 3 | 2, 0].as_slice()).unwrap();
        assert_eq!(decoded.message, None);
    }

    proptest::proptest! {
        #[test]
        fn envelope_from_parts_matches_the_derived_encoding(
            recipient in proptest::prelude::any::<u64>(),
            manifest in "[a-z.]{0,40}",
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let envelope = UserEnvelope {
                recipient,
                sender: None,
                manifest: manifest.clone(),
                payload: Bytes::from(payload.clone()),
            };
            let mut parts = Vec::new();
            encode_user_envelope(recipient, &manifest, &payload, &mut parts);
            proptest::prop_assert_eq!(&parts, &envelope.encode_to_vec());
            proptest::prop_assert_eq!(user_envelope_len(recipient, &manifest, &payload), parts.len());
        }
    }

    proptest::proptest! {
        #[test]
        fn user_parts_match_the_derived_decoding(
            recipient in proptest::prelude::any::<u64>(),
            manifest in "[a-zé.]{0,40}",
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let mut frame = Vec::new();
            encode_user_envelope(recipient, &manifest, &payload, &mut frame);
            let frame = Bytes::from(frame);
            let parts = decode_user_parts(&frame).expect("a frame from the encoder is read");
            let derived = UserEnvelope::decode(frame.clone()).unwrap();
            proptest::prop_assert_eq!(parts.recipient, derived.recipient);
            proptest::prop_assert_eq!(parts.manifest, derived.manifest.as_str());
            proptest::prop_assert_eq!(parts.payload, &derived.payload[..]);
        }

        #[test]
        fn user_parts_never_accept_what_derived_rejects(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let frame = Bytes::from(bytes);
            if let Some(parts) = decode_user_parts(&frame) {
                let derived = UserEnvelope::decode(frame.clone());
                proptest::prop_assert!(derived.is_ok(), "parts read from a frame the decoder rejects");
                let derived = derived.unwrap();
                proptest::prop_assert_eq!(parts.recipient, derived.recipient);
                proptest::prop_assert_eq!(parts.manifest, derived.manifest.as_str());
                proptest::prop_assert_eq!(parts.payload, &derived.payload[..]);
                proptest::prop_assert_eq!(derived.sender, None);
            }
        }
    }

    #[test]
    fn user_parts_reject_sender_or_unknown_field() {
        let with_sender = UserEnvelope {
            recipient: 3,
            sender: Some(ActorRefData::default()),
            manifest: "m".into(),
            payload: Bytes::from_static(b"p"),
        };
        assert_eq!(decode_user_parts(&with_sender.encode_to_vec()), None);
        let mut unknown = Vec::new();
        encode_user_envelope(3, "m", b"p", &mut unknown);
        unknown.extend_from_slice(&[15 << 3, 1]);
        assert_eq!(decode_user_parts(&unknown), None);
        assert_eq!(
            decode_user_parts(&[]),
            Some(UserParts {
                recipient: 0,
                manifest: "",
                payload: &[],
            })
        );
    }
}
