//! The daemon loop that owns the [`ClusterNode`] and performs its outputs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;
use akkord_actor::shutdown::ShutdownReason as SystemShutdownReason;
use akkord_actor::ActorSystem;
use akkord_remote::{Destination, Lane, RemoteSystem};
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{seconds, ClusterState, Command, Shared, CLUSTER_PROTOCOL_MANIFEST};
use crate::member::MemberStatus;
use crate::membership::ClusterEvent;
use crate::node::{ClusterNode, NodeEvent, NodeMessage, NodeOutputs, ShutdownReason};
use crate::sbr::LeaseCommand;
use crate::wire::{decode_node_message, encode_node_message};

/// Time a node that left waits for the gossip of its removal after it saw itself Exiting;
/// then it stops anyway. 10 s, the timeout of Akka's `cluster-exiting` shutdown phase.
const EXITING_TIMEOUT: Duration = Duration::from_secs(10);

/// Delay before a removed member is quarantined, so the removal still reaches it; 5 s, as
/// Akka's `quarantine-removed-node-after`.
const QUARANTINE_REMOVED_AFTER: Duration = Duration::from_secs(5);

/// Owns the node; runs on the daemon thread.
pub(super) struct Daemon {
    node: ClusterNode,
    shared: Arc<Shared>,
    remote: RemoteSystem,
    system: ActorSystem,
    /// When this node, Exiting, gives up waiting for its removal and stops anyway.
    exit_deadline: Option<Instant>,
    /// Runtime of the caller of `Cluster::start`, which runs callbacks and the coordinated
    /// shutdown, so they never block the daemon.
    user_runtime: Handle,
}

impl Daemon {
    pub(super) fn new(
        node: ClusterNode,
        shared: Arc<Shared>,
        remote: RemoteSystem,
        system: ActorSystem,
        user_runtime: Handle,
    ) -> Self {
        Self {
            node,
            shared,
            remote,
            system,
            exit_deadline: None,
            user_runtime,
        }
    }

    /// Runs the daemon on a new single-threaded runtime until this node stops.
    pub(super) fn run(
        self,
        inbound: mpsc::Receiver<(UniqueAddress, Bytes)>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "failed to build the cluster daemon runtime; the cluster does not run");
                return;
            }
        };
        runtime.block_on(self.main_loop(inbound, commands));
    }

    async fn main_loop(
        mut self,
        mut inbound: mpsc::Receiver<(UniqueAddress, Bytes)>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut out = NodeOutputs::new();
        self.node.start(Instant::now(), &mut out);
        let mut next_tick = out.next_tick;
        self.perform(out, true);
        let mut inbound_open = true;
        let mut commands_open = true;

        let mut gave_up = false;
        let mut system_stopping = false;
        while self.node.is_running() {
            let sleep = sleep_until(next_tick);
            let exit_deadline = sleep_until(self.exit_deadline);
            let mut out = NodeOutputs::new();
            let refresh;
            tokio::select! {
                biased;
                _ = exit_deadline => {
                    warn!(node = %self.node.self_node(), waited_s = seconds(EXITING_TIMEOUT), "this node is Exiting but was not removed in time; stopping anyway");
                    gave_up = true;
                    break;
                }
                _ = sleep => {
                    self.node.tick(Instant::now(), &mut out);
                    refresh = true;
                }
                received = inbound.recv(), if inbound_open => {
                    let Some((from, payload)) = received else {
                        inbound_open = false;
                        continue;
                    };
                    let now = Instant::now();
                    let message = match decode_node_message(&payload, now) {
                        Ok(message) => message,
                        Err(error) => {
                            debug!(peer = %from, %error, "dropped undecodable cluster message");
                            continue;
                        }
                    };
                    refresh = matches!(message, NodeMessage::Membership(_));
                    self.node.handle_message(from.address, message, now, &mut out);
                }
                command = commands.recv(), if commands_open => {
                    let Some(command) = command else {
                        commands_open = false;
                        continue;
                    };
                    if matches!(command, Command::Stop) {
                        system_stopping = true;
                        break;
                    }
                    self.run_command(command, &mut out);
                    refresh = true;
                }
            }
            next_tick = out.next_tick;
            self.perform(out, refresh);
        }

        // Later commands fail with `Stopped` from here on, before any callback runs.
        commands.close();
        inbound.close();
        if system_stopping {
            info!(node = %self.node.self_node(), "cluster daemon stopped by the coordinated shutdown");
            self.finish();
            return;
        }
        let reason = match self.node.shutdown_reason() {
            None if gave_up => Some(ShutdownReason::Removed),
            reason => reason,
        };
        self.stop(reason);
    }

    fn run_command(&mut self, command: Command, out: &mut NodeOutputs) {
        let now = Instant::now();
        match command {
            Command::Join(address) => self.node.join(address, now, out),
            Command::JoinSeedNodes(seeds) => self.node.join_seed_nodes(seeds, now, out),
            Command::Leave(address, reply) => {
                let _ = reply.send(self.node.leave(&address, now, out));
            }
            Command::Down(target, reply) => {
                let _ = reply.send(self.node.down(&target, now, out));
            }
            Command::Stop => {}
        }
    }

    /// Sends the messages, acts on the events and, when `refresh` is set or there were
    /// events, publishes the new state.
    fn perform(&mut self, out: NodeOutputs, refresh: bool) {
        let now = Instant::now();
        for (to, message) in &out.messages {
            let payload = Bytes::from(encode_node_message(message, now));
            let destination = Destination::Address(to.clone());
            if let Err(error) = self.remote.send_protocol(
                &destination,
                Lane::Control,
                CLUSTER_PROTOCOL_MANIFEST,
                payload,
            ) {
                debug!(peer = %to, kind = message.kind(), %error, "cluster message not sent");
            }
        }

        let mut membership_events = Vec::new();
        let mut lease_results = Vec::new();
        for event in out.events {
            match event {
                NodeEvent::Membership(event) => {
                    self.on_membership_event(&event);
                    membership_events.push(event);
                }
                NodeEvent::ShutdownRequested { reason } => {
                    info!(node = %self.node.self_node(), ?reason, "this node stops taking part in the cluster")
                }
                NodeEvent::HeartbeatTickLate { late_by } => {
                    warn!(node = %self.node.self_node(), late_by_s = seconds(late_by), "cluster heartbeat round ran late; peers may suspect this node")
                }
                NodeEvent::ConvergenceBlocked {
                    blocked_for,
                    blockers,
                } => {
                    let blockers: Vec<String> = blockers.iter().map(ToString::to_string).collect();
                    warn!(node = %self.node.self_node(), blocked_for_s = seconds(blocked_for), blockers = %blockers.join("; "), "cluster convergence blocked")
                }
                NodeEvent::ResolverDecision { decision, down } => {
                    let down: Vec<String> = down.iter().map(ToString::to_string).collect();
                    warn!(node = %self.node.self_node(), ?decision, down = %down.join(", "), "split brain resolver downs members")
                }
                NodeEvent::Lease(LeaseCommand::Acquire { owner }) => {
                    warn!(node = %self.node.self_node(), owner, "no lease backend in this shell; lease counts as not acquired");
                    lease_results.push(false);
                }
                NodeEvent::Lease(LeaseCommand::Release { .. }) => {}
            }
        }

        if refresh || !membership_events.is_empty() {
            self.publish(membership_events);
        }
        for acquired in lease_results {
            let mut out = NodeOutputs::new();
            self.node
                .handle_lease_result(acquired, Instant::now(), &mut out);
            self.perform(out, true);
        }
    }

    /// Logs a membership change and makes remote death watch follow it.
    fn on_membership_event(&mut self, event: &ClusterEvent) {
        let self_node = self.node.self_node();
        match event {
            ClusterEvent::MemberExited(member) if member.unique_address == *self_node => {
                info!(node = %member.unique_address.address, uid = member.unique_address.uid, "this node is Exiting; waiting for its removal");
                self.exit_deadline = Some(Instant::now() + EXITING_TIMEOUT);
            }
            ClusterEvent::MemberJoined(member)
            | ClusterEvent::MemberWeaklyUp(member)
            | ClusterEvent::MemberUp(member)
            | ClusterEvent::MemberLeft(member)
            | ClusterEvent::MemberExited(member) => {
                info!(node = %member.unique_address.address, uid = member.unique_address.uid, status = ?member.status, "cluster member status changed")
            }
            ClusterEvent::MemberDowned(member) => {
                info!(node = %member.unique_address.address, uid = member.unique_address.uid, "cluster member downed");
                if member.unique_address != *self_node {
                    self.remote
                        .declare_node_gone(&member.unique_address, "downed by the cluster");
                }
            }
            ClusterEvent::MemberRemoved {
                member,
                previous_status,
            } => {
                info!(node = %member.unique_address.address, uid = member.unique_address.uid, ?previous_status, "cluster member removed");
                if member.unique_address != *self_node {
                    self.remote
                        .declare_node_gone(&member.unique_address, "removed from the cluster");
                    self.quarantine_removed(
                        member.unique_address.clone(),
                        *previous_status == MemberStatus::Down,
                    );
                }
            }
            ClusterEvent::UnreachableMember(member) => {
                warn!(node = %member.unique_address.address, uid = member.unique_address.uid, "cluster member unreachable")
            }
            ClusterEvent::ReachableMember(member) => {
                info!(node = %member.unique_address.address, uid = member.unique_address.uid, "cluster member reachable again")
            }
            ClusterEvent::LeaderChanged { leader } => {
                info!(leader = ?leader, "cluster leader changed")
            }
            ClusterEvent::RoleLeaderChanged { role, leader } => {
                info!(role, leader = ?leader, "cluster role leader changed")
            }
            ClusterEvent::SelfDowned => {
                warn!(node = %self_node.address, uid = self_node.uid, "this node was downed")
            }
            ClusterEvent::SelfRemoved => {
                info!(node = %self_node.address, uid = self_node.uid, "this node was removed")
            }
            ClusterEvent::JoinRejected { by, reason } => {
                warn!(node = %self_node.address, by = %by, ?reason, "join request rejected")
            }
        }
    }

    /// Quarantines a removed incarnation after [`QUARANTINE_REMOVED_AFTER`], so it can still
    /// receive the gossip of its removal and stop by itself. That matters for a member that
    /// was downed while it was still running, for example by `down` from an operator: until
    /// that gossip arrives it does not know it was downed.
    fn quarantine_removed(&self, node: UniqueAddress, was_down: bool) {
        let transport = self.remote.transport().clone();
        let reason = if was_down {
            "downed and removed from the cluster"
        } else {
            "removed from the cluster"
        };
        tokio::spawn(async move {
            tokio::time::sleep(QUARANTINE_REMOVED_AFTER).await;
            transport.quarantine(&node, reason);
        });
    }

    /// Stores the current state, sends `events` to subscribers and runs the Up callbacks
    /// once this node is Up.
    fn publish(&self, events: Vec<ClusterEvent>) {
        let current = self.node.membership().current_state();
        let state = ClusterState {
            members: current.members,
            unreachable: current.unreachable,
            seen_by: current.seen_by,
            leader: current.leader,
            converged: current.converged,
            convergence_blockers: self.node.convergence_blockers(),
            shutdown: self.node.shutdown_reason(),
        };
        let self_member = self.node.membership().self_member().cloned();
        let is_up = self_member.as_ref().is_some_and(|member| {
            matches!(
                member.status,
                MemberStatus::Up | MemberStatus::Leaving | MemberStatus::Exiting
            )
        });
        let callbacks = {
            let mut view = self.shared.view();
            view.state = state;
            view.self_member = self_member;
            for event in events {
                let _ = self.shared.events.send(event);
            }
            if is_up && !view.was_up {
                view.was_up = true;
                std::mem::take(&mut view.on_up)
            } else {
                Vec::new()
            }
        };
        for callback in callbacks {
            self.user_runtime.spawn_blocking(callback);
        }
    }

    /// Publishes the final state, runs the removal callbacks and marks the daemon stopped.
    fn finish(&self) {
        self.publish(Vec::new());
        let callbacks = {
            let mut view = self.shared.view();
            view.was_removed = true;
            std::mem::take(&mut view.on_removed)
        };
        for callback in callbacks {
            self.user_runtime.spawn_blocking(callback);
        }
        self.shared.stopped.send_replace(true);
    }

    /// Finishes and runs the coordinated shutdown for `reason`.
    fn stop(&self, reason: Option<ShutdownReason>) {
        self.finish();
        let system_reason = match reason {
            Some(ShutdownReason::Downed) | None => SystemShutdownReason::ClusterDowning,
            Some(ShutdownReason::Removed) => SystemShutdownReason::ClusterLeaving,
        };
        info!(node = %self.node.self_node(), reason = ?system_reason, "running coordinated shutdown");
        let system = self.system.clone();
        self.user_runtime.spawn(async move {
            system
                .coordinated_shutdown()
                .run(&system, system_reason)
                .await;
        });
    }
}

/// Sleeps until `deadline`, forever when it is `None`.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
