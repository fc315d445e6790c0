//! Remote benchmark between two processes on loopback: one-way throughput of 100-byte
//! messages and ask round-trip latency.
//!
//! Run with `cargo run --release -p akkord-remote --example remote_bench [MESSAGES] [ASKS]`
//! (defaults 1000000 and 20000). The program starts a copy of itself with `serve` as the
//! receiving node, and stops it at the end.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::Address;
use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, Context, Props};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{Lane, RemoteSystem, RemoteSystemSettings};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Payload size of the throughput messages, in bytes.
const PAYLOAD: usize = 100;
/// The receiver acknowledges every this many messages.
const ACK_EVERY: u64 = 500;
/// Messages in flight at most: below the ordinary lane's queue of 3072, so none is dropped.
const WINDOW: u64 = 2500;

#[derive(Serialize, Deserialize)]
enum SinkMsg {
    Start { ack_to: ActorRef<u64> },
    Data(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct Ping {
    seq: u64,
    reply_to: ActorRef<u64>,
}

fn registry() -> SerializationRegistry {
    let mut registry = SerializationRegistry::new();
    let registered = registry
        .register::<u64>("bench.Count")
        .and_then(|()| registry.register::<SinkMsg>("bench.Sink"))
        .and_then(|()| registry.register::<Ping>("bench.Ping"));
    if let Err(error) = registered {
        panic!("benchmark registry is inconsistent: {error}");
    }
    registry
}

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

struct Pong;

impl Actor for Pong {
    type Msg = Ping;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Ping) -> ActorResult {
        msg.reply_to.tell(msg.seq);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve().await;
    }
    let messages: u64 = args.get(1).map_or(Ok(1_000_000), |n| n.parse())?;
    let asks: usize = args.get(2).map_or(Ok(20_000), |n| n.parse())?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("child stdout missing")?).read_line(&mut line)?;
    let address: Address = line.trim().parse()?;

    let system = ActorSystem::new("bench")?;
    let remote = RemoteSystem::bind(
        system.clone(),
        RemoteSystemSettings::new("bench"),
        registry(),
    )
    .await?;
    let timeout = Duration::from_secs(10);
    let sink: ActorRef<SinkMsg> = remote.lookup(&address, "sink", timeout).await?;
    let pong: ActorRef<Ping> = remote.lookup(&address, "pong", timeout).await?;

    let throughput = measure_throughput(&system, &sink, messages).await;
    let dropped = remote.transport().stats().dropped_queue_full[Lane::Ordinary.index()];
    println!(
        "one-way: {messages} messages of {PAYLOAD} bytes in {:.3} s = {:.0} msg/s ({dropped} dropped)",
        throughput.as_secs_f64(),
        messages as f64 / throughput.as_secs_f64()
    );

    let mut latencies = measure_asks(&pong, asks).await?;
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "ask round trip: {asks} sequential asks: p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        latencies[latencies.len() - 1]
    );

    remote.shutdown().await;
    system.terminate().await;
    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}

/// Sends `messages` payloads with at most [`WINDOW`] unacknowledged and returns the time
/// until the last acknowledgement.
async fn measure_throughput(
    system: &ActorSystem,
    sink: &ActorRef<SinkMsg>,
    messages: u64,
) -> Duration {
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
    let messages = messages - messages % ACK_EVERY;
    let started = Instant::now();
    let mut sent = 0;
    while sent < messages {
        if sent - acked.load(Ordering::Acquire) >= WINDOW {
            progress.notified().await;
            continue;
        }
        sink.tell(SinkMsg::Data(vec![0x5a; PAYLOAD]));
        sent += 1;
    }
    while acked.load(Ordering::Acquire) < messages {
        progress.notified().await;
    }
    started.elapsed()
}

async fn measure_asks(
    pong: &ActorRef<Ping>,
    asks: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut latencies = Vec::with_capacity(asks);
    for seq in 0..asks as u64 {
        let started = Instant::now();
        let reply = pong
            .ask(|reply_to| Ping { seq, reply_to }, Duration::from_secs(5))
            .await?;
        latencies.push(started.elapsed());
        assert_eq!(reply, seq, "reply to another ask");
    }
    Ok(latencies)
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let system = ActorSystem::new("bench")?;
    let remote = RemoteSystem::bind(
        system.clone(),
        RemoteSystemSettings::new("bench"),
        registry(),
    )
    .await?;
    remote.expose("sink", &system.spawn("sink", Props::new(Sink::default))?)?;
    remote.expose("pong", &system.spawn("pong", Props::new(|| Pong))?)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", remote.local_address().address)?;
    stdout.flush()?;
    tokio::task::spawn_blocking(|| {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
    })
    .await?;
    remote.shutdown().await;
    system.terminate().await;
    Ok(())
}
