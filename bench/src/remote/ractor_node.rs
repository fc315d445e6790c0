//! The ractor side of the remote benchmark: ractor_cluster 0.16's `NodeServer` listening on
//! 127.0.0.1 only, in isolated mode (a node connects only to the peers it is given, never
//! to the peers of its peers). The measuring node connects to the serving node's announced
//! address and finds the actors through the process groups ractor_cluster keeps in sync.
//!
//! The one-way sender keeps its window with count asks: after every [`ACK_EVERY`] payloads
//! it asks the sink for its count, and it never has more than [`WINDOW`] payloads beyond the
//! highest count returned. The sink replies only after handling every payload sent before
//! the ask, because payloads and asks share one connection and one mailbox, both in order.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage, RactorClusterMessage};
use tokio::task::JoinSet;

use super::{Measured, OneWay, RemoteSizes, ACK_EVERY, ASK_TIMEOUT, PAYLOAD, WINDOW};

/// Process group of the sink.
const SINK_GROUP: &str = "bench.ractor.sink";
/// Process group of the pong actor.
const PONG_GROUP: &str = "bench.ractor.pong";
/// Shared secret of the two nodes' handshake.
const COOKIE: &str = "akkord-bench";
/// Upper bound on finding an actor of the serving node.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Messages of the counting sink.
#[derive(RactorClusterMessage)]
pub(crate) enum SinkMsg {
    /// One payload.
    Data(Vec<u8>),
    /// Replies with the count so far.
    #[rpc]
    Count(RpcReplyPort<u64>),
    /// Sets the count to zero and replies with it.
    #[rpc]
    Reset(RpcReplyPort<u64>),
}

/// Messages of the pong actor.
#[derive(RactorClusterMessage)]
pub(crate) enum PongMsg {
    /// Replies with the sequence number.
    #[rpc]
    Ping(u64, RpcReplyPort<u64>),
}

/// Returns how the ractor_cluster run differs from the others, for the notes under the table.
pub(super) fn note() -> String {
    format!(
        "ractor_cluster: the window is kept with a count ask every {ACK_EVERY} payloads \
         (its sink sends no acknowledgement of its own)"
    )
}

/// Counts payloads.
struct Sink;

impl Actor for Sink {
    type Msg = SinkMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<SinkMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<SinkMsg>,
        message: SinkMsg,
        received: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SinkMsg::Data(_) => *received += 1,
            SinkMsg::Count(reply) => {
                let _ = reply.send(*received);
            }
            SinkMsg::Reset(reply) => {
                *received = 0;
                let _ = reply.send(0);
            }
        }
        Ok(())
    }
}

/// Replies to every ping with its sequence number.
struct Pong;

impl Actor for Pong {
    type Msg = PongMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<PongMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<PongMsg>,
        PongMsg::Ping(seq, reply): PongMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(seq);
        Ok(())
    }
}

/// Starts a node server listening on 127.0.0.1 at `port` (0 for any free one).
async fn start_node(
    name: &str,
    port: u16,
) -> anyhow::Result<(ActorRef<NodeServerMessage>, JoinHandle<()>)> {
    let server = NodeServer::new(
        port,
        COOKIE.to_owned(),
        name.to_owned(),
        "127.0.0.1".to_owned(),
        None,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Actor::spawn(None, server, ())
        .await
        .context("starting ractor_cluster's node server")
}

/// Runs the serving node until `stop` resolves, after printing its address on stdout.
pub(super) async fn serve(stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    // ractor_cluster has no call that returns the port it picked, so probe a free one.
    // NOTE: another process could take the port between the probe and the bind.
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|probe| probe.local_addr())
        .context("finding a free loopback port")?
        .port();
    let (node, node_done) = start_node("bench-serve", port).await?;
    let (sink, sink_done) = Actor::spawn(None, Sink, ())
        .await
        .context("spawning the sink")?;
    let (pong, pong_done) = Actor::spawn(None, Pong, ())
        .await
        .context("spawning the pong actor")?;
    ractor::pg::join(SINK_GROUP.to_owned(), vec![sink.get_cell()]);
    ractor::pg::join(PONG_GROUP.to_owned(), vec![pong.get_cell()]);
    super::announce(&format!("127.0.0.1:{port}"))?;
    stop.await;
    sink.stop(None);
    pong.stop(None);
    node.stop(None);
    let _ = tokio::join!(sink_done, pong_done, node_done);
    Ok(())
}

/// Connects to the serving node at `address` (`127.0.0.1:PORT`) and runs the one-way and
/// sequential ask workloads.
pub(super) async fn measure(address: &str, sizes: &RemoteSizes) -> anyhow::Result<Measured> {
    let (node, node_done) = start_node("bench-measure", 0).await?;
    ractor_cluster::client_connect(&node, address)
        .await
        .with_context(|| format!("connecting to the ractor node at {address}"))?;
    let sink: ActorRef<SinkMsg> = lookup(SINK_GROUP).await?.into();
    let pong: ActorRef<PongMsg> = lookup(PONG_GROUP).await?.into();

    sequential_asks(&pong, sizes.asks / 10 + 1, sizes.limit).await?;
    let one_way = one_way(&sink, sizes).await;
    let asks = sequential_asks(&pong, sizes.asks, sizes.limit).await;
    node.stop(None);
    let _ = node_done.await;
    Ok(Measured {
        one_way,
        asks,
        concurrent: None,
        control: None,
    })
}

/// Waits until the process group `group` contains an actor of another node.
async fn lookup(group: &str) -> anyhow::Result<ractor::ActorCell> {
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    loop {
        let found = ractor::pg::get_members(&group.to_owned())
            .into_iter()
            .find(|cell| !cell.get_id().is_local());
        if let Some(found) = found {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("ractor found no remote actor in group `{group}` within {LOOKUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Unwraps a call's reply, naming `request` in the error.
fn reply<T, M>(
    result: Result<CallResult<T>, ractor::MessagingErr<M>>,
    request: &str,
) -> anyhow::Result<T> {
    match result {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) => bail!("{request} got no reply within {ASK_TIMEOUT:?}"),
        Ok(CallResult::SenderError) => bail!("{request} was dropped without a reply"),
        Err(error) => bail!("{request} could not be sent: {error}"),
    }
}

async fn count(sink: &ActorRef<SinkMsg>) -> anyhow::Result<u64> {
    reply(
        sink.call(SinkMsg::Count, Some(ASK_TIMEOUT)).await,
        "the sink's count",
    )
}

/// Sends [`RemoteSizes::messages`] payloads with at most [`WINDOW`] beyond the last count.
async fn one_way(sink: &ActorRef<SinkMsg>, sizes: &RemoteSizes) -> anyhow::Result<OneWay> {
    reply(
        sink.call(SinkMsg::Reset, Some(ASK_TIMEOUT)).await,
        "resetting the sink",
    )?;
    let messages = sizes.messages - sizes.messages % ACK_EVERY;
    let started = Instant::now();
    let deadline = started + sizes.limit;
    let mut counts: JoinSet<anyhow::Result<u64>> = JoinSet::new();
    let (mut sent, mut acked, mut refused) = (0_u64, 0_u64, 0_u64);
    while acked + refused < messages {
        if Instant::now() > deadline {
            bail!(
                "one-way: {acked} of {messages} messages counted within {:?}",
                sizes.limit
            );
        }
        if sent < messages && sent - acked - refused < WINDOW {
            if sink.cast(SinkMsg::Data(vec![0x5a; PAYLOAD])).is_err() {
                refused += 1;
            }
            sent += 1;
            if sent % ACK_EVERY == 0 {
                let sink = sink.clone();
                counts.spawn(async move { count(&sink).await });
            }
            continue;
        }
        match counts.join_next().await {
            Some(counted) => acked = acked.max(counted.context("a count task panicked")??),
            None => bail!("one-way: the sink counted {acked} of {sent} messages sent"),
        }
    }
    let elapsed = started.elapsed();
    let counted = count(sink).await?;
    Ok(OneWay {
        messages: counted.min(messages),
        elapsed,
        dropped: messages.saturating_sub(counted),
    })
}

async fn sequential_asks(
    pong: &ActorRef<PongMsg>,
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
        let answer = reply(
            pong.call(|port| PongMsg::Ping(seq, port), Some(ASK_TIMEOUT))
                .await,
            &format!("ask {seq}"),
        )?;
        latencies.push(started.elapsed());
        if answer != seq {
            bail!("ask {seq} returned {answer}, expected {seq}");
        }
    }
    Ok(latencies)
}
