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

    /// Returns true when the member has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}
