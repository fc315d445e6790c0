//! Leader actions: the status moves only the leader makes.
//!
//! Every `leader_actions_interval` the node that computes itself as leader runs, when the state
//! has converged:
//! 1. Joining and WeaklyUp members become Up, in address order with increasing up numbers,
//!    once `min_nr_of_members` and every per-role minimum are met;
//! 2. Leaving members become Exiting;
//! 3. Down members are removed, and so are Exiting members that are unreachable or have
//!    seen the state in which they are Exiting; each removal leaves a tombstone, and each
//!    removed node gets the new state so it learns of its removal.
//!
//! Without convergence, after `weakly_up_after` of leader ticks without convergence, the
//! leader moves Joining members that are reachable to WeaklyUp (when the member minimums
//! are met).

use std::sync::Arc;
use std::time::Instant;

use akkord_actor::address::UniqueAddress;

use crate::member::{Member, MemberStatus};
use crate::membership::{JoinState, MembershipCore, MembershipOutputs};

impl MembershipCore {
    pub(super) fn tick_leader(&mut self, now: Instant, out: &mut MembershipOutputs) {
        if self.join != JoinState::Member || self.next_leader_actions.is_none_or(|at| at > now) {
            return;
        }
        self.next_leader_actions = Some(now + self.settings.leader_actions_interval);
        self.leader_actions(now, out);
    }

    /// Runs one round of leader actions if this node is the leader.
    pub(super) fn leader_actions(&mut self, now: Instant, out: &mut MembershipOutputs) {
        let is_leader = self.gossip.leader(&self.self_node).as_ref() == Some(&self.self_node);
        if is_leader != self.is_leader {
            tracing::debug!(node = %self.self_node, is_leader, "leadership changed");
            self.is_leader = is_leader;
        }
        if !is_leader {
            self.leader_ticks_without_convergence = 0;
            return;
        }
        if self.gossip.is_converged(&self.self_node) {
            self.leader_ticks_without_convergence = 0;
            self.leader_actions_on_convergence(now, out);
            return;
        }
        self.leader_ticks_without_convergence =
            self.leader_ticks_without_convergence.saturating_add(1);
        let waited = self.settings.leader_actions_interval * self.leader_ticks_without_convergence;
        if self
            .settings
            .weakly_up_after
            .is_some_and(|after| waited >= after)
        {
            self.move_joining_to_weakly_up();
        }
    }

    fn leader_actions_on_convergence(&mut self, now: Instant, out: &mut MembershipOutputs) {
        let enough_members = self.is_min_nr_of_members_fulfilled();
        let mut up_number = self
            .gossip
            .members()
            .map(|m| m.up_number)
            .filter(|n| *n != u32::MAX)
            .max()
            .unwrap_or(0);

        let mut changed: Vec<Member> = Vec::new();
        let mut removed: Vec<Member> = Vec::new();
        for member in self.gossip.members() {
            match member.status {
                MemberStatus::Joining | MemberStatus::WeaklyUp if enough_members => {
                    up_number = up_number.saturating_add(1);
                    let mut up = member.with_status(MemberStatus::Up);
                    up.up_number = up_number;
                    changed.push(up);
                }
                MemberStatus::Leaving => changed.push(member.with_status(MemberStatus::Exiting)),
                MemberStatus::Down => removed.push(member.clone()),
                MemberStatus::Exiting
                    if self.gossip.seen_by(&member.unique_address)
                        || !self
                            .gossip
                            .is_reachable_excluding_downed_observers(&member.unique_address) =>
                {
                    removed.push(member.clone())
                }
                _ => {}
            }
        }
        if changed.is_empty() && removed.is_empty() {
            return;
        }

        for member in &changed {
            tracing::debug!(node = %member.unique_address, status = %member.status, "leader moved member");
            Arc::make_mut(&mut self.gossip).put_member(member.clone());
        }
        for member in &removed {
            tracing::debug!(node = %member.unique_address, previous = %member.status, "leader removed member");
            Arc::make_mut(&mut self.gossip).remove_member(&member.unique_address, now);
        }
        Arc::make_mut(&mut self.gossip).increment(&self.self_node);

        // Tell removed and newly exiting nodes directly instead of waiting for a gossip round.
        // When this message is lost, the removed node learns of its removal from the reply
        // to its next gossip round.
        let notify: Vec<UniqueAddress> = removed
            .iter()
            .chain(changed.iter().filter(|m| m.status == MemberStatus::Exiting))
            .map(|m| m.unique_address.clone())
            .filter(|node| *node != self.self_node)
            .collect();
        for node in &notify {
            self.send_gossip(node, out);
        }
        if removed.iter().any(|m| m.unique_address == self.self_node) {
            self.handle_self_removed(now);
        }
    }

    fn move_joining_to_weakly_up(&mut self) {
        if !self.is_min_nr_of_members_fulfilled() {
            return;
        }
        let moved: Vec<Member> = self
            .gossip
            .members()
            .filter(|m| m.status == MemberStatus::Joining)
            .filter(|m| {
                self.gossip
                    .is_reachable_excluding_downed_observers(&m.unique_address)
            })
            .map(|m| m.with_status(MemberStatus::WeaklyUp))
            .collect();
        if moved.is_empty() {
            return;
        }
        for member in moved {
            tracing::debug!(node = %member.unique_address, "leader moved member to weakly up");
            Arc::make_mut(&mut self.gossip).put_member(member);
        }
        Arc::make_mut(&mut self.gossip).increment(&self.self_node);
    }

    fn is_min_nr_of_members_fulfilled(&self) -> bool {
        let settings = &self.settings;
        self.gossip.member_count() >= settings.min_nr_of_members.get()
            && settings.role_min_nr_of_members.iter().all(|(role, min)| {
                self.gossip.members().filter(|m| m.has_role(role)).count() >= *min
            })
    }
}
