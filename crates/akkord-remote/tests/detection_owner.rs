//! A layer above remoting that owns failure detection of some nodes, as a cluster does for
//! its members, keeps remote death watch from declaring those nodes gone when their
//! heartbeats stop.

#[path = "../src/bin/akkord-remote-test-node/protocol.rs"]
#[allow(dead_code)]
mod protocol;

use std::time::{Duration, Instant};

use akkord_actor::{ActorRef, ActorSystem, Props};
use akkord_remote::remote::{RemoteSystem, RemoteSystemSettings};
use protocol::{registry, Echo, EchoActor};

/// Remote watch settings that declare a silent node gone within about a second.
fn quick_watch(name: &str) -> RemoteSystemSettings {
    let mut settings = RemoteSystemSettings::new(name);
    settings.watch.heartbeat_interval = Duration::from_millis(100);
    settings.watch.expected_response_after = Duration::from_millis(100);
    settings.watch.detector.acceptable_heartbeat_pause = Duration::from_millis(300);
    settings.watch.detector.first_heartbeat_estimate = Duration::from_millis(100);
    settings
}

async fn bind(settings: RemoteSystemSettings) -> (ActorSystem, RemoteSystem) {
    let system = ActorSystem::new("owner").unwrap();
    let remote = RemoteSystem::bind(system.clone(), settings, registry())
        .await
        .unwrap();
    (system, remote)
}

#[tokio::test]
async fn owned_node_not_declared_gone() {
    let (target_system, target) = bind(RemoteSystemSettings::new("owner")).await;
    let echo = target_system
        .spawn("echo", Props::new(|| EchoActor))
        .unwrap();
    target.expose("echo", &echo).unwrap();
    let address = target.local_address().address.clone();

    // `owning` hands detection of every node to a layer above; `plain` keeps its own.
    let (_owning_system, owning) = bind(quick_watch("owner")).await;
    owning.set_failure_detection_owner(|_| true);
    let (_plain_system, plain) = bind(quick_watch("owner")).await;
    let timeout = Duration::from_secs(5);
    let from_owning: ActorRef<Echo> = owning.lookup(&address, "echo", timeout).await.unwrap();
    let from_plain: ActorRef<Echo> = plain.lookup(&address, "echo", timeout).await.unwrap();
    let owning_watch = tokio::spawn({
        let actor = from_owning.to_any();
        async move { actor.terminated().await }
    });
    let plain_watch = tokio::spawn({
        let actor = from_plain.to_any();
        async move { actor.terminated().await }
    });

    target.shutdown().await;
    let silent_since = Instant::now();

    // The node's own detector fires on `plain`.
    tokio::time::timeout(Duration::from_secs(10), plain_watch)
        .await
        .expect("remote death watch did not declare the silent node gone")
        .unwrap();
    // On `owning` the same detector has fired by now too, and for ten times its pause
    // more nothing declares the node gone: that is the layer above's decision.
    let owning_watch = tokio::time::timeout(Duration::from_secs(3), owning_watch).await;
    assert!(
        owning_watch.is_err(),
        "remote death watch declared an owned node gone {:?} after it fell silent",
        silent_since.elapsed()
    );
    let target_node = target.local_address();
    assert!(!owning.transport().is_quarantined(target_node));
    assert!(plain.transport().is_quarantined(target_node));

    owning.declare_node_gone(target_node, "the layer above decided");
    assert!(from_owning.to_any().is_terminated());
}
