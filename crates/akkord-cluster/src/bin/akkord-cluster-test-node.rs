//! A cluster node for the multi-process tests.
//!
//! Usage:
//!
//! ```text
//! akkord-cluster-test-node --port PORT [--host IP] [--system NAME] [--seed ADDRESS]...
//!     [--fast-sbr] [--stable-after-ms MS] [--members-every-ms MS]
//! ```
//!
//! It binds the transport on `IP:PORT` (default host 127.0.0.1, system `cluster-test`),
//! joins through the seed nodes and prints one line per fact on stdout:
//!
//! - `self <node>` once started, where `<node>` is `akkord://system@host:port#uid`;
//! - `event <Kind> <node>` for each membership event, for example `event MemberUp ...`,
//!   `event Unreachable ...`, `event Reachable ...`, `event MemberRemoved ...`;
//! - `members converged=<bool> leader=<node or -> <node>/<status>/<r or u>,...`, every
//!   `--members-every-ms` (default 500) and on the stdin command `members`;
//! - `shutdown <reason>` when the coordinated shutdown starts, then the process exits.
//!
//! Every node exposes an actor named `probe`. Stdin commands: `members`, `leave` (this node
//! leaves gracefully), `down <address>`, `shutdown` (runs the coordinated shutdown, which
//! leaves the cluster first), and `watch <address>`, which looks up the probe of
//! that node, watches it and prints `watching <address>`, then `terminated <address>` when
//! the watch fires. The process exits when it is downed or removed, or at once when stdin closes, so a node never
//! outlives the test that started it.

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use akkord_actor::address::Address;
use akkord_actor::shutdown::ShutdownReason;
use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, AnyActorRef, Context, Props};
use akkord_cluster::membership::ClusterEvent;
use akkord_cluster::sbr::SbrSettings;
use akkord_cluster::shell::{Cluster, ClusterSettings, ClusterState};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use anyhow::{bail, Context as _};
use tokio::sync::broadcast::error::RecvError;

/// Command-line options.
struct Options {
    system: String,
    host: IpAddr,
    port: u16,
    seeds: Vec<Address>,
    fast_sbr: bool,
    stable_after: Option<Duration>,
    members_every: Duration,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        system: "cluster-test".to_owned(),
        host: IpAddr::from([127, 0, 0, 1]),
        port: 0,
        seeds: Vec::new(),
        fast_sbr: false,
        stable_after: None,
        members_every: Duration::from_millis(500),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("missing value after {flag}"))
        };
        match flag.as_str() {
            "--system" => options.system = value()?,
            "--host" => options.host = value()?.parse().context("invalid --host IP address")?,
            "--port" => options.port = value()?.parse().context("invalid --port number")?,
            "--seed" => options
                .seeds
                .push(value()?.parse().context("invalid --seed address")?),
            "--fast-sbr" => options.fast_sbr = true,
            "--stable-after-ms" => {
                let ms: u64 = value()?.parse().context("invalid --stable-after-ms")?;
                options.stable_after = Some(Duration::from_millis(ms));
            }
            "--members-every-ms" => {
                let ms: u64 = value()?.parse().context("invalid --members-every-ms")?;
                options.members_every = Duration::from_millis(ms.max(10));
            }
            other => bail!("unknown option {other}; see the usage in the binary's documentation"),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let options = parse_options()?;

    // User actors and the transport run on separate runtimes, and the cluster daemon on a
    // thread of its own, so a busy actor cannot delay heartbeats.
    let user_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("user")
        .enable_all()
        .build()?;
    let transport_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("transport")
        .enable_all()
        .build()?;

    let system = {
        let _entered = user_runtime.enter();
        ActorSystem::new(&options.system)?
    };
    let mut remote_settings = RemoteSystemSettings::new(&options.system);
    remote_settings.transport.bind = SocketAddr::new(options.host, options.port);
    let mut registry = SerializationRegistry::new();
    registry.register::<String>(TEXT_MANIFEST)?;
    let remote = transport_runtime.block_on(RemoteSystem::bind(
        system.clone(),
        remote_settings,
        registry,
    ))?;

    user_runtime.block_on(run(options, system, remote))
}

async fn run(options: Options, system: ActorSystem, remote: RemoteSystem) -> anyhow::Result<()> {
    let mut settings = ClusterSettings::default().with_seed_nodes(options.seeds);
    if options.fast_sbr {
        settings = settings.with_fast_split_brain_resolver();
    }
    if let Some(stable_after) = options.stable_after {
        settings.node.sbr = SbrSettings::with_stable_after(stable_after);
    }
    let cluster = Cluster::start(&system, &remote, settings)?;
    remote.expose("probe", &system.spawn("probe", Props::new(|| Probe))?)?;
    print_line(&format!("self {}", cluster.self_node()));

    let (_, mut events) = cluster.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => print_line(&describe(&event)),
                Err(RecvError::Lagged(count)) => print_line(&format!("lagged {count}")),
                Err(RecvError::Closed) => return,
            }
        }
    });

    let periodic = cluster.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(options.members_every);
        loop {
            ticks.tick().await;
            print_line(&members_line(&periodic.state()));
        }
    });

    let (lines_sender, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_sender.send(line).is_err() {
                return;
            }
        }
    });

    loop {
        tokio::select! {
            _ = system.when_terminated() => {
                let reason = system.coordinated_shutdown().reason();
                print_line(&format!("shutdown {reason:?}"));
                std::process::exit(0);
            }
            line = lines.recv() => {
                let Some(line) = line else {
                    // The test that started this node is gone.
                    std::process::exit(0);
                };
                run_stdin_command(&cluster, &remote, line.trim()).await;
            }
        }
    }
}

async fn run_stdin_command(cluster: &Cluster, remote: &RemoteSystem, line: &str) {
    let mut words = line.split_whitespace();
    let result = match (words.next(), words.next()) {
        (Some("members"), None) => {
            print_line(&members_line(&cluster.state()));
            Ok(())
        }
        (Some("leave"), None) => cluster
            .leave(cluster.self_node().address.clone())
            .await
            .map_err(|error| error.to_string()),
        (Some("down"), Some(address)) => match address.parse::<Address>() {
            Ok(address) => cluster.down(address).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        },
        (Some("shutdown"), None) => {
            let system = remote.system().clone();
            tokio::spawn(async move {
                system
                    .coordinated_shutdown()
                    .run(&system, ShutdownReason::ActorSystemTerminate)
                    .await;
            });
            Ok(())
        }
        (Some("watch"), Some(address)) => watch_probe(remote, address).await,
        _ => Err(format!("unknown command {line:?}")),
    };
    if let Err(error) = result {
        print_line(&format!("error {error}"));
    }
}

/// Manifest of the text messages the probe accepts.
const TEXT_MANIFEST: &str = "cluster-test.Text";

/// The actor every node exposes as `probe`, for remote death watch; it ignores messages.
struct Probe;

impl Actor for Probe {
    type Msg = String;

    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: String) -> ActorResult {
        Ok(())
    }
}

/// Watches a remote probe and prints `terminated <address>` when the watch fires.
struct ProbeWatcher {
    target: ActorRef<String>,
    address: String,
}

impl Actor for ProbeWatcher {
    type Msg = ();

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        ctx.watch(&self.target);
        print_line(&format!("watching {}", self.address));
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> ActorResult {
        Ok(())
    }

    async fn terminated(&mut self, _ctx: &mut Context<Self>, _actor: AnyActorRef) -> ActorResult {
        print_line(&format!("terminated {}", self.address));
        Ok(())
    }
}

async fn watch_probe(remote: &RemoteSystem, address: &str) -> Result<(), String> {
    let parsed: Address = address
        .parse()
        .map_err(|e: akkord_actor::address::AddressError| e.to_string())?;
    let target = remote
        .lookup::<String>(&parsed, "probe", Duration::from_secs(5))
        .await
        .map_err(|error| error.to_string())?;
    let address = address.to_owned();
    remote
        .system()
        .spawn_anonymous(Props::new(move || ProbeWatcher {
            target: target.clone(),
            address: address.clone(),
        }))
        .map_err(|error| error.to_string())?;
    Ok(())
}

fn describe(event: &ClusterEvent) -> String {
    match event {
        ClusterEvent::MemberJoined(member) => {
            format!("event MemberJoined {}", member.unique_address)
        }
        ClusterEvent::MemberWeaklyUp(member) => {
            format!("event MemberWeaklyUp {}", member.unique_address)
        }
        ClusterEvent::MemberUp(member) => format!("event MemberUp {}", member.unique_address),
        ClusterEvent::MemberLeft(member) => format!("event MemberLeft {}", member.unique_address),
        ClusterEvent::MemberExited(member) => {
            format!("event MemberExited {}", member.unique_address)
        }
        ClusterEvent::MemberDowned(member) => {
            format!("event MemberDowned {}", member.unique_address)
        }
        ClusterEvent::MemberRemoved { member, .. } => {
            format!("event MemberRemoved {}", member.unique_address)
        }
        ClusterEvent::UnreachableMember(member) => {
            format!("event Unreachable {}", member.unique_address)
        }
        ClusterEvent::ReachableMember(member) => {
            format!("event Reachable {}", member.unique_address)
        }
        ClusterEvent::LeaderChanged { leader } => match leader {
            Some(leader) => format!("event LeaderChanged {leader}"),
            None => "event LeaderChanged -".to_owned(),
        },
        ClusterEvent::RoleLeaderChanged { role, .. } => format!("event RoleLeaderChanged {role}"),
        ClusterEvent::SelfDowned => "event SelfDowned".to_owned(),
        ClusterEvent::SelfRemoved => "event SelfRemoved".to_owned(),
        ClusterEvent::JoinRejected { by, .. } => format!("event JoinRejected {by}"),
    }
}

/// Formats the state as `members converged=<bool> leader=<node> <node>/<status>/<r|u>,...`.
fn members_line(state: &ClusterState) -> String {
    let leader = state
        .leader
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let members: Vec<String> = state
        .members
        .iter()
        .map(|member| {
            let reachability = if state.unreachable.contains(&member.unique_address) {
                "u"
            } else {
                "r"
            };
            format!(
                "{}/{:?}/{reachability}",
                member.unique_address, member.status
            )
        })
        .collect();
    format!(
        "members converged={} leader={leader} {}",
        state.converged,
        members.join(",")
    )
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout means the test is gone; the stdin watcher ends the process.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
