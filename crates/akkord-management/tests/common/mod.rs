//! In-process cluster nodes with a management endpoint each, on 127.0.0.1 with free ports.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use akkord_actor::address::Address;
use akkord_actor::ActorSystem;
use akkord_cluster::shell::{Cluster, ClusterSettings};
use akkord_management::client::ManagementClient;
use akkord_management::{ManagementServer, ManagementSettings};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a cluster takes at most to reach a state in these tests.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// One node: actor system, remoting, cluster and management endpoint.
pub struct TestNode {
    pub system: ActorSystem,
    pub remote: RemoteSystem,
    pub cluster: Cluster,
    pub server: Option<ManagementServer>,
    pub client: ManagementClient,
}

impl TestNode {
    /// Starts a node of actor system `system` that joins through `seeds`; with no seeds it
    /// waits for a join command.
    pub async fn start(system_name: &str, seeds: Vec<Address>) -> TestNode {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let system = ActorSystem::new(system_name).expect("valid system name");
        let mut remote_settings = RemoteSystemSettings::new(system_name);
        remote_settings.transport.bind = "127.0.0.1:0".parse().expect("valid address");
        let remote = RemoteSystem::bind(
            system.clone(),
            remote_settings,
            SerializationRegistry::new(),
        )
        .await
        .expect("remote binds to a free port");
        let settings = ClusterSettings::default()
            .with_seed_nodes(seeds)
            .with_fast_split_brain_resolver();
        let cluster = Cluster::start(&system, &remote, settings).expect("cluster starts");
        let management = ManagementSettings {
            bind: "127.0.0.1:0".parse().expect("valid address"),
        };
        let server =
            ManagementServer::start(management, cluster.clone(), remote.clone(), system.clone())
                .await
                .expect("management binds to a free port");
        let client = ManagementClient::new(server.local_addr());
        TestNode {
            system,
            remote,
            cluster,
            server: Some(server),
            client,
        }
    }

    /// Returns the node's address, `akkord://<system>@127.0.0.1:<port>`.
    pub fn address(&self) -> Address {
        self.remote.local_address().address.clone()
    }

    /// Returns the management endpoint's address.
    pub fn endpoint(&self) -> SocketAddr {
        self.server
            .as_ref()
            .expect("management server runs")
            .local_addr()
    }

    /// Stops the management endpoint and the transport.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.remote.shutdown().await;
    }
}

/// Starts a two-node cluster: the first node forms it, the second joins through it; returns
/// once both see two Up members.
pub async fn two_node_cluster(system_name: &str) -> (TestNode, TestNode) {
    let first = TestNode::start(system_name, Vec::new()).await;
    first
        .cluster
        .join(first.address())
        .expect("join command accepted");
    let second = TestNode::start(system_name, vec![first.address()]).await;
    for node in [&first, &second] {
        eventually("both members Up", CLUSTER_TIMEOUT, || async {
            let members = node.client.members().await.ok()?;
            let up = members.members.iter().filter(|m| m.status == "Up").count();
            (up == 2 && members.leader.is_some()).then_some(())
        })
        .await;
    }
    (first, second)
}

/// Polls `check` every 100 ms until it returns a value; panics naming `condition` after
/// `timeout`.
pub async fn eventually<T, F, Fut>(condition: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {timeout:?}: {condition}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `request` as raw bytes and returns the status code and the whole response text,
/// or `None` when the server closed the connection without a status line.
pub async fn raw_request(endpoint: SocketAddr, request: &[u8]) -> (Option<u16>, String) {
    let mut stream = TcpStream::connect(endpoint).await.expect("server accepts");
    stream.write_all(request).await.expect("request written");
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut response));
    // A reset after the response is fine: the bytes read so far are kept.
    let _ = read.await.expect("server answers or closes within 15 s");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}
