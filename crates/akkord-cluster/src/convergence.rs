//! Convergence and leader election, computed from a gossip state.
//!
//! Convergence means every member whose view matters has seen the current version, so a
//! leader can change member status without two leaders deciding differently. The rules
//! follow Akka Cluster 2.6:
//! - every member with status Up, Leaving, PreparingForShutdown or ReadyForShutdown has
//!   seen the current version (Joining, WeaklyUp, Exiting and Down members need not);
//! - every member that some observer reports as unreachable or terminated is Down or
//!   Exiting. Records made by Down observers do not count, and neither do records about the
//!   node asking.
//!
//! The leader is the first member in address order that is reachable and Up, Leaving,
//! PreparingForShutdown or ReadyForShutdown. When there is none, it is the first reachable
//! member that is not Down, preferring WeaklyUp over Joining over Exiting. The node asking
//! always counts itself as reachable. Every node computes the same leader from the same
//! state.

use std::cmp::Ordering;
use std::fmt;

use akkord_actor::address::UniqueAddress;

use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus};
use crate::reachability::Reachability;

/// A member that keeps the cluster from converging, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvergenceBlocker {
    /// The member's status requires it to see the current version, and it has not.
    NotSeen {
        /// The member.
        node: UniqueAddress,
        /// Its status.
        status: MemberStatus,
    },
    /// The member is unreachable and neither Down nor Exiting: someone must down it or it
    /// must come back.
    UnreachableNotDowned {
        /// The member.
        node: UniqueAddress,
        /// Its status.
        status: MemberStatus,
    },
}

impl fmt::Display for ConvergenceBlocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvergenceBlocker::NotSeen { node, status } => {
                write!(f, "{node} ({status}) has not seen the latest gossip")
            }
            ConvergenceBlocker::UnreachableNotDowned { node, status } => {
                write!(f, "{node} ({status}) is unreachable and not downed")
            }
        }
    }
}

/// Returns true for statuses whose members must have seen a version for convergence.
pub fn must_see_for_convergence(status: MemberStatus) -> bool {
    matches!(
        status,
        MemberStatus::Up
            | MemberStatus::Leaving
            | MemberStatus::PreparingForShutdown
            | MemberStatus::ReadyForShutdown
    )
}

/// Returns true for statuses that an unreachable member may have without blocking
/// convergence; the leader removes such members.
pub fn unreachable_may_be_removed(status: MemberStatus) -> bool {
    matches!(status, MemberStatus::Down | MemberStatus::Exiting)
}

/// Returns true for statuses that make a member a leader candidate of the first choice.
pub fn leader_status(status: MemberStatus) -> bool {
    must_see_for_convergence(status)
}

impl Gossip {
    /// Returns the reachability table without the records of Down members.
    pub fn reachability_excluding_downed_observers(&self) -> Reachability {
        let downed: Vec<&UniqueAddress> = self
            .members()
            .filter(|m| m.status == MemberStatus::Down)
            .map(|m| &m.unique_address)
            .collect();
        self.reachability().without_observers(downed)
    }

    /// Lists the members that keep this state from converging, as seen from `self_node`.
    pub fn convergence_blockers(&self, self_node: &UniqueAddress) -> Vec<ConvergenceBlocker> {
        let reachability = self.reachability_excluding_downed_observers();
        let mut blockers = Vec::new();
        for member in self.members() {
            let node = &member.unique_address;
            if must_see_for_convergence(member.status) && !self.seen_by(node) {
                blockers.push(ConvergenceBlocker::NotSeen {
                    node: node.clone(),
                    status: member.status,
                });
            }
            if node != self_node
                && !reachability.is_reachable(node)
                && !unreachable_may_be_removed(member.status)
            {
                blockers.push(ConvergenceBlocker::UnreachableNotDowned {
                    node: node.clone(),
                    status: member.status,
                });
            }
        }
        blockers
    }

    /// Returns true when this state has converged, as seen from `self_node`.
    pub fn is_converged(&self, self_node: &UniqueAddress) -> bool {
        self.convergence_blockers(self_node).is_empty()
    }

    /// Returns the leader of the cluster, as seen from `self_node`.
    pub fn leader(&self, self_node: &UniqueAddress) -> Option<UniqueAddress> {
        self.leader_of(self.members(), self_node)
    }

    /// Returns the leader among the members with `role`, as seen from `self_node`.
    pub fn role_leader(&self, role: &str, self_node: &UniqueAddress) -> Option<UniqueAddress> {
        self.leader_of(self.members().filter(|m| m.has_role(role)), self_node)
    }

    /// Returns true when `node` is reachable by every observer that is not Down.
    pub fn is_reachable_excluding_downed_observers(&self, node: &UniqueAddress) -> bool {
        self.reachability_excluding_downed_observers()
            .is_reachable(node)
    }

    fn leader_of<'a>(
        &self,
        candidates: impl Iterator<Item = &'a Member>,
        self_node: &UniqueAddress,
    ) -> Option<UniqueAddress> {
        let reachability = self.reachability_excluding_downed_observers();
        let reachable: Vec<&Member> = candidates
            .filter(|m| m.status != MemberStatus::Down)
            .filter(|m| {
                &m.unique_address == self_node || reachability.is_reachable(&m.unique_address)
            })
            .collect();
        if let Some(first) = reachable.iter().find(|m| leader_status(m.status)) {
            return Some(first.unique_address.clone());
        }
        reachable
            .into_iter()
            .min_by(|a, b| fallback_leader_order(a, b))
            .map(|m| m.unique_address.clone())
    }
}

/// Orders leader candidates when none is Up or Leaving: other statuses first, then
/// WeaklyUp, Joining and Exiting, each group in address order.
fn fallback_leader_order(a: &Member, b: &Member) -> Ordering {
    let rank = |m: &Member| match m.status {
        MemberStatus::WeaklyUp => 1,
        MemberStatus::Joining => 2,
        MemberStatus::Exiting => 3,
        MemberStatus::Down => 4,
        _ => 0,
    };
    rank(a)
        .cmp(&rank(b))
        .then_with(|| a.unique_address.cmp(&b.unique_address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use akkord_actor::address::Address;
    use std::collections::BTreeSet;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(
            Address::new("sys", "127.0.0.1", port).unwrap(),
            100 + u64::from(port),
        )
    }

    fn state(members: &[(u16, MemberStatus)], seen: &[u16]) -> Gossip {
        let mut g = Gossip::new();
        for (port, status) in members {
            let mut roles = BTreeSet::new();
            if port % 2 == 0 {
                roles.insert("even".to_owned());
            }
            g.put_member(Member {
                status: *status,
                ..Member::joining(node(*port), roles, "1".into())
            });
        }
        g.increment(&node(members[0].0));
        for port in seen {
            g.mark_seen(&node(*port));
        }
        g
    }

    use MemberStatus::*;

    #[test]
    fn converged_when_all_up_have_seen() {
        let g = state(&[(1, Up), (2, Up), (3, Joining)], &[1, 2]);
        assert!(g.is_converged(&node(1)));
    }

    #[test]
    fn up_member_not_seen_blocks() {
        let g = state(&[(1, Up), (2, Up), (3, Leaving)], &[1, 2]);
        assert_eq!(
            g.convergence_blockers(&node(1)),
            vec![ConvergenceBlocker::NotSeen {
                node: node(3),
                status: Leaving
            }]
        );
    }

    #[test]
    fn unreachable_blocks_until_downed() {
        let mut g = state(&[(1, Up), (2, Up), (3, Up)], &[1, 2, 3]);
        g.set_reachability(g.reachability().unreachable(&node(1), &node(3)));
        assert_eq!(
            g.convergence_blockers(&node(1)),
            vec![ConvergenceBlocker::UnreachableNotDowned {
                node: node(3),
                status: Up
            }]
        );
        g.put_member(g.member(&node(3)).unwrap().with_status(Down));
        assert!(g.is_converged(&node(1)));
    }

    #[test]
    fn records_of_downed_observer_ignored() {
        let mut g = state(&[(1, Up), (2, Up), (3, Down)], &[1, 2]);
        g.set_reachability(g.reachability().unreachable(&node(3), &node(2)));
        assert!(g.is_converged(&node(1)));
    }

    #[test]
    fn leader_is_first_reachable_up() {
        let mut g = state(&[(1, Joining), (2, Up), (3, Up), (4, Up)], &[]);
        assert_eq!(g.leader(&node(4)), Some(node(2)));
        g.set_reachability(g.reachability().unreachable(&node(3), &node(2)));
        assert_eq!(g.leader(&node(4)), Some(node(3)));
        assert_eq!(g.leader(&node(2)), Some(node(2)));
        assert_eq!(g.role_leader("even", &node(4)), Some(node(4)));
    }

    #[test]
    fn leader_falls_back_without_up() {
        let g = state(&[(1, Exiting), (2, Joining), (3, WeaklyUp), (4, Down)], &[]);
        assert_eq!(g.leader(&node(1)), Some(node(3)));
        let g = state(&[(1, Down)], &[]);
        assert_eq!(g.leader(&node(1)), None);
    }
}
