//! `akkord demo`: word frequencies of real text, counted by actors, checked against a
//! single-threaded count.
//!
//! A master actor splits the input into chunks and hands them to worker actors that pull
//! work when idle. Workers are restarted by supervision when they fail; a chunk whose result
//! does not arrive within the chunk timeout is handed out again, and the collector drops
//! duplicate results by chunk id, so every chunk is counted exactly once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::{
    Actor, ActorError, ActorRef, ActorResult, ActorSystem, Context, Props, SupervisorStrategy,
};
use anyhow::{bail, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::text::{count_words, report, Counts, Input, Progress};

/// Settings of one demo run.
pub struct Options {
    pub inputs: Vec<PathBuf>,
    pub workers: usize,
    pub chunk_lines: usize,
    pub fail_worker_after: u64,
    pub chunk_timeout: Duration,
}

/// Runs the demo; returns whether the actors' count equals the single-threaded one.
pub async fn run(options: Options) -> Result<bool> {
    if options.workers == 0 {
        bail!("invalid --workers 0: expected at least 1 worker");
    }
    if options.chunk_lines == 0 {
        bail!("invalid --chunk-lines 0: expected at least 1 line per chunk");
    }
    let Input {
        inputs,
        text,
        lines,
    } = Input::read(&options.inputs)?;
    let chunks: Vec<Vec<String>> = lines
        .chunks(options.chunk_lines)
        .map(<[String]>::to_vec)
        .collect();
    info!(
        files = inputs.len(),
        bytes = text.len(),
        chunks = chunks.len(),
        workers = options.workers,
        "input read"
    );

    let started = Instant::now();
    let system = ActorSystem::new("demo")?;
    let (results_tx, mut results_rx) = mpsc::unbounded_channel();
    let collector = ActorRef::from_fn(&system, "collector", move |result: ChunkResult| {
        let _ = results_tx.send(result);
    });
    let total = chunks.len();
    let failures_left = Arc::new(AtomicUsize::new(if options.fail_worker_after > 0 {
        options.workers
    } else {
        0
    }));
    let master_props = {
        let chunks = chunks.clone();
        let settings = MasterSettings {
            workers: options.workers,
            chunk_timeout: options.chunk_timeout,
            fail_worker_after: options.fail_worker_after,
        };
        Props::new(move || {
            Master::new(
                chunks.clone(),
                collector.clone(),
                settings.clone(),
                Arc::clone(&failures_left),
            )
        })
    };
    system.spawn("master", master_props)?;

    let mut totals = Counts::new();
    let mut done = BTreeSet::new();
    let mut duplicates = 0_u64;
    let mut progress = Progress::new(total);
    let deadline = Duration::from_secs(300);
    while done.len() < total {
        let Ok(Some(result)) = tokio::time::timeout(deadline, results_rx.recv()).await else {
            bail!(
                "timed out after {deadline:?} with {} of {total} chunks counted",
                done.len()
            );
        };
        if !done.insert(result.chunk_id) {
            duplicates += 1;
            continue;
        }
        for (word, count) in result.counts {
            *totals.entry(word).or_default() += count;
        }
        progress.update(done.len());
    }
    progress.finish();
    let elapsed = started.elapsed();
    system.terminate().await;

    let expected = count_words(&lines);
    let words: u64 = totals.values().sum();
    println!(
        "\ncounted {words} words ({} distinct) in {total} chunks with {} workers in {:.2?}; \
         {duplicates} duplicate results dropped",
        totals.len(),
        options.workers,
        elapsed
    );
    Ok(report(&totals, &expected, "single-threaded"))
}

struct ChunkResult {
    chunk_id: usize,
    counts: Counts,
}

#[derive(Clone)]
struct MasterSettings {
    workers: usize,
    chunk_timeout: Duration,
    fail_worker_after: u64,
}

#[derive(Clone)]
enum MasterMsg {
    /// A worker is idle and asks for a chunk.
    RequestWork(ActorRef<WorkerMsg>),
    /// A worker finished a chunk.
    Done { chunk_id: usize, counts: Counts },
    /// Periodic check for chunks whose result is overdue.
    CheckTimeouts,
}

/// Hands out chunks to workers that ask, and re-queues chunks whose result is overdue.
struct Master {
    chunks: Vec<Vec<String>>,
    pending: VecDeque<usize>,
    in_flight: HashMap<usize, Instant>,
    finished: BTreeSet<usize>,
    idle: VecDeque<ActorRef<WorkerMsg>>,
    collector: ActorRef<ChunkResult>,
    settings: MasterSettings,
    failures_left: Arc<AtomicUsize>,
}

impl Master {
    fn new(
        chunks: Vec<Vec<String>>,
        collector: ActorRef<ChunkResult>,
        settings: MasterSettings,
        failures_left: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            pending: (0..chunks.len()).collect(),
            chunks,
            in_flight: HashMap::new(),
            finished: BTreeSet::new(),
            idle: VecDeque::new(),
            collector,
            settings,
            failures_left,
        }
    }

    fn dispatch(&mut self) {
        while !self.pending.is_empty() {
            let Some(worker) = self.idle.pop_front() else {
                break;
            };
            let Some(chunk_id) = self.pending.pop_front() else {
                break;
            };
            self.in_flight.insert(chunk_id, Instant::now());
            worker.tell(WorkerMsg::Work {
                chunk_id,
                lines: self.chunks[chunk_id].clone(),
            });
        }
    }
}

impl Actor for Master {
    type Msg = MasterMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        for index in 0..self.settings.workers {
            let master = ctx.self_ref();
            let fail_after = self.settings.fail_worker_after;
            let failures_left = Arc::clone(&self.failures_left);
            ctx.spawn(
                &format!("worker-{index}"),
                Props::new(move || Worker {
                    master: master.clone(),
                    handled: 0,
                    fail_after,
                    failures_left: Arc::clone(&failures_left),
                })
                .with_supervisor(SupervisorStrategy::restart_with_limit(
                    10,
                    Duration::from_secs(60),
                )),
            )?;
        }
        let check = self.settings.chunk_timeout / 4;
        ctx.start_timer_with_fixed_delay("timeouts", MasterMsg::CheckTimeouts, check, check);
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: MasterMsg) -> ActorResult {
        match msg {
            MasterMsg::RequestWork(worker) => {
                self.idle.push_back(worker);
                self.dispatch();
            }
            MasterMsg::Done { chunk_id, counts } => {
                self.in_flight.remove(&chunk_id);
                if self.finished.insert(chunk_id) {
                    self.collector.tell(ChunkResult { chunk_id, counts });
                }
            }
            MasterMsg::CheckTimeouts => {
                let now = Instant::now();
                let overdue: Vec<usize> = self
                    .in_flight
                    .iter()
                    .filter(|(_, sent)| now.duration_since(**sent) > self.settings.chunk_timeout)
                    .map(|(chunk_id, _)| *chunk_id)
                    .collect();
                for chunk_id in overdue {
                    self.in_flight.remove(&chunk_id);
                    if !self.finished.contains(&chunk_id) {
                        info!(
                            chunk_id,
                            "chunk result overdue; handing the chunk out again"
                        );
                        self.pending.push_front(chunk_id);
                    }
                }
                self.dispatch();
            }
        }
        Ok(())
    }
}

enum WorkerMsg {
    Work { chunk_id: usize, lines: Vec<String> },
}

/// Counts the words of each chunk it gets, then asks for the next one.
struct Worker {
    master: ActorRef<MasterMsg>,
    handled: u64,
    fail_after: u64,
    failures_left: Arc<AtomicUsize>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        self.master.tell(MasterMsg::RequestWork(ctx.self_ref()));
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WorkerMsg) -> ActorResult {
        let WorkerMsg::Work { chunk_id, lines } = msg;
        self.handled += 1;
        let fail_now = self.fail_after > 0
            && self.handled == self.fail_after
            && self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if fail_now {
            warn!(worker = %ctx.path(), chunk_id, "worker fails on purpose; the chunk is lost");
            return Err(ActorError::msg(format!(
                "demo failure injected while counting chunk {chunk_id}"
            )));
        }
        let counts = count_words(&lines);
        self.master.tell(MasterMsg::Done { chunk_id, counts });
        self.master.tell(MasterMsg::RequestWork(ctx.self_ref()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_with_failures_matches_single_threaded_count() {
        let dir = std::env::temp_dir().join(format!("akkord-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text: String = (0..2000)
            .map(|i| format!("line {i} alpha beta {} gamma\n", i % 7))
            .collect();
        std::fs::write(dir.join("input.txt"), &text).unwrap();
        let identical = run(Options {
            inputs: vec![dir.clone()],
            workers: 3,
            chunk_lines: 50,
            fail_worker_after: 2,
            chunk_timeout: Duration::from_millis(200),
        })
        .await
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(identical);
    }
}
