//! Scale benchmark of the cluster node in the deterministic simulator.
//!
//! Starts `--nodes` nodes (default 1000) that join through 3 seed nodes, then measures in
//! simulated time: how long until every node is Up and has seen the same state, how long
//! a crash takes to become unreachable (first observer and every node) and to be removed,
//! and the gossip traffic per node and second at steady state and during churn, leaving
//! heartbeats out. It prints the wall time of each phase too.
//!
//! Run: `cargo run --release -p akkord-cluster --example scale_sim -- --nodes 1000`.
//! Options: `--nodes N`, `--seed S` (simulator seed, default 1), `--churn-seconds T`
//! (default 30).

#[path = "../tests/common/cluster.rs"]
mod cluster_common;

use std::time::{Duration, Instant};

use akkord_actor::address::Address;
use akkord_cluster::member::MemberStatus;
use akkord_testkit::sim::Simulator;

use cluster_common::{add, observes_unreachable, settings, unique, SimClusterNode, SECOND};

/// Heartbeats are left out of the gossip figures.
const EXCLUDED: &[&str] = &["heartbeat"];

struct Options {
    nodes: u16,
    seed: u64,
    churn_seconds: u64,
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            eprintln!("usage: scale_sim [--nodes N] [--seed S] [--churn-seconds T]");
            std::process::exit(2);
        }
    };
    let wall = Instant::now();
    let mut sim: Simulator<SimClusterNode> = Simulator::new(options.seed);
    sim.events_mut().set_recording(false);
    let count = options.nodes;
    let seeds = [1, 2, 3];
    let mut nodes: Vec<Address> = (1..=count)
        .map(|port| add(&mut sim, port, 100_000 + u64::from(port), settings(&seeds)))
        .collect();
    println!(
        "nodes: {count}, seed nodes: 3, simulator seed: {}",
        options.seed
    );

    // 1. Every node Up and every node seen the same converged state.
    let phase = Instant::now();
    let converged = sim
        .run_until_polling(
            Duration::from_secs(600),
            Duration::from_millis(500),
            |sim| all_converged(sim, &nodes),
        )
        .map_err(|e| e.to_string());
    match converged {
        Ok(took) => println!(
            "all up and seen by all: {:.1} s simulated ({:.1} s wall)",
            took.as_secs_f64(),
            phase.elapsed().as_secs_f64()
        ),
        Err(error) => {
            println!("not converged: {error}");
            std::process::exit(1);
        }
    }

    // 2. Steady-state gossip over one simulated minute.
    let phase = Instant::now();
    let before = sim.traffic();
    sim.run_for(Duration::from_secs(60));
    let steady = sim.traffic().since(&before);
    println!(
        "steady-state gossip: {:.0} bytes per node per second over {:.0} s ({:.1} s wall)",
        steady.mean_sent_bytes_per_node_per_second(EXCLUDED),
        steady.window().as_secs_f64(),
        phase.elapsed().as_secs_f64()
    );
    let heartbeat_bytes = steady.total().sent.get("heartbeat").bytes as f64
        / f64::from(count)
        / steady.window().as_secs_f64();
    println!("steady-state heartbeats: {heartbeat_bytes:.0} bytes per node per second");

    // 3. Crash of one node: unreachable for the first observer, for every node, removed.
    let phase = Instant::now();
    let victim_port = count / 2 + 1;
    let victim = unique(victim_port, 100_000 + u64::from(victim_port));
    let victim_address = nodes.remove(usize::from(victim_port - 1));
    sim.kill(&victim_address);
    let step = Duration::from_millis(100);
    let first = sim.run_until_polling(Duration::from_secs(60), step, |sim| {
        nodes.iter().any(|n| observes_unreachable(sim, n, &victim))
    });
    let all = sim.run_until_polling(Duration::from_secs(120), step, |sim| {
        nodes.iter().all(|n| {
            sim.node(n).is_some_and(|n| {
                !n.node
                    .membership()
                    .gossip()
                    .reachability()
                    .is_reachable(&victim)
            })
        })
    });
    let removed = sim.run_until_polling(Duration::from_secs(300), step, |sim| {
        nodes.iter().all(|n| {
            sim.node(n)
                .is_some_and(|n| !n.node.membership().gossip().has_member(&victim))
        })
    });
    match (first, all, removed) {
        (Ok(first), Ok(all), Ok(removed)) => {
            let all = first + all;
            println!(
                "crash: unreachable for the first observer after {:.1} s, for all after {:.1} s, \
                 removed everywhere after {:.1} s ({:.1} s wall)",
                first.as_secs_f64(),
                all.as_secs_f64(),
                (all + removed).as_secs_f64(),
                phase.elapsed().as_secs_f64()
            );
        }
        (first, all, removed) => {
            println!("crash not handled: {first:?} {all:?} {removed:?}");
            std::process::exit(1);
        }
    }

    // 4. Churn: every second one node leaves and a new one joins.
    let phase = Instant::now();
    let before = sim.traffic();
    for second in 0..options.churn_seconds {
        let next_port = count + 1 + u16::try_from(second).unwrap_or(u16::MAX - count - 1);
        let leaver = nodes.remove(usize::try_from(second).unwrap_or(0) % nodes.len() + 3);
        sim.invoke(&leaver, |n, now, out| {
            n.command(now, out, |node, out| node.leave(&leaver, now, out))
        });
        nodes.push(add(
            &mut sim,
            next_port,
            200_000 + u64::from(next_port),
            settings(&seeds),
        ));
        sim.run_for(SECOND);
    }
    let churn = sim.traffic().since(&before);
    println!(
        "gossip during churn ({} leaves and {} joins in {} s): {:.0} bytes per node per second \
         ({:.1} s wall)",
        options.churn_seconds,
        options.churn_seconds,
        options.churn_seconds,
        churn.mean_sent_bytes_per_node_per_second(EXCLUDED),
        phase.elapsed().as_secs_f64()
    );
    let settled = sim.run_until_polling(
        Duration::from_secs(300),
        Duration::from_millis(500),
        |sim| all_converged(sim, &nodes),
    );
    match settled {
        Ok(took) => println!(
            "converged again {:.1} s after the churn",
            took.as_secs_f64()
        ),
        Err(error) => println!("not converged after the churn: {error}"),
    }
    println!(
        "wall time: {:.1} s, simulated time: {:.1} s, steps: {}",
        wall.elapsed().as_secs_f64(),
        sim.elapsed().as_secs_f64(),
        sim.steps()
    );
}

/// Returns true when every node in `nodes` runs, lists exactly `nodes.len()` members, all
/// Up, has converged, and all nodes hold the same version.
fn all_converged(sim: &Simulator<SimClusterNode>, nodes: &[Address]) -> bool {
    let mut version = None;
    for address in nodes {
        let Some(node) = sim.node(address) else {
            return false;
        };
        let membership = node.node.membership();
        let gossip = membership.gossip();
        if gossip.member_count() != nodes.len()
            || gossip.members().any(|m| m.status != MemberStatus::Up)
            || !membership.is_converged()
        {
            return false;
        }
        match &version {
            None => version = Some(gossip.version().clone()),
            Some(first) if first != gossip.version() => return false,
            Some(_) => {}
        }
    }
    true
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        nodes: 1000,
        seed: 1,
        churn_seconds: 30,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("missing value after {flag}"))?;
        let invalid = |_| format!("invalid value {value:?} for {flag}: expected a whole number");
        match flag.as_str() {
            "--nodes" => options.nodes = value.parse().map_err(invalid)?,
            "--seed" => options.seed = value.parse().map_err(invalid)?,
            "--churn-seconds" => options.churn_seconds = value.parse().map_err(invalid)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.nodes < 10 {
        return Err(format!(
            "invalid value {} for --nodes: expected at least 10",
            options.nodes
        ));
    }
    Ok(options)
}
