//! akkord's local runtime (`akkord-actor`) with its defaults on tokio's default multi-thread
//! runtime: one `ActorSystem` per workload, actors started from `Props` under `/user` (or as
//! children with `Context::spawn_anonymous`), unbounded mailboxes, 32 messages per turn,
//! `ActorRef::tell` for fire-and-forget and `ActorRef::ask` with a reply ref for
//! request-reply.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, Context, Props};

use crate::harness::{self, Colour, Framework, Latch, NeighbourPicker};

/// Upper bound on one `ask` of a workload; the cell timeout ends the run first.
const ASK_TIMEOUT: Duration = Duration::from_secs(300);

/// Upper bound on terminating a workload's actor system after the measurement.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);

/// akkord actors on the default tokio runtime.
pub struct Akkord;

impl Framework for Akkord {
    const NAME: &'static str = "akkord";

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        super::block_on_tokio_task(future)
    }

    async fn ping_pong(round_trips: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let pong = system.spawn_anonymous(Props::new(|| Ponger { pinger: None }))?;
        let pinger = {
            let pong = pong.clone();
            system.spawn_anonymous(Props::new(move || Pinger {
                pong: pong.clone(),
                round_trips,
                returned: 0,
                reply_to: None,
            }))?
        };
        pong.tell(PongerMsg::Connect(pinger.clone()));
        let start = Instant::now();
        let returned = pinger
            .ask(|reply_to| PingerMsg::Serve { reply_to }, ASK_TIMEOUT)
            .await?;
        let elapsed = start.elapsed();
        terminate(system).await;
        harness::check_count("ping-pong round trips", returned, round_trips)?;
        Ok(elapsed)
    }

    async fn thread_ring(actors: usize, hops: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let done = Arc::new(Latch::new(1));
        let props = {
            let done = done.clone();
            Props::new(move || RingNode {
                next: None,
                done: done.clone(),
            })
        };
        let ring = (0..actors)
            .map(|_| system.spawn_anonymous(props.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        for (index, node) in ring.iter().enumerate() {
            node.tell(RingMsg::SetNext(ring[(index + 1) % actors].clone()));
        }
        let start = Instant::now();
        ring[0].tell(RingMsg::Token(hops));
        done.wait().await;
        let elapsed = start.elapsed();
        terminate(system).await;
        Ok(elapsed)
    }

    async fn counting(messages: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let counter = system.spawn_anonymous(Props::new(|| Counter { count: 0 }))?;
        let start = Instant::now();
        for _ in 0..messages {
            counter.tell(CounterMsg::Increment);
        }
        let total = counter.ask(CounterMsg::Get, ASK_TIMEOUT).await?;
        let elapsed = start.elapsed();
        terminate(system).await;
        harness::check_count("counting", total, messages)?;
        Ok(elapsed)
    }

    async fn fork_join_throughput(
        workers: usize,
        messages_per_worker: u64,
    ) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let done = Arc::new(Latch::new(workers));
        let props = {
            let done = done.clone();
            Props::new(move || ThroughputWorker {
                received: 0,
                expected: messages_per_worker,
                done: done.clone(),
            })
        };
        let workers = (0..workers)
            .map(|_| system.spawn_anonymous(props.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let start = Instant::now();
        for _ in 0..messages_per_worker {
            for worker in &workers {
                worker.tell(Work);
            }
        }
        done.wait().await;
        let elapsed = start.elapsed();
        terminate(system).await;
        Ok(elapsed)
    }

    async fn fork_join_creation(actors: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let done = Arc::new(Latch::new(actors as usize));
        let props = {
            let done = done.clone();
            Props::new(move || OneShotWorker { done: done.clone() })
        };
        let start = Instant::now();
        for _ in 0..actors {
            system.spawn_anonymous(props.clone())?.tell(Work);
        }
        done.wait().await;
        let elapsed = start.elapsed();
        terminate(system).await;
        Ok(elapsed)
    }

    async fn fibonacci(n: u32) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let start = Instant::now();
        let root = system.spawn_anonymous(Props::new(FibActor::default))?;
        let value = root
            .ask(
                |reply_to| FibMsg::Compute {
                    n,
                    parent: FibParent::Root(reply_to),
                },
                ASK_TIMEOUT,
            )
            .await?;
        let elapsed = start.elapsed();
        terminate(system).await;
        harness::check_fibonacci(n, value)?;
        Ok(elapsed)
    }

    async fn chameneos(chameneos: usize, meetings: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let done = Arc::new(Latch::new(1));
        let start = Instant::now();
        let mall = {
            let done = done.clone();
            system.spawn_anonymous(Props::new(move || Mall {
                waiting: None,
                arranged: 0,
                meetings,
                exited: 0,
                chameneos,
                done: done.clone(),
            }))?
        };
        for index in 0..chameneos {
            let mall = mall.clone();
            system.spawn_anonymous(Props::new(move || Chameneo {
                mall: mall.clone(),
                colour: Colour::for_index(index),
            }))?;
        }
        done.wait().await;
        let elapsed = start.elapsed();
        terminate(system).await;
        Ok(elapsed)
    }

    async fn big(actors: usize, pings_per_actor: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let done = Arc::new(Latch::new(actors));
        let mut refs = Vec::with_capacity(actors);
        for index in 0..actors {
            let done = done.clone();
            refs.push(system.spawn_anonymous(Props::new(move || BigActor {
                index,
                neighbours: Arc::from([]),
                picker: NeighbourPicker::new(index),
                remaining: pings_per_actor,
                done: done.clone(),
            }))?);
        }
        let neighbours: Arc<[ActorRef<BigMsg>]> = refs.into();
        for actor in neighbours.iter() {
            actor.tell(BigMsg::Neighbours(neighbours.clone()));
        }
        let start = Instant::now();
        for actor in neighbours.iter() {
            actor.tell(BigMsg::Start);
        }
        done.wait().await;
        let elapsed = start.elapsed();
        for actor in neighbours.iter() {
            actor.tell(BigMsg::Exit);
        }
        terminate(system).await;
        Ok(elapsed)
    }

    async fn spawn(actors: u64) -> anyhow::Result<Duration> {
        let system = ActorSystem::new("bench")?;
        let started = Arc::new(Latch::new(actors as usize));
        let props = {
            let started = started.clone();
            Props::new(move || Starter {
                started: started.clone(),
            })
        };
        let mut handles = Vec::with_capacity(actors as usize);
        let start = Instant::now();
        for _ in 0..actors {
            handles.push(system.spawn_anonymous(props.clone())?);
        }
        started.wait().await;
        let elapsed = start.elapsed();
        terminate(system).await;
        Ok(elapsed)
    }

    async fn ask_latency(asks: u64) -> anyhow::Result<Vec<Duration>> {
        let system = ActorSystem::new("bench")?;
        let server = system.spawn_anonymous(Props::new(|| Echo))?;
        let mut samples = Vec::with_capacity(asks as usize);
        for round in 0..2 * asks {
            let start = Instant::now();
            let answer = server
                .ask(|reply_to| Ask(round, reply_to), ASK_TIMEOUT)
                .await?;
            let elapsed = start.elapsed();
            harness::check_count("ask reply", answer, round + 1)?;
            if round >= asks {
                samples.push(elapsed);
            }
        }
        terminate(system).await;
        Ok(samples)
    }

    async fn idle_actor_bytes(actors: usize) -> anyhow::Result<f64> {
        let system = ActorSystem::new("bench")?;
        let props = Props::new(|| Idle);
        let mut handles: Vec<Option<ActorRef<()>>> = (0..actors).map(|_| None).collect();
        let before = harness::resident_bytes()?;
        for slot in &mut handles {
            *slot = Some(system.spawn_anonymous(props.clone())?);
        }
        harness::wait_idle_started(actors).await?;
        harness::bytes_per_actor(before, actors)
    }
}

/// Terminates `system` after a measurement, giving up after [`TERMINATE_TIMEOUT`]. The
/// runtime is dropped next, which ends whatever is left.
async fn terminate(system: ActorSystem) {
    if tokio::time::timeout(TERMINATE_TIMEOUT, system.terminate())
        .await
        .is_err()
    {
        eprint!("(akkord system did not terminate within {TERMINATE_TIMEOUT:?}) ");
    }
}

// PingPong: each actor keeps the other's ref, handed out before the clock starts.

struct Ponger {
    pinger: Option<ActorRef<PingerMsg>>,
}

enum PongerMsg {
    Connect(ActorRef<PingerMsg>),
    Ping,
}

impl Actor for Ponger {
    type Msg = PongerMsg;

    async fn handle(&mut self, _: &mut Context<Self>, msg: PongerMsg) -> ActorResult {
        match (msg, &self.pinger) {
            (PongerMsg::Connect(pinger), _) => self.pinger = Some(pinger),
            (PongerMsg::Ping, Some(pinger)) => pinger.tell(PingerMsg::Pong),
            (PongerMsg::Ping, None) => {}
        }
        Ok(())
    }
}

struct Pinger {
    pong: ActorRef<PongerMsg>,
    round_trips: u64,
    returned: u64,
    reply_to: Option<ActorRef<u64>>,
}

enum PingerMsg {
    /// Starts the exchange; the number of round trips goes to `reply_to` at the end.
    Serve {
        reply_to: ActorRef<u64>,
    },
    Pong,
}

impl Actor for Pinger {
    type Msg = PingerMsg;

    async fn handle(&mut self, _: &mut Context<Self>, msg: PingerMsg) -> ActorResult {
        match msg {
            PingerMsg::Serve { reply_to } => self.reply_to = Some(reply_to),
            PingerMsg::Pong => self.returned += 1,
        }
        if self.returned < self.round_trips {
            self.pong.tell(PongerMsg::Ping);
        } else if let Some(reply_to) = self.reply_to.take() {
            reply_to.tell(self.returned);
        }
        Ok(())
    }
}

// ThreadRing.

struct RingNode {
    next: Option<ActorRef<RingMsg>>,
    done: Arc<Latch>,
}

enum RingMsg {
    SetNext(ActorRef<RingMsg>),
    /// The ring token with the hops still to go.
    Token(u64),
}

impl Actor for RingNode {
    type Msg = RingMsg;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: RingMsg) -> ActorResult {
        match (msg, &self.next) {
            (RingMsg::SetNext(next), _) => self.next = Some(next),
            (RingMsg::Token(0), _) | (RingMsg::Token(_), None) => {
                self.done.count_down();
                self.next = None;
                ctx.stop_self();
            }
            (RingMsg::Token(remaining), Some(next)) => next.tell(RingMsg::Token(remaining - 1)),
        }
        Ok(())
    }
}

// Counting.

struct Counter {
    count: u64,
}

enum CounterMsg {
    Increment,
    Get(ActorRef<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;

    async fn handle(&mut self, _: &mut Context<Self>, msg: CounterMsg) -> ActorResult {
        match msg {
            CounterMsg::Increment => self.count += 1,
            CounterMsg::Get(reply_to) => reply_to.tell(self.count),
        }
        Ok(())
    }
}

// Fork-Join throughput and creation.

struct Work;

struct ThroughputWorker {
    received: u64,
    expected: u64,
    done: Arc<Latch>,
}

impl Actor for ThroughputWorker {
    type Msg = Work;

    async fn handle(&mut self, _: &mut Context<Self>, _: Work) -> ActorResult {
        self.received += 1;
        if self.received == self.expected {
            self.done.count_down();
        }
        Ok(())
    }
}

struct OneShotWorker {
    done: Arc<Latch>,
}

impl Actor for OneShotWorker {
    type Msg = Work;

    async fn handle(&mut self, ctx: &mut Context<Self>, _: Work) -> ActorResult {
        self.done.count_down();
        ctx.stop_self();
        Ok(())
    }
}

// Fibonacci: each actor starts its two children with `Context::spawn_anonymous`.

enum FibParent {
    /// The `ask` of the driver.
    Root(ActorRef<u64>),
    Actor(ActorRef<FibMsg>),
}

enum FibMsg {
    Compute { n: u32, parent: FibParent },
    Partial(u64),
}

#[derive(Default)]
struct FibActor {
    parent: Option<FibParent>,
    pending: u8,
    sum: u64,
}

impl FibActor {
    fn finish(&mut self, value: u64, ctx: &mut Context<Self>) {
        match self.parent.take() {
            Some(FibParent::Root(reply_to)) => reply_to.tell(value),
            Some(FibParent::Actor(parent)) => parent.tell(FibMsg::Partial(value)),
            None => {}
        }
        ctx.stop_self();
    }
}

impl Actor for FibActor {
    type Msg = FibMsg;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: FibMsg) -> ActorResult {
        match msg {
            FibMsg::Compute { n, parent } => {
                self.parent = Some(parent);
                if n < 2 {
                    self.finish(u64::from(n), ctx);
                    return Ok(());
                }
                self.pending = 2;
                for child_n in [n - 1, n - 2] {
                    let child = ctx.spawn_anonymous(Props::new(FibActor::default))?;
                    child.tell(FibMsg::Compute {
                        n: child_n,
                        parent: FibParent::Actor(ctx.self_ref()),
                    });
                }
            }
            FibMsg::Partial(value) => {
                self.sum += value;
                self.pending -= 1;
                if self.pending == 0 {
                    self.finish(self.sum, ctx);
                }
            }
        }
        Ok(())
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

struct MeetMe {
    from: ActorRef<ChameneoMsg>,
    colour: Colour,
}

impl Actor for Mall {
    type Msg = MeetMe;

    async fn handle(&mut self, ctx: &mut Context<Self>, request: MeetMe) -> ActorResult {
        if self.arranged == self.meetings {
            request.from.tell(ChameneoMsg::Exit);
            self.exited += 1;
            if self.exited == self.chameneos {
                self.done.count_down();
                ctx.stop_self();
            }
            return Ok(());
        }
        match self.waiting.take() {
            None => self.waiting = Some(request),
            Some(first) => {
                self.arranged += 1;
                first.from.tell(ChameneoMsg::Mate {
                    partner: request.from,
                    colour: request.colour,
                });
            }
        }
        Ok(())
    }
}

struct Chameneo {
    mall: ActorRef<MeetMe>,
    colour: Colour,
}

enum ChameneoMsg {
    /// The mall paired this chameneo with `partner`.
    Mate {
        partner: ActorRef<ChameneoMsg>,
        colour: Colour,
    },
    /// The partner computed the colour both now have.
    Changed(Colour),
    /// The mall has arranged every meeting.
    Exit,
}

impl Chameneo {
    fn request_meeting(&self, ctx: &Context<Self>) {
        self.mall.tell(MeetMe {
            from: ctx.self_ref(),
            colour: self.colour,
        });
    }
}

impl Actor for Chameneo {
    type Msg = ChameneoMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        self.request_meeting(ctx);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: ChameneoMsg) -> ActorResult {
        match msg {
            ChameneoMsg::Mate { partner, colour } => {
                self.colour = self.colour.complement(colour);
                partner.tell(ChameneoMsg::Changed(self.colour));
            }
            ChameneoMsg::Changed(colour) => self.colour = colour,
            ChameneoMsg::Exit => {
                ctx.stop_self();
                return Ok(());
            }
        }
        self.request_meeting(ctx);
        Ok(())
    }
}

// Big.

struct BigActor {
    index: usize,
    neighbours: Arc<[ActorRef<BigMsg>]>,
    picker: NeighbourPicker,
    remaining: u64,
    done: Arc<Latch>,
}

enum BigMsg {
    Neighbours(Arc<[ActorRef<BigMsg>]>),
    Start,
    Ping { from: usize },
    Pong,
    Exit,
}

impl BigActor {
    fn ping_someone(&mut self) {
        let target = self.picker.pick(self.index, self.neighbours.len());
        self.neighbours[target].tell(BigMsg::Ping { from: self.index });
    }
}

impl Actor for BigActor {
    type Msg = BigMsg;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: BigMsg) -> ActorResult {
        match msg {
            BigMsg::Neighbours(neighbours) => self.neighbours = neighbours,
            BigMsg::Start => self.ping_someone(),
            BigMsg::Ping { from } => self.neighbours[from].tell(BigMsg::Pong),
            BigMsg::Pong => {
                self.remaining -= 1;
                if self.remaining == 0 {
                    self.done.count_down();
                } else {
                    self.ping_someone();
                }
            }
            BigMsg::Exit => {
                self.neighbours = Arc::from([]);
                ctx.stop_self();
            }
        }
        Ok(())
    }
}

// Spawn rate, ask latency and idle memory.

struct Starter {
    started: Arc<Latch>,
}

impl Actor for Starter {
    type Msg = ();

    async fn started(&mut self, _: &mut Context<Self>) -> ActorResult {
        self.started.count_down();
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> ActorResult {
        Ok(())
    }
}

struct Echo;

/// A request for `value + 1`, with the ref to send the reply to.
struct Ask(u64, ActorRef<u64>);

impl Actor for Echo {
    type Msg = Ask;

    async fn handle(&mut self, _: &mut Context<Self>, Ask(value, reply_to): Ask) -> ActorResult {
        reply_to.tell(value + 1);
        Ok(())
    }
}

struct Idle;

impl Actor for Idle {
    type Msg = ();

    async fn started(&mut self, _: &mut Context<Self>) -> ActorResult {
        harness::idle_actor_started();
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> ActorResult {
        Ok(())
    }
}
