//! Split brain resolver scenarios of the whole cluster node: partitions resolved by each
//! strategy, indirectly connected nodes and down-all when unstable.

#[path = "common/cluster.rs"]
mod cluster_common;

use std::num::NonZeroUsize;

use akkord_actor::address::Address;
use akkord_cluster::node::{ClusterNodeSettings, NodeEvent, ShutdownReason};
use akkord_cluster::sbr::{Decision, DowningStrategy};
use akkord_testkit::sim::Simulator;

use akkord_cluster::lease::InProcessLease;

use cluster_common::{
    all_up, cluster, settings, shutdown_reason, unique, SimClusterNode, MINUTE, SECOND,
};

fn five_nodes(seed: u64, strategy: DowningStrategy) -> (Simulator<SimClusterNode>, Vec<Address>) {
    let mut sim = Simulator::new(seed);
    let nodes = cluster(&mut sim, 5, 3, |seeds| ClusterNodeSettings {
        sbr: akkord_cluster::sbr::SbrSettings {
            strategy: strategy.clone(),
            ..akkord_cluster::sbr::SbrSettings::default()
        },
        ..settings(seeds)
    });
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, &nodes));
    sim.run_for(10 * SECOND);
    (sim, nodes)
}

/// Partitions `nodes` into `survivors` and the rest, and checks that the rest downs itself
/// while the survivors remove it and carry on.
fn expect_side_survives(
    sim: &mut Simulator<SimClusterNode>,
    nodes: &[Address],
    survivors: &[usize],
) {
    let mut kept = Vec::new();
    let mut lost = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if survivors.contains(&i) {
            kept.push(node.clone());
        } else {
            lost.push(node.clone());
        }
    }
    sim.partition(&kept, &lost);
    sim.expect_within(2 * MINUTE, "the losing side downed itself", |sim| {
        lost.iter()
            .all(|n| shutdown_reason(sim, n) == Some(ShutdownReason::Downed))
    });
    sim.expect_within(MINUTE, "the surviving side removed the other", |sim| {
        all_up(sim, &kept)
    });
    for node in &kept {
        assert_eq!(shutdown_reason(sim, node), None, "{node:?} stopped");
    }
    // Healing does not bring the downed side back.
    sim.heal();
    sim.run_for(30 * SECOND);
    assert!(all_up(sim, &kept));
    assert!(lost
        .iter()
        .all(|n| sim.node(n).is_some_and(|n| !n.node.is_running())));
}

#[test]
fn keep_majority_downs_minority() {
    let (mut sim, nodes) = five_nodes(31, DowningStrategy::default());
    expect_side_survives(&mut sim, &nodes, &[0, 1, 2]);
    assert!(sim.events().any(|e| e.node == nodes[0]
        && matches!(&e.event,
            NodeEvent::ResolverDecision { decision: Decision::DownUnreachable, down }
            if down.len() == 2)));
    assert!(sim.events().any(|e| e.node == nodes[3]
        && matches!(
            &e.event,
            NodeEvent::ResolverDecision {
                decision: Decision::DownReachable,
                ..
            }
        )));
}

#[test]
fn static_quorum_keeps_side_with_quorum() {
    let strategy = DowningStrategy::StaticQuorum {
        quorum_size: NonZeroUsize::new(3).unwrap(),
        role: None,
    };
    let (mut sim, nodes) = five_nodes(32, strategy);
    // The side without the lowest address has the quorum.
    expect_side_survives(&mut sim, &nodes, &[2, 3, 4]);
}

#[test]
fn keep_oldest_keeps_side_of_oldest() {
    let strategy = DowningStrategy::KeepOldest {
        down_if_alone: true,
        role: None,
    };
    let (mut sim, nodes) = five_nodes(33, strategy);
    // Node 1 formed the cluster, so it is the oldest; its side survives as a minority.
    expect_side_survives(&mut sim, &nodes, &[0, 1]);
}

#[test]
fn indirectly_connected_nodes_are_downed() {
    let (mut sim, nodes) = five_nodes(34, DowningStrategy::default());
    // Nodes 2 and 5 cannot talk to each other, but both talk to everyone else.
    sim.partition(&nodes[1..2], &nodes[4..5]);
    sim.expect_within(2 * MINUTE, "nodes 2 and 5 downed", |sim| {
        [&nodes[1], &nodes[4]]
            .iter()
            .all(|n| shutdown_reason(sim, n) == Some(ShutdownReason::Downed))
    });
    let rest = [nodes[0].clone(), nodes[2].clone(), nodes[3].clone()];
    sim.expect_within(MINUTE, "the others carry on", |sim| all_up(sim, &rest));
    assert!(sim.events().any(|e| matches!(
        &e.event,
        NodeEvent::ResolverDecision {
            decision: Decision::DownIndirectlyConnected { .. },
            ..
        }
    )));
}

#[test]
fn down_all_when_unstable() {
    let mut sim = Simulator::new(35);
    let nodes = cluster(&mut sim, 5, 3, cluster_common::fast_settings);
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, &nodes));
    sim.run_for(10 * SECOND);

    // Node 5 stays cut off while node 4 flaps: cut off for 6 s, back for 1 s, so the
    // picture changes more often than the 7 s stable-after.
    sim.isolate(&nodes[4]);
    for _ in 0..5 {
        sim.isolate(&nodes[3]);
        sim.run_for(6 * SECOND);
        sim.rejoin(&nodes[3]);
        sim.run_for(SECOND);
    }
    sim.expect_within(MINUTE, "every node of the majority stopped", |sim| {
        nodes[..3]
            .iter()
            .all(|n| shutdown_reason(sim, n) == Some(ShutdownReason::Downed))
    });
    assert!(sim.events().any(|e| e.node == nodes[0]
        && matches!(
            &e.event,
            NodeEvent::ResolverDecision {
                decision: Decision::DownAll,
                ..
            }
        )));
}

#[test]
fn lease_majority_keeps_lease_holder() {
    let mut sim = Simulator::new(36);
    let lease = InProcessLease::new("cluster");
    let strategy = DowningStrategy::lease_majority(None);
    let nodes: Vec<Address> = (1..=5u16)
        .map(|port| {
            let settings = ClusterNodeSettings {
                sbr: akkord_cluster::sbr::SbrSettings {
                    strategy: strategy.clone(),
                    ..akkord_cluster::sbr::SbrSettings::default()
                },
                ..settings(&[1, 2, 3])
            };
            let mut node = SimClusterNode::new(
                unique(port, 100 + u64::from(port)),
                settings,
                u64::from(port),
            );
            node.lease = Some(lease.clone());
            sim.add_node(node)
        })
        .collect();
    sim.expect_within(MINUTE, "five members up", |sim| all_up(sim, &nodes));
    sim.run_for(10 * SECOND);
    expect_side_survives(&mut sim, &nodes, &[0, 1, 2]);
    let holder = lease.holder().expect("the majority leader holds the lease");
    assert!(
        holder.contains(":1#") || holder.contains(":2#") || holder.contains(":3#"),
        "holder {holder}"
    );
}
