//! Workload list, sizes, the framework trait each column implements, and the shared helpers
//! (completion latch, latency percentiles, resident memory, Fibonacci checks).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::Notify;

/// One benchmark of the suite, selectable with `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Two actors pass one message back and forth.
    PingPong,
    /// A token travels around a ring of actors.
    ThreadRing,
    /// One driver sends many messages to one counting actor.
    Counting,
    /// One driver sends messages round-robin to many workers.
    ForkJoinThroughput,
    /// Each message goes to a freshly spawned actor that stops after it.
    ForkJoinCreation,
    /// Each call of a recursive Fibonacci is an actor that spawns two children.
    Fibonacci,
    /// Chameneos meet in pairs through one mall actor.
    Chameneos,
    /// Many actors ping random neighbours, which reply with a pong.
    Big,
    /// Actors spawned and started per second.
    Spawn,
    /// Resident memory per idle actor, measured in a child process.
    Memory,
    /// Sequential request-reply latency to one actor.
    AskLatency,
}

impl Workload {
    /// Every workload in table order.
    pub const ALL: [Workload; 11] = [
        Workload::PingPong,
        Workload::ThreadRing,
        Workload::Counting,
        Workload::ForkJoinThroughput,
        Workload::ForkJoinCreation,
        Workload::Fibonacci,
        Workload::Chameneos,
        Workload::Big,
        Workload::Spawn,
        Workload::Memory,
        Workload::AskLatency,
    ];

    /// Returns the name accepted by `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::PingPong => "ping-pong",
            Workload::ThreadRing => "thread-ring",
            Workload::Counting => "counting",
            Workload::ForkJoinThroughput => "fork-join-throughput",
            Workload::ForkJoinCreation => "fork-join-creation",
            Workload::Fibonacci => "fibonacci",
            Workload::Chameneos => "chameneos",
            Workload::Big => "big",
            Workload::Spawn => "spawn",
            Workload::Memory => "memory",
            Workload::AskLatency => "ask-latency",
        }
    }

    /// Parses a name accepted by `--only`.
    ///
    /// # Errors
    ///
    /// Returns an error listing the valid names when `name` matches none of them.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match Self::ALL.into_iter().find(|w| w.name() == name) {
            Some(workload) => Ok(workload),
            None => {
                let names: Vec<_> = Self::ALL.iter().map(|w| w.name()).collect();
                bail!(
                    "unknown workload `{name}`; expected one of: {}",
                    names.join(", ")
                )
            }
        }
    }
}

/// Problem sizes of one run; the same sizes apply to every framework.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Round trips in PingPong.
    pub ping_pong_round_trips: u64,
    /// Actors in the ThreadRing ring.
    pub ring_actors: usize,
    /// Token hops in ThreadRing.
    pub ring_hops: u64,
    /// Messages sent to the Counting actor.
    pub counting_messages: u64,
    /// Workers in Fork-Join throughput.
    pub fork_join_workers: usize,
    /// Messages per worker in Fork-Join throughput.
    pub fork_join_messages_per_worker: u64,
    /// Actors created in Fork-Join creation.
    pub fork_join_creations: u64,
    /// Argument of the Fibonacci actor tree.
    pub fibonacci_n: u32,
    /// Chameneos taking part in Chameneos; below 64, kameo's default mailbox capacity, so
    /// that the mall's mailbox never fills.
    pub chameneos: usize,
    /// Meetings arranged by the mall in Chameneos.
    pub chameneos_meetings: u64,
    /// Actors in Big; below 64, kameo's default mailbox capacity, so that no mailbox fills.
    pub big_actors: usize,
    /// Pings each actor sends in Big.
    pub big_pings_per_actor: u64,
    /// Actors spawned in the spawn-rate workload.
    pub spawn_actors: u64,
    /// Idle actors held in the memory child process.
    pub idle_actors: usize,
    /// Timed requests in the ask latency workload, after as many untimed warm-up requests.
    pub asks: u64,
    /// Upper bound on one framework's run of one workload; past it the cell reads `timeout`.
    pub cell_timeout: Duration,
    /// Runs of each cell, of which the best is reported; the memory cell always runs once.
    pub max_runs: usize,
    /// No further run of a cell starts once its runs have taken this long.
    pub repeat_budget: Duration,
}

impl Sizes {
    /// Sizes of the full suite, about five minutes on two cores for all five frameworks.
    pub fn full() -> Self {
        Self {
            ping_pong_round_trips: 500_000,
            ring_actors: 100,
            ring_hops: 1_000_000,
            counting_messages: 1_000_000,
            fork_join_workers: 50,
            fork_join_messages_per_worker: 20_000,
            fork_join_creations: 100_000,
            fibonacci_n: 24,
            chameneos: 50,
            chameneos_meetings: 200_000,
            big_actors: 50,
            big_pings_per_actor: 20_000,
            spawn_actors: 200_000,
            idle_actors: 1_000_000,
            asks: 100_000,
            cell_timeout: Duration::from_secs(60),
            max_runs: 3,
            repeat_budget: Duration::from_secs(3),
        }
    }

    /// Sizes of the `--quick` smoke run, under a minute.
    pub fn quick() -> Self {
        Self {
            ping_pong_round_trips: 20_000,
            ring_actors: 100,
            ring_hops: 50_000,
            counting_messages: 50_000,
            fork_join_workers: 50,
            fork_join_messages_per_worker: 1_000,
            fork_join_creations: 10_000,
            fibonacci_n: 16,
            chameneos: 50,
            chameneos_meetings: 10_000,
            big_actors: 50,
            big_pings_per_actor: 1_000,
            spawn_actors: 10_000,
            idle_actors: 50_000,
            asks: 5_000,
            cell_timeout: Duration::from_secs(20),
            max_runs: 1,
            repeat_budget: Duration::ZERO,
        }
    }
}

/// Percentiles of a latency sample.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Latency {
    /// Computes the percentiles of `samples` by nearest rank.
    ///
    /// # Errors
    ///
    /// Returns an error when `samples` is empty.
    pub fn from_samples(mut samples: Vec<Duration>) -> anyhow::Result<Self> {
        if samples.is_empty() {
            bail!("no latency samples were recorded; run with a positive ask count");
        }
        samples.sort_unstable();
        let rank = |percent: usize| samples[(samples.len() * percent).div_ceil(100) - 1];
        Ok(Self {
            p50: rank(50),
            p99: rank(99),
        })
    }
}

/// The workloads of the suite, written once per framework.
///
/// Each method returns the elapsed time of its timed part and checks its own result (a count,
/// a Fibonacci value), returning an error when the result is wrong. Setup that the workload
/// does not measure (spawning the ring, handing out neighbour lists) happens before the clock
/// starts. Each method runs inside [`Framework::block_on`] on a fresh runtime, so actors left
/// behind by one workload end when that runtime is dropped. The driver (the code that sends
/// the first messages and waits for the result) runs as a task of that runtime, as a caller
/// inside an application would.
pub trait Framework {
    /// Column name, also accepted by `--framework`.
    const NAME: &'static str;

    /// Runs `future` to completion as a task of a fresh runtime with the framework's default
    /// setup.
    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send;

    /// PingPong: `round_trips` ping and pong exchanges between two actors.
    fn ping_pong(round_trips: u64) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// ThreadRing: one token passed `hops` times around a ring of `actors`.
    fn thread_ring(
        actors: usize,
        hops: u64,
    ) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Counting: `messages` increments sent to one actor, then one request for the total.
    fn counting(messages: u64) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Fork-Join throughput: `messages_per_worker` messages to each of `workers`, round-robin.
    fn fork_join_throughput(
        workers: usize,
        messages_per_worker: u64,
    ) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Fork-Join creation: `actors` actors each spawned, sent one message, and stopped.
    fn fork_join_creation(actors: u64) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Fibonacci: computes fib(`n`) with one actor per call.
    fn fibonacci(n: u32) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Chameneos: `chameneos` creatures meet `meetings` times through one mall.
    fn chameneos(
        chameneos: usize,
        meetings: u64,
    ) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Big: each of `actors` sends `pings_per_actor` pings to random neighbours, one at a
    /// time, and each ping gets a pong in reply.
    fn big(
        actors: usize,
        pings_per_actor: u64,
    ) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Spawn rate: spawns `actors` actors and waits until each has started.
    fn spawn(actors: u64) -> impl Future<Output = anyhow::Result<Duration>> + Send;

    /// Ask latency: `asks` sequential request-reply round trips to one actor, each timed,
    /// after `asks` untimed warm-up round trips.
    fn ask_latency(asks: u64) -> impl Future<Output = anyhow::Result<Vec<Duration>>> + Send;

    /// Memory: spawns `actors` idle actors without user state, waits until all have started,
    /// and returns the growth of resident memory divided by `actors`, in bytes.
    fn idle_actor_bytes(actors: usize) -> impl Future<Output = anyhow::Result<f64>> + Send;
}

/// A countdown that one task awaits until other tasks have counted it to zero.
pub struct Latch {
    remaining: AtomicUsize,
    notify: Notify,
}

impl Latch {
    /// Creates a latch that opens after `count` calls of [`Latch::count_down`].
    pub fn new(count: usize) -> Self {
        Self {
            remaining: AtomicUsize::new(count),
            notify: Notify::new(),
        }
    }

    /// Counts down by one and wakes the waiter when the count reaches zero.
    pub fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_one();
        }
    }

    /// Waits until the count reaches zero.
    pub async fn wait(&self) {
        while self.remaining.load(Ordering::Acquire) != 0 {
            self.notify.notified().await;
        }
    }
}

/// Number of idle actors whose start hook has run, in the memory child process.
pub static IDLE_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Marks one idle actor as started.
pub fn idle_actor_started() {
    IDLE_STARTED.fetch_add(1, Ordering::Relaxed);
}

/// Waits until `actors` idle actors have run their start hook, polling every millisecond.
///
/// # Errors
///
/// Returns an error when they have not all started within 120 seconds.
pub async fn wait_idle_started(actors: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while IDLE_STARTED.load(Ordering::Relaxed) < actors {
        if Instant::now() > deadline {
            bail!(
                "only {} of {actors} idle actors started within 120 s",
                IDLE_STARTED.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Reads this process's resident set size in bytes from `/proc/self/statm`.
///
/// # Errors
///
/// Returns an error when the file cannot be read or parsed.
pub fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("reading /proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("/proc/self/statm has no resident field")?
        .parse()
        .context("parsing the resident field of /proc/self/statm")?;
    Ok(pages * page_size())
}

/// Returns the memory page size from `getconf PAGESIZE`, or 4096 when that fails.
fn page_size() -> u64 {
    std::process::Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096)
}

/// Returns the resident-memory growth per actor between `before` and now.
///
/// # Errors
///
/// Returns an error when the resident size cannot be read.
pub fn bytes_per_actor(before: u64, actors: usize) -> anyhow::Result<f64> {
    let after = resident_bytes()?;
    Ok(after.saturating_sub(before) as f64 / actors as f64)
}

/// Returns fib(`n`) with fib(0) = 0 and fib(1) = 1.
pub fn fibonacci_value(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// Returns how many calls, and so actors, the recursive fib(`n`) makes.
pub fn fibonacci_calls(n: u32) -> u64 {
    // calls(n) = 1 + calls(n - 1) + calls(n - 2), with calls(0) = calls(1) = 1.
    let (mut previous, mut current) = (1u64, 1u64);
    for _ in 1..n {
        (previous, current) = (current, 1 + current + previous);
    }
    current
}

/// Checks the value an actor tree computed for fib(`n`).
///
/// # Errors
///
/// Returns an error naming both values when they differ.
pub fn check_fibonacci(n: u32, computed: u64) -> anyhow::Result<()> {
    let expected = fibonacci_value(n);
    if computed != expected {
        bail!("fib({n}) computed {computed}, expected {expected}");
    }
    Ok(())
}

/// Checks a count that an actor reports back.
///
/// # Errors
///
/// Returns an error naming both counts when they differ.
pub fn check_count(what: &str, counted: u64, expected: u64) -> anyhow::Result<()> {
    if counted != expected {
        bail!("{what}: counted {counted}, expected {expected}");
    }
    Ok(())
}

/// A xorshift64* generator, one per Big actor, so picking a neighbour takes no lock.
pub struct NeighbourPicker {
    state: u64,
}

impl NeighbourPicker {
    /// Creates a picker seeded from the actor's index.
    pub fn new(index: usize) -> Self {
        Self {
            state: (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Picks an index in `0..actors` other than `own`.
    pub fn pick(&mut self, own: usize, actors: usize) -> usize {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let index = (random % (actors as u64 - 1)) as usize;
        if index >= own {
            index + 1
        } else {
            index
        }
    }
}

/// Colour of a chameneo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// Blue.
    Blue,
    /// Red.
    Red,
    /// Yellow.
    Yellow,
}

impl Colour {
    /// Returns the starting colour of the chameneo with this index.
    pub fn for_index(index: usize) -> Self {
        [Colour::Blue, Colour::Red, Colour::Yellow][index % 3]
    }

    /// Returns the colour after meeting a chameneo of colour `other`: unchanged when equal,
    /// else the third colour.
    pub fn complement(self, other: Colour) -> Self {
        match (self, other) {
            (a, b) if a == b => a,
            (Colour::Blue, Colour::Red) | (Colour::Red, Colour::Blue) => Colour::Yellow,
            (Colour::Blue, Colour::Yellow) | (Colour::Yellow, Colour::Blue) => Colour::Red,
            _ => Colour::Blue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fibonacci_value_small() {
        let values: Vec<u64> = (0..8).map(fibonacci_value).collect();
        assert_eq!(values, [0, 1, 1, 2, 3, 5, 8, 13]);
    }

    #[test]
    fn fibonacci_calls_match_recursion() {
        fn calls(n: u32) -> u64 {
            if n < 2 {
                1
            } else {
                1 + calls(n - 1) + calls(n - 2)
            }
        }
        for n in 0..20 {
            assert_eq!(fibonacci_calls(n), calls(n), "n = {n}");
        }
    }

    #[test]
    fn latency_percentiles_nearest_rank() {
        let samples = (1..=100).map(Duration::from_micros).collect();
        let latency = Latency::from_samples(samples).unwrap();
        assert_eq!(latency.p50, Duration::from_micros(50));
        assert_eq!(latency.p99, Duration::from_micros(99));
    }

    #[test]
    fn picker_never_picks_own_index() {
        let mut picker = NeighbourPicker::new(3);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let index = picker.pick(3, 5);
            assert_ne!(index, 3);
            seen[index] = true;
        }
        assert_eq!(seen, [true, true, true, false, true]);
    }

    #[test]
    fn colour_complement_rules() {
        assert_eq!(Colour::Red.complement(Colour::Red), Colour::Red);
        assert_eq!(Colour::Blue.complement(Colour::Red), Colour::Yellow);
        assert_eq!(Colour::Yellow.complement(Colour::Red), Colour::Blue);
        assert_eq!(Colour::Yellow.complement(Colour::Blue), Colour::Red);
    }
}
