//! The cluster receptionist with input it cannot use: registrations of a message type this
//! node does not register, and undecodable protocol messages.

mod common_receptionist;

use std::time::Duration;

use akkord_actor::ServiceKey;
use akkord_cluster::member::MemberStatus;
use akkord_remote::{Destination, Lane};
use bytes::Bytes;
use common_receptionist::{
    collector, registry, shut_down, start_node, start_node_with, wait_until, Hello,
};
use serde::{Deserialize, Serialize};

/// Manifest of the replication protocol, as it travels on the wire.
const PROTOCOL_MANIFEST: &str = "akkord.cluster.tools.Receptionist";

/// A message type that only the first node registers for serialization.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extra(u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_manifest_and_garbage_dropped() {
    let mut first_registry = registry();
    first_registry
        .register::<Extra>("test.receptionist.Extra")
        .unwrap();
    let first = start_node_with(None, first_registry).await;
    let second = start_node(Some(first.address())).await;
    let nodes = [first, second];
    wait_until(
        "both nodes list 2 members Up",
        Duration::from_secs(30),
        || {
            nodes
                .iter()
                .all(|node| node.cluster.state().count(MemberStatus::Up) == 2)
        },
    )
    .await;

    // Garbage and an empty message on the replication protocol must not disturb it.
    let to = Destination::Node(nodes[1].unique_address());
    for payload in [&b"\xff\xff\xff\xff"[..], &b""[..], &b"\x0a\x03\x08"[..]] {
        nodes[0]
            .remote
            .send_protocol(
                &to,
                Lane::Control,
                PROTOCOL_MANIFEST,
                Bytes::copy_from_slice(payload),
            )
            .unwrap();
    }

    let extra_key = ServiceKey::<Extra>::new("extra");
    let marker_key = ServiceKey::<Hello>::new("marker");
    let (extra, _) = collector::<Extra>(&nodes[0].system, "extra");
    let (marker, _) = collector::<Hello>(&nodes[0].system, "marker");
    nodes[0].system.receptionist().register(&extra_key, &extra);
    nodes[0]
        .system
        .receptionist()
        .register(&marker_key, &marker);

    // Both entries travel in one set, so the marker's arrival means the other one arrived
    // too and was dropped for its unknown manifest.
    wait_until("node 1 lists the marker", Duration::from_secs(10), || {
        nodes[1]
            .system
            .receptionist()
            .find(&marker_key)
            .services
            .len()
            == 1
    })
    .await;
    assert!(nodes[1]
        .system
        .receptionist()
        .find(&extra_key)
        .services
        .is_empty());
    assert_eq!(
        nodes[0]
            .system
            .receptionist()
            .find(&extra_key)
            .services
            .len(),
        1
    );

    // Stopping replication on node 1 removes what it installed from node 0.
    nodes[1].receptionist.stop();
    wait_until(
        "node 1 forgets node 0's services",
        Duration::from_secs(10),
        || nodes[1].system.receptionist().remote_nodes().is_empty(),
    )
    .await;
    assert!(nodes[1]
        .system
        .receptionist()
        .find(&marker_key)
        .services
        .is_empty());
    shut_down(&nodes).await;
}
