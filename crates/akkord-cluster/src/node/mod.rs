//! The sans-IO cluster node: membership, heartbeats and the split brain resolver in one
//! state machine.
//!
//! [`ClusterNode`] owns a [`MembershipCore`], a [`HeartbeatCore`] and a
//! [`SplitBrainResolver`] and wires them together, so a shell (an actor in production, a
//! simulator node in tests) only moves [`NodeMessage`]s and calls [`ClusterNode::tick`]. It
//! has no socket, clock or task of its own.
//!
//! Wiring:
//! - after every change of the membership state, the heartbeat ring gets the current
//!   members and the unreachable ones ([`HeartbeatCore::update_members`]), and the resolver
//!   gets a [`ClusterView`] of members, unreachability records, seen set and leadership;
//! - heartbeat observations become this node's reachability records
//!   ([`MembershipCore::mark_unreachable`] and [`MembershipCore::mark_reachable`]);
//! - resolver decisions mark members Down ([`MembershipCore::down`]);
//! - when this node's own state marks it Down or Removed, it publishes
//!   [`NodeEvent::ShutdownRequested`] once and ignores all further input. When it was
//!   downed, it first sends its state to every member it can reach, so the members it downed
//!   together with itself learn of it without waiting for their own resolver.
//!
//! Steps of [`ClusterNode::tick`]:
//!
//! 1. Run the membership timers that are due: join retries, leader actions, gossip rounds.
//! 2. When heartbeat work is due, run the heartbeat tick: send its requests, report a late
//!    round as [`NodeEvent::HeartbeatTickLate`] and record each reachability observation.
//! 3. When a resolver tick is due and this node is a member, run the resolver and mark
//!    Down every member it decided to down, publishing [`NodeEvent::ResolverDecision`].
//! 4. At the same resolver tick, check convergence: when the state has not converged for
//!    `convergence_blocked_report_after`, publish [`NodeEvent::ConvergenceBlocked`] with
//!    the blockers, again every such interval while it lasts.
//! 5. Request the next tick at the earliest deadline of the three cores.
//!
//! Every step that changed the membership state refreshes the ring and the resolver view
//! before the next step runs, so a resolver tick always decides on the latest state. A
//! change of the seen set alone reaches the resolver at its next tick, because the view
//! costs time linear in the number of members to build; so the resolver may restart its
//! stable timer up to one `resolver_tick_interval` late after such a change.
//!
//! # Example
//!
//! Node `a` forms a cluster alone and becomes Up at its first leader tick.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use akkord_actor::address::{Address, UniqueAddress};
//! use akkord_cluster::member::MemberStatus;
//! use akkord_cluster::node::{ClusterNode, ClusterNodeSettings, NodeOutputs};
//!
//! let a = UniqueAddress::new(Address::new("demo", "127.0.0.1", 1).unwrap(), 7);
//! let mut node = ClusterNode::new(a.clone(), ClusterNodeSettings::default(), 1).unwrap();
//! let start = Instant::now();
//! let mut out = NodeOutputs::new();
//! node.start(start, &mut out);
//! node.join(a.address.clone(), start, &mut out);
//! let mut now = start;
//! while now < start + Duration::from_secs(2) {
//!     let mut out = NodeOutputs::new();
//!     node.tick(now, &mut out);
//!     now = out.next_tick.expect("a running node always wants a tick");
//! }
//! assert_eq!(node.self_status(), Some(MemberStatus::Up));
//! ```

mod messages;
mod settings;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use akkord_actor::address::{Address, UniqueAddress};

pub use messages::{NodeEvent, NodeMessage, NodeOutputs, ShutdownReason};
pub use settings::{ClusterNodeSettings, InvalidClusterSetting};

use crate::convergence::ConvergenceBlocker;
use crate::heartbeat::{HeartbeatCore, ReachabilityObservation};
use crate::member::MemberStatus;
use crate::membership::{
    ClusterEvent, ClusterMessage, CommandError, MembershipCore, MembershipOutputs,
};
use crate::reachability::{Reachability, ReachabilityStatus};
use crate::sbr::{ClusterView, SplitBrainResolver, UnreachableRecord};
use crate::vclock::VectorClock;

/// One cluster node's membership, failure detection and split brain resolution.
#[derive(Debug)]
pub struct ClusterNode {
    self_node: UniqueAddress,
    settings: ClusterNodeSettings,
    membership: MembershipCore,
    heartbeat: HeartbeatCore,
    resolver: SplitBrainResolver,
    /// Set once this node saw itself Down or Removed; all later input is ignored.
    stopped: Option<ShutdownReason>,
    /// Tick the membership core requested last.
    membership_tick: Option<Instant>,
    next_resolver_tick: Option<Instant>,
    /// Members and unreachable members the heartbeat ring was last built from.
    ring_members: Vec<UniqueAddress>,
    ring_unreachable: BTreeSet<UniqueAddress>,
    /// Parts of the state the resolver view was last built from.
    view_key: Option<ViewKey>,
    /// Set when the seen set changed after the resolver view was built.
    resolver_view_stale: bool,
    /// Version and, while some member is unreachable, seen set of the state at the last
    /// refresh; every change of members or reachability changes the version.
    refreshed: Option<(VectorClock, Option<BTreeSet<UniqueAddress>>)>,
    /// When this node, as a member, last went from converged to not converged.
    unconverged_since: Option<Instant>,
    next_blocked_report: Option<Instant>,
}

impl ClusterNode {
    /// Creates the node of incarnation `self_node`; `rng_seed` seeds the membership core's
    /// choice of gossip peers so that runs can be replayed.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidClusterSetting`] when [`ClusterNodeSettings::validate`] fails.
    pub fn new(
        self_node: UniqueAddress,
        settings: ClusterNodeSettings,
        rng_seed: u64,
    ) -> Result<Self, InvalidClusterSetting> {
        settings.validate()?;
        let membership =
            MembershipCore::new(self_node.clone(), settings.membership.clone(), rng_seed)?;
        let heartbeat = HeartbeatCore::new(self_node.clone(), settings.heartbeat.clone())?;
        let resolver = SplitBrainResolver::new(self_node.clone(), settings.sbr.clone())?;
        Ok(Self {
            self_node,
            settings,
            membership,
            heartbeat,
            resolver,
            stopped: None,
            membership_tick: None,
            next_resolver_tick: None,
            ring_members: Vec::new(),
            ring_unreachable: BTreeSet::new(),
            view_key: None,
            resolver_view_stale: false,
            refreshed: None,
            unconverged_since: None,
            next_blocked_report: None,
        })
    }

    /// Starts the timers and, when seed nodes are configured, the seed-node procedure.
    pub fn start(&mut self, now: Instant, out: &mut NodeOutputs) {
        self.step(now, out, |node, result, _| {
            node.next_resolver_tick = Some(now + node.settings.resolver_tick_interval);
            node.membership.start(now, result);
        });
    }

    /// Joins the cluster through the node at `address`; this node's own address forms a
    /// new cluster. Ignored when already a member.
    pub fn join(&mut self, address: Address, now: Instant, out: &mut NodeOutputs) {
        self.step(now, out, |node, result, _| {
            node.membership.join(address, now, result)
        });
    }

    /// Joins the cluster through `seeds` with the seed-node procedure.
    pub fn join_seed_nodes(&mut self, seeds: Vec<Address>, now: Instant, out: &mut NodeOutputs) {
        self.step(now, out, |node, result, _| {
            node.membership.join_seed_nodes(seeds, now, result)
        });
    }

    /// Marks the member at `address` as Leaving; see [`MembershipCore::leave`].
    ///
    /// # Errors
    ///
    /// Returns [`CommandError`] when this node is not a member or no member runs at
    /// `address`.
    pub fn leave(
        &mut self,
        address: &Address,
        now: Instant,
        out: &mut NodeOutputs,
    ) -> Result<(), CommandError> {
        let mut outcome = Err(CommandError::NotMember);
        self.step(now, out, |node, result, _| {
            outcome = node.membership.leave(address, now, result);
        });
        outcome
    }

    /// Marks incarnation `target` as Down; see [`MembershipCore::down`].
    ///
    /// # Errors
    ///
    /// Returns [`CommandError`] when this node is not a member or `target` is not one.
    pub fn down(
        &mut self,
        target: &UniqueAddress,
        now: Instant,
        out: &mut NodeOutputs,
    ) -> Result<(), CommandError> {
        let mut outcome = Err(CommandError::NotMember);
        self.step(now, out, |node, result, _| {
            outcome = node.membership.down(target, now, result);
        });
        outcome
    }

    /// Handles one message received from the node at `from`.
    ///
    /// A heartbeat whose claimed sender differs from `from`, or any message after this node
    /// stopped, is dropped with a debug log line; nothing here panics.
    pub fn handle_message(
        &mut self,
        from: Address,
        message: NodeMessage,
        now: Instant,
        out: &mut NodeOutputs,
    ) {
        if self.stopped.is_some() {
            tracing::debug!(
                node = %self.self_node, from = %from, kind = message.kind(),
                "dropped message after shutdown"
            );
            out.next_tick = None;
            return;
        }
        match message {
            NodeMessage::Membership(message) => self.step(now, out, |node, result, _| {
                node.membership.handle_message(from, message, now, result)
            }),
            NodeMessage::HeartbeatRequest(request) => {
                if request.from.address != from {
                    tracing::debug!(
                        from = %from, claimed = %request.from,
                        "dropped heartbeat request whose sender differs from the transport's peer"
                    );
                } else if let Some(response) = self.heartbeat.handle_request(&request) {
                    out.messages
                        .push((from, NodeMessage::HeartbeatResponse(response)));
                }
                out.next_tick = self.next_deadline(now);
            }
            NodeMessage::HeartbeatResponse(response) => {
                if response.from.address != from {
                    tracing::debug!(
                        from = %from, claimed = %response.from,
                        "dropped heartbeat response whose sender differs from the transport's peer"
                    );
                } else {
                    self.heartbeat.handle_response(&response, now);
                }
                out.next_tick = self.next_deadline(now);
            }
        }
    }

    /// Runs the work due at `now`, in the steps listed in the module documentation.
    pub fn tick(&mut self, now: Instant, out: &mut NodeOutputs) {
        if self.stopped.is_some() {
            out.next_tick = None;
            return;
        }

        // 1. Membership timers.
        if self.membership_tick.is_some_and(|at| at <= now) {
            self.step(now, out, |node, result, _| {
                node.membership.tick(now, result)
            });
        }

        // 2. Heartbeats and reachability observations.
        if self.stopped.is_none() && self.heartbeat.next_wakeup().is_none_or(|at| at <= now) {
            let heartbeat = self.heartbeat.tick(now);
            out.messages
                .extend(heartbeat.requests.into_iter().map(|request| {
                    (
                        request.to.address.clone(),
                        NodeMessage::HeartbeatRequest(request),
                    )
                }));
            if let Some(late_by) = heartbeat.late_by {
                out.events.push(NodeEvent::HeartbeatTickLate { late_by });
            }
            if !heartbeat.observations.is_empty() {
                self.step(now, out, |node, result, _| {
                    for observation in &heartbeat.observations {
                        match observation {
                            ReachabilityObservation::Unreachable(subject) => {
                                node.membership.mark_unreachable(subject, now, result)
                            }
                            ReachabilityObservation::Reachable(subject) => {
                                node.membership.mark_reachable(subject, now, result)
                            }
                        }
                    }
                });
            }
        }

        // 3. Split brain resolver, and 4. the convergence watch at the same interval,
        // because checking convergence costs time linear in the number of members.
        if self.stopped.is_none() && self.next_resolver_tick.is_some_and(|at| at <= now) {
            self.next_resolver_tick = Some(now + self.settings.resolver_tick_interval);
            if self.membership.is_member() {
                if self.resolver_view_stale {
                    self.update_resolver_view(now);
                }
                self.step(now, out, |node, result, events| {
                    node.run_resolver(now, result, events)
                });
            }
            if self.stopped.is_none() {
                self.watch_convergence(now, out);
            }
        }

        // 5. Next tick.
        out.next_tick = self.next_deadline(now);
    }

    /// Completes a lease request of the resolver; see
    /// [`SplitBrainResolver::handle_lease_result`].
    pub fn handle_lease_result(&mut self, acquired: bool, now: Instant, out: &mut NodeOutputs) {
        self.step(now, out, |node, result, events| {
            let decision = node.resolver.handle_lease_result(acquired, now);
            node.apply_resolver_output(decision, now, result, events);
        });
    }

    /// Returns this node's incarnation.
    pub fn self_node(&self) -> &UniqueAddress {
        &self.self_node
    }

    /// Returns the settings.
    pub fn settings(&self) -> &ClusterNodeSettings {
        &self.settings
    }

    /// Returns the membership core.
    pub fn membership(&self) -> &MembershipCore {
        &self.membership
    }

    /// Returns the heartbeat core.
    pub fn heartbeat(&self) -> &HeartbeatCore {
        &self.heartbeat
    }

    /// Returns the split brain resolver.
    pub fn resolver(&self) -> &SplitBrainResolver {
        &self.resolver
    }

    /// Returns this node's status in its own state, `None` before joining and after
    /// removal.
    pub fn self_status(&self) -> Option<MemberStatus> {
        self.membership.self_member().map(|member| member.status)
    }

    /// Returns why this node stopped, `None` while it takes part in the cluster.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.stopped
    }

    /// Returns true while this node has not stopped.
    pub fn is_running(&self) -> bool {
        self.stopped.is_none()
    }

    /// Lists the members that keep this node's state from converging, and why.
    pub fn convergence_blockers(&self) -> Vec<ConvergenceBlocker> {
        self.membership.convergence_blockers()
    }

    /// Returns how long this node's state has not converged, `None` when it has converged
    /// or this node is not a member.
    pub fn unconverged_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.unconverged_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Runs `body` against the membership core, then performs its outputs: messages,
    /// events, the shutdown on self Down or Removed, and the refresh of the ring and the
    /// resolver view.
    fn step(
        &mut self,
        now: Instant,
        out: &mut NodeOutputs,
        body: impl FnOnce(&mut Self, &mut MembershipOutputs, &mut Vec<NodeEvent>),
    ) {
        if self.stopped.is_some() {
            out.next_tick = None;
            return;
        }
        let mut result = MembershipOutputs::new();
        let mut node_events = Vec::new();
        body(self, &mut result, &mut node_events);
        // A body that did not call the membership core, such as a resolver tick that
        // downed nobody, leaves no tick request, and the previous one still holds. A stale
        // request is harmless because the core runs only what is due.
        if result.next_tick.is_some() || self.membership.is_removed() {
            self.membership_tick = result.next_tick;
        }
        out.messages.extend(
            result
                .messages
                .into_iter()
                .map(|(to, message)| (to, NodeMessage::Membership(message))),
        );
        out.events.extend(node_events);
        let mut stop = None;
        let mut left = false;
        for event in result.events {
            match &event {
                ClusterEvent::MemberRemoved {
                    member,
                    previous_status,
                } if member.unique_address == self.self_node => {
                    left = matches!(
                        previous_status,
                        MemberStatus::Leaving | MemberStatus::Exiting
                    );
                }
                ClusterEvent::SelfDowned => stop = stop.or(Some(ShutdownReason::Downed)),
                // A node removed without having left was downed, though the state that
                // marked it Down did not reach it before the one that removed it.
                ClusterEvent::SelfRemoved if left => stop = Some(ShutdownReason::Removed),
                ClusterEvent::SelfRemoved => stop = Some(ShutdownReason::Downed),
                _ => {}
            }
            out.events.push(NodeEvent::Membership(event));
        }
        if let Some(reason) = stop {
            self.shut_down(reason, out);
        } else {
            self.refresh(now);
        }
        out.next_tick = self.next_deadline(now);
    }

    fn run_resolver(
        &mut self,
        now: Instant,
        result: &mut MembershipOutputs,
        events: &mut Vec<NodeEvent>,
    ) {
        let output = self.resolver.tick(now);
        self.apply_resolver_output(output, now, result, events);
    }

    fn apply_resolver_output(
        &mut self,
        output: crate::sbr::SbrOutput,
        now: Instant,
        result: &mut MembershipOutputs,
        events: &mut Vec<NodeEvent>,
    ) {
        if let Some(command) = output.lease {
            events.push(NodeEvent::Lease(command));
        }
        let Some(decision) = output.decision else {
            return;
        };
        // Down this node last, so the other downs are in the state it sends before stopping.
        let (own, others): (Vec<_>, Vec<_>) = output
            .down
            .iter()
            .cloned()
            .partition(|node| *node == self.self_node);
        for target in others.iter().chain(own.iter()) {
            if let Err(error) = self.membership.down(target, now, result) {
                tracing::debug!(
                    node = %self.self_node, target = %target, %error,
                    "resolver down ignored"
                );
            }
        }
        events.push(NodeEvent::ResolverDecision {
            decision,
            down: output.down,
        });
    }

    fn shut_down(&mut self, reason: ShutdownReason, out: &mut NodeOutputs) {
        tracing::info!(node = %self.self_node, reason = ?reason, "cluster node stopping");
        if reason == ShutdownReason::Downed {
            self.send_farewell_gossip(out);
        }
        self.stopped = Some(reason);
        out.events.push(NodeEvent::ShutdownRequested { reason });
    }

    /// Sends the current state to every member this node can reach, once.
    fn send_farewell_gossip(&self, out: &mut NodeOutputs) {
        let gossip = self.membership.gossip();
        let reachability = gossip.reachability();
        let state = Arc::new(gossip.clone());
        for member in gossip.members() {
            let to = &member.unique_address;
            if *to == self.self_node || !reachability.is_reachable_by(&self.self_node, to) {
                continue;
            }
            out.messages.push((
                to.address.clone(),
                NodeMessage::Membership(ClusterMessage::Gossip {
                    from: self.self_node.clone(),
                    to: to.clone(),
                    gossip: state.clone(),
                }),
            ));
        }
    }

    /// Rebuilds the heartbeat ring and the resolver view when the parts they depend on
    /// changed.
    fn refresh(&mut self, now: Instant) {
        let gossip = self.membership.gossip();
        let seen = has_records(gossip.reachability()).then_some(&gossip.overview().seen);
        let unchanged = self
            .refreshed
            .as_ref()
            .is_some_and(|(version, seen_before)| {
                version == gossip.version() && seen_before.as_ref() == seen
            });
        if unchanged {
            return;
        }
        self.refreshed = Some((gossip.version().clone(), seen.cloned()));
        let unreachable: BTreeSet<UniqueAddress> = gossip
            .reachability()
            .all_unreachable_or_terminated()
            .into_iter()
            .filter(|node| gossip.has_member(node))
            .collect();
        let same_members = gossip
            .members()
            .map(|member| &member.unique_address)
            .eq(self.ring_members.iter());
        if !same_members || unreachable != self.ring_unreachable {
            self.ring_members = gossip
                .members()
                .map(|member| member.unique_address.clone())
                .collect();
            let members: BTreeSet<UniqueAddress> = self.ring_members.iter().cloned().collect();
            self.heartbeat.update_members(&members, &unreachable, now);
            self.ring_unreachable = unreachable;
        }

        let is_leader = self.membership.leader().as_ref() == Some(&self.self_node);
        let unchanged = self
            .view_key
            .as_ref()
            .is_some_and(|key| key.matches(gossip, is_leader));
        if unchanged {
            // Only the seen set changed, and it matters only while a member is unreachable.
            // Building a view costs time linear in the number of members, so this change
            // reaches the resolver at its next tick instead of at once.
            self.resolver_view_stale = has_records(gossip.reachability());
        } else {
            self.update_resolver_view(now);
        }
    }

    fn update_resolver_view(&mut self, now: Instant) {
        let gossip = self.membership.gossip();
        let is_leader = self.membership.leader().as_ref() == Some(&self.self_node);
        let view = ClusterView {
            members: gossip.members().cloned().collect(),
            unreachable_records: unreachable_records(gossip.reachability()),
            seen_by: gossip.overview().seen.clone(),
            is_leader,
        };
        self.view_key = Some(ViewKey::of(gossip, is_leader));
        self.resolver.update_view(view, now);
        self.resolver_view_stale = false;
    }

    fn watch_convergence(&mut self, now: Instant, out: &mut NodeOutputs) {
        if !self.membership.is_member() || self.membership.is_converged() {
            self.unconverged_since = None;
            self.next_blocked_report = None;
            return;
        }
        let since = *self.unconverged_since.get_or_insert(now);
        let report_after = self.settings.convergence_blocked_report_after;
        let due = *self.next_blocked_report.get_or_insert(since + report_after);
        if now < due {
            return;
        }
        self.next_blocked_report = Some(now + report_after);
        let blockers = self.membership.convergence_blockers();
        let blocked_for = now.saturating_duration_since(since);
        tracing::warn!(
            node = %self.self_node,
            blocked_ms = blocked_for.as_millis() as u64,
            blockers = blockers.len(),
            "cluster state has not converged"
        );
        out.events.push(NodeEvent::ConvergenceBlocked {
            blocked_for,
            blockers,
        });
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.stopped.is_some() {
            return None;
        }
        [
            self.membership_tick,
            self.heartbeat.next_wakeup(),
            self.next_resolver_tick,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.max(now))
    }
}

/// The parts of the membership state a resolver view is built from, except the seen set,
/// which only serves to find indirectly connected members.
#[derive(Debug)]
struct ViewKey {
    statuses: Vec<(UniqueAddress, MemberStatus)>,
    reachability: Reachability,
    is_leader: bool,
}

impl ViewKey {
    fn of(gossip: &crate::gossip::Gossip, is_leader: bool) -> Self {
        let reachability = gossip.reachability().clone();
        Self {
            statuses: gossip
                .members()
                .map(|member| (member.unique_address.clone(), member.status))
                .collect(),
            reachability,
            is_leader,
        }
    }

    fn matches(&self, gossip: &crate::gossip::Gossip, is_leader: bool) -> bool {
        self.is_leader == is_leader
            && self.reachability == *gossip.reachability()
            && gossip
                .members()
                .map(|member| (&member.unique_address, member.status))
                .eq(self.statuses.iter().map(|(node, status)| (node, *status)))
    }
}

fn has_records(reachability: &Reachability) -> bool {
    reachability
        .records()
        .any(|(_, _, status)| status != ReachabilityStatus::Reachable)
}

fn unreachable_records(reachability: &Reachability) -> Vec<UnreachableRecord> {
    reachability
        .records()
        .filter(|(_, _, status)| *status != ReachabilityStatus::Reachable)
        .map(|(observer, subject, _)| UnreachableRecord {
            observer: observer.clone(),
            subject: subject.clone(),
        })
        .collect()
}
