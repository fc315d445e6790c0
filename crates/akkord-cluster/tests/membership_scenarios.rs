//! Membership scenarios run by the deterministic simulator.

mod common;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use akkord_actor::address::Address;
use akkord_cluster::member::MemberStatus;
use akkord_cluster::membership::{ClusterEvent, JoinRejection, MembershipSettings};
use akkord_testkit::sim::{SimNode, Simulator};

use common::{add, address, all_up, settings, unique, MemberNode, MINUTE};

fn three_seed_cluster(seed: u64) -> (Simulator<MemberNode>, Vec<Address>) {
    let mut sim = Simulator::new(seed);
    let seeds = [1, 2, 3];
    let nodes = seeds
        .iter()
        .map(|port| add(&mut sim, *port, 100 + u64::from(*port), settings(&seeds)))
        .collect();
    (sim, nodes)
}

#[test]
fn three_seeds_converge_into_one_cluster() {
    let (mut sim, nodes) = three_seed_cluster(1);
    let took = sim.expect_within(MINUTE, "three members up and converged", |sim| {
        all_up(sim, 3)
    });
    // The first seed forms the cluster once the others reply, so no one waits for the
    // 5 s seed timeout.
    assert!(took < Duration::from_secs(5), "converged after {took:?}");
    let leaders: BTreeSet<_> = sim.nodes().map(|n| n.core.leader()).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders.into_iter().next().unwrap(), Some(unique(1, 101)));
    for node in &nodes {
        let ups = sim
            .events()
            .from_node(node)
            .filter(|e| matches!(e.event, ClusterEvent::MemberUp(_)))
            .count();
        assert_eq!(ups, 3, "member-up events on {node:?}");
    }
}

#[test]
fn seeds_and_joiners_form_one_cluster() {
    let mut sim = Simulator::new(2);
    let seeds = [1, 2];
    for port in 1..=5 {
        add(&mut sim, port, 200 + u64::from(port), settings(&seeds));
    }
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, 5));
    let up_numbers: BTreeSet<u32> = sim
        .nodes()
        .next()
        .unwrap()
        .core
        .gossip()
        .members()
        .map(|m| m.up_number)
        .collect();
    assert_eq!(up_numbers.len(), 5, "each member has its own up number");
}

#[test]
fn lone_first_seed_forms_cluster_after_timeout() {
    let mut sim = Simulator::new(3);
    let first = add(&mut sim, 1, 1, settings(&[1, 2]));
    sim.run_for(Duration::from_millis(4900));
    sim.check_node(&first, "no cluster before the seed timeout", |n| {
        !n.core.is_member()
    });
    sim.expect_within(Duration::from_secs(1), "first seed up alone", |sim| {
        all_up(sim, 1)
    });
}

#[test]
fn node_without_seeds_never_self_joins() {
    let mut sim = Simulator::new(4);
    let node = add(&mut sim, 1, 1, MembershipSettings::default());
    sim.run_for(MINUTE);
    sim.check_node(&node, "not a member", |n| !n.core.is_member());
}

#[test]
fn restarted_first_seed_rejoins_existing_cluster() {
    let (mut sim, nodes) = three_seed_cluster(5);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
    let first = nodes[0].clone();

    let seed = sim.random_u64();
    sim.restart(
        &first,
        MemberNode::new(unique(1, 999), settings(&[1, 2, 3]), seed),
    );
    sim.expect_within(2 * MINUTE, "restarted seed up in the old cluster", |sim| {
        all_up(sim, 3)
            && sim
                .nodes()
                .all(|n| n.core.gossip().has_member(&unique(1, 999)))
    });
    for node in &nodes[1..] {
        sim.check_node(node, "old incarnation tombstoned", |n| {
            n.core.gossip().is_tombstoned(&unique(1, 101))
        });
    }
    assert!(sim.events().any(|e| e.node == nodes[1]
        && matches!(&e.event, ClusterEvent::MemberRemoved { member, previous_status: MemberStatus::Down }
            if member.unique_address == unique(1, 101))));
}

#[test]
fn new_incarnation_replaces_old_one() {
    let (mut sim, nodes) = three_seed_cluster(6);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
    let third = nodes[2].clone();

    let seed = sim.random_u64();
    sim.restart(
        &third,
        MemberNode::new(unique(3, 777), settings(&[1, 2, 3]), seed),
    );
    sim.expect_within(2 * MINUTE, "new incarnation up", |sim| {
        all_up(sim, 3)
            && sim.nodes().all(|n| {
                n.core.gossip().has_member(&unique(3, 777))
                    && !n.core.gossip().has_member(&unique(3, 103))
            })
    });
}

#[test]
fn min_nr_of_members_holds_joining() {
    let mut sim = Simulator::new(7);
    let mut config = settings(&[1, 2, 3]);
    config.min_nr_of_members = NonZeroUsize::new(3).unwrap();
    add(&mut sim, 1, 1, config.clone());
    add(&mut sim, 2, 2, config.clone());
    sim.run_for(Duration::from_secs(30));
    for node in sim.nodes() {
        assert!(node.core.is_member());
        assert!(node
            .core
            .gossip()
            .members()
            .all(|m| m.status == MemberStatus::Joining));
    }
    add(&mut sim, 3, 3, config);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
}

#[test]
fn role_minimum_holds_joining() {
    let mut sim = Simulator::new(8);
    let mut config = settings(&[1, 2]);
    config.role_min_nr_of_members = [("backend".to_owned(), 1)].into();
    add(&mut sim, 1, 1, config.clone());
    add(&mut sim, 2, 2, config.clone());
    sim.run_for(Duration::from_secs(20));
    assert!(sim
        .nodes()
        .all(|n| n.status() == Some(MemberStatus::Joining)));
    config.roles = ["backend".to_owned()].into();
    add(&mut sim, 3, 3, config);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
}

#[test]
fn leave_moves_through_exiting_to_removed() {
    let (mut sim, nodes) = three_seed_cluster(9);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
    sim.events_mut().clear();
    let leaver = nodes[1].clone();

    sim.invoke(&leaver, |node, now, out| {
        node.command(now, out, |core, result| {
            core.leave(&address(2), now, result).unwrap()
        })
    });
    sim.expect_within(MINUTE, "leaver removed everywhere", |sim| {
        sim.nodes()
            .all(|n| n.core.gossip().is_tombstoned(&unique(2, 102)) || n.core.is_removed())
    });
    sim.check_node(&leaver, "leaver knows it was removed", |n| {
        n.core.is_removed()
    });

    let statuses: Vec<&str> = sim
        .events()
        .from_node(&nodes[0])
        .filter_map(|e| match &e.event {
            ClusterEvent::MemberLeft(m) if m.unique_address == unique(2, 102) => Some("left"),
            ClusterEvent::MemberExited(m) if m.unique_address == unique(2, 102) => Some("exited"),
            ClusterEvent::MemberRemoved { member, .. }
                if member.unique_address == unique(2, 102) =>
            {
                Some("removed")
            }
            _ => None,
        })
        .collect();
    assert_eq!(statuses, ["left", "exited", "removed"]);
    assert!(sim
        .events()
        .from_node(&leaver)
        .any(|e| e.event == ClusterEvent::SelfRemoved));
    sim.expect_within(MINUTE, "remaining two converge", |sim| {
        sim.nodes()
            .filter(|n| !n.core.is_removed())
            .all(|n| n.core.gossip().member_count() == 2 && n.core.is_converged())
    });
}

#[test]
fn join_from_other_system_rejected() {
    let (mut sim, _) = three_seed_cluster(10);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
    let stranger_address = Address::new("other", "10.0.0.9", 9).unwrap();
    let stranger = akkord_actor::address::UniqueAddress::new(stranger_address.clone(), 9);
    let seed = sim.random_u64();
    sim.add_node(MemberNode::new(stranger, settings(&[1, 2, 3]), seed));
    let event = sim.expect_event_within(MINUTE, "join rejected", |e| {
        e.node == stranger_address && matches!(e.event, ClusterEvent::JoinRejected { .. })
    });
    let ClusterEvent::JoinRejected { reason, .. } = event.event else {
        unreachable!()
    };
    assert!(
        matches!(reason, JoinRejection::SystemNameMismatch { ref actual, .. } if actual == "other")
    );
    sim.run_for(MINUTE);
    assert!(sim
        .nodes()
        .filter(|n| n.core.is_member())
        .all(|n| n.core.gossip().member_count() == 3));
}

#[test]
fn unreachable_member_blocks_until_downed() {
    let (mut sim, nodes) = three_seed_cluster(11);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
    let third = unique(3, 103);
    sim.isolate(&nodes[2]);
    sim.invoke(&nodes[0], |node, now, out| {
        node.command(now, out, |core, result| {
            core.mark_unreachable(&third, now, result)
        })
    });
    sim.run_for(Duration::from_secs(5));
    sim.check_node(&nodes[1], "unreachable member blocks convergence", |n| {
        !n.core.is_converged() && n.core.current_state().unreachable.contains(&third)
    });

    // A new node joins; without convergence it becomes WeaklyUp after 7 s.
    add(&mut sim, 4, 104, settings(&[1, 2, 3]));
    sim.expect_event_within(MINUTE, "new member weakly up", |e| {
        matches!(&e.event, ClusterEvent::MemberWeaklyUp(m) if m.unique_address == unique(4, 104))
    });

    sim.invoke(&nodes[1], |node, now, out| {
        node.command(now, out, |core, result| {
            core.down(&third, now, result).unwrap()
        })
    });
    sim.expect_within(MINUTE, "downed member removed, new member up", |sim| {
        sim.nodes().filter(|n| n.address() != nodes[2]).all(|n| {
            let g = n.core.gossip();
            g.is_tombstoned(&third)
                && g.member_count() == 3
                && g.members().all(|m| m.status == MemberStatus::Up)
        })
    });
}

#[test]
fn steady_state_gossip_sends_digests() {
    let mut sim = Simulator::new(12);
    for port in 1..=5 {
        add(&mut sim, port, u64::from(port), settings(&[1, 2]));
    }
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, 5));
    sim.run_for(Duration::from_secs(5));
    let before = sim.traffic();
    sim.run_for(Duration::from_secs(30));
    let window = sim.traffic().since(&before);
    let total = window.total();
    let statuses = total.sent.get("gossip-status").messages;
    let full = total.sent.get("gossip").messages;
    assert!(statuses >= 5 * 25, "status messages: {statuses}");
    assert!(
        full <= statuses / 10,
        "full gossip {full} vs status {statuses}"
    );
}

#[test]
fn join_leave_cycles_keep_gossip_bounded() {
    let mut sim = Simulator::new(13);
    let mut config = settings(&[1, 2]);
    config.prune_gossip_tombstones_after = Duration::from_secs(120);
    add(&mut sim, 1, 1, config.clone());
    add(&mut sim, 2, 2, config.clone());
    sim.expect_within(MINUTE, "two members up", |sim| all_up(sim, 2));

    let mut max_tombstones = 0;
    let mut max_clock = 0;
    for cycle in 0..200u64 {
        let uid = 1000 + cycle;
        let joiner = add(&mut sim, 3, uid, config.clone());
        sim.expect_within(MINUTE, "joiner up", |sim| all_up(sim, 3));
        sim.invoke(&joiner, |node, now, out| {
            node.command(now, out, |core, result| {
                core.leave(&address(3), now, result).unwrap()
            })
        });
        sim.expect_within(MINUTE, "joiner removed", |sim| {
            sim.node(&joiner).is_some_and(|n| n.core.is_removed())
                && sim
                    .nodes()
                    .filter(|n| !n.core.is_removed())
                    .all(|n| n.core.gossip().member_count() == 2 && n.core.is_converged())
        });
        sim.kill(&joiner);
        for node in sim.nodes() {
            let gossip = node.core.gossip();
            max_tombstones = max_tombstones.max(gossip.tombstones().len());
            max_clock = max_clock.max(gossip.version().len());
        }
    }
    // Each cycle takes several seconds, so a 120 s tombstone lifetime keeps only the
    // tombstones of the last few dozen cycles. The clock keeps entries of members only.
    assert!(max_tombstones < 60, "tombstones peaked at {max_tombstones}");
    assert!(max_clock <= 3, "clock entries peaked at {max_clock}");
}

#[test]
fn downed_member_learns_removal_after_heal() {
    let mut sim = Simulator::new(14);
    let nodes: Vec<Address> = (1..=5)
        .map(|port| add(&mut sim, port, 300 + u64::from(port), settings(&[1, 2])))
        .collect();
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, 5));
    let fifth = unique(5, 305);

    sim.isolate(&nodes[4]);
    for observer in &nodes[..4] {
        sim.invoke(observer, |node, now, out| {
            node.command(now, out, |core, result| {
                core.mark_unreachable(&fifth, now, result)
            })
        });
    }
    sim.invoke(&nodes[0], |node, now, out| {
        node.command(now, out, |core, result| {
            core.down(&fifth, now, result).unwrap()
        })
    });
    sim.expect_within(MINUTE, "isolated member removed by the others", |sim| {
        nodes[..4].iter().all(|address| {
            sim.node(address)
                .is_some_and(|n| n.core.gossip().is_tombstoned(&fifth))
        })
    });
    sim.check_node(&nodes[4], "isolated member unaware", |n| {
        !n.core.is_removed()
    });

    sim.heal();
    sim.expect_event_within(MINUTE, "isolated member learns its removal", |e| {
        e.node == nodes[4] && e.event == ClusterEvent::SelfRemoved
    });
    sim.check_node(&nodes[0], "others still four members", |n| {
        n.core.gossip().member_count() == 4
    });
}

#[test]
fn same_seed_replays_same_events() {
    let run = |seed| {
        let (mut sim, nodes) = three_seed_cluster(seed);
        sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, 3));
        sim.invoke(&nodes[2], |node, now, out| {
            node.command(now, out, |core, result| {
                core.leave(&address(3), now, result).unwrap()
            })
        });
        sim.run_for(Duration::from_secs(20));
        sim.events()
            .all()
            .iter()
            .map(|e| format!("{:?}", e))
            .collect::<Vec<_>>()
    };
    let first = run(15);
    assert!(first.len() > 10, "only {} events", first.len());
    assert_eq!(first, run(15));
}
