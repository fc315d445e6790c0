//! Extension point for actor refs whose target lives outside this process.
//!
//! The remote layer implements [`ExternalActor`] for an actor on another node and wraps it
//! with [`ActorRef::from_external`], so code with an [`ActorRef<M>`] cannot tell a
//! local actor from a remote one. The pieces here are what such a layer needs and the local
//! runtime does not expose otherwise:
//!
//! - [`ExternalActor`]: the untyped target behind an external ref. Messages reach it boxed
//!   as `dyn Any`, so one implementation serves every message type.
//! - [`Watcher`]: a registered watcher that an external target keeps and later notifies,
//!   once, with [`Terminated`].
//! - [`watch_with_callback`] and [`unwatch`]: watch a local actor on behalf of something
//!   that is not an actor, such as a watcher on another node.
//! - [`AnyActorRef::is_ask_reply`]: distinguishes the reply ref of an ask, which takes one
//!   message, from refs that live on.
//! - [`run_ready_after`]: runs the actors that a burst of inbound messages made ready in
//!   the task that dispatched them.
//! - [`new_actor_id`]: a fresh id from the process-wide counter. An external ref uses one as
//!   its local alias, so it never equals a local ref and never collides in a watcher's
//!   table of watched actors.
//! - [`record_dead_letter`]: count and log an undeliverable message.
//! - With the `serde` feature, `Serialize` and `Deserialize` for [`ActorRef<M>`], which
//!   delegate to the `ActorRefResolver` installed with `with_ref_resolver`.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::actor_ref::{
    ActorId, ActorRef, AnyActorRef, Enqueued, Envelope, MessageTarget, Rejection, SystemMessage,
    Target, Terminated, WatchNotify, WatcherEntry,
};
use crate::dead_letters::DeadLetterReason;
use crate::system::{ActorSystem, SystemShared};
use crate::ActorError;

/// A boxed message of any type, as handed to an [`ExternalActor`].
pub type BoxedMessage = Box<dyn Any + Send>;

/// Rejection of a message by an [`ExternalActor`], with the message given back.
pub enum ExternalRejection {
    /// The target has stopped or its node is gone.
    Stopped(BoxedMessage),
    /// A bounded queue towards the target is full.
    Full {
        /// The message that was not accepted.
        message: BoxedMessage,
        /// Capacity of the full queue.
        capacity: usize,
    },
    /// The target dropped the message and logged why; the ref records a dead letter of the
    /// message's type for `reason`, and `try_tell` returns `Ok`.
    Dropped {
        /// Reason recorded with the dead letter.
        reason: DeadLetterReason,
    },
}

/// Rejection of a message by [`ExternalActor::send_ref`]. The caller still has the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefRejection {
    /// The target has stopped or its node is gone.
    Stopped,
    /// A bounded queue towards the target is full.
    Full {
        /// Capacity of the full queue.
        capacity: usize,
    },
    /// The target dropped the message and logged why, so the ref records a dead letter of
    /// the message's type for `reason`, and `try_tell` returns `Ok`.
    Dropped {
        /// Reason recorded with the dead letter.
        reason: DeadLetterReason,
    },
}

impl fmt::Debug for ExternalRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalRejection::Stopped(_) => f.write_str("Stopped"),
            ExternalRejection::Full { capacity, .. } => write!(f, "Full({capacity})"),
            ExternalRejection::Dropped { reason } => write!(f, "Dropped({reason:?})"),
        }
    }
}

/// Target of an actor ref that lives outside the local runtime, such as an actor on another
/// node.
///
/// Methods are called from the sender's thread and must not block.
pub trait ExternalActor: Send + Sync + 'static {
    /// Returns the local alias id of the target, allocated with [`new_actor_id`].
    ///
    /// Refs compare and hash by this id, so every ref to the same external actor must
    /// return the same one, and it must never be the id of a local actor.
    fn id(&self) -> ActorId;

    /// Returns a path for humans, such as `akkord://demo@127.0.0.1:2552/user/echo`.
    fn path(&self) -> String;

    /// Returns the local actor system the ref belongs to, for dead letters.
    fn system(&self) -> &ActorSystem;

    /// Sends `message`, whose Rust type name is `type_name`, without waiting.
    ///
    /// A target that cannot send this message (for example because its type is not
    /// serializable) logs why and returns [`ExternalRejection::Dropped`].
    ///
    /// # Errors
    ///
    /// Returns the message with [`ExternalRejection::Stopped`] when the target is gone, or
    /// with [`ExternalRejection::Full`] when a bounded queue towards it is full.
    fn send(&self, message: BoxedMessage, type_name: &'static str)
        -> Result<(), ExternalRejection>;

    /// Sends the message behind `message`, whose Rust type name is `type_name`, without
    /// taking it, for a target that only needs to read it, such as one that serializes it.
    /// This saves boxing the message. Returns `None` when the target needs the message by
    /// value, which the default does, and the caller then uses [`ExternalActor::send`].
    ///
    /// A target that cannot send this message logs why and returns
    /// [`RefRejection::Dropped`]; on [`RefRejection::Stopped`] and [`RefRejection::Full`]
    /// the caller handles the message as for the matching [`ExternalRejection`].
    fn send_ref(
        &self,
        message: &(dyn Any + Send),
        type_name: &'static str,
    ) -> Option<Result<(), RefRejection>> {
        let _ = (message, type_name);
        None
    }

    /// Registers `watcher`, to be notified once when the target stops.
    ///
    /// # Errors
    ///
    /// Gives the watcher back, with the failure that stopped the target if known, when the
    /// target has already stopped, so the caller notifies it at once.
    fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, Option<ActorError>)>;

    /// Removes the watcher with id `watcher`; it is not notified afterwards.
    fn unwatch(&self, watcher: ActorId);

    /// Returns true once the target is known to have stopped.
    fn is_terminated(&self) -> bool;

    /// Returns `self` for downcasting to the implementing type.
    fn as_any(&self) -> &dyn Any;
}

/// A watcher of an external target: an actor that watches it, an ask waiting for a reply,
/// or a callback.
pub struct Watcher {
    entry: WatcherEntry,
}

impl Watcher {
    /// Returns the id of the watcher, the key for [`ExternalActor::unwatch`].
    pub fn id(&self) -> ActorId {
        self.entry.watcher
    }

    /// Notifies the watcher that `actor` stopped, with the failure that stopped it, if any.
    pub fn notify(self, actor: &AnyActorRef, failure: Option<ActorError>) {
        self.entry.notify(&Terminated {
            actor: actor.clone(),
            failure,
        });
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Watcher({:?})", self.entry.watcher)
    }
}

impl<M: Send + 'static> ActorRef<M> {
    /// Creates a ref whose messages go to `target`.
    ///
    /// Messages are boxed and handed to [`ExternalActor::send`]; watching the ref registers
    /// a [`Watcher`] with the target.
    pub fn from_external(target: Arc<dyn ExternalActor>) -> Self {
        let system = Arc::clone(&target.system().shared);
        ActorRef {
            target: Arc::new(ExternalTarget {
                external: target,
                system,
                marker: PhantomData::<fn(M)>,
            }),
        }
    }

    /// Returns the external target behind this ref, or `None` for a local actor.
    pub fn external(&self) -> Option<Arc<dyn ExternalActor>> {
        self.to_any().external()
    }
}

impl AnyActorRef {
    /// Returns the external target behind this ref, or `None` for a local actor.
    pub fn external(&self) -> Option<Arc<dyn ExternalActor>> {
        self.target.external()
    }

    /// Returns true when this is the reply ref of an ask: it takes one message, and it
    /// notifies no watcher when it stops.
    ///
    /// A remote layer can forget such a ref once a reply reached it, instead of watching it.
    pub fn is_ask_reply(&self) -> bool {
        self.target.is_ask_reply()
    }
}

/// Start of the path of an ask's reply ref, followed by its actor id.
///
/// A node that decodes a ref with such a path can expect one message to be sent to it.
pub const ASK_REPLY_PATH: &str = "/temp/$ask";

/// Runs `deliver`, which sends messages to local actors, then runs the turns of the actors
/// it made ready in the calling task, before the returned future completes.
///
/// A transport wraps the dispatch of each read from a connection in this call. Messages to
/// an idle actor then start no task of their own: the actor runs once the read is
/// dispatched, on the thread that read it, so a burst costs no wake-up of another worker
/// thread. Such a turn handles up to 64 batches of the system's `throughput` messages, and
/// takes no further batch once about 1 ms has passed since its second one, so that the
/// actor drains a read's messages before the next read. An actor whose turn waits, or that still has messages after its
/// turn, continues on a task of its own. The caller is held up for at most 64 turns in a
/// row, the budget of the runtime's own driver tasks, and usually for one.
pub async fn run_ready_after<T>(deliver: impl FnOnce() -> T) -> T {
    crate::scheduler::run_after(deliver).await
}

/// Allocates a fresh actor id from the process-wide counter shared with local actors.
pub fn new_actor_id() -> ActorId {
    ActorId::next()
}

/// Watches local `actor` on behalf of `watcher`: `callback` runs once when it stops, at once
/// when it has already stopped.
///
/// Watching again with the same watcher id keeps the first callback.
pub fn watch_with_callback(
    actor: &AnyActorRef,
    watcher: ActorId,
    callback: impl FnOnce(&Terminated) + Send + 'static,
) {
    actor.add_watch(WatcherEntry {
        watcher,
        notify: WatchNotify::Callback(Box::new(callback)),
    });
}

/// Removes the watcher with id `watcher` from `actor`; its callback does not run afterwards.
pub fn unwatch(actor: &AnyActorRef, watcher: ActorId) {
    actor.target.unwatch(watcher);
}

/// Counts a message of type `M` for `recipient` as a dead letter and logs it, rate-limited.
pub fn record_dead_letter<M>(system: &ActorSystem, recipient: &str, reason: DeadLetterReason) {
    system.shared.record_dead_letter::<M>(recipient, reason);
}

/// Adapter from the untyped [`ExternalActor`] to the runtime's typed target.
struct ExternalTarget<M> {
    external: Arc<dyn ExternalActor>,
    system: Arc<SystemShared>,
    marker: PhantomData<fn(M)>,
}

impl<M: Send + 'static> Target for ExternalTarget<M> {
    fn id(&self) -> ActorId {
        self.external.id()
    }

    fn path(&self) -> String {
        self.external.path()
    }

    fn system(&self) -> &Arc<SystemShared> {
        &self.system
    }

    fn send_system(self: Arc<Self>, _msg: SystemMessage) {
        // NOTE: stopping an external actor through its ref is not supported; an external
        // target is never a watcher, so no other system message reaches it.
    }

    fn add_watcher(&self, entry: WatcherEntry) -> Result<(), (WatcherEntry, Option<ActorError>)> {
        self.external
            .add_watcher(Watcher { entry })
            .map_err(|(watcher, failure)| (watcher.entry, failure))
    }

    fn unwatch(&self, watcher: ActorId) {
        self.external.unwatch(watcher);
    }

    fn is_terminated(&self) -> bool {
        self.external.is_terminated()
    }

    fn external(&self) -> Option<Arc<dyn ExternalActor>> {
        Some(Arc::clone(&self.external))
    }
}

impl<M: Send + 'static> MessageTarget<M> for ExternalTarget<M> {
    fn enqueue(&self, envelope: Envelope<M>, _overflow_applies: bool) -> Enqueued<M> {
        let message = envelope.into_message();
        if let Some(sent) = self.external.send_ref(&message, std::any::type_name::<M>()) {
            return match sent {
                Ok(()) => Enqueued::Done,
                Err(RefRejection::Stopped) => {
                    Enqueued::Rejected(Envelope::User(message), Rejection::Stopped)
                }
                Err(RefRejection::Full { capacity }) => {
                    Enqueued::Rejected(Envelope::User(message), Rejection::Full { capacity })
                }
                Err(RefRejection::Dropped { reason }) => {
                    self.system
                        .record_dead_letter::<M>(&self.external.path(), reason);
                    Enqueued::Done
                }
            };
        }
        let message: BoxedMessage = Box::new(message);
        match self.external.send(message, std::any::type_name::<M>()) {
            Ok(()) => Enqueued::Done,
            Err(ExternalRejection::Stopped(message)) => match message.downcast::<M>() {
                Ok(message) => Enqueued::Rejected(Envelope::User(*message), Rejection::Stopped),
                Err(_) => Enqueued::Done,
            },
            Err(ExternalRejection::Full { message, capacity }) => match message.downcast::<M>() {
                Ok(message) => {
                    Enqueued::Rejected(Envelope::User(*message), Rejection::Full { capacity })
                }
                Err(_) => Enqueued::Done,
            },
            Err(ExternalRejection::Dropped { reason }) => {
                self.system
                    .record_dead_letter::<M>(&self.external.path(), reason);
                Enqueued::Done
            }
        }
    }

    fn schedule(self: Arc<Self>) {}
}

#[cfg(feature = "serde")]
pub use serde_support::{
    with_ref_resolver, ActorRefResolver, DeliverFn, ExportedRef, ImportedRef, SerializedActorRef,
    SerializedActorRefView,
};

#[cfg(feature = "serde")]
mod serde_support;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::{Actor, ActorResult, Context, Props, SendError};

    /// An external target that records messages and watchers, and can be stopped.
    struct Recorder {
        id: ActorId,
        system: ActorSystem,
        received: Mutex<Vec<String>>,
        watchers: Mutex<Vec<Watcher>>,
        stopped: Mutex<bool>,
        drop_all: bool,
        /// Flag set when messages arrive through `send_ref` instead of boxed through `send`.
        by_ref: bool,
    }

    impl Recorder {
        fn new(system: &ActorSystem, drop_all: bool) -> Arc<Self> {
            Self::with_mode(system, drop_all, false)
        }

        fn with_mode(system: &ActorSystem, drop_all: bool, by_ref: bool) -> Arc<Self> {
            Arc::new(Recorder {
                id: new_actor_id(),
                system: system.clone(),
                received: Mutex::default(),
                watchers: Mutex::default(),
                stopped: Mutex::new(false),
                drop_all,
                by_ref,
            })
        }

        fn stop(self: &Arc<Self>) {
            *self.stopped.lock().unwrap() = true;
            let actor = ActorRef::<String>::from_external(Arc::clone(self) as _).to_any();
            for watcher in self.watchers.lock().unwrap().drain(..) {
                watcher.notify(&actor, Some(ActorError::msg("node gone")));
            }
        }
    }

    impl ExternalActor for Recorder {
        fn id(&self) -> ActorId {
            self.id
        }

        fn path(&self) -> String {
            "akkord://test@127.0.0.1:1/user/recorder".to_owned()
        }

        fn system(&self) -> &ActorSystem {
            &self.system
        }

        fn send(
            &self,
            message: BoxedMessage,
            _type_name: &'static str,
        ) -> Result<(), ExternalRejection> {
            if *self.stopped.lock().unwrap() {
                return Err(ExternalRejection::Stopped(message));
            }
            if self.drop_all {
                return Err(ExternalRejection::Dropped {
                    reason: DeadLetterReason::OutboundQueueFull,
                });
            }
            let text = message.downcast::<String>().expect("a String message");
            self.received.lock().unwrap().push(*text);
            Ok(())
        }

        fn send_ref(
            &self,
            message: &(dyn Any + Send),
            _type_name: &'static str,
        ) -> Option<Result<(), RefRejection>> {
            if !self.by_ref {
                return None;
            }
            if *self.stopped.lock().unwrap() {
                return Some(Err(RefRejection::Stopped));
            }
            if self.drop_all {
                return Some(Err(RefRejection::Dropped {
                    reason: DeadLetterReason::OutboundQueueFull,
                }));
            }
            let text = message.downcast_ref::<String>().expect("a String message");
            self.received
                .lock()
                .unwrap()
                .push(format!("by ref: {text}"));
            Some(Ok(()))
        }

        fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, Option<ActorError>)> {
            if *self.stopped.lock().unwrap() {
                return Err((watcher, None));
            }
            self.watchers.lock().unwrap().push(watcher);
            Ok(())
        }

        fn unwatch(&self, watcher: ActorId) {
            self.watchers.lock().unwrap().retain(|w| w.id() != watcher);
        }

        fn is_terminated(&self) -> bool {
            *self.stopped.lock().unwrap()
        }

        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    /// Counts its messages and reports each count.
    struct Counter {
        handled: usize,
        report: mpsc::UnboundedSender<usize>,
        /// Time each message keeps the thread busy, for a slow handler.
        busy: Duration,
    }

    impl Actor for Counter {
        type Msg = u32;
        async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u32) -> ActorResult {
            if !self.busy.is_zero() {
                std::thread::sleep(self.busy);
            }
            self.handled += 1;
            let _ = self.report.send(self.handled);
            Ok(())
        }
    }

    fn spawn_counter(
        system: &ActorSystem,
        name: &str,
    ) -> (ActorRef<u32>, mpsc::UnboundedReceiver<usize>) {
        spawn_busy_counter(system, name, Duration::ZERO)
    }

    fn spawn_busy_counter(
        system: &ActorSystem,
        name: &str,
        busy: Duration,
    ) -> (ActorRef<u32>, mpsc::UnboundedReceiver<usize>) {
        let (report, reports) = mpsc::unbounded_channel();
        let counter = system
            .spawn(
                name,
                Props::new(move || Counter {
                    handled: 0,
                    report: report.clone(),
                    busy,
                }),
            )
            .unwrap();
        (counter, reports)
    }

    /// Spawns a counter on a system that handles two messages per batch, and waits until it
    /// has handled a first message. With a batch that is not full, its turn then ends.
    async fn small_batch_counter(
        name: &str,
        busy: Duration,
    ) -> (ActorSystem, ActorRef<u32>, mpsc::UnboundedReceiver<usize>) {
        let config = crate::ActorSystemConfig {
            throughput: std::num::NonZeroUsize::new(2).unwrap(),
            ..Default::default()
        };
        let system = ActorSystem::with_config(name, config).unwrap();
        let (counter, mut reports) = spawn_busy_counter(&system, "counter", busy);
        counter.tell(0);
        assert_eq!(reports.recv().await, Some(1));
        (system, counter, reports)
    }

    /// Waits until the counter has reported `count`.
    async fn expect_count(reports: &mut mpsc::UnboundedReceiver<usize>, count: usize) {
        let reached = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(reported) = reports.recv().await {
                if reported == count {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(reached, Ok(true), "count {count} not reported within 5 s");
    }

    /// Returns the last count reported so far.
    fn last_count(reports: &mut mpsc::UnboundedReceiver<usize>) -> usize {
        let mut last = 0;
        while let Ok(count) = reports.try_recv() {
            last = count;
        }
        last
    }

    // On the test's single-threaded runtime, an actor that has its own task cannot run
    // before the test awaits, so a count seen at once was handled inside the call.
    #[tokio::test]
    async fn burst_recipients_run_in_caller_task() {
        let system = ActorSystem::new("run-ready").unwrap();
        let (first, mut first_reports) = spawn_counter(&system, "first");
        let (second, mut second_reports) = spawn_counter(&system, "second");
        first.tell(0);
        second.tell(0);
        assert_eq!(first_reports.recv().await, Some(1));
        assert_eq!(second_reports.recv().await, Some(1));

        // Without the call, the burst waits for a task of its own.
        for n in 0..5 {
            second.tell(n);
        }
        assert_eq!(last_count(&mut second_reports), 0);
        for expected in 2..=6 {
            assert_eq!(second_reports.recv().await, Some(expected));
        }

        run_ready_after(|| {
            for n in 0..5 {
                second.tell(n);
            }
        })
        .await;
        assert_eq!(last_count(&mut second_reports), 11);

        // The slot contains one actor: the first one made ready moves to a task of its own
        // when the second takes its place.
        run_ready_after(|| {
            first.tell(1);
            second.tell(1);
        })
        .await;
        assert_eq!(last_count(&mut second_reports), 12);
        let first_count = tokio::time::timeout(Duration::from_secs(5), first_reports.recv()).await;
        assert_eq!(first_count.ok().flatten(), Some(2));
        system.terminate().await;
    }

    // As above, a count seen at once was handled inside the call. The time limit is checked
    // before each extra batch but the first, so two batches always run inside the call, and
    // 64 batches at most.
    #[tokio::test]
    async fn burst_turn_takes_extra_batches() {
        let (system, counter, mut reports) = small_batch_counter("extra", Duration::ZERO).await;
        run_ready_after(|| {
            for n in 0..200 {
                counter.tell(n);
            }
        })
        .await;
        let inside = last_count(&mut reports) - 1;
        assert!(inside >= 4, "{inside} messages handled inside the call");
        assert!(inside <= 128, "{inside} messages handled inside the call");
        // The rest continue on a task of the actor's own.
        expect_count(&mut reports, 201).await;
        system.terminate().await;
    }

    #[tokio::test]
    async fn slow_burst_turn_stops_extra_batches() {
        // Each message takes twice the time limit, so the turn stops after the first batch
        // and one extra batch of two messages each.
        let busy = crate::scheduler::INLINE_TURN_TIME * 2;
        let (system, counter, mut reports) = small_batch_counter("slow", busy).await;
        run_ready_after(|| {
            for n in 0..5 {
                counter.tell(n);
            }
        })
        .await;
        assert_eq!(last_count(&mut reports), 5);
        expect_count(&mut reports, 6).await;
        system.terminate().await;
    }

    #[tokio::test]
    async fn only_ask_reply_refs_take_one_message() {
        let system = ActorSystem::new("ask-reply").unwrap();
        let (sender, mut refs) = mpsc::unbounded_channel();
        let answerer = ActorRef::from_fn(&system, "answerer", move |reply_to: ActorRef<u32>| {
            let _ = sender.send(reply_to.to_any());
            reply_to.tell(7);
        });
        assert_eq!(
            answerer
                .ask(|reply_to| reply_to, Duration::from_secs(5))
                .await,
            Ok(7)
        );
        let reply_to = refs.recv().await.unwrap();
        assert!(reply_to.is_ask_reply());
        assert!(reply_to.path().starts_with(ASK_REPLY_PATH));
        assert!(!answerer.to_any().is_ask_reply());
        // A function ref cannot take a path that other nodes read as an ask's reply ref.
        let lookalike = ActorRef::from_fn(&system, "$ask-7", |_: u32| {});
        assert_eq!(lookalike.path(), "/temp/_ask-7");
        assert!(!lookalike.path().starts_with(ASK_REPLY_PATH));
        let external = ActorRef::<String>::from_external(Recorder::new(&system, false) as _);
        assert!(!external.to_any().is_ask_reply());
        system.terminate().await;
    }

    #[tokio::test]
    async fn external_ref_sends_and_compares_by_alias() {
        let system = ActorSystem::new("external").unwrap();
        let recorder = Recorder::new(&system, false);
        let first = ActorRef::<String>::from_external(Arc::clone(&recorder) as _);
        let second = ActorRef::<String>::from_external(Arc::clone(&recorder) as _);
        first.tell("one".to_owned());
        second.try_tell("two".to_owned()).unwrap();
        assert_eq!(*recorder.received.lock().unwrap(), ["one", "two"]);
        assert_eq!(first, second);
        assert_eq!(first.id(), recorder.id);
        assert!(first.external().is_some());

        let local = ActorRef::from_fn(&system, "local", |_: String| {});
        assert_ne!(local.id(), first.id());
        assert!(local.external().is_none());
        system.terminate().await;
    }

    #[tokio::test]
    async fn stopped_or_dropping_external_counts_dead_letters() {
        let system = ActorSystem::new("external-dead").unwrap();
        let dropping = ActorRef::<String>::from_external(Recorder::new(&system, true) as _);
        dropping.tell("lost".to_owned());
        assert_eq!(system.dead_letter_count(), 1);
        assert!(dropping.try_tell("also lost".to_owned()).is_ok());
        assert_eq!(system.dead_letter_count(), 2);

        let recorder = Recorder::new(&system, false);
        let stopped = ActorRef::<String>::from_external(Arc::clone(&recorder) as _);
        recorder.stop();
        stopped.tell("late".to_owned());
        assert_eq!(system.dead_letter_count(), 3);
        match stopped.try_tell("given back".to_owned()) {
            Err(SendError::Stopped { message, .. }) => assert_eq!(message, "given back"),
            other => panic!("expected Stopped, got {other:?}"),
        }
        system.terminate().await;
    }

    #[tokio::test]
    async fn by_ref_external_sends_and_rejects() {
        let system = ActorSystem::new("external-by-ref").unwrap();
        let recorder = Recorder::with_mode(&system, false, true);
        let target = ActorRef::<String>::from_external(Arc::clone(&recorder) as _);
        target.tell("one".to_owned());
        target.try_tell("two".to_owned()).unwrap();
        assert_eq!(
            *recorder.received.lock().unwrap(),
            ["by ref: one", "by ref: two"]
        );

        let dropping =
            ActorRef::<String>::from_external(Recorder::with_mode(&system, true, true) as _);
        assert!(dropping.try_tell("lost".to_owned()).is_ok());
        assert_eq!(system.dead_letter_count(), 1);

        recorder.stop();
        match target.try_tell("given back".to_owned()) {
            Err(SendError::Stopped { message, .. }) => assert_eq!(message, "given back"),
            other => panic!("expected Stopped, got {other:?}"),
        }
        target.tell("late".to_owned());
        assert_eq!(system.dead_letter_count(), 2);
        system.terminate().await;
    }

    #[tokio::test]
    async fn actor_watching_external_ref_gets_terminated() {
        struct Watching {
            target: ActorRef<String>,
            report: mpsc::UnboundedSender<String>,
        }
        impl Actor for Watching {
            type Msg = String;
            async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
                ctx.watch_with(&self.target, "target stopped".to_owned());
                let _ = self.report.send("watching".to_owned());
                Ok(())
            }
            async fn handle(&mut self, _ctx: &mut Context<Self>, msg: String) -> ActorResult {
                let _ = self.report.send(msg);
                Ok(())
            }
        }
        let system = ActorSystem::new("external-watch").unwrap();
        let recorder = Recorder::new(&system, false);
        let target = ActorRef::<String>::from_external(Arc::clone(&recorder) as _);
        let (report, mut reports) = mpsc::unbounded_channel();
        system
            .spawn(
                "watching",
                Props::new(move || Watching {
                    target: target.clone(),
                    report: report.clone(),
                }),
            )
            .unwrap();
        assert_eq!(reports.recv().await.as_deref(), Some("watching"));
        assert_eq!(recorder.watchers.lock().unwrap().len(), 1);
        recorder.stop();
        let stopped = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await;
        assert_eq!(stopped.ok().flatten().as_deref(), Some("target stopped"));
        system.terminate().await;
    }

    #[tokio::test]
    async fn callback_watch_and_unwatch_of_local_actor() {
        let system = ActorSystem::new("callback-watch").unwrap();
        struct Idle;
        impl Actor for Idle {
            type Msg = ();
            async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> ActorResult {
                Ok(())
            }
        }
        let kept = system.spawn("kept", Props::new(|| Idle)).unwrap().to_any();
        let dropped = system
            .spawn("dropped", Props::new(|| Idle))
            .unwrap()
            .to_any();
        let (sender, mut notified) = mpsc::unbounded_channel();
        let kept_sender = sender.clone();
        watch_with_callback(&kept, new_actor_id(), move |t| {
            let _ = kept_sender.send(t.actor.path());
        });
        let watcher = new_actor_id();
        watch_with_callback(&dropped, watcher, move |t| {
            let _ = sender.send(t.actor.path());
        });
        unwatch(&dropped, watcher);
        assert!(system.stop(&dropped));
        dropped.terminated().await;
        assert!(system.stop(&kept));
        kept.terminated().await;
        assert_eq!(notified.recv().await.as_deref(), Some("/user/kept"));
        assert!(notified.try_recv().is_err());
        system.terminate().await;
    }

    #[tokio::test(start_paused = true)]
    async fn ask_reply_ref_terminates_after_timeout() {
        let system = ActorSystem::new("ask-reply-ref").unwrap();
        let kept = Arc::new(Mutex::new(None::<ActorRef<u64>>));
        let keeper = {
            let kept = Arc::clone(&kept);
            ActorRef::from_fn(&system, "keeper", move |reply: ActorRef<u64>| {
                *kept.lock().unwrap() = Some(reply);
            })
        };
        assert!(keeper
            .ask(|reply| reply, Duration::from_secs(1))
            .await
            .is_err());
        let reply = kept
            .lock()
            .unwrap()
            .clone()
            .expect("the reply ref was kept");
        assert!(reply.to_any().is_terminated());
        system.terminate().await;
    }
}
