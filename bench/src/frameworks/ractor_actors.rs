//! ractor 0.16 with its default features on tokio's default multi-thread runtime: unbounded
//! mailboxes, `cast` for fire-and-forget, `call!` for request-reply, and `Actor::spawn`,
//! which returns once the new actor's `pre_start` has run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{call, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use crate::harness::{self, Colour, Framework, Latch, NeighbourPicker};

/// ractor actors on the default tokio runtime.
pub struct Ractor;

impl Framework for Ractor {
    const NAME: &'static str = "ractor";

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        super::block_on_tokio_task(future)
    }

    async fn ping_pong(round_trips: u64) -> anyhow::Result<Duration> {
        let (done, returned) = oneshot::channel();
        let (pong, _) = Actor::spawn(None, Ponger, ()).await?;
        let args = PingerArgs {
            pong: pong.clone(),
            round_trips,
            done,
        };
        let (pinger, _) = Actor::spawn(None, Pinger, args).await?;
        pong.cast(PongerMsg::Connect(pinger.clone()))?;
        let start = Instant::now();
        pinger.cast(PingerMsg::Serve)?;
        let returned = returned.await?;
        let elapsed = start.elapsed();
        harness::check_count("ping-pong round trips", returned, round_trips)?;
        Ok(elapsed)
    }

    async fn thread_ring(actors: usize, hops: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let mut ring = Vec::with_capacity(actors);
        for _ in 0..actors {
            ring.push(Actor::spawn(None, RingNode, done.clone()).await?.0);
        }
        for (index, node) in ring.iter().enumerate() {
            node.cast(RingMsg::SetNext(ring[(index + 1) % actors].clone()))?;
        }
        let start = Instant::now();
        ring[0].cast(RingMsg::Token(hops))?;
        done.wait().await;
        let elapsed = start.elapsed();
        for node in &ring {
            node.stop(None);
        }
        Ok(elapsed)
    }

    async fn counting(messages: u64) -> anyhow::Result<Duration> {
        let (counter, _) = Actor::spawn(None, Counter, ()).await?;
        let start = Instant::now();
        for _ in 0..messages {
            counter.cast(CounterMsg::Increment)?;
        }
        let total = call!(counter, CounterMsg::Get)?;
        let elapsed = start.elapsed();
        harness::check_count("counting", total, messages)?;
        Ok(elapsed)
    }

    async fn fork_join_throughput(
        workers: usize,
        messages_per_worker: u64,
    ) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(workers));
        let mut refs = Vec::with_capacity(workers);
        for _ in 0..workers {
            let args = (messages_per_worker, done.clone());
            refs.push(Actor::spawn(None, ThroughputWorker, args).await?.0);
        }
        let start = Instant::now();
        for _ in 0..messages_per_worker {
            for worker in &refs {
                worker.cast(Work)?;
            }
        }
        done.wait().await;
        let elapsed = start.elapsed();
        for worker in &refs {
            worker.stop(None);
        }
        Ok(elapsed)
    }

    async fn fork_join_creation(actors: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors as usize));
        let start = Instant::now();
        for _ in 0..actors {
            let (worker, _) = Actor::spawn(None, OneShotWorker, done.clone()).await?;
            worker.cast(Work)?;
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fibonacci(n: u32) -> anyhow::Result<Duration> {
        let (reply, result) = oneshot::channel();
        let start = Instant::now();
        let (root, _) = Actor::spawn(None, FibActor, FibParent::Root(Some(reply))).await?;
        root.cast(FibMsg::Compute(n))?;
        let value = result.await?;
        let elapsed = start.elapsed();
        harness::check_fibonacci(n, value)?;
        Ok(elapsed)
    }

    async fn chameneos(chameneos: usize, meetings: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let start = Instant::now();
        let mall_args = MallState {
            waiting: None,
            arranged: 0,
            meetings,
            exited: 0,
            chameneos,
            done: done.clone(),
        };
        let (mall, _) = Actor::spawn(None, Mall, mall_args).await?;
        for index in 0..chameneos {
            let args = ChameneoState {
                mall: mall.clone(),
                colour: Colour::for_index(index),
            };
            Actor::spawn(None, Chameneo, args).await?;
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn big(actors: usize, pings_per_actor: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors));
        let mut refs = Vec::with_capacity(actors);
        for index in 0..actors {
            let args = BigState {
                index,
                neighbours: Arc::from([]),
                picker: NeighbourPicker::new(index),
                remaining: pings_per_actor,
                done: done.clone(),
            };
            refs.push(Actor::spawn(None, BigActor, args).await?.0);
        }
        let neighbours: Arc<[ActorRef<BigMsg>]> = refs.into();
        for actor in neighbours.iter() {
            actor.cast(BigMsg::Neighbours(neighbours.clone()))?;
        }
        let start = Instant::now();
        for actor in neighbours.iter() {
            actor.cast(BigMsg::Start)?;
        }
        done.wait().await;
        let elapsed = start.elapsed();
        for actor in neighbours.iter() {
            actor.stop(None);
        }
        Ok(elapsed)
    }

    async fn spawn(actors: u64) -> anyhow::Result<Duration> {
        let started = Arc::new(Latch::new(actors as usize));
        let mut handles = Vec::with_capacity(actors as usize);
        let start = Instant::now();
        for _ in 0..actors {
            handles.push(Actor::spawn(None, Starter, started.clone()).await?.0);
        }
        started.wait().await;
        let elapsed = start.elapsed();
        for handle in &handles {
            handle.stop(None);
        }
        Ok(elapsed)
    }

    async fn ask_latency(asks: u64) -> anyhow::Result<Vec<Duration>> {
        let (server, _) = Actor::spawn(None, Echo, ()).await?;
        let mut samples = Vec::with_capacity(asks as usize);
        for round in 0..2 * asks {
            let start = Instant::now();
            let answer = call!(server, EchoMsg::Ask, round)?;
            let elapsed = start.elapsed();
            harness::check_count("ask reply", answer, round + 1)?;
            if round >= asks {
                samples.push(elapsed);
            }
        }
        server.stop(None);
        Ok(samples)
    }

    async fn idle_actor_bytes(actors: usize) -> anyhow::Result<f64> {
        let mut handles: Vec<Option<ActorRef<()>>> = (0..actors).map(|_| None).collect();
        let before = harness::resident_bytes()?;
        for slot in &mut handles {
            *slot = Some(Actor::spawn(None, Idle, ()).await?.0);
        }
        harness::wait_idle_started(actors).await?;
        harness::bytes_per_actor(before, actors)
    }
}

// PingPong: each actor keeps the other's ref, handed out before the clock starts.

struct Ponger;

enum PongerMsg {
    Connect(ActorRef<PingerMsg>),
    Ping,
}

impl Actor for Ponger {
    type Msg = PongerMsg;
    type State = Option<ActorRef<PingerMsg>>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<PongerMsg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(None)
    }

    async fn handle(
        &self,
        _: ActorRef<PongerMsg>,
        message: PongerMsg,
        pinger: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match (message, &pinger) {
            (PongerMsg::Connect(connected), _) => *pinger = Some(connected),
            (PongerMsg::Ping, Some(pinger)) => pinger.cast(PingerMsg::Pong)?,
            (PongerMsg::Ping, None) => {}
        }
        Ok(())
    }
}

struct Pinger;

enum PingerMsg {
    /// Starts the exchange.
    Serve,
    Pong,
}

struct PingerArgs {
    pong: ActorRef<PongerMsg>,
    round_trips: u64,
    done: oneshot::Sender<u64>,
}

struct PingerState {
    args: PingerArgs,
    returned: u64,
}

impl Actor for Pinger {
    type Msg = PingerMsg;
    type State = Option<PingerState>;
    type Arguments = PingerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<PingerMsg>,
        args: PingerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Some(PingerState { args, returned: 0 }))
    }

    async fn handle(
        &self,
        myself: ActorRef<PingerMsg>,
        message: PingerMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(running) = state else {
            return Ok(());
        };
        if let PingerMsg::Pong = message {
            running.returned += 1;
        }
        if running.returned < running.args.round_trips {
            running.args.pong.cast(PongerMsg::Ping)?;
        } else if let Some(finished) = state.take() {
            let _ = finished.args.done.send(finished.returned);
            finished.args.pong.stop(None);
            myself.stop(None);
        }
        Ok(())
    }
}

// ThreadRing.

struct RingNode;

enum RingMsg {
    SetNext(ActorRef<RingMsg>),
    /// The ring token with the hops still to go.
    Token(u64),
}

struct RingState {
    next: Option<ActorRef<RingMsg>>,
    done: Arc<Latch>,
}

impl Actor for RingNode {
    type Msg = RingMsg;
    type State = RingState;
    type Arguments = Arc<Latch>;

    async fn pre_start(
        &self,
        _: ActorRef<RingMsg>,
        done: Arc<Latch>,
    ) -> Result<RingState, ActorProcessingErr> {
        Ok(RingState { next: None, done })
    }

    async fn handle(
        &self,
        _: ActorRef<RingMsg>,
        message: RingMsg,
        state: &mut RingState,
    ) -> Result<(), ActorProcessingErr> {
        match (message, &state.next) {
            (RingMsg::SetNext(next), _) => state.next = Some(next),
            (RingMsg::Token(0), _) | (RingMsg::Token(_), None) => state.done.count_down(),
            (RingMsg::Token(remaining), Some(next)) => next.cast(RingMsg::Token(remaining - 1))?,
        }
        Ok(())
    }
}

// Counting.

struct Counter;

enum CounterMsg {
    Increment,
    Get(RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<CounterMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        message: CounterMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CounterMsg::Increment => *count += 1,
            CounterMsg::Get(reply) => reply.send(*count)?,
        }
        Ok(())
    }
}

// Fork-Join throughput and creation.

struct Work;

struct ThroughputWorker;

impl Actor for ThroughputWorker {
    type Msg = Work;
    /// Messages received, messages expected, and the latch to count down at the last one.
    type State = (u64, u64, Arc<Latch>);
    type Arguments = (u64, Arc<Latch>);

    async fn pre_start(
        &self,
        _: ActorRef<Work>,
        (expected, done): (u64, Arc<Latch>),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, expected, done))
    }

    async fn handle(
        &self,
        _: ActorRef<Work>,
        _: Work,
        (received, expected, done): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        *received += 1;
        if received == expected {
            done.count_down();
        }
        Ok(())
    }
}

struct OneShotWorker;

impl Actor for OneShotWorker {
    type Msg = Work;
    type State = Arc<Latch>;
    type Arguments = Arc<Latch>;

    async fn pre_start(
        &self,
        _: ActorRef<Work>,
        done: Arc<Latch>,
    ) -> Result<Arc<Latch>, ActorProcessingErr> {
        Ok(done)
    }

    async fn handle(
        &self,
        myself: ActorRef<Work>,
        _: Work,
        done: &mut Arc<Latch>,
    ) -> Result<(), ActorProcessingErr> {
        done.count_down();
        myself.stop(None);
        Ok(())
    }
}

// Fibonacci.

struct FibActor;

enum FibParent {
    Root(Option<oneshot::Sender<u64>>),
    Actor(ActorRef<FibMsg>),
}

enum FibMsg {
    Compute(u32),
    Partial(u64),
}

struct FibState {
    parent: FibParent,
    pending: u8,
    sum: u64,
}

impl FibState {
    fn finish(&mut self, value: u64, myself: &ActorRef<FibMsg>) -> Result<(), ActorProcessingErr> {
        match &mut self.parent {
            FibParent::Root(reply) => {
                if let Some(reply) = reply.take() {
                    let _ = reply.send(value);
                }
            }
            FibParent::Actor(parent) => parent.cast(FibMsg::Partial(value))?,
        }
        myself.stop(None);
        Ok(())
    }
}

impl Actor for FibActor {
    type Msg = FibMsg;
    type State = FibState;
    type Arguments = FibParent;

    async fn pre_start(
        &self,
        _: ActorRef<FibMsg>,
        parent: FibParent,
    ) -> Result<FibState, ActorProcessingErr> {
        Ok(FibState {
            parent,
            pending: 0,
            sum: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<FibMsg>,
        message: FibMsg,
        state: &mut FibState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            FibMsg::Compute(n) if n < 2 => state.finish(u64::from(n), &myself)?,
            FibMsg::Compute(n) => {
                state.pending = 2;
                for child_n in [n - 1, n - 2] {
                    let parent = FibParent::Actor(myself.clone());
                    let (child, _) = Actor::spawn(None, FibActor, parent).await?;
                    child.cast(FibMsg::Compute(child_n))?;
                }
            }
            FibMsg::Partial(value) => {
                state.sum += value;
                state.pending -= 1;
                if state.pending == 0 {
                    state.finish(state.sum, &myself)?;
                }
            }
        }
        Ok(())
    }
}

// Chameneos.

struct Mall;

struct MeetMe {
    from: ActorRef<ChameneoMsg>,
    colour: Colour,
}

struct MallState {
    waiting: Option<MeetMe>,
    arranged: u64,
    meetings: u64,
    exited: usize,
    chameneos: usize,
    done: Arc<Latch>,
}

impl Actor for Mall {
    type Msg = MeetMe;
    type State = MallState;
    type Arguments = MallState;

    async fn pre_start(
        &self,
        _: ActorRef<MeetMe>,
        state: MallState,
    ) -> Result<MallState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<MeetMe>,
        request: MeetMe,
        state: &mut MallState,
    ) -> Result<(), ActorProcessingErr> {
        if state.arranged == state.meetings {
            request.from.stop(None);
            state.exited += 1;
            if state.exited == state.chameneos {
                state.done.count_down();
                myself.stop(None);
            }
            return Ok(());
        }
        match state.waiting.take() {
            None => state.waiting = Some(request),
            Some(first) => {
                state.arranged += 1;
                first.from.cast(ChameneoMsg::Mate {
                    partner: request.from,
                    colour: request.colour,
                })?;
            }
        }
        Ok(())
    }
}

struct Chameneo;

enum ChameneoMsg {
    /// The mall paired this chameneo with `partner`.
    Mate {
        partner: ActorRef<ChameneoMsg>,
        colour: Colour,
    },
    /// The partner computed the colour both now have.
    Changed(Colour),
}

struct ChameneoState {
    mall: ActorRef<MeetMe>,
    colour: Colour,
}

impl ChameneoState {
    fn request_meeting(&self, myself: ActorRef<ChameneoMsg>) -> Result<(), ActorProcessingErr> {
        self.mall.cast(MeetMe {
            from: myself,
            colour: self.colour,
        })?;
        Ok(())
    }
}

impl Actor for Chameneo {
    type Msg = ChameneoMsg;
    type State = ChameneoState;
    type Arguments = ChameneoState;

    async fn pre_start(
        &self,
        _: ActorRef<ChameneoMsg>,
        state: ChameneoState,
    ) -> Result<ChameneoState, ActorProcessingErr> {
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<ChameneoMsg>,
        state: &mut ChameneoState,
    ) -> Result<(), ActorProcessingErr> {
        state.request_meeting(myself)
    }

    async fn handle(
        &self,
        myself: ActorRef<ChameneoMsg>,
        message: ChameneoMsg,
        state: &mut ChameneoState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChameneoMsg::Mate { partner, colour } => {
                state.colour = state.colour.complement(colour);
                partner.cast(ChameneoMsg::Changed(state.colour))?;
            }
            ChameneoMsg::Changed(colour) => state.colour = colour,
        }
        state.request_meeting(myself)
    }
}

// Big.

struct BigActor;

enum BigMsg {
    Neighbours(Arc<[ActorRef<BigMsg>]>),
    Start,
    Ping { from: usize },
    Pong,
}

struct BigState {
    index: usize,
    neighbours: Arc<[ActorRef<BigMsg>]>,
    picker: NeighbourPicker,
    remaining: u64,
    done: Arc<Latch>,
}

impl BigState {
    fn ping_someone(&mut self) -> Result<(), ActorProcessingErr> {
        let target = self.picker.pick(self.index, self.neighbours.len());
        self.neighbours[target].cast(BigMsg::Ping { from: self.index })?;
        Ok(())
    }
}

impl Actor for BigActor {
    type Msg = BigMsg;
    type State = BigState;
    type Arguments = BigState;

    async fn pre_start(
        &self,
        _: ActorRef<BigMsg>,
        state: BigState,
    ) -> Result<BigState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<BigMsg>,
        message: BigMsg,
        state: &mut BigState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BigMsg::Neighbours(neighbours) => state.neighbours = neighbours,
            BigMsg::Start => state.ping_someone()?,
            BigMsg::Ping { from } => state.neighbours[from].cast(BigMsg::Pong)?,
            BigMsg::Pong => {
                state.remaining -= 1;
                if state.remaining == 0 {
                    state.done.count_down();
                } else {
                    state.ping_someone()?;
                }
            }
        }
        Ok(())
    }
}

// Spawn rate, ask latency and idle memory.

struct Starter;

impl Actor for Starter {
    type Msg = ();
    type State = ();
    type Arguments = Arc<Latch>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        started: Arc<Latch>,
    ) -> Result<(), ActorProcessingErr> {
        started.count_down();
        Ok(())
    }
}

struct Echo;

enum EchoMsg {
    Ask(u64, RpcReplyPort<u64>),
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        EchoMsg::Ask(value, reply): EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        reply.send(value + 1)?;
        Ok(())
    }
}

struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        harness::idle_actor_started();
        Ok(())
    }
}

// ractor's `cluster` feature, which the remote benchmark needs, drops the blanket `Message`
// impl: every local message type names it.
impl ractor::Message for PongerMsg {}
impl ractor::Message for PingerMsg {}
impl ractor::Message for RingMsg {}
impl ractor::Message for CounterMsg {}
impl ractor::Message for Work {}
impl ractor::Message for FibMsg {}
impl ractor::Message for MeetMe {}
impl ractor::Message for ChameneoMsg {}
impl ractor::Message for BigMsg {}
impl ractor::Message for EchoMsg {}
