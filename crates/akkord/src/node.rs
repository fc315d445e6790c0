//! One cluster node: actor system, remoting, membership, the cluster-wide receptionist,
//! the word-count service and, optionally, the management HTTP server.

use std::net::SocketAddr;
use std::time::Duration;

use akkord_actor::ActorSystem;
use akkord_cluster::sbr::SbrSettings;
use akkord_cluster::shell::{Cluster, ClusterSettings};
use akkord_cluster_tools::receptionist::{ClusterReceptionist, ClusterReceptionistSettings};
use akkord_cluster_tools::singleton::{
    ClusterSingletonManager, ClusterSingletonProxy, SingletonProxy, SingletonSettings,
};
use akkord_management::{ManagementError, ManagementServer, ManagementSettings};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::transport::TransportError;
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use anyhow::{anyhow, Context as _, Result};
use tokio::runtime::Runtime;

use crate::config::NodeConfig;
use crate::work::{self, Master, MasterMsg, Worker, MASTER_NAME, WORKER_ROLE};

/// Split brain resolver stable-after when the configuration sets none: Akka's default.
const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(20);

/// The runtimes of a node. User actors and the transport run on separate runtimes, and
/// the cluster daemon on a thread of its own, so a busy actor cannot delay heartbeats.
pub(crate) struct Runtimes {
    /// Runs actors and the program's own tasks.
    pub user: Runtime,
    transport: Runtime,
}

impl Runtimes {
    /// Builds both runtimes.
    pub(crate) fn new() -> Result<Self> {
        let user = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("user")
            .enable_all()
            .build()?;
        let transport = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("transport")
            .enable_all()
            .build()?;
        Ok(Self { user, transport })
    }
}

/// Services a node runs besides membership.
pub(crate) struct NodeOptions {
    /// The node's settings.
    pub config: NodeConfig,
    /// Whether to serve the management endpoints.
    pub management: bool,
}

/// A running node.
pub(crate) struct Node {
    pub system: ActorSystem,
    pub remote: RemoteSystem,
    pub cluster: Cluster,
    /// Reaches the work master wherever it runs.
    pub master: SingletonProxy<MasterMsg>,
    pub management: Option<ManagementServer>,
    _receptionist: ClusterReceptionist,
    _manager: Option<ClusterSingletonManager>,
}

/// Starts a node; call it outside any runtime.
pub(crate) fn start(runtimes: &Runtimes, options: NodeOptions) -> Result<Node> {
    let config = options.config;
    config.check()?;
    let system = {
        let _entered = runtimes.user.enter();
        ActorSystem::new(&config.system)?
    };
    let mut remote_settings = RemoteSystemSettings::new(&config.system);
    remote_settings.transport.bind = SocketAddr::new(config.host, config.port);
    let mut registry = SerializationRegistry::new();
    work::register_messages(&mut registry)?;
    let remote = runtimes
        .transport
        .block_on(RemoteSystem::bind(
            system.clone(),
            remote_settings,
            registry,
        ))
        .map_err(|error| match error {
            TransportError::Bind { bind, source }
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                anyhow!(
                    "port {} on {} is already in use: stop the process that holds it or \
                     choose another port with --port (or AKKORD_PORT, or port in the config file)",
                    bind.port(),
                    bind.ip()
                )
            }
            TransportError::Bind { bind, source } => anyhow!(
                "cannot bind remoting to {bind}: {source}; check host and port (the host must be \
                 an address of this machine)"
            ),
            other => anyhow!(other).context("cannot start remoting"),
        })?;

    let _entered = runtimes.user.enter();
    let stable_after = config.stable_after.unwrap_or(DEFAULT_STABLE_AFTER);
    let mut settings = ClusterSettings::default()
        .with_seed_nodes(config.seed_nodes.clone())
        .with_roles(config.roles.clone());
    settings.node.sbr = SbrSettings::with_stable_after(stable_after);
    let cluster = Cluster::start(&system, &remote, settings).context("cannot start the cluster")?;
    let receptionist = ClusterReceptionist::start(
        &system,
        &remote,
        &cluster,
        ClusterReceptionistSettings::default(),
    )
    .context("cannot start the cluster receptionist")?;

    let singleton = SingletonSettings::new(MASTER_NAME)
        .with_role(WORKER_ROLE)
        .with_removal_margin(stable_after);
    let manager = if config.roles.contains(WORKER_ROLE) {
        Some(
            ClusterSingletonManager::start(
                &system,
                &remote,
                &cluster,
                Master::props(),
                singleton.clone(),
            )
            .context("cannot start the work master's singleton manager")?,
        )
    } else {
        None
    };
    let master = ClusterSingletonProxy::start::<MasterMsg>(&system, &remote, &cluster, singleton)
        .context("cannot start the work master's proxy")?;
    if config.roles.contains(WORKER_ROLE) {
        let node = remote.local_address().address.to_string();
        for index in 0..config.workers {
            system.spawn(
                &format!("worker-{index}"),
                Worker::props(master.actor_ref(), node.clone(), config.chunk_cost),
            )?;
        }
    }

    let management = if options.management {
        let bind = SocketAddr::new(config.management_host, config.management_port);
        let server = runtimes
            .user
            .block_on(ManagementServer::start(
                ManagementSettings { bind },
                cluster.clone(),
                remote.clone(),
                system.clone(),
            ))
            .map_err(|error| match error {
                ManagementError::Bind { address, source }
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    anyhow!(
                        "management port {} on {} is already in use: stop the process that holds \
                         it or choose another port with --management-port (or \
                         AKKORD_MANAGEMENT_PORT, or management_port in the config file; 0 picks \
                         a free one)",
                        address.port(),
                        address.ip()
                    )
                }
                ManagementError::Bind { address, source } => anyhow!(
                    "cannot serve management on {address}: {source}; check management_host and \
                     management_port"
                ),
            })?;
        Some(server)
    } else {
        None
    };

    Ok(Node {
        system,
        remote,
        cluster,
        master,
        management,
        _receptionist: receptionist,
        _manager: manager,
    })
}

/// Runs `akkord node` until the node is downed, removed or stopped by a signal; a signal
/// makes it leave the cluster first.
pub(crate) fn run(options: NodeOptions) -> Result<()> {
    let runtimes = Runtimes::new()?;
    let node = start(&runtimes, options)?;
    println!("node {} started", node.cluster.self_node());
    if let Some(management) = &node.management {
        println!("management http://{}", management.local_addr());
    }
    runtimes.user.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = node.system.when_terminated() => {}
            _ = tokio::signal::ctrl_c() => leave(&node).await,
            _ = terminate.recv() => leave(&node).await,
        }
        match node.system.coordinated_shutdown().reason() {
            Some(reason) => println!("node stopped: {reason:?}"),
            None => println!("node stopped"),
        }
        anyhow::Ok(())
    })
}

/// Leaves the cluster and waits, up to a bound, for the removal to shut the node down.
async fn leave(node: &Node) {
    if node.cluster.self_member().is_none() {
        tracing::info!("signal received; this node is not a cluster member, so it stops");
        node.system.terminate().await;
        return;
    }
    tracing::info!("signal received; leaving the cluster");
    let address = node.cluster.self_node().address.clone();
    if let Err(error) = node.cluster.leave(address).await {
        tracing::warn!(%error, "cannot leave the cluster; stopping");
        node.system.terminate().await;
        return;
    }
    let bound = Duration::from_secs(30);
    if tokio::time::timeout(bound, node.system.when_terminated())
        .await
        .is_err()
    {
        tracing::warn!(?bound, "removal did not finish in time; stopping");
        node.system.terminate().await;
    }
}
