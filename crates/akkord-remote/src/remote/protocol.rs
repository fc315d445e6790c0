//! Messages of remote actor refs: lookup by name and remote death watch.
//!
//! They travel as [`UserEnvelope`](crate::wire::UserEnvelope)s addressed to actor id 0,
//! which no actor has, with the manifests below and a protobuf payload. Lookups use the
//! ordinary lane; watch messages are system messages on the control lane, so they are
//! redelivered until acknowledged and arrive once, in order.

use crate::wire::ActorRefData;

/// Recipient id of protocol messages; actor ids start at 1.
pub(crate) const PROTOCOL_RECIPIENT: u64 = 0;

/// Manifest of [`LookupRequest`].
pub(crate) const LOOKUP_REQUEST: &str = "akkord.remote.LookupRequest";
/// Manifest of [`LookupReply`].
pub(crate) const LOOKUP_REPLY: &str = "akkord.remote.LookupReply";
/// Manifest of [`WatchRequest`] asking to watch.
pub(crate) const WATCH: &str = "akkord.remote.Watch";
/// Manifest of [`WatchRequest`] asking to stop watching.
pub(crate) const UNWATCH: &str = "akkord.remote.Unwatch";
/// Manifest of [`DeathWatchNotification`].
pub(crate) const DEATH_WATCH_NOTIFICATION: &str = "akkord.remote.DeathWatchNotification";

/// Request for the actor exposed under a name.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct LookupRequest {
    /// Number chosen by the requester, echoed in the reply.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// Name the actor was exposed under.
    #[prost(string, tag = "2")]
    pub name: String,
}

/// Reply to a [`LookupRequest`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct LookupReply {
    /// Request this reply belongs to.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// The actor, or none when no actor is exposed under the name.
    #[prost(message, optional, tag = "2")]
    pub actor: Option<ActorRefData>,
    /// Manifest of the message type the actor accepts.
    #[prost(string, tag = "3")]
    pub manifest: String,
}

/// Watch or unwatch of an actor of the receiving node by the sending node.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct WatchRequest {
    /// Id of the watched actor.
    #[prost(uint64, tag = "1")]
    pub watchee: u64,
}

/// Notice that a watched actor stopped, or was not found when the watch arrived.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct DeathWatchNotification {
    /// Id of the actor that stopped.
    #[prost(uint64, tag = "1")]
    pub watchee: u64,
    /// The failure that stopped it, as text, when it failed.
    #[prost(string, optional, tag = "2")]
    pub failure: Option<String>,
}
