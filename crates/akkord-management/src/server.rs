//! The HTTP server: listener, connection limits and shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use akkord_actor::ActorSystem;
use akkord_cluster::shell::Cluster;
use akkord_remote::RemoteSystem;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::routes::{self, Node};

/// Default port of the management endpoint, as Akka Management's.
pub const DEFAULT_PORT: u16 = 8558;

/// Connections served at once; further ones are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;

/// Time a client has to send the request headers before the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Lifetime of one connection. After it, the connection closes once the current response
/// is sent, so idle keep-alive clients cannot hold connection slots for ever.
pub const CONNECTION_MAX_AGE: Duration = Duration::from_secs(60);

/// Size of a connection's read buffer, which bounds the request line and headers; the
/// smallest hyper accepts is 8 KiB.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Time connections get to finish their requests at shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of a [`ManagementServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementSettings {
    /// Socket address the server listens on. Default `127.0.0.1:8558`: loopback only,
    /// because the endpoints have no authentication and `leave` and `down` change the
    /// cluster. Bind a routable address only on a network that only operators reach.
    pub bind: SocketAddr,
}

impl Default for ManagementSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
        }
    }
}

/// Failure to start a [`ManagementServer`].
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The listener could not bind, typically because the port is in use; nothing runs.
    #[error(
        "failed to bind the management endpoint to {address}: {source}; choose a free port \
         or stop the process that holds it"
    )]
    Bind {
        /// The address from the settings.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// A running management endpoint of one cluster node.
///
/// It serves on the tokio runtime that called [`ManagementServer::start`]:
///
/// | method and path | response |
/// |---|---|
/// | `GET /cluster/members` | [`MembersResponse`](crate::MembersResponse) as JSON |
/// | `GET /cluster/members/{address}` | [`MemberEntry`](crate::MemberEntry) as JSON |
/// | `POST /cluster/members/{address}/leave` | 200 when the member was asked to leave |
/// | `POST /cluster/members/{address}/down` | 200 when the member was marked Down |
/// | `GET /health/alive` | 200 while the actor system runs, else 503 |
/// | `GET /health/ready` | 200 once this node is Up or WeaklyUp, else 503 |
/// | `GET /metrics` | Prometheus text format 0.0.4 |
///
/// `{address}` is `akkord://<system>@<host>:<port>`, percent-encoded, or `<host>:<port>`.
/// A malformed address gets 400, an address with no member 404; every error body is
/// [`ErrorResponse`](crate::ErrorResponse) JSON that names the value.
///
/// # Example
///
/// ```no_run
/// # use akkord_actor::ActorSystem;
/// # use akkord_cluster::shell::{Cluster, ClusterSettings};
/// # use akkord_management::{ManagementServer, ManagementSettings};
/// # use akkord_remote::remote::{RemoteSystem, RemoteSystemSettings};
/// # use akkord_remote::serialization::SerializationRegistry;
/// # #[tokio::main]
/// # async fn main() -> anyhow::Result<()> {
/// # let system = ActorSystem::new("demo")?;
/// # let remote = RemoteSystem::bind(
/// #     system.clone(),
/// #     RemoteSystemSettings::new("demo"),
/// #     SerializationRegistry::new(),
/// # )
/// # .await?;
/// let cluster = Cluster::start(&system, &remote, ClusterSettings::default())?;
/// let server =
///     ManagementServer::start(ManagementSettings::default(), cluster, remote, system).await?;
/// println!("members at http://{}/cluster/members", server.local_addr());
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ManagementServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl ManagementServer {
    /// Binds the listener and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ManagementError::Bind`], naming the address, when the listener cannot bind.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn start(
        settings: ManagementSettings,
        cluster: Cluster,
        remote: RemoteSystem,
        system: ActorSystem,
    ) -> Result<Self, ManagementError> {
        let bind_error = |source| ManagementError::Bind {
            address: settings.bind,
            source,
        };
        let listener = TcpListener::bind(settings.bind).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        if !local_addr.ip().is_loopback() {
            warn!(address = %local_addr, "management endpoint bound to a non-loopback address; anyone who reaches it can make members leave or down them");
        }
        let router = routes::router(Arc::new(Node {
            cluster,
            remote,
            system,
        }));
        let (stop, stopped) = watch::channel(false);
        let accept_task = tokio::spawn(accept(listener, router, stopped));
        info!(address = %local_addr, "management endpoint started");
        Ok(Self {
            local_addr,
            stop,
            accept_task,
        })
    }

    /// Returns the address the server listens on, with the port chosen when the settings
    /// asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets open ones finish their current request for up to
    /// 5 seconds, then closes them; returns when the listener is closed.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.accept_task.await {
            warn!(%error, "management accept task failed");
        }
        info!(address = %self.local_addr, "management endpoint stopped");
    }
}

/// Accepts connections until `stopped` turns true, then closes the open ones gracefully.
async fn accept(listener: TcpListener, router: Router, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = until_stopped(&mut stopped) => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically out of file descriptors; pause so the loop does not spin.
                warn!(%error, "failed to accept a management connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            debug!(%peer, limit = MAX_CONNECTIONS, "closed management connection: too many open connections");
            continue;
        };
        let router = router.clone();
        let stopped = stopped.clone();
        connections.spawn(async move {
            serve(stream, router, stopped).await;
            drop(slot);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!(
            open = connections.len(),
            "dropped management connections still open at shutdown"
        );
        connections.shutdown().await;
    }
}

/// Serves the requests of one connection until the client closes it, it reaches
/// [`CONNECTION_MAX_AGE`], or the server stops.
async fn serve(stream: TcpStream, router: Router, mut stopped: watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(READ_BUFFER_BYTES)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = until_stopped(&mut stopped) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        _ = tokio::time::sleep(CONNECTION_MAX_AGE) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(?peer, %error, "management connection closed with an error");
    }
}

/// Waits until the server is asked to stop, or its handle is gone.
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}
