//! Five real node processes on loopback: they form a cluster, and a node killed with
//! SIGKILL becomes unreachable and is removed by the split brain resolver.

mod process_support;

use std::time::{Duration, Instant};

use process_support::{all_up, free_ports, Node};

#[test]
fn killed_node_unreachable_then_removed() {
    let ports = free_ports(5);
    let seeds = &ports[..2];
    let started = Instant::now();
    let mut nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| Node::spawn_local(&format!("n{i}"), *port, seeds, &["--fast-sbr"]))
        .collect();

    // 1. All five see five Up members and converge.
    for node in &nodes {
        node.wait_for_members(Duration::from_secs(40), |members| all_up(members, 5));
    }
    let formed = started.elapsed();
    println!("cluster of 5 formed in {formed:?}");

    // 2. SIGKILL one; the others mark it unreachable within 3 to 9 s. Phi accrual with a
    // 1 s heartbeat, 3 s acceptable pause and threshold 8 crosses after about 4.5 s of
    // silence, plus up to one heartbeat interval and one gossip round to see it.
    let victim = nodes.pop().expect("five nodes");
    let victim_node = victim.unique_address.clone();
    let mut victim = victim;
    let killed_at = Instant::now();
    victim.kill();
    let unreachable_line = format!("event Unreachable {victim_node}");
    for node in &nodes {
        node.wait_for_line(Duration::from_secs(9), |line| line == unreachable_line);
    }
    let detected = killed_at.elapsed();
    println!("killed node unreachable on all 4 observers after {detected:?}");
    assert!(
        detected >= Duration::from_secs(3),
        "unreachable after {detected:?}, sooner than the failure detector allows"
    );

    // 3. The resolver (fast profile, stable-after 7 s) downs it and the leader removes it.
    let removed_line = format!("event MemberRemoved {victim_node}");
    for node in &nodes {
        node.wait_for_line(Duration::from_secs(25), |line| line == removed_line);
    }
    let removed = killed_at.elapsed();
    println!("killed node removed on all 4 after {removed:?}");
    for node in &nodes {
        let members = node.wait_for_members(Duration::from_secs(10), |members| all_up(members, 4));
        assert!(members.member(&victim_node).is_none());
    }
}
