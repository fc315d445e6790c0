//! Cluster singleton: one actor that runs on exactly one node of the cluster, the oldest
//! member with a given role, and a proxy that reaches it wherever it runs.
//!
//! This is the counterpart of Akka's `ClusterSingletonManager` and
//! `ClusterSingletonProxy`. Start a [`ClusterSingletonManager`] on every node that may host
//! the singleton, and a [`ClusterSingletonProxy`] on every node that sends to it.
//!
//! # Where the singleton runs
//!
//! Every manager computes the oldest member from its own view of the cluster: among the
//! members with the role in status Up, the one with the lowest `up_number`
//! ([`Member::is_older_than`]). Only that member runs the singleton. The manager spawns it
//! as the top-level actor `/user/<name>` and exposes it with [`RemoteSystem::expose`]
//! under the same name.
//!
//! # Hand-over on leave
//!
//! 1. The oldest member starts leaving (status Leaving, then Exiting).
//! 2. The next oldest observes the Leaving status and sends `HandOverToMe` to it over the
//!    extension protocol of the transport, again every `hand_over_retry_interval` until it
//!    receives the response, because the protocol may lose messages.
//! 3. The leaving node stops its singleton, waits for its termination, and sends
//!    `HandOverDone`. From then on it never starts the singleton again.
//! 4. The next oldest starts the singleton.
//!
//! When the leaving node is removed before the hand-over completed, the next oldest takes
//! over as after a crash.
//!
//! # Take-over after a crash
//!
//! When the previous oldest is downed, the next oldest waits until it is removed and
//! `removal_margin` has passed since, then starts the singleton. The downed node stops its
//! copy as soon as it learns that it is down or removed, and its actor system shuts down.
//! The margin must exceed the time that takes, which the split brain resolver's
//! `stable-after` bounds for a node on the losing side of a partition.
//!
//! # Invariant
//!
//! Two copies never run at once, provided the removal margin is long enough as above: a node
//! starts only when every older member confirmed the hand-over or was removed at least
//! `removal_margin` ago.
//!
//! # Example
//!
//! ```no_run
//! use akkord_actor::{Actor, ActorResult, ActorSystem, Context, Props};
//! use akkord_cluster::shell::{Cluster, ClusterSettings};
//! use akkord_cluster_tools::singleton::{
//!     ClusterSingletonManager, ClusterSingletonProxy, SingletonSettings,
//! };
//! use akkord_remote::serialization::SerializationRegistry;
//! use akkord_remote::{RemoteSystem, RemoteSystemSettings};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Add(u64);
//!
//! struct Total(u64);
//!
//! impl Actor for Total {
//!     type Msg = Add;
//!
//!     async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Add) -> ActorResult {
//!         self.0 += msg.0;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! let mut registry = SerializationRegistry::new();
//! registry.register::<Add>("demo.Add")?;
//! let system = ActorSystem::new("demo")?;
//! let remote =
//!     RemoteSystem::bind(system.clone(), RemoteSystemSettings::new("demo"), registry).await?;
//! let cluster = Cluster::start(&system, &remote, ClusterSettings::default())?;
//! cluster.join(remote.local_address().address.clone())?;
//!
//! let settings = SingletonSettings::new("total");
//! let _manager = ClusterSingletonManager::start(
//!     &system,
//!     &remote,
//!     &cluster,
//!     Props::new(|| Total(0)),
//!     settings.clone(),
//! )?;
//! let proxy = ClusterSingletonProxy::start::<Add>(&system, &remote, &cluster, settings)?;
//! proxy.actor_ref().tell(Add(5));
//! # Ok(())
//! # }
//! ```
//!
//! [`Member::is_older_than`]: akkord_cluster::member::Member::is_older_than
//! [`RemoteSystem::expose`]: akkord_remote::RemoteSystem::expose

pub mod handover;
mod manager;
mod proxy;
mod wire;

use std::time::Duration;

use akkord_remote::RemoteSystem;

pub use manager::ClusterSingletonManager;
pub use proxy::{ClusterSingletonProxy, SingletonProxy};

/// Largest accepted [`SingletonSettings::buffer_size`], as in Akka.
pub const MAX_BUFFER_SIZE: usize = 10_000;

/// Settings of a singleton, shared by its managers and proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingletonSettings {
    /// Name of the singleton actor, `/user/<name>`, and the name it is exposed under.
    /// Every manager and proxy of one singleton uses the same name. It must be a valid
    /// actor name: not empty, no `/`.
    pub name: String,
    /// Role a member needs to host the singleton; `None` (the default) lets every member
    /// host it. Proxies use it to find the host, so they may run on nodes without it.
    pub role: Option<String>,
    /// Time to wait after the previous host was removed before starting the singleton
    /// elsewhere, so that the removed node has stopped its copy. Default 20 s, Akka's
    /// `down-removal-margin` for the default `stable-after` of 20 s. It must exceed the
    /// time a downed node takes to notice it is down, which is about the resolver's
    /// `stable-after`. A shorter margin risks two copies at once after a partition. Zero
    /// is accepted, but is safe only when members leave gracefully.
    pub removal_margin: Duration,
    /// Interval between resent hand-over requests to a leaving host. Default 1 s, as in
    /// Akka. Shorter speeds up hand-over when messages are lost; it must not be zero.
    pub hand_over_retry_interval: Duration,
    /// Number of messages a proxy keeps while it has no singleton to send to. Beyond it,
    /// the proxy drops the oldest buffered message with a warning. Default 1000, as in Akka;
    /// at most [`MAX_BUFFER_SIZE`]. Zero drops every message sent while the singleton
    /// moves.
    pub buffer_size: usize,
}

impl SingletonSettings {
    /// Creates settings with the defaults for the singleton `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role: None,
            removal_margin: Duration::from_secs(20),
            hand_over_retry_interval: Duration::from_secs(1),
            buffer_size: 1000,
        }
    }

    /// Sets the role a member needs to host the singleton.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets the time to wait after the previous host was removed.
    pub fn with_removal_margin(mut self, margin: Duration) -> Self {
        self.removal_margin = margin;
        self
    }

    /// Sets the interval between resent hand-over requests.
    pub fn with_hand_over_retry_interval(mut self, interval: Duration) -> Self {
        self.hand_over_retry_interval = interval;
        self
    }

    /// Sets the number of messages a proxy buffers while the singleton moves.
    pub fn with_buffer_size(mut self, size: usize) -> Self {
        self.buffer_size = size;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`SingletonError::InvalidSettings`] naming the first invalid field.
    pub fn validate(&self) -> Result<(), SingletonError> {
        let invalid = |field: &'static str, reason: String| {
            Err(SingletonError::InvalidSettings { field, reason })
        };
        if self.name.is_empty() || self.name.contains('/') {
            return invalid(
                "name",
                format!(
                    "{:?} is not a valid actor name: use a non-empty name without '/'",
                    self.name
                ),
            );
        }
        if self.role.as_deref() == Some("") {
            return invalid(
                "role",
                "the role is empty: use None to let every member host the singleton".to_owned(),
            );
        }
        if self.hand_over_retry_interval.is_zero() {
            return invalid(
                "hand_over_retry_interval",
                "the interval is zero: use a positive duration such as 1 s".to_owned(),
            );
        }
        if self.buffer_size > MAX_BUFFER_SIZE {
            return invalid(
                "buffer_size",
                format!(
                    "{} exceeds the maximum of {MAX_BUFFER_SIZE}",
                    self.buffer_size
                ),
            );
        }
        Ok(())
    }
}

/// Failure to start a singleton manager or proxy; nothing was started.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SingletonError {
    /// A setting is invalid.
    #[error("invalid singleton setting {field}: {reason}")]
    InvalidSettings {
        /// The field.
        field: &'static str,
        /// Description of the problem and its fix.
        reason: String,
    },
    /// The singleton's message type has no manifest in the remote's serialization
    /// registry, so other nodes could not send to it.
    #[error(
        "message type {type_name} is not registered: register it in the serialization \
         registry before starting the singleton"
    )]
    NotRegistered {
        /// Rust name of the message type.
        type_name: &'static str,
    },
    /// A manager for a singleton of this name already runs on this node.
    #[error(
        "a singleton manager for {name:?} already runs on this node: start one per node and name"
    )]
    AlreadyStarted {
        /// The singleton's name.
        name: String,
    },
}

/// Checks that `M` has a manifest in `remote`'s registry.
fn check_registered<M: Send + 'static>(remote: &RemoteSystem) -> Result<(), SingletonError> {
    match remote.manifest_of::<M>() {
        Some(_) => Ok(()),
        None => Err(SingletonError::NotRegistered {
            type_name: std::any::type_name::<M>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let settings = SingletonSettings::new("counter");
        assert_eq!(settings.validate(), Ok(()));
        assert_eq!(settings.removal_margin, Duration::from_secs(20));
        assert_eq!(settings.hand_over_retry_interval, Duration::from_secs(1));
        assert_eq!(settings.buffer_size, 1000);
    }

    #[test]
    fn invalid_settings_rejected() {
        let cases = [
            (SingletonSettings::new(""), "name"),
            (SingletonSettings::new("a/b"), "name"),
            (SingletonSettings::new("s").with_role(""), "role"),
            (
                SingletonSettings::new("s").with_hand_over_retry_interval(Duration::ZERO),
                "hand_over_retry_interval",
            ),
            (
                SingletonSettings::new("s").with_buffer_size(MAX_BUFFER_SIZE + 1),
                "buffer_size",
            ),
        ];
        for (settings, expected) in cases {
            match settings.validate() {
                Err(SingletonError::InvalidSettings { field, .. }) => {
                    assert_eq!(field, expected, "{settings:?}")
                }
                other => panic!("{settings:?} gave {other:?}"),
            }
        }
    }
}
