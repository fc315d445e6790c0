//! The network shell: runs a [`ClusterNode`] between processes over the remoting
//! transport.
//!
//! [`Cluster`] is the handle of one node's cluster membership, the counterpart of Akka's
//! `Cluster(system)`. It starts a daemon on a dedicated OS thread with its own
//! single-threaded tokio runtime, so user actors cannot starve heartbeats. The daemon owns
//! the [`ClusterNode`] and
//!
//! 1. receives cluster messages from the transport: they travel on the control lane as
//!    extension protocol messages with manifest [`CLUSTER_PROTOCOL_MANIFEST`], encoded by
//!    [`crate::wire::encode_node_message`], without acknowledgement or resend;
//! 2. runs commands from the handle: join, leave, down;
//! 3. ticks the node at the instant it requests;
//! 4. sends the node's messages, publishes its events, logs membership changes at info
//!    and late heartbeat rounds and blocked convergence at warn;
//! 5. declares downed and removed incarnations gone in the [`RemoteSystem`], so watchers
//!    of their actors get `Terminated`, and quarantines removed ones;
//! 6. when this node is downed or removed, runs the coordinated shutdown of the actor
//!    system with reason `ClusterDowning` or `ClusterLeaving` and stops.
//!
//! The transport itself runs on the runtime the [`RemoteSystem`] was bound in; bind it on
//! a runtime of its own too (as the test node binary does) to keep user actors from
//! delaying heartbeat frames.

mod daemon;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::ActorSystem;
use akkord_remote::remote::{ProtocolHandler, RegisterProtocolError};
use akkord_remote::RemoteSystem;
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::convergence::ConvergenceBlocker;
use crate::member::{Member, MemberStatus};
use crate::membership::{ClusterEvent, CommandError};
use crate::node::{ClusterNode, ClusterNodeSettings, InvalidClusterSetting, ShutdownReason};
use crate::sbr::SbrSettings;

/// Manifest of cluster protocol messages on the transport.
pub const CLUSTER_PROTOCOL_MANIFEST: &str = "akkord.cluster.NodeMessage";

/// Capacity of the queue of inbound cluster messages; a message that finds it full is
/// dropped with a debug log line, which the protocol tolerates as a lost message.
const INBOUND_QUEUE: usize = 10_000;

/// Capacity of each event subscription. A subscriber that falls further behind loses the
/// oldest events and receives `RecvError::Lagged`.
const EVENT_BUFFER: usize = 1024;

/// Settings of a [`Cluster`].
#[derive(Clone, Debug, Default)]
pub struct ClusterSettings {
    /// Settings of the node: membership (seed nodes, roles, app version), heartbeats and
    /// the split brain resolver.
    pub node: ClusterNodeSettings,
}

impl ClusterSettings {
    /// Sets the seed nodes; the node runs the seed-node procedure at start when they are
    /// not empty.
    pub fn with_seed_nodes(mut self, seeds: Vec<Address>) -> Self {
        self.node.membership.seed_nodes = seeds;
        self
    }

    /// Sets the roles of this node.
    pub fn with_roles(mut self, roles: BTreeSet<String>) -> Self {
        self.node.membership.roles = roles;
        self
    }

    /// Sets the application version carried in the join request.
    pub fn with_app_version(mut self, version: impl Into<String>) -> Self {
        self.node.membership.app_version = version.into();
        self
    }

    /// Uses the split brain resolver profile for small clusters ([`SbrSettings::fast`]).
    pub fn with_fast_split_brain_resolver(mut self) -> Self {
        self.node.sbr = SbrSettings::fast();
        self
    }
}

/// Failure to start a [`Cluster`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    /// A setting is invalid; nothing was started.
    #[error("invalid cluster settings: {0}")]
    InvalidSettings(#[from] InvalidClusterSetting),
    /// Another cluster already runs on this remote system.
    #[error("a cluster already runs on this remote system: start one per node ({0})")]
    AlreadyStarted(#[from] RegisterProtocolError),
    /// The daemon thread could not be started.
    #[error("failed to start the cluster daemon thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Failure of a command of the [`Cluster`] handle.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterCommandError {
    /// The node rejected the command.
    #[error(transparent)]
    Rejected(#[from] CommandError),
    /// The daemon has stopped because this node was downed or removed, or the cluster shut
    /// down.
    #[error("the cluster daemon has stopped; this node no longer takes part in the cluster")]
    Stopped,
    /// No member runs at the address given to [`Cluster::down`].
    #[error("no member runs at {0}: check the address against the current members")]
    UnknownAddress(Address),
}

/// The cluster state in this node's view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Members in address order, with status and roles.
    pub members: Vec<Member>,
    /// Members that some observer reports as unreachable.
    pub unreachable: BTreeSet<UniqueAddress>,
    /// Nodes that have seen the current version of the state.
    pub seen_by: BTreeSet<UniqueAddress>,
    /// The leader.
    pub leader: Option<UniqueAddress>,
    /// Whether the state has converged.
    pub converged: bool,
    /// The members that keep the state from converging, and why.
    pub convergence_blockers: Vec<ConvergenceBlocker>,
    /// Reason this node stopped, once it was downed or removed.
    pub shutdown: Option<ShutdownReason>,
}

impl ClusterState {
    /// Returns the member at `address`, if any.
    pub fn member_at(&self, address: &Address) -> Option<&Member> {
        self.members
            .iter()
            .find(|member| member.unique_address.address == *address)
    }

    /// Counts the members with `status`.
    pub fn count(&self, status: MemberStatus) -> usize {
        self.members
            .iter()
            .filter(|member| member.status == status)
            .count()
    }
}

/// A callback run once when this node becomes Up or is removed.
type Callback = Box<dyn FnOnce() + Send>;

/// State shared between the handle and the daemon.
struct Shared {
    self_node: UniqueAddress,
    view: Mutex<View>,
    events: broadcast::Sender<ClusterEvent>,
    /// Set to true once the daemon has stopped.
    stopped: watch::Sender<bool>,
}

/// The part of [`Shared`] that changes; events are sent under its lock so a subscriber's
/// snapshot and its event stream fit together.
#[derive(Default)]
struct View {
    state: ClusterState,
    self_member: Option<Member>,
    on_up: Vec<Callback>,
    on_removed: Vec<Callback>,
    was_up: bool,
    was_removed: bool,
}

impl Shared {
    fn view(&self) -> MutexGuard<'_, View> {
        self.view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Commands from the handle to the daemon.
enum Command {
    Join(Address),
    JoinSeedNodes(Vec<Address>),
    Leave(Address, oneshot::Sender<Result<(), CommandError>>),
    Down(UniqueAddress, oneshot::Sender<Result<(), CommandError>>),
    /// Stop the daemon from the `cluster-shutdown` phase of a running coordinated shutdown.
    Stop,
}

/// Handle of this node's cluster membership; cheap to clone.
///
/// # Example
///
/// ```no_run
/// use akkord_actor::ActorSystem;
/// use akkord_cluster::shell::{Cluster, ClusterSettings};
/// use akkord_remote::remote::{RemoteSystem, RemoteSystemSettings};
/// use akkord_remote::serialization::SerializationRegistry;
///
/// # #[tokio::main]
/// # async fn main() -> anyhow::Result<()> {
/// let system = ActorSystem::new("demo")?;
/// let remote = RemoteSystem::bind(
///     system.clone(),
///     RemoteSystemSettings::new("demo"),
///     SerializationRegistry::new(),
/// )
/// .await?;
/// let cluster = Cluster::start(&system, &remote, ClusterSettings::default())?;
/// cluster.join(remote.local_address().address.clone())?;
/// let (snapshot, mut events) = cluster.subscribe();
/// println!("{} members, next event {:?}", snapshot.members.len(), events.recv().await);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Cluster {
    /// Starts the cluster daemon of `remote`'s node on a dedicated thread.
    ///
    /// When `settings` name seed nodes, the node joins through them at once. Callbacks
    /// registered with [`Cluster::register_on_member_up`] run on the runtime that calls
    /// this function.
    ///
    /// # Errors
    ///
    /// [`ClusterStartError::InvalidSettings`] for invalid settings,
    /// [`ClusterStartError::AlreadyStarted`] when a cluster already runs on `remote`,
    /// [`ClusterStartError::Thread`] when the thread cannot be spawned.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start(
        system: &ActorSystem,
        remote: &RemoteSystem,
        settings: ClusterSettings,
    ) -> Result<Self, ClusterStartError> {
        let self_node = remote.local_address().clone();
        let node = ClusterNode::new(self_node.clone(), settings.node.clone(), rand::random())?;
        let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
        let handler: ProtocolHandler = Arc::new(move |from: &UniqueAddress, payload: Bytes| {
            if inbound_sender.try_send((from.clone(), payload)).is_err() {
                tracing::debug!(peer = %from, "dropped cluster message: inbound queue full or daemon stopped");
            }
        });
        remote.register_protocol(CLUSTER_PROTOCOL_MANIFEST, handler)?;

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            self_node,
            view: Mutex::new(View::default()),
            events,
            stopped: watch::Sender::new(false),
        });
        // The cluster decides when a member is gone (downed or removed), not remote death
        // watch's own heartbeats: a member unreachable for longer than remote watch's
        // acceptable pause may still come back before the resolver decides.
        let view = Arc::downgrade(&shared);
        remote.set_failure_detection_owner(move |node| {
            view.upgrade().is_some_and(|shared| {
                shared
                    .view()
                    .state
                    .members
                    .iter()
                    .any(|member| member.unique_address == *node)
            })
        });
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let daemon = daemon::Daemon::new(
            node,
            shared.clone(),
            remote.clone(),
            system.clone(),
            tokio::runtime::Handle::current(),
        );
        std::thread::Builder::new()
            .name("akkord-cluster".to_owned())
            .spawn(move || daemon.run(inbound, command_receiver))?;
        let cluster = Self { shared, commands };
        cluster.add_leave_task(system);
        Ok(cluster)
    }

    /// Returns this node's incarnation.
    pub fn self_node(&self) -> &UniqueAddress {
        &self.shared.self_node
    }

    /// Returns this node as a member, `None` before it joined and after removal.
    pub fn self_member(&self) -> Option<Member> {
        self.shared.view().self_member.clone()
    }

    /// Returns a snapshot of the cluster state.
    pub fn state(&self) -> ClusterState {
        self.shared.view().state.clone()
    }

    /// Subscribes to membership events; returns the current state and the events that
    /// follow it, with nothing missed between the two.
    pub fn subscribe(&self) -> (ClusterState, broadcast::Receiver<ClusterEvent>) {
        let view = self.shared.view();
        (view.state.clone(), self.shared.events.subscribe())
    }

    /// Joins the cluster through the node at `address`; this node's own address forms a
    /// new cluster.
    ///
    /// # Errors
    ///
    /// [`ClusterCommandError::Stopped`] when the daemon has stopped.
    pub fn join(&self, address: Address) -> Result<(), ClusterCommandError> {
        self.send(Command::Join(address))
    }

    /// Joins the cluster through `seeds` with the seed-node procedure.
    ///
    /// # Errors
    ///
    /// [`ClusterCommandError::Stopped`] when the daemon has stopped.
    pub fn join_seed_nodes(&self, seeds: Vec<Address>) -> Result<(), ClusterCommandError> {
        self.send(Command::JoinSeedNodes(seeds))
    }

    /// Asks the member at `address` to leave the cluster gracefully.
    ///
    /// # Errors
    ///
    /// [`ClusterCommandError::Rejected`] when this node is not a member or no member runs at
    /// `address`; [`ClusterCommandError::Stopped`] when the daemon has stopped.
    pub async fn leave(&self, address: Address) -> Result<(), ClusterCommandError> {
        let (reply, result) = oneshot::channel();
        self.send(Command::Leave(address, reply))?;
        Ok(result.await.map_err(|_| ClusterCommandError::Stopped)??)
    }

    /// Marks the member at `address` as Down.
    ///
    /// # Errors
    ///
    /// [`ClusterCommandError::UnknownAddress`] when no member runs at `address`,
    /// [`ClusterCommandError::Rejected`] when the node rejects it,
    /// [`ClusterCommandError::Stopped`] when the daemon has stopped.
    pub async fn down(&self, address: Address) -> Result<(), ClusterCommandError> {
        let target = self
            .state()
            .member_at(&address)
            .map(|member| member.unique_address.clone())
            .ok_or(ClusterCommandError::UnknownAddress(address))?;
        let (reply, result) = oneshot::channel();
        self.send(Command::Down(target, reply))?;
        Ok(result.await.map_err(|_| ClusterCommandError::Stopped)??)
    }

    /// Runs `callback` once when this node becomes Up, or soon when it already is.
    pub fn register_on_member_up(&self, callback: impl FnOnce() + Send + 'static) {
        let mut view = self.shared.view();
        if view.was_up {
            drop(view);
            callback();
        } else {
            view.on_up.push(Box::new(callback));
        }
    }

    /// Runs `callback` once when this node is removed or downed and stops, or soon when it
    /// already has.
    pub fn register_on_member_removed(&self, callback: impl FnOnce() + Send + 'static) {
        let mut view = self.shared.view();
        if view.was_removed {
            drop(view);
            callback();
        } else {
            view.on_removed.push(Box::new(callback));
        }
    }

    /// Makes the coordinated shutdown leave the cluster gracefully in its `cluster-leave`
    /// phase and wait, within that phase's timeout, until this node is removed, then stop
    /// the daemon in its `cluster-shutdown` phase. Leaving is skipped when the cluster
    /// itself started the shutdown because this node was downed or removed.
    fn add_leave_task(&self, system: &ActorSystem) {
        let cluster = self.clone();
        let added = system.coordinated_shutdown().add_task(
            "cluster-leave",
            "leave the cluster",
            move || async move {
                let mut stopped = cluster.shared.stopped.subscribe();
                if *stopped.borrow() {
                    return Ok(());
                }
                let address = cluster.self_node().address.clone();
                match cluster.leave(address).await {
                    Ok(()) => {}
                    Err(ClusterCommandError::Stopped | ClusterCommandError::Rejected(_)) => {
                        return Ok(());
                    }
                    Err(error) => return Err(error.to_string()),
                }
                let _ = stopped.wait_for(|stopped| *stopped).await;
                Ok(())
            },
        );
        let commands = self.commands.clone();
        let added = added.and_then(|()| {
            system.coordinated_shutdown().add_task(
                "cluster-shutdown",
                "stop the cluster daemon",
                move || async move {
                    let _ = commands.send(Command::Stop);
                    Ok(())
                },
            )
        });
        if let Err(error) = added {
            tracing::warn!(%error, "failed to add the cluster shutdown tasks; this node may not leave gracefully on shutdown");
        }
    }

    fn send(&self, command: Command) -> Result<(), ClusterCommandError> {
        self.commands
            .send(command)
            .map_err(|_| ClusterCommandError::Stopped)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("self_node", &self.shared.self_node)
            .finish_non_exhaustive()
    }
}

/// Returns a duration as seconds with millisecond precision, for log fields.
fn seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests;
