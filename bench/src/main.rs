//! Benchmark of akkord's local actor runtime beside actix, ractor, kameo and bare tokio.
//!
//! Runs the Savina micro suite (PingPong, ThreadRing, Counting, Fork-Join throughput and
//! creation, Fibonacci, Chameneos, Big), spawn rate, resident memory per idle actor and ask
//! latency, with the same sizes for every framework, and prints one Markdown table.
//!
//! ```text
//! cargo run --release -- [--quick] [--only WORKLOAD[,..]] [--framework NAME[,..]]
//! ```
//!
//! `cargo run --release -- remote [--quick]` runs the remote benchmark between two processes
//! on loopback instead (see the `remote` module), and `cargo run --release -- demo [--quick]`
//! measures the `akkord demo` cluster (see the `demo` module).

#![forbid(unsafe_code)]

mod demo;
mod frameworks;
mod harness;
mod remote;
mod report;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use frameworks::{FrameworkId, Measurement};
use harness::{Sizes, Workload};
use report::{Cell, Row, Table, Unit};

/// Upper bound on one memory child process.
const MEMORY_TIMEOUT: Duration = Duration::from_secs(180);

const USAGE: &str = "\
usage: akkord-bench [--quick] [--only WORKLOAD[,WORKLOAD..]] [--framework NAME[,NAME..]]

  --quick        small sizes for a smoke run (under a minute)
  --only         run only these workloads: ping-pong, thread-ring, counting,
                 fork-join-throughput, fork-join-creation, fibonacci, chameneos, big,
                 spawn, memory, ask-latency
  --framework    run only these columns: akkord, actix, ractor, kameo, tokio

       akkord-bench remote [--quick] [--framework NAME[,NAME..]] [--workers N]
                 remote benchmark between two processes on loopback

       akkord-bench demo [--quick] [--input PATH]..
                 akkord demo throughput with 1, 2 and 3 nodes, and failover times";

/// Command-line options of a table run.
struct Options {
    quick: bool,
    workloads: Vec<Workload>,
    frameworks: Vec<FrameworkId>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-child") {
        return memory_child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--remote-child") {
        return remote::serve_child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("remote") {
        return remote::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("demo") {
        return demo::run(&args[1..]);
    }
    let options = parse_options(&args)?;
    run_table(&options)
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        quick: false,
        workloads: Workload::ALL.to_vec(),
        frameworks: FrameworkId::ALL.to_vec(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => {
                let list = args.next().context("--only needs a workload name")?;
                options.workloads = parse_list(list, Workload::parse)?;
            }
            "--framework" => {
                let list = args.next().context("--framework needs a framework name")?;
                options.frameworks = parse_list(list, FrameworkId::parse)?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(options)
}

fn parse_list<T>(list: &str, parse: fn(&str) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
    list.split(',').map(|name| parse(name.trim())).collect()
}

fn run_table(options: &Options) -> anyhow::Result<()> {
    let sizes = if options.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let started = Instant::now();
    let machine = report::machine_info();
    eprintln!("{machine}");

    let columns: Vec<FrameworkId> = FrameworkId::ALL
        .into_iter()
        .filter(|f| options.frameworks.contains(f))
        .collect();
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        if options.workloads.contains(&workload) {
            rows.extend(run_workload_rows(workload, &columns, &sizes));
        }
    }

    let table = Table {
        columns: columns.iter().map(|f| f.name()).collect(),
        rows,
    };
    println!("{machine}");
    println!("load average (1 min) at end: {}", report::load_average());
    println!("sizes: {}", describe_sizes(&sizes));
    println!(
        "runs: best of up to {} runs per cell (no new run after {:?} in that cell; \
         memory runs once), each run bounded by {:?}",
        sizes.max_runs, sizes.repeat_budget, sizes.cell_timeout
    );
    println!("total time: {:.0} s\n", started.elapsed().as_secs_f64());
    print!("{}", table.render());
    Ok(())
}

/// Runs one workload on every selected column and returns its rows (two for ask latency).
fn run_workload_rows(workload: Workload, columns: &[FrameworkId], sizes: &Sizes) -> Vec<Row> {
    let mut cells = Vec::new();
    for &framework in columns {
        eprint!("{} / {} ... ", workload.name(), framework.name());
        let begun = Instant::now();
        let cell = if workload == Workload::Memory {
            match run_memory_child(framework, sizes.idle_actors) {
                Ok(bytes) => Cell::Value(Measurement::Bytes(bytes)),
                Err(error) => Cell::Failed(format!("{error:#}")),
            }
        } else {
            frameworks::run(framework, workload, sizes)
        };
        eprintln!("{:.1} s", begun.elapsed().as_secs_f64());
        cells.push(cell);
    }
    rows_for(workload, sizes, cells)
}

fn rows_for(workload: Workload, sizes: &Sizes, cells: Vec<Cell<Measurement>>) -> Vec<Row> {
    let rate_row = |label: String| Row {
        label,
        unit: Unit::MillionsPerSecond,
        cells: cells
            .iter()
            .map(|cell| map_cell(cell, |m| rate(m).map(|r| r / 1e6)))
            .collect(),
    };
    match workload {
        Workload::PingPong => vec![rate_row("PingPong (M round trips/s)".into())],
        Workload::ThreadRing => vec![rate_row(format!(
            "ThreadRing, {} actors (M hops/s)",
            sizes.ring_actors
        ))],
        Workload::Counting => vec![rate_row("Counting (M msgs/s)".into())],
        Workload::ForkJoinThroughput => vec![rate_row(format!(
            "Fork-Join throughput, {} actors (M msgs/s)",
            sizes.fork_join_workers
        ))],
        Workload::ForkJoinCreation => {
            vec![rate_row("Fork-Join creation (M actors/s)".into())]
        }
        Workload::Fibonacci => vec![rate_row(format!(
            "Fibonacci fib({}), {} actors (M actors/s)",
            sizes.fibonacci_n,
            harness::fibonacci_calls(sizes.fibonacci_n)
        ))],
        Workload::Chameneos => vec![rate_row(format!(
            "Chameneos, {} chameneos (M meetings/s)",
            sizes.chameneos
        ))],
        Workload::Big => vec![rate_row(format!(
            "Big, {} actors (M msgs/s)",
            sizes.big_actors
        ))],
        Workload::Spawn => vec![rate_row("Spawn (M actors/s)".into())],
        Workload::Memory => vec![Row {
            label: "Memory per idle actor (bytes)".into(),
            unit: Unit::Bytes,
            cells: cells
                .iter()
                .map(|cell| {
                    map_cell(cell, |m| match m {
                        Measurement::Bytes(bytes) => Some(*bytes),
                        _ => None,
                    })
                })
                .collect(),
        }],
        Workload::AskLatency => {
            let percentile = |pick: fn(&harness::Latency) -> Duration, label: &str| Row {
                label: label.into(),
                unit: Unit::Micros,
                cells: cells
                    .iter()
                    .map(|cell| {
                        map_cell(cell, |m| match m {
                            Measurement::Latency(l) => Some(pick(l).as_secs_f64() * 1e6),
                            _ => None,
                        })
                    })
                    .collect(),
            };
            vec![
                percentile(|l| l.p50, "Ask latency p50 (µs)"),
                percentile(|l| l.p99, "Ask latency p99 (µs)"),
            ]
        }
    }
}

fn rate(measurement: &Measurement) -> Option<f64> {
    match measurement {
        Measurement::Rate(value) => Some(*value),
        _ => None,
    }
}

fn map_cell(cell: &Cell<Measurement>, f: impl Fn(&Measurement) -> Option<f64>) -> Cell<f64> {
    match cell {
        Cell::Value(m) => match f(m) {
            Some(value) => Cell::Value(value),
            None => Cell::Failed("the workload returned a measurement of another kind".into()),
        },
        Cell::Timeout(limit) => Cell::Timeout(*limit),
        Cell::Failed(message) => Cell::Failed(message.clone()),
    }
}

fn describe_sizes(sizes: &Sizes) -> String {
    format!(
        "PingPong {} round trips; ThreadRing {} hops; Counting {} msgs; \
         Fork-Join throughput {} x {} msgs; Fork-Join creation {} actors; Chameneos {} meetings; \
         Big {} x {} pings; Spawn {} actors; Memory {} idle actors; Ask {} timed after {} warm-up",
        sizes.ping_pong_round_trips,
        sizes.ring_hops,
        sizes.counting_messages,
        sizes.fork_join_workers,
        sizes.fork_join_messages_per_worker,
        sizes.fork_join_creations,
        sizes.chameneos_meetings,
        sizes.big_actors,
        sizes.big_pings_per_actor,
        sizes.spawn_actors,
        sizes.idle_actors,
        sizes.asks,
        sizes.asks,
    )
}

/// Runs the memory measurement of `framework` in a fresh child process of this binary, so
/// that memory kept by earlier runs (allocator caches, runtime threads) does not count.
fn run_memory_child(framework: FrameworkId, actors: usize) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let mut child = Command::new(exe)
        .args(["--memory-child", framework.name(), &actors.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the memory child process")?;
    let deadline = Instant::now() + MEMORY_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            bail!("the memory child process did not finish within {MEMORY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the memory child process exited with {}", output.status);
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("idle-actor-bytes="))
        .context("the memory child process printed no idle-actor-bytes= line")?
        .trim()
        .parse()
        .context("parsing the idle-actor-bytes= value")
}

/// Entry point of the child process: `--memory-child FRAMEWORK ACTORS`.
fn memory_child(args: &[String]) -> anyhow::Result<()> {
    let [framework, actors] = args else {
        bail!("--memory-child needs a framework name and an actor count");
    };
    let framework = FrameworkId::parse(framework)?;
    let actors: usize = actors
        .parse()
        .with_context(|| format!("invalid actor count `{actors}`"))?;
    let bytes = frameworks::idle_actor_bytes(framework, actors, MEMORY_TIMEOUT)?;
    println!("idle-actor-bytes={bytes}");
    Ok(())
}
