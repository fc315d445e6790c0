//! The `akkord` command-line program: run a cluster node, talk to a node's management
//! endpoint, and run the demo.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

mod cluster_demo;
mod config;
mod local_demo;
mod node;
mod text;
mod work;

use config::{NodeConfig, RawValue, RawValues, SourceName};

/// akkord: an actor runtime with remoting and clustering.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a cluster node with the word-count service. Settings come from a TOML file,
    /// AKKORD_* environment variables and flags, flags winning.
    Node(NodeArgs),
    /// Lists the members of the cluster in the view of a node's management endpoint.
    Members {
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Asks the member at ADDRESS to leave the cluster gracefully.
    Leave {
        /// The member, as akkord://system@host:port.
        address: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Marks the member at ADDRESS as down, for a node known to be gone.
    Down {
        /// The member, as akkord://system@host:port.
        address: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Starts a local cluster of node processes, counts word frequencies of real text on
    /// it while killing a worker node (and optionally the master's node), and checks the
    /// result against a single-process count.
    Demo(DemoArgs),
    /// Counts word frequencies with a pool of actors in this process, with failing
    /// workers restarted by supervision.
    LocalDemo {
        /// Files or folders to read (plain text or .gz); default: /usr/share/common-licenses.
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
        /// Number of worker actors.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Lines per chunk handed to a worker.
        #[arg(long, default_value_t = 200)]
        chunk_lines: usize,
        /// Make every worker fail once after this many chunks; 0 disables it.
        #[arg(long, default_value_t = 5)]
        fail_worker_after: u64,
        /// How long a worker may take for one chunk before it is handed out again, in
        /// milliseconds.
        #[arg(long, default_value_t = 2000)]
        chunk_timeout_ms: u64,
    },
}

/// The management endpoint to talk to.
#[derive(Args)]
struct Endpoint {
    /// host:port of the node's management HTTP server.
    #[arg(long, env = "AKKORD_MANAGEMENT", default_value = "127.0.0.1:8558")]
    endpoint: String,
}

#[derive(Args)]
struct NodeArgs {
    /// TOML file with any of the keys below (without the leading dashes, '-' as '_').
    #[arg(long, env = "AKKORD_CONFIG")]
    config: Option<PathBuf>,
    /// Actor system name, the same on every node of a cluster [default: akkord].
    #[arg(long)]
    system: Option<String>,
    /// IP address to bind and to be reached at [default: 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// Remoting port [default: 2552].
    #[arg(long)]
    port: Option<String>,
    /// Comma-separated seed node addresses, e.g. akkord://akkord@127.0.0.1:2552.
    #[arg(long)]
    seed_nodes: Option<String>,
    /// Comma-separated roles [default: worker].
    #[arg(long)]
    roles: Option<String>,
    /// IP address of the management HTTP server [default: 127.0.0.1].
    #[arg(long)]
    management_host: Option<String>,
    /// Port of the management HTTP server [default: 8558].
    #[arg(long)]
    management_port: Option<String>,
    /// Split brain resolver stable-after in seconds [default: 20].
    #[arg(long)]
    stable_after_secs: Option<String>,
    /// Word-count worker actors on a node with the worker role [default: 2].
    #[arg(long)]
    workers: Option<String>,
    /// Minimum time a worker spends on one chunk, in milliseconds, so that demos last long
    /// enough to watch failover [default: 0].
    #[arg(long)]
    chunk_cost_ms: Option<String>,
    /// Exit when standard input closes, so a node never outlives the program that
    /// started it.
    #[arg(long, hide = true)]
    exit_when_stdin_closes: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Number of node processes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Files or folders to read (plain text or .gz); default: /usr/share/common-licenses.
    #[arg(long = "input")]
    inputs: Vec<PathBuf>,
    /// Lines per chunk.
    #[arg(long, default_value_t = 50)]
    chunk_lines: usize,
    /// Worker actors per node.
    #[arg(long, default_value_t = 2)]
    workers_per_node: usize,
    /// Minimum time a worker spends on one chunk, in milliseconds; 0 runs at full speed.
    #[arg(long, default_value_t = 20)]
    chunk_cost_ms: u64,
    /// Kill (SIGKILL) a node other than the master's after this many chunks are counted
    /// [default: a third of the chunks]; 0 kills none.
    #[arg(long)]
    kill_worker_after: Option<usize>,
    /// Also kill the node that hosts the work master after this many chunks are counted
    /// (and after the worker kill).
    #[arg(long)]
    kill_master_after: Option<usize>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own account of the run, and the library logs of its client
    // member would drown it, so they default to errors there. The nodes log to files.
    let default_level = match cli.command {
        Command::Demo(_) => "error",
        Command::Members { .. } | Command::Leave { .. } | Command::Down { .. } => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(2)
        }
    }
}

/// Joins the messages of `error` and its causes, leaving out a cause whose message is
/// already part of the text, as when an error prints its source itself.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

/// Runs one subcommand.
fn run(command: Command) -> Result<()> {
    match command {
        Command::Node(args) => run_node(args),
        Command::Members { endpoint } => management(endpoint, |client| async move {
            let members = client.members().await?;
            print!("{}", akkord_management::client::format_members(&members));
            Ok(())
        }),
        Command::Leave { address, endpoint } => management(endpoint, |client| async move {
            println!("{}", client.leave(&address).await?);
            Ok(())
        }),
        Command::Down { address, endpoint } => management(endpoint, |client| async move {
            println!("{}", client.down(&address).await?);
            Ok(())
        }),
        Command::Demo(args) => {
            let identical = cluster_demo::run(cluster_demo::DemoOptions {
                nodes: args.nodes,
                inputs: args.inputs,
                chunk_lines: args.chunk_lines,
                workers_per_node: args.workers_per_node,
                chunk_cost: Duration::from_millis(args.chunk_cost_ms),
                kill_worker_after: args.kill_worker_after,
                kill_master_after: args.kill_master_after,
                timeout: Duration::from_secs(args.timeout_secs),
            })?;
            std::process::exit(if identical { 0 } else { 1 });
        }
        Command::LocalDemo {
            inputs,
            workers,
            chunk_lines,
            fail_worker_after,
            chunk_timeout_ms,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let options = local_demo::Options {
                inputs,
                workers,
                chunk_lines,
                fail_worker_after,
                chunk_timeout: Duration::from_millis(chunk_timeout_ms),
            };
            let identical = runtime.block_on(local_demo::run(options))?;
            if !identical {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn run_node(args: NodeArgs) -> Result<()> {
    let mut sources = Vec::new();
    if let Some(path) = &args.config {
        sources.push(RawValues::from_file(path)?);
    }
    sources.push(RawValues::from_env(|name| std::env::var(name).ok()));
    let mut flags = RawValues::default();
    let flag_values = [
        ("system", &args.system),
        ("host", &args.host),
        ("port", &args.port),
        ("seed_nodes", &args.seed_nodes),
        ("roles", &args.roles),
        ("management_host", &args.management_host),
        ("management_port", &args.management_port),
        ("stable_after_secs", &args.stable_after_secs),
        ("workers", &args.workers),
        ("chunk_cost_ms", &args.chunk_cost_ms),
    ];
    for (key, value) in flag_values {
        if let Some(value) = value {
            flags.push(key, RawValue::Text(value.clone()), SourceName::flag(key));
        }
    }
    sources.push(flags);
    let config = NodeConfig::resolve(&sources)?;
    for name in config::unknown_variables(std::env::vars().map(|(name, _)| name)) {
        tracing::warn!(variable = %name, "ignored environment variable: no setting has this name");
    }
    if args.exit_when_stdin_closes {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut sink);
            std::process::exit(0);
        });
    }
    node::run(node::NodeOptions {
        config,
        management: true,
    })
}

fn management<F, Fut>(endpoint: Endpoint, f: F) -> Result<()>
where
    F: FnOnce(akkord_management::client::ManagementClient) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let text = endpoint
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let address: SocketAddr = text
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .with_context(|| {
            format!(
                "invalid endpoint {:?} (from --endpoint or AKKORD_MANAGEMENT): expected host:port \
                 of a management server, e.g. 127.0.0.1:8558",
                endpoint.endpoint
            )
        })?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(f(akkord_management::client::ManagementClient::new(address)))
}
