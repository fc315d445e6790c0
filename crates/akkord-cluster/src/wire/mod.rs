//! Wire encoding of the cluster protocol: membership messages and heartbeats as protobuf.
//!
//! Every message travels in one [`proto::ClusterEnvelope`] whose `oneof` names its kind, so
//! [`decode_node_message`] reads any cluster message. The messages are derived with `prost`
//! from the Rust types in [`proto`]; no `.proto` file or `protoc` is involved.
//!
//! A gossip state is encoded compactly, in the manner of Akka's `ClusterMessages.proto`:
//! each incarnation, role and application version appears once in a table, and members,
//! the seen set, reachability records, clock entries and tombstones refer to table entries
//! by index. A clock entry whose incarnation is not in the table carries its 64-bit key.
//!
//! Tombstones travel as ages, the milliseconds between the removal and the encoding,
//! because an [`Instant`] means nothing in another process. The encoder takes the sender's
//! `now` and the decoder rebuilds each removal time from the receiver's `now`, so the age
//! is off by the transit time and truncated to whole milliseconds. A removal time later than
//! the encoder's `now` is sent as age zero.
//!
//! Decoding validates the whole message and never panics. It returns a [`WireError`] naming
//! the field for bad table indexes, unknown status values, invalid addresses, duplicate
//! entries, and collections or strings above the limits below. It also rejects gossip
//! states that break the invariants of [`Gossip`](crate::gossip::Gossip), such as a
//! tombstoned incarnation named elsewhere in the state or a reachability record about a
//! non-member. Decoding allocates in proportion to the input before these checks run, so
//! callers bound the input size, as the transport's frame size limit does.
//!
//! # Compatibility
//!
//! Two builds can run in one cluster when both decode what the other sends. The rules:
//!
//! - A field tag never changes its meaning or type. A removed field leaves its tag unused.
//! - A new field gets a new tag and must be optional in meaning: an older decoder skips it,
//!   and a newer decoder must accept its absence (protobuf's default value) from an older
//!   sender. New fields may refer to entries of the existing tables, because an older
//!   decoder accepts table entries that no field it knows refers to.
//! - A new message kind gets a new tag in [`proto::Payload`]. An older decoder returns
//!   [`WireError::UnknownKind`] and the shell drops the message, so a new kind may only be
//!   sent to peers known to understand it.
//! - A new member or reachability status value is rejected by older decoders with
//!   [`WireError::UnknownStatus`]. A new variant of a nested `oneof`, such as a join
//!   rejection reason or a clock key form, is rejected with [`WireError::MissingField`]. Sending one therefore needs a new
//!   [`MEMBERSHIP_PROTOCOL_VERSION`](crate::membership::MEMBERSHIP_PROTOCOL_VERSION). A
//!   member rejects a join request whose protocol version is outside
//!   `MIN_SUPPORTED_PROTOCOL_VERSION..=MEMBERSHIP_PROTOCOL_VERSION` of its own build, so a
//!   node of the new version cannot join through a member of an older build.

mod error;
mod messages;
pub mod proto;
mod state;

use std::time::Instant;

use akkord_actor::address::{Address, AddressError, UniqueAddress};
use prost::Message;

pub use error::WireError;

use crate::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use crate::membership::ClusterMessage;
use crate::node::NodeMessage;
use proto::{ClusterEnvelope, Payload, UniqueAddressData};

/// Maximum number of entries the decoder accepts in each collection of incarnations: the
/// address table, members, seen set, tombstones, reachability rows, subjects of one row,
/// clock entries and the application version table.
///
/// A cluster of a few thousand nodes with a day of tombstones stays far below it.
pub const MAX_ADDRESSES: usize = 65_536;

/// Maximum number of roles the decoder accepts in the role table of a gossip state, in one
/// member and in one join request.
pub const MAX_ROLES: usize = 1_024;

/// Maximum length in bytes the decoder accepts for system names, hosts, roles, application
/// versions and the names in a join rejection.
pub const MAX_STRING_BYTES: usize = 1_024;

/// Encodes a membership message, sending the tombstones of a gossip state as their age at
/// `now`.
pub fn encode(message: &ClusterMessage, now: Instant) -> Vec<u8> {
    encode_payload(messages::encode_membership(message, now))
}

/// Decodes and validates a membership message; tombstone removal times are rebuilt by
/// counting their ages back from `now`.
///
/// # Errors
///
/// Returns [`WireError`] naming the field at fault when the bytes are no valid membership
/// message, [`WireError::UnexpectedKind`] for a heartbeat, and [`WireError::UnknownKind`]
/// for a kind added by a newer version.
pub fn decode(bytes: &[u8], now: Instant) -> Result<ClusterMessage, WireError> {
    messages::decode_membership(&decode_envelope(bytes)?, now)
}

/// Encodes a heartbeat request.
pub fn encode_heartbeat_request(request: &HeartbeatRequest) -> Vec<u8> {
    encode_payload(Payload::HeartbeatRequest(
        messages::encode_heartbeat_request(request),
    ))
}

/// Decodes and validates a heartbeat request.
///
/// # Errors
///
/// Returns [`WireError`] naming the field at fault when the bytes are no valid heartbeat
/// request, and [`WireError::UnexpectedKind`] for another kind of cluster message.
pub fn decode_heartbeat_request(bytes: &[u8]) -> Result<HeartbeatRequest, WireError> {
    match decode_envelope(bytes)? {
        Payload::HeartbeatRequest(data) => messages::decode_heartbeat_request(&data),
        other => Err(unexpected("heartbeat-request", &other)),
    }
}

/// Encodes a heartbeat response.
pub fn encode_heartbeat_response(response: &HeartbeatResponse) -> Vec<u8> {
    encode_payload(Payload::HeartbeatResponse(
        messages::encode_heartbeat_response(response),
    ))
}

/// Decodes and validates a heartbeat response.
///
/// # Errors
///
/// Returns [`WireError`] naming the field at fault when the bytes are no valid heartbeat
/// response, and [`WireError::UnexpectedKind`] for another kind of cluster message.
pub fn decode_heartbeat_response(bytes: &[u8]) -> Result<HeartbeatResponse, WireError> {
    match decode_envelope(bytes)? {
        Payload::HeartbeatResponse(data) => messages::decode_heartbeat_response(&data),
        other => Err(unexpected("heartbeat-response", &other)),
    }
}

/// Encodes any cluster message, sending the tombstones of a gossip state as their age at
/// `now`.
pub fn encode_node_message(message: &NodeMessage, now: Instant) -> Vec<u8> {
    let payload = match message {
        NodeMessage::Membership(message) => messages::encode_membership(message, now),
        NodeMessage::HeartbeatRequest(request) => {
            Payload::HeartbeatRequest(messages::encode_heartbeat_request(request))
        }
        NodeMessage::HeartbeatResponse(response) => {
            Payload::HeartbeatResponse(messages::encode_heartbeat_response(response))
        }
    };
    encode_payload(payload)
}

/// Decodes and validates any cluster message; tombstone removal times are rebuilt by
/// counting their ages back from `now`.
///
/// # Errors
///
/// Returns [`WireError`] naming the field at fault when the bytes are no valid cluster
/// message, and [`WireError::UnknownKind`] for a kind added by a newer version.
pub fn decode_node_message(bytes: &[u8], now: Instant) -> Result<NodeMessage, WireError> {
    messages::decode_payload(&decode_envelope(bytes)?, now)
}

fn encode_payload(payload: Payload) -> Vec<u8> {
    ClusterEnvelope {
        payload: Some(payload),
    }
    .encode_to_vec()
}

fn decode_envelope(bytes: &[u8]) -> Result<Payload, WireError> {
    ClusterEnvelope::decode(bytes)?
        .payload
        .ok_or(WireError::UnknownKind)
}

fn unexpected(expected: &'static str, payload: &Payload) -> WireError {
    WireError::UnexpectedKind {
        expected,
        actual: messages::payload_kind(payload),
    }
}

fn encode_address(node: &UniqueAddress) -> UniqueAddressData {
    UniqueAddressData {
        system: node.address.system().to_owned(),
        host: node.address.host().to_owned(),
        port: u32::from(node.address.port()),
        uid: node.uid,
    }
}

fn decode_address(
    field: &'static str,
    data: &UniqueAddressData,
) -> Result<UniqueAddress, WireError> {
    check_string(field, &data.system)?;
    check_string(field, &data.host)?;
    let invalid = |source| WireError::InvalidAddress { field, source };
    let port = u16::try_from(data.port)
        .map_err(|_| invalid(AddressError::InvalidPort(data.port.to_string())))?;
    let address = Address::new(data.system.clone(), data.host.clone(), port).map_err(invalid)?;
    Ok(UniqueAddress::new(address, data.uid))
}

fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), WireError> {
    if count > max {
        return Err(WireError::TooMany { field, count, max });
    }
    Ok(())
}

fn check_string(field: &'static str, text: &str) -> Result<(), WireError> {
    if text.len() > MAX_STRING_BYTES {
        return Err(WireError::StringTooLong {
            field,
            len: text.len(),
            max: MAX_STRING_BYTES,
        });
    }
    Ok(())
}
