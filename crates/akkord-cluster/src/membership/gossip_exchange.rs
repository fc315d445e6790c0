//! Gossip rounds and the handling of received gossip.
//!
//! Every `gossip_interval` a member picks one peer: with probability
//! [`MembershipSettings::adjusted_gossip_different_view_probability`] among the members
//! that have not seen the current version, otherwise among all. Only members that this
//! node observes as reachable are picked, never this node itself. A peer that has seen the
//! current version gets a [`ClusterMessage::GossipStatus`] (version and seen digest), any
//! other peer the full state. While fewer than half of the members have seen the current
//! version, two extra rounds run within the interval.
//!
//! A removed incarnation that still gossips gets the full state in reply, and the tombstone
//! in that state marks it removed.
//!
//! On a status, the receiver sends its full state when it is newer, concurrent or has a
//! different seen set, and its own status when it is older, which makes the peer send the
//! full state. On a full state, the receiver keeps its own when newer, adopts the remote one
//! when newer, merges seen sets when equal, and merges both when concurrent. It then sends
//! its result back unless the sender has already seen it.
//!
//! [`MembershipSettings::adjusted_gossip_different_view_probability`]:
//! crate::membership::MembershipSettings::adjusted_gossip_different_view_probability

use std::sync::Arc;
use std::time::Instant;

use akkord_actor::address::UniqueAddress;
use rand::Rng;

use crate::gossip::Gossip;
use crate::membership::{ClusterMessage, JoinState, MembershipCore, MembershipOutputs};
use crate::vclock::{ClockOrdering, VectorClock};

impl MembershipCore {
    /// Runs the gossip rounds that are due: the regular one and extra ones.
    pub(super) fn tick_gossip(&mut self, now: Instant, out: &mut MembershipOutputs) {
        if self.join != JoinState::Member {
            return;
        }
        let extra_due = self.extra_gossip_rounds.iter().any(|at| *at <= now);
        self.extra_gossip_rounds.retain(|at| *at > now);
        let regular_due = self.next_gossip.is_some_and(|at| at <= now);
        if regular_due {
            self.next_gossip = Some(now + self.settings.gossip_interval);
            Arc::make_mut(&mut self.gossip)
                .prune_tombstones(now, self.settings.prune_gossip_tombstones_after);
            if self.is_gossip_speedup_needed() {
                let third = self.settings.gossip_interval / 3;
                self.extra_gossip_rounds = vec![now + third, now + third * 2];
            }
        }
        if regular_due || extra_due {
            self.gossip_round(out);
        }
    }

    /// Sends the full state to `to`.
    pub(super) fn send_gossip(&self, to: &UniqueAddress, out: &mut MembershipOutputs) {
        tracing::trace!(node = %self.self_node, to = %to, "sending gossip");
        out.messages.push((
            to.address.clone(),
            ClusterMessage::Gossip {
                from: self.self_node.clone(),
                to: to.clone(),
                gossip: Arc::clone(&self.gossip),
            },
        ));
    }

    pub(super) fn receive_gossip(
        &mut self,
        from: UniqueAddress,
        to: UniqueAddress,
        remote: Arc<Gossip>,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        if !self.accepts_gossip_from(&from, &to) {
            return;
        }
        if remote.is_tombstoned(&self.self_node) {
            self.handle_self_removed(now);
            return;
        }
        if self.gossip.is_tombstoned(&from) {
            self.send_removal_notice(&from, out);
            return;
        }
        if !self.gossip.has_member(&from) {
            tracing::debug!(node = %self.self_node, from = %from, "ignored gossip from unknown or removed member");
            return;
        }
        if !remote.has_member(&self.self_node) {
            tracing::debug!(node = %self.self_node, from = %from, "ignored gossip that does not list this node");
            return;
        }

        let ordering = remote.version().compare(self.gossip.version());
        let remote_seen_by_self = remote.seen_by(&self.self_node);
        let talkback = match ordering {
            ClockOrdering::Same => {
                Arc::make_mut(&mut self.gossip).merge_seen(&remote);
                !remote_seen_by_self
            }
            ClockOrdering::Before => true,
            ClockOrdering::After => {
                self.gossip = remote;
                !remote_seen_by_self
            }
            ClockOrdering::Concurrent => {
                self.gossip = Arc::new(remote.merge(&self.gossip));
                true
            }
        };
        Arc::make_mut(&mut self.gossip).mark_seen(&self.self_node);
        tracing::trace!(node = %self.self_node, from = %from, ?ordering, "received gossip");

        if !self.gossip.has_member(&self.self_node) {
            self.handle_self_removed(now);
            return;
        }
        if talkback {
            self.send_gossip(&from, out);
        }
    }

    pub(super) fn receive_gossip_status(
        &mut self,
        from: UniqueAddress,
        to: UniqueAddress,
        version: VectorClock,
        seen_digest: u64,
        out: &mut MembershipOutputs,
    ) {
        if !self.accepts_gossip_from(&from, &to) {
            return;
        }
        if self.gossip.is_tombstoned(&from) {
            self.send_removal_notice(&from, out);
            return;
        }
        if !self.gossip.has_member(&from) {
            tracing::debug!(node = %self.self_node, from = %from, "ignored gossip status from unknown member");
            return;
        }
        match version.compare(self.gossip.version()) {
            ClockOrdering::Same if seen_digest == self.gossip.seen_digest() => {}
            ClockOrdering::Same | ClockOrdering::Before | ClockOrdering::Concurrent => {
                self.send_gossip(&from, out)
            }
            ClockOrdering::After => self.send_gossip_status(&from, out),
        }
    }

    /// Marks this node removed after learning it from the cluster.
    pub(super) fn handle_self_removed(&mut self, now: Instant) {
        tracing::info!(node = %self.self_node, "this node was removed from the cluster");
        if self.gossip.has_member(&self.self_node) {
            Arc::make_mut(&mut self.gossip).remove_member(&self.self_node.clone(), now);
        }
        self.join = JoinState::Removed;
        self.next_gossip = None;
        self.next_leader_actions = None;
        self.extra_gossip_rounds.clear();
    }

    /// Sends the state with its tombstone to a removed incarnation that still gossips, so it
    /// learns of its removal even when the leader's removal message was lost.
    fn send_removal_notice(&self, removed: &UniqueAddress, out: &mut MembershipOutputs) {
        tracing::debug!(node = %self.self_node, from = %removed, "gossip from a removed incarnation; telling it");
        self.send_gossip(removed, out);
    }

    fn accepts_gossip_from(&self, from: &UniqueAddress, to: &UniqueAddress) -> bool {
        if self.join != JoinState::Member {
            tracing::debug!(node = %self.self_node, from = %from, "ignored gossip before joining");
            return false;
        }
        if *to != self.self_node {
            tracing::debug!(node = %self.self_node, from = %from, to = %to, "ignored gossip for another incarnation");
            return false;
        }
        if from.address.system() != self.self_node.address.system() {
            tracing::debug!(node = %self.self_node, from = %from, "ignored gossip from another actor system");
            return false;
        }
        true
    }

    fn send_gossip_status(&self, to: &UniqueAddress, out: &mut MembershipOutputs) {
        out.messages.push((
            to.address.clone(),
            ClusterMessage::GossipStatus {
                from: self.self_node.clone(),
                to: to.clone(),
                version: self.gossip.version().clone(),
                seen_digest: self.gossip.seen_digest(),
            },
        ));
    }

    fn gossip_round(&mut self, out: &mut MembershipOutputs) {
        let Some(peer) = self.select_gossip_peer() else {
            return;
        };
        if self.gossip.seen_by(&peer) {
            self.send_gossip_status(&peer, out);
        } else {
            self.send_gossip(&peer, out);
        }
    }

    fn select_gossip_peer(&mut self) -> Option<UniqueAddress> {
        let reachability = self.gossip.reachability();
        let targets: Vec<&UniqueAddress> = self
            .gossip
            .members()
            .map(|m| &m.unique_address)
            .filter(|node| **node != self.self_node)
            .filter(|node| reachability.is_reachable_by(&self.self_node, node))
            .collect();
        if targets.is_empty() {
            return None;
        }
        let probability = self
            .settings
            .adjusted_gossip_different_view_probability(self.gossip.member_count());
        if self.rng.random::<f64>() < probability {
            let not_seen: Vec<&UniqueAddress> = targets
                .iter()
                .copied()
                .filter(|node| !self.gossip.seen_by(node))
                .collect();
            if !not_seen.is_empty() {
                let index = self.rng.random_range(0..not_seen.len());
                return Some(not_seen[index].clone());
            }
        }
        let index = self.rng.random_range(0..targets.len());
        Some(targets[index].clone())
    }

    fn is_gossip_speedup_needed(&self) -> bool {
        self.gossip.overview().seen.len() < self.gossip.member_count() / 2
    }
}
