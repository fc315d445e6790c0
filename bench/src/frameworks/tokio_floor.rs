//! The floor: each "actor" is a bare tokio task that owns its state and reads an unbounded
//! `tokio::sync::mpsc` channel; replies travel over `tokio::sync::oneshot`. No supervision,
//! no lifecycle hooks, no type erasure: what hand-written tokio code costs.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::harness::{self, Colour, Framework, Latch, NeighbourPicker};

/// Bare tokio tasks and channels on the default multi-thread runtime.
pub struct Tokio;

impl Framework for Tokio {
    const NAME: &'static str = "tokio";

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        super::block_on_tokio_task(future)
    }

    async fn ping_pong(round_trips: u64) -> anyhow::Result<Duration> {
        let (to_pong, mut pong_inbox) = unbounded_channel::<u64>();
        let (to_ping, mut ping_inbox) = unbounded_channel::<u64>();
        tokio::spawn(async move {
            while let Some(ball) = pong_inbox.recv().await {
                if to_ping.send(ball).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let pinger = tokio::spawn(async move {
            let mut returned = 0;
            for ball in 0..round_trips {
                to_pong.send(ball).ok()?;
                ping_inbox.recv().await?;
                returned += 1;
            }
            Some(returned)
        });
        let returned = pinger.await?.context("the pong task ended early")?;
        let elapsed = start.elapsed();
        harness::check_count("ping-pong round trips", returned, round_trips)?;
        Ok(elapsed)
    }

    async fn thread_ring(actors: usize, hops: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..actors).map(|_| unbounded_channel::<u64>()).unzip();
        for (index, mut inbox) in receivers.into_iter().enumerate() {
            let next = senders[(index + 1) % actors].clone();
            let done = done.clone();
            tokio::spawn(async move {
                while let Some(remaining) = inbox.recv().await {
                    if remaining == 0 {
                        done.count_down();
                        break;
                    }
                    if next.send(remaining - 1).is_err() {
                        break;
                    }
                }
            });
        }
        let start = Instant::now();
        senders[0].send(hops)?;
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn counting(messages: u64) -> anyhow::Result<Duration> {
        enum Command {
            Increment,
            Get(oneshot::Sender<u64>),
        }
        let (counter, mut inbox) = unbounded_channel::<Command>();
        tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(command) = inbox.recv().await {
                match command {
                    Command::Increment => count += 1,
                    Command::Get(reply) => {
                        let _ = reply.send(count);
                    }
                }
            }
        });
        let start = Instant::now();
        for _ in 0..messages {
            counter.send(Command::Increment)?;
        }
        let (reply, total) = oneshot::channel();
        counter.send(Command::Get(reply))?;
        let total = total.await?;
        let elapsed = start.elapsed();
        harness::check_count("counting", total, messages)?;
        Ok(elapsed)
    }

    async fn fork_join_throughput(
        workers: usize,
        messages_per_worker: u64,
    ) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(workers));
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (sender, mut inbox) = unbounded_channel::<()>();
            let done = done.clone();
            tokio::spawn(async move {
                let mut received = 0;
                while inbox.recv().await.is_some() {
                    received += 1;
                    if received == messages_per_worker {
                        done.count_down();
                    }
                }
            });
            senders.push(sender);
        }
        let start = Instant::now();
        for _ in 0..messages_per_worker {
            for worker in &senders {
                worker.send(())?;
            }
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fork_join_creation(actors: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors as usize));
        let start = Instant::now();
        for _ in 0..actors {
            let (sender, mut inbox) = unbounded_channel::<()>();
            let done = done.clone();
            tokio::spawn(async move {
                if inbox.recv().await.is_some() {
                    done.count_down();
                }
            });
            sender.send(())?;
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn fibonacci(n: u32) -> anyhow::Result<Duration> {
        let (reply, result) = oneshot::channel();
        let start = Instant::now();
        spawn_fibonacci(n, FibParent::Root(reply));
        let value = result.await?;
        let elapsed = start.elapsed();
        harness::check_fibonacci(n, value)?;
        Ok(elapsed)
    }

    async fn chameneos(chameneos: usize, meetings: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(1));
        let (mall, mall_inbox) = unbounded_channel::<MeetRequest>();
        let start = Instant::now();
        tokio::spawn(run_mall(mall_inbox, chameneos, meetings, done.clone()));
        for index in 0..chameneos {
            let (me, inbox) = unbounded_channel::<ChameneoMsg>();
            tokio::spawn(run_chameneo(
                me,
                inbox,
                mall.clone(),
                Colour::for_index(index),
            ));
        }
        done.wait().await;
        Ok(start.elapsed())
    }

    async fn big(actors: usize, pings_per_actor: u64) -> anyhow::Result<Duration> {
        let done = Arc::new(Latch::new(actors));
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..actors).map(|_| unbounded_channel::<BigMsg>()).unzip();
        let neighbours: Arc<[UnboundedSender<BigMsg>]> = senders.into();
        for (index, inbox) in receivers.into_iter().enumerate() {
            let state = BigState {
                index,
                neighbours: neighbours.clone(),
                picker: NeighbourPicker::new(index),
                remaining: pings_per_actor,
                done: done.clone(),
            };
            tokio::spawn(run_big(state, inbox));
        }
        let start = Instant::now();
        for neighbour in neighbours.iter() {
            neighbour.send(BigMsg::Start)?;
        }
        done.wait().await;
        let elapsed = start.elapsed();
        for neighbour in neighbours.iter() {
            let _ = neighbour.send(BigMsg::Exit);
        }
        Ok(elapsed)
    }

    async fn spawn(actors: u64) -> anyhow::Result<Duration> {
        let started = Arc::new(Latch::new(actors as usize));
        let mut handles = Vec::with_capacity(actors as usize);
        let start = Instant::now();
        for _ in 0..actors {
            let (sender, mut inbox) = unbounded_channel::<()>();
            let started = started.clone();
            tokio::spawn(async move {
                started.count_down();
                while inbox.recv().await.is_some() {}
            });
            handles.push(sender);
        }
        started.wait().await;
        Ok(start.elapsed())
    }

    async fn ask_latency(asks: u64) -> anyhow::Result<Vec<Duration>> {
        let (server, mut inbox) = unbounded_channel::<(u64, oneshot::Sender<u64>)>();
        tokio::spawn(async move {
            while let Some((value, reply)) = inbox.recv().await {
                let _ = reply.send(value + 1);
            }
        });
        let mut samples = Vec::with_capacity(asks as usize);
        for round in 0..2 * asks {
            let start = Instant::now();
            let (reply, answer) = oneshot::channel();
            server.send((round, reply))?;
            let answer = answer.await?;
            let elapsed = start.elapsed();
            harness::check_count("ask reply", answer, round + 1)?;
            if round >= asks {
                samples.push(elapsed);
            }
        }
        Ok(samples)
    }

    async fn idle_actor_bytes(actors: usize) -> anyhow::Result<f64> {
        let mut handles: Vec<Option<UnboundedSender<()>>> = (0..actors).map(|_| None).collect();
        let before = harness::resident_bytes()?;
        for slot in &mut handles {
            let (sender, mut inbox) = unbounded_channel::<()>();
            tokio::spawn(async move {
                harness::idle_actor_started();
                while inbox.recv().await.is_some() {}
            });
            *slot = Some(sender);
        }
        harness::wait_idle_started(actors).await?;
        harness::bytes_per_actor(before, actors)
    }
}

/// Recipient of a Fibonacci task's result.
enum FibParent {
    Root(oneshot::Sender<u64>),
    Task(UnboundedSender<u64>),
}

impl FibParent {
    fn send(self, value: u64) {
        match self {
            FibParent::Root(reply) => {
                let _ = reply.send(value);
            }
            FibParent::Task(parent) => {
                let _ = parent.send(value);
            }
        }
    }
}

/// Spawns the task for fib(`n`). That task spawns the tasks for fib(n - 1) and fib(n - 2),
/// adds their results and sends the sum to `parent`.
fn spawn_fibonacci(n: u32, parent: FibParent) {
    tokio::spawn(async move {
        if n < 2 {
            parent.send(u64::from(n));
            return;
        }
        let (me, mut inbox) = unbounded_channel();
        spawn_fibonacci(n - 1, FibParent::Task(me.clone()));
        spawn_fibonacci(n - 2, FibParent::Task(me));
        let mut sum = 0;
        for _ in 0..2 {
            match inbox.recv().await {
                Some(partial) => sum += partial,
                None => return,
            }
        }
        parent.send(sum);
    });
}

/// A chameneo asking the mall for a partner.
struct MeetRequest {
    from: UnboundedSender<ChameneoMsg>,
    colour: Colour,
}

enum ChameneoMsg {
    /// The mall paired this chameneo with `partner`.
    Mate {
        partner: UnboundedSender<ChameneoMsg>,
        colour: Colour,
    },
    /// The partner computed the colour both now have.
    Changed(Colour),
    /// The mall has arranged every meeting.
    Exit,
}

async fn run_mall(
    mut inbox: UnboundedReceiver<MeetRequest>,
    chameneos: usize,
    meetings: u64,
    done: Arc<Latch>,
) {
    let mut waiting: Option<MeetRequest> = None;
    let mut arranged = 0;
    let mut exited = 0;
    while let Some(request) = inbox.recv().await {
        if arranged == meetings {
            let _ = request.from.send(ChameneoMsg::Exit);
            exited += 1;
            if exited == chameneos {
                done.count_down();
                return;
            }
            continue;
        }
        match waiting.take() {
            None => waiting = Some(request),
            Some(first) => {
                arranged += 1;
                let _ = first.from.send(ChameneoMsg::Mate {
                    partner: request.from,
                    colour: request.colour,
                });
            }
        }
    }
}

async fn run_chameneo(
    me: UnboundedSender<ChameneoMsg>,
    mut inbox: UnboundedReceiver<ChameneoMsg>,
    mall: UnboundedSender<MeetRequest>,
    mut colour: Colour,
) {
    let meet = |colour| MeetRequest {
        from: me.clone(),
        colour,
    };
    let _ = mall.send(meet(colour));
    while let Some(message) = inbox.recv().await {
        match message {
            ChameneoMsg::Mate {
                partner,
                colour: other,
            } => {
                colour = colour.complement(other);
                let _ = partner.send(ChameneoMsg::Changed(colour));
            }
            ChameneoMsg::Changed(new_colour) => colour = new_colour,
            ChameneoMsg::Exit => return,
        }
        let _ = mall.send(meet(colour));
    }
}

enum BigMsg {
    Start,
    Ping { from: usize },
    Pong,
    Exit,
}

struct BigState {
    index: usize,
    neighbours: Arc<[UnboundedSender<BigMsg>]>,
    picker: NeighbourPicker,
    remaining: u64,
    done: Arc<Latch>,
}

impl BigState {
    fn ping_someone(&mut self) {
        let target = self.picker.pick(self.index, self.neighbours.len());
        let _ = self.neighbours[target].send(BigMsg::Ping { from: self.index });
    }
}

async fn run_big(mut state: BigState, mut inbox: UnboundedReceiver<BigMsg>) {
    while let Some(message) = inbox.recv().await {
        match message {
            BigMsg::Start => state.ping_someone(),
            BigMsg::Ping { from } => {
                let _ = state.neighbours[from].send(BigMsg::Pong);
            }
            BigMsg::Pong => {
                state.remaining -= 1;
                if state.remaining == 0 {
                    state.done.count_down();
                } else {
                    state.ping_someone();
                }
            }
            BigMsg::Exit => return,
        }
    }
}
