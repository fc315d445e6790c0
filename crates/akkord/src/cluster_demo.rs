//! `akkord demo`: word frequencies of real text counted by a cluster of `akkord node`
//! processes on loopback, with a worker node killed midway and, optionally, the node that
//! hosts the work master, checked against a single-process count.
//!
//! This process starts the nodes, joins the cluster as a member with the `client` role,
//! splits the input into chunks and submits them to the work master through a singleton
//! proxy. It keeps every chunk until its counts arrive: chunks the master has not
//! acknowledged within a few seconds, and every uncounted chunk when the master moves, are
//! submitted again, and duplicate counts are dropped by chunk id.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::ActorRef;
use akkord_cluster::membership::ClusterEvent;
use anyhow::{bail, Context as _, Result};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, mpsc};

use crate::config::NodeConfig;
use crate::node::{self, NodeOptions, Runtimes};
use crate::text::{count_words, is_separator, report, Counts, Input, Progress};
use crate::work::{Chunk, ClientMsg, MasterMsg, WORKER_ROLE};

/// Actor system name of the demo cluster.
const SYSTEM: &str = "akkord-demo";
/// Split brain resolver stable-after of the demo cluster: the profile for small clusters.
const STABLE_AFTER: Duration = Duration::from_secs(7);
/// Chunks sent to the master in one message.
const SUBMIT_BATCH: usize = 16;
/// Maximum text in one chunk. It keeps a chunk, and the counts a worker sends back for it,
/// well inside the 256 KiB frame limit of the ordinary lane.
const MAX_CHUNK_BYTES: usize = 32 * 1024;
/// Maximum text in one submission to the master.
const MAX_BATCH_BYTES: usize = 4 * MAX_CHUNK_BYTES;
/// A submitted chunk the master has not acknowledged within this time is submitted again.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// An acknowledged chunk whose counts have not arrived within this time is submitted
/// again; the master ignores chunks it still holds.
const COUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of one demo run.
pub(crate) struct DemoOptions {
    pub nodes: usize,
    pub inputs: Vec<PathBuf>,
    pub chunk_lines: usize,
    pub workers_per_node: usize,
    pub chunk_cost: Duration,
    /// Kill a worker node after this many chunks are counted; `None` for a third of them,
    /// `Some(0)` for never.
    pub kill_worker_after: Option<usize>,
    /// Kill the node hosting the master after this many chunks are counted.
    pub kill_master_after: Option<usize>,
    pub timeout: Duration,
}

/// State of one chunk at the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Unsent,
    Sent(Instant),
    Accepted(Instant),
    Counted,
}

/// One `akkord node` process.
struct NodeProcess {
    address: Address,
    child: Child,
    alive: bool,
}

/// Record of events and their times, for the timeline.
struct Timeline {
    started: Instant,
    entries: Vec<(Duration, String)>,
}

impl Timeline {
    fn record(&mut self, progress: &Progress, text: String) {
        let at = self.started.elapsed();
        progress.line(&format!("[{:>7.2}s] {text}", at.as_secs_f64()));
        self.entries.push((at, text));
    }
}

/// Runs the demo; returns whether the cluster's count equals the single-process one.
pub(crate) fn run(options: DemoOptions) -> Result<bool> {
    if options.nodes == 0 {
        bail!("invalid --nodes 0: expected at least 1 node");
    }
    if options.chunk_lines == 0 {
        bail!("invalid --chunk-lines 0: expected at least 1 line per chunk");
    }
    if options.workers_per_node == 0 {
        bail!("invalid --workers-per-node 0: expected at least 1 worker");
    }
    let kills_requested = usize::from(options.kill_worker_after != Some(0))
        + usize::from(options.kill_master_after.is_some());
    if kills_requested >= options.nodes {
        bail!(
            "invalid --nodes {}: the demo kills {kills_requested} node(s), so it needs at least {} nodes \
             (or pass --kill-worker-after 0)",
            options.nodes,
            kills_requested + 1
        );
    }
    let Input {
        inputs,
        text,
        lines,
    } = Input::read(&options.inputs)?;
    let texts = make_chunks(&lines, options.chunk_lines)?;
    let reference_started = Instant::now();
    let expected = count_words(&lines);
    let reference_time = reference_started.elapsed();
    let words: u64 = expected.values().sum();
    println!(
        "input: {} files or folders, {} bytes, {} lines, {words} words, {} chunks of {} lines",
        inputs.len(),
        text.len(),
        lines.len(),
        texts.len(),
        options.chunk_lines
    );

    let runtimes = Runtimes::new()?;
    // The client takes the lowest port: when two nodes die at once and leave two members
    // of four, the split brain resolver keeps the side with the lowest address, which is
    // then the side that is still running.
    let mut ports = free_ports(options.nodes * 2 + 1)?;
    ports.sort_unstable();
    let client_port = ports.remove(0);
    let seeds: Vec<Address> = (0..options.nodes.min(3))
        .map(|i| Address::new(SYSTEM, "127.0.0.1", ports[i]).expect("valid demo address"))
        .collect();
    let log_dir = std::env::temp_dir().join(format!("akkord-demo-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create the log folder {}", log_dir.display()))?;
    println!("node logs: {}", log_dir.display());

    let mut processes = Vec::new();
    {
        let _entered = runtimes.user.enter();
        for i in 0..options.nodes {
            processes.push(spawn_node(
                i,
                ports[i],
                ports[options.nodes + i],
                &seeds,
                &options,
                &log_dir,
            )?);
        }
    }

    let mut config = NodeConfig {
        system: SYSTEM.to_owned(),
        port: client_port,
        seed_nodes: seeds,
        roles: ["client".to_owned()].into(),
        workers: 0,
        stable_after: Some(STABLE_AFTER),
        ..NodeConfig::default()
    };
    config.management_port = 0;
    let client = node::start(
        &runtimes,
        NodeOptions {
            config,
            management: false,
        },
    )?;
    let result = runtimes.user.block_on(drive(
        &client,
        &mut processes,
        texts,
        &options,
        words,
        expected,
        reference_time,
    ));
    runtimes.user.block_on(async {
        for process in &mut processes {
            let _ = process.child.start_kill();
            let _ = process.child.wait().await;
        }
    });
    // The logs matter only when something went wrong.
    if matches!(result, Ok(true)) {
        let _ = std::fs::remove_dir_all(&log_dir);
    } else {
        println!("node logs kept in {}", log_dir.display());
    }
    result
}

/// Splits `lines` into chunks of at most `chunk_lines` lines and [`MAX_CHUNK_BYTES`] bytes.
/// A longer line is cut between words, so the counts do not change.
///
/// # Errors
///
/// Fails when a line has no word boundary within [`MAX_CHUNK_BYTES`].
fn make_chunks(lines: &[String], chunk_lines: usize) -> Result<Vec<String>> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut current_lines = 0;
    for line in lines {
        for piece in split_long_line(line)? {
            let full =
                current_lines >= chunk_lines || current.len() + piece.len() + 1 > MAX_CHUNK_BYTES;
            if current_lines > 0 && full {
                chunks.push(std::mem::take(&mut current));
                current_lines = 0;
            }
            if current_lines > 0 {
                current.push('\n');
            }
            current.push_str(piece);
            current_lines += 1;
        }
    }
    if current_lines > 0 {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Cuts `line` into pieces of at most [`MAX_CHUNK_BYTES`] bytes, each ending after a
/// character that separates words.
fn split_long_line(line: &str) -> Result<Vec<&str>> {
    let mut pieces = Vec::new();
    let mut rest = line;
    while rest.len() > MAX_CHUNK_BYTES {
        let mut end = MAX_CHUNK_BYTES;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let cut = rest[..end]
            .char_indices()
            .rev()
            .find(|(_, c)| is_separator(*c))
            .map(|(index, c)| index + c.len_utf8());
        let Some(cut) = cut else {
            bail!(
                "the input has a word longer than {MAX_CHUNK_BYTES} bytes, which no chunk can \
                 hold: leave that file out of --input"
            );
        };
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    Ok(pieces)
}

/// Reserves `count` distinct free loopback ports.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("cannot find free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

fn spawn_node(
    index: usize,
    port: u16,
    management_port: u16,
    seeds: &[Address],
    options: &DemoOptions,
    log_dir: &std::path::Path,
) -> Result<NodeProcess> {
    let log_path = log_dir.join(format!("node-{}.log", index + 1));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the akkord program itself")?;
    let seeds: Vec<String> = seeds.iter().map(ToString::to_string).collect();
    let child = Command::new(exe)
        .arg("node")
        .args(["--system", SYSTEM, "--host", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(["--seed-nodes", &seeds.join(",")])
        .args(["--roles", WORKER_ROLE])
        .args(["--management-port", &management_port.to_string()])
        .args(["--stable-after-secs", &STABLE_AFTER.as_secs().to_string()])
        .args(["--workers", &options.workers_per_node.to_string()])
        .args([
            "--chunk-cost-ms",
            &options.chunk_cost.as_millis().to_string(),
        ])
        .arg("--exit-when-stdin-closes")
        .env_remove("AKKORD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start an akkord node process")?;
    Ok(NodeProcess {
        address: Address::new(SYSTEM, "127.0.0.1", port).expect("valid demo address"),
        child,
        alive: true,
    })
}

#[allow(clippy::too_many_lines)]
async fn drive(
    client: &node::Node,
    processes: &mut [NodeProcess],
    texts: Vec<String>,
    options: &DemoOptions,
    words: u64,
    expected: Counts,
    reference_time: Duration,
) -> Result<bool> {
    let total = texts.len();
    let mut progress = Progress::new(total);
    let mut timeline = Timeline {
        started: Instant::now(),
        entries: Vec::new(),
    };
    let (_, mut events) = client.cluster.subscribe();
    let mut location = client.master.location();
    let (sender, mut inbox) = mpsc::unbounded_channel();
    let me = ActorRef::from_fn(&client.system, "demo-client", move |msg: ClientMsg| {
        let _ = sender.send(msg);
    });

    // Wait for every node to be Up before the clock for throughput starts, this client
    // included: the split-brain resolver does not count a member that is still Joining or
    // WeaklyUp, so killing two nodes before the client is Up would leave the survivors a
    // minority that downs itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let is_up = |m: &akkord_cluster::member::Member| {
            m.status == akkord_cluster::member::MemberStatus::Up
        };
        let up = client
            .cluster
            .state()
            .members
            .iter()
            .filter(|m| m.has_role(WORKER_ROLE) && is_up(m))
            .count();
        let client_up = client.cluster.self_member().is_some_and(|m| is_up(&m));
        drain_events(&mut events, &mut timeline, &progress);
        if up == processes.len() && client_up {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {up} of {} nodes became Up within 60 s (this client: {}); see the node \
                 logs",
                processes.len(),
                if client_up { "Up" } else { "not Up" }
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    timeline.record(&progress, format!("all {} nodes Up", processes.len()));

    let work_started = Instant::now();
    let mut states = vec![ChunkState::Unsent; total];
    // The node each dispatched, uncounted chunk was handed to.
    let mut holders: HashMap<u64, String> = HashMap::new();
    let mut totals = Counts::new();
    let mut counted = 0_usize;
    let mut duplicates = 0_u64;
    let mut redispatched = 0_usize;
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    let window = (processes.len() * options.workers_per_node * 3).max(SUBMIT_BATCH);
    let kill_worker_at = match options.kill_worker_after {
        None => Some((total / 3).max(1)),
        Some(0) => None,
        Some(n) => Some(n),
    };
    let mut worker_killed: Option<Instant> = None;
    let mut master_killed: Option<Instant> = None;
    let mut killed_master: Option<Address> = None;
    let mut worker_failover: Option<Duration> = None;
    let mut master_failover: Option<Duration> = None;
    let mut master_at: Option<UniqueAddress> = location.borrow_and_update().clone();
    if let Some(at) = &master_at {
        timeline.record(&progress, format!("work master runs on {}", at.address));
    }
    let mut shown_location = master_at.clone();
    let master_ref = client.master.actor_ref();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = Instant::now() + options.timeout;

    while counted < total {
        if Instant::now() > deadline {
            bail!(
                "timed out after {:?} with {counted} of {total} chunks counted",
                options.timeout
            );
        }
        tokio::select! {
            msg = inbox.recv() => {
                let Some(msg) = msg else { bail!("the demo client stopped") };
                match msg {
                    ClientMsg::Accepted { chunk_ids } => {
                        if let (Some(killed), None) = (master_killed, master_failover) {
                            let moved = master_at
                                .as_ref()
                                .is_some_and(|at| Some(&at.address) != killed_master.as_ref());
                            if moved {
                                master_failover = Some(killed.elapsed());
                                timeline.record(&progress, format!(
                                    "new master accepts work, {:.1} s after the kill",
                                    killed.elapsed().as_secs_f64()
                                ));
                            }
                        }
                        for id in chunk_ids {
                            if let Some(state @ ChunkState::Sent(_)) = states.get_mut(id as usize) {
                                *state = ChunkState::Accepted(Instant::now());
                            }
                        }
                    }
                    ClientMsg::Dispatched { chunk_id, node } => {
                        if states.get(chunk_id as usize) != Some(&ChunkState::Counted) {
                            holders.insert(chunk_id, node);
                        }
                    }
                    ClientMsg::Counted { chunk_id, counts, node } => {
                        holders.remove(&chunk_id);
                        let Some(state) = states.get_mut(chunk_id as usize) else { continue };
                        if *state == ChunkState::Counted {
                            duplicates += 1;
                            continue;
                        }
                        *state = ChunkState::Counted;
                        counted += 1;
                        *by_node.entry(node).or_default() += 1;
                        for (word, count) in counts {
                            *totals.entry(word).or_default() += count;
                        }
                        progress.update(counted);
                    }
                    ClientMsg::Redispatched { chunk_ids, node } => {
                        redispatched += chunk_ids.len();
                        if let (Some(killed), None) = (worker_killed, worker_failover) {
                            worker_failover = Some(killed.elapsed());
                        }
                        timeline.record(&progress, format!(
                            "chunks {chunk_ids:?} re-dispatched: their worker on {node} is gone"
                        ));
                    }
                }
            }
            changed = location.changed() => {
                if changed.is_err() { bail!("the master proxy stopped") }
                let now_at = location.borrow_and_update().clone();
                if now_at == shown_location {
                    continue;
                }
                shown_location = now_at.clone();
                match &now_at {
                    Some(at) => timeline.record(&progress, format!("work master runs on {}", at.address)),
                    None => timeline.record(&progress, "work master location unknown; the proxy buffers".to_owned()),
                }
                if master_at.is_some() && now_at != master_at {
                    // A new master starts with no chunks, so submit every uncounted chunk again.
                    for state in &mut states {
                        if matches!(state, ChunkState::Sent(_) | ChunkState::Accepted(_)) {
                            *state = ChunkState::Unsent;
                        }
                    }
                }
                if now_at.is_some() {
                    master_at = now_at;
                }
            }
            _ = tick.tick() => {}
        }
        drain_events(&mut events, &mut timeline, &progress);

        // Kills.
        if let Some(at) = kill_worker_at {
            if worker_killed.is_none() && counted >= at {
                // A node with uncounted chunks, so that the kill loses work that must
                // be handed out again.
                let target = processes.iter_mut().find(|p| {
                    let address = p.address.to_string();
                    p.alive
                        && master_at.as_ref().is_some_and(|m| m.address != p.address)
                        && holders.values().any(|holder| *holder == address)
                });
                if let Some(process) = target {
                    process
                        .child
                        .start_kill()
                        .context("cannot kill a worker node")?;
                    process.alive = false;
                    worker_killed = Some(Instant::now());
                    timeline.record(
                        &progress,
                        format!("killed worker node {} (SIGKILL)", process.address),
                    );
                }
            }
        }
        if let Some(at) = options.kill_master_after {
            let worker_done = kill_worker_at.is_none() || worker_killed.is_some();
            if master_killed.is_none() && worker_done && counted >= at {
                if let Some(master) = master_at.clone() {
                    if let Some(process) = processes
                        .iter_mut()
                        .find(|p| p.alive && p.address == master.address)
                    {
                        process
                            .child
                            .start_kill()
                            .context("cannot kill the master's node")?;
                        process.alive = false;
                        master_killed = Some(Instant::now());
                        killed_master = Some(process.address.clone());
                        timeline.record(
                            &progress,
                            format!("killed the master's node {} (SIGKILL)", process.address),
                        );
                    }
                }
            }
        }

        // Submissions.
        let now = Instant::now();
        for state in &mut states {
            match *state {
                ChunkState::Sent(at) if now.duration_since(at) > ACK_TIMEOUT => {
                    *state = ChunkState::Unsent;
                }
                ChunkState::Accepted(at) if now.duration_since(at) > COUNT_TIMEOUT => {
                    *state = ChunkState::Unsent;
                }
                _ => {}
            }
        }
        let in_progress = states
            .iter()
            .filter(|s| matches!(s, ChunkState::Sent(_) | ChunkState::Accepted(_)))
            .count();
        let mut room = window.saturating_sub(in_progress);
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for (id, state) in states.iter_mut().enumerate() {
            if room == 0 {
                break;
            }
            if *state == ChunkState::Unsent {
                if batch.len() == SUBMIT_BATCH || batch_bytes + texts[id].len() > MAX_BATCH_BYTES {
                    master_ref.tell(MasterMsg::Submit {
                        chunks: std::mem::take(&mut batch),
                    });
                    batch_bytes = 0;
                }
                *state = ChunkState::Sent(now);
                room -= 1;
                batch_bytes += texts[id].len();
                batch.push(Chunk {
                    id: id as u64,
                    text: texts[id].clone(),
                    client: me.clone(),
                });
            }
        }
        if !batch.is_empty() {
            master_ref.tell(MasterMsg::Submit { chunks: batch });
        }
    }
    progress.finish();
    let elapsed = work_started.elapsed();
    drain_events(&mut events, &mut timeline, &progress);
    // Stop talking to the cluster before the nodes go, so their end is not reported as
    // lost connections.
    client.remote.shutdown().await;
    for process in processes.iter_mut() {
        let _ = process.child.start_kill();
        let _ = process.child.wait().await;
    }

    println!("\ntimeline:");
    for (at, text) in &timeline.entries {
        println!("  {:>7.2}s  {text}", at.as_secs_f64());
    }
    println!("\nchunks counted per node:");
    for (node, chunks) in &by_node {
        println!("  {chunks:>6}  {node}");
    }
    let words_per_second = words as f64 / elapsed.as_secs_f64();
    println!(
        "\ncounted {words} words ({} distinct) in {total} chunks on {} nodes in {:.2?} \
         ({:.0} words/s; single-process count {:.2?}); {redispatched} chunks re-dispatched, \
         {duplicates} duplicate results dropped",
        totals.len(),
        processes.len(),
        elapsed,
        words_per_second,
        reference_time,
    );
    let mut summary = format!(
        "summary nodes={} chunks={total} words={words} elapsed_ms={} words_per_second={words_per_second:.0} \
         reference_ms={} redispatched={redispatched} duplicates={duplicates}",
        processes.len(),
        elapsed.as_millis(),
        reference_time.as_millis()
    );
    if let Some(failover) = worker_failover {
        summary.push_str(&format!(" worker_failover_ms={}", failover.as_millis()));
    }
    if let Some(failover) = master_failover {
        summary.push_str(&format!(" master_failover_ms={}", failover.as_millis()));
    }
    println!("{summary}");
    let killed = processes.iter().filter(|p| !p.alive).count();
    let requested =
        usize::from(kill_worker_at.is_some()) + usize::from(options.kill_master_after.is_some());
    if killed < requested {
        println!(
            "note: the work finished before every requested kill happened ({killed} of {requested})"
        );
    }
    Ok(report(&totals, &expected, "single-process"))
}

fn drain_events(
    events: &mut broadcast::Receiver<ClusterEvent>,
    timeline: &mut Timeline,
    progress: &Progress,
) {
    loop {
        match events.try_recv() {
            Ok(event) => {
                let text = match &event {
                    ClusterEvent::MemberUp(m) => Some(format!("member up: {}", m.address())),
                    ClusterEvent::UnreachableMember(m) => {
                        Some(format!("member unreachable: {}", m.address()))
                    }
                    ClusterEvent::ReachableMember(m) => {
                        Some(format!("member reachable again: {}", m.address()))
                    }
                    ClusterEvent::MemberDowned(m) => {
                        Some(format!("member downed: {}", m.address()))
                    }
                    ClusterEvent::MemberRemoved { member, .. } => {
                        Some(format!("member removed: {}", member.address()))
                    }
                    ClusterEvent::MemberLeft(m) => Some(format!("member leaving: {}", m.address())),
                    _ => None,
                };
                if let Some(text) = text {
                    timeline.record(progress, text);
                }
            }
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                timeline.record(progress, format!("({missed} cluster events missed)"));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::count_text;

    #[test]
    fn chunks_keep_counts_and_size_limit() {
        let long_line = "word, ".repeat(MAX_CHUNK_BYTES / 3);
        let lines = vec![
            "The first line".to_owned(),
            String::new(),
            long_line,
            "last line's words".to_owned(),
        ];
        let chunks = make_chunks(&lines, 2).unwrap();
        assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK_BYTES));
        let mut counted = Counts::new();
        for chunk in &chunks {
            for (word, count) in count_text(chunk) {
                *counted.entry(word).or_default() += count;
            }
        }
        assert_eq!(counted, count_words(&lines));
    }

    #[test]
    fn endless_word_is_rejected() {
        let lines = vec!["x".repeat(MAX_CHUNK_BYTES + 1)];
        let error = make_chunks(&lines, 10).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }
}
