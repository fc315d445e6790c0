//! The receptionist made cluster-wide.
//!
//! After [`ClusterReceptionist::start`], `system.receptionist()` on this node lists the
//! registrations of every reachable member as well as the local ones, for keys whose
//! message type is registered for serialization on both nodes. The local API does not
//! change: [`Receptionist::register`](akkord_actor::Receptionist::register),
//! `find` and `subscribe` work as before, and subscribers get a new listing when a remote
//! registration appears or vanishes.
//!
//! Replication: each node owns the set of its own registrations (key name, message
//! manifest and encoded actor ref) with a version that grows with every change. A change
//! pushes the whole set to the other members; every
//! [`gossip_interval`](ClusterReceptionistSettings::gossip_interval) each node sends its
//! version to the others, and a node that has an older version requests the set. The
//! messages travel on the control lane without acknowledgement, so the periodic exchange
//! is what repairs loss. The protocol logic is a sans-IO core. This module is the shell
//! that feeds it from the transport, the cluster events and the local receptionist.
//!
//! Guarantees and limits:
//!
//! - The registrations of a member disappear on every node when it becomes unreachable,
//!   and come back when it is reachable again. They are dropped when it is downed, leaves
//!   the member list or is removed.
//! - Input from a node that is not a member (status Joining, or not known yet) is ignored;
//!   the next exchange after it becomes a member brings its set.
//! - A registration whose message type has no manifest in the serialization registry stays
//!   local, with one debug line per key and type. An inbound registration with a manifest
//!   this node does not know is dropped with a debug line.
//! - A registered actor that stops is removed by the local receptionist, and that change
//!   replicates like any other.

mod core;
mod wire;

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;
use akkord_actor::remote_support::{ExternalActor, ImportedRef};
use akkord_actor::{ActorSystem, Receptionist};
use akkord_cluster::member::MemberStatus;
use akkord_cluster::shell::{Cluster, ClusterState};
use akkord_remote::remote::refs::{DecodedRef, RefCodecError};
use akkord_remote::remote::RegisterProtocolError;
use akkord_remote::{Destination, Lane, RemoteSystem};
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tracing::{debug, trace, warn};

use self::core::{Outputs, ReplicationCore};
use self::wire::{EntryData, ReplicationMessage, RECEPTIONIST_PROTOCOL_MANIFEST};

/// Capacity of the queue between the transport's connection tasks and the replication
/// task. A message that finds it full is dropped, and the periodic exchange repairs that.
const INBOUND_QUEUE: usize = 1024;

/// Settings of the [`ClusterReceptionist`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterReceptionistSettings {
    /// Time between two rounds in which a node sends the version of its set to every
    /// other member. Default 2 s, the default of
    /// `akka.cluster.distributed-data.gossip-interval` in Akka's `reference.conf`, which
    /// Akka's cluster receptionist inherits. A shorter interval repairs lost updates sooner
    /// at the cost of one small message per member and round. It must be greater than
    /// zero.
    pub gossip_interval: Duration,
}

impl Default for ClusterReceptionistSettings {
    fn default() -> Self {
        Self {
            gossip_interval: Duration::from_secs(2),
        }
    }
}

/// Failure of [`ClusterReceptionist::start`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceptionistError {
    /// The settings name a zero gossip interval.
    #[error("gossip interval must be greater than zero, got {0:?}: set a positive interval")]
    InvalidGossipInterval(Duration),
    /// A cluster receptionist already runs on this remote system, possibly started by
    /// [`DistributedPubSub::start`](crate::pubsub::DistributedPubSub::start); nothing was
    /// changed.
    #[error("a cluster receptionist already runs on this node: start it once per node")]
    AlreadyStarted,
}

/// Handle of the replication task that makes this node's receptionist cluster-wide.
///
/// The task runs until the actor system terminates or [`ClusterReceptionist::stop`] is
/// called; dropping the handle does not stop it.
///
/// # Example
///
/// ```no_run
/// use akkord_actor::{ActorRef, ActorSystem, ServiceKey};
/// use akkord_cluster::shell::{Cluster, ClusterSettings};
/// use akkord_cluster_tools::receptionist::{ClusterReceptionist, ClusterReceptionistSettings};
/// use akkord_remote::remote::{RemoteSystem, RemoteSystemSettings};
/// use akkord_remote::serialization::SerializationRegistry;
///
/// # #[tokio::main]
/// # async fn main() -> anyhow::Result<()> {
/// let mut registry = SerializationRegistry::new();
/// registry.register::<String>("demo.Text")?;
/// let system = ActorSystem::new("demo")?;
/// let remote =
///     RemoteSystem::bind(system.clone(), RemoteSystemSettings::new("demo"), registry).await?;
/// let cluster = Cluster::start(&system, &remote, ClusterSettings::default())?;
/// cluster.join(remote.local_address().address.clone())?;
/// let _receptionist = ClusterReceptionist::start(
///     &system,
///     &remote,
///     &cluster,
///     ClusterReceptionistSettings::default(),
/// )?;
///
/// let printer = ActorRef::from_fn(&system, "printer", |text: String| println!("{text}"));
/// let key = ServiceKey::<String>::new("printer");
/// system.receptionist().register(&key, &printer);
/// // Other members now find `printer` under `key`.
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ClusterReceptionist {
    stop: Arc<watch::Sender<bool>>,
}

impl ClusterReceptionist {
    /// Starts replicating the registrations of `system`'s receptionist with the other
    /// members of `cluster`.
    ///
    /// After this, `system.receptionist()` on this node lists the registrations of every
    /// reachable member for keys whose message type is registered for serialization.
    ///
    /// # Errors
    ///
    /// [`ReceptionistError::InvalidGossipInterval`] for a zero interval,
    /// [`ReceptionistError::AlreadyStarted`] when a cluster receptionist already runs on
    /// `remote`.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start(
        system: &ActorSystem,
        remote: &RemoteSystem,
        cluster: &Cluster,
        settings: ClusterReceptionistSettings,
    ) -> Result<Self, ReceptionistError> {
        if settings.gossip_interval.is_zero() {
            return Err(ReceptionistError::InvalidGossipInterval(
                settings.gossip_interval,
            ));
        }
        let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
        let handler = Arc::new(move |from: &UniqueAddress, payload: Bytes| {
            if inbound_sender.try_send((from.clone(), payload)).is_err() {
                debug!(
                    peer = %from,
                    "dropped receptionist message: inbound queue full or replication stopped"
                );
            }
        });
        remote
            .register_protocol(RECEPTIONIST_PROTOCOL_MANIFEST, handler)
            .map_err(|RegisterProtocolError::ManifestTaken(_)| ReceptionistError::AlreadyStarted)?;

        let local_changed = Arc::new(Notify::new());
        let notify = Arc::clone(&local_changed);
        system
            .receptionist()
            .set_local_change_listener(Arc::new(move || notify.notify_one()));

        let (stop, stopped) = watch::channel(false);
        let (snapshot, events) = cluster.subscribe();
        let shell = Shell {
            core: ReplicationCore::new(remote.local_address().clone(), settings.gossip_interval),
            system: system.clone(),
            remote: remote.clone(),
            cluster: cluster.clone(),
            logged_local_only: HashSet::new(),
            logged_non_members: HashSet::new(),
        };
        tokio::spawn(shell.run(snapshot, events, inbound, local_changed, stopped));
        Ok(Self {
            stop: Arc::new(stop),
        })
    }

    /// Stops replication: the registrations of other nodes are removed from this node's
    /// receptionist and local changes are no longer sent. Other nodes keep this node's
    /// last set while it stays a member.
    ///
    /// NOTE: the protocol handler stays registered on the remote system, so a later
    /// [`ClusterReceptionist::start`] on it fails with
    /// [`ReceptionistError::AlreadyStarted`], and inbound messages are dropped with a debug
    /// line each.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// The replication task: owns the core and performs its outputs.
struct Shell {
    core: ReplicationCore,
    system: ActorSystem,
    remote: RemoteSystem,
    cluster: Cluster,
    /// Keys and message types already logged as local only, so each is logged once.
    logged_local_only: HashSet<(String, &'static str)>,
    /// Nodes already logged as sending input before they were members, so each is logged
    /// once.
    logged_non_members: HashSet<UniqueAddress>,
}

impl Shell {
    async fn run(
        mut self,
        snapshot: ClusterState,
        mut events: broadcast::Receiver<akkord_cluster::membership::ClusterEvent>,
        mut inbound: mpsc::Receiver<(UniqueAddress, Bytes)>,
        local_changed: Arc<Notify>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut out = Outputs::default();
        self.core.set_members(&member_view(&snapshot), &mut out);
        let entries = self.local_entries();
        self.core.set_local_entries(entries, &mut out);
        self.core.tick(Instant::now(), &mut out);
        self.perform(out);

        let system = self.system.clone();
        let terminated = system.when_terminated();
        tokio::pin!(terminated);
        loop {
            let next_tick = self.core.next_tick().unwrap_or_else(Instant::now);
            let mut out = Outputs::default();
            tokio::select! {
                _ = &mut terminated => break,
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        break;
                    }
                }
                Some((from, payload)) = inbound.recv() => {
                    match ReplicationMessage::decode(&payload) {
                        Ok(message) => {
                            trace!(peer = %from, ?message, "receptionist message received");
                            self.core.handle_message(&from, message, &mut out);
                        }
                        Err(error) => {
                            warn!(peer = %from, %error, "dropped undecodable receptionist message");
                        }
                    }
                }
                _ = local_changed.notified() => {
                    let entries = self.local_entries();
                    self.core.set_local_entries(entries, &mut out);
                }
                event = events.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = event {
                        break;
                    }
                    self.core.set_members(&member_view(&self.cluster.state()), &mut out);
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next_tick)) => {
                    self.core.tick(Instant::now(), &mut out);
                }
            }
            self.perform(out);
        }
        self.shut_down();
    }

    /// Encodes this node's registrations; keys whose type is not registered stay local.
    fn local_entries(&mut self) -> Vec<EntryData> {
        let mut entries = Vec::new();
        for (key, exported) in self.system.receptionist().local_services() {
            let type_name = exported.message_type_name;
            match self.remote.encode_exported_ref(exported) {
                Ok(actor) => entries.push(EntryData::new(&key, actor)),
                Err(error) => {
                    let first = self.logged_local_only.insert((key.to_string(), type_name));
                    if first {
                        if let RefCodecError::NotRegistered { .. } = error {
                            debug!(
                                key = %key,
                                message_type = type_name,
                                "service key stays local: its message type is not registered \
                                 for serialization"
                            );
                        } else {
                            debug!(
                                key = %key,
                                message_type = type_name,
                                %error,
                                "service stays local: its ref cannot be encoded"
                            );
                        }
                    }
                }
            }
        }
        entries
    }

    fn perform(&mut self, out: Outputs) {
        if let Some(node) = out
            .ignored_from
            .filter(|node| self.logged_non_members.insert(node.clone()))
        {
            debug!(peer = %node, "ignored receptionist message from a node that is not a member");
        }
        for (to, message) in out.messages {
            trace!(peer = %to, ?message, "sending receptionist message");
            let payload = Bytes::from(message.encode());
            let destination = Destination::Node(to.clone());
            if let Err(error) = self.remote.send_protocol(
                &destination,
                Lane::Control,
                RECEPTIONIST_PROTOCOL_MANIFEST,
                payload,
            ) {
                debug!(peer = %to, %error, "receptionist message not sent");
            }
        }
        for (node, entries) in out.installs {
            install(&self.remote, self.system.receptionist(), &node, &entries);
        }
    }

    fn shut_down(&self) {
        let receptionist = self.system.receptionist();
        receptionist.set_local_change_listener(Arc::new(|| {}));
        for node in receptionist.remote_nodes() {
            receptionist.replace_remote_services(&node, Vec::new());
        }
        debug!(node = %self.remote.local_address(), "receptionist replication stopped");
    }
}

/// Decodes the set of `node` and installs it as that node's services in `receptionist`.
fn install(
    remote: &RemoteSystem,
    receptionist: &Receptionist,
    node: &UniqueAddress,
    entries: &[EntryData],
) {
    let mut services: Vec<(Arc<str>, TypeId, Arc<dyn ExternalActor>)> = Vec::new();
    for entry in entries {
        let Some(actor) = entry.actor() else {
            debug!(
                peer = %node,
                key = %entry.key,
                port = entry.port,
                "dropped receptionist entry with an invalid port"
            );
            continue;
        };
        match remote.decode_untyped_ref(actor) {
            Ok(DecodedRef {
                message_type,
                target: ImportedRef::External(target),
                ..
            }) => services.push((Arc::from(entry.key.as_str()), message_type, target)),
            Ok(DecodedRef {
                target: ImportedRef::Local(_),
                ..
            }) => {
                debug!(
                    peer = %node,
                    key = %entry.key,
                    path = %entry.path,
                    "dropped receptionist entry that points at this node"
                );
            }
            Err(error) => {
                debug!(
                    peer = %node,
                    key = %entry.key,
                    manifest = %entry.manifest,
                    %error,
                    "dropped receptionist entry"
                );
            }
        }
    }
    trace!(peer = %node, services = services.len(), "installing remote services");
    receptionist.replace_remote_services(node, services);
}

/// Returns the members whose registrations count, with whether each is reachable.
fn member_view(state: &ClusterState) -> BTreeMap<UniqueAddress, bool> {
    state
        .members
        .iter()
        .filter(|member| {
            matches!(
                member.status,
                MemberStatus::WeaklyUp
                    | MemberStatus::Up
                    | MemberStatus::Leaving
                    | MemberStatus::Exiting
                    | MemberStatus::PreparingForShutdown
                    | MemberStatus::ReadyForShutdown
            )
        })
        .map(|member| {
            let reachable = !state.unreachable.contains(&member.unique_address);
            (member.unique_address.clone(), reachable)
        })
        .collect()
}
