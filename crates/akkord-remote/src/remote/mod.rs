//! Remote actor refs: an [`ActorRef<M>`] to an actor on another node behaves like a local
//! one.
//!
//! A [`RemoteSystem`] joins an [`ActorSystem`] to a [`Transport`]. Refs to actors on other
//! nodes come from [`RemoteSystem::lookup`], by the name another node gave with
//! [`RemoteSystem::expose`], or inside messages. Any `ActorRef<M>` field of a serde message
//! travels as node incarnation, actor id, path and message manifest. It arrives as a ref to
//! the same actor, or as the local ref itself when it points back home, so reply-to refs
//! and [`ActorRef::ask`] work across nodes.
//!
//! Sending on a remote ref serializes the message with the [`SerializationRegistry`] and
//! queues it on the ordinary lane, or the large lane for the recipients named in
//! [`RemoteSystemSettings::large_message_recipients`]; the sender never waits. A message
//! that cannot be sent (its type is not registered, it is too large, the queue is full, the
//! node incarnation is gone) is a dead letter with a log line. On the receiving node the
//! recipient is found by actor id and the message goes to its mailbox; a message for an
//! unknown or stopped recipient is a dead letter there, logged at debug.
//!
//! Death watch works across nodes: watching a remote ref sends a watch request as a system
//! message on the control lane, redelivered until acknowledged, and the remote node sends
//! a notification when the actor stops. While actors of a node are watched, this node also
//! sends it heartbeats and runs a phi-accrual detector ([`WatchSettings`]); when the node
//! falls silent, is quarantined, or a new incarnation replaces it at its address, every
//! watched actor of the old incarnation counts as terminated and refs to it lead to dead
//! letters.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use akkord_actor::{ActorRef, ActorSystem};
//! use akkord_remote::remote::{RemoteSystem, RemoteSystemSettings};
//! use akkord_remote::serialization::SerializationRegistry;
//!
//! fn registry() -> SerializationRegistry {
//!     let mut registry = SerializationRegistry::new();
//!     registry.register::<String>("demo.Text").unwrap();
//!     registry
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! let system_a = ActorSystem::new("demo")?;
//! let a = RemoteSystem::bind(system_a.clone(), RemoteSystemSettings::new("demo"), registry()).await?;
//! let system_b = ActorSystem::new("demo")?;
//! let b = RemoteSystem::bind(system_b.clone(), RemoteSystemSettings::new("demo"), registry()).await?;
//!
//! let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
//! let printer = ActorRef::from_fn(&system_a, "printer", move |text: String| {
//!     let _ = sender.send(text);
//! });
//! a.expose("printer", &printer)?;
//!
//! let remote: ActorRef<String> =
//!     b.lookup(&a.local_address().address, "printer", Duration::from_secs(5)).await?;
//! remote.tell("hello from b".to_owned());
//! assert_eq!(received.recv().await.as_deref(), Some("hello from b"));
//!
//! b.shutdown().await;
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod actor;
mod core;
mod extension;
mod protocol;
pub mod refs;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::remote_support::ExportedRef;
use akkord_actor::{ActorRef, ActorSystem};
use prost::Message;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::core::{Handler, RemoteCore};
use self::protocol::{LookupRequest, LOOKUP_REQUEST, PROTOCOL_RECIPIENT};
use crate::serialization::SerializationRegistry;
use crate::settings::{InvalidSetting, RemoteSettings};
use crate::transport::{lock, Destination, SendError, Transport, TransportError};
use crate::wire::UserEnvelope;
use crate::Lane;

/// Time after which an unanswered lookup request is sent again, until the lookup times out.
const LOOKUP_RESEND_INTERVAL: Duration = Duration::from_secs(1);

pub use extension::{ProtocolHandler, RegisterProtocolError};
pub use watch::WatchSettings;

/// Settings of a [`RemoteSystem`].
#[derive(Clone, Debug)]
pub struct RemoteSystemSettings {
    /// Settings of the transport underneath.
    pub transport: RemoteSettings,
    /// Remote death watch: heartbeats and failure detection of watched nodes.
    pub watch: WatchSettings,
    /// Paths of actors, such as `/user/files`, whose messages travel on the large lane,
    /// which has a bigger frame limit and its own connection, so big messages do not delay
    /// others. Default empty. Applies to refs that point at those paths on any node.
    pub large_message_recipients: Vec<String>,
}

impl RemoteSystemSettings {
    /// Creates settings with the defaults for actor system `system_name`.
    pub fn new(system_name: impl Into<String>) -> Self {
        Self {
            transport: RemoteSettings::new(system_name),
            watch: WatchSettings::default(),
            large_message_recipients: Vec::new(),
        }
    }

    /// Checks the transport and watch settings. [`RemoteSystem::bind`] calls it.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] naming the first field out of range (see
    /// [`RemoteSettings::validate`] and [`WatchSettings::validate`]).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.transport.validate()?;
        self.watch.validate()
    }
}

/// Failure to expose an actor under a name.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExposeError {
    /// The actor's message type has no manifest in the registry, so no node could send it
    /// messages.
    #[error("message type {type_name} is not registered: register it before exposing an actor that accepts it")]
    NotRegistered {
        /// Rust name of the message type.
        type_name: &'static str,
    },
    /// Another actor is exposed under the name.
    #[error("name {0:?} is already exposed: unexpose it first or choose another")]
    NameTaken(String),
}

/// Failure of [`RemoteSystem::lookup`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The requested message type has no manifest in this node's registry.
    #[error(
        "message type {type_name} is not registered: register it to look up actors that accept it"
    )]
    NotRegistered {
        /// Rust name of the message type.
        type_name: &'static str,
    },
    /// No actor is exposed under the name on the node.
    #[error("no actor is exposed as {name:?} on {address}")]
    NotFound {
        /// Address of the node asked.
        address: Address,
        /// The name.
        name: String,
    },
    /// The actor accepts another message type than the one requested.
    #[error("actor {name:?} on {address} accepts manifest {actual:?}, not {expected:?}")]
    WrongMessageType {
        /// Address of the node asked.
        address: Address,
        /// The name.
        name: String,
        /// Manifest of the requested type.
        expected: String,
        /// Manifest of the type the actor accepts.
        actual: String,
    },
    /// The request could not be sent: the node is quarantined or this transport is shut
    /// down.
    #[error("node {address} is unreachable: {source}")]
    Unreachable {
        /// Address of the node asked.
        address: Address,
        /// Reason the request was not sent.
        source: SendError,
    },
    /// No reply arrived in time: the node is down, slow, or not reachable on the network.
    #[error("lookup of {name:?} on {address} timed out after {timeout:?}")]
    Timeout {
        /// Address of the node asked.
        address: Address,
        /// The name.
        name: String,
        /// The time waited.
        timeout: Duration,
    },
}

/// Failure of [`RemoteSystem::ping`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// The heartbeat request could not be sent.
    #[error("heartbeat to {node} not sent: {source}")]
    Unreachable {
        /// The node.
        node: UniqueAddress,
        /// Reason it was not sent.
        source: SendError,
    },
    /// No response arrived in time.
    #[error("no heartbeat response from {node} within {timeout:?}")]
    Timeout {
        /// The node.
        node: UniqueAddress,
        /// The time waited.
        timeout: Duration,
    },
}

/// An actor system whose actors can be reached from other nodes, and which reaches theirs.
///
/// Cheap to clone; clones share the same transport.
#[derive(Clone)]
pub struct RemoteSystem {
    core: Arc<RemoteCore>,
    transport: Transport,
    stop: CancellationToken,
}

impl RemoteSystem {
    /// Binds the transport for `system` and starts remote death watch.
    ///
    /// `registry` names every message type sent to or received from other nodes,
    /// including the reply types of asks.
    ///
    /// # Errors
    ///
    /// Returns [`TransportError`] when the listener cannot bind or the settings are invalid.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn bind(
        system: ActorSystem,
        settings: RemoteSystemSettings,
        registry: SerializationRegistry,
    ) -> Result<Self, TransportError> {
        settings.validate()?;
        let core = RemoteCore::new(system, registry, &settings);
        let handler = Arc::new(Handler(Arc::downgrade(&core)));
        let transport = Transport::bind(settings.transport.clone(), handler).await?;
        core.set_transport(transport.clone());
        let stop = CancellationToken::new();
        tokio::spawn(run_ticks(
            Arc::downgrade(&core),
            settings.watch.heartbeat_interval,
            stop.clone(),
        ));
        Ok(Self {
            core,
            transport,
            stop,
        })
    }

    /// Returns the local actor system.
    pub fn system(&self) -> &ActorSystem {
        &self.core.system
    }

    /// Returns this node's incarnation and the address peers dial.
    pub fn local_address(&self) -> &UniqueAddress {
        self.transport.local_address()
    }

    /// Returns the transport underneath.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Makes `actor` reachable from other nodes as `name`, through [`RemoteSystem::lookup`].
    /// The name is freed when the actor stops.
    ///
    /// # Errors
    ///
    /// [`ExposeError::NotRegistered`] when `M` has no manifest in the registry;
    /// [`ExposeError::NameTaken`] when another actor is exposed under `name`.
    pub fn expose<M: Send + 'static>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), ExposeError> {
        if self
            .core
            .registry
            .manifest_of(std::any::TypeId::of::<M>())
            .is_none()
        {
            return Err(ExposeError::NotRegistered {
                type_name: std::any::type_name::<M>(),
            });
        }
        if self.core.expose(name, ExportedRef::new(actor)) {
            Ok(())
        } else {
            Err(ExposeError::NameTaken(name.to_owned()))
        }
    }

    /// Removes the name `name`; returns false when nothing was exposed under it.
    ///
    /// Refs that other nodes already hold keep working.
    pub fn unexpose(&self, name: &str) -> bool {
        self.core.unexpose(name)
    }

    /// Looks up the actor exposed as `name` on the node at `address`.
    ///
    /// Returns the local ref itself when `address` is this node.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotRegistered`] when `M` has no manifest here;
    /// [`LookupError::NotFound`] when nothing is exposed under `name`;
    /// [`LookupError::WrongMessageType`] when the actor accepts another type;
    /// [`LookupError::Unreachable`] when the request cannot be sent;
    /// [`LookupError::Timeout`] when no reply arrives within `timeout`, which includes a
    /// node that cannot be connected to. The request is sent again every second while no
    /// reply has come, so one lost on a connection that just failed does not use up the
    /// whole timeout.
    pub async fn lookup<M: Send + 'static>(
        &self,
        address: &Address,
        name: &str,
        timeout: Duration,
    ) -> Result<ActorRef<M>, LookupError> {
        let type_name = std::any::type_name::<M>();
        let expected = self
            .core
            .registry
            .manifest_of(std::any::TypeId::of::<M>())
            .ok_or(LookupError::NotRegistered { type_name })?
            .to_owned();
        let not_found = || LookupError::NotFound {
            address: address.clone(),
            name: name.to_owned(),
        };
        let wrong_type = |actual: String| LookupError::WrongMessageType {
            address: address.clone(),
            name: name.to_owned(),
            expected: expected.clone(),
            actual,
        };
        if *address == self.local_address().address {
            let (_, _, manifest, typed) = self.core.exposed(name).ok_or_else(not_found)?;
            return typed
                .downcast_ref::<ActorRef<M>>()
                .cloned()
                .ok_or_else(|| wrong_type(manifest));
        }

        let request_id = self.core.next_request_id();
        let (sender, reply) = oneshot::channel();
        lock(&self.core.lookups).insert(request_id, sender);
        let request = LookupRequest {
            request_id,
            name: name.to_owned(),
        };
        let envelope = UserEnvelope {
            recipient: PROTOCOL_RECIPIENT,
            sender: None,
            manifest: LOOKUP_REQUEST.to_owned(),
            payload: request.encode_to_vec().into(),
        };
        let destination = Destination::Address(address.clone());
        if let Err(source) = self.transport.send(&destination, Lane::Ordinary, &envelope) {
            lock(&self.core.lookups).remove(&request_id);
            return Err(LookupError::Unreachable {
                address: address.clone(),
                source,
            });
        }
        // Like any ordinary message, the request is lost when it is written just before its
        // connection turns out closed. The lookup has no effect on the other node, so it is
        // sent again until a reply arrives or the timeout passes.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reply = std::pin::pin!(reply);
        let reply = loop {
            let wait = LOOKUP_RESEND_INTERVAL.min(deadline - tokio::time::Instant::now());
            match tokio::time::timeout(wait, reply.as_mut()).await {
                Ok(reply) => break Some(reply),
                Err(_) if tokio::time::Instant::now() >= deadline => break None,
                Err(_) => {
                    if let Err(error) = self.transport.send(&destination, Lane::Ordinary, &envelope)
                    {
                        debug!(address = %address, name, %error, "lookup request not sent again");
                    }
                }
            }
        };
        lock(&self.core.lookups).remove(&request_id);
        let Some(Ok(reply)) = reply else {
            return Err(LookupError::Timeout {
                address: address.clone(),
                name: name.to_owned(),
                timeout,
            });
        };

        let data = reply.actor.ok_or_else(not_found)?;
        if reply.manifest != expected {
            return Err(wrong_type(reply.manifest));
        }
        let node = data
            .node
            .as_ref()
            .and_then(|node| UniqueAddress::try_from(node).ok())
            .ok_or_else(not_found)?;
        let actor = self
            .core
            .remote_actor(node, data.id, data.path)
            .ok_or_else(not_found)?;
        Ok(ActorRef::from_external(actor))
    }

    /// Measures one round trip of a heartbeat on the control lane to `node`.
    ///
    /// # Errors
    ///
    /// [`PingError::Unreachable`] when the request cannot be sent, [`PingError::Timeout`]
    /// when no response arrives within `timeout`.
    pub async fn ping(
        &self,
        node: &UniqueAddress,
        timeout: Duration,
    ) -> Result<Duration, PingError> {
        let nonce = self.core.next_request_id();
        let (sender, response) = oneshot::channel();
        lock(&self.core.pings).insert(nonce, sender);
        let started = Instant::now();
        if let Err(source) = self
            .transport
            .send_heartbeat(&Destination::Node(node.clone()), nonce)
        {
            lock(&self.core.pings).remove(&nonce);
            return Err(PingError::Unreachable {
                node: node.clone(),
                source,
            });
        }
        let response = tokio::time::timeout(timeout, response).await;
        lock(&self.core.pings).remove(&nonce);
        match response {
            Ok(Ok(())) => Ok(started.elapsed()),
            _ => Err(PingError::Timeout {
                node: node.clone(),
                timeout,
            }),
        }
    }

    /// Stops death watch and the transport. Refs to remote actors lead to dead letters
    /// afterwards.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.transport.shutdown().await;
    }
}

impl std::fmt::Debug for RemoteSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSystem")
            .field("local", self.local_address())
            .finish_non_exhaustive()
    }
}

/// Runs death watch ticks every `interval` until `stop` is cancelled or the system is gone.
async fn run_ticks(core: std::sync::Weak<RemoteCore>, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(core) = core.upgrade() else {
            return;
        };
        core.tick(Instant::now());
    }
}
