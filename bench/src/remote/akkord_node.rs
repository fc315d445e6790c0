//! The akkord side of the remote benchmark: a serving node with a sink and a pong actor,
//! and a measuring node that runs the three workloads against them over akkord-remote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, Context, Props};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{Lane, RemoteSystem, RemoteSystemSettings};
use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{
    ControlLatency, Measured, OneWay, RemoteSizes, ACK_EVERY, ASK_TIMEOUT, PAYLOAD, WINDOW,
};

/// Name of both actor systems.
const SYSTEM: &str = "bench";
/// Upper bound on one lookup of an exposed actor.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the actor that receives the large messages.
const LARGE_SINK: &str = "large-sink";
/// Path of [`LARGE_SINK`]. The measuring node sends to this path on the large lane.
const LARGE_SINK_PATH: &str = "/user/large-sink";
/// Size of one large message's payload, in bytes.
pub(super) const LARGE_PAYLOAD: usize = 1 << 20;
/// Maximum number of large messages sent but not yet acknowledged. It is below the large
/// lane's queue of 256, so none is dropped.
const LARGE_WINDOW: u64 = 4;
/// Pause between two control-lane round trips, so the probing leaves the cores to the
/// stream. The same pause applies with the large lane idle.
pub(super) const PING_PAUSE: Duration = Duration::from_millis(1);

/// Message of the sink actor.
#[derive(Serialize, Deserialize)]
enum SinkMsg {
    /// Resets the count and names the actor that receives the acknowledgements.
    Start { ack_to: ActorRef<u64> },
    /// One payload, serialized as one byte string rather than a sequence of numbers.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A large message, acknowledged with `seq` once the large sink has decoded it.
#[derive(Serialize, Deserialize)]
struct Blob {
    seq: u64,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    ack_to: ActorRef<u64>,
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
    registry.register::<Blob>("bench.Blob")?;
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

/// Acknowledges every large message with its sequence number.
struct LargeSink;

impl Actor for LargeSink {
    type Msg = Blob;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Blob) -> ActorResult {
        msg.ack_to.tell(msg.seq);
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
    let large_sink = system.spawn(LARGE_SINK, Props::new(|| LargeSink))?;
    remote.expose(LARGE_SINK, &large_sink)?;
    // The incarnation (`address#uid`) is announced because control-lane pings name it.
    super::announce(&remote.local_address().to_string())?;
    stop.await;
    remote.shutdown().await;
    system.terminate().await;
    Ok(())
}

/// Connects to the serving node at `announced` (`address#uid`) and runs the four workloads.
pub(super) async fn measure(announced: &str, sizes: &RemoteSizes) -> anyhow::Result<Measured> {
    let node = parse_incarnation(announced)?;
    let address = node.address.clone();
    let system = ActorSystem::new(SYSTEM)?;
    let mut settings = RemoteSystemSettings::new(SYSTEM);
    settings
        .large_message_recipients
        .push(LARGE_SINK_PATH.to_owned());
    let remote = RemoteSystem::bind(system.clone(), settings, registry()?).await?;
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
    let control = control_latency(&system, &remote, &node, sizes).await;

    remote.shutdown().await;
    system.terminate().await;
    Ok(Measured {
        one_way,
        asks,
        concurrent: Some(concurrent),
        control: Some(control),
    })
}

/// Connects to the serving node at `announced` and runs only `asks` sequential asks after a
/// warm-up of a tenth as many; returns every round trip.
pub(super) async fn measure_asks(
    announced: &str,
    asks: usize,
    limit: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let node = parse_incarnation(announced)?;
    let system = ActorSystem::new(SYSTEM)?;
    let settings = RemoteSystemSettings::new(SYSTEM);
    let remote = RemoteSystem::bind(system.clone(), settings, registry()?).await?;
    let pong: ActorRef<Ping> = remote.lookup(&node.address, "pong", LOOKUP_TIMEOUT).await?;
    sequential_asks(&pong, asks / 10 + 1, limit).await?;
    let latencies = sequential_asks(&pong, asks, limit).await;
    remote.shutdown().await;
    system.terminate().await;
    latencies
}

/// Parses the `address#uid` line of the serving child.
fn parse_incarnation(announced: &str) -> anyhow::Result<UniqueAddress> {
    let invalid = || format!("the akkord child announced `{announced}`, not `address#uid`");
    let (address, uid) = announced.rsplit_once('#').with_context(invalid)?;
    let address: Address = address.parse().with_context(invalid)?;
    let uid: u64 = uid.parse().with_context(invalid)?;
    Ok(UniqueAddress::new(address, uid))
}

/// Measures control-lane round trips (heartbeat request and response) with the large lane
/// idle, then while `sizes.large_messages` messages of [`LARGE_PAYLOAD`] bytes stream on
/// the large lane with at most [`LARGE_WINDOW`] unacknowledged.
async fn control_latency(
    system: &ActorSystem,
    remote: &RemoteSystem,
    node: &UniqueAddress,
    sizes: &RemoteSizes,
) -> anyhow::Result<ControlLatency> {
    let deadline = Instant::now() + sizes.limit;
    let large_sink: ActorRef<Blob> = remote
        .lookup(&node.address, LARGE_SINK, LOOKUP_TIMEOUT)
        .await?;
    let mut idle = Vec::with_capacity(sizes.idle_pings);
    for _ in 0..sizes.idle_pings {
        if Instant::now() > deadline {
            bail!(
                "control pings timed out: only {} of {} done within {:?}",
                idle.len(),
                sizes.idle_pings,
                sizes.limit
            );
        }
        idle.push(remote.ping(node, ASK_TIMEOUT).await?);
        tokio::time::sleep(PING_PAUSE).await;
    }

    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let ack_to = ActorRef::from_fn(system, "large-acks", move |seq: u64| {
        let _ = acks.send(seq);
    });
    let total = sizes.large_messages;
    let dropped_before = remote.transport().stats().dropped_queue_full[Lane::Large.index()];
    let streaming = async {
        let started = Instant::now();
        let (mut sent, mut done) = (0, 0);
        while done < total {
            while sent < total && sent - done < LARGE_WINDOW {
                large_sink.tell(Blob {
                    seq: sent,
                    bytes: vec![0x5a; LARGE_PAYLOAD],
                    ack_to: ack_to.clone(),
                });
                sent += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, acked.recv()).await {
                Ok(Some(_)) => done += 1,
                _ => bail!(
                    "large stream timed out: only {done} of {total} messages acknowledged \
                     within {:?}",
                    sizes.limit
                ),
            }
        }
        Ok(started.elapsed())
    };
    let mut busy = Vec::new();
    let probing = async {
        loop {
            match remote.ping(node, ASK_TIMEOUT).await {
                Ok(round_trip) => busy.push(round_trip),
                Err(error) => return error,
            }
            tokio::time::sleep(PING_PAUSE).await;
        }
    };
    // Probing ends only on a failed ping, so the end of the stream ends the measurement.
    let stream = tokio::select! {
        stream = streaming => stream,
        error = probing => {
            Err(anyhow::Error::from(error).context("control ping during the large stream failed"))
        }
    };
    let stream_elapsed = stream?;
    let dropped =
        remote.transport().stats().dropped_queue_full[Lane::Large.index()] - dropped_before;
    Ok(ControlLatency {
        idle,
        busy,
        large_messages: total,
        stream_elapsed,
        dropped,
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
