//! The `akkord` command-line program.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod demo;

/// akkord: an actor runtime with remoting and clustering.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Counts word frequencies of real text with a pool of actors and checks the result
    /// against a single-threaded count.
    Demo {
        /// Files or folders to read (plain text or .gz); default: /usr/share/common-licenses.
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
        /// Number of worker actors.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Lines per chunk handed to a worker.
        #[arg(long, default_value_t = 200)]
        chunk_lines: usize,
        /// Make every worker fail once after this many chunks, to show supervision
        /// restarting it and the lost chunk being handed out again; 0 disables it.
        #[arg(long, default_value_t = 5)]
        fail_worker_after: u64,
        /// How long a worker may take for one chunk before it is handed out again, in
        /// milliseconds.
        #[arg(long, default_value_t = 2000)]
        chunk_timeout_ms: u64,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Demo {
            inputs,
            workers,
            chunk_lines,
            fail_worker_after,
            chunk_timeout_ms,
        } => {
            let options = demo::Options {
                inputs,
                workers,
                chunk_lines,
                fail_worker_after,
                chunk_timeout: Duration::from_millis(chunk_timeout_ms),
            };
            let identical = runtime.block_on(demo::run(options))?;
            if !identical {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
