//! Actor references: typed [`ActorRef`] and type-erased [`AnyActorRef`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::dead_letters::DeadLetterReason;
use crate::error::{AskError, SendError};
use crate::system::SystemShared;
use crate::ActorError;

/// Identifier of an actor, unique within the process for its lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ActorId {
    pub(crate) fn next() -> Self {
        ActorId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// Returns the numeric value.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A message in a user queue: sent by an actor ref, or by a timer with its generation.
pub(crate) enum Envelope<M> {
    User(M),
    Timer { generation: u64, msg: M },
}

impl<M> Envelope<M> {
    pub(crate) fn into_message(self) -> M {
        match self {
            Envelope::User(msg) | Envelope::Timer { msg, .. } => msg,
        }
    }
}

/// Result of putting a message into a target.
pub(crate) enum Enqueued<M> {
    /// Queued; the target is already scheduled or needs no scheduling.
    Done,
    /// Queued; the caller must call [`MessageTarget::schedule`].
    Schedule,
    /// Not queued.
    Rejected(Envelope<M>, Rejection),
}

/// Reason a target rejected a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Stopped,
    Full { capacity: usize },
}

/// A system message: lifecycle control that overtakes user messages.
pub(crate) enum SystemMessage {
    Start,
    Stop,
    Terminated(Terminated),
    ChildTerminated { child: ActorId, name: Box<str> },
    Restart { generation: u64 },
}

/// Notice that an actor stopped, as delivered to watchers.
#[derive(Clone, Debug)]
pub struct Terminated {
    /// The actor that stopped.
    pub actor: AnyActorRef,
    /// The failure that stopped it, if it stopped because of one.
    pub failure: Option<ActorError>,
}

/// How a watcher is told that an actor stopped.
pub(crate) enum WatchNotify {
    Actor(Arc<dyn Target>),
    Callback(Box<dyn FnOnce(&Terminated) + Send>),
}

pub(crate) struct WatcherEntry {
    pub(crate) watcher: ActorId,
    pub(crate) notify: WatchNotify,
}

impl WatcherEntry {
    pub(crate) fn notify(self, terminated: &Terminated) {
        match self.notify {
            WatchNotify::Actor(target) => {
                target.send_system(SystemMessage::Terminated(terminated.clone()))
            }
            WatchNotify::Callback(callback) => callback(terminated),
        }
    }
}

/// The type-erased side of anything an actor ref can point at.
pub(crate) trait Target: Send + Sync + 'static {
    fn id(&self) -> ActorId;
    fn path(&self) -> String;
    fn system(&self) -> &Arc<SystemShared>;
    fn send_system(self: Arc<Self>, msg: SystemMessage);
    /// Adds a watcher; when this target has already stopped, gives the entry back with the
    /// failure that stopped it, so the caller can notify it.
    fn add_watcher(&self, entry: WatcherEntry) -> Result<(), (WatcherEntry, Option<ActorError>)>;
    /// Returns the id of the parent, for actors that have one.
    fn parent_id(&self) -> Option<ActorId> {
        None
    }
    fn unwatch(&self, watcher: ActorId);
    fn is_terminated(&self) -> bool;
    /// Adds a child under `name`; fails when the name is taken or this target is stopping.
    fn add_child(&self, name: &str, child: AnyActorRef) -> Result<(), crate::SpawnError> {
        let _ = child;
        Err(crate::SpawnError::ParentStopped {
            parent: format!("{} (cannot have children, {name:?} rejected)", self.path()),
        })
    }

    /// Returns the external target behind this one, for refs to actors outside the runtime.
    fn external(&self) -> Option<Arc<dyn crate::remote_support::ExternalActor>> {
        None
    }

    /// Returns the children, for walks over the actor tree.
    fn child_refs(&self) -> Vec<AnyActorRef> {
        Vec::new()
    }

    /// Returns the number of user and timer messages waiting in the mailbox.
    fn mailbox_depth(&self) -> usize {
        0
    }

    /// Returns true for the reply ref of an ask, which takes one message and then stops.
    fn is_ask_reply(&self) -> bool {
        false
    }
}

/// The typed side: where messages of type `M` go.
pub(crate) trait MessageTarget<M>: Target {
    fn enqueue(&self, envelope: Envelope<M>, overflow_applies: bool) -> Enqueued<M>;
    fn schedule(self: Arc<Self>);
    /// Returns the notifier that fires when a bounded mailbox has room.
    fn room(&self) -> Option<&Notify> {
        None
    }
}

/// A typed reference to an actor that handles messages of type `M`.
///
/// Cheap to clone and usable from any thread. Two refs are equal when they point at the same
/// actor. A ref to an actor on another node compares by a local alias id taken from the same
/// counter as local actor ids, so it never equals a local ref. `Debug` shows the actor's path.
pub struct ActorRef<M> {
    pub(crate) target: Arc<dyn MessageTarget<M>>,
}

impl<M: Send + 'static> ActorRef<M> {
    /// Sends `msg` without waiting.
    ///
    /// When the actor has stopped, or its bounded mailbox is full, the message goes to dead
    /// letters, where it is counted and logged (rate-limited). Ordering: messages from one
    /// sender to one recipient arrive in the order they were sent.
    pub fn tell(&self, msg: M) {
        if let Err(error) = self.deliver(Envelope::User(msg), true) {
            let reason = match &error {
                SendError::Stopped { .. } => DeadLetterReason::RecipientStopped,
                SendError::MailboxFull { .. } => DeadLetterReason::MailboxFull,
            };
            self.target
                .system()
                .record_dead_letter::<M>(&self.target.path(), reason);
        }
    }

    /// Sends `msg` without waiting, giving it back when it cannot be queued.
    ///
    /// # Errors
    ///
    /// [`SendError::Stopped`] when the actor has stopped, [`SendError::MailboxFull`] when its
    /// bounded mailbox is full. Neither is counted in dead letters.
    pub fn try_tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.deliver(Envelope::User(msg), false)
    }

    /// Sends `msg`, waiting for room when the actor's bounded mailbox is full.
    ///
    /// For an unbounded mailbox this completes at once, like [`ActorRef::try_tell`].
    ///
    /// # Errors
    ///
    /// [`SendError::Stopped`] when the actor has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the message without delivering it.
    pub async fn send(&self, msg: M) -> Result<(), SendError<M>> {
        let mut msg = msg;
        loop {
            let notified = self.target.room().map(|room| room.notified());
            match self.deliver(Envelope::User(msg), false) {
                Err(SendError::MailboxFull { message, .. }) => {
                    msg = message;
                    match notified {
                        Some(notified) => {
                            notified.await;
                        }
                        None => tokio::task::yield_now().await,
                    }
                }
                other => return other,
            }
        }
    }

    pub(crate) fn deliver(
        &self,
        envelope: Envelope<M>,
        overflow_applies: bool,
    ) -> Result<(), SendError<M>> {
        match self.target.enqueue(envelope, overflow_applies) {
            Enqueued::Done => Ok(()),
            Enqueued::Schedule => {
                Arc::clone(&self.target).schedule();
                Ok(())
            }
            Enqueued::Rejected(envelope, Rejection::Stopped) => Err(SendError::Stopped {
                message: envelope.into_message(),
                path: self.target.path(),
            }),
            Enqueued::Rejected(envelope, Rejection::Full { capacity }) => {
                Err(SendError::MailboxFull {
                    message: envelope.into_message(),
                    path: self.target.path(),
                    capacity,
                })
            }
        }
    }

    /// Sends a request built by `make` around a temporary reply ref, and waits for the reply.
    ///
    /// # Errors
    ///
    /// [`AskError::Timeout`] when no reply arrives within `timeout`;
    /// [`AskError::TargetStopped`] when the target has stopped, or stops with the request
    /// still queued or the reply ref in its state;
    /// [`AskError::NoReply`] when the target dropped the reply ref without replying;
    /// [`AskError::MailboxFull`] when the target's bounded mailbox is full.
    pub async fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ActorRef<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let (reply_to, reply) = PromiseTarget::create(Arc::clone(self.target.system()));
        match self.try_tell(make(reply_to)) {
            Ok(()) => {}
            Err(SendError::Stopped { path, .. }) => return Err(AskError::TargetStopped { path }),
            Err(SendError::MailboxFull { path, .. }) => return Err(AskError::MailboxFull { path }),
        }
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(value)) => Ok(value),
            // The reply ref was dropped without a reply. A stopping actor drops its queued
            // messages and its state only after it counts as stopped.
            Ok(Err(_)) if self.target.is_terminated() => Err(AskError::TargetStopped {
                path: self.target.path(),
            }),
            Ok(Err(_)) => Err(AskError::NoReply {
                path: self.target.path(),
            }),
            Err(_) => Err(AskError::Timeout {
                path: self.target.path(),
                timeout,
            }),
        }
    }

    /// Returns the actor's id.
    pub fn id(&self) -> ActorId {
        self.target.id()
    }

    /// Returns the actor's path, such as `/user/parent/child`.
    pub fn path(&self) -> String {
        self.target.path()
    }

    /// Returns a type-erased ref to the same actor.
    pub fn to_any(&self) -> AnyActorRef {
        AnyActorRef {
            target: Arc::clone(&self.target) as Arc<dyn Target>,
        }
    }

    /// Creates a ref that runs `f` on each message, in the sender's thread.
    ///
    /// Useful for adapters and tests; `f` must be fast and must not block. The ref never
    /// stops, so messages are never dead letters. Its path is `/temp/` followed by `name`.
    /// Names starting with `$` are reserved for refs the runtime makes, such as the reply
    /// ref of an `ask`, so a leading `$` in `name` becomes `_`.
    pub fn from_fn(
        system: &crate::ActorSystem,
        name: &str,
        f: impl Fn(M) + Send + Sync + 'static,
    ) -> Self {
        let name = match name.strip_prefix('$') {
            Some(rest) => format!("_{rest}").into(),
            None => name.into(),
        };
        let target = FunctionTarget {
            id: ActorId::next(),
            name,
            system: Arc::clone(&system.shared),
            f: Box::new(f),
        };
        ActorRef {
            target: Arc::new(target),
        }
    }
}

impl<M: 'static> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        Self {
            target: Arc::clone(&self.target),
        }
    }
}

impl<M: 'static> PartialEq for ActorRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.target.id() == other.target.id()
    }
}

impl<M: 'static> Eq for ActorRef<M> {}

impl<M: 'static> Hash for ActorRef<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.target.id().hash(state)
    }
}

impl<M: 'static> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef({}{:?})", self.target.path(), self.target.id())
    }
}

/// A reference to an actor of any message type, for watching and identification.
#[derive(Clone)]
pub struct AnyActorRef {
    pub(crate) target: Arc<dyn Target>,
}

impl AnyActorRef {
    /// Returns the actor's id.
    pub fn id(&self) -> ActorId {
        self.target.id()
    }

    /// Returns the actor's path.
    pub fn path(&self) -> String {
        self.target.path()
    }

    /// Returns true once the actor has stopped.
    pub fn is_terminated(&self) -> bool {
        self.target.is_terminated()
    }

    /// Waits until the actor has stopped and returns how it stopped.
    ///
    /// Completes at once for an actor that has already stopped.
    pub async fn terminated(&self) -> Terminated {
        let (tx, rx) = oneshot::channel();
        self.add_watch(WatcherEntry {
            watcher: ActorId::next(),
            notify: WatchNotify::Callback(Box::new(move |terminated| {
                let _ = tx.send(terminated.clone());
            })),
        });
        match rx.await {
            Ok(terminated) => terminated,
            // Unreachable in practice: a target always notifies or keeps the watcher.
            Err(_) => Terminated {
                actor: self.clone(),
                failure: None,
            },
        }
    }

    /// Registers `entry`, or notifies it at once when the actor has already stopped.
    pub(crate) fn add_watch(&self, entry: WatcherEntry) {
        if let Err((entry, failure)) = self.target.add_watcher(entry) {
            entry.notify(&Terminated {
                actor: self.clone(),
                failure,
            });
        }
    }

    pub(crate) fn stop(&self) {
        Arc::clone(&self.target).send_system(SystemMessage::Stop);
    }
}

impl PartialEq for AnyActorRef {
    fn eq(&self, other: &Self) -> bool {
        self.target.id() == other.target.id()
    }
}

impl Eq for AnyActorRef {}

impl Hash for AnyActorRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.target.id().hash(state)
    }
}

impl fmt::Debug for AnyActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AnyActorRef({}{:?})",
            self.target.path(),
            self.target.id()
        )
    }
}

impl<M: Send + 'static> From<&ActorRef<M>> for AnyActorRef {
    fn from(actor: &ActorRef<M>) -> Self {
        actor.to_any()
    }
}

/// The reply side of an ask: completes a oneshot channel with the first message.
struct PromiseTarget<R> {
    id: ActorId,
    system: Arc<SystemShared>,
    sender: Mutex<Option<oneshot::Sender<R>>>,
}

impl<R: Send + 'static> PromiseTarget<R> {
    fn create(system: Arc<SystemShared>) -> (ActorRef<R>, oneshot::Receiver<R>) {
        let (sender, receiver) = oneshot::channel();
        let target = PromiseTarget {
            id: ActorId::next(),
            system,
            sender: Mutex::new(Some(sender)),
        };
        (
            ActorRef {
                target: Arc::new(target),
            },
            receiver,
        )
    }
}

impl<R: Send + 'static> Target for PromiseTarget<R> {
    fn id(&self) -> ActorId {
        self.id
    }

    fn path(&self) -> String {
        format!("{}{}", crate::remote_support::ASK_REPLY_PATH, self.id)
    }

    fn system(&self) -> &Arc<SystemShared> {
        &self.system
    }

    fn send_system(self: Arc<Self>, _msg: SystemMessage) {}

    fn add_watcher(&self, entry: WatcherEntry) -> Result<(), (WatcherEntry, Option<ActorError>)> {
        if self.is_terminated() {
            return Err((entry, None));
        }
        // NOTE: a pending ask reply ref does not notify watchers when the ask completes;
        // the ref is temporary and watching it has no use.
        Ok(())
    }

    fn unwatch(&self, _watcher: ActorId) {}

    fn is_ask_reply(&self) -> bool {
        true
    }

    /// True once the reply arrived or the asker stopped waiting for it.
    fn is_terminated(&self) -> bool {
        self.sender
            .lock()
            .map(|s| s.as_ref().is_none_or(|sender| sender.is_closed()))
            .unwrap_or(true)
    }
}

impl<R: Send + 'static> MessageTarget<R> for PromiseTarget<R> {
    fn enqueue(&self, envelope: Envelope<R>, _overflow_applies: bool) -> Enqueued<R> {
        let sender = self.sender.lock().ok().and_then(|mut s| s.take());
        match sender {
            Some(sender) => match sender.send(envelope.into_message()) {
                Ok(()) => Enqueued::Done,
                Err(msg) => Enqueued::Rejected(Envelope::User(msg), Rejection::Stopped),
            },
            None => Enqueued::Rejected(envelope, Rejection::Stopped),
        }
    }

    fn schedule(self: Arc<Self>) {}
}

/// A message adapter: converts each message for its owning actor, and stops with it.
struct AdapterTarget<M> {
    id: ActorId,
    owner: AnyActorRef,
    /// This target, for the `Terminated` its watchers get.
    me: Weak<AdapterTarget<M>>,
    system: Arc<SystemShared>,
    f: Box<dyn Fn(M) + Send + Sync>,
    /// Watchers of the adapter, each with the id under which it is relayed from the owner.
    watchers: Mutex<HashMap<ActorId, ActorId>>,
}

impl<M: Send + 'static> ActorRef<M> {
    /// Creates a message adapter of `owner`: `f` converts each message and sends it to the
    /// owner. The adapter counts as stopped once the owner has stopped.
    pub(crate) fn adapter(
        system: &crate::ActorSystem,
        owner: AnyActorRef,
        f: impl Fn(M) + Send + Sync + 'static,
    ) -> Self {
        let target = Arc::new_cyclic(|me| AdapterTarget {
            id: ActorId::next(),
            owner,
            me: me.clone(),
            system: Arc::clone(&system.shared),
            f: Box::new(f),
            watchers: Mutex::new(HashMap::new()),
        });
        ActorRef { target }
    }
}

impl<M> AdapterTarget<M> {
    fn watchers(&self) -> MutexGuard<'_, HashMap<ActorId, ActorId>> {
        self.watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<M: Send + 'static> Target for AdapterTarget<M> {
    fn id(&self) -> ActorId {
        self.id
    }

    fn path(&self) -> String {
        format!("{}/$adapter-{}", self.owner.path(), self.id)
    }

    fn system(&self) -> &Arc<SystemShared> {
        &self.system
    }

    fn send_system(self: Arc<Self>, _msg: SystemMessage) {}

    /// Relays the owner's termination to the watcher under an id of its own, so a watcher
    /// of both the owner and the adapter keeps two watches.
    fn add_watcher(&self, entry: WatcherEntry) -> Result<(), (WatcherEntry, Option<ActorError>)> {
        let Some(me) = self.me.upgrade() else {
            // Unreachable: a target is only called through a live `Arc`.
            return Ok(());
        };
        let watcher = entry.watcher;
        let relayed_as = ActorId::next();
        {
            let mut watchers = self.watchers();
            // A second watch by the same watcher changes nothing, as with an actor.
            if watchers.contains_key(&watcher) {
                return Ok(());
            }
            watchers.insert(watcher, relayed_as);
        }
        let relay = WatcherEntry {
            watcher: relayed_as,
            notify: WatchNotify::Callback(Box::new(move |terminated| {
                me.watchers().remove(&watcher);
                entry.notify(&Terminated {
                    actor: AnyActorRef {
                        target: me.clone() as Arc<dyn Target>,
                    },
                    failure: terminated.failure.clone(),
                });
            })),
        };
        // Not under the watchers' lock, which the relay takes: the owner may stop, and run
        // the relay, before this call returns.
        self.owner.target.add_watcher(relay)
    }

    fn unwatch(&self, watcher: ActorId) {
        let relayed_as = self.watchers().remove(&watcher);
        if let Some(relayed_as) = relayed_as {
            self.owner.target.unwatch(relayed_as);
        }
    }

    fn is_terminated(&self) -> bool {
        self.owner.is_terminated()
    }
}

impl<M: Send + 'static> MessageTarget<M> for AdapterTarget<M> {
    fn enqueue(&self, envelope: Envelope<M>, _overflow_applies: bool) -> Enqueued<M> {
        if self.owner.is_terminated() {
            return Enqueued::Rejected(envelope, Rejection::Stopped);
        }
        (self.f)(envelope.into_message());
        Enqueued::Done
    }

    fn schedule(self: Arc<Self>) {}
}

/// A ref that runs a function on each message.
struct FunctionTarget<M> {
    id: ActorId,
    name: Box<str>,
    system: Arc<SystemShared>,
    f: Box<dyn Fn(M) + Send + Sync>,
}

impl<M: Send + 'static> Target for FunctionTarget<M> {
    fn id(&self) -> ActorId {
        self.id
    }

    fn path(&self) -> String {
        format!("/temp/{}", self.name)
    }

    fn system(&self) -> &Arc<SystemShared> {
        &self.system
    }

    fn send_system(self: Arc<Self>, _msg: SystemMessage) {}

    fn add_watcher(&self, _entry: WatcherEntry) -> Result<(), (WatcherEntry, Option<ActorError>)> {
        // A function ref never stops, so its watchers are never notified.
        Ok(())
    }

    fn unwatch(&self, _watcher: ActorId) {}

    fn is_terminated(&self) -> bool {
        false
    }
}

impl<M: Send + 'static> MessageTarget<M> for FunctionTarget<M> {
    fn enqueue(&self, envelope: Envelope<M>, _overflow_applies: bool) -> Enqueued<M> {
        (self.f)(envelope.into_message());
        Enqueued::Done
    }

    fn schedule(self: Arc<Self>) {}
}
