//! In-process cluster nodes for the singleton tests: each node has its own actor system,
//! remote system on loopback and cluster, and a recording test singleton.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::{Actor, ActorResult, ActorSystem, Context, Props};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::shell::{Cluster, ClusterSettings};
use akkord_cluster_tools::singleton::{ClusterSingletonManager, SingletonSettings};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use serde::{Deserialize, Serialize};

/// Actor system name of every test node.
pub const SYSTEM: &str = "singleton-test";
/// Role of the nodes that host the singleton.
pub const ROLE: &str = "host";
/// Name of the test singleton.
pub const NAME: &str = "recorder";

/// The test singleton's message: a sequence number to count deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count(pub u64);

/// Whether a singleton copy started or stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Start,
    Stop,
}

/// One start or stop of a singleton copy.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub node_uid: u64,
    pub transition: Transition,
    pub at: Instant,
}

/// Starts and stops of every copy, on every node of the test.
pub type Log = Arc<Mutex<Vec<LogEntry>>>;
/// Messages received by every copy: node uid and sequence number.
pub type Received = Arc<Mutex<Vec<(u64, u64)>>>;

/// The test singleton: records its lifecycle and the messages it receives.
pub struct Recorder {
    node_uid: u64,
    log: Log,
    received: Received,
}

impl Recorder {
    fn record(&self, transition: Transition) {
        self.log.lock().unwrap().push(LogEntry {
            node_uid: self.node_uid,
            transition,
            at: Instant::now(),
        });
    }
}

impl Actor for Recorder {
    type Msg = Count;

    async fn started(&mut self, _ctx: &mut Context<Self>) -> ActorResult {
        self.record(Transition::Start);
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Count) -> ActorResult {
        self.received.lock().unwrap().push((self.node_uid, msg.0));
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.record(Transition::Stop);
    }
}

/// Installs a log subscriber that writes to the test output, filtered by `RUST_LOG`
/// (default: warnings, and info of the singleton).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,akkord_cluster_tools=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Returns the props of the test singleton on the node with `node_uid`.
pub fn recorder_props(node_uid: u64, log: &Log, received: &Received) -> Props<Recorder> {
    let (log, received) = (log.clone(), received.clone());
    Props::new(move || Recorder {
        node_uid,
        log: log.clone(),
        received: received.clone(),
    })
}

/// Returns a registry with the test message.
pub fn registry() -> SerializationRegistry {
    let mut registry = SerializationRegistry::new();
    registry.register::<Count>("test.singleton.Count").unwrap();
    registry
}

/// One in-process node.
pub struct Node {
    pub system: ActorSystem,
    pub remote: RemoteSystem,
    pub cluster: Cluster,
    pub manager: ClusterSingletonManager,
}

impl Node {
    pub fn uid(&self) -> u64 {
        self.remote.local_address().uid
    }

    pub fn address(&self) -> Address {
        self.remote.local_address().address.clone()
    }

    pub fn unique_address(&self) -> UniqueAddress {
        self.remote.local_address().clone()
    }
}

/// Returns the singleton settings of the tests with removal margin `margin`.
pub fn settings(margin: Duration) -> SingletonSettings {
    SingletonSettings::new(NAME)
        .with_role(ROLE)
        .with_removal_margin(margin)
}

/// Starts a node with the role, its cluster and its singleton manager, and joins through
/// `seed`, or forms a new cluster when `seed` is `None`.
pub async fn start_node(
    seed: Option<Address>,
    margin: Duration,
    log: &Log,
    received: &Received,
) -> Node {
    init_logging();
    let system = ActorSystem::new(SYSTEM).unwrap();
    let mut remote_settings = RemoteSystemSettings::new(SYSTEM);
    remote_settings.transport.bind = "127.0.0.1:0".parse().unwrap();
    let remote = RemoteSystem::bind(system.clone(), remote_settings, registry())
        .await
        .unwrap();
    let cluster_settings = ClusterSettings::default()
        .with_roles(BTreeSet::from([ROLE.to_owned()]))
        .with_fast_split_brain_resolver();
    let cluster = Cluster::start(&system, &remote, cluster_settings).unwrap();
    let props = recorder_props(remote.local_address().uid, log, received);
    let manager =
        ClusterSingletonManager::start(&system, &remote, &cluster, props, settings(margin))
            .unwrap();
    let seed = seed.unwrap_or_else(|| remote.local_address().address.clone());
    cluster.join(seed).unwrap();
    Node {
        system,
        remote,
        cluster,
        manager,
    }
}

/// Starts `count` nodes that form one cluster, and waits until every node has all of
/// them Up in its view.
pub async fn start_cluster(
    count: usize,
    margin: Duration,
    log: &Log,
    received: &Received,
) -> Vec<Node> {
    let first = start_node(None, margin, log, received).await;
    let seed = first.address();
    let mut nodes = vec![first];
    for _ in 1..count {
        nodes.push(start_node(Some(seed.clone()), margin, log, received).await);
    }
    wait_for(
        Duration::from_secs(30),
        "every node sees all members up",
        || {
            nodes
                .iter()
                .all(|node| node.cluster.state().count(MemberStatus::Up) == count)
        },
    )
    .await;
    nodes
}

/// Polls `condition` every 50 ms until it holds; panics with `description` after `deadline`.
pub async fn wait_for(deadline: Duration, description: &str, condition: impl FnMut() -> bool) {
    akkord_testkit::wait_until(description, deadline, condition).await;
}

/// Returns the indices of `nodes` from oldest to youngest, by the members in the view of `observer`.
pub fn by_age(nodes: &[Node], observer: &Node) -> Vec<usize> {
    let members: Vec<Member> = observer.cluster.state().members;
    let mut indices: Vec<usize> = (0..nodes.len()).collect();
    let member_of = |index: usize| {
        members
            .iter()
            .find(|member| member.unique_address == nodes[index].unique_address())
            .cloned()
            .unwrap_or_else(|| panic!("node {index} is not a member"))
    };
    indices.sort_by(|a, b| member_of(*a).age_order(&member_of(*b)));
    indices
}

/// Returns the indices of the nodes whose manager reports an active singleton.
pub fn active(nodes: &[Node]) -> Vec<usize> {
    (0..nodes.len())
        .filter(|index| nodes[*index].manager.is_active())
        .collect()
}

/// Checks that no two copies were ever active at once, and that each node alternates
/// between start and stop; returns the entries sorted by time.
pub fn assert_one_copy_at_a_time(log: &Log) -> Vec<LogEntry> {
    let mut entries = log.lock().unwrap().clone();
    entries.sort_by_key(|entry| entry.at);
    let mut active: Vec<u64> = Vec::new();
    for entry in &entries {
        match entry.transition {
            Transition::Start => {
                assert!(
                    active.is_empty(),
                    "node {} started a copy while {active:?} were active; log: {entries:?}",
                    entry.node_uid
                );
                active.push(entry.node_uid);
            }
            Transition::Stop => {
                assert_eq!(
                    active,
                    vec![entry.node_uid],
                    "node {} stopped a copy that was not the active one; log: {entries:?}",
                    entry.node_uid
                );
                active.clear();
            }
        }
    }
    entries
}

/// Returns the sequence numbers received by the copy on node `uid`.
pub fn received_on(received: &Received, uid: u64) -> Vec<u64> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(node, _)| *node == uid)
        .map(|(_, seq)| *seq)
        .collect()
}

/// Shuts down the transports of `nodes`. Their actor systems are left to the end of the
/// test process, because a graceful shutdown would wait to leave a cluster that is gone.
pub async fn shutdown(nodes: Vec<Node>) {
    for node in nodes {
        node.remote.shutdown().await;
    }
}
