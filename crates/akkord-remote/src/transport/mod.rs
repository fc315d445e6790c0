//! TCP transport: listener, associations with three lanes, outbound queues and inbound
//! dispatch.
//!
//! Each lane of an association is a separate TCP connection. A lane connects on its first
//! message, performs the handshake and then writes batches of queued frames. The handshake
//! also offers the connection for the other direction (`duplex`). A peer that has no
//! connection of its own on that lane then writes its frames back on this one, and this
//! node dispatches them like those of an inbound connection. So a request and its reply
//! travel on one connection, which saves the peer a connection and each side a TCP
//! acknowledgement of its own per message. A lane that
//! took a peer's connection connects by itself again once that connection closes. On an
//! idle plain TCP lane, a sender writes a lone frame itself (see `queue`). A lost
//! connection reconnects with exponential backoff while messages wait in the bounded
//! queue; a full queue drops new messages and counts them, so a slow or stuck peer never
//! blocks callers or other associations.
//!
//! An association lives while an incarnation at its address may still be talked to. Once
//! an incarnation there is quarantined and [`RemoteSettings::remove_quarantined_after`]
//! passes without another incarnation there being used, the association is removed: its
//! lane tasks and resend ticker stop, its connections close, and what was still queued is
//! dropped and counted as stale. A later send to the address starts a new one.
//!
//! Inbound connections are checked by [`crate::handshake::InboundHandshake`] within the
//! handshake timeout, then their frames are decoded and handed to the [`InboundHandler`].
//! A malformed frame closes only that connection, with a warning naming the peer.

mod cancel;
mod inbound;
mod outbound;
mod queue;
mod stream;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use akkord_actor::address::{Address, AddressError, UniqueAddress};
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::frame::Lane;
use crate::handshake::HandshakeAcceptor;
use crate::redelivery::SystemMessageReceiver;
use crate::settings::{InvalidSetting, RemoteSettings};
use crate::tls::TlsError;
use crate::wire::{
    encode_user_envelope, user_envelope_len, ControlFrame, ControlMessage, HeartbeatRequest,
    UserEnvelope,
};

pub use inbound::UserRun;
use outbound::{Association, Unqueued};
use stream::{LaneSink, OfferedLink};

/// Receiver of inbound messages and transport events.
///
/// Methods are called from the transport's connection tasks and must return quickly without
/// blocking: hand the message to a channel or mailbox and return.
pub trait InboundHandler: Send + Sync + 'static {
    /// Handles a user message from the incarnation `from`, received on `lane`.
    fn on_user_message(&self, from: &UniqueAddress, lane: Lane, envelope: UserEnvelope);

    /// Handles consecutive user messages without a sender from the incarnation `from`,
    /// received on `lane`, all for `recipient` and of `manifest`. `first` is the payload of
    /// the first, and `rest` yields the payloads of those that follow it in the read buffer.
    ///
    /// The transport calls this in place of [`InboundHandler::on_user_message`] for the
    /// messages of the ordinary and large lanes that carry no sender. Payloads borrow the
    /// connection's read buffer. Messages not taken from `rest` come in a later call. The
    /// default copies each message into a [`UserEnvelope`] and calls `on_user_message`. A
    /// handler that decodes payloads at once can override it to save those copies, and to
    /// look the recipient and manifest up once for all of them.
    fn on_user_run(
        &self,
        from: &UniqueAddress,
        lane: Lane,
        recipient: u64,
        manifest: &str,
        first: &[u8],
        rest: &mut UserRun<'_>,
    ) {
        each_envelope(recipient, manifest, first, rest, |envelope| {
            self.on_user_message(from, lane, envelope);
        });
    }

    /// Handles a system message from `from`.
    ///
    /// Per pair of incarnations, each system message is delivered once and in the order
    /// sent, and every one arrives unless the sender quarantines the peer first.
    fn on_system_message(&self, from: &UniqueAddress, envelope: UserEnvelope) {
        let _ = (from, envelope);
    }

    /// Handles a heartbeat response from `from` to a request sent with
    /// [`Transport::send_heartbeat`].
    fn on_heartbeat_response(&self, from: &UniqueAddress, nonce: u64) {
        let _ = (from, nonce);
    }

    /// Handles a transport event.
    fn on_event(&self, event: TransportEvent) {
        let _ = event;
    }
}

/// Lifecycle events of associations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A handshake with the node at `address` reached incarnation `new` in place of `old`.
    IncarnationChanged {
        /// Address of the node.
        address: Address,
        /// Incarnation uid this node talked to or expected before.
        old: u64,
        /// Incarnation uid now at the address.
        new: u64,
    },
    /// This node quarantined `peer`.
    Quarantined {
        /// The quarantined incarnation.
        peer: UniqueAddress,
        /// Reason for the quarantine.
        reason: String,
    },
    /// `peer` reported that it quarantined this node.
    QuarantinedByPeer {
        /// The peer incarnation that sent the notice.
        peer: UniqueAddress,
        /// The reason the peer gave.
        reason: String,
    },
}

/// Copies `first` and the payloads `rest` yields into envelopes without a sender for
/// `recipient`, and passes each to `each`.
pub(crate) fn each_envelope(
    recipient: u64,
    manifest: &str,
    first: &[u8],
    rest: &mut UserRun<'_>,
    mut each: impl FnMut(UserEnvelope),
) {
    let mut copy = |payload: &[u8]| {
        let payload = bytes::Bytes::copy_from_slice(payload);
        each(UserEnvelope::without_sender(recipient, manifest, payload));
    };
    copy(first);
    rest.for_each(copy);
}

/// The association of one destination, looked up on the first send and kept for the next.
///
/// A cached association that was removed rejects frames, so the sender then looks up the
/// current one.
#[derive(Default)]
pub(crate) struct RouteCache(OnceLock<Arc<Association>>);

/// Destination of an outbound message: one incarnation, or whichever lives at an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A specific incarnation. The message is dropped when another incarnation lives at the
    /// address.
    Node(UniqueAddress),
    /// The current incarnation at an address, as learned in the handshake.
    Address(Address),
}

impl Destination {
    /// Returns the address of the destination.
    pub fn address(&self) -> &Address {
        match self {
            Destination::Node(node) => &node.address,
            Destination::Address(address) => address,
        }
    }

    fn uid(&self) -> Option<u64> {
        match self {
            Destination::Node(node) => Some(node.uid),
            Destination::Address(_) => None,
        }
    }
}

/// Failure to bind the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Binding the listener failed.
    #[error("failed to bind the remote listener on {bind}: {source}")]
    Bind {
        /// Requested bind address.
        bind: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The bind address is a wildcard and no canonical host is set.
    #[error("bind address {0} is a wildcard: set canonical_host to the address peers should dial")]
    CanonicalHostRequired(SocketAddr),
    /// The system name or canonical host is invalid.
    #[error("invalid local address: {0}")]
    Address(#[from] AddressError),
    /// The TLS settings are invalid.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A setting is out of range; nothing was bound.
    #[error(transparent)]
    InvalidSettings(#[from] InvalidSetting),
}

/// Failure to queue an outbound message. The message was not sent.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The destination incarnation is quarantined.
    #[error("peer {0} is quarantined: messages to it are dropped")]
    Quarantined(UniqueAddress),
    /// The destination incarnation is gone: another incarnation lives at its address.
    #[error("peer {peer} is gone: incarnation {current} now lives at its address")]
    IncarnationGone {
        /// The requested incarnation.
        peer: UniqueAddress,
        /// The incarnation now at the address.
        current: u64,
    },
    /// The encoded message exceeds the lane's maximum frame length.
    #[error("message of {len} bytes exceeds the {lane} lane maximum of {max} bytes: send it on the large lane or split it")]
    FrameTooLarge {
        /// Lane the message was sent on.
        lane: Lane,
        /// Encoded length.
        len: usize,
        /// Maximum frame length of the lane.
        max: usize,
    },
    /// The lane's outbound queue is full; the message was dropped and counted.
    #[error("outbound {lane} queue to {address} is full: message dropped")]
    QueueFull {
        /// Address of the destination.
        address: Address,
        /// Lane whose queue is full.
        lane: Lane,
    },
    /// The destination is this node.
    #[error("destination {0} is this node: deliver local messages locally")]
    LocalDestination(Address),
    /// The transport is shut down.
    #[error("transport is shut down")]
    ShutDown,
}

/// Counters of the transport, read with [`Transport::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages dropped because a lane queue was full, per lane in [`Lane::ALL`] order.
    pub dropped_queue_full: [u64; 3],
    /// Messages dropped before writing because their incarnation was gone or quarantined.
    pub dropped_stale: u64,
    /// Frames written, per lane.
    pub frames_sent: [u64; 3],
    /// Writes to the socket, per lane: batches by the lane writer and single frames that
    /// senders wrote to an idle lane themselves.
    pub batches_sent: [u64; 3],
    /// Frames received and decoded, per lane.
    pub frames_received: [u64; 3],
    /// Inbound connections closed for a failed handshake or a malformed frame, and
    /// outbound connections closed because the peer wrote a malformed frame back.
    pub inbound_rejected: u64,
    /// Connections this node opened to peers and completed a handshake on, per lane.
    pub connections_opened: [u64; 3],
    /// Connections that peers opened to this node and that a lane writer took to send to
    /// that peer instead of opening one, per lane.
    pub connections_taken: [u64; 3],
    /// Remote addresses this node keeps an association with: each it has sent anything to,
    /// acknowledgements included, until the association is removed a while after a
    /// quarantine ([`RemoteSettings::remove_quarantined_after`]).
    pub associations: u64,
}

/// Handle of a running transport; clones share the same transport.
///
/// The transport's tasks run until [`Transport::shutdown`]; dropping the handles does not
/// stop them.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// use akkord_actor::address::UniqueAddress;
/// use akkord_remote::wire::UserEnvelope;
/// use akkord_remote::{Destination, InboundHandler, Lane, RemoteSettings, Transport};
/// use tokio::sync::mpsc;
///
/// struct Inbox(mpsc::UnboundedSender<UserEnvelope>);
///
/// impl InboundHandler for Inbox {
///     fn on_user_message(&self, _from: &UniqueAddress, _lane: Lane, envelope: UserEnvelope) {
///         let _ = self.0.send(envelope);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (sender, mut received) = mpsc::unbounded_channel();
/// let alice = Transport::bind(RemoteSettings::new("demo"), Arc::new(Inbox(sender))).await?;
/// let (unused, _) = mpsc::unbounded_channel();
/// let bob = Transport::bind(RemoteSettings::new("demo"), Arc::new(Inbox(unused))).await?;
///
/// let to_alice = Destination::Node(alice.local_address().clone());
/// let message = UserEnvelope { recipient: 1, manifest: "hello".into(), ..Default::default() };
/// bob.send(&to_alice, Lane::Ordinary, &message)?;
/// assert_eq!(received.recv().await.map(|m| m.manifest), Some("hello".to_owned()));
///
/// bob.shutdown().await;
/// alice.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    /// Binds the listener and starts accepting connections.
    ///
    /// Must be called within a tokio runtime, which runs the transport's tasks.
    ///
    /// # Errors
    ///
    /// Returns [`TransportError`] when a setting is out of range
    /// ([`RemoteSettings::validate`]), the bind fails, or the local address or the TLS
    /// settings are invalid.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn bind(
        settings: RemoteSettings,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<Self, TransportError> {
        settings.validate()?;
        let listener =
            TcpListener::bind(settings.bind)
                .await
                .map_err(|source| TransportError::Bind {
                    bind: settings.bind,
                    source,
                })?;
        let bound = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                bind: settings.bind,
                source,
            })?;
        let host = match &settings.canonical_host {
            Some(host) => host.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(TransportError::CanonicalHostRequired(bound))
            }
            None => bound.ip().to_string(),
        };
        let address = Address::new(settings.system_name.clone(), host, bound.port())?;
        let local = UniqueAddress::new(address, settings.uid.unwrap_or_else(rand::random));
        let tls = settings.tls.as_ref().map(|tls| tls.build()).transpose()?;
        let inner = Arc::new(Inner {
            acceptor: HandshakeAcceptor::new(local.clone(), settings.secret.clone()),
            local,
            settings,
            handler,
            runtime: tokio::runtime::Handle::current(),
            tls,
            associations: Mutex::new(HashMap::new()),
            quarantined: Mutex::new(HashSet::new()),
            any_quarantined: AtomicBool::new(false),
            receivers: Mutex::new(HashMap::new()),
            inbound_peers: Mutex::new(HashMap::new()),
            offered_links: Mutex::new(HashMap::new()),
            next_link_id: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            shut_down: AtomicBool::new(false),
            counters: Counters::default(),
            accept_task: Mutex::new(None),
        });
        info!(node = %inner.local, listen = %bound, "remote transport started");
        let accept_task = inner
            .runtime
            .spawn(inbound::accept_loop(inner.clone(), listener));
        *lock(&inner.accept_task) = Some(accept_task);
        Ok(Self { inner })
    }

    /// Returns this node's incarnation, with the address peers dial.
    pub fn local_address(&self) -> &UniqueAddress {
        &self.inner.local
    }

    /// Queues a user message to `to` on `lane`.
    ///
    /// Never waits: a full queue drops the message.
    ///
    /// # Errors
    ///
    /// Returns [`SendError`] when the message was not queued: the destination is quarantined,
    /// gone or this node, the message is too large for the lane, the queue is full, or the
    /// transport is shut down.
    pub fn send(
        &self,
        to: &Destination,
        lane: Lane,
        envelope: &UserEnvelope,
    ) -> Result<(), SendError> {
        if lane == Lane::Control {
            let frame = ControlFrame {
                message: Some(ControlMessage::User(envelope.clone())),
            };
            return self.inner.send_control(to, &frame);
        }
        let max = self.inner.settings.max_frame_len(lane);
        let len = prost::Message::encoded_len(envelope);
        if len > max {
            return Err(SendError::FrameTooLarge { lane, len, max });
        }
        self.inner.queue_to(to, |association| {
            association.enqueue(&self.inner, lane, to.uid(), len, |buffer| {
                prost::Message::encode_raw(envelope, buffer)
            })
        })
    }

    /// Queues a user message without a sender, encoded from its parts: as [`Transport::send`]
    /// without building a [`UserEnvelope`]. `route` keeps the association of `to` for the
    /// next send to the same incarnation. Once that association is removed, every send
    /// looks up the current one.
    pub(crate) fn send_parts(
        &self,
        to: &UniqueAddress,
        route: &RouteCache,
        lane: Lane,
        recipient: u64,
        manifest: &str,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if lane == Lane::Control {
            let payload = bytes::Bytes::copy_from_slice(payload);
            let envelope = UserEnvelope::without_sender(recipient, manifest, payload);
            return self.send(&Destination::Node(to.clone()), lane, &envelope);
        }
        let max = self.inner.settings.max_frame_len(lane);
        let len = user_envelope_len(recipient, manifest, payload);
        if len > max {
            return Err(SendError::FrameTooLarge { lane, len, max });
        }
        let encode = |buffer: &mut bytes::BytesMut| {
            encode_user_envelope(recipient, manifest, payload, buffer)
        };
        if let Some(association) = route.0.get() {
            self.inner.check_node(to)?;
            match association.enqueue(&self.inner, lane, Some(to.uid), len, encode) {
                Ok(()) => return Ok(()),
                Err(Unqueued::Failed(error)) => return Err(error),
                Err(Unqueued::Removed) => {}
            }
        }
        self.inner
            .queue_to(&Destination::Node(to.clone()), |association| {
                route.0.get_or_init(|| association.clone());
                association.enqueue(&self.inner, lane, Some(to.uid), len, encode)
            })
    }

    /// Sends a system message to incarnation `to` with exactly-once, in-order delivery.
    ///
    /// The message is kept and resent until acknowledged; when the redelivery buffer
    /// overflows the peer is quarantined.
    ///
    /// # Errors
    ///
    /// Returns [`SendError`] when the destination is quarantined, gone or this node, the
    /// message is too large for the control lane, or the transport is shut down.
    pub fn send_system(&self, to: &UniqueAddress, envelope: UserEnvelope) -> Result<(), SendError> {
        self.inner
            .queue_to(&Destination::Node(to.clone()), |association| {
                association.send_system(&self.inner, to, envelope.clone())
            })
    }

    /// Sends a heartbeat request to `to` on the control lane; the response arrives at
    /// [`InboundHandler::on_heartbeat_response`].
    ///
    /// # Errors
    ///
    /// As for [`Transport::send`].
    pub fn send_heartbeat(&self, to: &Destination, nonce: u64) -> Result<(), SendError> {
        let frame = ControlFrame {
            message: Some(ControlMessage::Heartbeat(HeartbeatRequest { nonce })),
        };
        self.inner.send_control(to, &frame)
    }

    /// Quarantines incarnation `peer`: this node never talks to it again. A new incarnation
    /// at the same address is accepted.
    pub fn quarantine(&self, peer: &UniqueAddress, reason: &str) {
        self.inner.quarantine(peer, reason);
    }

    /// Returns true when `peer` is quarantined.
    pub fn is_quarantined(&self, peer: &UniqueAddress) -> bool {
        self.inner.is_quarantined(peer)
    }

    /// Returns the number of system messages to the incarnation at `address` that wait for
    /// an acknowledgement.
    pub fn unacked_system_messages(&self, address: &Address) -> usize {
        self.inner
            .association(address)
            .map_or(0, |association| association.unacked_system_messages())
    }

    /// Returns the unacknowledged system messages to the incarnation at `address`, oldest
    /// first.
    #[cfg(test)]
    pub(crate) fn unacked_system_envelopes(&self, address: &Address) -> Vec<UserEnvelope> {
        self.inner
            .association(address)
            .map_or_else(Vec::new, |association| {
                association.unacked_system_envelopes()
            })
    }

    /// Returns a snapshot of the transport's counters.
    pub fn stats(&self) -> TransportStats {
        let mut stats = self.inner.counters.snapshot();
        stats.associations = self.inner.association_count();
        stats
    }

    /// Stops the listener and every connection task; returns when the listening socket is
    /// closed, so the port can be bound again. Queued messages are dropped.
    pub async fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::Release);
        if !self.inner.shutdown.is_cancelled() {
            info!(node = %self.inner.local, "remote transport stopped");
        }
        self.inner.shutdown.cancel();
        let accept_task = lock(&self.inner.accept_task).take();
        if let Some(accept_task) = accept_task {
            let _ = accept_task.await;
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) local: UniqueAddress,
    pub(crate) settings: RemoteSettings,
    pub(crate) handler: Arc<dyn InboundHandler>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) tls: Option<(TlsAcceptor, TlsConnector)>,
    pub(crate) acceptor: HandshakeAcceptor,
    /// Association of each remote address. One association may be listed under two
    /// addresses (see [`Inner::alias`]). An association is removed a while after a
    /// quarantine, when no incarnation at its address is talked to any more.
    associations: Mutex<HashMap<Address, Arc<Association>>>,
    quarantined: Mutex<HashSet<UniqueAddress>>,
    /// True once `quarantined` has an entry. Until then quarantine checks skip its lock.
    any_quarantined: AtomicBool,
    pub(crate) receivers: Mutex<HashMap<UniqueAddress, SystemMessageReceiver>>,
    /// Peer incarnations with open inbound connections. An entry leaves with the last one.
    inbound_peers: Mutex<HashMap<UniqueAddress, InboundPeer>>,
    /// Per peer address and lane, the latest inbound connection whose peer reads frames
    /// written back on it, until a lane writer takes it or it closes.
    offered_links: Mutex<HashMap<(Address, Lane), OfferedLink>>,
    next_link_id: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    /// Set by [`Transport::shutdown`] before `shutdown` is cancelled, so sends check a flag
    /// rather than the token's lock.
    shut_down: AtomicBool,
    pub(crate) counters: Counters,
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    /// Returns an error when the transport is shut down or `node` is quarantined.
    fn check_node(&self, node: &UniqueAddress) -> Result<(), SendError> {
        if self.is_shut_down() {
            return Err(SendError::ShutDown);
        }
        if self.is_quarantined(node) {
            return Err(SendError::Quarantined(node.clone()));
        }
        Ok(())
    }

    fn association_for(self: &Arc<Self>, to: &Destination) -> Result<Arc<Association>, SendError> {
        if self.is_shut_down() {
            return Err(SendError::ShutDown);
        }
        if let Destination::Node(node) = to {
            self.check_node(node)?;
        }
        let address = to.address();
        if *address == self.local.address {
            return Err(SendError::LocalDestination(address.clone()));
        }
        let mut associations = lock(&self.associations);
        if let Some(association) = associations.get(address) {
            if !association.is_removed() {
                return Ok(association.clone());
            }
        }
        let association = Association::start(self, address.clone());
        associations.insert(address.clone(), association.clone());
        Ok(association)
    }

    /// Queues a frame to `to` with `queue`, which is given the association of `to`. When
    /// that association was removed in the meantime, it gives the frame to the successor.
    fn queue_to(
        self: &Arc<Self>,
        to: &Destination,
        queue: impl Fn(&Arc<Association>) -> Result<(), Unqueued>,
    ) -> Result<(), SendError> {
        loop {
            // The loop ends: a new association is removed only after a quarantine of its
            // own, so the second lookup finds one that takes the frame.
            let association = self.association_for(to)?;
            match queue(&association) {
                Ok(()) => return Ok(()),
                Err(Unqueued::Failed(error)) => return Err(error),
                Err(Unqueued::Removed) => {}
            }
        }
    }

    /// Registers `association` under a second address, unless one is registered there or
    /// the association was removed.
    pub(crate) fn alias(&self, address: &Address, association: &Arc<Association>) {
        let mut associations = lock(&self.associations);
        if association.is_removed() {
            return;
        }
        associations
            .entry(address.clone())
            .and_modify(|registered| {
                if registered.is_removed() {
                    *registered = association.clone();
                }
            })
            .or_insert_with(|| association.clone());
    }

    pub(crate) fn association(&self, address: &Address) -> Option<Arc<Association>> {
        lock(&self.associations)
            .get(address)
            .filter(|association| !association.is_removed())
            .cloned()
    }

    /// Returns the number of associations, counting one listed under two addresses once.
    fn association_count(&self) -> u64 {
        let associations = lock(&self.associations);
        let distinct: HashSet<*const Association> =
            associations.values().map(Arc::as_ptr).collect();
        distinct.len() as u64
    }

    pub(crate) fn send_control(
        self: &Arc<Self>,
        to: &Destination,
        frame: &ControlFrame,
    ) -> Result<(), SendError> {
        let max = self.settings.control_frame_max;
        let len = prost::Message::encoded_len(frame);
        if len > max {
            return Err(SendError::FrameTooLarge {
                lane: Lane::Control,
                len,
                max,
            });
        }
        self.queue_to(to, |association| {
            association.enqueue(self, Lane::Control, to.uid(), len, |buffer| {
                prost::Message::encode_raw(frame, buffer)
            })
        })
    }

    /// Returns true once [`Transport::shutdown`] was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn is_quarantined(&self, peer: &UniqueAddress) -> bool {
        self.any_quarantined.load(Ordering::Acquire) && lock(&self.quarantined).contains(peer)
    }

    pub(crate) fn quarantine(self: &Arc<Self>, peer: &UniqueAddress, reason: &str) {
        {
            let mut quarantined = lock(&self.quarantined);
            if !quarantined.insert(peer.clone()) {
                return;
            }
            self.any_quarantined.store(true, Ordering::Release);
        }
        warn!(peer = %peer, reason, "quarantined peer incarnation");
        self.forget_inbound(peer);
        if let Some(association) = self.association(&peer.address) {
            association.quarantine(self, peer, reason);
        }
        self.handler.on_event(TransportEvent::Quarantined {
            peer: peer.clone(),
            reason: reason.to_owned(),
        });
    }

    /// Closes the inbound connections of `peer` and drops the state of its system messages,
    /// because it is quarantined or a newer incarnation replaced it.
    pub(crate) fn forget_inbound(&self, peer: &UniqueAddress) {
        if let Some(inbound) = lock(&self.inbound_peers).remove(peer) {
            inbound.closed.cancel();
        }
        lock(&self.receivers).remove(peer);
    }

    /// Registers an inbound connection of `peer`, which must close when the returned token
    /// is cancelled. Returns `None` when `peer` is quarantined.
    pub(crate) fn open_inbound(
        self: &Arc<Self>,
        peer: &UniqueAddress,
    ) -> Option<InboundConnection> {
        let mut peers = lock(&self.inbound_peers);
        // Checked under the lock that `quarantine` takes after marking the peer: either the
        // mark is visible here, or the quarantine cancels the token registered here.
        if self.is_quarantined(peer) {
            return None;
        }
        let entry = peers.entry(peer.clone()).or_insert_with(|| InboundPeer {
            closed: self.shutdown.child_token(),
            connections: 0,
        });
        entry.connections += 1;
        Some(InboundConnection {
            inner: self.clone(),
            peer: peer.clone(),
            closed: entry.closed.clone(),
        })
    }

    /// Offers the write half of an inbound connection on `lane` to the lane writer of the
    /// association with the connection's peer, in place of an earlier offer. Returns the
    /// offer's id, for [`Inner::withdraw_link`].
    pub(crate) fn offer_link(
        &self,
        lane: Lane,
        peer: UniqueAddress,
        sink: LaneSink,
        closed: CancellationToken,
    ) -> u64 {
        let id = self.next_link_id.fetch_add(1, Ordering::Relaxed);
        let key = (peer.address.clone(), lane);
        let link = OfferedLink {
            id,
            peer,
            sink,
            closed,
        };
        lock(&self.offered_links).insert(key, link);
        id
    }

    /// Withdraws offer `id` for `peer` and `lane`, unless a lane writer took it or a later
    /// offer replaced it.
    pub(crate) fn withdraw_link(&self, peer: &UniqueAddress, lane: Lane, id: u64) {
        let mut offered = lock(&self.offered_links);
        let key = (peer.address.clone(), lane);
        if offered.get(&key).is_some_and(|link| link.id == id) {
            offered.remove(&key);
        }
    }

    /// Takes the offer for `address` and `lane` when `accept` accepts it. An offer whose
    /// connection closed is dropped.
    pub(crate) fn take_link(
        &self,
        address: &Address,
        lane: Lane,
        accept: impl FnOnce(&OfferedLink) -> bool,
    ) -> Option<OfferedLink> {
        let mut offered = lock(&self.offered_links);
        let key = (address.clone(), lane);
        let link = offered.get(&key)?;
        if link.closed.is_cancelled() {
            offered.remove(&key);
            return None;
        }
        if !accept(link) {
            return None;
        }
        offered.remove(&key)
    }

    /// Returns the number of offered connections not taken yet.
    #[cfg(test)]
    pub(crate) fn offered_link_count(&self) -> usize {
        lock(&self.offered_links).len()
    }
}

/// Inbound connections of one peer incarnation.
struct InboundPeer {
    /// Cancelled when the peer is quarantined or the transport shuts down.
    closed: CancellationToken,
    /// Open inbound connections of the peer.
    connections: usize,
}

/// Registration of one open inbound connection; dropping it ends the registration.
pub(crate) struct InboundConnection {
    inner: Arc<Inner>,
    peer: UniqueAddress,
    /// Cancelled when the connection must close.
    pub(crate) closed: CancellationToken,
}

impl Drop for InboundConnection {
    fn drop(&mut self) {
        // A cancelled registration was removed by a quarantine, or ends with the transport.
        if self.closed.is_cancelled() {
            return;
        }
        let mut peers = lock(&self.inner.inbound_peers);
        if let Some(entry) = peers.get_mut(&self.peer) {
            entry.connections -= 1;
            if entry.connections == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) dropped_queue_full: [AtomicU64; 3],
    pub(crate) dropped_stale: AtomicU64,
    pub(crate) frames_sent: [AtomicU64; 3],
    pub(crate) batches_sent: [AtomicU64; 3],
    pub(crate) frames_received: [AtomicU64; 3],
    pub(crate) inbound_rejected: AtomicU64,
    pub(crate) connections_opened: [AtomicU64; 3],
    pub(crate) connections_taken: [AtomicU64; 3],
}

impl Counters {
    fn snapshot(&self) -> TransportStats {
        let read =
            |counters: &[AtomicU64; 3]| counters.each_ref().map(|c| c.load(Ordering::Relaxed));
        TransportStats {
            dropped_queue_full: read(&self.dropped_queue_full),
            dropped_stale: self.dropped_stale.load(Ordering::Relaxed),
            frames_sent: read(&self.frames_sent),
            batches_sent: read(&self.batches_sent),
            frames_received: read(&self.frames_received),
            inbound_rejected: self.inbound_rejected.load(Ordering::Relaxed),
            connections_opened: read(&self.connections_opened),
            connections_taken: read(&self.connections_taken),
            associations: 0,
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
