//! [`TestProbe`]: an actor ref whose messages a test can inspect.

use std::fmt::Debug;
use std::time::Duration;

use akkord_actor::{ActorRef, ActorSystem, AnyActorRef, Terminated};
use tokio::sync::mpsc;

/// Default time a probe waits for an expected message.
pub const DEFAULT_EXPECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A ref that records every message sent to it, with assertions that wait for them.
///
/// The `expect_*` methods panic with a message that names what was expected, so they are
/// meant for tests.
///
/// # Example
///
/// ```
/// use akkord_actor::ActorSystem;
/// use akkord_testkit::TestProbe;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let system = ActorSystem::new("probe-example").unwrap();
/// let mut probe = TestProbe::<u32>::new(&system);
/// probe.actor_ref().tell(7);
/// assert_eq!(probe.expect_message().await, 7);
/// probe.expect_no_message(std::time::Duration::from_millis(20)).await;
/// # system.terminate().await;
/// # }
/// ```
pub struct TestProbe<M> {
    actor_ref: ActorRef<M>,
    receiver: mpsc::UnboundedReceiver<M>,
    timeout: Duration,
}

impl<M: Send + Debug + 'static> TestProbe<M> {
    /// Creates a probe in `system`.
    pub fn new(system: &ActorSystem) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let actor_ref = ActorRef::from_fn(system, "probe", move |msg| {
            let _ = sender.send(msg);
        });
        Self {
            actor_ref,
            receiver,
            timeout: DEFAULT_EXPECT_TIMEOUT,
        }
    }

    /// Sets how long `expect_message` and `expect_terminated` wait.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns the probe's ref, to pass as a recipient or reply-to.
    pub fn actor_ref(&self) -> ActorRef<M> {
        self.actor_ref.clone()
    }

    /// Waits for the next message.
    ///
    /// # Panics
    ///
    /// Panics when no message arrives within the probe's timeout.
    pub async fn expect_message(&mut self) -> M {
        self.expect_message_within(self.timeout).await
    }

    /// Waits up to `timeout` for the next message.
    ///
    /// # Panics
    ///
    /// Panics when no message arrives within `timeout`.
    pub async fn expect_message_within(&mut self, timeout: Duration) -> M {
        match tokio::time::timeout(timeout, self.receiver.recv()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => panic!("probe channel closed while waiting for a message"),
            Err(_) => panic!("expected a message within {timeout:?}, none arrived"),
        }
    }

    /// Waits for the next message and checks it equals `expected`.
    ///
    /// # Panics
    ///
    /// Panics when no message arrives in time or it differs from `expected`.
    pub async fn expect_message_eq(&mut self, expected: M)
    where
        M: PartialEq,
    {
        let msg = self.expect_message().await;
        assert_eq!(msg, expected, "probe received a different message");
    }

    /// Waits for `count` messages and returns them in arrival order.
    ///
    /// # Panics
    ///
    /// Panics when they do not all arrive within the probe's timeout.
    pub async fn receive_messages(&mut self, count: usize) -> Vec<M> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut messages = Vec::with_capacity(count);
        while messages.len() < count {
            match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                Ok(Some(msg)) => messages.push(msg),
                Ok(None) => panic!("probe channel closed after {} messages", messages.len()),
                Err(_) => panic!(
                    "expected {count} messages within {:?}, received {}: {messages:?}",
                    self.timeout,
                    messages.len()
                ),
            }
        }
        messages
    }

    /// Checks that no message arrives during `duration`.
    ///
    /// # Panics
    ///
    /// Panics when a message arrives.
    pub async fn expect_no_message(&mut self, duration: Duration) {
        if let Ok(Some(msg)) = tokio::time::timeout(duration, self.receiver.recv()).await {
            panic!("expected no message for {duration:?}, received {msg:?}");
        }
    }

    /// Waits until `actor` has stopped and returns how it stopped.
    ///
    /// # Panics
    ///
    /// Panics when it has not stopped within the probe's timeout.
    pub async fn expect_terminated(&self, actor: impl Into<AnyActorRef>) -> Terminated {
        let actor = actor.into();
        match tokio::time::timeout(self.timeout, actor.terminated()).await {
            Ok(terminated) => terminated,
            Err(_) => panic!(
                "expected {} to stop within {:?}, it is still running",
                actor.path(),
                self.timeout
            ),
        }
    }

    /// Returns the next message if one is already queued.
    pub fn try_receive(&mut self) -> Option<M> {
        self.receiver.try_recv().ok()
    }
}
