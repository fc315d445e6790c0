//! The kameo side of the remote benchmark: kameo 0.22's `remote` feature over a libp2p swarm
//! with TCP, noise and yamux on 127.0.0.1 only (no mDNS, no QUIC). The measuring node dials
//! the serving node's announced multiaddr and finds the actors through kameo's registry.
//!
//! kameo's fire-and-forget remote tell returns before the message leaves and has no channel
//! for a later failure. With more than 100 requests open (kameo's default stream limit), a
//! request failed with "max sub-streams reached" in a trial run.
//! The one-way workload therefore keeps its own window with checkpoint asks: after every
//! [`CHECK_EVERY`] payloads it asks the sink for its count, and never has more than
//! [`KAMEO_WINDOW`] payloads beyond the highest count returned. When all are sent, it asks
//! until the count stops growing for [`STALL`]; payloads the sink never counted are reported
//! as dropped.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use kameo::actor::RemoteActorRef;
use kameo::prelude::*;
use kameo::remote;
use libp2p::futures::StreamExt as _;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{Measured, OneWay, RemoteSizes, ASK_TIMEOUT, PAYLOAD};

/// Upper bound on finding an actor of the serving node.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Payloads beyond the last counted: below kameo's default of 100 concurrent streams, which
/// the checkpoint asks share.
const KAMEO_WINDOW: u64 = 64;
/// A checkpoint ask follows every this many payloads.
const CHECK_EVERY: u64 = 16;
/// The count is final when it has not grown for this long after the last payload.
const STALL: Duration = Duration::from_secs(2);
/// Upper bound on the swarm reporting its listening address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts payloads.
#[derive(Actor, RemoteActor, Default)]
pub(crate) struct Sink {
    received: u64,
}

/// One payload for the sink.
#[derive(Serialize, Deserialize)]
pub(crate) struct Data(#[serde(with = "serde_bytes")] Vec<u8>);

/// Asks the sink for its count.
#[derive(Serialize, Deserialize)]
pub(crate) struct Checkpoint;

/// Resets the sink's count.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reset;

#[remote_message("bench.kameo.Data")]
impl Message<Data> for Sink {
    type Reply = ();

    async fn handle(&mut self, _: Data, _: &mut Context<Self, ()>) {
        self.received += 1;
    }
}

#[remote_message("bench.kameo.Checkpoint")]
impl Message<Checkpoint> for Sink {
    type Reply = u64;

    async fn handle(&mut self, _: Checkpoint, _: &mut Context<Self, u64>) -> u64 {
        self.received
    }
}

#[remote_message("bench.kameo.Reset")]
impl Message<Reset> for Sink {
    type Reply = u64;

    async fn handle(&mut self, _: Reset, _: &mut Context<Self, u64>) -> u64 {
        self.received = 0;
        0
    }
}

/// Answers every ping with its sequence number.
#[derive(Actor, RemoteActor)]
pub(crate) struct Pong;

/// An ask to the pong actor.
#[derive(Serialize, Deserialize)]
pub(crate) struct Ping(u64);

#[remote_message("bench.kameo.Ping")]
impl Message<Ping> for Pong {
    type Reply = u64;

    async fn handle(&mut self, Ping(seq): Ping, _: &mut Context<Self, u64>) -> u64 {
        seq
    }
}

fn new_swarm() -> anyhow::Result<Swarm<remote::Behaviour>> {
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            remote::Behaviour::new(
                key.public().to_peer_id(),
                remote::messaging::Config::default(),
            )
        })?
        .build();
    swarm
        .behaviour()
        .try_init_global()
        .map_err(|error| anyhow::anyhow!("kameo's swarm was already set up: {error}"))?;
    Ok(swarm)
}

/// Drives `swarm` until the runtime stops.
fn drive(mut swarm: Swarm<remote::Behaviour>) {
    tokio::spawn(async move {
        loop {
            let _ = swarm.select_next_some().await;
        }
    });
}

/// Runs the serving node until `stop` resolves, after printing its multiaddr on stdout.
pub(super) async fn serve(stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let mut swarm = new_swarm()?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let listening = tokio::time::timeout(LISTEN_TIMEOUT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .context("kameo's swarm reported no listening address")?;
    // A confirmed external address puts kademlia in server mode, so the peer can query it.
    swarm.add_external_address(listening.clone());
    let peer = *swarm.local_peer_id();
    drive(swarm);

    let sink = Sink::spawn(Sink::default());
    sink.register("sink").await?;
    let pong = Pong::spawn(Pong);
    pong.register("pong").await?;
    super::announce(&listening.with(Protocol::P2p(peer)).to_string())?;
    stop.await;
    Ok(())
}

/// Dials the serving node at `address` (a multiaddr ending in `/p2p/PEER`) and runs the
/// one-way and sequential ask workloads.
pub(super) async fn measure(address: &str, sizes: &RemoteSizes) -> anyhow::Result<Measured> {
    let address: Multiaddr = address
        .parse()
        .with_context(|| format!("the kameo child announced `{address}`, not a multiaddr"))?;
    let Some(Protocol::P2p(peer)) = address.iter().last() else {
        bail!("the kameo child announced `{address}` without a /p2p/ peer id");
    };
    let peer: PeerId = peer;
    let mut swarm = new_swarm()?;
    swarm.add_peer_address(peer, address.clone());
    swarm.dial(address)?;
    drive(swarm);

    let sink: RemoteActorRef<Sink> = lookup("sink").await?;
    let pong: RemoteActorRef<Pong> = lookup("pong").await?;

    sequential_asks(&pong, sizes.asks / 10 + 1, sizes.limit).await?;
    // Asks first: a one-way run that loses payloads may leave the connection unusable.
    let asks = sequential_asks(&pong, sizes.asks, sizes.limit).await;
    let one_way = one_way(&sink, sizes).await;
    Ok(Measured {
        one_way,
        asks,
        concurrent: None,
        control: None,
    })
}

async fn lookup<A: Actor + RemoteActor>(name: &str) -> anyhow::Result<RemoteActorRef<A>> {
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    loop {
        if let Ok(Some(found)) = RemoteActorRef::<A>::lookup(name).await {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("kameo found no actor named `{name}` within {LOOKUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn checkpoint(sink: &RemoteActorRef<Sink>) -> anyhow::Result<u64> {
    match tokio::time::timeout(ASK_TIMEOUT, sink.ask(&Checkpoint).send()).await {
        Ok(Ok(count)) => Ok(count),
        Ok(Err(error)) => bail!("the sink's checkpoint failed: {error}"),
        Err(_) => bail!("the sink's checkpoint got no reply within {ASK_TIMEOUT:?}"),
    }
}

/// One-way messages of the kameo run: a tenth of the others', since kameo's one-way rate
/// is about a hundredth of akkord's and the run must end within its bound.
pub(super) fn kameo_messages(sizes: &RemoteSizes) -> u64 {
    let messages = sizes.messages / 10;
    messages - messages % CHECK_EVERY
}

/// How the kameo run differs from the others, for the notes under the table.
pub(super) fn note(sizes: &RemoteSizes) -> String {
    format!(
        "kameo: one-way {} messages, window {KAMEO_WINDOW} kept with a checkpoint ask every \
         {CHECK_EVERY} (its tell reports no failure after it returns); \
         sequential asks run before one-way",
        kameo_messages(sizes)
    )
}

/// Sends [`kameo_messages`] payloads with at most [`KAMEO_WINDOW`] beyond the last checkpoint.
async fn one_way(sink: &RemoteActorRef<Sink>, sizes: &RemoteSizes) -> anyhow::Result<OneWay> {
    if let Err(error) = sink.ask(&Reset).send().await {
        bail!("resetting the sink failed: {error}");
    }
    let messages = kameo_messages(sizes);
    let data = Data(vec![0x5a; PAYLOAD]);
    let started = Instant::now();
    let deadline = started + sizes.limit;
    let mut checkpoints: JoinSet<anyhow::Result<u64>> = JoinSet::new();
    let (mut sent, mut acked, mut refused) = (0_u64, 0_u64, 0_u64);
    let mut last_growth = Instant::now();
    while acked < messages {
        if Instant::now() > deadline {
            bail!(
                "one-way: {acked} of {messages} messages counted within {:?}",
                sizes.limit
            );
        }
        if sent < messages && sent - acked < KAMEO_WINDOW {
            if sink.tell(&data).send().is_err() {
                refused += 1;
            }
            sent += 1;
            if sent % CHECK_EVERY == 0 {
                let sink = sink.clone();
                checkpoints.spawn(async move { checkpoint(&sink).await });
            }
            continue;
        }
        let count = match checkpoints.join_next().await {
            Some(count) => count.context("a checkpoint task panicked")??,
            None => {
                if last_growth.elapsed() > STALL {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                checkpoint(sink).await?
            }
        };
        if count > acked {
            acked = count;
            last_growth = Instant::now();
        } else if sent < messages && last_growth.elapsed() > STALL {
            // Lost payloads hold the window shut: count them and go on.
            acked = sent;
            last_growth = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let counted = checkpoint(sink).await?;
    Ok(OneWay {
        messages: counted.min(messages),
        elapsed,
        dropped: messages.saturating_sub(counted) + refused,
    })
}

async fn sequential_asks(
    pong: &RemoteActorRef<Pong>,
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
        let reply = match tokio::time::timeout(ASK_TIMEOUT, pong.ask(&Ping(seq)).send()).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => bail!("ask {seq} failed: {error}"),
            Err(_) => bail!("ask {seq} got no reply within {ASK_TIMEOUT:?}"),
        };
        latencies.push(started.elapsed());
        if reply != seq {
            bail!("ask {seq} was answered with {reply}");
        }
    }
    Ok(latencies)
}
