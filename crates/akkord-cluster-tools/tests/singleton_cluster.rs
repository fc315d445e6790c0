//! The cluster singleton on three in-process nodes on loopback: hand-over when the oldest
//! leaves, take-over after the oldest crashes, and the proxy's buffering while the
//! singleton moves.

mod common_singleton;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;
use akkord_actor::{Actor, ActorResult, Context, Props};
use akkord_cluster::membership::ClusterEvent;
use akkord_cluster_tools::singleton::{
    ClusterSingletonManager, ClusterSingletonProxy, SingletonError, SingletonSettings,
};

use common_singleton::*;

/// Removal margin of the tests, short to keep the crash test fast.
const MARGIN: Duration = Duration::from_secs(2);
/// Buffer size of the proxy that overflows.
const SMALL_BUFFER: usize = 20;
/// First sequence number sent through the proxy that overflows.
const OVERFLOW_START: u64 = 1000;

/// Returns the test log and received-message list.
fn recorders() -> (Log, Received) {
    (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    )
}

/// Waits until the copy on `node` has received every sequence number in `expected`.
async fn wait_received(received: &Received, node: u64, expected: &[u64], description: &str) {
    wait_for(Duration::from_secs(20), description, || {
        let got = received_on(received, node);
        expected.iter().all(|seq| got.contains(seq))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_over_on_leave() {
    let (log, received) = recorders();
    let nodes = start_cluster(3, MARGIN, &log, &received).await;
    let order = by_age(&nodes, &nodes[0]);
    let (oldest, next, youngest) = (order[0], order[1], order[2]);
    wait_for(
        Duration::from_secs(10),
        "the singleton runs on the oldest",
        || active(&nodes) == vec![oldest],
    )
    .await;

    // A proxy on the youngest node reaches the singleton on the oldest.
    let youngest_node = &nodes[youngest];
    let proxy = ClusterSingletonProxy::start::<Count>(
        &youngest_node.system,
        &youngest_node.remote,
        &youngest_node.cluster,
        settings(MARGIN),
    )
    .unwrap();
    let location = proxy.location();
    let oldest_address = nodes[oldest].unique_address();
    wait_for(
        Duration::from_secs(10),
        "the proxy targets the oldest",
        || location.borrow().as_ref() == Some(&oldest_address),
    )
    .await;
    let before: Vec<u64> = (0..50).collect();
    for seq in &before {
        proxy.actor_ref().tell(Count(*seq));
    }
    wait_received(
        &received,
        nodes[oldest].uid(),
        &before,
        "the oldest received 50 messages",
    )
    .await;

    // The oldest leaves. Once the proxy stops sending there, every message sent must arrive.
    nodes[oldest]
        .cluster
        .leave(nodes[oldest].address())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the proxy stops targeting the leaving node",
        || location.borrow().as_ref() != Some(&oldest_address),
    )
    .await;
    let during: Vec<u64> = (100..300).collect();
    for seq in &during {
        proxy.actor_ref().tell(Count(*seq));
    }
    wait_for(
        Duration::from_secs(20),
        "the singleton runs on the next oldest",
        || active(&nodes) == vec![next],
    )
    .await;
    let next_uid = nodes[next].uid();
    wait_received(
        &received,
        next_uid,
        &during,
        "the next oldest received all 200 messages",
    )
    .await;
    let got = received_on(&received, next_uid);
    assert_eq!(got, during, "messages arrive once each and in order");

    let entries = assert_one_copy_at_a_time(&log);
    let starts: Vec<u64> = entries
        .iter()
        .filter(|entry| entry.transition == Transition::Start)
        .map(|entry| entry.node_uid)
        .collect();
    assert_eq!(
        starts,
        vec![nodes[oldest].uid(), next_uid],
        "log: {entries:?}"
    );
    let old_stop = entries.iter().find(|entry| {
        entry.node_uid == nodes[oldest].uid() && entry.transition == Transition::Stop
    });
    assert!(
        old_stop.is_some(),
        "the leaving node never stopped its copy: {entries:?}"
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_after_crash() {
    let (log, received) = recorders();
    let nodes = start_cluster(3, MARGIN, &log, &received).await;
    let order = by_age(&nodes, &nodes[0]);
    let (oldest, next, youngest) = (order[0], order[1], order[2]);
    wait_for(
        Duration::from_secs(10),
        "the singleton runs on the oldest",
        || active(&nodes) == vec![oldest],
    )
    .await;
    let youngest_node = &nodes[youngest];
    let proxy = ClusterSingletonProxy::start::<Count>(
        &youngest_node.system,
        &youngest_node.remote,
        &youngest_node.cluster,
        settings(MARGIN),
    )
    .unwrap();
    let location = proxy.location();
    // A second proxy with a small buffer keeps only the newest messages.
    let small = ClusterSingletonProxy::start::<Count>(
        &youngest_node.system,
        &youngest_node.remote,
        &youngest_node.cluster,
        settings(MARGIN).with_buffer_size(SMALL_BUFFER),
    )
    .unwrap();
    let small_location = small.location();
    let crashed: UniqueAddress = nodes[oldest].unique_address();
    wait_for(
        Duration::from_secs(10),
        "the proxy targets the oldest",
        || location.borrow().as_ref() == Some(&crashed),
    )
    .await;

    // Record when the next oldest observes the removal of the crashed node.
    let (_, mut events) = nodes[next].cluster.subscribe();
    let removed_at = Arc::new(Mutex::new(None));
    let removed_recorder = removed_at.clone();
    let crashed_node = crashed.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let ClusterEvent::MemberRemoved { member, .. } = event {
                if member.unique_address == crashed_node {
                    *removed_recorder.lock().unwrap() = Some(Instant::now());
                    return;
                }
            }
        }
    });

    // Crash: the oldest's transport goes silent.
    nodes[oldest].remote.shutdown().await;
    wait_for(
        Duration::from_secs(15),
        "the proxy stops targeting the crashed node",
        || location.borrow().is_none() && small_location.borrow().is_none(),
    )
    .await;
    let buffered: Vec<u64> = (0..100).collect();
    for seq in &buffered {
        proxy.actor_ref().tell(Count(*seq));
    }
    let dead_letters_before = youngest_node.system.dead_letter_count();
    for seq in OVERFLOW_START..OVERFLOW_START + 50 {
        small.actor_ref().tell(Count(seq));
    }
    let overflow = 50 - SMALL_BUFFER as u64;
    wait_for(
        Duration::from_secs(5),
        "the messages beyond the small buffer count as dead letters",
        || youngest_node.system.dead_letter_count() >= dead_letters_before + overflow,
    )
    .await;
    assert!(
        !nodes[next].manager.is_active(),
        "the next oldest started before the crashed node was removed"
    );

    wait_for(
        Duration::from_secs(40),
        "the singleton runs on the next oldest",
        || nodes[next].manager.is_active(),
    )
    .await;
    let removed_at = removed_at
        .lock()
        .unwrap()
        .expect("the singleton moved before the crashed node was removed");
    let next_uid = nodes[next].uid();
    let entries = assert_one_copy_at_a_time(&log);
    let started = entries
        .iter()
        .find(|entry| entry.node_uid == next_uid && entry.transition == Transition::Start)
        .expect("no start of the next oldest in the log")
        .at;
    // The manager and this test see the removal through separate subscriptions, so allow
    // for a little scheduling delay between the two.
    let tolerance = Duration::from_millis(300);
    assert!(
        started + tolerance >= removed_at + MARGIN,
        "the next oldest started {:?} after the removal, before the margin of {MARGIN:?}",
        started.saturating_duration_since(removed_at)
    );
    let crashed_stop = entries
        .iter()
        .find(|entry| entry.node_uid == crashed.uid && entry.transition == Transition::Stop);
    assert!(
        crashed_stop.is_some(),
        "the crashed node never stopped its copy: {entries:?}"
    );

    // The buffered messages go out in order once the proxy finds the new singleton.
    let next_address = nodes[next].unique_address();
    wait_for(
        Duration::from_secs(10),
        "the proxy targets the next oldest",
        || location.borrow().as_ref() == Some(&next_address),
    )
    .await;
    wait_received(
        &received,
        next_uid,
        &buffered,
        "the next oldest received the 100 buffered messages",
    )
    .await;
    let newest: Vec<u64> =
        (OVERFLOW_START + 50 - SMALL_BUFFER as u64..OVERFLOW_START + 50).collect();
    wait_received(
        &received,
        next_uid,
        &newest,
        "the next oldest received the newest messages of the small buffer",
    )
    .await;
    let (from_small, from_large): (Vec<u64>, Vec<u64>) = received_on(&received, next_uid)
        .into_iter()
        .partition(|seq| *seq >= OVERFLOW_START);
    assert_eq!(from_large, buffered, "all 100 buffered messages, in order");
    assert_eq!(
        from_small, newest,
        "the oldest messages beyond the buffer size are dropped"
    );
    shutdown(nodes).await;
}

/// A singleton whose message type is not in the registry.
struct Unregistered;

impl Actor for Unregistered {
    type Msg = u8;

    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u8) -> ActorResult {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_rejects_bad_input() {
    let (log, received) = recorders();
    let node = start_node(None, MARGIN, &log, &received).await;

    let unregistered = ClusterSingletonManager::start(
        &node.system,
        &node.remote,
        &node.cluster,
        Props::new(|| Unregistered),
        SingletonSettings::new("other"),
    );
    assert_eq!(
        unregistered.err(),
        Some(SingletonError::NotRegistered { type_name: "u8" })
    );
    let proxy = ClusterSingletonProxy::start::<u8>(
        &node.system,
        &node.remote,
        &node.cluster,
        SingletonSettings::new("other"),
    );
    assert_eq!(
        proxy.err(),
        Some(SingletonError::NotRegistered { type_name: "u8" })
    );

    let twice = ClusterSingletonManager::start(
        &node.system,
        &node.remote,
        &node.cluster,
        recorder_props(node.uid(), &log, &received),
        settings(MARGIN),
    );
    assert_eq!(
        twice.err(),
        Some(SingletonError::AlreadyStarted {
            name: NAME.to_owned()
        })
    );
    let unnamed = ClusterSingletonProxy::start::<Count>(
        &node.system,
        &node.remote,
        &node.cluster,
        SingletonSettings::new("").with_role(ROLE),
    );
    assert!(matches!(
        unnamed.err(),
        Some(SingletonError::InvalidSettings { field: "name", .. })
    ));
    shutdown(vec![node]).await;
}
