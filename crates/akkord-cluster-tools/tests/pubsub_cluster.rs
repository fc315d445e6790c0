//! Distributed pub/sub across three in-process nodes on loopback.

mod common_receptionist;

use std::collections::BTreeSet;
use std::time::Duration;

use akkord_cluster_tools::pubsub::DistributedPubSub;
use common_receptionist::{collector, shut_down, start_cluster, wait_until, Hello};

const PER_NODE: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_receives_every_message() {
    let nodes = start_cluster(3).await;
    let pubsubs: Vec<DistributedPubSub> = nodes
        .iter()
        .map(|node| DistributedPubSub::start(&node.system, &node.remote, &node.cluster).unwrap())
        .collect();
    let mut inboxes = Vec::new();
    for (index, (node, pubsub)) in nodes.iter().zip(&pubsubs).enumerate() {
        let (subscriber, inbox) = collector::<Hello>(&node.system, &format!("subscriber-{index}"));
        pubsub.subscribe("news", &subscriber);
        inboxes.push(inbox);
    }
    wait_until(
        "every node knows 3 subscribers",
        Duration::from_secs(15),
        || {
            pubsubs
                .iter()
                .all(|pubsub| pubsub.subscribers::<Hello>("news").len() == 3)
        },
    )
    .await;

    let mut expected = BTreeSet::new();
    for (node, pubsub) in nodes.iter().zip(&pubsubs) {
        for seq in 0..PER_NODE {
            let message = Hello {
                from: node.uid(),
                seq,
            };
            expected.insert(message.clone());
            assert_eq!(pubsub.publish("news", message), 3);
        }
    }
    let total = expected.len();
    wait_until(
        "every subscriber received every message",
        Duration::from_secs(10),
        || {
            inboxes
                .iter()
                .all(|inbox| inbox.lock().unwrap().len() >= total)
        },
    )
    .await;
    for (index, inbox) in inboxes.iter().enumerate() {
        let received = inbox.lock().unwrap().clone();
        assert_eq!(
            received.len(),
            total,
            "subscriber {index} received duplicates"
        );
        let distinct: BTreeSet<Hello> = received.into_iter().collect();
        assert_eq!(distinct, expected, "subscriber {index} missed messages");
    }

    // Another topic and an unsubscribed subscriber receive nothing more.
    assert_eq!(pubsubs[0].publish("other", Hello { from: 0, seq: 0 }), 0);
    shut_down(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_replicates() {
    let nodes = start_cluster(2).await;
    let first =
        DistributedPubSub::start(&nodes[0].system, &nodes[0].remote, &nodes[0].cluster).unwrap();
    let second =
        DistributedPubSub::start(&nodes[1].system, &nodes[1].remote, &nodes[1].cluster).unwrap();
    let (subscriber, _) = collector::<Hello>(&nodes[1].system, "subscriber");
    second.subscribe("news", &subscriber);
    wait_until(
        "node 0 knows the subscriber",
        Duration::from_secs(10),
        || first.subscribers::<Hello>("news").len() == 1,
    )
    .await;
    second.unsubscribe("news", &subscriber);
    wait_until(
        "node 0 forgets the subscriber",
        Duration::from_secs(10),
        || first.subscribers::<Hello>("news").is_empty(),
    )
    .await;
    assert_eq!(first.publish("news", Hello { from: 0, seq: 0 }), 0);
    shut_down(&nodes).await;
}
