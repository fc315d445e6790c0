//! The akkord side of the remote benchmark: a serving node with a sink and a pong actor,
//! and a measuring node that runs the three workloads against them over akkord-remote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::Address;
use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, Context, Props};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{Lane, RemoteSystem, RemoteSystemSettings};
use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{Measured, OneWay, RemoteSizes, ACK_EVERY, ASK_TIMEOUT, PAYLOAD, WINDOW};

/// Name of both actor systems.
const SYSTEM: &str = "bench";
/// Upper bound on one lookup of an exposed actor.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Message of the sink actor.
#[derive(Serialize, Deserialize)]
enum SinkMsg {
    /// Resets the count and names the actor that receives the acknowledgements.
    Start { ack_to: ActorRef<u64> },
    /// One payload.
    Data(Vec<u8>),
}

/// An ask to the pong actor, answered with `seq`.
#[derive(Serialize, Deserialize)]
struct Ping {
    seq: u64,
    reply_to: ActorRef<u64>,
}

fn registry() -> anyhow::Result<SerializationRegistry> {
    let mut registry = SerializationRegistry::new();
    registry.register::<u64>("bench.Count")?;
    registry.register::<SinkMsg>("bench.Sink")?;
    registry.register::<Ping>("bench.Ping")?;
    Ok(registry)
}

/// Counts payloads and acknowledges every [`ACK_EVERY`] of them with the running count.
#[derive(Default)]
struct Sink {
    received: u64,
    ack_to: Option<ActorRef<u64>>,
}

impl Actor for Sink {
    type Msg = SinkMsg;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: SinkMsg) -> ActorResult {
        match msg {
            SinkMsg::Start { ack_to } => {
                self.received = 0;
                self.ack_to = Some(ack_to);
            }
            SinkMsg::Data(_) => {
                self.received += 1;
                if self.received % ACK_EVERY == 0 {
                    if let Some(ack_to) = &self.ack_to {
                        ack_to.tell(self.received);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Answers every ping with its sequence number.
struct Pong;

impl Actor for Pong {
    type Msg = Ping;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Ping) -> ActorResult {
        msg.reply_to.tell(msg.seq);
        Ok(())
    }
}

/// Runs the serving node until `stop` resolves, after printing its address on stdout.
pub(super) async fn serve(stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let system = ActorSystem::new(SYSTEM)?;
    let remote = RemoteSystem::bind(
        system.clone(),
        RemoteSystemSettings::new(SYSTEM),
        registry()?,
    )
    .await?;
    remote.expose("sink", &system.spawn("sink", Props::new(Sink::default))?)?;
    remote.expose("pong", &system.spawn("pong", Props::new(|| Pong))?)?;
    super::announce(&remote.local_address().address.to_string())?;
    stop.await;
    remote.shutdown().await;
    system.terminate().await;
    Ok(())
}

/// Connects to the serving node at `address` and runs the three workloads.
pub(super) async fn measure(address: &str, sizes: &RemoteSizes) -> anyhow::Result<Measured> {
    let address: Address = address
        .parse()
        .with_context(|| format!("the akkord child announced `{address}`, not an address"))?;
    let system = ActorSystem::new(SYSTEM)?;
    let remote = RemoteSystem::bind(
        system.clone(),
        RemoteSystemSettings::new(SYSTEM),
        registry()?,
    )
    .await?;
    let sink: ActorRef<SinkMsg> = remote.lookup(&address, "sink", LOOKUP_TIMEOUT).await?;
    let pong: ActorRef<Ping> = remote.lookup(&address, "pong", LOOKUP_TIMEOUT).await?;

    // Warm the connection and both actors before any clock starts.
    sequential_asks(&pong, sizes.asks / 10 + 1, sizes.limit).await?;

    let dropped_before = remote.transport().stats().dropped_queue_full[Lane::Ordinary.index()];
    let one_way = one_way(&system, &sink, sizes)
        .await
        .map(|(messages, elapsed)| {
            let dropped = remote.transport().stats().dropped_queue_full[Lane::Ordinary.index()]
                - dropped_before;
            OneWay {
                messages,
                elapsed,
                dropped,
            }
        });
    let asks = sequential_asks(&pong, sizes.asks, sizes.limit).await;
    let concurrent = concurrent_asks(&pong, sizes).await;

    remote.shutdown().await;
    system.terminate().await;
    Ok(Measured {
        one_way,
        asks,
        concurrent: Some(concurrent),
    })
}

/// Sends `sizes.messages` payloads with at most [`WINDOW`] unacknowledged; returns the count
/// sent and the time until the last acknowledgement.
async fn one_way(
    system: &ActorSystem,
    sink: &ActorRef<SinkMsg>,
    sizes: &RemoteSizes,
) -> anyhow::Result<(u64, Duration)> {
    let acked = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let ack_to = {
        let acked = Arc::clone(&acked);
        let progress = Arc::clone(&progress);
        ActorRef::from_fn(system, "acks", move |count: u64| {
            acked.store(count, Ordering::Release);
            progress.notify_one();
        })
    };
    sink.tell(SinkMsg::Start { ack_to });
    let messages = sizes.messages - sizes.messages % ACK_EVERY;
    let started = Instant::now();
    let deadline = started + sizes.limit;
    let mut sent = 0;
    while sent < messages || acked.load(Ordering::Acquire) < messages {
        if sent < messages && sent - acked.load(Ordering::Acquire) < WINDOW {
            sink.tell(SinkMsg::Data(vec![0x5a; PAYLOAD]));
            sent += 1;
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, progress.notified())
            .await
            .is_err()
        {
            bail!(
                "one-way: {} of {messages} messages acknowledged within {:?}; \
                 the sink or the connection stalled",
                acked.load(Ordering::Acquire),
                sizes.limit
            );
        }
    }
    Ok((messages, started.elapsed()))
}

/// Asks `pong` `count` times one after the other and returns every round trip.
async fn sequential_asks(
    pong: &ActorRef<Ping>,
    count: usize,
    limit: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let deadline = Instant::now() + limit;
    let mut latencies = Vec::with_capacity(count);
    for seq in 0..count as u64 {
        if Instant::now() > deadline {
            bail!("asks: only {seq} of {count} done within {limit:?}");
        }
        let started = Instant::now();
        let reply = pong
            .ask(|reply_to| Ping { seq, reply_to }, ASK_TIMEOUT)
            .await
            .with_context(|| format!("ask {seq} got no reply"))?;
        latencies.push(started.elapsed());
        if reply != seq {
            bail!("ask {seq} was answered with {reply}");
        }
    }
    Ok(latencies)
}

/// Runs `sizes.askers` tasks that each ask `sizes.asks_per_asker` times in sequence, and
/// returns the asks completed per second over all of them.
async fn concurrent_asks(pong: &ActorRef<Ping>, sizes: &RemoteSizes) -> anyhow::Result<f64> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..sizes.askers)
        .map(|_| {
            let pong = pong.clone();
            let (count, limit) = (sizes.asks_per_asker, sizes.limit);
            tokio::spawn(async move { sequential_asks(&pong, count, limit).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        task.await.context("an asking task panicked")??;
    }
    let total = (sizes.askers * sizes.asks_per_asker) as f64;
    Ok(total / started.elapsed().as_secs_f64())
}
