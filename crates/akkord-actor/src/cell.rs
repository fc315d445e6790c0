//! The actor cell: mailbox, lifecycle and the turn loop that runs an actor.
//!
//! An actor has no task of its own while it is idle. Sending to an idle actor schedules one
//! turn on the tokio runtime; the turn takes the actor's state out of the cell, handles up to
//! `throughput` messages (system messages first), then either parks the state back in the
//! cell when the mailbox is empty or yields and continues. At most one turn runs at a time,
//! which the `scheduled` flag, set and cleared under the mailbox lock, guarantees.
//!
//! Stopping follows Akka: stop the children, wait until each has reported its termination,
//! run the `stopped` hook, then notify watchers and the parent. Messages still queued go to
//! dead letters.

use std::collections::{BTreeMap, VecDeque};
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;

use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::actor::{Actor, Props};
use crate::actor_ref::{
    ActorId, ActorRef, AnyActorRef, Enqueued, Envelope, MessageTarget, Rejection, SystemMessage,
    Target, Terminated, WatcherEntry,
};
use crate::context::{Context, Mode, Watching};
use crate::dead_letters::DeadLetterReason;
use crate::error::{ActorError, ActorResult, SpawnError};
use crate::fast_hash::FastMap;
use crate::mailbox::{MailboxConfig, Overflow};
use crate::scheduler::{self, Turn};
use crate::supervision::SupervisorStrategy;
use crate::system::SystemShared;

pub(crate) struct ActorCell<A: Actor> {
    id: ActorId,
    /// `None` for an anonymous actor, whose name is derived from its id.
    name: Option<Box<str>>,
    parent: Option<Arc<dyn Target>>,
    pub(crate) system: Arc<SystemShared>,
    bounded: Option<Box<Bounded>>,
    /// Set while the system queue is not empty, so a turn can check it without the lock.
    has_system: AtomicBool,
    inner: Mutex<Inner<A>>,
}

struct Bounded {
    capacity: usize,
    overflow: Overflow,
    room: Notify,
}

struct Inner<A: Actor> {
    user: VecDeque<Envelope<A::Msg>>,
    system: VecDeque<SystemMessage>,
    scheduled: bool,
    status: Status,
    watchers: Vec<WatcherEntry>,
    /// Allocated when the first child is added.
    children: Option<Box<Children>>,
    /// The actor's state while no turn runs; a running turn owns it instead.
    running: Option<Running<A>>,
    /// Failure that stopped the actor, once it has stopped.
    failure: Option<ActorError>,
}

/// Children that have not fully stopped, named and anonymous.
#[derive(Default)]
struct Children {
    named: BTreeMap<Box<str>, AnyActorRef>,
    anonymous: FastMap<ActorId, AnyActorRef>,
}

impl Children {
    fn len(&self) -> usize {
        self.named.len() + self.anonymous.len()
    }

    fn all(&self) -> Vec<AnyActorRef> {
        self.named
            .values()
            .chain(self.anonymous.values())
            .cloned()
            .collect()
    }

    /// Removes the child `id`, registered under `name` or, when `name` is empty, anonymously.
    fn remove(&mut self, id: ActorId, name: &str) {
        if name.is_empty() {
            self.anonymous.remove(&id);
        } else if self.named.get(name).is_some_and(|child| child.id() == id) {
            self.named.remove(name);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Alive,
    Stopping,
    Terminated,
}

/// Outcome of handling one message: go on, or the actor has stopped.
enum Flow {
    Continue,
    Terminated,
}

/// Creates an actor cell under `parent` and starts it.
pub(crate) fn spawn_actor<A: Actor>(
    system: &Arc<SystemShared>,
    parent: Option<&AnyActorRef>,
    name: Option<&str>,
    props: Props<A>,
) -> Result<ActorRef<A::Msg>, SpawnError> {
    let id = ActorId::next();
    let name: Option<Box<str>> = match name {
        Some(name) => {
            validate_name(name)?;
            Some(name.into())
        }
        None => None,
    };
    let bounded = props.inner().mailbox.capacity().map(|capacity| {
        let overflow = match props.inner().mailbox {
            MailboxConfig::Bounded { overflow, .. } => overflow,
            MailboxConfig::Unbounded => Overflow::DropNewest,
        };
        Box::new(Bounded {
            capacity,
            overflow,
            room: Notify::new(),
        })
    });
    let cell = Arc::new(ActorCell {
        id,
        name,
        parent: parent.map(|p| Arc::clone(&p.target)),
        system: Arc::clone(system),
        bounded,
        has_system: AtomicBool::new(true),
        inner: Mutex::new(Inner {
            user: VecDeque::new(),
            system: VecDeque::from([SystemMessage::Start]),
            // A turn is scheduled below once the parent has accepted the child.
            scheduled: true,
            status: Status::Alive,
            watchers: Vec::new(),
            children: None,
            running: None,
            failure: None,
        }),
    });
    let context = Context::new(Arc::clone(&cell), props);
    cell.lock().running = Some(Running {
        actor: None,
        ctx: context,
    });
    let actor_ref = ActorRef {
        target: Arc::clone(&cell) as Arc<dyn MessageTarget<A::Msg>>,
    };
    if let Some(parent) = parent {
        parent
            .target
            .add_child(cell.name.as_deref().unwrap_or(""), actor_ref.to_any())?;
    }
    system.start_queue.schedule(&system.runtime, cell);
    Ok(actor_ref)
}

fn validate_name(name: &str) -> Result<(), SpawnError> {
    let invalid = name.is_empty()
        || name.starts_with('$')
        || name
            .chars()
            .any(|c| c == '/' || c == '#' || c.is_whitespace());
    if invalid {
        Err(SpawnError::InvalidName(name.to_owned()))
    } else {
        Ok(())
    }
}

fn to_base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl<A: Actor> ActorCell<A> {
    fn lock(&self) -> MutexGuard<'_, Inner<A>> {
        // A panic never happens while the lock is held: user code runs outside it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn id(&self) -> ActorId {
        self.id
    }

    pub(crate) fn children(&self) -> Vec<AnyActorRef> {
        self.lock()
            .children
            .as_ref()
            .map(|children| children.all())
            .unwrap_or_default()
    }

    pub(crate) fn child(&self, name: &str) -> Option<AnyActorRef> {
        let inner = self.lock();
        let children = inner.children.as_ref()?;
        match children.named.get(name) {
            Some(child) => Some(child.clone()),
            None => children
                .anonymous
                .values()
                .find(|child| child.path().rsplit('/').next() == Some(name))
                .cloned(),
        }
    }

    /// Returns the actor's name; an anonymous actor's is `$` and its id in base 36.
    pub(crate) fn name(&self) -> String {
        match &self.name {
            Some(name) => name.to_string(),
            None => format!("${}", to_base36(self.id.value())),
        }
    }

    fn take_running(&self) -> Option<Running<A>> {
        self.lock().running.take()
    }

    /// Takes the next system message, or, when `batch` is empty and the actor accepts user
    /// messages, the next user message. Further user messages waiting go into `batch`.
    ///
    /// Taking several user messages under one lock keeps the lock off the sender's path, and
    /// a bounded mailbox takes one at a time so that its capacity stays exact. A lone message
    /// comes back as [`Next::User`] without touching `batch`, so a turn for one message,
    /// such as a request, allocates no batch.
    fn next(&self, accepts_user: bool, batch: &mut VecDeque<Envelope<A::Msg>>) -> Next<A::Msg> {
        let mut inner = self.lock();
        if let Some(msg) = inner.system.pop_front() {
            if inner.system.is_empty() {
                self.has_system.store(false, Ordering::Release);
            }
            return Next::System(msg);
        }
        self.has_system.store(false, Ordering::Release);
        if !accepts_user || !batch.is_empty() {
            return Next::Nothing;
        }
        let Some(first) = inner.user.pop_front() else {
            return Next::Nothing;
        };
        if self.bounded.is_none() {
            let count = (self.system.config.throughput.get() - 1).min(inner.user.len());
            batch.extend(inner.user.drain(..count));
        }
        drop(inner);
        if let Some(bounded) = &self.bounded {
            bounded.room.notify_waiters();
        }
        Next::User(first)
    }

    /// Puts user messages taken for a turn back in front of the queue.
    fn put_back(&self, batch: &mut VecDeque<Envelope<A::Msg>>) {
        if batch.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for envelope in batch.drain(..).rev() {
            inner.user.push_front(envelope);
        }
    }

    /// Parks the actor state when there is nothing to do; gives it back otherwise.
    fn park(&self, running: Running<A>) -> Option<Running<A>> {
        let accepts_user = running.accepts_user();
        let mut inner = self.lock();
        if inner.system.is_empty() && (!accepts_user || inner.user.is_empty()) {
            if inner.system.capacity() > 0 {
                // System messages are rare; release the buffer an idle actor would keep.
                inner.system = VecDeque::new();
            }
            inner.running = Some(running);
            inner.scheduled = false;
            None
        } else {
            Some(running)
        }
    }

    fn path_string(&self) -> String {
        match &self.parent {
            Some(parent) => format!("{}/{}", parent.path(), self.name()),
            None => format!("/{}", self.name()),
        }
    }
}

impl<A: Actor> Target for ActorCell<A> {
    fn id(&self) -> ActorId {
        self.id
    }

    fn child_refs(&self) -> Vec<AnyActorRef> {
        self.children()
    }

    fn mailbox_depth(&self) -> usize {
        self.lock().user.len()
    }

    fn path(&self) -> String {
        self.path_string()
    }

    fn system(&self) -> &Arc<SystemShared> {
        &self.system
    }

    fn send_system(self: Arc<Self>, msg: SystemMessage) {
        let schedule = {
            let mut inner = self.lock();
            if inner.status == Status::Terminated {
                return;
            }
            inner.system.push_back(msg);
            self.has_system.store(true, Ordering::Release);
            !std::mem::replace(&mut inner.scheduled, true)
        };
        if schedule {
            let runtime = self.system.runtime.clone();
            scheduler::schedule(&runtime, self);
        }
    }

    fn add_watcher(&self, entry: WatcherEntry) -> Result<(), (WatcherEntry, Option<ActorError>)> {
        let mut inner = self.lock();
        if inner.status == Status::Terminated {
            return Err((entry, inner.failure.clone()));
        }
        if !inner.watchers.iter().any(|w| w.watcher == entry.watcher) {
            inner.watchers.push(entry);
        }
        Ok(())
    }

    fn unwatch(&self, watcher: ActorId) {
        self.lock().watchers.retain(|w| w.watcher != watcher);
    }

    fn is_terminated(&self) -> bool {
        self.lock().status == Status::Terminated
    }

    fn parent_id(&self) -> Option<ActorId> {
        self.parent.as_ref().map(|parent| parent.id())
    }

    fn add_child(&self, name: &str, child: AnyActorRef) -> Result<(), SpawnError> {
        let mut inner = self.lock();
        if inner.status != Status::Alive {
            return Err(SpawnError::ParentStopped {
                parent: self.path_string(),
            });
        }
        let children = inner.children.get_or_insert_with(Box::default);
        if name.is_empty() {
            children.anonymous.insert(child.id(), child);
            return Ok(());
        }
        if children.named.contains_key(name) {
            return Err(SpawnError::NameTaken {
                parent: self.path_string(),
                name: name.to_owned(),
            });
        }
        children.named.insert(name.into(), child);
        Ok(())
    }
}

impl<A: Actor> MessageTarget<A::Msg> for ActorCell<A> {
    fn enqueue(&self, envelope: Envelope<A::Msg>, overflow_applies: bool) -> Enqueued<A::Msg> {
        let mut inner = self.lock();
        if inner.status == Status::Terminated {
            return Enqueued::Rejected(envelope, Rejection::Stopped);
        }
        let mut dropped_oldest = None;
        if let Some(bounded) = &self.bounded {
            if inner.user.len() >= bounded.capacity {
                if overflow_applies && bounded.overflow == Overflow::DropOldest {
                    dropped_oldest = inner.user.pop_front();
                } else {
                    return Enqueued::Rejected(
                        envelope,
                        Rejection::Full {
                            capacity: bounded.capacity,
                        },
                    );
                }
            }
        }
        inner.user.push_back(envelope);
        let schedule = !std::mem::replace(&mut inner.scheduled, true);
        drop(inner);
        if dropped_oldest.is_some() {
            self.system
                .record_dead_letter::<A::Msg>(&self.path_string(), DeadLetterReason::MailboxFull);
        }
        if schedule {
            Enqueued::Schedule
        } else {
            Enqueued::Done
        }
    }

    fn schedule(self: Arc<Self>) {
        let runtime = self.system.runtime.clone();
        scheduler::schedule(&runtime, self);
    }

    fn room(&self) -> Option<&Notify> {
        self.bounded.as_ref().map(|bounded| &bounded.room)
    }
}

impl<A: Actor> Turn for ActorCell<A> {
    fn run_turn(self: Arc<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(run(self))
    }
}

/// Message that [`ActorCell::next`] took from the mailbox, if any.
enum Next<M> {
    System(SystemMessage),
    User(Envelope<M>),
    /// No system message, and no user message for the turn to take now.
    Nothing,
}

/// Runs turns of one actor until its mailbox is empty or it has stopped.
async fn run<A: Actor>(cell: Arc<ActorCell<A>>) {
    let Some(mut running) = cell.take_running() else {
        return;
    };
    let throughput = cell.system.config.throughput.get();
    let mut batch = VecDeque::new();
    loop {
        for _ in 0..throughput {
            let accepts_user = running.accepts_user();
            let next =
                if batch.is_empty() || !accepts_user || cell.has_system.load(Ordering::Acquire) {
                    cell.next(accepts_user, &mut batch)
                } else {
                    Next::Nothing
                };
            let flow = match next {
                Next::System(msg) => running.handle_system(msg).await,
                Next::User(envelope) => running.handle_user(envelope).await,
                Next::Nothing => match batch.pop_front() {
                    Some(envelope) if accepts_user => running.handle_user(envelope).await,
                    taken => {
                        batch.extend(taken);
                        cell.put_back(&mut batch);
                        match cell.park(running) {
                            None => return,
                            Some(back) => {
                                running = back;
                                continue;
                            }
                        }
                    }
                },
            };
            if let Some(unstashed) = running.ctx.take_unstashed() {
                for msg in unstashed.into_iter().rev() {
                    batch.push_front(Envelope::User(msg));
                }
            }
            if let Flow::Terminated = flow {
                let undelivered = batch
                    .iter()
                    .filter(|e| matches!(e, Envelope::User(_)))
                    .count();
                if undelivered > 0 {
                    let path = cell.path_string();
                    for _ in 0..undelivered {
                        cell.system.record_dead_letter::<A::Msg>(
                            &path,
                            DeadLetterReason::RecipientStopped,
                        );
                    }
                }
                return;
            }
        }
        cell.put_back(&mut batch);
        if scheduler::take_extra_batch() {
            continue;
        }
        tokio::task::yield_now().await;
    }
}

/// Polls a hook's future, turning a panic inside it into a failure.
async fn guarded<F: Future<Output = ActorResult>>(future: F) -> ActorResult {
    let mut future = pin!(future);
    poll_fn(
        |cx| match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(Err(ActorError::panic(&*payload))),
        },
    )
    .await
}

/// The state a turn works on: the actor instance and its context.
pub(crate) struct Running<A: Actor> {
    /// `None` before start and between a failure and the restart that replaces it.
    actor: Option<A>,
    ctx: Context<A>,
}

impl<A: Actor> Running<A> {
    fn accepts_user(&self) -> bool {
        self.actor.is_some() && matches!(self.ctx.mode, Mode::Normal)
    }

    async fn handle_user(&mut self, envelope: Envelope<A::Msg>) -> Flow {
        let msg = match envelope {
            Envelope::User(msg) => msg,
            Envelope::Timer { generation, msg } => {
                if !self.ctx.timers_accept(generation) {
                    debug!(actor = %self.ctx.path(), generation, "dropped message of a cancelled timer");
                    return Flow::Continue;
                }
                msg
            }
        };
        let Some(actor) = self.actor.as_mut() else {
            return Flow::Continue;
        };
        let result = guarded(actor.handle(&mut self.ctx, msg)).await;
        self.after_invoke(result).await
    }

    async fn handle_system(&mut self, msg: SystemMessage) -> Flow {
        match msg {
            SystemMessage::Start => self.start_instance().await,
            SystemMessage::Stop => self.begin_stop(None).await,
            SystemMessage::Terminated(terminated) => self.on_terminated(terminated).await,
            SystemMessage::ChildTerminated { child, name } => {
                self.on_child_terminated(child, &name).await
            }
            SystemMessage::Restart { generation } => match self.ctx.mode {
                Mode::BackoffWaiting {
                    generation: current,
                } if current == generation => self.start_instance().await,
                _ => Flow::Continue,
            },
        }
    }

    async fn after_invoke(&mut self, result: ActorResult) -> Flow {
        match result {
            Ok(()) if self.ctx.stop_requested => self.begin_stop(None).await,
            Ok(()) => Flow::Continue,
            Err(error) => self.on_failure(error).await,
        }
    }

    /// Creates a fresh instance from the props and runs its `started` hook.
    ///
    /// A failing `started` hook is a failure like any other, handled by the strategy, so
    /// this can recurse through `on_failure`; each round is bounded by the restart limit or
    /// separated by a backoff delay.
    fn start_instance(&mut self) -> std::pin::Pin<Box<dyn Future<Output = Flow> + Send + '_>> {
        Box::pin(async move {
            self.ctx.mode = Mode::Normal;
            if matches!(
                self.ctx.props.inner().supervisor,
                SupervisorStrategy::Backoff(_)
            ) {
                self.ctx.supervision().started_at = Some(Instant::now());
            }
            let actor = self.actor.insert((self.ctx.props.inner().factory)());
            let result = guarded(actor.started(&mut self.ctx)).await;
            self.after_invoke(result).await
        })
    }

    async fn on_failure(&mut self, error: ActorError) -> Flow {
        let path = self.ctx.path();
        match self.ctx.props.inner().supervisor.clone() {
            SupervisorStrategy::Resume => {
                warn!(actor = %path, %error, "actor failed; resuming");
                Flow::Continue
            }
            SupervisorStrategy::Stop => {
                warn!(actor = %path, %error, "actor failed; stopping");
                self.begin_stop(Some(error)).await
            }
            SupervisorStrategy::Restart(limit) => {
                if self
                    .ctx
                    .supervision()
                    .restart_allowed(&limit, Instant::now())
                {
                    warn!(actor = %path, %error, "actor failed; restarting");
                    self.begin_restart(error, None).await
                } else {
                    warn!(
                        actor = %path, %error, max_restarts = ?limit.max_restarts,
                        within = ?limit.within, "actor failed past its restart limit; stopping"
                    );
                    self.begin_stop(Some(error)).await
                }
            }
            SupervisorStrategy::Backoff(backoff) => {
                match self
                    .ctx
                    .supervision()
                    .next_backoff_attempt(&backoff, Instant::now())
                {
                    Some(attempt) => {
                        let delay = backoff.delay(attempt, &mut rand::rng());
                        warn!(actor = %path, %error, ?delay, attempt, "actor failed; restarting after backoff");
                        self.begin_restart(error, Some(delay)).await
                    }
                    None => {
                        warn!(actor = %path, %error, "actor failed past its backoff restart limit; stopping");
                        self.begin_stop(Some(error)).await
                    }
                }
            }
        }
    }

    async fn begin_restart(
        &mut self,
        error: ActorError,
        delay: Option<std::time::Duration>,
    ) -> Flow {
        self.ctx.cancel_all_timers();
        self.ctx.drop_stash();
        self.ctx.mode = Mode::Restarting { error, delay };
        if self.stop_children() {
            self.finish_restart().await
        } else {
            Flow::Continue
        }
    }

    async fn finish_restart(&mut self) -> Flow {
        let Mode::Restarting { error, delay } = std::mem::replace(&mut self.ctx.mode, Mode::Normal)
        else {
            return Flow::Continue;
        };
        if let Some(actor) = self.actor.as_mut() {
            let hook = actor.pre_restart(&mut self.ctx, &error);
            if let Err(hook_error) = guarded(async move {
                hook.await;
                Ok(())
            })
            .await
            {
                warn!(actor = %self.ctx.path(), error = %hook_error, "pre_restart hook failed");
            }
        }
        self.actor = None;
        match delay {
            None => self.start_instance().await,
            Some(delay) => {
                let generation = self.ctx.supervision().next_generation();
                self.ctx.mode = Mode::BackoffWaiting { generation };
                self.ctx.schedule_restart(generation, delay);
                Flow::Continue
            }
        }
    }

    /// Begins stopping; returns `Flow::Terminated` when the actor has fully stopped.
    async fn begin_stop(&mut self, failure: Option<ActorError>) -> Flow {
        if matches!(self.ctx.mode, Mode::Stopping { .. }) {
            return Flow::Continue;
        }
        self.ctx.stop_requested = true;
        self.ctx.cancel_all_timers();
        self.ctx.mode = Mode::Stopping { failure };
        self.ctx.cell.lock().status = Status::Stopping;
        if self.stop_children() {
            self.finish_stop().await
        } else {
            Flow::Continue
        }
    }

    /// Sends stop to every child; returns true when there are none.
    fn stop_children(&self) -> bool {
        let children = self.ctx.cell.children();
        for child in &children {
            child.stop();
        }
        children.is_empty()
    }

    async fn finish_stop(&mut self) -> Flow {
        let failure = match std::mem::replace(&mut self.ctx.mode, Mode::Stopped) {
            Mode::Stopping { failure } => failure,
            _ => None,
        };
        // The instance is dropped only after the status is Terminated, so an ask whose
        // reply ref the instance held sees the actor as stopped when that ref goes.
        let mut actor = self.actor.take();
        if let Some(actor) = actor.as_mut() {
            let hook = actor.stopped(&mut self.ctx);
            if let Err(error) = guarded(async move {
                hook.await;
                Ok(())
            })
            .await
            {
                warn!(actor = %self.ctx.path(), %error, "stopped hook failed");
            }
        }
        let cell = Arc::clone(&self.ctx.cell);
        let (watchers, queued) = {
            let mut inner = cell.lock();
            inner.status = Status::Terminated;
            inner.failure = failure.clone();
            inner.system.clear();
            (
                std::mem::take(&mut inner.watchers),
                std::mem::take(&mut inner.user),
            )
        };
        drop(actor);
        if let Some(bounded) = &cell.bounded {
            bounded.room.notify_waiters();
        }
        let undelivered = queued
            .iter()
            .filter(|e| matches!(e, Envelope::User(_)))
            .count()
            + self.ctx.stash_len();
        if undelivered > 0 {
            // Building the path walks up the hierarchy, so only pay for it when needed.
            let path = cell.path_string();
            for _ in 0..undelivered {
                cell.system
                    .record_dead_letter::<A::Msg>(&path, DeadLetterReason::RecipientStopped);
            }
        }
        drop(queued);
        self.ctx.unwatch_all();
        debug!(actor = %cell.path_string(), failed = failure.is_some(), "actor stopped");
        let terminated = Terminated {
            actor: AnyActorRef {
                target: Arc::clone(&cell) as Arc<dyn Target>,
            },
            failure,
        };
        for watcher in watchers {
            watcher.notify(&terminated);
        }
        if let Some(parent) = &cell.parent {
            Arc::clone(parent).send_system(SystemMessage::ChildTerminated {
                child: cell.id,
                name: cell.name.clone().unwrap_or_default(),
            });
        }
        Flow::Terminated
    }

    async fn on_terminated(&mut self, terminated: Terminated) -> Flow {
        let Some(watching) = self.ctx.take_watching(terminated.actor.id()) else {
            return Flow::Continue;
        };
        let Some(actor) = self.actor.as_mut() else {
            return Flow::Continue;
        };
        let result = match watching {
            Watching::Message(msg) => guarded(actor.handle(&mut self.ctx, msg)).await,
            Watching::Signal => {
                let is_child = terminated.actor.target.parent_id() == Some(self.ctx.cell.id());
                match terminated.failure {
                    Some(error) if is_child => {
                        guarded(actor.child_failed(&mut self.ctx, terminated.actor, error)).await
                    }
                    _ => guarded(actor.terminated(&mut self.ctx, terminated.actor)).await,
                }
            }
        };
        self.after_invoke(result).await
    }

    async fn on_child_terminated(&mut self, child: ActorId, name: &str) -> Flow {
        let remaining = {
            let mut inner = self.ctx.cell.lock();
            match inner.children.as_mut() {
                Some(children) => {
                    children.remove(child, name);
                    children.len()
                }
                None => 0,
            }
        };
        if remaining > 0 {
            return Flow::Continue;
        }
        match self.ctx.mode {
            Mode::Stopping { .. } => self.finish_stop().await,
            Mode::Restarting { .. } => self.finish_restart().await,
            _ => Flow::Continue,
        }
    }
}
