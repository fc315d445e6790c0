//! Cluster members and their status.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use akkord_actor::address::UniqueAddress;

/// Lifecycle status of a member.
///
/// A member moves forward through these states; merge keeps the one furthest along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    /// Asked to join; not yet moved to Up by the leader.
    Joining,
    /// Joining during missing convergence; usable but not counted for convergence.
    WeaklyUp,
    /// Full member.
    Up,
    /// Full-cluster shutdown requested; moving towards [`MemberStatus::ReadyForShutdown`].
    PreparingForShutdown,
    /// Ready for a full-cluster shutdown.
    ReadyForShutdown,
    /// Asked to leave gracefully.
    Leaving,
    /// Leaving, hand-over done; the leader removes it next.
    Exiting,
    /// Marked as down; the leader removes it next.
    Down,
    /// Gone from the cluster; this incarnation never comes back.
    Removed,
}

impl MemberStatus {
    /// Returns the rank of the status when two copies of one member are merged: the copy
    /// with the higher rank wins.
    ///
    /// The order follows Akka's `Member.highestPriorityOf`: Removed, ReadyForShutdown,
    /// Down, Exiting, Leaving, PreparingForShutdown, Up, WeaklyUp, Joining, from highest
    /// to lowest.
    pub fn merge_rank(self) -> u8 {
        match self {
            MemberStatus::Joining => 0,
            MemberStatus::WeaklyUp => 1,
            MemberStatus::Up => 2,
            MemberStatus::PreparingForShutdown => 3,
            MemberStatus::Leaving => 4,
            MemberStatus::Exiting => 5,
            MemberStatus::Down => 6,
            MemberStatus::ReadyForShutdown => 7,
            MemberStatus::Removed => 8,
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A node in the cluster: its incarnation, status, roles, age and application version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// The incarnation this member is.
    pub unique_address: UniqueAddress,
    /// Current status.
    pub status: MemberStatus,
    /// Roles the node was started with.
    pub roles: BTreeSet<String>,
    /// Order in which the member became Up; a lower number is older. `u32::MAX` until Up.
    pub up_number: u32,
    /// Version of the application running on the node, used by rolling updates.
    pub app_version: String,
}

impl Member {
    /// Creates a member in status [`MemberStatus::Joining`].
    pub fn joining(
        unique_address: UniqueAddress,
        roles: BTreeSet<String>,
        app_version: String,
    ) -> Self {
        Self {
            unique_address,
            status: MemberStatus::Joining,
            roles,
            up_number: u32::MAX,
            app_version,
        }
    }

    /// Returns true when `self` became Up before `other`, ties broken by address.
    pub fn is_older_than(&self, other: &Member) -> bool {
        self.age_order(other) == Ordering::Less
    }

    /// Orders members from oldest to youngest; ties are broken by unique address.
    pub fn age_order(&self, other: &Member) -> Ordering {
        self.up_number
            .cmp(&other.up_number)
            .then_with(|| self.unique_address.cmp(&other.unique_address))
    }

    /// Returns the copy of one member that is furthest along, used by gossip merge.
    ///
    /// The status with the higher [`MemberStatus::merge_rank`] wins; with equal status the
    /// older copy (lower `up_number`) wins.
    pub fn highest_priority_of(self, other: Member) -> Member {
        let key = |m: &Member| (m.status.merge_rank(), std::cmp::Reverse(m.up_number));
        if key(&other) > key(&self) {
            other
        } else {
            self
        }
    }

    /// Returns a copy with status `status`.
    pub fn with_status(&self, status: MemberStatus) -> Member {
        Member {
            status,
            ..self.clone()
        }
    }

    /// Returns the address of the node this member runs on.
    pub fn address(&self) -> &akkord_actor::address::Address {
        &self.unique_address.address
    }

    /// Returns true when the member has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akkord_actor::address::Address;

    fn member(status: MemberStatus, up_number: u32) -> Member {
        let node = UniqueAddress::new(Address::new("s", "h", 1).unwrap(), 7);
        Member {
            status,
            up_number,
            ..Member::joining(node, BTreeSet::new(), "1".into())
        }
    }

    #[test]
    fn merge_prefers_status_furthest_along() {
        use MemberStatus::*;
        let order = [
            Joining,
            WeaklyUp,
            Up,
            PreparingForShutdown,
            Leaving,
            Exiting,
            Down,
            ReadyForShutdown,
            Removed,
        ];
        for (i, low) in order.iter().enumerate() {
            for high in &order[i + 1..] {
                let a = member(*low, 1);
                let b = member(*high, 1);
                assert_eq!(a.clone().highest_priority_of(b.clone()).status, *high);
                assert_eq!(b.highest_priority_of(a).status, *high);
            }
        }
    }

    #[test]
    fn merge_with_equal_status_keeps_older() {
        let a = member(MemberStatus::Up, 3);
        let b = member(MemberStatus::Up, 5);
        assert_eq!(a.clone().highest_priority_of(b.clone()).up_number, 3);
        assert_eq!(b.highest_priority_of(a).up_number, 3);
    }
}
