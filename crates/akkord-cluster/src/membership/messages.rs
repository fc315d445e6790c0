//! Messages exchanged by membership cores, and their estimated encoded size.
//!
//! These are plain Rust values. The remoting layer encodes them with protobuf; until then,
//! [`ClusterMessage::wire_size`] estimates the size of that encoding so a simulator can
//! count gossip traffic.

use std::collections::BTreeSet;
use std::sync::Arc;

use akkord_actor::address::UniqueAddress;

use crate::gossip::Gossip;
use crate::vclock::VectorClock;

/// Version of the membership protocol spoken by this build.
pub const MEMBERSHIP_PROTOCOL_VERSION: u32 = 1;

/// Oldest membership protocol version this build can run in one cluster with.
pub const MIN_SUPPORTED_PROTOCOL_VERSION: u32 = 1;

/// A request to join the cluster, sent to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// The joining incarnation.
    pub node: UniqueAddress,
    /// Roles of the joining node.
    pub roles: BTreeSet<String>,
    /// Application version of the joining node.
    pub app_version: String,
    /// Actor system name of the joining node; it must equal the cluster's.
    pub system_name: String,
    /// Membership protocol version of the joining node.
    pub protocol_version: u32,
}

/// Reason why a member rejected a join request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRejection {
    /// The joiner belongs to another actor system.
    #[error(
        "join rejected: actor system name {actual:?} differs from the cluster's {expected:?}; \
         configure the same system name on every node"
    )]
    SystemNameMismatch {
        /// System name of the cluster.
        expected: String,
        /// System name of the joiner.
        actual: String,
    },
    /// The joiner speaks a protocol version the member cannot run with.
    #[error(
        "join rejected: membership protocol version {actual} is outside the supported range \
         {min_supported}..={max_supported}; upgrade the node before it joins"
    )]
    IncompatibleProtocolVersion {
        /// Version of the joiner.
        actual: u32,
        /// Oldest version the member supports.
        min_supported: u32,
        /// Newest version the member supports.
        max_supported: u32,
    },
    /// The joiner's incarnation was removed from the cluster and can never rejoin.
    #[error("join rejected: incarnation {node} was removed from the cluster; restart the node")]
    IncarnationRemoved {
        /// The removed incarnation.
        node: UniqueAddress,
    },
}

/// A message between membership cores.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterMessage {
    /// Asks a seed node whether it is a member that can take a join request.
    InitJoin {
        /// The incarnation asking.
        from: UniqueAddress,
    },
    /// The seed is a member; the receiver should send [`ClusterMessage::Join`] to it.
    InitJoinAck {
        /// The member that replies.
        from: UniqueAddress,
    },
    /// The seed is not a member yet.
    InitJoinNack {
        /// The node that replies.
        from: UniqueAddress,
    },
    /// Asks a member to add the sender as Joining.
    Join(JoinRequest),
    /// Accepts a join and carries the cluster state.
    Welcome {
        /// The member that accepted the join.
        from: UniqueAddress,
        /// The cluster state including the new member.
        gossip: Arc<Gossip>,
    },
    /// Rejects a join; the joiner stops joining.
    JoinRejected {
        /// The member that rejected the join.
        from: UniqueAddress,
        /// Why.
        reason: JoinRejection,
    },
    /// The full gossip state.
    Gossip {
        /// Sending incarnation.
        from: UniqueAddress,
        /// Intended receiving incarnation; another incarnation at the same address drops it.
        to: UniqueAddress,
        /// The state.
        gossip: Arc<Gossip>,
    },
    /// A digest of the sender's state, sent to a peer that has seen the sender's version.
    GossipStatus {
        /// Sending incarnation.
        from: UniqueAddress,
        /// Intended receiving incarnation.
        to: UniqueAddress,
        /// Version of the sender's state.
        version: VectorClock,
        /// Digest of the sender's seen set.
        seen_digest: u64,
    },
}

impl ClusterMessage {
    /// Returns the message kind as a short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClusterMessage::InitJoin { .. } => "init-join",
            ClusterMessage::InitJoinAck { .. } => "init-join-ack",
            ClusterMessage::InitJoinNack { .. } => "init-join-nack",
            ClusterMessage::Join(_) => "join",
            ClusterMessage::Welcome { .. } => "welcome",
            ClusterMessage::JoinRejected { .. } => "join-rejected",
            ClusterMessage::Gossip { .. } => "gossip",
            ClusterMessage::GossipStatus { .. } => "gossip-status",
        }
    }

    /// Estimates the size in bytes of the protobuf encoding of this message.
    ///
    /// The estimate assumes a gossip state encodes each incarnation once in an address
    /// table and refers to it by index elsewhere, as Akka's cluster protobuf format does.
    /// It is an estimate for traffic figures, not the size of any current encoding.
    pub fn wire_size(&self) -> usize {
        const ENVELOPE: usize = 4;
        ENVELOPE
            + match self {
                ClusterMessage::InitJoin { from }
                | ClusterMessage::InitJoinAck { from }
                | ClusterMessage::InitJoinNack { from } => unique_address_size(from),
                ClusterMessage::Join(request) => {
                    unique_address_size(&request.node)
                        + request.roles.iter().map(|r| string_size(r)).sum::<usize>()
                        + string_size(&request.app_version)
                        + string_size(&request.system_name)
                        + 3
                }
                ClusterMessage::Welcome { from, gossip } => {
                    unique_address_size(from) + gossip_size(gossip)
                }
                ClusterMessage::JoinRejected { from, reason } => {
                    unique_address_size(from) + string_size(&reason.to_string())
                }
                ClusterMessage::Gossip { from, to, gossip } => {
                    unique_address_size(from) + unique_address_size(to) + gossip_size(gossip)
                }
                ClusterMessage::GossipStatus {
                    from, to, version, ..
                } => unique_address_size(from) + unique_address_size(to) + clock_size(version) + 9,
            }
    }
}

/// Size of a length-delimited string field: tag, length and bytes.
fn string_size(text: &str) -> usize {
    2 + text.len()
}

fn unique_address_size(node: &UniqueAddress) -> usize {
    // Nested message: tag and length, system, host, port varint, uid as fixed64.
    2 + string_size(node.address.system()) + string_size(node.address.host()) + 4 + 9
}

fn clock_size(clock: &VectorClock) -> usize {
    // Per entry: a nested message with the 64-bit node key and a varint counter.
    clock
        .entries()
        .map(|(_, version)| 2 + 9 + 1 + varint_size(version))
        .sum()
}

fn gossip_size(gossip: &Gossip) -> usize {
    const INDEX: usize = 3;
    // Members and tombstones are disjoint, so each incarnation enters the table once.
    let table = gossip
        .members()
        .map(|m| &m.unique_address)
        .chain(gossip.tombstones().keys());
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    let mut size: usize = table.map(unique_address_size).sum();

    for member in gossip.members() {
        roles.extend(member.roles.iter().map(String::as_str));
        // Index, status, up number, role indices and app version index.
        size += 2 + INDEX + 2 + varint_size(u64::from(member.up_number)) + 1;
        size += member.roles.len() * 2 + INDEX;
    }
    size += roles.iter().map(|r| string_size(r)).sum::<usize>();
    size += gossip.overview().seen.len() * INDEX;
    for (_, row) in gossip.reachability().rows() {
        size += 2 + INDEX + varint_size(row.version) + row.subjects.len() * (2 + INDEX + 2);
    }
    size += clock_size(gossip.version());
    // Tombstone: index and removal time in milliseconds.
    size += gossip.tombstones().len() * (2 + INDEX + 7);
    size
}

fn varint_size(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Member;
    use akkord_actor::address::Address;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(Address::new("sys", "127.0.0.1", port).unwrap(), 7)
    }

    #[test]
    fn status_is_smaller_than_full_gossip() {
        let mut gossip = Gossip::new();
        for port in 1..=5 {
            gossip.put_member(Member::joining(node(port), BTreeSet::new(), "1".into()));
            gossip.increment(&node(port));
        }
        let full = ClusterMessage::Gossip {
            from: node(1),
            to: node(2),
            gossip: Arc::new(gossip.clone()),
        };
        let status = ClusterMessage::GossipStatus {
            from: node(1),
            to: node(2),
            version: gossip.version().clone(),
            seen_digest: gossip.seen_digest(),
        };
        assert!(status.wire_size() < full.wire_size());
    }

    #[test]
    fn gossip_size_grows_with_members() {
        let mut small = Gossip::new();
        small.put_member(Member::joining(node(1), BTreeSet::new(), "1".into()));
        let mut large = small.clone();
        large.put_member(Member::joining(node(2), BTreeSet::new(), "1".into()));
        let size = |g: &Gossip| {
            ClusterMessage::Welcome {
                from: node(1),
                gossip: Arc::new(g.clone()),
            }
            .wire_size()
        };
        assert!(size(&large) > size(&small));
    }
}
