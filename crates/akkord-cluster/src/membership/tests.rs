//! Unit tests of the membership core, driven by a small in-test message pump.

use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};

use super::*;
use crate::convergence::ConvergenceBlocker;

fn node(port: u16) -> UniqueAddress {
    UniqueAddress::new(
        Address::new("unit", "10.1.0.1", port).unwrap(),
        u64::from(port) + 50,
    )
}

fn core(port: u16) -> MembershipCore {
    MembershipCore::new(node(port), MembershipSettings::default(), u64::from(port)).unwrap()
}

/// Delivers messages between `cores` until none is left; returns the events per core.
fn pump(
    cores: &mut [&mut MembershipCore],
    mut pending: Vec<(Address, Address, ClusterMessage)>,
    now: Instant,
) -> Vec<Vec<ClusterEvent>> {
    let mut events = vec![Vec::new(); cores.len()];
    let mut rounds = 0;
    while let Some((from, to, message)) = pending.pop() {
        rounds += 1;
        assert!(rounds < 10_000, "message pump did not settle");
        let Some(index) = cores.iter().position(|c| c.self_node().address == to) else {
            continue;
        };
        let mut out = MembershipOutputs::new();
        cores[index].handle_message(from, message, now, &mut out);
        events[index].extend(out.events);
        let sender = cores[index].self_node().address.clone();
        pending.extend(
            out.messages
                .into_iter()
                .map(|(to, m)| (sender.clone(), to, m)),
        );
    }
    events
}

fn outgoing(
    core: &MembershipCore,
    out: MembershipOutputs,
) -> Vec<(Address, Address, ClusterMessage)> {
    let sender = core.self_node().address.clone();
    out.messages
        .into_iter()
        .map(|(to, m)| (sender.clone(), to, m))
        .collect()
}

/// Forms a cluster on `a` and joins `b` to it; both end Up after leader actions.
fn two_node_cluster(now: Instant) -> (MembershipCore, MembershipCore) {
    let mut a = core(1);
    let mut b = core(2);
    let mut out = MembershipOutputs::new();
    a.join(a.self_node().address.clone(), now, &mut out);
    let mut out = MembershipOutputs::new();
    b.join(a.self_node().address.clone(), now, &mut out);
    let messages = outgoing(&b, out);
    pump(&mut [&mut a, &mut b], messages, now);
    let later = now + Duration::from_secs(1);
    let mut out = MembershipOutputs::new();
    a.tick(later, &mut out);
    let messages = outgoing(&a, out);
    pump(&mut [&mut a, &mut b], messages, later);
    (a, b)
}

/// Returns the full state of node 1 on its way to node 2.
fn gossip_from_a(a: &MembershipCore) -> (Address, Address, ClusterMessage) {
    let message = ClusterMessage::Gossip {
        from: node(1),
        to: node(2),
        gossip: Arc::new(a.gossip().clone()),
    };
    (node(1).address, node(2).address, message)
}

fn join_request(joiner: UniqueAddress) -> JoinRequest {
    JoinRequest {
        system_name: joiner.address.system().to_owned(),
        node: joiner,
        roles: Default::default(),
        app_version: "1".into(),
        protocol_version: MEMBERSHIP_PROTOCOL_VERSION,
    }
}

fn rejection_for(core: &mut MembershipCore, request: JoinRequest, now: Instant) -> JoinRejection {
    let from = request.node.address.clone();
    let mut out = MembershipOutputs::new();
    core.handle_message(from.clone(), ClusterMessage::Join(request), now, &mut out);
    match out.messages.as_slice() {
        [(to, ClusterMessage::JoinRejected { reason, .. })] if *to == from => reason.clone(),
        other => panic!("expected one join rejection, got {other:?}"),
    }
}

#[test]
fn forming_cluster_makes_self_up() {
    let now = Instant::now();
    let mut a = core(1);
    let mut out = MembershipOutputs::new();
    a.join(a.self_node().address.clone(), now, &mut out);
    let member = a.self_member().unwrap();
    assert_eq!(member.status, MemberStatus::Up);
    assert_eq!(member.up_number, 1);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, ClusterEvent::MemberUp(_))));
    assert_eq!(out.next_tick, Some(now + Duration::from_secs(1)));
}

#[test]
fn join_welcome_and_leader_moves_up() {
    let now = Instant::now();
    let (a, b) = two_node_cluster(now);
    for core in [&a, &b] {
        assert_eq!(core.gossip().member_count(), 2);
        assert_eq!(core.leader(), Some(node(1)));
    }
    assert_eq!(b.self_member().unwrap().status, MemberStatus::Up);
    assert_eq!(b.self_member().unwrap().up_number, 2);
}

#[test]
fn join_rejected_for_other_system_name() {
    let now = Instant::now();
    let (mut a, _) = two_node_cluster(now);
    let stranger = UniqueAddress::new(Address::new("other", "10.1.0.9", 9).unwrap(), 1);
    let reason = rejection_for(&mut a, join_request(stranger), now);
    assert_eq!(
        reason,
        JoinRejection::SystemNameMismatch {
            expected: "unit".into(),
            actual: "other".into()
        }
    );
}

#[test]
fn join_rejected_for_incompatible_protocol() {
    let now = Instant::now();
    let (mut a, _) = two_node_cluster(now);
    let mut request = join_request(node(7));
    request.protocol_version = MEMBERSHIP_PROTOCOL_VERSION + 1;
    let reason = rejection_for(&mut a, request, now);
    assert!(matches!(
        reason,
        JoinRejection::IncompatibleProtocolVersion { actual, .. } if actual == MEMBERSHIP_PROTOCOL_VERSION + 1
    ));
    assert_eq!(a.gossip().member_count(), 2);
}

#[test]
fn removed_incarnation_cannot_rejoin() {
    let now = Instant::now();
    let (mut a, _) = two_node_cluster(now);
    let mut out = MembershipOutputs::new();
    a.down(&node(2), now, &mut out).unwrap();
    a.tick(now + Duration::from_secs(2), &mut out);
    assert!(a.gossip().is_tombstoned(&node(2)));
    let reason = rejection_for(&mut a, join_request(node(2)), now + Duration::from_secs(3));
    assert_eq!(reason, JoinRejection::IncarnationRemoved { node: node(2) });
}

#[test]
fn rejected_joiner_publishes_event_and_stops() {
    let now = Instant::now();
    let mut b = core(2);
    let mut out = MembershipOutputs::new();
    b.join(node(1).address, now, &mut out);
    let reason = JoinRejection::SystemNameMismatch {
        expected: "x".into(),
        actual: "unit".into(),
    };
    let mut out = MembershipOutputs::new();
    let message = ClusterMessage::JoinRejected {
        from: node(1),
        reason: reason.clone(),
    };
    b.handle_message(node(1).address, message, now, &mut out);
    assert_eq!(
        out.events,
        vec![ClusterEvent::JoinRejected {
            by: node(1),
            reason
        }]
    );
    let mut out = MembershipOutputs::new();
    b.tick(now + Duration::from_secs(30), &mut out);
    assert!(out.messages.is_empty());
    assert_eq!(out.next_tick, None);
}

#[test]
fn message_with_mismatched_sender_dropped() {
    let now = Instant::now();
    let (mut a, _) = two_node_cluster(now);
    let mut out = MembershipOutputs::new();
    let message = ClusterMessage::Join(join_request(node(8)));
    a.handle_message(node(9).address, message, now, &mut out);
    assert!(out.messages.is_empty());
    assert!(!a.gossip().has_member(&node(8)));
}

#[test]
fn gossip_for_other_incarnation_ignored() {
    let now = Instant::now();
    let (mut a, b) = two_node_cluster(now);
    let mut changed = b.gossip().clone();
    changed.increment(&node(2));
    let before = a.gossip().clone();
    let mut out = MembershipOutputs::new();
    let stale_target = UniqueAddress::new(node(1).address, 12345);
    let message = ClusterMessage::Gossip {
        from: node(2),
        to: stale_target,
        gossip: Arc::new(changed),
    };
    a.handle_message(node(2).address, message, now, &mut out);
    assert_eq!(*a.gossip(), before);
}

#[test]
fn mark_unreachable_edits_own_row_only() {
    let now = Instant::now();
    let (mut a, _) = two_node_cluster(now);
    let version = a.gossip().version().clone();
    let mut out = MembershipOutputs::new();
    a.mark_unreachable(&node(2), now, &mut out);
    let observers: Vec<&UniqueAddress> = a.gossip().reachability().rows().map(|(o, _)| o).collect();
    assert_eq!(observers, vec![&node(1)]);
    assert_ne!(*a.gossip().version(), version);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, ClusterEvent::UnreachableMember(m) if m.unique_address == node(2))));
    // Node 2 has not seen the change either; the unreachable record alone would block.
    assert!(a
        .convergence_blockers()
        .contains(&ConvergenceBlocker::UnreachableNotDowned {
            node: node(2),
            status: MemberStatus::Up
        }));

    let mut out = MembershipOutputs::new();
    a.mark_reachable(&node(2), now, &mut out);
    assert!(a.gossip().reachability().is_all_reachable());
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, ClusterEvent::ReachableMember(m) if m.unique_address == node(2))));
}

#[test]
fn commands_before_joining_fail() {
    let now = Instant::now();
    let mut a = core(1);
    let mut out = MembershipOutputs::new();
    assert_eq!(
        a.leave(&node(1).address, now, &mut out),
        Err(CommandError::NotMember)
    );
    assert_eq!(
        a.down(&node(2), now, &mut out),
        Err(CommandError::NotMember)
    );
    a.join(node(1).address, now, &mut out);
    assert!(matches!(
        a.leave(&node(5).address, now, &mut out),
        Err(CommandError::UnknownMember(_))
    ));
}

#[test]
fn tombstones_dropped_after_a_day() {
    let now = Instant::now();
    let (mut a, _) = two_node_cluster(now);
    let mut out = MembershipOutputs::new();
    a.down(&node(2), now, &mut out).unwrap();
    a.tick(now + Duration::from_secs(2), &mut out);
    assert!(a.gossip().is_tombstoned(&node(2)));
    a.tick(now + Duration::from_secs(24 * 3600), &mut out);
    assert!(a.gossip().is_tombstoned(&node(2)));
    a.tick(now + Duration::from_secs(24 * 3600 + 3), &mut out);
    assert!(a.gossip().tombstones().is_empty());
}

#[test]
fn downed_node_publishes_self_downed() {
    let now = Instant::now();
    let (mut a, mut b) = two_node_cluster(now);
    let mut out = MembershipOutputs::new();
    a.down(&node(2), now, &mut out).unwrap();
    let messages = vec![gossip_from_a(&a)];
    let events = pump(&mut [&mut a, &mut b], messages, now);
    assert!(events[1].contains(&ClusterEvent::SelfDowned));
}

#[test]
fn single_seed_list_of_self_forms_cluster() {
    let now = Instant::now();
    let settings = MembershipSettings {
        seed_nodes: vec![node(1).address],
        ..MembershipSettings::default()
    };
    let mut a = MembershipCore::new(node(1), settings, 1).unwrap();
    let mut out = MembershipOutputs::new();
    a.start(now, &mut out);
    assert_eq!(a.self_member().map(|m| m.status), Some(MemberStatus::Up));
}

#[test]
fn removed_node_learns_removal_from_gossip_reply() {
    let now = Instant::now();
    let (mut a, mut b) = two_node_cluster(now);
    let mut out = MembershipOutputs::new();
    a.leave(&node(2).address, now, &mut out).unwrap();
    let messages = vec![gossip_from_a(&a)];
    pump(&mut [&mut a, &mut b], messages, now);
    assert!(a.is_converged());

    // Leaving becomes Exiting; node 2 receives that and replies, so it is in the seen set.
    let later = now + Duration::from_secs(2);
    let mut out = MembershipOutputs::new();
    a.tick(later, &mut out);
    let messages = outgoing(&a, out);
    pump(&mut [&mut a, &mut b], messages, later);
    assert_eq!(b.self_member().unwrap().status, MemberStatus::Exiting);

    // The removal message to node 2 is lost.
    let later = later + Duration::from_secs(1);
    a.tick(later, &mut MembershipOutputs::new());
    assert!(a.gossip().is_tombstoned(&node(2)));
    assert!(!b.is_removed());

    // Node 2's next gossip round reaches node 1, whose reply carries the tombstone.
    let mut out = MembershipOutputs::new();
    b.tick(later + Duration::from_secs(1), &mut out);
    assert!(!out.messages.is_empty());
    let messages = outgoing(&b, out);
    let events = pump(&mut [&mut a, &mut b], messages, later);
    assert!(b.is_removed());
    assert!(events[1].contains(&ClusterEvent::SelfRemoved));
}

#[test]
fn only_member_leaves_and_is_removed() {
    let now = Instant::now();
    let mut a = core(1);
    let mut out = MembershipOutputs::new();
    a.join(node(1).address, now, &mut out);
    a.leave(&node(1).address, now, &mut out).unwrap();
    let mut events = Vec::new();
    for second in 1..=3 {
        let mut out = MembershipOutputs::new();
        a.tick(now + Duration::from_secs(second), &mut out);
        events.extend(out.events);
    }
    assert!(a.is_removed());
    assert!(events
        .iter()
        .any(|e| matches!(e, ClusterEvent::MemberExited(_))));
    assert_eq!(events.last(), Some(&ClusterEvent::SelfRemoved));
}
