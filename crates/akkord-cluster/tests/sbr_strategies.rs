//! Split brain resolver strategies on both sides of a partition.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::sbr::{
    ClusterView, Decision, DowningStrategy, SbrOutput, SbrSettings, SplitBrainResolver,
    UnreachableRecord,
};

fn node(i: u16) -> UniqueAddress {
    let address = Address::new("test", "127.0.0.1", 2550 + i).expect("valid address");
    UniqueAddress::new(address, 7000 + u64::from(i))
}

/// Creates an Up member; a lower `up_number` is older.
fn up(i: u16, up_number: u32, roles: &[&str]) -> Member {
    Member {
        unique_address: node(i),
        status: MemberStatus::Up,
        roles: roles.iter().map(|role| role.to_string()).collect(),
        up_number,
        app_version: "1.0.0".to_owned(),
    }
}

/// Up members 0..count with up numbers equal to their index.
fn up_members(count: u16) -> Vec<Member> {
    (0..count).map(|i| up(i, u32::from(i), &[])).collect()
}

fn set(indices: &[u16]) -> BTreeSet<UniqueAddress> {
    indices.iter().map(|i| node(*i)).collect()
}

/// Builds the view of a side of a clean partition: every member of `side` records every other
/// downable member as unreachable, and only `side` has seen the current gossip.
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

/// Runs a resolver of `self_node` on `view` until it is stable and returns its output.
fn resolve(strategy: DowningStrategy, self_node: UniqueAddress, view: ClusterView) -> SbrOutput {
    let settings = SbrSettings {
        strategy,
        ..SbrSettings::default()
    };
    let stable_after = settings.stable_after;
    let mut resolver = SplitBrainResolver::new(self_node, settings).expect("valid settings");
    let start = Instant::now();
    resolver.update_view(view, start);
    resolver.tick(start + stable_after)
}

/// Resolves both sides of a partition of `members` into `side_a` and the rest, each side
/// decided by its lowest member, and returns the nodes each side downs.
fn resolve_both(
    strategy: &DowningStrategy,
    members: &[Member],
    side_a: &[u16],
) -> (SbrOutput, SbrOutput) {
    let a = set(side_a);
    let b: BTreeSet<UniqueAddress> = members
        .iter()
        .map(|member| member.unique_address.clone())
        .filter(|address| !a.contains(address))
        .collect();
    let leader_a = a.iter().next().expect("side a not empty").clone();
    let leader_b = b.iter().next().expect("side b not empty").clone();
    let output_a = resolve(strategy.clone(), leader_a, side_view(members, &a));
    let output_b = resolve(strategy.clone(), leader_b, side_view(members, &b));
    (output_a, output_b)
}

fn keep_majority() -> DowningStrategy {
    DowningStrategy::KeepMajority { role: None }
}

#[test]
fn keep_majority_3_2() {
    let members = up_members(5);
    let (a, b) = resolve_both(&keep_majority(), &members, &[0, 1, 2]);
    assert_eq!(a.decision, Some(Decision::DownUnreachable));
    assert_eq!(a.down, set(&[3, 4]));
    assert_eq!(b.decision, Some(Decision::DownReachable));
    assert_eq!(b.down, set(&[3, 4]), "the minority downs itself");
}

#[test]
fn keep_majority_equal_halves_lowest_address() {
    let members = up_members(4);
    let (a, b) = resolve_both(&keep_majority(), &members, &[0, 1]);
    assert_eq!(a.down, set(&[2, 3]));
    assert_eq!(b.down, set(&[2, 3]));

    let (a, b) = resolve_both(&keep_majority(), &members, &[1, 2]);
    assert_eq!(a.decision, Some(Decision::DownReachable));
    assert_eq!(a.down, set(&[1, 2]));
    assert_eq!(b.decision, Some(Decision::DownUnreachable));
    assert_eq!(b.down, set(&[1, 2]));
}

#[test]
fn keep_majority_role_scoped() {
    // Side b is smaller but has two of the three "db" members.
    let members = vec![
        up(0, 0, &["db"]),
        up(1, 1, &[]),
        up(2, 2, &[]),
        up(3, 3, &["db"]),
        up(4, 4, &["db"]),
    ];
    let strategy = DowningStrategy::KeepMajority {
        role: Some("db".to_owned()),
    };
    let (a, b) = resolve_both(&strategy, &members, &[0, 1, 2]);
    assert_eq!(a.decision, Some(Decision::DownReachable));
    assert_eq!(a.down, set(&[0, 1, 2]));
    assert_eq!(b.decision, Some(Decision::DownUnreachable));
    assert_eq!(b.down, set(&[0, 1, 2]));
}

#[test]
fn keep_majority_ignores_joining() {
    // Side a has five nodes, but three are still joining and do not count.
    let mut members = up_members(5);
    for i in 5..8 {
        let mut joining = up(i, u32::MAX, &[]);
        joining.status = if i == 7 {
            MemberStatus::WeaklyUp
        } else {
            MemberStatus::Joining
        };
        members.push(joining);
    }
    let (a, b) = resolve_both(&keep_majority(), &members, &[0, 1, 5, 6, 7]);
    assert_eq!(a.decision, Some(Decision::DownReachable));
    assert_eq!(
        a.down,
        set(&[0, 1, 5, 6, 7]),
        "joining members go with their side"
    );
    assert_eq!(b.decision, Some(Decision::DownUnreachable));
    assert_eq!(b.down, set(&[0, 1, 5, 6, 7]));
}

#[test]
fn keep_majority_ignores_down_members() {
    let mut members = up_members(5);
    members[3].status = MemberStatus::Down;
    members[4].status = MemberStatus::Exiting;
    // Side a has 2 counted members against side b's 1.
    let (a, b) = resolve_both(&keep_majority(), &members, &[0, 1]);
    assert_eq!(a.down, set(&[2]));
    assert_eq!(b.down, set(&[2]));
}

#[test]
fn static_quorum_both_sides() {
    let strategy = DowningStrategy::StaticQuorum {
        quorum_size: NonZeroUsize::new(3).expect("not zero"),
        role: None,
    };
    let members = up_members(5);
    let (a, b) = resolve_both(&strategy, &members, &[0, 1, 2]);
    assert_eq!(a.decision, Some(Decision::DownUnreachable));
    assert_eq!(a.down, set(&[3, 4]));
    assert_eq!(b.decision, Some(Decision::DownReachable));
    assert_eq!(b.down, set(&[3, 4]));

    // Neither side of 2 | 2 (one member already gone) reaches the quorum.
    let members = up_members(4);
    let (a, b) = resolve_both(&strategy, &members, &[0, 1]);
    assert_eq!(a.down, set(&[0, 1]));
    assert_eq!(b.down, set(&[2, 3]));
}

#[test]
fn static_quorum_too_many_members_downs_all() {
    let strategy = DowningStrategy::StaticQuorum {
        quorum_size: NonZeroUsize::new(3).expect("not zero"),
        role: None,
    };
    let members = up_members(6);
    let (a, b) = resolve_both(&strategy, &members, &[0, 1, 2]);
    assert_eq!(a.decision, Some(Decision::DownAll));
    assert_eq!(a.down, set(&[0, 1, 2, 3, 4, 5]));
    assert_eq!(b.decision, Some(Decision::DownAll));
}

#[test]
fn static_quorum_role_scoped() {
    let strategy = DowningStrategy::StaticQuorum {
        quorum_size: NonZeroUsize::new(2).expect("not zero"),
        role: Some("db".to_owned()),
    };
    let members = vec![
        up(0, 0, &[]),
        up(1, 1, &[]),
        up(2, 2, &["db"]),
        up(3, 3, &["db"]),
        up(4, 4, &["db"]),
    ];
    let (a, b) = resolve_both(&strategy, &members, &[0, 1, 2]);
    assert_eq!(a.down, set(&[0, 1, 2]));
    assert_eq!(b.down, set(&[0, 1, 2]));
}

#[test]
fn keep_oldest_in_minority() {
    // Node 4 is the oldest and sits in the smaller side.
    let members: Vec<Member> = (0..5).map(|i| up(i, 10 - u32::from(i), &[])).collect();
    let strategy = DowningStrategy::KeepOldest {
        down_if_alone: true,
        role: None,
    };
    let (a, b) = resolve_both(&strategy, &members, &[0, 1, 2]);
    assert_eq!(a.decision, Some(Decision::DownReachable));
    assert_eq!(a.down, set(&[0, 1, 2]));
    assert_eq!(b.decision, Some(Decision::DownUnreachable));
    assert_eq!(b.down, set(&[0, 1, 2]));
}

#[test]
fn keep_oldest_down_if_alone() {
    let members: Vec<Member> = (0..5).map(|i| up(i, 10 - u32::from(i), &[])).collect();
    let alone = DowningStrategy::KeepOldest {
        down_if_alone: true,
        role: None,
    };
    let (a, b) = resolve_both(&alone, &members, &[0, 1, 2, 3]);
    assert_eq!(a.decision, Some(Decision::DownUnreachable));
    assert_eq!(a.down, set(&[4]));
    assert_eq!(b.decision, Some(Decision::DownReachable));
    assert_eq!(b.down, set(&[4]), "the lonely oldest downs itself");

    let not_alone = DowningStrategy::KeepOldest {
        down_if_alone: false,
        role: None,
    };
    let (a, b) = resolve_both(&not_alone, &members, &[0, 1, 2, 3]);
    assert_eq!(a.down, set(&[0, 1, 2, 3]));
    assert_eq!(b.down, set(&[0, 1, 2, 3]));
}

#[test]
fn keep_oldest_role_scoped() {
    // Node 0 is the oldest overall; node 3 is the oldest with role "db".
    let members = vec![
        up(0, 0, &[]),
        up(1, 1, &[]),
        up(2, 2, &[]),
        up(3, 3, &["db"]),
        up(4, 4, &["db"]),
    ];
    let strategy = DowningStrategy::KeepOldest {
        down_if_alone: true,
        role: Some("db".to_owned()),
    };
    let (a, b) = resolve_both(&strategy, &members, &[0, 1, 2]);
    assert_eq!(a.down, set(&[0, 1, 2]));
    assert_eq!(b.down, set(&[0, 1, 2]));
}

#[test]
fn down_all_both_sides() {
    let members = up_members(5);
    let (a, b) = resolve_both(&DowningStrategy::DownAll, &members, &[0, 1, 2]);
    assert_eq!(a.decision, Some(Decision::DownAll));
    assert_eq!(a.down, set(&[0, 1, 2, 3, 4]));
    assert_eq!(b.decision, Some(Decision::DownAll));
    assert_eq!(b.down, set(&[0, 1, 2, 3, 4]));
}

#[test]
fn indirectly_connected_downed_first() {
    // No partition: node 1 suspects node 2, yet node 2 has seen the current gossip.
    let members = up_members(5);
    let view = ClusterView {
        members: members.clone(),
        unreachable_records: vec![UnreachableRecord {
            observer: node(1),
            subject: node(2),
        }],
        seen_by: set(&[0, 1, 2, 3, 4]),
        is_leader: true,
    };
    let output = resolve(keep_majority(), node(0), view);
    assert_eq!(
        output.decision,
        Some(Decision::DownIndirectlyConnected { then: None })
    );
    assert_eq!(output.down, set(&[1, 2]));
}

#[test]
fn indirectly_connected_cycle() {
    // Nodes 1 and 2 suspect each other; no member has seen the current gossip yet.
    let members = up_members(5);
    let view = ClusterView {
        members,
        unreachable_records: vec![
            UnreachableRecord {
                observer: node(1),
                subject: node(2),
            },
            UnreachableRecord {
                observer: node(2),
                subject: node(1),
            },
        ],
        seen_by: BTreeSet::new(),
        is_leader: true,
    };
    let output = resolve(keep_majority(), node(0), view);
    assert_eq!(output.down, set(&[1, 2]));
}

#[test]
fn indirectly_connected_with_crash() {
    // Node 4 crashed and is unreachable for node 0; nodes 1 and 2 suspect each other.
    // Without the suspect link, side {0, 1, 2, 3} keeps the majority and downs node 4 too.
    let members = up_members(5);
    let view = ClusterView {
        members,
        unreachable_records: vec![
            UnreachableRecord {
                observer: node(1),
                subject: node(2),
            },
            UnreachableRecord {
                observer: node(2),
                subject: node(1),
            },
            UnreachableRecord {
                observer: node(0),
                subject: node(4),
            },
        ],
        seen_by: BTreeSet::new(),
        is_leader: true,
    };
    let output = resolve(keep_majority(), node(0), view);
    assert_eq!(
        output.decision,
        Some(Decision::DownIndirectlyConnected {
            then: Some(Box::new(Decision::DownUnreachable)),
        })
    );
    assert_eq!(output.down, set(&[1, 2, 4]));
}

#[test]
fn no_decision_on_follower() {
    let members = up_members(5);
    let mut view = side_view(&members, &set(&[0, 1, 2]));
    view.is_leader = false;
    let output = resolve(keep_majority(), node(1), view);
    assert_eq!(output, SbrOutput::default());
}

#[test]
fn disabled_resolver_decides_nothing() {
    let members = up_members(5);
    let settings = SbrSettings {
        enabled: false,
        ..SbrSettings::default()
    };
    let mut resolver = SplitBrainResolver::new(node(0), settings).expect("valid");
    let start = Instant::now();
    resolver.update_view(side_view(&members, &set(&[0, 1, 2])), start);
    let output = resolver.tick(start + Duration::from_secs(600));
    assert_eq!(output, SbrOutput::default());
}
