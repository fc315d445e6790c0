//! Randomized faults against clusters of 5 to 7 nodes: after the faults stop, the surviving
//! nodes agree on one membership and one leader, and no two sides keep running.

#[path = "common/cluster.rs"]
mod cluster_common;

use std::collections::BTreeSet;
use std::time::Duration;

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::member::MemberStatus;
use akkord_testkit::sim::{run_seeds, FaultConfig, FaultSchedule, Simulator};

use cluster_common::{all_up, cluster, fast_settings, SimClusterNode, MINUTE, SECOND};

/// Number of seeds per run, split over two tests so that they run on two threads. Each
/// seed draws its own cluster size and fault schedule.
const SEEDS: u64 = 500;

/// Span of virtual time over which faults happen; the schedule heals everything at its end.
const FAULT_SPAN: Duration = Duration::from_secs(30);

/// Time after the final heal within which the survivors must agree. It covers failure
/// detection (about 5 s), the fast profile's stable-after (7 s) and down-all limit (7 s +
/// 5.25 s), a rejoin of restarted nodes and several gossip rounds.
const SETTLE_WITHIN: Duration = Duration::from_secs(90);

#[test]
fn survivors_agree_first_half() {
    let ran = run_seeds(0..SEEDS / 2, run_one);
    assert!(ran >= 1);
}

#[test]
fn survivors_agree_second_half() {
    let ran = run_seeds(SEEDS / 2..SEEDS, run_one);
    assert!(ran >= 1);
}

fn run_one(seed: u64) -> Result<(), String> {
    let mut sim = Simulator::new(seed);
    let count = 5 + (seed % 3) as u16;
    let mut members = cluster(&mut sim, count, 3, fast_settings);
    sim.run_until(MINUTE, |sim| all_up(sim, &members))
        .map_err(|e| format!("the cluster did not form: {e}"))?;

    let schedule =
        FaultSchedule::generate(seed, members.len(), FAULT_SPAN, &FaultConfig::default());
    let ports: Vec<u16> = (1..=count).collect();
    schedule.run(&mut sim, &mut members, |old, uid| {
        // A restarted node lists every other node as a seed, starting after itself, so it
        // is never the first seed and only ever joins the existing cluster. A first seed
        // that restarts while cut off from every member for the seed timeout forms a
        // second cluster, as in Akka, and no resolver can merge two clusters.
        let rotated: Vec<u16> = ports
            .iter()
            .cycle()
            .skip_while(|port| **port != old.port())
            .skip(1)
            .take(ports.len())
            .copied()
            .collect();
        let node = UniqueAddress::new(old.clone(), uid);
        SimClusterNode::new(node, fast_settings(&rotated), uid)
    });

    sim.run_until_polling(SETTLE_WITHIN, SECOND, |sim| agreement(sim).is_ok())
        .map_err(|_| {
            format!(
                "{}\nno agreement {SETTLE_WITHIN:?} after the faults stopped: {}",
                schedule,
                agreement(&sim).unwrap_err()
            )
        })?;
    Ok(())
}

/// Checks that every running member sees the same members, statuses and leader and has
/// converged, and that every node that considers itself Up is in that one membership.
fn agreement(sim: &Simulator<SimClusterNode>) -> Result<(), String> {
    let survivors: Vec<&SimClusterNode> = sim
        .nodes()
        .filter(|n| n.node.is_running() && n.node.membership().is_member())
        .collect();
    let Some(first) = survivors.first() else {
        return Ok(());
    };
    let view = |n: &SimClusterNode| (n.members(), n.node.membership().leader().map(|l| l.address));
    let expected = view(first);
    for node in &survivors {
        let actual = view(node);
        if actual != expected {
            return Err(format!(
                "{} sees {:?}, {} sees {:?}",
                node.node.self_node(),
                actual,
                first.node.self_node(),
                expected
            ));
        }
        if !node.node.membership().is_converged() {
            return Err(format!(
                "{} has not converged: {:?}",
                node.node.self_node(),
                node.node.convergence_blockers()
            ));
        }
    }
    let listed: BTreeSet<&UniqueAddress> = expected.0.iter().map(|(node, _)| node).collect();
    let up: Vec<&UniqueAddress> = survivors
        .iter()
        .filter(|n| n.is_up())
        .map(|n| n.node.self_node())
        .collect();
    if let Some(outsider) = up.iter().find(|node| !listed.contains(*node)) {
        return Err(format!(
            "{outsider} is Up outside the membership {listed:?}"
        ));
    }
    if expected
        .0
        .iter()
        .any(|(_, status)| *status == MemberStatus::Down)
    {
        return Err("a Down member is not removed yet".to_owned());
    }
    let leader: Option<&Address> = expected.1.as_ref();
    if leader.is_none() {
        return Err("no leader".to_owned());
    }
    Ok(())
}
