//! Operator commands between real node processes: a downed node fires remote death watch
//! on the others and exits after its coordinated shutdown, and a node that leaves is
//! removed and exits too, as does one that runs its coordinated shutdown.

mod process_support;

use std::time::Duration;

use process_support::{all_up, free_ports, local_address, Node};

#[test]
fn downed_and_leaving_nodes_exit() {
    let ports = free_ports(5);
    let seeds = &ports[..2];
    let mut nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| Node::spawn_local(&format!("d{i}"), *port, seeds, &[]))
        .collect();
    for node in &nodes {
        node.wait_for_members(Duration::from_secs(40), |members| all_up(members, 5));
    }

    // 1. Node 1 watches the probe actor of node 3, which stays alive and connected, so
    // only the cluster's Down can end the watch.
    let downed_address = local_address(ports[3]);
    nodes[1].command(&format!("watch {downed_address}"));
    nodes[1].wait_for_line(Duration::from_secs(10), |line| {
        line == format!("watching {downed_address}")
    });

    // 2. Node 0 downs node 3: node 1's watch fires, node 3 shuts down and exits.
    nodes[0].command(&format!("down {downed_address}"));
    nodes[1].wait_for_line(Duration::from_secs(10), |line| {
        line == format!("terminated {downed_address}")
    });
    let downed = &mut nodes[3];
    downed.wait_for_line(Duration::from_secs(10), |line| {
        line == "shutdown Some(ClusterDowning)"
    });
    assert!(
        downed.wait_exit(Duration::from_secs(10)),
        "downed node did not exit"
    );

    // 3. Node 2 leaves: it is removed everywhere, shuts down and exits.
    nodes[2].command("leave");
    let leaving = nodes[2].unique_address.clone();
    nodes[2].wait_for_line(Duration::from_secs(15), |line| {
        line == "shutdown Some(ClusterLeaving)"
    });
    assert!(
        nodes[2].wait_exit(Duration::from_secs(10)),
        "leaving node did not exit"
    );
    for node in &nodes[..2] {
        node.wait_for_line(Duration::from_secs(10), |line| {
            line == format!("event MemberRemoved {leaving}")
        });
    }

    // 4. Node 4 runs its coordinated shutdown: it leaves first, so the others see it
    // removed after Exiting, not downed.
    nodes[4].command("shutdown");
    let shut_down = nodes[4].unique_address.clone();
    nodes[4].wait_for_line(Duration::from_secs(15), |line| {
        line == "shutdown Some(ActorSystemTerminate)"
    });
    assert!(
        nodes[4].wait_exit(Duration::from_secs(10)),
        "node running coordinated shutdown did not exit"
    );
    for node in &nodes[..2] {
        node.wait_for_line(Duration::from_secs(10), |line| {
            line == format!("event MemberRemoved {shut_down}")
        });
        assert!(
            !node.printed(|line| line == format!("event MemberDowned {shut_down}")),
            "{} saw the node that shut down downed instead of leaving",
            node.name
        );
        node.wait_for_members(Duration::from_secs(10), |members| all_up(members, 2));
    }
}
