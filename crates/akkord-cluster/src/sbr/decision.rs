//! The decider's view of the cluster, the sides derived from it, and the strategy decisions.
//!
//! Everything here is a pure function of one [`ClusterView`], so both sides of a partition
//! reach opposite decisions from opposite views.

use std::collections::BTreeSet;
use std::time::Duration;

use akkord_actor::address::UniqueAddress;

use crate::member::{Member, MemberStatus};
use crate::sbr::settings::DowningStrategy;

/// One record of the reachability table saying that `observer` cannot reach `subject`.
///
/// Records with status Unreachable and Terminated are passed; Reachable records are left out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnreachableRecord {
    /// The node whose failure detector suspects `subject`.
    pub observer: UniqueAddress,
    /// The suspected node.
    pub subject: UniqueAddress,
}

/// Snapshot of the cluster state held by the membership core of the deciding node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Every member in the local gossip, in any status.
    pub members: Vec<Member>,
    /// Unreachable and Terminated records of the reachability table, from every observer.
    pub unreachable_records: Vec<UnreachableRecord>,
    /// Members that have seen the current gossip version.
    pub seen_by: BTreeSet<UniqueAddress>,
    /// Whether the deciding node is the leader among the members it can reach.
    pub is_leader: bool,
}

/// Decision of a strategy on one side; [`Analysis::nodes_to_down`] turns it into nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This side survives: down the unreachable members.
    DownUnreachable,
    /// This side loses: down every member it can reach, itself included.
    DownReachable,
    /// Down every member.
    DownAll,
    /// Down the indirectly connected members, and the nodes of `then` when it is set: the
    /// strategy's decision about the members that are unreachable for other reasons.
    DownIndirectlyConnected {
        /// Decision about the other unreachable members, `None` when there are none.
        then: Option<Box<Decision>>,
    },
    /// Lease lost while members were indirectly connected: down those and every member
    /// this side can reach.
    ReverseDownIndirectlyConnected,
    /// Acquire the lease after `delay`; on success take [`Decision::DownUnreachable`], on
    /// failure [`Decision::DownReachable`]. Downs nothing by itself.
    AcquireLeaseAndDownUnreachable {
        /// Wait before trying, zero for the majority side.
        delay: Duration,
    },
    /// Acquire the lease after `delay`; on success down the indirectly connected and the
    /// unreachable members, on failure take [`Decision::ReverseDownIndirectlyConnected`].
    /// Downs nothing by itself.
    AcquireLeaseAndDownIndirectlyConnected {
        /// Wait before trying.
        delay: Duration,
    },
}

impl Decision {
    /// Returns the decision to carry out once the lease request completed, or `self` when
    /// no lease is involved.
    pub fn after_lease(&self, acquired: bool) -> Decision {
        match self {
            Decision::AcquireLeaseAndDownUnreachable { .. } if acquired => {
                Decision::DownUnreachable
            }
            Decision::AcquireLeaseAndDownUnreachable { .. } => Decision::DownReachable,
            Decision::AcquireLeaseAndDownIndirectlyConnected { .. } if acquired => {
                Decision::DownIndirectlyConnected {
                    then: Some(Box::new(Decision::DownUnreachable)),
                }
            }
            Decision::AcquireLeaseAndDownIndirectlyConnected { .. } => {
                Decision::ReverseDownIndirectlyConnected
            }
            other => other.clone(),
        }
    }

    /// Returns the wait before acquiring the lease, or `None` when no lease is involved.
    pub fn lease_delay(&self) -> Option<Duration> {
        match self {
            Decision::AcquireLeaseAndDownUnreachable { delay }
            | Decision::AcquireLeaseAndDownIndirectlyConnected { delay } => Some(*delay),
            _ => None,
        }
    }
}

/// The two sides of the cluster as seen from one view.
///
/// Invariants: `reachable` and `unreachable` partition `downable`; `indirectly_connected`
/// and the members of `counted` are in `downable`. Records between two indirectly connected
/// members are left out when computing `unreachable`, so an indirectly connected member is
/// on this side unless a record from another observer marks it unreachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Members that can still be downed: every status except Down, Exiting and Removed.
    pub downable: BTreeSet<UniqueAddress>,
    /// Downable members counted in decisions: not Joining or WeaklyUp.
    pub counted: Vec<Member>,
    /// Downable members that no record marks unreachable: this side.
    pub reachable: BTreeSet<UniqueAddress>,
    /// Downable members marked unreachable by some record: the other side.
    pub unreachable: BTreeSet<UniqueAddress>,
    /// Downable members that some observers mark unreachable although they still take part
    /// in gossip: subjects that have seen the current gossip version, observers of such
    /// subjects, and members that are both observer and subject of unreachable records.
    pub indirectly_connected: BTreeSet<UniqueAddress>,
}

impl Analysis {
    /// Derives the sides from `view`. Records whose observer or subject is not downable are
    /// ignored, because a Down, Exiting or Removed node's opinion no longer matters.
    pub fn new(view: &ClusterView) -> Self {
        let downable: BTreeSet<UniqueAddress> = view
            .members
            .iter()
            .filter(|member| is_downable(member.status))
            .map(|member| member.unique_address.clone())
            .collect();
        let counted: Vec<Member> = view
            .members
            .iter()
            .filter(|member| is_downable(member.status) && is_counted(member.status))
            .cloned()
            .collect();
        let records: Vec<&UnreachableRecord> = view
            .unreachable_records
            .iter()
            .filter(|record| {
                downable.contains(&record.observer) && downable.contains(&record.subject)
            })
            .collect();

        let subjects: BTreeSet<UniqueAddress> = records
            .iter()
            .map(|record| record.subject.clone())
            .collect();
        let observers: BTreeSet<UniqueAddress> = records
            .iter()
            .map(|record| record.observer.clone())
            .collect();
        let mut indirectly_connected: BTreeSet<UniqueAddress> =
            observers.intersection(&subjects).cloned().collect();
        for record in &records {
            if view.seen_by.contains(&record.subject) {
                indirectly_connected.insert(record.observer.clone());
                indirectly_connected.insert(record.subject.clone());
            }
        }

        // Links between indirectly connected members are suspect, so their records do not
        // decide which side a member is on.
        let unreachable: BTreeSet<UniqueAddress> = records
            .iter()
            .filter(|record| {
                !(indirectly_connected.contains(&record.observer)
                    && indirectly_connected.contains(&record.subject))
            })
            .map(|record| record.subject.clone())
            .collect();
        let reachable: BTreeSet<UniqueAddress> =
            downable.difference(&unreachable).cloned().collect();
        Self {
            downable,
            counted,
            reachable,
            unreachable,
            indirectly_connected,
        }
    }

    /// Returns true when some member is unreachable or indirectly connected, so there is
    /// something to decide.
    pub fn has_problem(&self) -> bool {
        !self.unreachable.is_empty() || !self.indirectly_connected.is_empty()
    }

    /// Returns the nodes that `decision` downs.
    pub fn nodes_to_down(&self, decision: &Decision) -> BTreeSet<UniqueAddress> {
        match decision {
            Decision::DownUnreachable => self.unreachable.clone(),
            Decision::DownReachable => self.reachable.clone(),
            Decision::DownAll => self.downable.clone(),
            Decision::DownIndirectlyConnected { then } => {
                let mut down = self.indirectly_connected.clone();
                if let Some(then) = then {
                    down.extend(self.nodes_to_down(then));
                }
                down
            }
            Decision::ReverseDownIndirectlyConnected => self
                .reachable
                .union(&self.indirectly_connected)
                .cloned()
                .collect(),
            Decision::AcquireLeaseAndDownUnreachable { .. }
            | Decision::AcquireLeaseAndDownIndirectlyConnected { .. } => BTreeSet::new(),
        }
    }

    /// Returns the counted members with `role`, or all counted members when `role` is None.
    fn counted_with_role<'a>(&'a self, role: Option<&'a str>) -> impl Iterator<Item = &'a Member> {
        self.counted
            .iter()
            .filter(move |member| role.is_none_or(|role| member.has_role(role)))
    }

    /// Returns true when `node` is on this side.
    fn is_on_this_side(&self, node: &UniqueAddress) -> bool {
        self.reachable.contains(node)
    }
}

/// Applies `strategy` to `analysis` and returns the decision of this side.
///
/// 1. When some members are indirectly connected, down them first. Lease-majority acquires
///    the lease before it downs anything.
/// 2. When other members are unreachable too, add the strategy's decision about those,
///    taken without the records between indirectly connected members.
/// 3. Otherwise take the strategy's decision.
pub fn decide(strategy: &DowningStrategy, analysis: &Analysis) -> Decision {
    if analysis.indirectly_connected.is_empty() {
        return decide_strategy(strategy, analysis);
    }
    if let DowningStrategy::LeaseMajority { .. } = strategy {
        return Decision::AcquireLeaseAndDownIndirectlyConnected {
            delay: Duration::ZERO,
        };
    }
    let then = if analysis.unreachable.is_empty() {
        None
    } else {
        Some(Box::new(decide_strategy(strategy, analysis)))
    };
    Decision::DownIndirectlyConnected { then }
}

/// Applies `strategy` to the sides, ignoring indirectly connected members.
fn decide_strategy(strategy: &DowningStrategy, analysis: &Analysis) -> Decision {
    match strategy {
        DowningStrategy::KeepMajority { role } => keep_majority(analysis, role.as_deref()),
        DowningStrategy::StaticQuorum { quorum_size, role } => {
            static_quorum(analysis, quorum_size.get(), role.as_deref())
        }
        DowningStrategy::KeepOldest {
            down_if_alone,
            role,
        } => keep_oldest(analysis, *down_if_alone, role.as_deref()),
        DowningStrategy::DownAll => Decision::DownAll,
        DowningStrategy::LeaseMajority {
            role,
            acquire_lease_delay_for_minority,
            ..
        } => {
            let delay = match keep_majority(analysis, role.as_deref()) {
                Decision::DownUnreachable => Duration::ZERO,
                _ => *acquire_lease_delay_for_minority,
            };
            Decision::AcquireLeaseAndDownUnreachable { delay }
        }
    }
}

/// More counted members than the other side wins; on a tie the side with the lowest
/// address wins. Without any counted member there is no basis for a choice, so all go.
fn keep_majority(analysis: &Analysis, role: Option<&str>) -> Decision {
    let members: Vec<&Member> = analysis.counted_with_role(role).collect();
    let Some(lowest) = members.iter().map(|member| &member.unique_address).min() else {
        return Decision::DownAll;
    };
    let this_side = members
        .iter()
        .filter(|member| analysis.is_on_this_side(&member.unique_address))
        .count();
    let other_side = members.len() - this_side;
    let keep = match this_side.cmp(&other_side) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => analysis.is_on_this_side(lowest),
    };
    if keep {
        Decision::DownUnreachable
    } else {
        Decision::DownReachable
    }
}

/// This side survives with at least `quorum_size` counted members. A cluster larger than
/// `2 * quorum_size - 1` could have two quorate sides, so then everyone goes.
fn static_quorum(analysis: &Analysis, quorum_size: usize, role: Option<&str>) -> Decision {
    let members: Vec<&Member> = analysis.counted_with_role(role).collect();
    if members.len() > quorum_size.saturating_mul(2) - 1 {
        return Decision::DownAll;
    }
    let this_side = members
        .iter()
        .filter(|member| analysis.is_on_this_side(&member.unique_address))
        .count();
    if this_side >= quorum_size {
        Decision::DownUnreachable
    } else {
        Decision::DownReachable
    }
}

/// Keeps the side with the oldest counted member (with the role), unless
/// `down_if_alone` is set and the oldest is the only counted member on its side while the
/// other side has counted members.
fn keep_oldest(analysis: &Analysis, down_if_alone: bool, role: Option<&str>) -> Decision {
    let Some(oldest) = analysis
        .counted_with_role(role)
        .min_by(|a, b| a.age_order(b))
    else {
        return Decision::DownAll;
    };
    let oldest = &oldest.unique_address;
    let oldest_here = analysis.is_on_this_side(oldest);
    let (oldest_side, other_side): (Vec<&Member>, Vec<&Member>) = analysis
        .counted
        .iter()
        .partition(|member| analysis.is_on_this_side(&member.unique_address) == oldest_here);
    let oldest_alone = oldest_side.len() == 1 && !other_side.is_empty();
    let oldest_survives = !(down_if_alone && oldest_alone);
    if oldest_survives == oldest_here {
        Decision::DownUnreachable
    } else {
        Decision::DownReachable
    }
}

fn is_downable(status: MemberStatus) -> bool {
    !matches!(
        status,
        MemberStatus::Down | MemberStatus::Exiting | MemberStatus::Removed
    )
}

fn is_counted(status: MemberStatus) -> bool {
    !matches!(status, MemberStatus::Joining | MemberStatus::WeaklyUp)
}
