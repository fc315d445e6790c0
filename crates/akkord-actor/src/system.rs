//! The [`ActorSystem`]: root of an actor hierarchy and home of shared services.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::actor::{Actor, Props};
use crate::actor_ref::{ActorRef, AnyActorRef};
use crate::address::{validate_system_name, AddressError};
use crate::cell::spawn_actor;
use crate::context::Context;
use crate::dead_letters::{DeadLetter, DeadLetterReason, DeadLetters};
use crate::error::{ActorResult, SpawnError};
use crate::event_stream::EventStream;
use crate::receptionist::Receptionist;
use crate::scheduler::StartQueue;
use crate::shutdown::{CoordinatedShutdown, PhaseConfig, ShutdownReason};

/// Settings of an actor system.
#[derive(Debug, Clone)]
pub struct ActorSystemConfig {
    /// Messages an actor handles per turn before it yields its thread to other actors.
    ///
    /// Higher values favour throughput of busy actors, lower ones fairness. Default 32;
    /// Akka's default dispatcher uses 5, but its turns are cheaper to resume than a tokio
    /// task is to reschedule. A turn run by a remote transport's reading task may handle
    /// more batches (see [`crate::remote_support::run_ready_after`]).
    pub throughput: NonZeroUsize,
    /// Dead letters logged per window before further ones are only counted. Default 10, as
    /// Akka's `log-dead-letters`.
    pub dead_letter_log_limit: u32,
    /// Length of the dead-letter log window. Default 5 minutes, as Akka's
    /// `log-dead-letters-suspend-duration`.
    pub dead_letter_log_window: Duration,
    /// Phases of coordinated shutdown, in the order they run. Default:
    /// [`PhaseConfig::defaults`].
    pub shutdown_phases: Vec<PhaseConfig>,
}

impl Default for ActorSystemConfig {
    fn default() -> Self {
        Self {
            throughput: NonZeroUsize::new(32).unwrap_or(NonZeroUsize::MIN),
            dead_letter_log_limit: 10,
            dead_letter_log_window: Duration::from_secs(300),
            shutdown_phases: PhaseConfig::defaults(),
        }
    }
}

/// Failure to create an actor system.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The system name is not valid.
    #[error(transparent)]
    InvalidName(#[from] AddressError),
    /// No tokio runtime is running on this thread.
    #[error(
        "no tokio runtime is running: create the actor system inside a tokio runtime, or \
         pass a runtime handle to ActorSystem::with_runtime"
    )]
    NoRuntime,
    /// The shutdown phase list is not valid.
    #[error("invalid shutdown phases: {0}")]
    InvalidPhases(String),
}

/// A running actor system: the `/user` and `/system` guardians, dead letters, the event
/// stream, the receptionist and coordinated shutdown.
///
/// Cheap to clone; clones refer to the same system.
#[derive(Clone)]
pub struct ActorSystem {
    pub(crate) shared: Arc<SystemShared>,
}

pub(crate) struct SystemShared {
    name: String,
    pub(crate) config: ActorSystemConfig,
    pub(crate) runtime: Handle,
    pub(crate) start_queue: Arc<StartQueue>,
    guardians: Mutex<Option<Guardians>>,
    dead_letters: DeadLetters,
    event_stream: EventStream,
    receptionist: OnceLock<Receptionist>,
    shutdown: CoordinatedShutdown,
    terminated: watch::Sender<bool>,
}

#[derive(Clone)]
struct Guardians {
    user: AnyActorRef,
    system: AnyActorRef,
}

impl SystemShared {
    pub(crate) fn record_dead_letter<M>(&self, recipient: &str, reason: DeadLetterReason) {
        let letter = DeadLetter {
            recipient: recipient.to_owned(),
            message_type: std::any::type_name::<M>(),
            reason,
        };
        self.dead_letters.record(&letter);
        if self.event_stream.has_subscribers::<DeadLetter>() {
            self.event_stream.publish(letter);
        }
    }

    fn guardians(&self) -> Option<Guardians> {
        self.guardians
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The actor behind `/user` and `/system`: it only parents top-level actors.
struct Guardian;

impl Actor for Guardian {
    type Msg = std::convert::Infallible;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Self::Msg) -> ActorResult {
        match msg {}
    }
}

impl ActorSystem {
    /// Creates an actor system with the default configuration on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`SystemError::InvalidName`] when `name` is empty or has characters other than ASCII
    /// letters, digits, `-` and `_`; [`SystemError::NoRuntime`] outside a tokio runtime.
    pub fn new(name: &str) -> Result<Self, SystemError> {
        Self::with_config(name, ActorSystemConfig::default())
    }

    /// Creates an actor system with `config` on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`ActorSystem::new`], plus [`SystemError::InvalidPhases`] when the shutdown phases
    /// are empty, repeat a name, or lack the final `actor-system-terminate` phase.
    pub fn with_config(name: &str, config: ActorSystemConfig) -> Result<Self, SystemError> {
        let runtime = Handle::try_current().map_err(|_| SystemError::NoRuntime)?;
        Self::with_runtime(name, config, runtime)
    }

    /// Creates an actor system whose actors run on `runtime`.
    ///
    /// # Errors
    ///
    /// As [`ActorSystem::with_config`], without [`SystemError::NoRuntime`].
    pub fn with_runtime(
        name: &str,
        config: ActorSystemConfig,
        runtime: Handle,
    ) -> Result<Self, SystemError> {
        validate_system_name(name)?;
        let shutdown = CoordinatedShutdown::new(&config.shutdown_phases)
            .map_err(SystemError::InvalidPhases)?;
        let shared = Arc::new(SystemShared {
            name: name.to_owned(),
            dead_letters: DeadLetters::new(
                config.dead_letter_log_limit,
                config.dead_letter_log_window,
            ),
            config,
            runtime,
            start_queue: Arc::default(),
            guardians: Mutex::new(None),
            event_stream: EventStream::default(),
            receptionist: OnceLock::new(),
            shutdown,
            terminated: watch::channel(false).0,
        });
        let guardian = |name: &str| {
            spawn_actor(&shared, None, Some(name), Props::new(|| Guardian))
                .map(|guardian| guardian.to_any())
                .map_err(|error| SystemError::InvalidPhases(error.to_string()))
        };
        let guardians = Guardians {
            user: guardian("user")?,
            system: guardian("system")?,
        };
        *shared
            .guardians
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(guardians);
        debug!(system = %name, "actor system started");
        Ok(Self { shared })
    }

    /// Returns the system's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Returns the system's configuration.
    pub fn config(&self) -> &ActorSystemConfig {
        &self.shared.config
    }

    /// Starts a top-level actor at `/user/<name>`.
    ///
    /// # Errors
    ///
    /// [`SpawnError::NameTaken`] when a top-level actor with that name exists;
    /// [`SpawnError::InvalidName`] for an invalid name; [`SpawnError::ParentStopped`] once
    /// the system is terminating.
    pub fn spawn<A: Actor>(
        &self,
        name: &str,
        props: Props<A>,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let user = self.user_guardian()?;
        spawn_actor(&self.shared, Some(&user), Some(name), props)
    }

    /// Starts a top-level actor with a generated name.
    ///
    /// # Errors
    ///
    /// [`SpawnError::ParentStopped`] once the system is terminating.
    pub fn spawn_anonymous<A: Actor>(
        &self,
        props: Props<A>,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let user = self.user_guardian()?;
        spawn_actor(&self.shared, Some(&user), None, props)
    }

    /// Starts an actor under `/system`, for runtime services (remoting, cluster) that must
    /// outlive user actors: they stop after every user actor has stopped.
    ///
    /// # Errors
    ///
    /// As [`ActorSystem::spawn`].
    pub fn spawn_system_actor<A: Actor>(
        &self,
        name: &str,
        props: Props<A>,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let guardians = self
            .shared
            .guardians()
            .ok_or_else(|| SpawnError::ParentStopped {
                parent: "/system".to_owned(),
            })?;
        spawn_actor(&self.shared, Some(&guardians.system), Some(name), props)
    }

    fn user_guardian(&self) -> Result<AnyActorRef, SpawnError> {
        self.shared
            .guardians()
            .map(|guardians| guardians.user)
            .ok_or_else(|| SpawnError::ParentStopped {
                parent: "/user".to_owned(),
            })
    }

    /// Stops a top-level actor; returns false when `actor` is not one.
    pub fn stop(&self, actor: &AnyActorRef) -> bool {
        let Ok(user) = self.user_guardian() else {
            return false;
        };
        if actor.target.parent_id() != Some(user.id()) {
            return false;
        }
        actor.stop();
        true
    }

    /// Returns the event stream.
    pub fn event_stream(&self) -> &EventStream {
        &self.shared.event_stream
    }

    /// Returns how many messages became dead letters since the system started.
    pub fn dead_letter_count(&self) -> u64 {
        self.shared.dead_letters.count()
    }

    /// Returns the paths and mailbox depths of at most `limit` actors with the most queued
    /// messages, deepest first.
    ///
    /// The depth counts queued user and timer messages. It leaves out system messages and
    /// the up to [`ActorSystemConfig::throughput`] messages that a running turn has already
    /// taken out of the queue. Actors with an empty mailbox are not listed. Each mailbox is
    /// read at a slightly different instant, so the list is a sample for monitoring, not a
    /// consistent snapshot. The call walks the whole actor tree, so it suits a metrics
    /// scrape, not a per-message path.
    pub fn busiest_mailboxes(&self, limit: usize) -> Vec<(String, usize)> {
        let Some(guardians) = self.shared.guardians() else {
            return Vec::new();
        };
        let mut pending = vec![guardians.user, guardians.system];
        let mut depths = Vec::new();
        while let Some(actor) = pending.pop() {
            let depth = actor.target.mailbox_depth();
            if depth > 0 {
                depths.push((depth, actor.clone()));
            }
            pending.extend(actor.target.child_refs());
        }
        depths.sort_by_key(|(depth, _)| std::cmp::Reverse(*depth));
        depths.truncate(limit);
        depths
            .into_iter()
            .map(|(depth, actor)| (actor.target.path(), depth))
            .collect()
    }

    /// Returns the receptionist, the registry of actors by [`ServiceKey`](crate::ServiceKey).
    pub fn receptionist(&self) -> &Receptionist {
        self.shared.receptionist.get_or_init(Receptionist::new)
    }

    /// Returns the coordinated shutdown of this system.
    pub fn coordinated_shutdown(&self) -> &CoordinatedShutdown {
        &self.shared.shutdown
    }

    /// Runs coordinated shutdown with reason [`ShutdownReason::ActorSystemTerminate`] and
    /// waits until every actor has stopped.
    ///
    /// Calling it again, or after another shutdown reason started the shutdown, waits for
    /// the same shutdown.
    pub async fn terminate(&self) {
        self.shared
            .shutdown
            .run(self, ShutdownReason::ActorSystemTerminate)
            .await;
    }

    /// Waits until the system has terminated.
    pub async fn when_terminated(&self) {
        let mut terminated = self.shared.terminated.subscribe();
        let _ = terminated.wait_for(|done| *done).await;
    }

    /// Returns true once every actor of the system has stopped.
    pub fn is_terminated(&self) -> bool {
        *self.shared.terminated.borrow()
    }

    /// Stops all actors, user actors before system actors, children before their parents.
    ///
    /// This is the last phase of coordinated shutdown.
    pub(crate) async fn stop_all_actors(&self) {
        self.shared
            .dead_letters
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(guardians) = self.shared.guardians() {
            guardians.user.stop();
            guardians.user.terminated().await;
            guardians.system.stop();
            guardians.system.terminated().await;
        }
        // Dropping the guardians breaks the reference cycle between them and the system.
        self.shared
            .guardians
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        self.shared.terminated.send_replace(true);
        info!(system = %self.shared.name, "actor system terminated");
    }
}

impl std::fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSystem")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    /// Waits for a permit before handling each message, so messages queue up until the test
    /// adds permits.
    struct Gated(Arc<Semaphore>);

    impl Actor for Gated {
        type Msg = u32;

        async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u32) -> ActorResult {
            if let Ok(permit) = self.0.acquire().await {
                permit.forget();
            }
            Ok(())
        }
    }

    /// Creates a system whose turns take one message, so every message but the one being
    /// handled stays in the queue.
    fn one_per_turn(name: &str) -> ActorSystem {
        let config = ActorSystemConfig {
            throughput: NonZeroUsize::MIN,
            ..ActorSystemConfig::default()
        };
        ActorSystem::with_config(name, config).unwrap()
    }

    async fn wait_for_depths(system: &ActorSystem, expected: &[(&str, usize)]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let depths = system.busiest_mailboxes(2);
            let matches = depths.len() == expected.len()
                && depths
                    .iter()
                    .zip(expected)
                    .all(|((path, depth), (want_path, want_depth))| {
                        path == want_path && depth == want_depth
                    });
            if matches {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mailbox depths {depths:?} did not become {expected:?} within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn busiest_mailboxes_lists_deepest_first() {
        let system = one_per_turn("mailboxes");
        let gate = Arc::new(Semaphore::new(0));
        let small = system
            .spawn(
                "small",
                Props::new({
                    let gate = gate.clone();
                    move || Gated(gate.clone())
                }),
            )
            .unwrap();
        let large = system
            .spawn(
                "large",
                Props::new({
                    let gate = gate.clone();
                    move || Gated(gate.clone())
                }),
            )
            .unwrap();
        let _idle = system
            .spawn(
                "idle",
                Props::new({
                    let gate = gate.clone();
                    move || Gated(gate.clone())
                }),
            )
            .unwrap();
        // Each actor takes its first message into its turn and waits there, so the rest
        // stays queued.
        for n in 0..4 {
            small.tell(n);
        }
        for n in 0..9 {
            large.tell(n);
        }
        wait_for_depths(&system, &[("/user/large", 8), ("/user/small", 3)]).await;
        assert_eq!(system.busiest_mailboxes(1).len(), 1);

        gate.add_permits(20);
        wait_for_depths(&system, &[]).await;
        system.terminate().await;
    }

    #[tokio::test]
    async fn stopped_actor_is_not_listed() {
        let system = one_per_turn("mailboxes-stop");
        let gate = Arc::new(Semaphore::new(0));
        let actor = system
            .spawn(
                "gated",
                Props::new({
                    let gate = gate.clone();
                    move || Gated(gate.clone())
                }),
            )
            .unwrap();
        actor.tell(1);
        actor.tell(2);
        wait_for_depths(&system, &[("/user/gated", 1)]).await;
        assert!(system.stop(&actor.to_any()));
        gate.add_permits(1);
        wait_for_depths(&system, &[]).await;
        system.terminate().await;
    }
}
