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
//!
//! Code outside any driver (a plain task, another thread) starts a new driver task for a
//! message. Newly spawned actors are collected in a start queue instead, which one driver
//! drains, because programs often spawn many actors in a row from outside any actor.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::runtime::Handle;

/// Turns a driver runs in a row before it hands the next ready actor to a new task.
pub(crate) const INLINE_TURN_BUDGET: u32 = 64;

type TurnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An actor that can run one turn.
pub(crate) trait Turn: Send + Sync + 'static {
    /// Runs the actor until its mailbox is empty, it yields after a full batch, or it stops.
    fn run_turn(self: Arc<Self>) -> TurnFuture;
}

tokio::task_local! {
    static NEXT_TURN: RefCell<Option<Arc<dyn Turn>>>;
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
    let mut actor = Some(actor);
    let result = NEXT_TURN.try_with(|slot| {
        let displaced = slot.borrow_mut().replace(actor.take()?);
        if let Some(previous) = displaced {
            runtime.spawn(drive(previous));
        }
        Some(())
    });
    match (result, actor) {
        (Ok(Some(())), _) => Ok(()),
        (_, Some(actor)) => Err(actor),
        (_, None) => Ok(()),
    }
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

/// Runs `first`, then whatever its turns made ready, within the turn budget.
///
/// Boxed because a driver may start another driver.
fn drive(first: Arc<dyn Turn>) -> TurnFuture {
    Box::pin(NEXT_TURN.scope(RefCell::new(None), async move {
        let mut current = first;
        let mut turns = 0;
        loop {
            run_or_move(current.run_turn()).await;
            turns += 1;
            let Some(next) = NEXT_TURN.with(|slot| slot.borrow_mut().take()) else {
                return;
            };
            if turns >= INLINE_TURN_BUDGET {
                tokio::spawn(drive(next));
                return;
            }
            current = next;
        }
    }))
}

/// Runs `work`, then, in the calling task, the turns of the actors that `work` made ready,
/// as a driver would.
///
/// `work` is synchronous code outside any actor that sends many messages in a row, such as
/// the dispatch of one read from a connection. The actor it makes ready first waits in the
/// slot, so telling it more messages costs no task and no wake-up of another worker thread.
pub(crate) async fn run_after<T>(work: impl FnOnce() -> T) -> T {
    NEXT_TURN
        .scope(RefCell::new(None), async move {
            let output = work();
            let mut turns = 0;
            while let Some(next) = NEXT_TURN.with(|slot| slot.borrow_mut().take()) {
                if turns >= INLINE_TURN_BUDGET {
                    tokio::spawn(drive(next));
                    break;
                }
                run_or_move(next.run_turn()).await;
                turns += 1;
            }
            output
        })
        .await
}

/// Polls `turn` once; a turn that is not finished continues on a task of its own.
///
/// The new task polls the turn again at once, which registers the task's own waker, so the
/// waker registered during the first poll (this driver's) only causes a spurious wake-up.
async fn run_or_move(mut turn: TurnFuture) {
    let finished = poll_fn(|cx| Poll::Ready(turn.as_mut().poll(cx).is_ready())).await;
    if !finished {
        tokio::spawn(turn);
    }
}
