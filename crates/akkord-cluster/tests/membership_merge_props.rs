//! Property tests: gossip merge is commutative, associative and idempotent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::gossip::Gossip;
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::vclock::ClockOrdering;
use proptest::prelude::*;

const NODES: u16 = 6;

fn node(index: u16) -> UniqueAddress {
    UniqueAddress::new(
        Address::new("props", "10.0.0.1", 1000 + index).unwrap(),
        u64::from(index) * 31 + 7,
    )
}

fn status(index: u8) -> MemberStatus {
    use MemberStatus::*;
    [
        Joining,
        WeaklyUp,
        Up,
        Leaving,
        Exiting,
        Down,
        PreparingForShutdown,
    ][index as usize % 7]
}

#[derive(Clone, Debug)]
struct Spec {
    members: Vec<(u16, u8, u32)>,
    unreachable: Vec<(u16, u16, bool)>,
    increments: Vec<u16>,
    removed: Vec<(u16, u64)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec((0..NODES, 0u8..7, 1u32..4), 1..6),
        proptest::collection::vec((0..NODES, 0..NODES, any::<bool>()), 0..5),
        proptest::collection::vec(0..NODES, 1..5),
        proptest::collection::vec((0..NODES, 0u64..3), 0..2),
    )
        .prop_map(|(members, unreachable, increments, removed)| Spec {
            members,
            unreachable,
            increments,
            removed,
        })
}

/// Builds a well-formed state: reachability only about its members, tombstones not members.
fn build(spec: &Spec, base: Instant) -> Gossip {
    let mut gossip = Gossip::new();
    for (index, status_index, up_number) in &spec.members {
        let roles: BTreeSet<String> = if index % 2 == 0 {
            ["even".to_owned()].into()
        } else {
            BTreeSet::new()
        };
        gossip.put_member(Member {
            status: status(*status_index),
            up_number: *up_number,
            ..Member::joining(node(*index), roles, "1".into())
        });
    }
    for index in &spec.increments {
        gossip.increment(&node(*index));
    }
    let mut reachability = gossip.reachability().clone();
    for (observer, subject, terminated) in &spec.unreachable {
        if !gossip.has_member(&node(*observer)) || !gossip.has_member(&node(*subject)) {
            continue;
        }
        reachability = if *terminated {
            reachability.terminated(&node(*observer), &node(*subject))
        } else {
            reachability.unreachable(&node(*observer), &node(*subject))
        };
    }
    gossip.set_reachability(reachability);
    for (index, seconds) in &spec.removed {
        gossip.remove_member(&node(*index), base + Duration::from_secs(*seconds));
    }
    gossip
}

/// Compares everything but the seen set, which merge resets.
fn assert_same_state(left: &Gossip, right: &Gossip) -> Result<(), TestCaseError> {
    let left_members: Vec<&Member> = left.members().collect();
    let right_members: Vec<&Member> = right.members().collect();
    prop_assert_eq!(left_members, right_members);
    prop_assert_eq!(left.reachability(), right.reachability());
    prop_assert_eq!(left.version(), right.version());
    prop_assert_eq!(left.tombstones(), right.tombstones());
    Ok(())
}

proptest! {
    #[test]
    fn merge_is_commutative(a in spec(), b in spec()) {
        let base = Instant::now();
        let (a, b) = (build(&a, base), build(&b, base));
        assert_same_state(&a.merge(&b), &b.merge(&a))?;
    }

    #[test]
    fn merge_is_associative(a in spec(), b in spec(), c in spec()) {
        let base = Instant::now();
        let (a, b, c) = (build(&a, base), build(&b, base), build(&c, base));
        assert_same_state(&a.merge(&b).merge(&c), &a.merge(&b.merge(&c)))?;
    }

    #[test]
    fn merge_is_idempotent(a in spec()) {
        let a = build(&a, Instant::now());
        assert_same_state(&a.merge(&a), &a)?;
    }

    #[test]
    fn merge_dominates_both_versions(a in spec(), b in spec()) {
        let base = Instant::now();
        let (a, b) = (build(&a, base), build(&b, base));
        let merged = a.merge(&b);
        for input in [&a, &b] {
            let mut pruned = input.version().clone();
            for node in merged.tombstones().keys() {
                pruned.prune(akkord_cluster::vclock::VClockNode::of(node));
            }
            let ordering = pruned.compare(merged.version());
            prop_assert!(matches!(ordering, ClockOrdering::Before | ClockOrdering::Same));
        }
    }

    #[test]
    fn merge_keeps_no_tombstoned_member(a in spec(), b in spec()) {
        let base = Instant::now();
        let merged = build(&a, base).merge(&build(&b, base));
        for removed in merged.tombstones().keys() {
            prop_assert!(!merged.has_member(removed));
        }
    }
}
