//! The message and event types of the cluster node.

use std::collections::BTreeSet;
use std::time::Duration;

use akkord_actor::address::{Address, UniqueAddress};

use crate::convergence::ConvergenceBlocker;
use crate::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use crate::membership::ClusterMessage;
use crate::sbr::{Decision, LeaseCommand};

/// A message between cluster nodes: membership traffic or a heartbeat.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeMessage {
    /// Join, welcome and gossip traffic of the membership core.
    Membership(ClusterMessage),
    /// A heartbeat request of the failure detector.
    HeartbeatRequest(HeartbeatRequest),
    /// A heartbeat response of the failure detector.
    HeartbeatResponse(HeartbeatResponse),
}

impl NodeMessage {
    /// Returns the message kind as a short name for logs and traffic counters.
    ///
    /// Both heartbeat directions are `"heartbeat"`, so traffic figures can leave them out;
    /// membership messages use [`ClusterMessage::kind`], for example `"gossip"`.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeMessage::Membership(message) => message.kind(),
            NodeMessage::HeartbeatRequest(_) | NodeMessage::HeartbeatResponse(_) => "heartbeat",
        }
    }

    /// Estimates the size in bytes of the protobuf encoding of this message.
    ///
    /// Membership messages use [`ClusterMessage::wire_size`]. A heartbeat request carries
    /// two incarnations and a sequence number, a response one incarnation and the number.
    /// These are estimates for traffic figures, not the size of any current encoding.
    pub fn wire_size(&self) -> usize {
        const ENVELOPE: usize = 4;
        const SEQUENCE_NR: usize = 1 + 9;
        match self {
            NodeMessage::Membership(message) => message.wire_size(),
            NodeMessage::HeartbeatRequest(request) => {
                ENVELOPE
                    + unique_address_size(&request.from)
                    + unique_address_size(&request.to)
                    + SEQUENCE_NR
            }
            NodeMessage::HeartbeatResponse(response) => {
                ENVELOPE + unique_address_size(&response.from) + SEQUENCE_NR
            }
        }
    }
}

/// Reason for which this node must shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// This incarnation was marked Down, by the resolver, an operator or a restart of the
    /// same address, or it was removed without having left.
    Downed,
    /// This incarnation was removed from the cluster after leaving.
    Removed,
}

/// An event of the cluster node for the shell to publish or act on.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// A membership change; the shell logs it at info with the member's node and uid.
    Membership(crate::membership::ClusterEvent),
    /// This node was downed or removed and stopped taking part in the cluster. The shell
    /// runs the coordinated shutdown and exits; published once.
    ShutdownRequested {
        /// Why.
        reason: ShutdownReason,
    },
    /// A heartbeat round ran late, so peers may soon suspect this node; the shell logs it
    /// at warn.
    HeartbeatTickLate {
        /// How late the round ran.
        late_by: Duration,
    },
    /// The cluster state has not converged for `blocked_for`; the shell logs the blockers
    /// at warn.
    ConvergenceBlocked {
        /// Time since this node last saw a converged state, or since it joined.
        blocked_for: Duration,
        /// The members that keep the state from converging, and why.
        blockers: Vec<ConvergenceBlocker>,
    },
    /// The split brain resolver of this node took a decision.
    ResolverDecision {
        /// The decision.
        decision: Decision,
        /// Members this node marks Down because of it, possibly itself.
        down: BTreeSet<UniqueAddress>,
    },
    /// A lease request of the resolver for the shell. The shell reports the outcome of an
    /// acquire through [`crate::node::ClusterNode::handle_lease_result`].
    Lease(LeaseCommand),
}

/// Actions one call into [`crate::node::ClusterNode`] requests from the shell.
#[derive(Debug, Default)]
pub struct NodeOutputs {
    /// Messages to send, with the address of the destination node.
    pub messages: Vec<(Address, NodeMessage)>,
    /// Events to publish, in order.
    pub events: Vec<NodeEvent>,
    /// The instant at which the node wants [`crate::node::ClusterNode::tick`] called;
    /// `None` when it has stopped. Each call replaces the previous request.
    pub next_tick: Option<std::time::Instant>,
}

impl NodeOutputs {
    /// Creates empty outputs.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Estimated size of an incarnation nested in a message: tag and length, system and host
/// strings, port varint and the uid as fixed64, as the membership messages count it.
fn unique_address_size(node: &UniqueAddress) -> usize {
    let string = |text: &str| 2 + text.len();
    2 + string(node.address.system()) + string(node.address.host()) + 4 + 9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(Address::new("sys", "127.0.0.1", port).unwrap(), 7)
    }

    #[test]
    fn heartbeats_share_one_kind() {
        let request = NodeMessage::HeartbeatRequest(HeartbeatRequest {
            from: node(1),
            to: node(2),
            sequence_nr: 1,
        });
        let response = NodeMessage::HeartbeatResponse(HeartbeatResponse {
            from: node(2),
            sequence_nr: 1,
        });
        let membership = NodeMessage::Membership(ClusterMessage::InitJoin { from: node(1) });
        assert_eq!(request.kind(), "heartbeat");
        assert_eq!(response.kind(), "heartbeat");
        assert_eq!(membership.kind(), "init-join");
    }

    #[test]
    fn heartbeat_sizes_count_addresses() {
        let request = NodeMessage::HeartbeatRequest(HeartbeatRequest {
            from: node(1),
            to: node(2),
            sequence_nr: 1,
        });
        let response = NodeMessage::HeartbeatResponse(HeartbeatResponse {
            from: node(2),
            sequence_nr: 1,
        });
        let address = unique_address_size(&node(1));
        assert_eq!(request.wire_size(), 4 + 2 * address + 10);
        assert_eq!(response.wire_size(), 4 + address + 10);
        let init_join = ClusterMessage::InitJoin { from: node(1) };
        assert_eq!(
            NodeMessage::Membership(init_join.clone()).wire_size(),
            init_join.wire_size()
        );
    }
}
