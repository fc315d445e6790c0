//! The word-count service that `akkord node` runs and `akkord demo` drives: a work master
//! that runs as a cluster singleton, and workers on every node with the `worker` role that
//! register with the receptionist and pull chunks from the master.
//!
//! The protocol, in the order messages flow:
//!
//! 1. The client submits chunks to the master (through a singleton proxy) with a ref to
//!    itself. The master replies [`ClientMsg::Accepted`] and queues the chunks it has not
//!    queued or dispatched yet.
//! 2. The master learns workers from the cluster-wide receptionist, watches them and
//!    tells each new one [`WorkerMsg::WorkAvailable`].
//! 3. An idle worker requests work with [`MasterMsg::RequestWork`]; the master replies with
//!    one chunk and tells the client where it went ([`ClientMsg::Dispatched`]). A worker that finishes sends the counts straight to the client and
//!    [`MasterMsg::Done`] to the master, which counts as its next request.
//! 4. When a worker terminates (its node was downed or removed) or leaves the listing (the
//!    listing leaves out members that are unreachable), the master queues its chunk again at the front and tells the client
//!    [`ClientMsg::Redispatched`].
//!
//! The master's state is not replicated. A new master starts empty; the client submits
//! again every chunk whose counts it has not received, and drops duplicate counts by chunk
//! id, so every chunk is counted exactly once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use akkord_actor::{
    Actor, ActorRef, ActorResult, Context, Listing, Props, ServiceKey, SupervisorStrategy,
};
use akkord_remote::serialization::{SerializationError, SerializationRegistry};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::text::{add_words, Counts};

/// Name of the master singleton.
pub(crate) const MASTER_NAME: &str = "word-count-master";
/// Role of the nodes that run workers and the master.
pub(crate) const WORKER_ROLE: &str = "worker";
/// Service key the workers register under.
pub(crate) fn worker_key() -> ServiceKey<WorkerMsg> {
    ServiceKey::new("word-count-worker")
}

/// How long a chunk may stay with one worker before the master hands it out again. A
/// worker on a crashed node is noticed sooner, through death watch.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval at which an idle worker requests work again, in case a request or the reply
/// was lost or the master moved.
const IDLE_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Registers the service's message types for serialization.
pub(crate) fn register_messages(
    registry: &mut SerializationRegistry,
) -> Result<(), SerializationError> {
    registry.register::<MasterMsg>("akkord.demo.MasterMsg")?;
    registry.register::<WorkerMsg>("akkord.demo.WorkerMsg")?;
    registry.register::<ClientMsg>("akkord.demo.ClientMsg")?;
    Ok(())
}

/// A piece of the input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Chunk {
    /// Position of the chunk in the input; the unit of de-duplication.
    pub id: u64,
    /// The lines of the chunk, joined by newlines.
    pub text: String,
    /// Recipient of the counts.
    pub client: ActorRef<ClientMsg>,
}

/// Messages of the master.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum MasterMsg {
    /// Work from a client.
    Submit { chunks: Vec<Chunk> },
    /// An idle worker requests a chunk.
    RequestWork { worker: ActorRef<WorkerMsg> },
    /// A worker finished a chunk and is idle.
    Done {
        chunk_id: u64,
        worker: ActorRef<WorkerMsg>,
    },
    /// The receptionist's current workers.
    Workers(Vec<ActorRef<WorkerMsg>>),
    /// A watched worker terminated.
    WorkerGone(ActorRef<WorkerMsg>),
    /// Periodic check for chunks held too long.
    CheckTimeouts,
}

/// Messages of a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum WorkerMsg {
    /// The master has work; ask for it when idle.
    WorkAvailable,
    /// A chunk to count.
    Work(Chunk),
    /// Ask again if still idle.
    IdleTick,
}

/// Messages a client receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ClientMsg {
    /// The master has queued or dispatched these chunks.
    Accepted { chunk_ids: Vec<u64> },
    /// The master handed a chunk to a worker on `node`; empty for a worker on the
    /// master's own node.
    Dispatched { chunk_id: u64, node: String },
    /// The counts of one chunk, from the worker that counted it.
    Counted {
        chunk_id: u64,
        counts: Vec<(String, u64)>,
        node: String,
    },
    /// The master handed these chunks out again because their worker is gone.
    Redispatched { chunk_ids: Vec<u64>, node: String },
}

/// Counts the words of `text` by the rule of the reference count.
pub(crate) fn count_text(text: &str) -> Counts {
    let mut counts = Counts::new();
    add_words(text, &mut counts);
    counts
}

/// The work master; runs as a cluster singleton.
pub(crate) struct Master {
    pending: VecDeque<Chunk>,
    queued: HashSet<u64>,
    in_flight: HashMap<u64, (Chunk, ActorRef<WorkerMsg>, Instant)>,
    idle: VecDeque<ActorRef<WorkerMsg>>,
    known: HashSet<ActorRef<WorkerMsg>>,
}

impl Master {
    /// Props of the master. A failure restarts it empty: idle workers ask again within a
    /// second, and clients submit their uncounted chunks again after their timeouts.
    pub(crate) fn props() -> Props<Self> {
        Props::new(|| Master {
            pending: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashMap::new(),
            idle: VecDeque::new(),
            known: HashSet::new(),
        })
        .with_supervisor(SupervisorStrategy::restart_with_limit(
            10,
            Duration::from_secs(60),
        ))
    }

    fn learn(&mut self, ctx: &mut Context<Self>, worker: &ActorRef<WorkerMsg>) -> bool {
        if self.known.insert(worker.clone()) {
            ctx.watch_with(worker, MasterMsg::WorkerGone(worker.clone()));
            true
        } else {
            false
        }
    }

    fn make_idle(&mut self, worker: ActorRef<WorkerMsg>) {
        if !self.idle.contains(&worker) {
            self.idle.push_back(worker);
        }
    }

    fn dispatch(&mut self) {
        while !self.pending.is_empty() {
            let Some(worker) = self.idle.pop_front() else {
                return;
            };
            let Some(chunk) = self.pending.pop_front() else {
                return;
            };
            self.queued.remove(&chunk.id);
            self.in_flight
                .insert(chunk.id, (chunk.clone(), worker.clone(), Instant::now()));
            chunk.client.tell(ClientMsg::Dispatched {
                chunk_id: chunk.id,
                node: worker_node(&worker),
            });
            worker.tell(WorkerMsg::Work(chunk));
        }
    }

    fn forget(&mut self, worker: &ActorRef<WorkerMsg>, reason: &str) {
        self.known.remove(worker);
        self.idle.retain(|idle| idle != worker);
        let lost: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (_, holder, _))| holder == worker)
            .map(|(id, _)| *id)
            .collect();
        let node = worker_node(worker);
        let mut by_client: HashMap<ActorRef<ClientMsg>, Vec<u64>> = HashMap::new();
        for id in lost {
            if let Some((chunk, _, _)) = self.in_flight.remove(&id) {
                by_client.entry(chunk.client.clone()).or_default().push(id);
                self.queued.insert(id);
                self.pending.push_front(chunk);
            }
        }
        for (client, chunk_ids) in by_client {
            info!(worker = %worker.path(), chunks = ?chunk_ids, reason, "handing out the chunks of a lost worker again");
            client.tell(ClientMsg::Redispatched {
                chunk_ids,
                node: node.clone(),
            });
        }
    }
}

/// Returns the node part of a worker's path, `akkord://system@host:port`, or an empty
/// string for a worker on this node, whose path has no address.
pub(crate) fn worker_node(worker: &ActorRef<WorkerMsg>) -> String {
    let path = worker.path();
    match path.find("/user") {
        Some(end) => path[..end].to_owned(),
        None => path,
    }
}

impl Actor for Master {
    type Msg = MasterMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        let adapter =
            ctx.message_adapter(|listing: Listing<WorkerMsg>| MasterMsg::Workers(listing.services));
        ctx.system()
            .receptionist()
            .subscribe(&worker_key(), &adapter);
        ctx.start_timer_with_fixed_delay(
            "timeouts",
            MasterMsg::CheckTimeouts,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        info!(path = %ctx.path(), "work master started");
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: MasterMsg) -> ActorResult {
        match msg {
            MasterMsg::Submit { chunks } => {
                let mut accepted: HashMap<ActorRef<ClientMsg>, Vec<u64>> = HashMap::new();
                for chunk in chunks {
                    accepted
                        .entry(chunk.client.clone())
                        .or_default()
                        .push(chunk.id);
                    if self.queued.contains(&chunk.id) || self.in_flight.contains_key(&chunk.id) {
                        continue;
                    }
                    self.queued.insert(chunk.id);
                    self.pending.push_back(chunk);
                }
                for (client, chunk_ids) in accepted {
                    client.tell(ClientMsg::Accepted { chunk_ids });
                }
                self.dispatch();
            }
            MasterMsg::RequestWork { worker } => {
                self.learn(ctx, &worker);
                self.make_idle(worker);
                self.dispatch();
            }
            MasterMsg::Done { chunk_id, worker } => {
                if let Some((_, holder, _)) = self.in_flight.get(&chunk_id) {
                    if *holder == worker {
                        self.in_flight.remove(&chunk_id);
                    }
                }
                self.learn(ctx, &worker);
                self.make_idle(worker);
                self.dispatch();
            }
            MasterMsg::Workers(workers) => {
                let listed: HashSet<ActorRef<WorkerMsg>> = workers.iter().cloned().collect();
                for worker in workers {
                    if self.learn(ctx, &worker) {
                        worker.tell(WorkerMsg::WorkAvailable);
                    }
                }
                let unlisted: Vec<ActorRef<WorkerMsg>> =
                    self.known.difference(&listed).cloned().collect();
                for worker in unlisted {
                    ctx.unwatch(&worker);
                    self.forget(&worker, "left the receptionist listing");
                }
                self.dispatch();
            }
            MasterMsg::WorkerGone(worker) => {
                self.forget(&worker, "terminated");
                self.dispatch();
            }
            MasterMsg::CheckTimeouts => {
                let now = Instant::now();
                let overdue: Vec<u64> = self
                    .in_flight
                    .iter()
                    .filter(|(_, (_, _, sent))| now.duration_since(*sent) > CHUNK_TIMEOUT)
                    .map(|(id, _)| *id)
                    .collect();
                for id in overdue {
                    if let Some((chunk, worker, _)) = self.in_flight.remove(&id) {
                        info!(chunk_id = id, worker = %worker.path(), "chunk overdue; handing it out again");
                        self.queued.insert(id);
                        self.pending.push_front(chunk);
                    }
                }
                self.dispatch();
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Context<Self>) {
        info!(path = %ctx.path(), pending = self.pending.len(), in_flight = self.in_flight.len(), "work master stopped");
    }
}

/// A worker: counts the words of the chunks it pulls from the master.
pub(crate) struct Worker {
    master: ActorRef<MasterMsg>,
    node: String,
    cost: Duration,
    last_work: Option<Instant>,
}

impl Worker {
    /// Props of a worker that reaches the master through `master` and spends at least
    /// `cost` per chunk.
    pub(crate) fn props(master: ActorRef<MasterMsg>, node: String, cost: Duration) -> Props<Self> {
        Props::new(move || Worker {
            master: master.clone(),
            node: node.clone(),
            cost,
            last_work: None,
        })
        .with_supervisor(SupervisorStrategy::restart_with_limit(
            10,
            Duration::from_secs(60),
        ))
    }
}

impl Actor for Worker {
    type Msg = WorkerMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        ctx.system()
            .receptionist()
            .register(&worker_key(), &ctx.self_ref());
        ctx.start_timer_with_fixed_delay(
            "idle",
            WorkerMsg::IdleTick,
            IDLE_REQUEST_INTERVAL,
            IDLE_REQUEST_INTERVAL,
        );
        self.master.tell(MasterMsg::RequestWork {
            worker: ctx.self_ref(),
        });
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WorkerMsg) -> ActorResult {
        match msg {
            WorkerMsg::WorkAvailable => {
                self.master.tell(MasterMsg::RequestWork {
                    worker: ctx.self_ref(),
                });
            }
            WorkerMsg::IdleTick => {
                // A worker that got work within the last interval is not idle, because its
                // Done message requests the next chunk.
                let recent = self
                    .last_work
                    .is_some_and(|at| at.elapsed() < IDLE_REQUEST_INTERVAL);
                if !recent {
                    self.master.tell(MasterMsg::RequestWork {
                        worker: ctx.self_ref(),
                    });
                }
            }
            WorkerMsg::Work(chunk) => {
                let started = Instant::now();
                let counts: Vec<(String, u64)> = count_text(&chunk.text).into_iter().collect();
                if let Some(rest) = self.cost.checked_sub(started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
                debug!(chunk_id = chunk.id, words = counts.len(), "chunk counted");
                chunk.client.tell(ClientMsg::Counted {
                    chunk_id: chunk.id,
                    counts,
                    node: self.node.clone(),
                });
                self.last_work = Some(Instant::now());
                self.master.tell(MasterMsg::Done {
                    chunk_id: chunk.id,
                    worker: ctx.self_ref(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_text_matches_the_reference_rule() {
        let counts = count_text("The cat, the HAT's\ncat");
        assert_eq!(counts["the"], 2);
        assert_eq!(counts["cat"], 2);
        assert_eq!(counts["hat's"], 1);
        assert_eq!(counts.len(), 3);
    }
}
