//! The cluster-aware group router across three in-process nodes on loopback.

mod common_receptionist;

use std::time::Duration;

use akkord_actor::{RoutingLogic, ServiceKey};
use akkord_cluster_tools::router::ClusterGroupRouter;
use common_receptionist::{collector, shut_down, start_cluster, wait_until, Hello};

const ROUNDS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_over_nodes() {
    let nodes = start_cluster(3).await;
    let key = ServiceKey::<Hello>::new("worker");
    let mut inboxes = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let (worker, inbox) = collector::<Hello>(&node.system, &format!("worker-{index}"));
        node.system.receptionist().register(&key, &worker);
        inboxes.push(inbox);
    }
    wait_until("node 0 lists 3 workers", Duration::from_secs(15), || {
        nodes[0].system.receptionist().find(&key).services.len() == 3
    })
    .await;

    // Started after the listing is complete, the router receives all 3 routees at start.
    let router = nodes[0]
        .system
        .spawn(
            "router",
            ClusterGroupRouter::props(key.clone(), RoutingLogic::RoundRobin),
        )
        .unwrap();
    let total = ROUNDS * 3;
    for seq in 0..total {
        router.tell(Hello {
            from: nodes[0].uid(),
            seq,
        });
    }
    wait_until(
        "workers received every message",
        Duration::from_secs(10),
        || {
            inboxes
                .iter()
                .map(|inbox| inbox.lock().unwrap().len() as u64)
                .sum::<u64>()
                == total
        },
    )
    .await;
    for (index, inbox) in inboxes.iter().enumerate() {
        assert_eq!(
            inbox.lock().unwrap().len() as u64,
            ROUNDS,
            "worker on node {index} got an uneven share"
        );
    }
    shut_down(&nodes).await;
}
