//! The sans-IO membership core: join, gossip, convergence and leader actions.
//!
//! [`MembershipCore`] owns one node's view of the cluster. It has no socket, clock or task:
//! a shell (an actor in production, a simulator node in tests) calls it with the current
//! time and performs what it returns in [`MembershipOutputs`].
//!
//! Driving the core:
//! 1. create it with [`MembershipCore::new`] and call [`MembershipCore::start`], which starts
//!    the seed-node procedure when seed nodes are configured;
//! 2. pass every received [`ClusterMessage`] to [`MembershipCore::handle_message`];
//! 3. call [`MembershipCore::tick`] at the instant in [`MembershipOutputs::next_tick`]. A
//!    late or early tick is harmless, because the core runs only what is due and requests
//!    the next tick again;
//! 4. send each entry of [`MembershipOutputs::messages`] to its address, and publish
//!    [`MembershipOutputs::events`] in order.
//!
//! Commands: [`MembershipCore::join`], [`MembershipCore::join_seed_nodes`],
//! [`MembershipCore::leave`], [`MembershipCore::down`]. The failure detector reports this
//! node's observations through [`MembershipCore::mark_unreachable`] and
//! [`MembershipCore::mark_reachable`].
//!
//! # Example
//!
//! Node `a` forms a cluster, node `b` joins it, and the messages are passed by hand.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use akkord_actor::address::{Address, UniqueAddress};
//! use akkord_cluster::member::MemberStatus;
//! use akkord_cluster::membership::{MembershipCore, MembershipOutputs, MembershipSettings};
//!
//! let node = |port| UniqueAddress::new(Address::new("demo", "127.0.0.1", port).unwrap(), 7);
//! let mut a = MembershipCore::new(node(1), MembershipSettings::default(), 1).unwrap();
//! let mut b = MembershipCore::new(node(2), MembershipSettings::default(), 2).unwrap();
//! let now = Instant::now();
//!
//! let mut out = MembershipOutputs::new();
//! a.join(node(1).address, now, &mut out);
//! b.join(node(1).address, now, &mut out);
//!
//! // Deliver messages until none is left: join, welcome, gossip.
//! let mut in_flight: Vec<_> = out.messages.drain(..).map(|(to, m)| (node(2), to, m)).collect();
//! while let Some((from, to, message)) = in_flight.pop() {
//!     let (core, sender) = if to == node(1).address { (&mut a, node(1)) } else { (&mut b, node(2)) };
//!     let mut out = MembershipOutputs::new();
//!     core.handle_message(from.address, message, now, &mut out);
//!     in_flight.extend(out.messages.into_iter().map(|(to, m)| (sender.clone(), to, m)));
//! }
//! assert_eq!(b.self_member().unwrap().status, MemberStatus::Joining);
//!
//! // The leader moves `b` to Up at its next tick and gossips the change.
//! let mut out = MembershipOutputs::new();
//! a.tick(now + Duration::from_secs(1), &mut out);
//! assert_eq!(a.gossip().member(&node(2)).unwrap().status, MemberStatus::Up);
//! assert!(out.messages.iter().any(|(to, _)| *to == node(2).address));
//! ```

mod events;
mod gossip_exchange;
mod join;
mod leader;
mod messages;
mod settings;

use std::sync::Arc;
use std::time::Instant;

use akkord_actor::address::{Address, UniqueAddress};
use rand::rngs::SmallRng;
use rand::SeedableRng;

pub use events::{diff, ClusterEvent, CurrentClusterState};
pub use messages::{
    ClusterMessage, JoinRejection, JoinRequest, MEMBERSHIP_PROTOCOL_VERSION,
    MIN_SUPPORTED_PROTOCOL_VERSION,
};
pub use settings::{InvalidMembershipSetting, MembershipSettings};

use crate::convergence::ConvergenceBlocker;
use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus};

/// Actions that one call into [`MembershipCore`] requests from the shell.
#[derive(Debug, Default)]
pub struct MembershipOutputs {
    /// Messages to send, with the address of the destination node.
    pub messages: Vec<(Address, ClusterMessage)>,
    /// Events to publish, in order.
    pub events: Vec<ClusterEvent>,
    /// The instant at which the core wants [`MembershipCore::tick`] called; `None` when it
    /// has no timer running. Each call replaces the previous request.
    pub next_tick: Option<Instant>,
}

impl MembershipOutputs {
    /// Creates empty outputs.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A command that could not be applied to the cluster state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// This node has not joined a cluster yet, or was removed from it.
    #[error("this node is not a cluster member; join a cluster first")]
    NotMember,
    /// No member runs at the given address or incarnation.
    #[error("no member at {0}; check the address against the current members")]
    UnknownMember(String),
}

/// Progress of this node towards membership.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JoinState {
    /// Waiting for a join command.
    Idle,
    /// Asking the seed nodes which of them is a member.
    Seeding(join::SeedProcess),
    /// Sent a join request to `target`; waiting for its welcome.
    Joining {
        target: Address,
        retry_at: Option<Instant>,
    },
    /// A member of the cluster.
    Member,
    /// A member rejected the join request; waiting for a new join command.
    Rejected,
    /// Removed from the cluster; this incarnation ignores all further input.
    Removed,
}

/// One node's membership state machine.
#[derive(Debug)]
pub struct MembershipCore {
    self_node: UniqueAddress,
    settings: MembershipSettings,
    /// The current state, shared copy-on-write with the messages that carry it.
    gossip: Arc<Gossip>,
    /// The state whose events were last published.
    published: Arc<Gossip>,
    join: JoinState,
    rng: SmallRng,
    next_gossip: Option<Instant>,
    extra_gossip_rounds: Vec<Instant>,
    next_leader_actions: Option<Instant>,
    leader_ticks_without_convergence: u32,
    is_leader: bool,
}

impl MembershipCore {
    /// Creates the core of incarnation `self_node`; `rng_seed` seeds the choice of gossip
    /// peers so that runs can be replayed.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidMembershipSetting`] when [`MembershipSettings::validate`] fails.
    pub fn new(
        self_node: UniqueAddress,
        settings: MembershipSettings,
        rng_seed: u64,
    ) -> Result<Self, InvalidMembershipSetting> {
        settings.validate()?;
        Ok(Self {
            self_node,
            settings,
            gossip: Arc::new(Gossip::new()),
            published: Arc::new(Gossip::new()),
            join: JoinState::Idle,
            rng: SmallRng::seed_from_u64(rng_seed),
            next_gossip: None,
            extra_gossip_rounds: Vec::new(),
            next_leader_actions: None,
            leader_ticks_without_convergence: 0,
            is_leader: false,
        })
    }

    /// Starts joining through the configured seed nodes.
    ///
    /// Without seed nodes it does nothing, so a node never forms a cluster by itself
    /// without an explicit join command.
    pub fn start(&mut self, now: Instant, out: &mut MembershipOutputs) {
        let seeds = self.settings.seed_nodes.clone();
        self.step(now, out, |core, out| {
            if !seeds.is_empty() && core.join == JoinState::Idle {
                core.start_seed_process(seeds, now, out);
            }
        });
    }

    /// Joins the cluster through the node at `address`; joining this node's own address
    /// forms a new cluster.
    ///
    /// Ignored when this node is already a member or was removed.
    pub fn join(&mut self, address: Address, now: Instant, out: &mut MembershipOutputs) {
        self.step(now, out, |core, out| core.join_to(address, now, out));
    }

    /// Joins the cluster through `seeds` with the seed-node procedure.
    ///
    /// Ignored when `seeds` is empty, when this node is already a member, or was removed.
    pub fn join_seed_nodes(
        &mut self,
        seeds: Vec<Address>,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        self.step(now, out, |core, out| {
            if !seeds.is_empty() && core.can_start_joining() {
                core.start_seed_process(seeds, now, out);
            }
        });
    }

    /// Marks the member at `address` as Leaving; the leader moves it on to Exiting and
    /// Removed. A member that is already leaving, exiting or down is left as it is.
    ///
    /// # Errors
    ///
    /// Returns [`CommandError::NotMember`] before this node joined and
    /// [`CommandError::UnknownMember`] when no member runs at `address`.
    pub fn leave(
        &mut self,
        address: &Address,
        now: Instant,
        out: &mut MembershipOutputs,
    ) -> Result<(), CommandError> {
        self.require_member()?;
        let member = self
            .gossip
            .member_at(address)
            .cloned()
            .ok_or_else(|| CommandError::UnknownMember(address.to_string()))?;
        self.step(now, out, |core, _| {
            if matches!(
                member.status,
                MemberStatus::Joining | MemberStatus::WeaklyUp | MemberStatus::Up
            ) {
                tracing::info!(node = %member.unique_address, "marking member as leaving");
                core.update_member(member.with_status(MemberStatus::Leaving));
            }
        });
        Ok(())
    }

    /// Marks incarnation `node` as Down; the leader removes it once the cluster converged.
    ///
    /// Used by the split brain resolver and by operators. Downing an incarnation that is
    /// already Down does nothing.
    ///
    /// # Errors
    ///
    /// Returns [`CommandError::NotMember`] before this node joined and
    /// [`CommandError::UnknownMember`] when `node` is not a member.
    pub fn down(
        &mut self,
        node: &UniqueAddress,
        now: Instant,
        out: &mut MembershipOutputs,
    ) -> Result<(), CommandError> {
        self.require_member()?;
        let member = self
            .gossip
            .member(node)
            .cloned()
            .ok_or_else(|| CommandError::UnknownMember(node.to_string()))?;
        self.step(now, out, |core, _| core.down_member(&member));
        Ok(())
    }

    /// Records that this node's failure detector suspects `subject`.
    ///
    /// Only this node's row of the reachability table changes. Ignored for non-members and
    /// for this node itself.
    pub fn mark_unreachable(
        &mut self,
        subject: &UniqueAddress,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        self.step(now, out, |core, _| {
            let next = core
                .gossip
                .reachability()
                .unreachable(&core.self_node, subject);
            core.update_reachability(subject, next);
        });
    }

    /// Records that this node's failure detector hears from `subject` again.
    pub fn mark_reachable(
        &mut self,
        subject: &UniqueAddress,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        self.step(now, out, |core, _| {
            let next = core
                .gossip
                .reachability()
                .reachable(&core.self_node, subject);
            core.update_reachability(subject, next);
        });
    }

    /// Handles one message received from the node at `from`.
    ///
    /// Malformed or unexpected input is dropped with a debug log line; nothing here panics.
    pub fn handle_message(
        &mut self,
        from: Address,
        message: ClusterMessage,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        tracing::trace!(node = %self.self_node, from = %from, kind = message.kind(), "received");
        if self.join == JoinState::Removed {
            tracing::debug!(from = %from, kind = message.kind(), "dropped message after removal");
            return;
        }
        self.step(now, out, |core, out| core.dispatch(from, message, now, out));
    }

    /// Runs the timers that are due at `now`: gossip rounds, leader actions, join retries.
    pub fn tick(&mut self, now: Instant, out: &mut MembershipOutputs) {
        self.step(now, out, |core, out| {
            core.tick_join(now, out);
            // Leader actions first, so that a gossip round due at the same instant already
            // carries their result.
            core.tick_leader(now, out);
            core.tick_gossip(now, out);
        });
    }

    /// Returns this node's incarnation.
    pub fn self_node(&self) -> &UniqueAddress {
        &self.self_node
    }

    /// Returns the settings.
    pub fn settings(&self) -> &MembershipSettings {
        &self.settings
    }

    /// Returns the current gossip state.
    pub fn gossip(&self) -> &Gossip {
        &self.gossip
    }

    /// Returns this node's member entry, `None` before joining and after removal.
    pub fn self_member(&self) -> Option<&Member> {
        self.gossip.member(&self.self_node)
    }

    /// Returns true when this node is a cluster member (any status before removal).
    pub fn is_member(&self) -> bool {
        self.join == JoinState::Member
    }

    /// Returns true when this node was removed from the cluster.
    pub fn is_removed(&self) -> bool {
        self.join == JoinState::Removed
    }

    /// Returns the leader computed from this node's state.
    pub fn leader(&self) -> Option<UniqueAddress> {
        self.gossip.leader(&self.self_node)
    }

    /// Returns true when this node's state has converged.
    pub fn is_converged(&self) -> bool {
        self.gossip.is_converged(&self.self_node)
    }

    /// Lists the members that keep the current state from converging, and why.
    pub fn convergence_blockers(&self) -> Vec<ConvergenceBlocker> {
        self.gossip.convergence_blockers(&self.self_node)
    }

    /// Returns a snapshot of the cluster from this node's state.
    pub fn current_state(&self) -> CurrentClusterState {
        CurrentClusterState::of(&self.gossip, &self.self_node)
    }

    /// Runs `body`, then publishes the events of the state change and the next tick.
    fn step(
        &mut self,
        now: Instant,
        out: &mut MembershipOutputs,
        body: impl FnOnce(&mut Self, &mut MembershipOutputs),
    ) {
        body(self, out);
        if self.gossip.version() != self.published.version()
            || self.gossip.member_count() != self.published.member_count()
        {
            out.events
                .extend(diff(&self.published, &self.gossip, &self.self_node));
            self.published = self.gossip.clone();
        }
        out.next_tick = self.next_deadline(now);
    }

    fn dispatch(
        &mut self,
        from: Address,
        message: ClusterMessage,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        let claimed = match &message {
            ClusterMessage::InitJoin { from }
            | ClusterMessage::InitJoinAck { from }
            | ClusterMessage::InitJoinNack { from }
            | ClusterMessage::Welcome { from, .. }
            | ClusterMessage::JoinRejected { from, .. }
            | ClusterMessage::Gossip { from, .. }
            | ClusterMessage::GossipStatus { from, .. } => &from.address,
            ClusterMessage::Join(request) => &request.node.address,
        };
        if *claimed != from {
            tracing::debug!(
                from = %from, claimed = %claimed, kind = message.kind(),
                "dropped message whose sender differs from the transport's peer"
            );
            return;
        }
        match message {
            ClusterMessage::InitJoin { from } => self.handle_init_join(from, out),
            ClusterMessage::InitJoinAck { from } => self.handle_init_join_ack(from, now, out),
            ClusterMessage::InitJoinNack { from } => self.handle_init_join_nack(from, now, out),
            ClusterMessage::Join(request) => self.handle_join(request, out),
            ClusterMessage::Welcome { from, gossip } => self.handle_welcome(from, gossip, now, out),
            ClusterMessage::JoinRejected { from, reason } => {
                self.handle_join_rejected(from, reason, out)
            }
            ClusterMessage::Gossip { from, to, gossip } => {
                self.receive_gossip(from, to, gossip, now, out)
            }
            ClusterMessage::GossipStatus {
                from,
                to,
                version,
                seen_digest,
            } => self.receive_gossip_status(from, to, version, seen_digest, out),
        }
    }

    fn require_member(&self) -> Result<(), CommandError> {
        if self.join == JoinState::Member {
            Ok(())
        } else {
            Err(CommandError::NotMember)
        }
    }

    /// Replaces a member and bumps the version.
    fn update_member(&mut self, member: Member) {
        Arc::make_mut(&mut self.gossip).put_member(member);
        Arc::make_mut(&mut self.gossip).increment(&self.self_node);
    }

    fn down_member(&mut self, member: &Member) {
        if member.status == MemberStatus::Down {
            return;
        }
        tracing::info!(node = %member.unique_address, status = %member.status, "marking member as down");
        self.update_member(member.with_status(MemberStatus::Down));
    }

    fn update_reachability(
        &mut self,
        subject: &UniqueAddress,
        next: crate::reachability::Reachability,
    ) {
        if self.join != JoinState::Member
            || *subject == self.self_node
            || !self.gossip.has_member(subject)
            || next == *self.gossip.reachability()
        {
            return;
        }
        tracing::debug!(
            node = %self.self_node, subject = %subject,
            reachable = next.is_reachable_by(&self.self_node, subject),
            "reachability changed"
        );
        Arc::make_mut(&mut self.gossip).set_reachability(next);
        Arc::make_mut(&mut self.gossip).increment(&self.self_node);
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let join = match &self.join {
            JoinState::Seeding(process) => Some(process.next_deadline()),
            JoinState::Joining { retry_at, .. } => *retry_at,
            _ => None,
        };
        [join, self.next_gossip, self.next_leader_actions]
            .into_iter()
            .flatten()
            .chain(self.extra_gossip_rounds.iter().copied())
            .min()
            .map(|deadline| deadline.max(now))
    }
}

#[cfg(test)]
mod tests;
