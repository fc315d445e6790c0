//! The [`Actor`] trait and [`Props`], the recipe for starting an actor.

use std::future::Future;
use std::sync::Arc;

use crate::actor_ref::AnyActorRef;
use crate::context::Context;
use crate::error::{ActorError, ActorErrorKind, ActorResult};
use crate::mailbox::MailboxConfig;
use crate::supervision::SupervisorStrategy;

/// An actor: state plus a handler for one message type, with lifecycle hooks.
///
/// The runtime calls the handler for one message at a time, so the actor owns its state
/// without locks. Handlers may be `async`; while a handler awaits, the actor receives no
/// other message. A handler that returns `Err` or panics is a failure, and the actor's
/// [`SupervisorStrategy`] decides what happens next.
///
/// # Example
///
/// ```
/// use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, Context, Props};
/// use std::time::Duration;
///
/// enum CounterMsg {
///     Add(u64),
///     Get(ActorRef<u64>),
/// }
///
/// #[derive(Default)]
/// struct Counter {
///     total: u64,
/// }
///
/// impl Actor for Counter {
///     type Msg = CounterMsg;
///
///     async fn handle(&mut self, _ctx: &mut Context<Self>, msg: CounterMsg) -> ActorResult {
///         match msg {
///             CounterMsg::Add(n) => self.total += n,
///             CounterMsg::Get(reply_to) => reply_to.tell(self.total),
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let system = ActorSystem::new("example")?;
/// let counter = system.spawn("counter", Props::new(Counter::default))?;
/// counter.tell(CounterMsg::Add(2));
/// counter.tell(CounterMsg::Add(3));
/// let total = counter.ask(CounterMsg::Get, Duration::from_secs(1)).await?;
/// assert_eq!(total, 5);
/// system.terminate().await;
/// # Ok(())
/// # }
/// ```
pub trait Actor: Send + Sized + 'static {
    /// The message type this actor handles.
    type Msg: Send + 'static;

    /// Runs once when the actor starts, and again after each restart, before any message.
    fn started(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ActorResult> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message.
    fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: Self::Msg,
    ) -> impl Future<Output = ActorResult> + Send;

    /// Runs once after the actor and all its children have stopped; failures are logged.
    fn stopped(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// Runs on the failed instance before it is replaced by a new one.
    ///
    /// The children of the failed instance have already stopped when this runs.
    fn pre_restart(
        &mut self,
        ctx: &mut Context<Self>,
        error: &ActorError,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, error);
        async {}
    }

    /// Handles the `Terminated` signal of an actor watched with [`Context::watch`] that stopped
    /// without a failure, or of a non-child that stopped for any reason.
    ///
    /// The default ignores it. Returning `Err` fails this actor.
    fn terminated(
        &mut self,
        ctx: &mut Context<Self>,
        actor: AnyActorRef,
    ) -> impl Future<Output = ActorResult> + Send {
        let _ = (ctx, actor);
        async { Ok(()) }
    }

    /// Handles the `ChildFailed` signal: a watched child stopped because of a failure.
    ///
    /// The default escalates: it fails this actor with [`ActorErrorKind::ChildFailed`], so
    /// this actor's own supervisor decides next. Return `Ok(())` to handle the failure here.
    fn child_failed(
        &mut self,
        ctx: &mut Context<Self>,
        child: AnyActorRef,
        error: ActorError,
    ) -> impl Future<Output = ActorResult> + Send {
        let _ = ctx;
        async move {
            Err(ActorError::from_kind(ActorErrorKind::ChildFailed {
                child: child.path(),
                cause: error,
            }))
        }
    }
}

/// Recipe for starting an actor: a factory for its initial state, a supervisor strategy and
/// a mailbox configuration.
///
/// The factory runs at start and again at each restart, so a restart begins from fresh
/// state. `Props` is cheap to clone, which pool routers use to start many routees.
pub struct Props<A: Actor> {
    inner: Arc<PropsInner<A>>,
}

/// The shared part of [`Props`]; every actor started from the same props points at one copy.
pub(crate) struct PropsInner<A: Actor> {
    pub(crate) factory: Arc<dyn Fn() -> A + Send + Sync>,
    pub(crate) supervisor: SupervisorStrategy,
    pub(crate) mailbox: MailboxConfig,
    pub(crate) stash_capacity: usize,
}

impl<A: Actor> Clone for PropsInner<A> {
    fn clone(&self) -> Self {
        Self {
            factory: Arc::clone(&self.factory),
            supervisor: self.supervisor.clone(),
            mailbox: self.mailbox.clone(),
            stash_capacity: self.stash_capacity,
        }
    }
}

/// Default number of messages an actor may stash.
pub const DEFAULT_STASH_CAPACITY: usize = 1000;

impl<A: Actor> Props<A> {
    /// Creates props from a factory of the actor's initial state.
    ///
    /// The defaults are [`SupervisorStrategy::Stop`], an unbounded mailbox and a stash of
    /// [`DEFAULT_STASH_CAPACITY`] messages.
    pub fn new(factory: impl Fn() -> A + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(PropsInner {
                factory: Arc::new(factory),
                supervisor: SupervisorStrategy::Stop,
                mailbox: MailboxConfig::Unbounded,
                stash_capacity: DEFAULT_STASH_CAPACITY,
            }),
        }
    }

    pub(crate) fn inner(&self) -> &PropsInner<A> {
        &self.inner
    }

    /// Sets what happens when the actor fails.
    pub fn with_supervisor(mut self, strategy: SupervisorStrategy) -> Self {
        Arc::make_mut(&mut self.inner).supervisor = strategy;
        self
    }

    /// Sets the mailbox.
    pub fn with_mailbox(mut self, mailbox: MailboxConfig) -> Self {
        Arc::make_mut(&mut self.inner).mailbox = mailbox;
        self
    }

    /// Sets how many messages [`Context::stash`] may hold; stashing more is an error.
    pub fn with_stash_capacity(mut self, capacity: usize) -> Self {
        Arc::make_mut(&mut self.inner).stash_capacity = capacity;
        self
    }
}

impl<A: Actor> Clone for Props<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}
