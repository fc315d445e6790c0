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
//! 2. When the current actor's turn ends, the driver runs the actor in the slot, if any.
//! 3. After [`INLINE_TURN_BUDGET`] turns in a row the driver hands the slot to a new task and
//!    ends, so that a long chain of actors does not keep one task busy forever.
//!
//! Code outside any driver (a plain task, another thread) always starts a new driver task.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::runtime::Handle;

/// Turns a driver runs in a row before it hands the next ready actor to a new task.
pub(crate) const INLINE_TURN_BUDGET: u32 = 64;

/// An actor that can run one turn.
pub(crate) trait Turn: Send + Sync + 'static {
    /// Runs the actor until its mailbox is empty, it yields after a full batch, or it stops.
    fn run_turn(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

tokio::task_local! {
    static NEXT_TURN: RefCell<Option<Arc<dyn Turn>>>;
}

/// Makes `actor` run on `runtime`: in the current driver's slot when called from a driver,
/// otherwise in a new driver task.
pub(crate) fn schedule(runtime: &Handle, actor: Arc<dyn Turn>) {
    let displaced = NEXT_TURN.try_with(|slot| slot.borrow_mut().replace(actor.clone()));
    match displaced {
        Ok(Some(previous)) => {
            runtime.spawn(drive(previous));
        }
        Ok(None) => {}
        Err(_) => {
            runtime.spawn(drive(actor));
        }
    }
}

/// Runs `first`, then whatever its turns made ready, within the turn budget.
///
/// Boxed because a driver may start another driver.
fn drive(first: Arc<dyn Turn>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(NEXT_TURN.scope(RefCell::new(None), async move {
        let mut current = first;
        let mut turns = 0;
        loop {
            current.run_turn().await;
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
