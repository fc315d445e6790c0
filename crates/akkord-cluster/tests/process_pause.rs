//! A node process paused with SIGSTOP: a pause shorter than the acceptable heartbeat pause
//! (3 s) goes unnoticed, a longer one makes it unreachable until it resumes.

mod process_support;

use std::time::{Duration, Instant};

use process_support::{all_up, free_ports, Node};

/// Stable-after long enough that the resolver never downs the paused node in this test.
const STABLE_AFTER_MS: &str = "120000";

#[test]
fn paused_node_reachable_after_resume() {
    let ports = free_ports(5);
    let seeds = &ports[..2];
    let nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            Node::spawn_local(
                &format!("p{i}"),
                *port,
                seeds,
                &["--stable-after-ms", STABLE_AFTER_MS],
            )
        })
        .collect();
    for node in &nodes {
        node.wait_for_members(Duration::from_secs(40), |members| all_up(members, 5));
    }
    let (observers, paused) = nodes.split_at(4);
    let paused = &paused[0];
    let unreachable_line = format!("event Unreachable {}", paused.unique_address);

    // 1. A 2 s pause, below the 3 s acceptable pause: no observer reports it unreachable,
    // while paused or in the 2 s after it resumed (phi only falls once heartbeats flow).
    paused.signal("STOP");
    std::thread::sleep(Duration::from_secs(2)); // The pause itself, not a wait.
    paused.signal("CONT");
    let resumed = Instant::now();
    for observer in observers {
        observer.wait_for_members(Duration::from_secs(5), |members| {
            members.member(&paused.unique_address).is_some_and(|m| m.2)
        });
    }
    while resumed.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100)); // Observation window of the check.
    }
    for observer in observers {
        assert!(
            !observer.printed(|line| line == unreachable_line),
            "{} reported a 2 s pause as unreachable",
            observer.name
        );
    }

    // 2. A 10 s pause: every observer reports it unreachable while it is stopped.
    paused.signal("STOP");
    let stopped = Instant::now();
    for observer in observers {
        observer.wait_for_line(Duration::from_secs(10), |line| line == unreachable_line);
    }
    println!(
        "paused node unreachable on all 4 after {:?}",
        stopped.elapsed()
    );
    while stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100)); // The rest of the pause.
    }
    paused.signal("CONT");
    let resumed = Instant::now();

    // 3. After resuming it is reachable again and nobody downed it.
    let reachable_line = format!("event Reachable {}", paused.unique_address);
    for observer in observers {
        observer.wait_for_line(Duration::from_secs(10), |line| line == reachable_line);
        observer.wait_for_members(Duration::from_secs(10), |members| all_up(members, 5));
    }
    println!(
        "paused node reachable on all 4 after {:?}",
        resumed.elapsed()
    );
    paused.wait_for_members(Duration::from_secs(10), |members| all_up(members, 5));
}
