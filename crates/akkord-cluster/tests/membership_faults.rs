//! Membership under randomized network faults, and at a larger size.

mod common;

use std::cell::Cell;
use std::time::Duration;

use akkord_actor::address::Address;
use akkord_testkit::sim::{
    replay_seed_from_env, run_seeds, Fault, FaultConfig, FaultSchedule, Simulator,
};

use common::{add, all_up, settings, unique, MemberNode, MINUTE};

/// Builds the restarted node at `old`: a new uid, and a seed list that does not start with
/// its own address, so a restart during a partition cannot form a second cluster.
fn restarted(old: &Address, uid: u64) -> MemberNode {
    let port = old.port();
    let seeds: Vec<u16> = [1, 2, 3]
        .into_iter()
        .filter(|p| *p != port)
        .chain([port].into_iter().filter(|p| *p <= 3))
        .collect();
    MemberNode::new(unique(port, uid), settings(&seeds), uid)
}

#[test]
fn cluster_recovers_after_random_faults() {
    let restarts = Cell::new(0);
    let ran = run_seeds(0..12, |seed| {
        let mut sim = Simulator::new(seed);
        let mut members: Vec<Address> = (1..=5)
            .map(|port| add(&mut sim, port, 10 + u64::from(port), settings(&[1, 2, 3])))
            .collect();
        sim.run_until(MINUTE, |sim| all_up(sim, 5))
            .map_err(|e| format!("initial cluster: {e}"))?;

        // Without a failure detector no node is marked unreachable, so a killed node would
        // block convergence forever; restarts replace nodes with new incarnations instead.
        let config = FaultConfig {
            kills: false,
            max_faults: 6,
            ..FaultConfig::default()
        };
        let schedule = FaultSchedule::generate(seed, 5, Duration::from_secs(40), &config);
        let restart_count = schedule
            .faults()
            .iter()
            .filter(|timed| matches!(timed.fault, Fault::Restart { .. }))
            .count();
        restarts.set(restarts.get() + restart_count);
        schedule.run(&mut sim, &mut members, restarted);

        sim.run_until(3 * MINUTE, |sim| all_up(sim, 5))
            .map(|_| ())
            .map_err(|e| format!("no recovery after {schedule}: {e}"))
    });
    assert!(ran >= 1);
    // A replay of one seed may have no restart; the full range must have some.
    if replay_seed_from_env().is_none() {
        assert!(restarts.get() > 0, "no schedule restarted a node");
    }
}

#[test]
fn fifty_nodes_converge() {
    let mut sim = Simulator::new(21);
    for port in 1..=50 {
        add(&mut sim, port, u64::from(port), settings(&[1, 2, 3]));
    }
    let took = sim
        .run_until_polling(3 * MINUTE, Duration::from_millis(500), |sim| {
            all_up(sim, 50)
        })
        .unwrap_or_else(|e| panic!("fifty nodes did not converge: {e}"));
    assert!(took < MINUTE, "took {took:?}");

    sim.run_for(Duration::from_secs(10));
    let before = sim.traffic();
    sim.run_for(Duration::from_secs(30));
    let bytes = sim
        .traffic()
        .since(&before)
        .mean_sent_bytes_per_node_per_second(&[]);
    // One digest of a 50-entry clock per second and its occasional replies.
    assert!(
        bytes < 4000.0,
        "steady-state gossip {bytes:.0} bytes per node per second"
    );
    eprintln!("fifty nodes: converged after {took:?}, steady gossip {bytes:.0} B/node/s");
}
