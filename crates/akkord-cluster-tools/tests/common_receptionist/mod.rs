//! In-process cluster nodes for the receptionist, pub/sub and router tests: each node has
//! its own actor system, remote system on loopback, cluster with the fast resolver profile
//! and cluster receptionist.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::{ActorRef, ActorSystem};
use akkord_cluster::member::MemberStatus;
use akkord_cluster::shell::{Cluster, ClusterSettings};
use akkord_cluster_tools::receptionist::{ClusterReceptionist, ClusterReceptionistSettings};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use serde::{Deserialize, Serialize};

/// Actor system name of every test node.
pub const SYSTEM: &str = "receptionist-test";

/// The test message: the uid of the sending node and a sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hello {
    pub from: u64,
    pub seq: u64,
}

/// A message type that is not registered for serialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOnly(pub u64);

/// Returns a registry with the test message.
pub fn registry() -> SerializationRegistry {
    let mut registry = SerializationRegistry::new();
    registry
        .register::<Hello>("test.receptionist.Hello")
        .unwrap();
    registry
}

/// One in-process node.
pub struct Node {
    pub system: ActorSystem,
    pub remote: RemoteSystem,
    pub cluster: Cluster,
    pub receptionist: ClusterReceptionist,
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

    pub fn up_members(&self) -> usize {
        self.cluster.state().count(MemberStatus::Up)
    }

    /// Returns true while this node's cluster state lists `node` as a member.
    pub fn has_member(&self, node: &UniqueAddress) -> bool {
        self.cluster
            .state()
            .members
            .iter()
            .any(|member| member.unique_address == *node)
    }
}

/// Starts a node and joins through `seed`, or forms a new cluster when `seed` is `None`.
pub async fn start_node(seed: Option<Address>) -> Node {
    start_node_with(seed, registry()).await
}

/// Starts a node with `registry` and joins through `seed`, or forms a new cluster when
/// `seed` is `None`.
pub async fn start_node_with(seed: Option<Address>, registry: SerializationRegistry) -> Node {
    let system = ActorSystem::new(SYSTEM).unwrap();
    let mut remote_settings = RemoteSystemSettings::new(SYSTEM);
    remote_settings.transport.bind = "127.0.0.1:0".parse().unwrap();
    let remote = RemoteSystem::bind(system.clone(), remote_settings, registry)
        .await
        .unwrap();
    let cluster = Cluster::start(
        &system,
        &remote,
        ClusterSettings::default().with_fast_split_brain_resolver(),
    )
    .unwrap();
    let receptionist = ClusterReceptionist::start(
        &system,
        &remote,
        &cluster,
        ClusterReceptionistSettings::default(),
    )
    .unwrap();
    let seed = seed.unwrap_or_else(|| remote.local_address().address.clone());
    cluster.join(seed).unwrap();
    Node {
        system,
        remote,
        cluster,
        receptionist,
    }
}

/// Starts `count` nodes that join the first one and waits until every node lists all of
/// them as Up.
pub async fn start_cluster(count: usize) -> Vec<Node> {
    let first = start_node(None).await;
    let seed = first.address();
    let mut nodes = vec![first];
    for _ in 1..count {
        nodes.push(start_node(Some(seed.clone())).await);
    }
    wait_until(
        "every node sees all members Up",
        Duration::from_secs(30),
        || nodes.iter().all(|node| node.up_members() == count),
    )
    .await;
    nodes
}

/// Shuts down the transports of `nodes`.
pub async fn shut_down(nodes: &[Node]) {
    for node in nodes {
        node.remote.shutdown().await;
    }
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    akkord_testkit::wait_until(what, timeout, condition).await;
}

/// Messages received by a collecting ref.
pub type Collected<T> = Arc<Mutex<Vec<T>>>;

/// Returns a ref that stores every message it receives, and the store.
pub fn collector<T: Send + 'static>(
    system: &ActorSystem,
    name: &str,
) -> (ActorRef<T>, Collected<T>) {
    let collected: Collected<T> = Arc::default();
    let store = Arc::clone(&collected);
    let actor = ActorRef::from_fn(system, name, move |message: T| {
        store.lock().unwrap().push(message);
    });
    (actor, collected)
}
