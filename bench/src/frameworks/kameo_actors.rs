//! kameo 0.22 with its default features on tokio's default multi-thread runtime: `spawn`
//! with the default bounded mailbox of 64 messages, `tell(..).await` for fire-and-forget
//! (which waits while the mailbox is full) and `ask(..).await` for request-reply.
//!
//! With a bounded mailbox, two actors that wait to send to each other can deadlock. Big and
//! Chameneos therefore use fewer actors than the mailbox capacity. Each actor has at most one
//! ping or meeting request in flight, so no mailbox fills.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kameo::error::Infallible;
use kameo::prelude::*;
use tokio::sync::oneshot;

use crate::harness::{self, Colour, Framework, Latch, NeighbourPicker};

/// kameo actors on the default tokio runtime.
pub struct Kameo;

impl Framework for Kameo {
    const NAME: &'static str = "kameo";

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        super::block_on_tokio_task(future)
    }

    async fn ping_pong(round_trips: u64) -> anyhow::Result<Duration> {
        let (done, returned) = oneshot::channel();
        let pong = Ponger::spawn(Ponger { pinger: None });
        let pinger = Pinger::spawn(Pinger {
            pong: pong.clone(),
            round_trips,
            returned: 0,
            done: Some(done),
        });
        pong.tell(Connect(pinger.clone())).await?;
        let start = Instant::now();
        pinger.tell(Serve).await?;
        let returned = returned.await?;
        let elapsed = start.elapsed();
        harness::check_count("ping-pong round trips", returned, round_trips)?;
        Ok(elapsed)
    }

    async fn thread_ring(actors: usize, hops: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let ring: Vec<_> = (0..actors)
            .map(|_| {
                RingNode::spawn(RingNode {
                    next: None,
                    done: done.clone(),
                })
            })
            .collect();
        for (index, node) in ring.iter().enumerate() {
            node.tell(SetNext(ring[(index + 1) % actors].clone()))
                .await?;
        }
        let start = Instant::now();
        ring[0].tell(Token(hops)).await?;
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn counting(messages: u64) -> anyhow::Result<Duration> {
        let counter = Counter::spawn(Counter { count: 0 });
        let start = Instant::now();
        for _ in 0..messages {
            counter.tell(Increment).await?;
        }
        let total = counter.ask(GetCount).await?;
        let elapsed = start.elapsed();
        harness::check_count("counting", total, messages)?;
        Ok(elapsed)
    }

    async fn fork_join_throughput(
        workers: usize,
        messages_per_worker: u64,
    ) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(workers));
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                ThroughputWorker::spawn(ThroughputWorker {
                    received: 0,
                    expected: messages_per_worker,
                    done: done.clone(),
                })
            })
            .collect();
        let start = Instant::now();
        for _ in 0..messages_per_worker {
            for worker in &workers {
                worker.tell(Work).await?;
            }
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fork_join_creation(actors: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors as usize));
        let start = Instant::now();
        for _ in 0..actors {
            let worker = OneShotWorker::spawn(OneShotWorker { done: done.clone() });
            worker.tell(Work).await?;
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fibonacci(n: u32) -> anyhow::Result<Duration> {
        let (reply, result) = oneshot::channel();
        let start = Instant::now();
        let root = FibActor::spawn(FibActor::new(FibParent::Root(Some(reply))));
        root.tell(Compute(n)).await?;
        let value = result.await?;
        let elapsed = start.elapsed();
        harness::check_fibonacci(n, value)?;
        Ok(elapsed)
    }

    async fn chameneos(chameneos: usize, meetings: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let start = Instant::now();
        let mall = Mall::spawn(Mall {
            waiting: None,
            arranged: 0,
            meetings,
            exited: 0,
            chameneos,
            done: done.clone(),
        });
        for index in 0..chameneos {
            Chameneo::spawn(Chameneo {
                mall: mall.clone(),
                colour: Colour::for_index(index),
            });
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn big(actors: usize, pings_per_actor: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors));
        let refs: Vec<_> = (0..actors)
            .map(|index| {
                BigActor::spawn(BigActor {
                    index,
                    neighbours: Arc::from([]),
                    picker: NeighbourPicker::new(index),
                    remaining: pings_per_actor,
                    done: done.clone(),
                })
            })
            .collect();
        let neighbours: Arc<[ActorRef<BigActor>]> = refs.into();
        for actor in neighbours.iter() {
            actor.tell(Neighbours(neighbours.clone())).await?;
        }
        let start = Instant::now();
        for actor in neighbours.iter() {
            actor.tell(BigStart).await?;
        }
        done.wait().await;
        let elapsed = start.elapsed();
        for actor in neighbours.iter() {
            actor.tell(Exit).await?;
        }
        Ok(elapsed)
    }

    async fn spawn(actors: u64) -> anyhow::Result<Duration> {
        let started = Arc::new(Latch::new(actors as usize));
        let mut handles = Vec::with_capacity(actors as usize);
        let start = Instant::now();
        for _ in 0..actors {
            handles.push(Starter::spawn(Starter {
                started: started.clone(),
            }));
        }
        started.wait().await;
        Ok(start.elapsed())
    }

    async fn ask_latency(asks: u64) -> anyhow::Result<Vec<Duration>> {
        let server = Echo::spawn(Echo);
        let mut samples = Vec::with_capacity(asks as usize);
        for round in 0..2 * asks {
            let start = Instant::now();
            let answer = server.ask(Ask(round)).await?;
            let elapsed = start.elapsed();
            harness::check_count("ask reply", answer, round + 1)?;
            if round >= asks {
                samples.push(elapsed);
            }
        }
        Ok(samples)
    }

    async fn idle_actor_bytes(actors: usize) -> anyhow::Result<f64> {
        let mut handles: Vec<Option<ActorRef<Idle>>> = (0..actors).map(|_| None).collect();
        let before = harness::resident_bytes()?;
        for slot in &mut handles {
            *slot = Some(Idle::spawn(Idle));
        }
        harness::wait_idle_started(actors).await?;
        harness::bytes_per_actor(before, actors)
    }
}

// PingPong: each actor keeps the other's ref, handed out before the clock starts. A failed
// send in a handler is dropped: the run then stops at the cell timeout, which the table
// reports.

#[derive(Actor)]
struct Ponger {
    pinger: Option<ActorRef<Pinger>>,
}

struct Connect(ActorRef<Pinger>);

impl Message<Connect> for Ponger {
    type Reply = ();

    async fn handle(&mut self, Connect(pinger): Connect, _: &mut Context<Self, ()>) {
        self.pinger = Some(pinger);
    }
}

struct Ping;

impl Message<Ping> for Ponger {
    type Reply = ();

    async fn handle(&mut self, _: Ping, _: &mut Context<Self, ()>) {
        if let Some(pinger) = &self.pinger {
            let _ = pinger.tell(Pong).await;
        }
    }
}

#[derive(Actor)]
struct Pinger {
    pong: ActorRef<Ponger>,
    round_trips: u64,
    returned: u64,
    done: Option<oneshot::Sender<u64>>,
}

/// Starts the exchange.
struct Serve;

impl Message<Serve> for Pinger {
    type Reply = ();

    async fn handle(&mut self, _: Serve, _: &mut Context<Self, ()>) {
        let _ = self.pong.tell(Ping).await;
    }
}

struct Pong;

impl Message<Pong> for Pinger {
    type Reply = ();

    async fn handle(&mut self, _: Pong, ctx: &mut Context<Self, ()>) {
        self.returned += 1;
        if self.returned < self.round_trips {
            let _ = self.pong.tell(Ping).await;
        } else if let Some(done) = self.done.take() {
            let _ = done.send(self.returned);
            ctx.stop();
        }
    }
}

// ThreadRing.

#[derive(Actor)]
struct RingNode {
    next: Option<ActorRef<RingNode>>,
    done: Arc<Latch>,
}

struct SetNext(ActorRef<RingNode>);

impl Message<SetNext> for RingNode {
    type Reply = ();

    async fn handle(&mut self, SetNext(next): SetNext, _: &mut Context<Self, ()>) {
        self.next = Some(next);
    }
}

/// The ring token with the hops still to go.
struct Token(u64);

impl Message<Token> for RingNode {
    type Reply = ();

    async fn handle(&mut self, Token(remaining): Token, ctx: &mut Context<Self, ()>) {
        match (&self.next, remaining) {
            (_, 0) | (None, _) => {
                self.done.count_down();
                self.next = None;
                ctx.stop();
            }
            (Some(next), _) => {
                let _ = next.tell(Token(remaining - 1)).await;
            }
        }
    }
}

// Counting.

#[derive(Actor)]
struct Counter {
    count: u64,
}

struct Increment;

impl Message<Increment> for Counter {
    type Reply = ();

    async fn handle(&mut self, _: Increment, _: &mut Context<Self, ()>) {
        self.count += 1;
    }
}

struct GetCount;

impl Message<GetCount> for Counter {
    type Reply = u64;

    async fn handle(&mut self, _: GetCount, _: &mut Context<Self, u64>) -> u64 {
        self.count
    }
}

// Fork-Join throughput and creation.

struct Work;

#[derive(Actor)]
struct ThroughputWorker {
    received: u64,
    expected: u64,
    done: Arc<Latch>,
}

impl Message<Work> for ThroughputWorker {
    type Reply = ();

    async fn handle(&mut self, _: Work, _: &mut Context<Self, ()>) {
        self.received += 1;
        if self.received == self.expected {
            self.done.count_down();
        }
    }
}

#[derive(Actor)]
struct OneShotWorker {
    done: Arc<Latch>,
}

impl Message<Work> for OneShotWorker {
    type Reply = ();

    async fn handle(&mut self, _: Work, ctx: &mut Context<Self, ()>) {
        self.done.count_down();
        ctx.stop();
    }
}

// Fibonacci.

enum FibParent {
    Root(Option<oneshot::Sender<u64>>),
    Actor(ActorRef<FibActor>),
}

#[derive(Actor)]
struct FibActor {
    parent: FibParent,
    pending: u8,
    sum: u64,
}

impl FibActor {
    fn new(parent: FibParent) -> Self {
        Self {
            parent,
            pending: 0,
            sum: 0,
        }
    }

    async fn finish(&mut self, value: u64, ctx: &mut Context<Self, ()>) {
        match &mut self.parent {
            FibParent::Root(reply) => {
                if let Some(reply) = reply.take() {
                    let _ = reply.send(value);
                }
            }
            FibParent::Actor(parent) => {
                let _ = parent.tell(Partial(value)).await;
            }
        }
        ctx.stop();
    }
}

struct Compute(u32);

impl Message<Compute> for FibActor {
    type Reply = ();

    async fn handle(&mut self, Compute(n): Compute, ctx: &mut Context<Self, ()>) {
        if n < 2 {
            self.finish(u64::from(n), ctx).await;
            return;
        }
        self.pending = 2;
        for child_n in [n - 1, n - 2] {
            let parent = FibParent::Actor(ctx.actor_ref().clone());
            let child = FibActor::spawn(FibActor::new(parent));
            let _ = child.tell(Compute(child_n)).await;
        }
    }
}

struct Partial(u64);

impl Message<Partial> for FibActor {
    type Reply = ();

    async fn handle(&mut self, Partial(value): Partial, ctx: &mut Context<Self, ()>) {
        self.sum += value;
        self.pending -= 1;
        if self.pending == 0 {
            self.finish(self.sum, ctx).await;
        }
    }
}

// Chameneos.

#[derive(Actor)]
struct Mall {
    waiting: Option<MeetMe>,
    arranged: u64,
    meetings: u64,
    exited: usize,
    chameneos: usize,
    done: Arc<Latch>,
}

struct MeetMe {
    from: ActorRef<Chameneo>,
    colour: Colour,
}

impl Message<MeetMe> for Mall {
    type Reply = ();

    async fn handle(&mut self, request: MeetMe, ctx: &mut Context<Self, ()>) {
        if self.arranged == self.meetings {
            let _ = request.from.stop_gracefully().await;
            self.exited += 1;
            if self.exited == self.chameneos {
                self.done.count_down();
                ctx.stop();
            }
            return;
        }
        match self.waiting.take() {
            None => self.waiting = Some(request),
            Some(first) => {
                self.arranged += 1;
                let mate = Mate {
                    partner: request.from,
                    colour: request.colour,
                };
                let _ = first.from.tell(mate).await;
            }
        }
    }
}

struct Chameneo {
    mall: ActorRef<Mall>,
    colour: Colour,
}

impl Chameneo {
    async fn request_meeting(&self, from: ActorRef<Self>) {
        let request = MeetMe {
            from,
            colour: self.colour,
        };
        let _ = self.mall.tell(request).await;
    }
}

impl Actor for Chameneo {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        state.request_meeting(actor_ref).await;
        Ok(state)
    }
}

struct Mate {
    partner: ActorRef<Chameneo>,
    colour: Colour,
}

impl Message<Mate> for Chameneo {
    type Reply = ();

    async fn handle(&mut self, mate: Mate, ctx: &mut Context<Self, ()>) {
        self.colour = self.colour.complement(mate.colour);
        let _ = mate.partner.tell(Changed(self.colour)).await;
        self.request_meeting(ctx.actor_ref().clone()).await;
    }
}

struct Changed(Colour);

impl Message<Changed> for Chameneo {
    type Reply = ();

    async fn handle(&mut self, Changed(colour): Changed, ctx: &mut Context<Self, ()>) {
        self.colour = colour;
        self.request_meeting(ctx.actor_ref().clone()).await;
    }
}

// Big.

#[derive(Actor)]
struct BigActor {
    index: usize,
    neighbours: Arc<[ActorRef<BigActor>]>,
    picker: NeighbourPicker,
    remaining: u64,
    done: Arc<Latch>,
}

impl BigActor {
    async fn ping_someone(&mut self) {
        let target = self.picker.pick(self.index, self.neighbours.len());
        let ping = BigPing { from: self.index };
        let _ = self.neighbours[target].tell(ping).await;
    }
}

struct Neighbours(Arc<[ActorRef<BigActor>]>);

impl Message<Neighbours> for BigActor {
    type Reply = ();

    async fn handle(&mut self, Neighbours(neighbours): Neighbours, _: &mut Context<Self, ()>) {
        self.neighbours = neighbours;
    }
}

struct BigStart;

impl Message<BigStart> for BigActor {
    type Reply = ();

    async fn handle(&mut self, _: BigStart, _: &mut Context<Self, ()>) {
        self.ping_someone().await;
    }
}

struct BigPing {
    from: usize,
}

impl Message<BigPing> for BigActor {
    type Reply = ();

    async fn handle(&mut self, ping: BigPing, _: &mut Context<Self, ()>) {
        let _ = self.neighbours[ping.from].tell(BigPong).await;
    }
}

struct BigPong;

impl Message<BigPong> for BigActor {
    type Reply = ();

    async fn handle(&mut self, _: BigPong, _: &mut Context<Self, ()>) {
        self.remaining -= 1;
        if self.remaining == 0 {
            self.done.count_down();
        } else {
            self.ping_someone().await;
        }
    }
}

/// Stops the receiving actor after it drops its neighbour list.
struct Exit;

impl Message<Exit> for BigActor {
    type Reply = ();

    async fn handle(&mut self, _: Exit, ctx: &mut Context<Self, ()>) {
        self.neighbours = Arc::from([]);
        ctx.stop();
    }
}

// Spawn rate, ask latency and idle memory.

struct Starter {
    started: Arc<Latch>,
}

impl Actor for Starter {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        state.started.count_down();
        Ok(state)
    }
}

#[derive(Actor)]
struct Echo;

struct Ask(u64);

impl Message<Ask> for Echo {
    type Reply = u64;

    async fn handle(&mut self, Ask(value): Ask, _: &mut Context<Self, u64>) -> u64 {
        value + 1
    }
}

struct Idle;

impl Actor for Idle {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        harness::idle_actor_started();
        Ok(state)
    }
}
