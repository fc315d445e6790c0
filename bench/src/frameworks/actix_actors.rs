//! actix 0.13 with its defaults: one `System` whose arbiter runs every actor on one thread,
//! fire-and-forget sends with `Addr::do_send` (which ignores the mailbox capacity of 16) and
//! request-reply with `Addr::send`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::harness::{self, Colour, Framework, Latch, NeighbourPicker};

/// actix actors on the `System` arbiter.
pub struct Actix;

impl Framework for Actix {
    const NAME: &'static str = "actix";

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        // The future runs on the System thread, beside the arbiter that runs the actors.
        System::new().block_on(future)
    }

    async fn ping_pong(round_trips: u64) -> anyhow::Result<Duration> {
        let (done, returned) = oneshot::channel();
        let pong = Ponger { pinger: None }.start();
        let pinger = Pinger {
            pong: pong.clone(),
            round_trips,
            returned: 0,
            done: Some(done),
        }
        .start();
        pong.do_send(Connect(pinger.clone()));
        let start = Instant::now();
        pinger.do_send(Serve);
        let returned = returned.await?;
        let elapsed = start.elapsed();
        harness::check_count("ping-pong round trips", returned, round_trips)?;
        Ok(elapsed)
    }

    async fn thread_ring(actors: usize, hops: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let ring: Vec<_> = (0..actors)
            .map(|_| {
                RingNode {
                    next: None,
                    done: done.clone(),
                }
                .start()
            })
            .collect();
        for (index, node) in ring.iter().enumerate() {
            node.do_send(SetNext(ring[(index + 1) % actors].clone()));
        }
        let start = Instant::now();
        ring[0].do_send(Token(hops));
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn counting(messages: u64) -> anyhow::Result<Duration> {
        let counter = Counter { count: 0 }.start();
        let start = Instant::now();
        for _ in 0..messages {
            counter.do_send(Increment);
        }
        let total = counter.send(GetCount).await?;
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
                ThroughputWorker {
                    received: 0,
                    expected: messages_per_worker,
                    done: done.clone(),
                }
                .start()
            })
            .collect();
        let start = Instant::now();
        for _ in 0..messages_per_worker {
            for worker in &workers {
                worker.do_send(Work);
            }
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fork_join_creation(actors: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors as usize));
        let start = Instant::now();
        for _ in 0..actors {
            let worker = OneShotWorker { done: done.clone() }.start();
            worker.do_send(Work);
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fibonacci(n: u32) -> anyhow::Result<Duration> {
        let (reply, result) = oneshot::channel();
        let start = Instant::now();
        FibActor::new(FibParent::Root(Some(reply)))
            .start()
            .do_send(Compute(n));
        let value = result.await?;
        let elapsed = start.elapsed();
        harness::check_fibonacci(n, value)?;
        Ok(elapsed)
    }

    async fn chameneos(chameneos: usize, meetings: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let start = Instant::now();
        let mall = Mall {
            waiting: None,
            arranged: 0,
            meetings,
            exited: 0,
            chameneos,
            done: done.clone(),
        }
        .start();
        for index in 0..chameneos {
            Chameneo {
                mall: mall.clone(),
                colour: Colour::for_index(index),
            }
            .start();
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn big(actors: usize, pings_per_actor: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors));
        let addresses: Vec<_> = (0..actors)
            .map(|index| {
                BigActor {
                    index,
                    neighbours: Arc::from([]),
                    picker: NeighbourPicker::new(index),
                    remaining: pings_per_actor,
                    done: done.clone(),
                }
                .start()
            })
            .collect();
        let neighbours: Arc<[Addr<BigActor>]> = addresses.into();
        for actor in neighbours.iter() {
            actor.do_send(Neighbours(neighbours.clone()));
        }
        let start = Instant::now();
        for actor in neighbours.iter() {
            actor.do_send(BigStart);
        }
        done.wait().await;
        let elapsed = start.elapsed();
        for actor in neighbours.iter() {
            actor.do_send(Exit);
        }
        Ok(elapsed)
    }

    async fn spawn(actors: u64) -> anyhow::Result<Duration> {
        let started = Arc::new(Latch::new(actors as usize));
        let mut handles = Vec::with_capacity(actors as usize);
        let start = Instant::now();
        for _ in 0..actors {
            handles.push(
                Starter {
                    started: started.clone(),
                }
                .start(),
            );
        }
        started.wait().await;
        Ok(start.elapsed())
    }

    async fn ask_latency(asks: u64) -> anyhow::Result<Vec<Duration>> {
        let server = Echo.start();
        let mut samples = Vec::with_capacity(asks as usize);
        for round in 0..2 * asks {
            let start = Instant::now();
            let answer = server.send(Ask(round)).await?;
            let elapsed = start.elapsed();
            harness::check_count("ask reply", answer, round + 1)?;
            if round >= asks {
                samples.push(elapsed);
            }
        }
        Ok(samples)
    }

    async fn idle_actor_bytes(actors: usize) -> anyhow::Result<f64> {
        let mut handles: Vec<Option<Addr<Idle>>> = (0..actors).map(|_| None).collect();
        let before = harness::resident_bytes()?;
        for slot in &mut handles {
            *slot = Some(Idle.start());
        }
        harness::wait_idle_started(actors).await?;
        harness::bytes_per_actor(before, actors)
    }
}

// PingPong: each actor keeps the other's address, handed out before the clock starts, because
// creating an `Addr` (`Context::address`) allocates in actix 0.13.

struct Ponger {
    pinger: Option<Addr<Pinger>>,
}

impl Actor for Ponger {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Connect(Addr<Pinger>);

impl Handler<Connect> for Ponger {
    type Result = ();

    fn handle(&mut self, Connect(pinger): Connect, _: &mut Context<Self>) {
        self.pinger = Some(pinger);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

impl Handler<Ping> for Ponger {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {
        if let Some(pinger) = &self.pinger {
            pinger.do_send(Pong);
        }
    }
}

struct Pinger {
    pong: Addr<Ponger>,
    round_trips: u64,
    returned: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Pinger {
    type Context = Context<Self>;
}

/// Starts the exchange.
#[derive(Message)]
#[rtype(result = "()")]
struct Serve;

impl Handler<Serve> for Pinger {
    type Result = ();

    fn handle(&mut self, _: Serve, _: &mut Context<Self>) {
        self.pong.do_send(Ping);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Pong;

impl Handler<Pong> for Pinger {
    type Result = ();

    fn handle(&mut self, _: Pong, ctx: &mut Context<Self>) {
        self.returned += 1;
        if self.returned < self.round_trips {
            self.pong.do_send(Ping);
        } else if let Some(done) = self.done.take() {
            let _ = done.send(self.returned);
            ctx.stop();
        }
    }
}

// ThreadRing.

struct RingNode {
    next: Option<Addr<RingNode>>,
    done: Arc<Latch>,
}

impl Actor for RingNode {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetNext(Addr<RingNode>);

impl Handler<SetNext> for RingNode {
    type Result = ();

    fn handle(&mut self, SetNext(next): SetNext, _: &mut Context<Self>) {
        self.next = Some(next);
    }
}

/// The ring token with the hops still to go.
#[derive(Message)]
#[rtype(result = "()")]
struct Token(u64);

impl Handler<Token> for RingNode {
    type Result = ();

    fn handle(&mut self, Token(remaining): Token, ctx: &mut Context<Self>) {
        match (&self.next, remaining) {
            (_, 0) | (None, _) => {
                self.done.count_down();
                self.next = None;
                ctx.stop();
            }
            (Some(next), _) => next.do_send(Token(remaining - 1)),
        }
    }
}

// Counting.

struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Increment;

impl Handler<Increment> for Counter {
    type Result = ();

    fn handle(&mut self, _: Increment, _: &mut Context<Self>) {
        self.count += 1;
    }
}

#[derive(Message)]
#[rtype(result = "u64")]
struct GetCount;

impl Handler<GetCount> for Counter {
    type Result = u64;

    fn handle(&mut self, _: GetCount, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

// Fork-Join throughput and creation.

#[derive(Message)]
#[rtype(result = "()")]
struct Work;

struct ThroughputWorker {
    received: u64,
    expected: u64,
    done: Arc<Latch>,
}

impl Actor for ThroughputWorker {
    type Context = Context<Self>;
}

impl Handler<Work> for ThroughputWorker {
    type Result = ();

    fn handle(&mut self, _: Work, _: &mut Context<Self>) {
        self.received += 1;
        if self.received == self.expected {
            self.done.count_down();
        }
    }
}

struct OneShotWorker {
    done: Arc<Latch>,
}

impl Actor for OneShotWorker {
    type Context = Context<Self>;
}

impl Handler<Work> for OneShotWorker {
    type Result = ();

    fn handle(&mut self, _: Work, ctx: &mut Context<Self>) {
        self.done.count_down();
        ctx.stop();
    }
}

// Fibonacci.

enum FibParent {
    Root(Option<oneshot::Sender<u64>>),
    Actor(Addr<FibActor>),
}

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

    fn finish(&mut self, value: u64, ctx: &mut Context<Self>) {
        match &mut self.parent {
            FibParent::Root(reply) => {
                if let Some(reply) = reply.take() {
                    let _ = reply.send(value);
                }
            }
            FibParent::Actor(parent) => parent.do_send(Partial(value)),
        }
        ctx.stop();
    }
}

impl Actor for FibActor {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Compute(u32);

impl Handler<Compute> for FibActor {
    type Result = ();

    fn handle(&mut self, Compute(n): Compute, ctx: &mut Context<Self>) {
        if n < 2 {
            self.finish(u64::from(n), ctx);
            return;
        }
        self.pending = 2;
        for child_n in [n - 1, n - 2] {
            FibActor::new(FibParent::Actor(ctx.address()))
                .start()
                .do_send(Compute(child_n));
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Partial(u64);

impl Handler<Partial> for FibActor {
    type Result = ();

    fn handle(&mut self, Partial(value): Partial, ctx: &mut Context<Self>) {
        self.sum += value;
        self.pending -= 1;
        if self.pending == 0 {
            self.finish(self.sum, ctx);
        }
    }
}

// Chameneos.

struct Mall {
    waiting: Option<MeetMe>,
    arranged: u64,
    meetings: u64,
    exited: usize,
    chameneos: usize,
    done: Arc<Latch>,
}

impl Actor for Mall {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct MeetMe {
    from: Addr<Chameneo>,
    colour: Colour,
}

impl Handler<MeetMe> for Mall {
    type Result = ();

    fn handle(&mut self, request: MeetMe, ctx: &mut Context<Self>) {
        if self.arranged == self.meetings {
            request.from.do_send(Exit);
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
                first.from.do_send(Mate {
                    partner: request.from,
                    colour: request.colour,
                });
            }
        }
    }
}

struct Chameneo {
    mall: Addr<Mall>,
    colour: Colour,
}

impl Chameneo {
    fn request_meeting(&self, ctx: &mut Context<Self>) {
        self.mall.do_send(MeetMe {
            from: ctx.address(),
            colour: self.colour,
        });
    }
}

impl Actor for Chameneo {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.request_meeting(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Mate {
    partner: Addr<Chameneo>,
    colour: Colour,
}

impl Handler<Mate> for Chameneo {
    type Result = ();

    fn handle(&mut self, mate: Mate, ctx: &mut Context<Self>) {
        self.colour = self.colour.complement(mate.colour);
        mate.partner.do_send(Changed(self.colour));
        self.request_meeting(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Changed(Colour);

impl Handler<Changed> for Chameneo {
    type Result = ();

    fn handle(&mut self, Changed(colour): Changed, ctx: &mut Context<Self>) {
        self.colour = colour;
        self.request_meeting(ctx);
    }
}

/// Stops the receiving actor.
#[derive(Message)]
#[rtype(result = "()")]
struct Exit;

impl Handler<Exit> for Chameneo {
    type Result = ();

    fn handle(&mut self, _: Exit, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

// Big.

struct BigActor {
    index: usize,
    neighbours: Arc<[Addr<BigActor>]>,
    picker: NeighbourPicker,
    remaining: u64,
    done: Arc<Latch>,
}

impl BigActor {
    fn ping_someone(&mut self) {
        let target = self.picker.pick(self.index, self.neighbours.len());
        self.neighbours[target].do_send(BigPing { from: self.index });
    }
}

impl Actor for BigActor {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Neighbours(Arc<[Addr<BigActor>]>);

impl Handler<Neighbours> for BigActor {
    type Result = ();

    fn handle(&mut self, Neighbours(neighbours): Neighbours, _: &mut Context<Self>) {
        self.neighbours = neighbours;
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct BigStart;

impl Handler<BigStart> for BigActor {
    type Result = ();

    fn handle(&mut self, _: BigStart, _: &mut Context<Self>) {
        self.ping_someone();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct BigPing {
    from: usize,
}

impl Handler<BigPing> for BigActor {
    type Result = ();

    fn handle(&mut self, ping: BigPing, _: &mut Context<Self>) {
        self.neighbours[ping.from].do_send(BigPong);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct BigPong;

impl Handler<BigPong> for BigActor {
    type Result = ();

    fn handle(&mut self, _: BigPong, _: &mut Context<Self>) {
        self.remaining -= 1;
        if self.remaining == 0 {
            self.done.count_down();
        } else {
            self.ping_someone();
        }
    }
}

impl Handler<Exit> for BigActor {
    type Result = ();

    fn handle(&mut self, _: Exit, ctx: &mut Context<Self>) {
        self.neighbours = Arc::from([]);
        ctx.stop();
    }
}

// Spawn rate, ask latency and idle memory.

struct Starter {
    started: Arc<Latch>,
}

impl Actor for Starter {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.started.count_down();
    }
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ask(u64);

impl Handler<Ask> for Echo {
    type Result = u64;

    fn handle(&mut self, Ask(value): Ask, _: &mut Context<Self>) -> u64 {
        value + 1
    }
}

struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        harness::idle_actor_started();
    }
}
