//! Membership scenarios of the whole cluster node (membership, heartbeats and resolver)
//! run by the deterministic simulator.

#[path = "common/cluster.rs"]
mod cluster_common;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;

use akkord_actor::address::Address;
use akkord_cluster::member::MemberStatus;
use akkord_cluster::membership::ClusterEvent;
use akkord_cluster::node::{NodeEvent, ShutdownReason};
use akkord_testkit::sim::{SimNode, Simulator};

use cluster_common::{
    add, all_up, cluster, settings, shutdown_reason, unique, SimClusterNode, MINUTE, SECOND,
};

fn leader_seen_by(sim: &Simulator<SimClusterNode>, node: &Address) -> Option<Address> {
    sim.node(node)
        .and_then(|n| n.node.membership().leader())
        .map(|leader| leader.address)
}

#[test]
fn three_nodes_converge() {
    let mut sim = Simulator::new(1);
    let nodes = cluster(&mut sim, 3, 3, settings);
    let took = sim.expect_within(MINUTE, "three members up and converged", |sim| {
        all_up(sim, &nodes)
    });
    assert!(took < 5 * SECOND, "converged after {took:?}");
    for node in &nodes {
        let ups = sim
            .events()
            .from_node(node)
            .filter(|e| matches!(e.event, NodeEvent::Membership(ClusterEvent::MemberUp(_))))
            .count();
        assert_eq!(ups, 3, "member-up events on {node:?}");
    }
}

#[test]
fn no_convergence_while_member_unreachable() {
    let mut sim = Simulator::new(2);
    let no_resolver = |seeds: &[u16]| {
        let mut settings = settings(seeds);
        settings.sbr.enabled = false;
        settings
    };
    let nodes = cluster(&mut sim, 3, 3, no_resolver);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));

    sim.isolate(&nodes[2]);
    let third = unique(3, 103);
    sim.expect_within(10 * SECOND, "node 3 unreachable for node 1", |sim| {
        cluster_common::observes_unreachable(sim, &nodes[0], &third)
    });
    // Let a status change arrive while node 3 is unreachable: node 2 leaves.
    sim.invoke(&nodes[0], |n, now, out| {
        n.command(now, out, |node, out| node.leave(&nodes[1], now, out))
    })
    .expect("node is alive")
    .expect("node 1 is a member");
    sim.run_for(30 * SECOND);
    let first = sim.node(&nodes[0]).unwrap();
    assert!(!first.node.membership().is_converged());
    let blockers = first.node.convergence_blockers();
    assert!(
        blockers
            .iter()
            .any(|b| b.to_string().contains(&third.to_string())),
        "blockers name node 3: {blockers:?}"
    );
    assert_eq!(
        first
            .node
            .membership()
            .gossip()
            .member(&unique(2, 102))
            .map(|m| m.status),
        Some(MemberStatus::Leaving),
        "the leader cannot move node 2 on without convergence"
    );
    assert!(sim.events().any(|e| e.node == nodes[0]
        && matches!(&e.event, NodeEvent::ConvergenceBlocked { blockers, blocked_for }
            if *blocked_for >= 10 * SECOND && !blockers.is_empty())));

    sim.heal();
    sim.expect_within(MINUTE, "node 2 removed after healing", |sim| {
        sim.node(&nodes[0])
            .is_some_and(|n| !n.node.membership().gossip().has_member(&unique(2, 102)))
    });
}

#[test]
fn leader_is_lowest_address_and_moves_on_leave() {
    let mut sim = Simulator::new(3);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    for node in &nodes {
        assert_eq!(leader_seen_by(&sim, node), Some(nodes[0].clone()));
    }

    sim.invoke(&nodes[0], |n, now, out| {
        n.command(now, out, |node, out| node.leave(&nodes[0], now, out))
    })
    .expect("node is alive")
    .expect("node 1 is a member");
    sim.expect_within(MINUTE, "node 1 removed and node 2 leads", |sim| {
        all_up(sim, &nodes[1..])
            && nodes[1..]
                .iter()
                .all(|n| leader_seen_by(sim, n).as_ref() == Some(&nodes[1]))
    });
    assert_eq!(
        shutdown_reason(&sim, &nodes[0]),
        Some(ShutdownReason::Removed)
    );
}

#[test]
fn leader_crash_moves_leadership() {
    let mut sim = Simulator::new(4);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.kill(&nodes[0]);
    let took = sim.expect_within(MINUTE, "node 2 leads once node 1 is unreachable", |sim| {
        nodes[1..]
            .iter()
            .all(|n| leader_seen_by(sim, n).as_ref() == Some(&nodes[1]))
    });
    assert!(took <= 7 * SECOND, "leadership moved after {took:?}");
    sim.expect_within(MINUTE, "node 1 removed by the resolver", |sim| {
        all_up(sim, &nodes[1..])
    });
}

#[test]
fn seeds_and_joiners_form_one_cluster() {
    let mut sim = Simulator::new(5);
    let nodes = cluster(&mut sim, 5, 3, settings);
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, &nodes));
    let leaders: BTreeSet<_> = nodes.iter().map(|n| leader_seen_by(&sim, n)).collect();
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");
}

#[test]
fn restarted_first_seed_joins_existing_cluster() {
    let mut sim = Simulator::new(6);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.kill(&nodes[0]);
    sim.run_for(2 * SECOND);
    let seed = sim.random_u64();
    sim.restart(
        &nodes[0],
        SimClusterNode::new(unique(1, 999), settings(&[1, 2, 3]), seed),
    );
    sim.expect_within(2 * MINUTE, "new incarnation up in the old cluster", |sim| {
        all_up(sim, &nodes)
            && sim.nodes().all(|n| {
                n.node.membership().gossip().has_member(&unique(1, 999))
                    && !n.node.membership().gossip().has_member(&unique(1, 101))
            })
    });
    // The new incarnation joined the existing cluster: the others kept their up numbers.
    let second = sim.node(&nodes[1]).unwrap();
    let gossip = second.node.membership().gossip();
    let restarted = gossip.member(&unique(1, 999)).unwrap();
    let other = gossip.member(&unique(2, 102)).unwrap();
    assert!(other.is_older_than(restarted));
}

#[test]
fn min_nr_of_members_holds_back_up() {
    let mut sim = Simulator::new(7);
    let with_minimum = |seeds: &[u16]| {
        let mut settings = settings(seeds);
        settings.membership.min_nr_of_members = NonZeroUsize::new(3).unwrap();
        settings
    };
    let first_two: Vec<Address> = (1..=2)
        .map(|port| add(&mut sim, port, 100 + u64::from(port), with_minimum(&[1, 2])))
        .collect();
    sim.run_for(20 * SECOND);
    for node in &first_two {
        sim.check_node(node, "still joining with two members", |n| {
            n.status() == Some(MemberStatus::Joining)
        });
    }
    let third = add(&mut sim, 3, 103, with_minimum(&[1, 2]));
    let nodes = [first_two[0].clone(), first_two[1].clone(), third];
    sim.expect_within(MINUTE, "all up with the third member", |sim| {
        all_up(sim, &nodes)
    });
}

#[test]
fn weakly_up_during_partition_then_up() {
    let mut sim = Simulator::new(8);
    let no_resolver = |seeds: &[u16]| {
        let mut settings = settings(seeds);
        settings.sbr.enabled = false;
        settings
    };
    let mut nodes = cluster(&mut sim, 3, 3, no_resolver);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.isolate(&nodes[2]);
    sim.expect_within(10 * SECOND, "node 3 unreachable", |sim| {
        cluster_common::observes_unreachable(sim, &nodes[0], &unique(3, 103))
    });

    let fourth = add(&mut sim, 4, 104, no_resolver(&[1, 2]));
    sim.expect_within(30 * SECOND, "node 4 weakly up", |sim| {
        sim.node(&fourth)
            .is_some_and(|n| n.status() == Some(MemberStatus::WeaklyUp))
    });
    sim.run_for(5 * SECOND);
    sim.check_node(&fourth, "not up while node 3 is unreachable", |n| {
        n.status() == Some(MemberStatus::WeaklyUp)
    });

    sim.heal();
    nodes.push(fourth);
    sim.expect_within(MINUTE, "all four up after healing", |sim| {
        all_up(sim, &nodes)
    });
}

#[test]
fn new_incarnation_replaces_old_one() {
    let mut sim = Simulator::new(9);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    let seed = sim.random_u64();
    // Replace the running node at once, as a process restarted on the same port.
    sim.restart(
        &nodes[2],
        SimClusterNode::new(unique(3, 777), settings(&[1, 2, 3]), seed),
    );
    sim.expect_within(MINUTE, "new incarnation up, old one gone", |sim| {
        all_up(sim, &nodes)
            && sim.nodes().all(|n| {
                n.node.membership().gossip().has_member(&unique(3, 777))
                    && !n.node.membership().gossip().has_member(&unique(3, 103))
            })
    });
    assert!(sim.events().any(|e| e.node == nodes[0]
        && matches!(&e.event,
            NodeEvent::Membership(ClusterEvent::MemberRemoved {
                member,
                previous_status: MemberStatus::Down,
            }) if member.unique_address == unique(3, 103))));
}

#[test]
fn leave_goes_through_exiting_to_removed() {
    let mut sim = Simulator::new(10);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.invoke(&nodes[2], |n, now, out| {
        n.command(now, out, |node, out| node.leave(&nodes[2], now, out))
    })
    .expect("node is alive")
    .expect("node 3 is a member");
    sim.expect_within(MINUTE, "node 3 removed", |sim| all_up(sim, &nodes[..2]));
    let third = unique(3, 103);
    let on_first: Vec<&'static str> = sim
        .events()
        .from_node(&nodes[0])
        .filter_map(|e| match &e.event {
            NodeEvent::Membership(ClusterEvent::MemberLeft(m)) if m.unique_address == third => {
                Some("left")
            }
            NodeEvent::Membership(ClusterEvent::MemberExited(m)) if m.unique_address == third => {
                Some("exited")
            }
            NodeEvent::Membership(ClusterEvent::MemberRemoved { member, .. })
                if member.unique_address == third =>
            {
                Some("removed")
            }
            _ => None,
        })
        .collect();
    assert_eq!(on_first, ["left", "exited", "removed"]);
    sim.expect_within(10 * SECOND, "node 3 stopped", |sim| {
        shutdown_reason(sim, &nodes[2]) == Some(ShutdownReason::Removed)
    });
    sim.check_node(&nodes[2], "stopped after removal", |n| !n.node.is_running());
}

#[test]
fn join_leave_cycles_keep_gossip_bounded() {
    let mut sim = Simulator::new(11);
    let short_tombstones = |seeds: &[u16]| {
        let mut settings = settings(seeds);
        settings.membership.prune_gossip_tombstones_after = 30 * SECOND;
        settings
    };
    let nodes = cluster(&mut sim, 3, 3, short_tombstones);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    let sizes = (0..200u64)
        .map(|cycle| {
            let joiner = add(&mut sim, 10, 1000 + cycle, short_tombstones(&[1, 2, 3]));
            let mut all = nodes.clone();
            all.push(joiner.clone());
            sim.expect_within(MINUTE, "joiner up", |sim| all_up(sim, &all));
            sim.invoke(&joiner, |n, now, out| {
                n.command(now, out, |node, out| node.leave(&joiner, now, out))
            })
            .expect("node is alive")
            .expect("joiner is a member");
            sim.expect_within(MINUTE, "joiner removed", |sim| all_up(sim, &nodes));
            sim.kill(&joiner);
            gossip_size(&sim, &nodes[0])
        })
        .collect::<Vec<usize>>();
    let early = sizes[..100].iter().max().unwrap();
    let late = sizes[100..].iter().max().unwrap();
    assert!(
        late <= early,
        "gossip grew from at most {early} bytes in cycles 1-100 to {late} in 101-200"
    );
    let first = sim.node(&nodes[0]).unwrap();
    let gossip = first.node.membership().gossip();
    assert!(
        gossip.tombstones().len() <= 10,
        "tombstones: {}",
        gossip.tombstones().len()
    );
    assert!(gossip.version().entries().count() <= 10, "clock entries");
}

fn gossip_size(sim: &Simulator<SimClusterNode>, node: &Address) -> usize {
    use akkord_cluster::membership::ClusterMessage;
    use akkord_cluster::node::NodeMessage;
    use std::sync::Arc;
    let n = sim.node(node).unwrap();
    let message = NodeMessage::Membership(ClusterMessage::Gossip {
        from: n.node.self_node().clone(),
        to: n.node.self_node().clone(),
        gossip: Arc::new(n.node.membership().gossip().clone()),
    });
    SimClusterNode::wire_size(&message)
}

#[test]
fn same_seed_replays_same_events() {
    let run = |seed: u64| {
        let mut sim = Simulator::new(seed);
        let nodes = cluster(&mut sim, 5, 3, cluster_common::fast_settings);
        sim.run_for(20 * SECOND);
        sim.partition(&nodes[..3], &nodes[3..]);
        sim.run_for(MINUTE);
        sim.events()
            .all()
            .iter()
            .map(|e| format!("{:?} {:?} {:?}", e.at, e.node, e.event))
            .collect::<Vec<String>>()
    };
    let first = run(12);
    assert!(first.len() > 20, "only {} events", first.len());
    assert_eq!(first, run(12));
    assert_ne!(first, run(13), "another seed gives another run");
}

#[test]
fn node_removed_unaware_of_down_stops_as_downed() {
    let mut sim = Simulator::new(5);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));

    // Node 3 receives nothing, so neither its Down nor its removal reaches it in time.
    sim.partition_one_way(&nodes[0], &nodes[2]);
    sim.partition_one_way(&nodes[1], &nodes[2]);
    sim.invoke(&nodes[0], |n, now, out| {
        n.command(now, out, |node, out| node.down(&unique(3, 103), now, out))
    })
    .expect("node is alive")
    .expect("node 3 is a member");
    sim.expect_within(MINUTE, "node 3 removed by the others", |sim| {
        all_up(sim, &nodes[..2])
    });
    assert_eq!(shutdown_reason(&sim, &nodes[2]), None);

    sim.heal();
    sim.expect_within(MINUTE, "node 3 stopped", |sim| {
        shutdown_reason(sim, &nodes[2]).is_some()
    });
    assert_eq!(
        shutdown_reason(&sim, &nodes[2]),
        Some(ShutdownReason::Downed)
    );
}
