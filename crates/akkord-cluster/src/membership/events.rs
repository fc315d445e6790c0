//! Cluster events and the snapshot of the cluster state.
//!
//! Events are computed by comparing the gossip state before and after each change, so every
//! node that goes through the same sequence of states publishes the same events.

use std::collections::{BTreeMap, BTreeSet};

use akkord_actor::address::UniqueAddress;

use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus};
use crate::membership::messages::JoinRejection;

/// A change of cluster membership, as observed by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A member joined; its status is Joining.
    MemberJoined(Member),
    /// A member became WeaklyUp while the cluster had no convergence.
    MemberWeaklyUp(Member),
    /// A member became Up.
    MemberUp(Member),
    /// A member started leaving; its status is Leaving.
    MemberLeft(Member),
    /// A member finished leaving; its status is Exiting and removal follows.
    MemberExited(Member),
    /// A member was marked Down.
    MemberDowned(Member),
    /// A member was removed from the cluster.
    MemberRemoved {
        /// The member, with status Removed.
        member: Member,
        /// Its status before removal, Exiting or Down.
        previous_status: MemberStatus,
    },
    /// An observer reported a member as unreachable.
    UnreachableMember(Member),
    /// All observers report a member as reachable again.
    ReachableMember(Member),
    /// The leader changed; `None` when there is no leader.
    LeaderChanged {
        /// The new leader.
        leader: Option<UniqueAddress>,
    },
    /// The leader among the members with `role` changed.
    RoleLeaderChanged {
        /// The role.
        role: String,
        /// The new role leader.
        leader: Option<UniqueAddress>,
    },
    /// This node was marked Down; it must shut down.
    SelfDowned,
    /// This node was removed from the cluster; it must shut down.
    SelfRemoved,
    /// A member rejected the join request of this node; joining stopped.
    JoinRejected {
        /// The member that rejected the request.
        by: UniqueAddress,
        /// Why.
        reason: JoinRejection,
    },
}

/// A snapshot of the cluster as seen by one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentClusterState {
    /// Members in address order.
    pub members: Vec<Member>,
    /// Members that some observer reports as unreachable or terminated.
    pub unreachable: BTreeSet<UniqueAddress>,
    /// Nodes that have seen the current version.
    pub seen_by: BTreeSet<UniqueAddress>,
    /// The leader.
    pub leader: Option<UniqueAddress>,
    /// The leader per role, for every role of a member.
    pub role_leaders: BTreeMap<String, Option<UniqueAddress>>,
    /// Whether the state has converged.
    pub converged: bool,
}

impl CurrentClusterState {
    /// Builds the snapshot of `gossip` as seen from `self_node`.
    pub fn of(gossip: &Gossip, self_node: &UniqueAddress) -> Self {
        Self {
            members: gossip.members().cloned().collect(),
            unreachable: unreachable_members(gossip, self_node),
            seen_by: gossip.overview().seen.clone(),
            leader: gossip.leader(self_node),
            role_leaders: role_leaders(gossip, self_node),
            converged: gossip.is_converged(self_node),
        }
    }
}

/// Lists the events that lead from `old` to `new`, as seen from `self_node`.
///
/// Order: member status changes and additions, removals, unreachable, reachable, leader,
/// role leaders, and finally [`ClusterEvent::SelfDowned`] or [`ClusterEvent::SelfRemoved`].
pub fn diff(old: &Gossip, new: &Gossip, self_node: &UniqueAddress) -> Vec<ClusterEvent> {
    let mut events = Vec::new();

    let mut removed = Vec::new();
    for (before, after) in old.zip_members(new) {
        let Some(member) = after else {
            if let Some(member) = before {
                removed.push(member);
            }
            continue;
        };
        if before.map(|m| m.status) == Some(member.status) {
            continue;
        }
        let event = match member.status {
            MemberStatus::Joining => ClusterEvent::MemberJoined(member.clone()),
            MemberStatus::WeaklyUp => ClusterEvent::MemberWeaklyUp(member.clone()),
            MemberStatus::Up => ClusterEvent::MemberUp(member.clone()),
            MemberStatus::Leaving => ClusterEvent::MemberLeft(member.clone()),
            MemberStatus::Exiting => ClusterEvent::MemberExited(member.clone()),
            MemberStatus::Down => ClusterEvent::MemberDowned(member.clone()),
            MemberStatus::PreparingForShutdown
            | MemberStatus::ReadyForShutdown
            | MemberStatus::Removed => continue,
        };
        events.push(event);
    }

    for member in removed {
        events.push(ClusterEvent::MemberRemoved {
            member: member.with_status(MemberStatus::Removed),
            previous_status: member.status,
        });
    }

    let old_unreachable = unreachable_members(old, self_node);
    let new_unreachable = unreachable_members(new, self_node);
    for node in new_unreachable.difference(&old_unreachable) {
        if let Some(member) = new.member(node) {
            events.push(ClusterEvent::UnreachableMember(member.clone()));
        }
    }
    for node in old_unreachable.difference(&new_unreachable) {
        if let Some(member) = new.member(node) {
            events.push(ClusterEvent::ReachableMember(member.clone()));
        }
    }

    let leader = new.leader(self_node);
    if old.leader(self_node) != leader {
        events.push(ClusterEvent::LeaderChanged { leader });
    }
    let old_role_leaders = role_leaders(old, self_node);
    for (role, leader) in role_leaders(new, self_node) {
        if old_role_leaders.get(&role) != Some(&leader) {
            events.push(ClusterEvent::RoleLeaderChanged { role, leader });
        }
    }
    for role in old_role_leaders.keys() {
        if new.members().all(|m| !m.has_role(role)) {
            events.push(ClusterEvent::RoleLeaderChanged {
                role: role.clone(),
                leader: None,
            });
        }
    }

    let was_down = old
        .member(self_node)
        .is_some_and(|m| m.status == MemberStatus::Down);
    let is_down = new
        .member(self_node)
        .is_some_and(|m| m.status == MemberStatus::Down);
    if is_down && !was_down {
        events.push(ClusterEvent::SelfDowned);
    }
    if old.has_member(self_node) && !new.has_member(self_node) {
        events.push(ClusterEvent::SelfRemoved);
    }
    events
}

fn unreachable_members(gossip: &Gossip, self_node: &UniqueAddress) -> BTreeSet<UniqueAddress> {
    gossip
        .reachability()
        .all_unreachable_or_terminated()
        .into_iter()
        .filter(|node| node != self_node && gossip.has_member(node))
        .collect()
}

fn role_leaders(
    gossip: &Gossip,
    self_node: &UniqueAddress,
) -> BTreeMap<String, Option<UniqueAddress>> {
    let roles: BTreeSet<&String> = gossip.members().flat_map(|m| m.roles.iter()).collect();
    roles
        .into_iter()
        .map(|role| (role.clone(), gossip.role_leader(role, self_node)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use akkord_actor::address::Address;
    use std::time::Instant;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(Address::new("sys", "127.0.0.1", port).unwrap(), 9)
    }

    fn with(members: &[(u16, MemberStatus)]) -> Gossip {
        let mut g = Gossip::new();
        for (port, status) in members {
            g.put_member(Member {
                status: *status,
                roles: ["worker".to_owned()].into(),
                ..Member::joining(node(*port), BTreeSet::new(), "1".into())
            });
        }
        g.increment(&node(1));
        g
    }

    #[test]
    fn status_changes_become_events() {
        use MemberStatus::*;
        let old = with(&[(1, Up), (2, Joining), (3, Up)]);
        let new = with(&[(1, Up), (2, Up), (3, Leaving), (4, Joining)]);
        let events = diff(&old, &new, &node(1));
        assert!(matches!(&events[0], ClusterEvent::MemberUp(m) if m.unique_address == node(2)));
        assert!(matches!(&events[1], ClusterEvent::MemberLeft(m) if m.unique_address == node(3)));
        assert!(matches!(&events[2], ClusterEvent::MemberJoined(m) if m.unique_address == node(4)));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn removal_and_self_removal() {
        use MemberStatus::*;
        let old = with(&[(1, Up), (2, Exiting)]);
        let mut new = old.clone();
        new.remove_member(&node(2), Instant::now());
        let events = diff(&old, &new, &node(2));
        assert!(events.contains(&ClusterEvent::MemberRemoved {
            member: old.member(&node(2)).unwrap().with_status(Removed),
            previous_status: Exiting,
        }));
        assert_eq!(events.last(), Some(&ClusterEvent::SelfRemoved));
    }

    #[test]
    fn unreachable_and_leader_events() {
        use MemberStatus::*;
        let old = with(&[(1, Up), (2, Up)]);
        let mut new = old.clone();
        new.set_reachability(new.reachability().unreachable(&node(2), &node(1)));
        let events = diff(&old, &new, &node(2));
        assert!(events.contains(&ClusterEvent::UnreachableMember(
            old.member(&node(1)).unwrap().clone()
        )));
        assert!(events.contains(&ClusterEvent::LeaderChanged {
            leader: Some(node(2))
        }));
        assert!(events.contains(&ClusterEvent::RoleLeaderChanged {
            role: "worker".into(),
            leader: Some(node(2))
        }));
        let back = diff(&new, &old, &node(2));
        assert!(back.contains(&ClusterEvent::ReachableMember(
            old.member(&node(1)).unwrap().clone()
        )));
    }

    #[test]
    fn self_downed_published_once() {
        use MemberStatus::*;
        let old = with(&[(1, Up), (2, Up)]);
        let new = with(&[(1, Up), (2, Down)]);
        assert!(diff(&old, &new, &node(2)).contains(&ClusterEvent::SelfDowned));
        assert!(!diff(&new, &new, &node(2)).contains(&ClusterEvent::SelfDowned));
    }
}
