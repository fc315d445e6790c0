//! Failure detection scenarios of the whole cluster node: crashes, frozen nodes and nodes
//! that never respond to heartbeats.

#[path = "common/cluster.rs"]
mod cluster_common;

use std::time::Duration;

use akkord_actor::address::Address;
use akkord_cluster::membership::ClusterEvent;
use akkord_cluster::node::NodeEvent;
use akkord_testkit::sim::Simulator;

use cluster_common::{
    add, all_up, cluster, observes_unreachable, settings, unique, SimClusterNode, MINUTE, SECOND,
};

/// Returns the virtual times at which `observer` published an unreachable or a reachable
/// event about the member at port `port`.
fn reachability_events(
    sim: &Simulator<SimClusterNode>,
    observer: &Address,
    port: u16,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut unreachable = Vec::new();
    let mut reachable = Vec::new();
    for e in sim.events().from_node(observer) {
        match &e.event {
            NodeEvent::Membership(ClusterEvent::UnreachableMember(m))
                if m.address().port() == port =>
            {
                unreachable.push(e.at)
            }
            NodeEvent::Membership(ClusterEvent::ReachableMember(m))
                if m.address().port() == port =>
            {
                reachable.push(e.at)
            }
            _ => {}
        }
    }
    (unreachable, reachable)
}

#[test]
fn silent_node_becomes_unreachable() {
    let mut sim = Simulator::new(21);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    let mut silent = SimClusterNode::new(unique(4, 104), settings(&[1, 2, 3]), 4);
    silent.answers_heartbeats = false;
    let silent = sim.add_node(silent);
    sim.expect_within(
        20 * SECOND,
        "the silent node is unreachable for every other node",
        |sim| {
            nodes
                .iter()
                .all(|n| observes_unreachable(sim, n, &unique(4, 104)))
        },
    );
    let (unreachable, _) = reachability_events(&sim, &nodes[0], 4);
    assert!(
        !unreachable.is_empty(),
        "node 1 published no unreachable event"
    );
    sim.check_node(&silent, "the silent node still runs", |n| {
        n.node.is_running()
    });
}

#[test]
fn crashed_node_unreachable_then_removed() {
    let mut sim = Simulator::new(22);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.run_for(20 * SECOND);

    let crashed = unique(3, 103);
    let observer = &nodes[0];
    sim.kill(&nodes[2]);
    let last_heartbeat = sim
        .node(observer)
        .and_then(|n| n.node.heartbeat().detector(&crashed))
        .and_then(|d| d.last_heartbeat())
        .expect("node 1 monitors node 3");
    let since_last = sim.now().duration_since(last_heartbeat);
    let took = sim.expect_within(20 * SECOND, "node 1 observes node 3 unreachable", |sim| {
        observes_unreachable(sim, observer, &crashed)
    });
    let detection = since_last + took;
    // Phi reaches 8 about 4.56 s after the last heartbeat with a 1 s mean interval, 3 s
    // acceptable pause and 100 ms minimum deviation. The detector is checked once per
    // heartbeat round, so the observation comes up to one interval later.
    assert!(
        detection >= Duration::from_millis(4_400) && detection <= Duration::from_millis(5_700),
        "unreachable {detection:?} after the last heartbeat"
    );
    let all_took = sim.expect_within(10 * SECOND, "node 2 observes node 3 unreachable", |sim| {
        observes_unreachable(sim, &nodes[1], &crashed)
    });
    assert!(since_last + took + all_took <= Duration::from_millis(5_700));

    // The resolver waits for stable-after (20 s) from the last change, then downs node 3,
    // and the leader removes it.
    let removed_after = sim.expect_within(MINUTE, "node 3 removed", |sim| all_up(sim, &nodes[..2]));
    let stable_after = Duration::from_secs(20);
    eprintln!(
        "unreachable for node 1 {detection:?} and for all {:?} after the last heartbeat, \
         removed {removed_after:?} later",
        since_last + took + all_took
    );
    assert!(
        removed_after + all_took >= stable_after,
        "removed {removed_after:?} after unreachable, before stable-after"
    );
    assert!(
        removed_after <= stable_after + 5 * SECOND,
        "removed {removed_after:?} after unreachable"
    );
}

#[test]
fn short_freeze_causes_no_unreachable() {
    let mut sim = Simulator::new(23);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.run_for(20 * SECOND);
    sim.freeze(&nodes[2]);
    sim.run_for(Duration::from_millis(2_500));
    sim.unfreeze(&nodes[2]);
    sim.run_for(20 * SECOND);
    for observer in &nodes[..2] {
        let (unreachable, _) = reachability_events(&sim, observer, 3);
        assert!(
            unreachable.is_empty(),
            "{observer:?} saw node 3 unreachable at {unreachable:?}"
        );
    }
    assert!(all_up(&sim, &nodes));
}

#[test]
fn long_freeze_unreachable_then_reachable() {
    let mut sim = Simulator::new(24);
    let nodes = cluster(&mut sim, 3, 3, settings);
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    sim.run_for(20 * SECOND);
    sim.freeze(&nodes[2]);
    sim.expect_within(10 * SECOND, "node 3 unreachable while frozen", |sim| {
        observes_unreachable(sim, &nodes[0], &unique(3, 103))
    });
    sim.run_for(3 * SECOND);
    // Unfrozen well before the resolver's stable-after of 20 s.
    sim.unfreeze(&nodes[2]);
    sim.expect_within(10 * SECOND, "node 3 reachable again", |sim| {
        !observes_unreachable(sim, &nodes[0], &unique(3, 103))
    });
    sim.expect_within(MINUTE, "three members up", |sim| all_up(sim, &nodes));
    let (unreachable, reachable) = reachability_events(&sim, &nodes[0], 3);
    assert_eq!(unreachable.len(), 1);
    assert_eq!(reachable.len(), 1);
    assert!(
        sim.nodes().all(|n| n.node.is_running()),
        "nobody was downed"
    );
}

#[test]
fn late_heartbeat_tick_is_reported() {
    let mut sim = Simulator::new(25);
    let first = add(&mut sim, 1, 101, settings(&[1]));
    sim.expect_within(MINUTE, "first node up", |sim| {
        all_up(sim, std::slice::from_ref(&first))
    });
    sim.freeze(&first);
    sim.run_for(2 * SECOND);
    sim.unfreeze(&first);
    sim.run_for(SECOND);
    let late = sim.events().from_node(&first).find_map(|e| match e.event {
        NodeEvent::HeartbeatTickLate { late_by } => Some(late_by),
        _ => None,
    });
    let late = late.expect("a late heartbeat tick event");
    assert!(late >= SECOND, "late by {late:?}");
}
