//! Remote benchmark: two processes of this binary on loopback, one serving and one
//! measuring, for each remoting framework in turn.
//!
//! Workloads: one-way throughput of 100-byte messages and sequential ask round trips (p50,
//! p99, p99.9). For tokio and akkord, [`RemoteSizes::askers`] tasks also ask concurrently
//! (asks/s). For akkord, control-lane round trips (heartbeats) are timed with the large lane
//! idle and while 1 MiB messages stream on it.
//!
//! The tokio column is a bare TCP connection with batched writes and no actors. It is the
//! baseline the goals are set against.
//!
//! The one-way sender keeps an acknowledged window: the receiver acknowledges every
//! [`ACK_EVERY`] messages and the sender keeps at most [`WINDOW`] unacknowledged. A framework
//! whose plain tell drops messages under load is thus not credited with messages it lost,
//! and every drop the framework reports is counted.
//!
//! Both processes run a multi-threaded tokio runtime with one worker thread per core, or
//! with the number given by `--workers`.
//!
//! ```text
//! cargo run --release -- remote [--quick] [--framework NAME[,NAME..]] [--workers N]
//! ```

mod akkord_node;
mod child;
mod kameo_node;
mod ractor_node;
mod tokio_node;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::report;

/// Payload size of the one-way messages, in bytes.
pub(crate) const PAYLOAD: usize = 100;
/// The receiver acknowledges every this many messages.
pub(crate) const ACK_EVERY: u64 = 500;
/// Messages in flight at most: below akkord's ordinary lane queue of 3072, so none is dropped.
pub(crate) const WINDOW: u64 = 2500;
/// Upper bound on one ask.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Goal for one-way throughput, in messages per second.
const GOAL_ONE_WAY: f64 = 3_000_000.0;
/// Goal for the median ask round trip.
const GOAL_ASK_P50: Duration = Duration::from_micros(30);
/// Goal for concurrent asks, in asks per second.
const GOAL_CONCURRENT: f64 = 250_000.0;

const USAGE: &str = "\
usage: akkord-bench remote [--quick] [--framework NAME[,NAME..]] [--workers N] [--asks-only N]

  --quick        small sizes for a smoke run
  --framework    run only these columns: tokio, akkord, kameo, ractor_cluster
  --workers      worker threads of each process's tokio runtime (default: one per core)
  --asks-only    run N sequential asks and nothing else, after a warm-up of N/10, and print
                 their median and mean (tokio and akkord only); a steady load for profilers";

/// A remoting framework with a column in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RemoteFramework {
    /// A bare tokio TCP connection with batched writes, the baseline.
    Tokio,
    /// akkord-remote.
    Akkord,
    /// kameo's `remote` feature (libp2p).
    Kameo,
    /// ractor_cluster.
    RactorCluster,
}

impl RemoteFramework {
    /// Every framework, in column order, with the baseline first.
    const ALL: [RemoteFramework; 4] = [
        RemoteFramework::Tokio,
        RemoteFramework::Akkord,
        RemoteFramework::Kameo,
        RemoteFramework::RactorCluster,
    ];

    /// Column and command-line name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RemoteFramework::Tokio => "tokio",
            RemoteFramework::Akkord => "akkord",
            RemoteFramework::Kameo => "kameo",
            RemoteFramework::RactorCluster => "ractor_cluster",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .with_context(|| {
                format!(
                    "unknown remote framework `{name}`; try tokio, akkord, kameo or ractor_cluster"
                )
            })
    }
}

/// Sizes and bounds of one remote run.
#[derive(Clone, Debug)]
pub(crate) struct RemoteSizes {
    /// One-way messages sent (rounded down to a multiple of [`ACK_EVERY`]).
    pub messages: u64,
    /// Sequential asks timed.
    pub asks: usize,
    /// Concurrent asking tasks.
    pub askers: usize,
    /// Asks of each concurrent task.
    pub asks_per_asker: usize,
    /// Control-lane round trips timed with the large lane idle.
    pub idle_pings: usize,
    /// 1 MiB messages streamed on the large lane while control round trips are timed.
    pub large_messages: u64,
    /// Upper bound on each workload.
    pub limit: Duration,
}

impl RemoteSizes {
    fn full() -> Self {
        Self {
            messages: 1_000_000,
            asks: 20_000,
            askers: 64,
            asks_per_asker: 2_000,
            idle_pings: 2_000,
            large_messages: 256,
            limit: Duration::from_secs(60),
        }
    }

    fn quick() -> Self {
        Self {
            messages: 100_000,
            asks: 2_000,
            askers: 64,
            asks_per_asker: 200,
            idle_pings: 200,
            large_messages: 16,
            limit: Duration::from_secs(20),
        }
    }
}

/// Result of the one-way workload.
#[derive(Clone, Debug)]
pub(crate) struct OneWay {
    /// Messages sent and acknowledged.
    pub messages: u64,
    /// Time from the first send to the last acknowledgement.
    pub elapsed: Duration,
    /// Messages the framework reported as dropped during the run.
    pub dropped: u64,
}

/// Result of the control-lane workload.
#[derive(Clone, Debug)]
pub(crate) struct ControlLatency {
    /// Round trips with the large lane idle.
    pub idle: Vec<Duration>,
    /// Round trips while large messages streamed.
    pub busy: Vec<Duration>,
    /// Large messages sent and acknowledged.
    pub large_messages: u64,
    /// Time from the first large message to the last acknowledgement.
    pub stream_elapsed: Duration,
    /// Large messages the transport dropped on a full queue.
    pub dropped: u64,
}

/// Everything one framework measured.
#[derive(Debug)]
pub(crate) struct Measured {
    /// One-way throughput.
    pub one_way: anyhow::Result<OneWay>,
    /// Round trip of every sequential ask.
    pub asks: anyhow::Result<Vec<Duration>>,
    /// Concurrent asks per second, for the frameworks that run that workload.
    pub concurrent: Option<anyhow::Result<f64>>,
    /// Control-lane round trips, for the frameworks that run that workload.
    pub control: Option<anyhow::Result<ControlLatency>>,
}

/// Round-trip percentiles by nearest rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest sample.
    pub max: Duration,
}

impl Percentiles {
    /// Computes the percentiles of `samples`, or `None` when there are none.
    pub(crate) fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |per_mille: usize| samples[(samples.len() * per_mille).div_ceil(1000) - 1];
        Some(Self {
            p50: rank(500),
            p99: rank(990),
            p999: rank(999),
            max: samples[samples.len() - 1],
        })
    }
}

/// Prints the line through which a serving child tells its parent where to connect.
pub(crate) fn announce(address: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}{address}", child::ADDRESS_PREFIX)?;
    stdout.flush()?;
    Ok(())
}

/// Entry point of `remote`: parses `args` (after the subcommand), runs every selected
/// framework and prints the table.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut sizes = RemoteSizes::full();
    let mut frameworks = RemoteFramework::ALL.to_vec();
    let mut workers = None;
    let mut asks_only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => sizes = RemoteSizes::quick(),
            "--framework" => {
                let list = args.next().context("--framework needs a framework name")?;
                frameworks = list
                    .split(',')
                    .map(|name| RemoteFramework::parse(name.trim()))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--workers" => {
                let count = args
                    .next()
                    .context("--workers is missing its thread count, such as `--workers 1`")?;
                workers = Some(parse_workers(count)?);
            }
            "--asks-only" => {
                let count = args
                    .next()
                    .context("--asks-only is missing its ask count, such as `--asks-only 20000`")?;
                asks_only = Some(parse_ask_count(count)?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if let Some(asks) = asks_only {
        return run_asks_only(&frameworks, asks, workers, sizes.limit);
    }
    let started = Instant::now();
    let machine = report::machine_info();
    eprintln!("{machine}");
    let mut results = Vec::new();
    for framework in frameworks {
        eprint!("remote / {} ... ", framework.name());
        let begun = Instant::now();
        let measured = measure(framework, &sizes, workers);
        eprintln!("{:.1} s", begun.elapsed().as_secs_f64());
        results.push((framework, measured));
    }
    println!("{machine}");
    println!("load average (1 min) at end: {}", report::load_average());
    match workers {
        Some(count) => println!("tokio worker threads per process: {count}"),
        None => println!(
            "tokio worker threads per process: one per core ({})",
            std::thread::available_parallelism().map_or(1, |cores| cores.get())
        ),
    }
    println!(
        "sizes: one-way {} messages of {PAYLOAD} bytes, acknowledged every {ACK_EVERY}, \
         window {WINDOW}; {} sequential asks after {} warm-up; {} askers x {} asks; \
         control-lane round trips: {} with the large lane idle, then while {} messages of \
         {} bytes stream on it (a pause of {:?} after each round trip); \
         each workload bounded by {:?}",
        sizes.messages,
        sizes.asks,
        sizes.asks / 10 + 1,
        sizes.askers,
        sizes.asks_per_asker,
        sizes.idle_pings,
        sizes.large_messages,
        akkord_node::LARGE_PAYLOAD,
        akkord_node::PING_PAUSE,
        sizes.limit
    );
    if results.iter().any(|(f, _)| *f == RemoteFramework::Tokio) {
        println!("{}", tokio_node::note());
    }
    if results.iter().any(|(f, _)| *f == RemoteFramework::Kameo) {
        println!("{}", kameo_node::note(&sizes));
    }
    if results
        .iter()
        .any(|(f, _)| *f == RemoteFramework::RactorCluster)
    {
        println!("{}", ractor_node::note());
    }
    println!("total time: {:.0} s\n", started.elapsed().as_secs_f64());
    print!("{}", render(&results, &sizes));
    Ok(())
}

/// Runs only `asks` sequential asks against each of `frameworks` and prints one line per
/// framework with the median and the mean round trip.
fn run_asks_only(
    frameworks: &[RemoteFramework],
    asks: usize,
    workers: Option<usize>,
    limit: Duration,
) -> anyhow::Result<()> {
    for &framework in frameworks {
        if !matches!(framework, RemoteFramework::Tokio | RemoteFramework::Akkord) {
            bail!(
                "--asks-only runs tokio and akkord only, not {}: pass --framework tokio,akkord",
                framework.name()
            );
        }
    }
    for &framework in frameworks {
        let server = child::Child::start(framework, workers)?;
        let runtime = build_runtime(workers).context("building the measuring runtime")?;
        let address = server.address().to_owned();
        let work = async move {
            match framework {
                RemoteFramework::Akkord => akkord_node::measure_asks(&address, asks, limit).await,
                _ => tokio_node::measure_asks(&address, asks, limit).await,
            }
        };
        let latencies = runtime.block_on(async {
            match tokio::time::timeout(limit * 2, tokio::spawn(work)).await {
                Ok(Ok(latencies)) => latencies,
                Ok(Err(join)) => Err(anyhow::anyhow!("the measuring task failed: {join}")),
                Err(_) => bail!("the asks did not finish within {:?}", limit * 2),
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
        server.stop();
        let mut latencies = latencies?;
        let mean = latencies.iter().sum::<Duration>() / asks as u32;
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2];
        println!(
            "{}: {asks} sequential asks, median {:.1} µs, mean {:.1} µs",
            framework.name(),
            median.as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6
        );
    }
    Ok(())
}

/// Parses the value of `--asks-only`: a count of at least one.
fn parse_ask_count(count: &str) -> anyhow::Result<usize> {
    match count.parse::<usize>() {
        Ok(count) if (1..=u32::MAX as usize).contains(&count) => Ok(count),
        _ => bail!("invalid --asks-only value `{count}`: give a whole number of asks, at least 1"),
    }
}

/// Parses the value of `--workers`: a thread count of at least one.
fn parse_workers(count: &str) -> anyhow::Result<usize> {
    match count.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => bail!("invalid --workers value `{count}`: give a whole number of threads, at least 1"),
    }
}

/// Builds a multi-threaded runtime with `workers` worker threads, or one per core.
fn build_runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(count) = workers {
        builder.worker_threads(count);
    }
    builder.enable_all().build()
}

/// Starts the serving child for `framework`, measures against it and stops it. Both
/// processes run `workers` worker threads, or one per core.
fn measure(
    framework: RemoteFramework,
    sizes: &RemoteSizes,
    workers: Option<usize>,
) -> anyhow::Result<Measured> {
    let server = child::Child::start(framework, workers)?;
    let runtime = build_runtime(workers).context("building the measuring runtime")?;
    let address = server.address().to_owned();
    let owned_sizes = sizes.clone();
    // The workloads run as a task of the runtime, as an actor's or a service's code would.
    // A reply then wakes a task on a worker thread, not the parked thread in `block_on`.
    let work = async move {
        let sizes = &owned_sizes;
        match framework {
            RemoteFramework::Tokio => tokio_node::measure(&address, sizes).await,
            RemoteFramework::Akkord => akkord_node::measure(&address, sizes).await,
            RemoteFramework::Kameo => kameo_node::measure(&address, sizes).await,
            RemoteFramework::RactorCluster => ractor_node::measure(&address, sizes).await,
        }
    };
    let limit = sizes.limit * 6;
    let measured = runtime.block_on(async {
        // Four workloads, a warm-up and connection set-up, each bounded by the limit.
        match tokio::time::timeout(limit, tokio::spawn(work)).await {
            Ok(Ok(measured)) => measured,
            Ok(Err(join)) => Err(anyhow::anyhow!("the measuring task failed: {join}")),
            Err(_) => bail!("the run did not finish within {limit:?}"),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    measured
}

/// Entry point of a serving child: `--remote-child FRAMEWORK [--workers N]`. Serves until
/// its standard input closes or [`child::CHILD_LIFETIME`] passes.
pub(crate) fn serve_child(args: &[String]) -> anyhow::Result<()> {
    let (framework, workers) = match args {
        [framework] => (framework, None),
        [framework, flag, count] if flag == "--workers" => (framework, Some(parse_workers(count)?)),
        _ => bail!("invalid --remote-child arguments: give a framework name, optionally followed by --workers N"),
    };
    let framework = RemoteFramework::parse(framework)?;
    let runtime = build_runtime(workers).context("building the serving runtime")?;
    runtime.block_on(async {
        let stop = child::parent_gone();
        match framework {
            RemoteFramework::Tokio => tokio_node::serve(stop).await,
            RemoteFramework::Akkord => akkord_node::serve(stop).await,
            RemoteFramework::Kameo => kameo_node::serve(stop).await,
            RemoteFramework::RactorCluster => ractor_node::serve(stop).await,
        }
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

fn render(results: &[(RemoteFramework, anyhow::Result<Measured>)], sizes: &RemoteSizes) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut failures = Vec::new();
    let _ = write!(out, "| Workload |");
    for (framework, _) in results {
        let _ = write!(out, " {} |", framework.name());
    }
    let _ = write!(out, "\n|---|");
    for _ in results {
        let _ = write!(out, "---:|");
    }
    out.push('\n');

    let mut row = |label: &str, cell: &dyn Fn(&Measured) -> Result<String, String>| {
        let _ = write!(out, "| {label} |");
        for (framework, measured) in results {
            let text = match measured {
                Ok(measured) => cell(measured),
                Err(error) => Err(format!("{error:#}")),
            };
            match text {
                Ok(text) => {
                    let _ = write!(out, " {text} |");
                }
                Err(error) => {
                    let _ = write!(out, " failed |");
                    failures.push(format!("{label} / {}: {error}", framework.name()));
                }
            }
        }
        out.push('\n');
    };
    let one_way = |m: &Measured| -> Result<OneWay, String> {
        m.one_way.as_ref().cloned().map_err(|e| format!("{e:#}"))
    };
    let percentiles = |m: &Measured| -> Result<Percentiles, String> {
        match &m.asks {
            Ok(samples) => Percentiles::of(samples.clone()).ok_or("no asks".into()),
            Err(e) => Err(format!("{e:#}")),
        }
    };
    row("One-way 100 B (M msgs/s)", &|m| {
        one_way(m).map(|o| format!("{:.3}", o.messages as f64 / o.elapsed.as_secs_f64() / 1e6))
    });
    row("One-way dropped (msgs)", &|m| {
        one_way(m).map(|o| o.dropped.to_string())
    });
    row("Ask p50 (µs)", &|m| percentiles(m).map(|p| micros(p.p50)));
    row("Ask p99 (µs)", &|m| percentiles(m).map(|p| micros(p.p99)));
    row("Ask p99.9 (µs)", &|m| {
        percentiles(m).map(|p| micros(p.p999))
    });
    let askers_label = format!("{} concurrent askers (k asks/s)", sizes.askers);
    row(&askers_label, &|m| match &m.concurrent {
        None => Ok("not run".into()),
        Some(Ok(rate)) => Ok(format!("{:.1}", rate / 1e3)),
        Some(Err(e)) => Err(format!("{e:#}")),
    });
    let control = |m: &Measured, pick: fn(&ControlLatency) -> &Vec<Duration>| match &m.control {
        None => Ok("not run".to_owned()),
        Some(Ok(c)) => Percentiles::of(pick(c).clone())
            .map(|p| {
                let (p50, p99, max) = (micros(p.p50), micros(p.p99), micros(p.max));
                format!("{p50} / {p99} / {max} ({} samples)", pick(c).len())
            })
            .ok_or_else(|| "no round trips".to_owned()),
        Some(Err(e)) => Err(format!("{e:#}")),
    };
    row(
        "Control RTT, large lane idle: p50 / p99 / max (µs)",
        &|m| control(m, |c| &c.idle),
    );
    row(
        "Control RTT, 1 MiB streaming: p50 / p99 / max (µs)",
        &|m| control(m, |c| &c.busy),
    );
    row("1 MiB stream (MiB/s, dropped)", &|m| match &m.control {
        None => Ok("not run".to_owned()),
        Some(Ok(c)) => Ok(format!(
            "{:.0}, {}",
            c.large_messages as f64 / c.stream_elapsed.as_secs_f64(),
            c.dropped
        )),
        Some(Err(e)) => Err(format!("{e:#}")),
    });
    out.push('\n');
    for failure in failures {
        let _ = writeln!(out, "- {failure}");
    }
    if let Some((_, Ok(akkord))) = results.iter().find(|(f, _)| *f == RemoteFramework::Akkord) {
        out.push_str(&goals(akkord));
    }
    out
}

fn micros(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

/// One line per goal: whether akkord meets it and by what factor it misses.
fn goals(akkord: &Measured) -> String {
    let mut out = String::from("\nGoals (akkord):\n");
    let verdict = |met: bool, factor: f64| {
        if met {
            "met".to_owned()
        } else {
            format!("missed by {factor:.1}x")
        }
    };
    if let Ok(o) = &akkord.one_way {
        let rate = o.messages as f64 / o.elapsed.as_secs_f64();
        out.push_str(&format!(
            "- one way >= {:.1} M msgs/s: {:.3} M, {}\n",
            GOAL_ONE_WAY / 1e6,
            rate / 1e6,
            verdict(rate >= GOAL_ONE_WAY, GOAL_ONE_WAY / rate)
        ));
    }
    if let Some(p) = akkord
        .asks
        .as_ref()
        .ok()
        .and_then(|s| Percentiles::of(s.clone()))
    {
        out.push_str(&format!(
            "- ask p50 <= {} µs: {} µs, {}\n",
            GOAL_ASK_P50.as_micros(),
            micros(p.p50),
            verdict(
                p.p50 <= GOAL_ASK_P50,
                p.p50.as_secs_f64() / GOAL_ASK_P50.as_secs_f64()
            )
        ));
    }
    if let Some(Ok(rate)) = &akkord.concurrent {
        out.push_str(&format!(
            "- 64 askers >= {:.0} k asks/s: {:.1} k, {}\n",
            GOAL_CONCURRENT / 1e3,
            rate / 1e3,
            verdict(*rate >= GOAL_CONCURRENT, GOAL_CONCURRENT / rate)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples = (1..=1000).rev().map(Duration::from_micros).collect();
        let p = Percentiles::of(samples).unwrap();
        assert_eq!(p.p50, Duration::from_micros(500));
        assert_eq!(p.p99, Duration::from_micros(990));
        assert_eq!(p.p999, Duration::from_micros(999));
        assert_eq!(p.max, Duration::from_micros(1000));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }

    #[test]
    fn goals_report_the_missing_factor() {
        let measured = Measured {
            one_way: Ok(OneWay {
                messages: 1_000_000,
                elapsed: Duration::from_secs(1),
                dropped: 0,
            }),
            asks: Ok(vec![Duration::from_micros(60); 10]),
            concurrent: Some(Ok(500_000.0)),
            control: None,
        };
        let text = goals(&measured);
        assert!(text.contains("1.000 M, missed by 3.0x"), "{text}");
        assert!(text.contains("60.0 µs, missed by 2.0x"), "{text}");
        assert!(text.contains("500.0 k, met"), "{text}");
    }

    #[test]
    fn unknown_framework_is_refused() {
        assert!(RemoteFramework::parse("akka").is_err());
        assert_eq!(
            RemoteFramework::parse("akkord").unwrap(),
            RemoteFramework::Akkord
        );
        assert_eq!(
            RemoteFramework::parse("tokio").unwrap(),
            RemoteFramework::Tokio
        );
    }

    #[test]
    fn ask_count_must_be_positive() {
        assert_eq!(parse_ask_count("20000").unwrap(), 20_000);
        for bad in ["0", "-5", "many", "", "99999999999"] {
            let error = parse_ask_count(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn worker_count_must_be_positive() {
        assert_eq!(parse_workers("1").unwrap(), 1);
        for bad in ["0", "-1", "two", ""] {
            let error = parse_workers(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }
}
