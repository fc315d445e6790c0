//! The cluster receptionist across three in-process nodes on loopback.

mod common_receptionist;

use std::time::Duration;

use akkord_actor::{Actor, ActorResult, Context, Listing, Props, ServiceKey};
use common_receptionist::{collector, shut_down, start_cluster, wait_until, Hello, LocalOnly};

/// Number of services in the latest listing a subscriber received, or `None` before any.
fn latest_len(listings: &common_receptionist::Collected<Listing<Hello>>) -> Option<usize> {
    listings
        .lock()
        .unwrap()
        .last()
        .map(|listing| listing.services.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_replicate_and_vanish_with_removed_node() {
    let nodes = start_cluster(3).await;
    let key = ServiceKey::<Hello>::new("greeter");

    let mut subscriptions = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let (listings, collected) =
            collector::<Listing<Hello>>(&node.system, &format!("listings-{index}"));
        node.system.receptionist().subscribe(&key, &listings);
        subscriptions.push(collected);
    }
    let mut inboxes = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let (greeter, inbox) = collector::<Hello>(&node.system, &format!("greeter-{index}"));
        node.system.receptionist().register(&key, &greeter);
        inboxes.push(inbox);
    }

    wait_until(
        "find lists 3 greeters on every node",
        Duration::from_secs(15),
        || {
            nodes
                .iter()
                .all(|node| node.system.receptionist().find(&key).services.len() == 3)
        },
    )
    .await;
    wait_until(
        "every subscriber's latest listing has 3 greeters",
        Duration::from_secs(5),
        || {
            subscriptions
                .iter()
                .all(|listings| latest_len(listings) == Some(3))
        },
    )
    .await;

    // Every listed ref reaches its actor, whichever node it lives on.
    let sender = &nodes[0];
    for (seq, greeter) in sender
        .system
        .receptionist()
        .find(&key)
        .services
        .iter()
        .enumerate()
    {
        greeter.tell(Hello {
            from: sender.uid(),
            seq: seq as u64,
        });
    }
    wait_until(
        "each greeter received one message",
        Duration::from_secs(10),
        || inboxes.iter().all(|inbox| inbox.lock().unwrap().len() == 1),
    )
    .await;

    // Crash node 2: its transport goes silent, it is downed and removed.
    let crashed = nodes[2].unique_address();
    nodes[2].remote.shutdown().await;
    wait_until(
        "nodes 0 and 1 list 2 greeters",
        Duration::from_secs(20),
        || {
            nodes[..2]
                .iter()
                .all(|node| node.system.receptionist().find(&key).services.len() == 2)
        },
    )
    .await;
    wait_until(
        "nodes 0 and 1 removed node 2",
        Duration::from_secs(40),
        || nodes[..2].iter().all(|node| !node.has_member(&crashed)),
    )
    .await;
    for (index, node) in nodes[..2].iter().enumerate() {
        let receptionist = node.system.receptionist();
        assert_eq!(
            receptionist.find(&key).services.len(),
            2,
            "node {index} still lists a greeter of the removed node"
        );
        assert!(
            !receptionist.remote_nodes().contains(&crashed),
            "node {index} still holds services of the removed node"
        );
        assert_eq!(
            latest_len(&subscriptions[index]),
            Some(2),
            "subscriber on node {index} did not see the removal"
        );
    }
    shut_down(&nodes[..2]).await;
}

/// A registered actor that counts its messages.
struct Counter;

impl Actor for Counter {
    type Msg = Hello;

    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: Hello) -> ActorResult {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_actor_and_deregistration_replicate() {
    let nodes = start_cluster(2).await;
    let key = ServiceKey::<Hello>::new("counter");
    let stopping = nodes[0]
        .system
        .spawn("stopping", Props::new(|| Counter))
        .unwrap();
    let staying = nodes[0]
        .system
        .spawn("staying", Props::new(|| Counter))
        .unwrap();
    let receptionist = nodes[0].system.receptionist();
    receptionist.register(&key, &stopping);
    receptionist.register(&key, &staying);
    let remote_view = nodes[1].system.receptionist();
    wait_until(
        "node 1 lists both counters",
        Duration::from_secs(10),
        || remote_view.find(&key).services.len() == 2,
    )
    .await;

    assert!(nodes[0].system.stop(&stopping.to_any()));
    wait_until(
        "node 1 lists 1 counter after one stopped",
        Duration::from_secs(10),
        || remote_view.find(&key).services.len() == 1,
    )
    .await;

    receptionist.deregister(&key, &staying);
    wait_until(
        "node 1 lists no counter after deregistration",
        Duration::from_secs(10),
        || remote_view.find(&key).services.is_empty(),
    )
    .await;
    shut_down(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_message_type_stays_local() {
    let nodes = start_cluster(2).await;
    let local_key = ServiceKey::<LocalOnly>::new("local");
    let marker_key = ServiceKey::<Hello>::new("marker");
    let (local, _) = collector::<LocalOnly>(&nodes[0].system, "local");
    let (marker, _) = collector::<Hello>(&nodes[0].system, "marker");
    nodes[0].system.receptionist().register(&local_key, &local);
    nodes[0]
        .system
        .receptionist()
        .register(&marker_key, &marker);

    // Node 0 sends its whole set at once, so once the marker arrived the local-only
    // registration would have arrived with it.
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
        .find(&local_key)
        .services
        .is_empty());
    assert_eq!(
        nodes[0]
            .system
            .receptionist()
            .find(&local_key)
            .services
            .len(),
        1
    );
    shut_down(&nodes).await;
}
