//! Conversion between cluster messages and their protobuf payloads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use akkord_actor::address::UniqueAddress;

use super::proto::{
    FromData, GossipMessageData, GossipStatusData, HeartbeatRequestData, HeartbeatResponseData,
    IncarnationRemovedData, IncompatibleProtocolVersionData, JoinData, JoinRejectedData, Payload,
    RejectionData, SystemNameMismatchData, UniqueAddressData, WelcomeData,
};
use super::state::{decode_clock, decode_gossip, encode_clock, encode_gossip};
use super::{check_count, check_string, decode_address, encode_address, WireError, MAX_ROLES};
use crate::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use crate::membership::{ClusterMessage, JoinRejection, JoinRequest};
use crate::node::NodeMessage;

/// Converts and validates a payload of any kind, counting tombstone ages back from `now`.
pub(super) fn decode_payload(payload: &Payload, now: Instant) -> Result<NodeMessage, WireError> {
    match payload {
        Payload::HeartbeatRequest(data) => {
            decode_heartbeat_request(data).map(NodeMessage::HeartbeatRequest)
        }
        Payload::HeartbeatResponse(data) => {
            decode_heartbeat_response(data).map(NodeMessage::HeartbeatResponse)
        }
        _ => decode_membership(payload, now).map(NodeMessage::Membership),
    }
}

/// Converts and validates a membership payload, counting tombstone ages back from `now`.
pub(super) fn decode_membership(
    payload: &Payload,
    now: Instant,
) -> Result<ClusterMessage, WireError> {
    let message = match payload {
        Payload::InitJoin(data) => ClusterMessage::InitJoin {
            from: from_field("init_join.from", &data.from)?,
        },
        Payload::InitJoinAck(data) => ClusterMessage::InitJoinAck {
            from: from_field("init_join_ack.from", &data.from)?,
        },
        Payload::InitJoinNack(data) => ClusterMessage::InitJoinNack {
            from: from_field("init_join_nack.from", &data.from)?,
        },
        Payload::Join(data) => ClusterMessage::Join(decode_join(data)?),
        Payload::Welcome(data) => ClusterMessage::Welcome {
            from: from_field("welcome.from", &data.from)?,
            gossip: Arc::new(decode_gossip(
                required("welcome.gossip", &data.gossip)?,
                now,
            )?),
        },
        Payload::JoinRejected(data) => ClusterMessage::JoinRejected {
            from: from_field("join_rejected.from", &data.from)?,
            reason: decode_rejection(&data.reason)?,
        },
        Payload::Gossip(data) => ClusterMessage::Gossip {
            from: from_field("gossip_message.from", &data.from)?,
            to: from_field("gossip_message.to", &data.to)?,
            gossip: Arc::new(decode_gossip(
                required("gossip_message.gossip", &data.gossip)?,
                now,
            )?),
        },
        Payload::GossipStatus(data) => ClusterMessage::GossipStatus {
            from: from_field("gossip_status.from", &data.from)?,
            to: from_field("gossip_status.to", &data.to)?,
            version: decode_clock(
                "gossip_status.version",
                required("gossip_status.version", &data.version)?,
                None,
            )?,
            seen_digest: data.seen_digest,
        },
        Payload::HeartbeatRequest(_) | Payload::HeartbeatResponse(_) => {
            return Err(WireError::UnexpectedKind {
                expected: "membership",
                actual: payload_kind(payload),
            });
        }
    };
    Ok(message)
}

/// Returns the kind of `payload` as a short name for errors, as [`ClusterMessage::kind`]
/// names the membership kinds.
pub(super) fn payload_kind(payload: &Payload) -> &'static str {
    match payload {
        Payload::InitJoin(_) => "init-join",
        Payload::InitJoinAck(_) => "init-join-ack",
        Payload::InitJoinNack(_) => "init-join-nack",
        Payload::Join(_) => "join",
        Payload::Welcome(_) => "welcome",
        Payload::JoinRejected(_) => "join-rejected",
        Payload::Gossip(_) => "gossip",
        Payload::GossipStatus(_) => "gossip-status",
        Payload::HeartbeatRequest(_) => "heartbeat-request",
        Payload::HeartbeatResponse(_) => "heartbeat-response",
    }
}

/// Converts and validates a heartbeat request.
pub(super) fn decode_heartbeat_request(
    data: &HeartbeatRequestData,
) -> Result<HeartbeatRequest, WireError> {
    Ok(HeartbeatRequest {
        from: from_field("heartbeat_request.from", &data.from)?,
        to: from_field("heartbeat_request.to", &data.to)?,
        sequence_nr: data.sequence_nr,
    })
}

/// Converts and validates a heartbeat response.
pub(super) fn decode_heartbeat_response(
    data: &HeartbeatResponseData,
) -> Result<HeartbeatResponse, WireError> {
    Ok(HeartbeatResponse {
        from: from_field("heartbeat_response.from", &data.from)?,
        sequence_nr: data.sequence_nr,
    })
}

/// Converts a membership message to its payload, taking tombstone ages at `now`.
pub(super) fn encode_membership(message: &ClusterMessage, now: Instant) -> Payload {
    let from = |node: &UniqueAddress| FromData {
        from: Some(encode_address(node)),
    };
    match message {
        ClusterMessage::InitJoin { from: node } => Payload::InitJoin(from(node)),
        ClusterMessage::InitJoinAck { from: node } => Payload::InitJoinAck(from(node)),
        ClusterMessage::InitJoinNack { from: node } => Payload::InitJoinNack(from(node)),
        ClusterMessage::Join(request) => Payload::Join(JoinData {
            node: Some(encode_address(&request.node)),
            roles: request.roles.iter().cloned().collect(),
            app_version: request.app_version.clone(),
            system_name: request.system_name.clone(),
            protocol_version: request.protocol_version,
        }),
        ClusterMessage::Welcome { from, gossip } => Payload::Welcome(WelcomeData {
            from: Some(encode_address(from)),
            gossip: Some(encode_gossip(gossip, now)),
        }),
        ClusterMessage::JoinRejected { from, reason } => Payload::JoinRejected(JoinRejectedData {
            from: Some(encode_address(from)),
            reason: Some(encode_rejection(reason)),
        }),
        ClusterMessage::Gossip { from, to, gossip } => Payload::Gossip(GossipMessageData {
            from: Some(encode_address(from)),
            to: Some(encode_address(to)),
            gossip: Some(encode_gossip(gossip, now)),
        }),
        ClusterMessage::GossipStatus {
            from,
            to,
            version,
            seen_digest,
        } => Payload::GossipStatus(GossipStatusData {
            from: Some(encode_address(from)),
            to: Some(encode_address(to)),
            version: Some(encode_clock(version, |_| None)),
            seen_digest: *seen_digest,
        }),
    }
}

/// Converts a heartbeat request to its payload.
pub(super) fn encode_heartbeat_request(request: &HeartbeatRequest) -> HeartbeatRequestData {
    HeartbeatRequestData {
        from: Some(encode_address(&request.from)),
        to: Some(encode_address(&request.to)),
        sequence_nr: request.sequence_nr,
    }
}

/// Converts a heartbeat response to its payload.
pub(super) fn encode_heartbeat_response(response: &HeartbeatResponse) -> HeartbeatResponseData {
    HeartbeatResponseData {
        from: Some(encode_address(&response.from)),
        sequence_nr: response.sequence_nr,
    }
}

fn encode_rejection(reason: &JoinRejection) -> RejectionData {
    match reason {
        JoinRejection::SystemNameMismatch { expected, actual } => {
            RejectionData::SystemNameMismatch(SystemNameMismatchData {
                expected: expected.clone(),
                actual: actual.clone(),
            })
        }
        JoinRejection::IncompatibleProtocolVersion {
            actual,
            min_supported,
            max_supported,
        } => RejectionData::IncompatibleProtocolVersion(IncompatibleProtocolVersionData {
            actual: *actual,
            min_supported: *min_supported,
            max_supported: *max_supported,
        }),
        JoinRejection::IncarnationRemoved { node } => {
            RejectionData::IncarnationRemoved(IncarnationRemovedData {
                node: Some(encode_address(node)),
            })
        }
    }
}

fn decode_join(data: &JoinData) -> Result<JoinRequest, WireError> {
    check_count("join.roles", data.roles.len(), MAX_ROLES)?;
    let mut roles = BTreeSet::new();
    for role in &data.roles {
        check_string("join.roles", role)?;
        if !roles.insert(role.clone()) {
            return Err(WireError::Duplicate {
                field: "join.roles",
                entry: format!("role {role:?}"),
            });
        }
    }
    check_string("join.app_version", &data.app_version)?;
    check_string("join.system_name", &data.system_name)?;
    Ok(JoinRequest {
        node: from_field("join.node", &data.node)?,
        roles,
        app_version: data.app_version.clone(),
        system_name: data.system_name.clone(),
        protocol_version: data.protocol_version,
    })
}

fn decode_rejection(reason: &Option<RejectionData>) -> Result<JoinRejection, WireError> {
    match reason {
        Some(RejectionData::SystemNameMismatch(data)) => {
            check_string("join_rejected.expected", &data.expected)?;
            check_string("join_rejected.actual", &data.actual)?;
            Ok(JoinRejection::SystemNameMismatch {
                expected: data.expected.clone(),
                actual: data.actual.clone(),
            })
        }
        Some(RejectionData::IncompatibleProtocolVersion(data)) => {
            Ok(JoinRejection::IncompatibleProtocolVersion {
                actual: data.actual,
                min_supported: data.min_supported,
                max_supported: data.max_supported,
            })
        }
        Some(RejectionData::IncarnationRemoved(data)) => Ok(JoinRejection::IncarnationRemoved {
            node: from_field("join_rejected.node", &data.node)?,
        }),
        None => Err(WireError::MissingField {
            field: "join_rejected.reason",
        }),
    }
}

fn from_field(
    field: &'static str,
    data: &Option<UniqueAddressData>,
) -> Result<UniqueAddress, WireError> {
    decode_address(field, required(field, data)?)
}

fn required<'a, T>(field: &'static str, value: &'a Option<T>) -> Result<&'a T, WireError> {
    value.as_ref().ok_or(WireError::MissingField { field })
}
