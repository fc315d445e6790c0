//! Coordinated shutdown: ordered phases of shutdown tasks, each phase with a timeout.
//!
//! Shutdown runs the phases in order. The tasks of one phase run concurrently; the next
//! phase starts when all of them have finished or the phase's timeout has passed, in which
//! case the tasks still running are cancelled and named in a `warn` line. The last phase,
//! [`ACTOR_SYSTEM_TERMINATE`], stops every actor. A phase configured with `recover: false`
//! whose tasks fail or time out skips the remaining phases up to that last one.
//!
//! Shutdown runs once: later calls of [`CoordinatedShutdown::run`] wait for the first run
//! and return its reason. The default phases and their order are Akka's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::system::ActorSystem;

/// Name of the last phase, which stops all actors. It must be the last configured phase.
pub const ACTOR_SYSTEM_TERMINATE: &str = "actor-system-terminate";

/// Default phase timeout, as Akka's `default-phase-timeout`.
pub const DEFAULT_PHASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the system shuts down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownReason {
    /// [`ActorSystem::terminate`] was called.
    ActorSystemTerminate,
    /// This node left the cluster.
    ClusterLeaving,
    /// This node was downed by the cluster.
    ClusterDowning,
    /// The process received a termination signal.
    JvmStyleSignal,
    /// Anything else, named by the caller.
    Custom(String),
}

/// One phase of coordinated shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseConfig {
    /// Name tasks are added under.
    pub name: String,
    /// How long the phase's tasks may run before they are cancelled.
    pub timeout: Duration,
    /// Whether later phases run after a task of this phase failed or timed out.
    pub recover: bool,
}

impl PhaseConfig {
    /// Creates a phase with the default timeout that recovers from failures.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            timeout: DEFAULT_PHASE_TIMEOUT,
            recover: true,
        }
    }

    /// Sets the phase timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets whether later phases run after a failure in this one.
    pub fn with_recover(mut self, recover: bool) -> Self {
        self.recover = recover;
        self
    }

    /// Akka's phases, in order; cluster phases are no-ops until a cluster adds tasks.
    pub fn defaults() -> Vec<PhaseConfig> {
        [
            "before-service-unbind",
            "service-unbind",
            "service-requests-done",
            "service-stop",
            "before-cluster-shutdown",
            "cluster-sharding-shutdown-region",
            "cluster-leave",
            "cluster-exiting",
            "cluster-exiting-done",
            "cluster-shutdown",
            "before-actor-system-terminate",
            ACTOR_SYSTEM_TERMINATE,
        ]
        .into_iter()
        .map(PhaseConfig::new)
        .map(|phase| match phase.name.as_str() {
            "cluster-exiting" | ACTOR_SYSTEM_TERMINATE => {
                phase.with_timeout(Duration::from_secs(10))
            }
            _ => phase,
        })
        .collect()
    }
}

/// Failure to add a shutdown task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownError {
    /// No phase has this name.
    #[error("unknown shutdown phase {phase:?}; known phases: {known}")]
    UnknownPhase {
        /// The phase asked for.
        phase: String,
        /// The configured phase names, comma-separated.
        known: String,
    },
    /// Shutdown has started, so the task would not run.
    #[error("cannot add shutdown task {task:?}: shutdown has already started")]
    AlreadyStarted {
        /// Name of the task.
        task: String,
    },
}

type TaskFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type TaskFactory = Box<dyn FnOnce() -> TaskFuture + Send>;

/// Ordered shutdown of an actor system; see the [module documentation](self).
pub struct CoordinatedShutdown {
    phases: Vec<PhaseConfig>,
    state: Mutex<State>,
    reason: watch::Sender<Option<ShutdownReason>>,
    done: watch::Sender<bool>,
}

struct State {
    started: bool,
    tasks: HashMap<String, Vec<(String, TaskFactory)>>,
}

impl CoordinatedShutdown {
    pub(crate) fn new(phases: &[PhaseConfig]) -> Result<Self, String> {
        let Some(last) = phases.last() else {
            return Err("the phase list is empty".to_owned());
        };
        if last.name != ACTOR_SYSTEM_TERMINATE {
            return Err(format!(
                "the last phase must be {ACTOR_SYSTEM_TERMINATE:?}, found {:?}",
                last.name
            ));
        }
        for (index, phase) in phases.iter().enumerate() {
            if phases[..index].iter().any(|p| p.name == phase.name) {
                return Err(format!("phase {:?} appears twice", phase.name));
            }
        }
        Ok(Self {
            phases: phases.to_vec(),
            state: Mutex::new(State {
                started: false,
                tasks: HashMap::new(),
            }),
            reason: watch::channel(None).0,
            done: watch::channel(false).0,
        })
    }

    /// Adds a task to run in `phase`; the task returns `Err` with a description on failure.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::UnknownPhase`] when no phase has that name;
    /// [`ShutdownError::AlreadyStarted`] once shutdown has started.
    pub fn add_task<F, Fut>(&self, phase: &str, name: &str, task: F) -> Result<(), ShutdownError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        if !self.phases.iter().any(|p| p.name == phase) {
            return Err(ShutdownError::UnknownPhase {
                phase: phase.to_owned(),
                known: self
                    .phases
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut state = self.lock();
        if state.started {
            return Err(ShutdownError::AlreadyStarted {
                task: name.to_owned(),
            });
        }
        let factory: TaskFactory = Box::new(move || Box::pin(task()));
        state
            .tasks
            .entry(phase.to_owned())
            .or_default()
            .push((name.to_owned(), factory));
        Ok(())
    }

    /// Returns the reason shutdown started with, once it has started.
    pub fn reason(&self) -> Option<ShutdownReason> {
        self.reason.borrow().clone()
    }

    /// Runs shutdown for `reason` and returns when every phase is done, with the reason the
    /// shutdown started with (an earlier call's, when there was one).
    pub async fn run(&self, system: &ActorSystem, reason: ShutdownReason) -> ShutdownReason {
        let tasks = {
            let mut state = self.lock();
            if state.started {
                None
            } else {
                state.started = true;
                self.reason.send_replace(Some(reason.clone()));
                Some(std::mem::take(&mut state.tasks))
            }
        };
        let Some(mut tasks) = tasks else {
            let mut done = self.done.subscribe();
            let _ = done.wait_for(|done| *done).await;
            return self.reason().unwrap_or(reason);
        };
        info!(system = %system.name(), ?reason, "coordinated shutdown started");
        let mut skipping = false;
        for phase in &self.phases {
            if phase.name == ACTOR_SYSTEM_TERMINATE {
                let phase_tasks = tasks.remove(&phase.name).unwrap_or_default();
                run_phase(phase, phase_tasks).await;
                system.stop_all_actors().await;
                break;
            }
            let phase_tasks = tasks.remove(&phase.name).unwrap_or_default();
            if skipping {
                if !phase_tasks.is_empty() {
                    warn!(phase = %phase.name, tasks = phase_tasks.len(), "skipped shutdown phase after an earlier phase failed");
                }
                continue;
            }
            let ok = run_phase(phase, phase_tasks).await;
            if !ok && !phase.recover {
                skipping = true;
            }
        }
        self.done.send_replace(true);
        reason
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs one phase's tasks concurrently; returns false when one failed or timed out.
async fn run_phase(phase: &PhaseConfig, tasks: Vec<(String, TaskFactory)>) -> bool {
    if tasks.is_empty() {
        return true;
    }
    let mut running = JoinSet::new();
    let mut names = HashMap::new();
    for (name, factory) in tasks {
        let handle = running.spawn(factory());
        names.insert(handle.id(), name);
    }
    let mut ok = true;
    let deadline = tokio::time::Instant::now() + phase.timeout;
    loop {
        match tokio::time::timeout_at(deadline, running.join_next_with_id()).await {
            Ok(None) => break,
            Ok(Some(Ok((id, Ok(()))))) => {
                names.remove(&id);
            }
            Ok(Some(Ok((id, Err(error))))) => {
                let task = names.remove(&id).unwrap_or_default();
                warn!(phase = %phase.name, %task, %error, "shutdown task failed");
                ok = false;
            }
            Ok(Some(Err(join_error))) => {
                let task = names.remove(&join_error.id()).unwrap_or_default();
                warn!(phase = %phase.name, %task, error = %join_error, "shutdown task panicked");
                ok = false;
            }
            Err(_) => {
                let mut pending: Vec<_> = names.values().cloned().collect();
                pending.sort();
                warn!(
                    phase = %phase.name, timeout = ?phase.timeout, tasks = ?pending,
                    "shutdown phase timed out; cancelling its remaining tasks"
                );
                running.abort_all();
                ok = false;
                break;
            }
        }
    }
    ok
}
