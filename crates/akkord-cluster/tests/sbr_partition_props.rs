//! Property: on a clean partition into two sides, each deciding on its own view, at most
//! one side keeps running.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::Instant;

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::sbr::{
    ClusterView, DowningStrategy, SbrSettings, SplitBrainResolver, UnreachableRecord,
};
use proptest::prelude::*;

fn node(i: usize) -> UniqueAddress {
    let port = 2550 + u16::try_from(i).expect("small index");
    let address = Address::new("test", "127.0.0.1", port).expect("valid address");
    UniqueAddress::new(address, 5000 + i as u64)
}

/// One generated member: Up or still joining, with or without role "a", and an age.
#[derive(Clone, Debug)]
struct Spec {
    up: bool,
    has_role: bool,
    up_number: u32,
    on_side_a: bool,
}

fn members_strategy() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            prop::bool::weighted(0.85),
            any::<bool>(),
            0u32..20,
            any::<bool>(),
        )
            .prop_map(|(up, has_role, up_number, on_side_a)| Spec {
                up,
                has_role,
                up_number,
                on_side_a,
            }),
        2..=9,
    )
    // Both sides must be non-empty.
    .prop_filter("two sides", |specs| {
        specs.iter().any(|spec| spec.on_side_a) && specs.iter().any(|spec| !spec.on_side_a)
    })
}

fn role_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), Just(Some("a".to_owned()))]
}

fn downing_strategy() -> impl Strategy<Value = DowningStrategy> {
    prop_oneof![
        role_strategy().prop_map(|role| DowningStrategy::KeepMajority { role }),
        (1usize..=9, role_strategy()).prop_map(|(quorum, role)| DowningStrategy::StaticQuorum {
            quorum_size: NonZeroUsize::new(quorum).expect("at least 1"),
            role,
        }),
        (any::<bool>(), role_strategy()).prop_map(|(down_if_alone, role)| {
            DowningStrategy::KeepOldest {
                down_if_alone,
                role,
            }
        }),
    ]
}

fn build_members(specs: &[Spec]) -> Vec<Member> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let roles = if spec.has_role {
                BTreeSet::from(["a".to_owned()])
            } else {
                BTreeSet::new()
            };
            Member {
                unique_address: node(i),
                status: if spec.up {
                    MemberStatus::Up
                } else {
                    MemberStatus::Joining
                },
                roles,
                up_number: if spec.up { spec.up_number } else { u32::MAX },
                app_version: "1.0.0".to_owned(),
            }
        })
        .collect()
}

fn side_view(members: &[Member], side: &BTreeSet<UniqueAddress>) -> ClusterView {
    let mut records = Vec::new();
    for observer in side {
        for member in members {
            if !side.contains(&member.unique_address) {
                records.push(UnreachableRecord {
                    observer: observer.clone(),
                    subject: member.unique_address.clone(),
                });
            }
        }
    }
    ClusterView {
        members: members.to_vec(),
        unreachable_records: records,
        seen_by: side.clone(),
        is_leader: true,
    }
}

/// Runs the resolver on the lowest node of `side` and returns whether that side keeps
/// running: its decision downs none of its own members.
fn side_survives(
    strategy: &DowningStrategy,
    members: &[Member],
    side: &BTreeSet<UniqueAddress>,
) -> bool {
    let leader = side.iter().next().expect("side not empty").clone();
    let settings = SbrSettings {
        strategy: strategy.clone(),
        ..SbrSettings::default()
    };
    let stable_after = settings.stable_after;
    let mut resolver = SplitBrainResolver::new(leader, settings).expect("valid settings");
    let start = Instant::now();
    resolver.update_view(side_view(members, side), start);
    let output = resolver.tick(start + stable_after);
    assert!(
        output.decision.is_some(),
        "no decision on a stable partition"
    );
    let downs_own = output.down.iter().any(|node| side.contains(node));
    let downs_other = output.down.iter().any(|node| !side.contains(node));
    assert!(
        downs_own || downs_other,
        "decision {:?} downs nobody",
        output.decision
    );
    !downs_own
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn at_most_one_side_survives(specs in members_strategy(), strategy in downing_strategy()) {
        let members = build_members(&specs);
        let side_a: BTreeSet<UniqueAddress> = specs
            .iter()
            .enumerate()
            .filter(|(_, spec)| spec.on_side_a)
            .map(|(i, _)| node(i))
            .collect();
        let side_b: BTreeSet<UniqueAddress> = (0..specs.len())
            .map(node)
            .filter(|address| !side_a.contains(address))
            .collect();

        let a_survives = side_survives(&strategy, &members, &side_a);
        let b_survives = side_survives(&strategy, &members, &side_b);
        prop_assert!(!(a_survives && b_survives), "both sides survive");

        // Keep-majority and keep-oldest always keep one side when some member counts.
        let role = strategy.role();
        let counted = members.iter().any(|member| {
            member.status == MemberStatus::Up && role.is_none_or(|role| member.has_role(role))
        });
        let always_one = matches!(
            strategy,
            DowningStrategy::KeepMajority { .. } | DowningStrategy::KeepOldest { .. }
        );
        if always_one && counted {
            prop_assert!(a_survives || b_survives, "no side survives");
        }
    }
}
