//! [`Context`]: what an actor can do besides changing its own state.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actor::{Actor, Props};
use crate::actor_ref::{
    ActorId, ActorRef, AnyActorRef, MessageTarget, SystemMessage, Target, WatchNotify, WatcherEntry,
};
use crate::cell::{spawn_actor, ActorCell};
use crate::dead_letters::DeadLetterReason;
use crate::error::{ActorError, ActorErrorKind, AskError, SpawnError};
use crate::supervision::{Backoff, RestartLimit};
use crate::system::ActorSystem;
use crate::timers::{TimerKey, Timers};

/// The actor's view of the runtime, passed to every handler and hook.
///
/// It spawns and stops children, watches other actors, runs timers, stashes messages and
/// connects futures back to the actor's mailbox.
pub struct Context<A: Actor> {
    pub(crate) cell: Arc<ActorCell<A>>,
    pub(crate) props: Props<A>,
    pub(crate) mode: Mode,
    pub(crate) stop_requested: bool,
    /// Rarely used state, allocated on first use so that an idle actor stays small.
    extras: Option<Box<Extras<A::Msg>>>,
}

#[derive(Default)]
struct Extras<M> {
    watching: HashMap<ActorId, (AnyActorRef, Watching<M>)>,
    supervision: SupervisionState,
    timers: Option<Timers<M>>,
    stash: VecDeque<M>,
    /// Messages from `unstash_all` that the turn has yet to put in front of the mailbox.
    unstashed: VecDeque<M>,
}

/// Lifecycle stage of the actor, as seen by its own turn.
pub(crate) enum Mode {
    Normal,
    Restarting {
        error: ActorError,
        delay: Option<Duration>,
    },
    BackoffWaiting {
        generation: u64,
    },
    Stopping {
        failure: Option<ActorError>,
    },
    Stopped,
}

/// Form of notification this actor wants when a watched actor stops.
pub(crate) enum Watching<M> {
    Signal,
    Message(M),
}

/// Restart bookkeeping for the supervisor strategy.
#[derive(Default)]
pub(crate) struct SupervisionState {
    restarts: VecDeque<Instant>,
    backoff_attempts: u32,
    generation: u64,
    pub(crate) started_at: Option<Instant>,
}

impl SupervisionState {
    /// Records a failure and returns whether one more restart is allowed.
    pub(crate) fn restart_allowed(&mut self, limit: &RestartLimit, now: Instant) -> bool {
        let Some(max) = limit.max_restarts else {
            return true;
        };
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > limit.within)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= max as usize {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Records a failure and returns the backoff attempt number, or `None` past the limit.
    pub(crate) fn next_backoff_attempt(&mut self, backoff: &Backoff, now: Instant) -> Option<u32> {
        let ran_long_enough = self
            .started_at
            .is_some_and(|started| now.duration_since(started) >= backoff.reset_after);
        if ran_long_enough {
            self.backoff_attempts = 0;
        }
        if backoff
            .max_restarts
            .is_some_and(|max| self.backoff_attempts >= max)
        {
            return None;
        }
        let attempt = self.backoff_attempts;
        self.backoff_attempts += 1;
        Some(attempt)
    }

    pub(crate) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(cell: Arc<ActorCell<A>>, props: Props<A>) -> Self {
        Self {
            cell,
            props,
            mode: Mode::Normal,
            stop_requested: false,
            extras: None,
        }
    }

    fn extras(&mut self) -> &mut Extras<A::Msg> {
        self.extras.get_or_insert_with(|| {
            Box::new(Extras {
                watching: HashMap::new(),
                supervision: SupervisionState::default(),
                timers: None,
                stash: VecDeque::new(),
                unstashed: VecDeque::new(),
            })
        })
    }

    pub(crate) fn supervision(&mut self) -> &mut SupervisionState {
        &mut self.extras().supervision
    }

    /// Removes and returns how this actor watches `actor`, if it does.
    pub(crate) fn take_watching(&mut self, actor: ActorId) -> Option<Watching<A::Msg>> {
        let extras = self.extras.as_mut()?;
        extras.watching.remove(&actor).map(|(_, how)| how)
    }

    /// Returns a ref to this actor.
    pub fn self_ref(&self) -> ActorRef<A::Msg> {
        ActorRef {
            target: Arc::clone(&self.cell) as Arc<dyn MessageTarget<A::Msg>>,
        }
    }

    /// Returns this actor's id.
    pub fn id(&self) -> ActorId {
        self.cell.id()
    }

    /// Returns this actor's path.
    pub fn path(&self) -> String {
        self.cell.path()
    }

    /// Returns the actor system this actor runs in.
    pub fn system(&self) -> ActorSystem {
        ActorSystem {
            shared: Arc::clone(&self.cell.system),
        }
    }

    /// Starts a child actor named `name`.
    ///
    /// # Errors
    ///
    /// [`SpawnError::NameTaken`] when a child with that name exists (names are freed once the
    /// child has fully stopped); [`SpawnError::InvalidName`] for an empty name, one starting
    /// with `$`, or one containing `/`, `#` or whitespace; [`SpawnError::ParentStopped`] while
    /// this actor is stopping.
    pub fn spawn<B: Actor>(
        &mut self,
        name: &str,
        props: Props<B>,
    ) -> Result<ActorRef<B::Msg>, SpawnError> {
        spawn_actor(&self.cell.system, Some(&self.any_self()), Some(name), props)
    }

    /// Starts a child actor with a generated name.
    ///
    /// # Errors
    ///
    /// [`SpawnError::ParentStopped`] while this actor is stopping.
    pub fn spawn_anonymous<B: Actor>(
        &mut self,
        props: Props<B>,
    ) -> Result<ActorRef<B::Msg>, SpawnError> {
        spawn_actor(&self.cell.system, Some(&self.any_self()), None, props)
    }

    /// Returns the children that have not fully stopped yet.
    pub fn children(&self) -> Vec<AnyActorRef> {
        self.cell.children()
    }

    /// Returns the child named `name`, if it exists.
    pub fn child(&self, name: &str) -> Option<AnyActorRef> {
        self.cell.child(name)
    }

    /// Stops a child; returns false when `child` is not a child of this actor.
    ///
    /// The child stops after the message it is handling; its name is free again once it has
    /// fully stopped.
    pub fn stop(&mut self, child: &AnyActorRef) -> bool {
        if child.target.parent_id() != Some(self.cell.id()) {
            return false;
        }
        child.stop();
        true
    }

    /// Stops this actor after the current handler returns.
    pub fn stop_self(&mut self) {
        self.stop_requested = true;
    }

    /// Watches `actor`: when it stops, this actor's `terminated` hook runs, or `child_failed`
    /// for a child that stopped because of a failure.
    ///
    /// The notification arrives exactly once, also when `actor` has already stopped.
    /// Watching an actor again replaces the earlier form of notification.
    pub fn watch(&mut self, actor: impl Into<AnyActorRef>) {
        self.watch_as(actor.into(), Watching::Signal);
    }

    /// Watches `actor`, delivering `msg` to this actor when it stops instead of a signal.
    pub fn watch_with(&mut self, actor: impl Into<AnyActorRef>, msg: A::Msg) {
        self.watch_as(actor.into(), Watching::Message(msg));
    }

    /// Stops watching `actor`; no notification arrives afterwards, even one already on its way.
    pub fn unwatch(&mut self, actor: impl Into<AnyActorRef>) {
        let actor = actor.into();
        if self.take_watching(actor.id()).is_some() {
            actor.target.unwatch(self.cell.id());
        }
    }

    fn watch_as(&mut self, actor: AnyActorRef, how: Watching<A::Msg>) {
        let first = self
            .extras()
            .watching
            .insert(actor.id(), (actor.clone(), how))
            .is_none();
        if first {
            actor.add_watch(WatcherEntry {
                watcher: self.cell.id(),
                notify: WatchNotify::Actor(Arc::clone(&self.cell) as Arc<dyn Target>),
            });
        }
    }

    pub(crate) fn unwatch_all(&mut self) {
        let me = self.cell.id();
        let Some(extras) = self.extras.as_mut() else {
            return;
        };
        for (_, (actor, _)) in extras.watching.drain() {
            actor.target.unwatch(me);
        }
    }

    fn any_self(&self) -> AnyActorRef {
        AnyActorRef {
            target: Arc::clone(&self.cell) as Arc<dyn Target>,
        }
    }

    /// Creates a ref that accepts messages of type `R` and delivers them to this actor
    /// converted by `f`, for replies and subscriptions in another actor's protocol.
    ///
    /// The adapter stops with this actor. From then on its messages are dead letters and its
    /// watchers get `Terminated`, with this actor's failure. A service that drops stopped
    /// subscribers, such as the receptionist, then drops it. Its path is this actor's path
    /// followed by `/$adapter-` and its id. `f` runs in the sender's thread, so it must be
    /// fast and must not block.
    pub fn message_adapter<R: Send + 'static>(
        &self,
        f: impl Fn(R) -> A::Msg + Send + Sync + 'static,
    ) -> ActorRef<R> {
        let target = self.self_ref();
        ActorRef::adapter(&self.system(), self.any_self(), move |msg| {
            target.tell(f(msg))
        })
    }

    /// Runs `future` and sends its output, converted by `map`, to this actor.
    ///
    /// The future runs on its own task, so the actor keeps handling messages meanwhile; if
    /// the actor has stopped when the future completes, the message goes to dead letters.
    pub fn pipe_to_self<F, T>(&self, future: F, map: impl FnOnce(T) -> A::Msg + Send + 'static)
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let target = self.self_ref();
        self.cell.system.runtime.spawn(async move {
            let output = future.await;
            target.tell(map(output));
        });
    }

    /// Asks `target` and delivers the reply, or the failure, to this actor converted by `map`.
    pub fn ask<M: Send + 'static, R: Send + 'static>(
        &self,
        target: &ActorRef<M>,
        make: impl FnOnce(ActorRef<R>) -> M + Send + 'static,
        timeout: Duration,
        map: impl FnOnce(Result<R, AskError>) -> A::Msg + Send + 'static,
    ) {
        let target = target.clone();
        self.pipe_to_self(async move { target.ask(make, timeout).await }, map);
    }

    /// Keeps `msg` aside until [`Context::unstash_all`].
    ///
    /// # Errors
    ///
    /// Fails with [`ActorErrorKind::StashOverflow`] when the stash contains as many messages as
    /// the capacity set in [`Props::with_stash_capacity`]; `msg` then goes to dead letters.
    pub fn stash(&mut self, msg: A::Msg) -> Result<(), ActorError> {
        let capacity = self.props.inner().stash_capacity;
        if self.stash_len() >= capacity {
            self.cell
                .system
                .record_dead_letter::<A::Msg>(&self.path(), DeadLetterReason::StashFull);
            return Err(ActorError::from_kind(ActorErrorKind::StashOverflow {
                capacity,
            }));
        }
        self.extras().stash.push_back(msg);
        Ok(())
    }

    /// Puts every stashed message back in front of the mailbox, in the order stashed.
    pub fn unstash_all(&mut self) {
        if let Some(extras) = self.extras.as_mut() {
            let mut stashed = std::mem::take(&mut extras.stash);
            stashed.append(&mut extras.unstashed);
            extras.unstashed = stashed;
        }
    }

    /// Takes the messages unstashed during the last handler, for the turn to put in front.
    pub(crate) fn take_unstashed(&mut self) -> Option<VecDeque<A::Msg>> {
        let extras = self.extras.as_mut()?;
        if extras.unstashed.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut extras.unstashed))
        }
    }

    /// Returns the number of stashed messages.
    pub fn stash_len(&self) -> usize {
        self.extras.as_ref().map_or(0, |extras| extras.stash.len())
    }

    /// Counts one message of this actor's type as a dead letter for `reason`.
    pub(crate) fn dead_letter(&self, reason: DeadLetterReason) {
        self.cell
            .system
            .record_dead_letter::<A::Msg>(&self.path(), reason);
    }

    pub(crate) fn drop_stash(&mut self) {
        let path = self.path();
        let Some(extras) = self.extras.as_mut() else {
            return;
        };
        for _ in extras.stash.drain(..) {
            self.cell
                .system
                .record_dead_letter::<A::Msg>(&path, DeadLetterReason::RecipientStopped);
        }
    }

    fn timers(&mut self) -> &mut Timers<A::Msg> {
        let runtime = self.cell.system.runtime.clone();
        self.extras()
            .timers
            .get_or_insert_with(|| Timers::new(runtime))
    }

    /// Sends `msg` to this actor once after `delay`, replacing any timer with the same key.
    pub fn start_single_timer(&mut self, key: impl Into<TimerKey>, msg: A::Msg, delay: Duration) {
        let target = self.self_ref();
        self.timers().start_single(key.into(), target, msg, delay);
    }

    /// Sends `msg` to this actor every `interval`, the first time after `initial_delay`;
    /// a late tick pushes the following ones back. Replaces any timer with the same key.
    pub fn start_timer_with_fixed_delay(
        &mut self,
        key: impl Into<TimerKey>,
        msg: A::Msg,
        initial_delay: Duration,
        interval: Duration,
    ) where
        A::Msg: Clone,
    {
        let target = self.self_ref();
        self.timers()
            .start_periodic(key.into(), target, msg, initial_delay, interval, false);
    }

    /// Sends `msg` to this actor every `interval`, the first time after `initial_delay`;
    /// late ticks are caught up so the average rate holds. Replaces any timer with the same
    /// key.
    pub fn start_timer_at_fixed_rate(
        &mut self,
        key: impl Into<TimerKey>,
        msg: A::Msg,
        initial_delay: Duration,
        interval: Duration,
    ) where
        A::Msg: Clone,
    {
        let target = self.self_ref();
        self.timers()
            .start_periodic(key.into(), target, msg, initial_delay, interval, true);
    }

    /// Cancels the timer with `key`; a message it already queued is not delivered.
    pub fn cancel_timer(&mut self, key: impl Into<TimerKey>) {
        if let Some(timers) = self.extras.as_mut().and_then(|e| e.timers.as_mut()) {
            timers.cancel(&key.into());
        }
    }

    /// Returns true while the timer with `key` is active.
    pub fn is_timer_active(&self, key: impl Into<TimerKey>) -> bool {
        self.extras
            .as_ref()
            .and_then(|e| e.timers.as_ref())
            .is_some_and(|timers| timers.is_active(&key.into()))
    }

    /// Cancels every timer of this actor.
    pub fn cancel_all_timers(&mut self) {
        if let Some(timers) = self.extras.as_mut().and_then(|e| e.timers.as_mut()) {
            timers.cancel_all();
        }
    }

    pub(crate) fn timers_accept(&mut self, generation: u64) -> bool {
        self.extras
            .as_mut()
            .and_then(|e| e.timers.as_mut())
            .is_some_and(|timers| timers.accept(generation))
    }

    pub(crate) fn schedule_restart(&self, generation: u64, delay: Duration) {
        let cell = Arc::clone(&self.cell);
        self.cell.system.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            cell.send_system(SystemMessage::Restart { generation });
        });
    }
}
