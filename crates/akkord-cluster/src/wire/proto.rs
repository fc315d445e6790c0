//! Protobuf messages of the cluster protocol, derived with `prost`.
//!
//! Field tags are part of the wire format: a tag never changes its meaning, and a removed
//! field leaves its tag unused. See the module documentation of [`crate::wire`] for the
//! rules of adding fields and message kinds.
//!
//! A gossip state lists each incarnation once in [`GossipData::addresses`], each role once
//! in [`GossipData::roles`] and each application version once in
//! [`GossipData::app_versions`]; members, the seen set, reachability records, clock
//! entries and tombstones refer to these tables by zero-based index.

/// Frame of every cluster message: exactly one payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterEnvelope {
    /// The message, or `None` when a newer peer sent a kind this version does not decode.
    #[prost(oneof = "Payload", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub payload: Option<Payload>,
}

/// Message kinds of the cluster protocol.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Payload {
    /// Asks a seed node whether it is a member.
    #[prost(message, tag = "1")]
    InitJoin(FromData),
    /// The seed is a member.
    #[prost(message, tag = "2")]
    InitJoinAck(FromData),
    /// The seed is not a member yet.
    #[prost(message, tag = "3")]
    InitJoinNack(FromData),
    /// A join request.
    #[prost(message, tag = "4")]
    Join(JoinData),
    /// Acceptance of a join with the cluster state.
    #[prost(message, tag = "5")]
    Welcome(WelcomeData),
    /// Rejection of a join.
    #[prost(message, tag = "6")]
    JoinRejected(JoinRejectedData),
    /// The full gossip state.
    #[prost(message, tag = "7")]
    Gossip(GossipMessageData),
    /// Version and seen digest of the sender's state.
    #[prost(message, tag = "8")]
    GossipStatus(GossipStatusData),
    /// Heartbeat request of the cluster failure detector.
    #[prost(message, tag = "9")]
    HeartbeatRequest(HeartbeatRequestData),
    /// Heartbeat response of the cluster failure detector.
    #[prost(message, tag = "10")]
    HeartbeatResponse(HeartbeatResponseData),
}

/// One incarnation of a node: address parts and the 64-bit uid.
///
/// The tags are those of the remoting layer's handshake address, so both layers write an
/// incarnation the same way.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct UniqueAddressData {
    /// Actor system name.
    #[prost(string, tag = "1")]
    pub system: String,
    /// Host name or IP address, without brackets for IPv6.
    #[prost(string, tag = "2")]
    pub host: String,
    /// TCP port. The decoder rejects values above 65535.
    #[prost(uint32, tag = "3")]
    pub port: u32,
    /// Random incarnation uid chosen when the node started.
    #[prost(fixed64, tag = "4")]
    pub uid: u64,
}

/// A message that carries only its sender: InitJoin, InitJoinAck and InitJoinNack.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FromData {
    /// Sending incarnation.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
}

/// A join request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinData {
    /// The joining incarnation.
    #[prost(message, optional, tag = "1")]
    pub node: Option<UniqueAddressData>,
    /// Roles of the joining node.
    #[prost(string, repeated, tag = "2")]
    pub roles: Vec<String>,
    /// Application version of the joining node.
    #[prost(string, tag = "3")]
    pub app_version: String,
    /// Actor system name of the joining node.
    #[prost(string, tag = "4")]
    pub system_name: String,
    /// Membership protocol version of the joining node.
    #[prost(uint32, tag = "5")]
    pub protocol_version: u32,
}

/// Acceptance of a join.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WelcomeData {
    /// The member that accepted the join.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
    /// The cluster state including the new member.
    #[prost(message, optional, tag = "2")]
    pub gossip: Option<GossipData>,
}

/// Rejection of a join with its reason.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinRejectedData {
    /// The member that rejected the join.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
    /// The reason, or `None` when a newer peer sent a reason this version does not decode.
    #[prost(oneof = "RejectionData", tags = "2, 3, 4")]
    pub reason: Option<RejectionData>,
}

/// Reasons of a join rejection.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RejectionData {
    /// The joiner belongs to another actor system.
    #[prost(message, tag = "2")]
    SystemNameMismatch(SystemNameMismatchData),
    /// The joiner speaks an unsupported protocol version.
    #[prost(message, tag = "3")]
    IncompatibleProtocolVersion(IncompatibleProtocolVersionData),
    /// The joiner's incarnation was removed.
    #[prost(message, tag = "4")]
    IncarnationRemoved(IncarnationRemovedData),
}

/// The system names of a rejected join.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SystemNameMismatchData {
    /// System name of the cluster.
    #[prost(string, tag = "1")]
    pub expected: String,
    /// System name of the joiner.
    #[prost(string, tag = "2")]
    pub actual: String,
}

/// The protocol versions of a rejected join.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IncompatibleProtocolVersionData {
    /// Version of the joiner.
    #[prost(uint32, tag = "1")]
    pub actual: u32,
    /// Oldest version the member supports.
    #[prost(uint32, tag = "2")]
    pub min_supported: u32,
    /// Newest version the member supports.
    #[prost(uint32, tag = "3")]
    pub max_supported: u32,
}

/// The removed incarnation of a rejected join.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IncarnationRemovedData {
    /// The removed incarnation.
    #[prost(message, optional, tag = "1")]
    pub node: Option<UniqueAddressData>,
}

/// The full gossip state sent to one incarnation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GossipMessageData {
    /// Sending incarnation.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
    /// Intended receiving incarnation.
    #[prost(message, optional, tag = "2")]
    pub to: Option<UniqueAddressData>,
    /// The state.
    #[prost(message, optional, tag = "3")]
    pub gossip: Option<GossipData>,
}

/// Version and seen digest of the sender's state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GossipStatusData {
    /// Sending incarnation.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
    /// Intended receiving incarnation.
    #[prost(message, optional, tag = "2")]
    pub to: Option<UniqueAddressData>,
    /// Version of the sender's state, with clock keys in place of table indexes.
    #[prost(message, optional, tag = "3")]
    pub version: Option<ClockData>,
    /// Digest of the sender's seen set.
    #[prost(fixed64, tag = "4")]
    pub seen_digest: u64,
}

/// A gossip state with its index tables.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GossipData {
    /// Every incarnation the state mentions, each once.
    #[prost(message, repeated, tag = "1")]
    pub addresses: Vec<UniqueAddressData>,
    /// Every role of a member, each once.
    #[prost(string, repeated, tag = "2")]
    pub roles: Vec<String>,
    /// Every application version of a member, each once.
    #[prost(string, repeated, tag = "3")]
    pub app_versions: Vec<String>,
    /// The members.
    #[prost(message, repeated, tag = "4")]
    pub members: Vec<MemberData>,
    /// Indexes into `addresses` of the nodes that have seen this version.
    #[prost(uint32, repeated, tag = "5")]
    pub seen: Vec<u32>,
    /// Reachability rows, one per observer.
    #[prost(message, repeated, tag = "6")]
    pub reachability: Vec<ObserverRowData>,
    /// Vector clock of the state.
    #[prost(message, optional, tag = "7")]
    pub version: Option<ClockData>,
    /// Removed incarnations with the age of their removal.
    #[prost(message, repeated, tag = "8")]
    pub tombstones: Vec<TombstoneData>,
}

/// One member of a gossip state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberData {
    /// Index into [`GossipData::addresses`].
    #[prost(uint32, tag = "1")]
    pub address_index: u32,
    /// Status, a [`MemberStatusData`] value other than `Unspecified`.
    #[prost(enumeration = "MemberStatusData", tag = "2")]
    pub status: i32,
    /// Order in which the member became Up; `u32::MAX` until Up.
    #[prost(uint32, tag = "3")]
    pub up_number: u32,
    /// Indexes into [`GossipData::roles`].
    #[prost(uint32, repeated, tag = "4")]
    pub role_indexes: Vec<u32>,
    /// Index into [`GossipData::app_versions`].
    #[prost(uint32, tag = "5")]
    pub app_version_index: u32,
}

/// Member status on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MemberStatusData {
    /// Missing status; rejected by the decoder.
    Unspecified = 0,
    /// Joining.
    Joining = 1,
    /// WeaklyUp.
    WeaklyUp = 2,
    /// Up.
    Up = 3,
    /// PreparingForShutdown.
    PreparingForShutdown = 4,
    /// ReadyForShutdown.
    ReadyForShutdown = 5,
    /// Leaving.
    Leaving = 6,
    /// Exiting.
    Exiting = 7,
    /// Down.
    Down = 8,
    /// Removed.
    Removed = 9,
}

/// One observer's reachability row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObserverRowData {
    /// Index into [`GossipData::addresses`] of the observer.
    #[prost(uint32, tag = "1")]
    pub observer_index: u32,
    /// Version of the row.
    #[prost(uint64, tag = "2")]
    pub version: u64,
    /// Records about subjects.
    #[prost(message, repeated, tag = "3")]
    pub subjects: Vec<SubjectData>,
}

/// One observer→subject record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubjectData {
    /// Index into [`GossipData::addresses`] of the subject.
    #[prost(uint32, tag = "1")]
    pub subject_index: u32,
    /// Status, a [`ReachabilityStatusData`] value other than `Unspecified`.
    #[prost(enumeration = "ReachabilityStatusData", tag = "2")]
    pub status: i32,
}

/// Reachability status on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReachabilityStatusData {
    /// Missing status; rejected by the decoder.
    Unspecified = 0,
    /// Reachable.
    Reachable = 1,
    /// Unreachable.
    Unreachable = 2,
    /// Terminated.
    Terminated = 3,
}

/// A vector clock.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClockData {
    /// The entries. The decoder rejects a key listed twice.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<ClockEntryData>,
}

/// One vector clock entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClockEntryData {
    /// The entry's key: a table index when the incarnation is in the gossip's address table,
    /// the 64-bit key itself otherwise.
    #[prost(oneof = "ClockKeyData", tags = "1, 2")]
    pub key: Option<ClockKeyData>,
    /// Counter of the entry.
    #[prost(uint64, tag = "3")]
    pub version: u64,
}

/// Key of a vector clock entry.
#[derive(Clone, Copy, PartialEq, Eq, prost::Oneof)]
pub enum ClockKeyData {
    /// Index into [`GossipData::addresses`]; the key is the clock key of that incarnation.
    #[prost(uint32, tag = "1")]
    AddressIndex(u32),
    /// The 64-bit clock key.
    #[prost(fixed64, tag = "2")]
    Key(u64),
}

/// A removed incarnation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TombstoneData {
    /// Index into [`GossipData::addresses`].
    #[prost(uint32, tag = "1")]
    pub address_index: u32,
    /// Milliseconds between the removal and the encoding of the message.
    #[prost(uint64, tag = "2")]
    pub age_millis: u64,
}

/// Heartbeat request of the cluster failure detector.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatRequestData {
    /// The monitoring node.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
    /// The monitored incarnation.
    #[prost(message, optional, tag = "2")]
    pub to: Option<UniqueAddressData>,
    /// Number of the heartbeat round.
    #[prost(uint64, tag = "3")]
    pub sequence_nr: u64,
}

/// Heartbeat response of the cluster failure detector.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatResponseData {
    /// The monitored node that responds.
    #[prost(message, optional, tag = "1")]
    pub from: Option<UniqueAddressData>,
    /// Sequence number copied from the request.
    #[prost(uint64, tag = "2")]
    pub sequence_nr: u64,
}
