//! Scheduling of actor turns onto the tokio runtime.
//!
//! An actor with messages and no running turn is *ready*. Making every ready actor its own
//! tokio task would cost a task allocation, and often a wake-up of another worker thread,
//! for each message to an idle actor, which dominates request-reply chains. Instead, a task
//! that runs actor turns (a *driver*) keeps one slot for the next ready actor, in the spirit
//! of tokio's own LIFO slot:
//!
//! 1. When code running inside a driver makes an actor ready, the actor goes into the slot.
//!    An actor already in the slot is moved to a new driver task, so fan-out still spreads
//!    over the worker threads.
//! 2. A driver polls a turn once. A turn that completes lets the driver go on with the actor
//!    in the slot; a turn that waits (a handler awaiting I/O or a timer) moves to a task of
//!    its own, so it never holds up the actors behind it.
//! 3. After [`INLINE_TURN_BUDGET`] turns in a row the driver hands the slot to a new task and
//!    ends, so that a long chain of actors does not keep one task busy forever.
//! 4. The turns that [`run_after`] runs for a transport's reading task may go on past their
//!    batch of `throughput` messages, for [`INLINE_EXTRA_BATCHES`] more batches and about
//!    [`INLINE_TURN_TIME`]. An actor then drains what one read delivered before the task
//!    reads again. Yielding into a task of its own instead would split one stream over two
//!    tasks, and the runtime often moves one of them to another worker thread.
//!
//! Code outside any driver (a plain task, another thread) starts a new driver task for a
//! message. Newly spawned actors are collected in a start queue instead, which one driver
//! drains, because programs often spawn many actors in a row from outside any actor.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// Turns a driver runs in a row before it hands the next ready actor to a new task.
pub(crate) const INLINE_TURN_BUDGET: u32 = 64;

/// Batches of `throughput` messages that a turn run by [`run_after`] may handle after its
/// first before it yields. An actor then drains what one read from a connection delivered
/// in the reading task. With the default throughput of 32 the limit is 2048 messages, about
/// four times the 100-byte messages of a 64 KiB read.
pub(crate) const INLINE_EXTRA_BATCHES: u32 = 63;

/// Time after which the turns of one [`run_after`] call take no extra batch, counted from
/// the first extra batch. A slow handler holds up the reading task, and the other actors
/// of its connection, for little more than this and one batch.
pub(crate) const INLINE_TURN_TIME: Duration = Duration::from_millis(1);

type TurnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Extra batches left to the turns of one [`run_after`] call, and when they end.
#[derive(Clone, Copy)]
struct ExtraBatches {
    left: u32,
    /// Set by the first extra batch.
    deadline: Option<Instant>,
}

thread_local! {
    /// Extra batches for the turn that [`run_after`] is polling on this thread.
    static EXTRA_BATCHES: Cell<Option<ExtraBatches>> = const { Cell::new(None) };
}

/// The extra batches of this thread while a turn is polled. Dropping it clears them, also
/// when the poll panics.
struct LentBatches(ExtraBatches);

impl LentBatches {
    fn lend(extra: ExtraBatches) -> Self {
        EXTRA_BATCHES.with(|cell| cell.set(Some(extra)));
        LentBatches(extra)
    }

    /// Returns what the turn left.
    fn take_back(self) -> ExtraBatches {
        EXTRA_BATCHES.with(Cell::get).unwrap_or(self.0)
    }
}

impl Drop for LentBatches {
    fn drop(&mut self) {
        EXTRA_BATCHES.with(|cell| cell.set(None));
    }
}

/// Returns true when the running turn may handle another batch without yielding, and
/// counts that batch.
pub(crate) fn take_extra_batch() -> bool {
    EXTRA_BATCHES.with(|cell| {
        let Some(extra) = cell.get().filter(|extra| extra.left > 0) else {
            return false;
        };
        let now = Instant::now();
        let deadline = extra.deadline.unwrap_or_else(|| now + INLINE_TURN_TIME);
        if now >= deadline {
            return false;
        }
        cell.set(Some(ExtraBatches {
            left: extra.left - 1,
            deadline: Some(deadline),
        }));
        true
    })
}

/// An actor that can run one turn.
pub(crate) trait Turn: Send + Sync + 'static {
    /// Runs the actor until its mailbox is empty, it yields after a full batch, or it stops.
    fn run_turn(self: Arc<Self>) -> TurnFuture;
}

thread_local! {
    /// Slot of the driver running on this thread, with the next actor to run. `None` outside
    /// any driver.
    ///
    /// A thread-local rather than a task-local, because a driver runs within one poll of its
    /// task: it polls each turn once and moves a turn that waits to a task of its own.
    static NEXT_TURN: RefCell<Option<Option<Arc<dyn Turn>>>> = const { RefCell::new(None) };
}

/// A driver's time on this thread: opens an empty slot, and closes it when dropped.
struct DriverSpan {
    /// Slot of an enclosing driver, put back when this one ends.
    enclosing: Option<Option<Arc<dyn Turn>>>,
}

impl DriverSpan {
    fn enter() -> Self {
        DriverSpan {
            enclosing: NEXT_TURN
                .try_with(|slot| slot.replace(Some(None)))
                .ok()
                .flatten(),
        }
    }
}

impl Drop for DriverSpan {
    fn drop(&mut self) {
        let enclosing = self.enclosing.take();
        let left = NEXT_TURN
            .try_with(|slot| slot.replace(enclosing))
            .ok()
            .flatten()
            .flatten();
        // Only a panic ends a driver before it empties its slot, and the actor there still
        // runs.
        if let Some(actor) = left {
            if let Ok(runtime) = Handle::try_current() {
                runtime.spawn(drive(actor));
            }
        }
    }
}

/// Takes the actor from the current driver's slot.
fn take_next() -> Option<Arc<dyn Turn>> {
    NEXT_TURN
        .try_with(|slot| slot.borrow_mut().as_mut().and_then(Option::take))
        .ok()
        .flatten()
}

/// Makes `actor` run on `runtime`: in the current driver's slot when called from a driver,
/// otherwise in a new driver task.
pub(crate) fn schedule(runtime: &Handle, actor: Arc<dyn Turn>) {
    if let Err(actor) = schedule_in_driver(runtime, actor) {
        runtime.spawn(drive(actor));
    }
}

/// Puts `actor` in the current driver's slot; gives it back outside any driver.
fn schedule_in_driver(runtime: &Handle, actor: Arc<dyn Turn>) -> Result<(), Arc<dyn Turn>> {
    // While the thread ends, its slot is gone, and a new driver task runs the actor.
    let in_driver = NEXT_TURN
        .try_with(|slot| slot.borrow().is_some())
        .unwrap_or(false);
    if !in_driver {
        return Err(actor);
    }
    let displaced = NEXT_TURN.with(|slot| match slot.borrow_mut().as_mut() {
        Some(next) => Ok(next.replace(actor)),
        None => Err(actor),
    })?;
    if let Some(previous) = displaced {
        runtime.spawn(drive(previous));
    }
    Ok(())
}

/// Newly spawned actors waiting for their first turn, drained by one driver at a time.
#[derive(Default)]
pub(crate) struct StartQueue {
    state: Mutex<StartState>,
}

#[derive(Default)]
struct StartState {
    pending: Vec<Arc<dyn Turn>>,
    draining: bool,
}

impl StartQueue {
    /// Schedules the first turn of a new actor.
    pub(crate) fn schedule(self: &Arc<Self>, runtime: &Handle, actor: Arc<dyn Turn>) {
        let Err(actor) = schedule_in_driver(runtime, actor) else {
            return;
        };
        let start_drain = {
            let mut state = self.lock();
            state.pending.push(actor);
            !std::mem::replace(&mut state.draining, true)
        };
        if start_drain {
            runtime.spawn(Arc::clone(self).drain());
        }
    }

    async fn drain(self: Arc<Self>) {
        loop {
            let batch = {
                let mut state = self.lock();
                if state.pending.is_empty() {
                    state.draining = false;
                    return;
                }
                std::mem::take(&mut state.pending)
            };
            for actor in batch {
                drive(actor).await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StartState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs `first`, then whatever its turns made ready, within the turn budget, in the first
/// poll of the returned future.
fn drive(first: Arc<dyn Turn>) -> impl Future<Output = ()> + Send + 'static {
    let mut first = Some(first);
    poll_fn(move |cx| {
        if let Some(first) = first.take() {
            drive_now(first, cx);
        }
        Poll::Ready(())
    })
}

fn drive_now(first: Arc<dyn Turn>, cx: &mut Context<'_>) {
    let _span = DriverSpan::enter();
    let mut current = first;
    let mut turns = 0;
    loop {
        poll_or_move(current.run_turn(), cx);
        turns += 1;
        let Some(next) = take_next() else {
            return;
        };
        if turns >= INLINE_TURN_BUDGET {
            tokio::spawn(drive(next));
            return;
        }
        current = next;
    }
}

/// Runs `work`, then, in the calling task, the turns of the actors that `work` made ready,
/// as a driver would.
///
/// `work` is synchronous code outside any actor that sends many messages in a row, such as
/// the dispatch of one read from a connection. The actor it makes ready first waits in the
/// slot, so telling it more messages costs no task and no wake-up of another worker thread.
pub(crate) async fn run_after<T>(work: impl FnOnce() -> T) -> T {
    let mut work = Some(work);
    poll_fn(|cx| {
        let work = work
            .take()
            .expect("the future of run_after completes at its first poll");
        Poll::Ready(run_after_now(work, cx))
    })
    .await
}

fn run_after_now<T>(work: impl FnOnce() -> T, cx: &mut Context<'_>) -> T {
    let _span = DriverSpan::enter();
    let output = work();
    let mut extra = ExtraBatches {
        left: INLINE_EXTRA_BATCHES,
        deadline: None,
    };
    let mut turns = 0;
    while let Some(next) = take_next() {
        if turns >= INLINE_TURN_BUDGET {
            tokio::spawn(drive(next));
            break;
        }
        poll_inline_or_move(next.run_turn(), &mut extra, cx);
        turns += 1;
    }
    output
}

/// As [`poll_or_move`], letting the turn's first poll take from `extra`, which the turns of
/// one [`run_after`] call share.
fn poll_inline_or_move(mut turn: TurnFuture, extra: &mut ExtraBatches, cx: &mut Context<'_>) {
    let lent = LentBatches::lend(*extra);
    let poll = turn.as_mut().poll(cx);
    *extra = lent.take_back();
    if poll.is_pending() {
        tokio::spawn(turn);
    }
}

/// Polls `turn` once; a turn that is not finished continues on a task of its own.
///
/// The new task polls the turn again at once, which registers the task's own waker, so the
/// waker registered during the first poll (the calling task's) only causes a spurious
/// wake-up.
fn poll_or_move(mut turn: TurnFuture, cx: &mut Context<'_>) {
    if turn.as_mut().poll(cx).is_pending() {
        tokio::spawn(turn);
    }
}
