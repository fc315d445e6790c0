//! The singleton manager's shell: a task that feeds the [`ManagerCore`] from the cluster,
//! the transport and the singleton actor, and performs its outputs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;
use akkord_actor::{Actor, ActorRef, ActorSystem, Props};
use akkord_cluster::shell::Cluster;
use akkord_remote::remote::ProtocolHandler;
use akkord_remote::{Destination, Lane, RemoteSystem};
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use super::handover::{HandOverMessage, ManagerCore, Output};
use super::{check_registered, wire, SingletonError, SingletonSettings};

/// Capacity of the queue of inbound hand-over messages; a message that finds it full is
/// dropped, which the protocol tolerates as a lost message.
const INBOUND_QUEUE: usize = 1024;

/// Interval of the manager's clock ticks. Retries and the removal margin are checked at
/// this resolution.
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the singleton on this node while it is the oldest member with the role, and hands
/// it over when it leaves.
///
/// Dropping the handle does not stop the manager; it runs until the actor system
/// terminates or the cluster daemon stops.
#[derive(Debug)]
pub struct ClusterSingletonManager {
    active: Arc<AtomicBool>,
}

impl ClusterSingletonManager {
    /// Starts the manager on this node; the singleton from `props` runs on the oldest Up
    /// member (with the role), and only there.
    ///
    /// # Errors
    ///
    /// [`SingletonError::InvalidSettings`] for invalid settings,
    /// [`SingletonError::NotRegistered`] when `A::Msg` has no manifest in `remote`'s
    /// registry, [`SingletonError::AlreadyStarted`] when a manager for the same name runs
    /// on this node.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start<A: Actor>(
        system: &ActorSystem,
        remote: &RemoteSystem,
        cluster: &Cluster,
        props: Props<A>,
        settings: SingletonSettings,
    ) -> Result<Self, SingletonError> {
        settings.validate()?;
        check_registered::<A::Msg>(remote)?;
        let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
        let handler: ProtocolHandler = Arc::new(move |from: &UniqueAddress, payload: Bytes| {
            if inbound_sender.try_send((from.clone(), payload)).is_err() {
                tracing::debug!(
                    peer = %from,
                    "dropped hand-over message: inbound queue full or manager stopped"
                );
            }
        });
        remote
            .register_protocol(&wire::manifest(&settings.name), handler)
            .map_err(|_| SingletonError::AlreadyStarted {
                name: settings.name.clone(),
            })?;

        let active = Arc::new(AtomicBool::new(false));
        let core = ManagerCore::new(
            cluster.self_node().clone(),
            settings.name.clone(),
            settings.role.clone(),
            settings.removal_margin,
            settings.hand_over_retry_interval,
        );
        let (terminated_sender, terminated) = mpsc::unbounded_channel();
        let shell = Shell {
            core,
            system: system.clone(),
            remote: remote.clone(),
            cluster: cluster.clone(),
            props,
            manifest: wire::manifest(&settings.name),
            name: settings.name,
            singleton: None,
            active: active.clone(),
            terminated_sender,
        };
        tokio::spawn(shell.run(inbound, terminated));
        Ok(Self { active })
    }

    /// Returns true while the singleton runs on this node and is not being handed over.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

/// The manager's task state.
struct Shell<A: Actor> {
    core: ManagerCore,
    system: ActorSystem,
    remote: RemoteSystem,
    cluster: Cluster,
    props: Props<A>,
    name: String,
    /// The extension protocol manifest of this singleton.
    manifest: String,
    /// The running copy and its incarnation.
    singleton: Option<(u64, ActorRef<A::Msg>)>,
    active: Arc<AtomicBool>,
    terminated_sender: mpsc::UnboundedSender<u64>,
}

impl<A: Actor> Shell<A> {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<(UniqueAddress, Bytes)>,
        mut terminated: mpsc::UnboundedReceiver<u64>,
    ) {
        let (snapshot, mut events) = self.cluster.subscribe();
        let outputs = self.core.apply_members(&snapshot.members, Instant::now());
        self.perform(outputs);

        let mut ticks = tokio::time::interval(TICK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let system = self.system.clone();
        let system_terminated = system.when_terminated();
        tokio::pin!(system_terminated);

        loop {
            let outputs = tokio::select! {
                _ = &mut system_terminated => break,
                event = events.recv() => match event {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        let members = self.cluster.state().members;
                        self.core.apply_members(&members, Instant::now())
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some((from, payload)) = inbound.recv() => self.handle_inbound(&from, &payload),
                Some(incarnation) = terminated.recv() => {
                    self.note_terminated(incarnation);
                    self.core.singleton_terminated(incarnation, Instant::now())
                }
                _ = ticks.tick() => self.core.tick(Instant::now()),
            };
            self.perform(outputs);
        }

        self.active.store(false, Ordering::Release);
        if let Some((_, singleton)) = self.singleton.take() {
            self.system.stop(&singleton.to_any());
        }
        tracing::debug!(
            node = %self.cluster.self_node(),
            singleton = %self.name,
            "singleton manager stopped"
        );
    }

    fn handle_inbound(&mut self, from: &UniqueAddress, payload: &[u8]) -> Vec<Output> {
        match wire::decode(payload) {
            Ok(message) => {
                tracing::trace!(
                    peer = %from,
                    ?message,
                    singleton = %self.name,
                    "hand-over message received"
                );
                self.core.handle_message(from, message, Instant::now())
            }
            Err(error) => {
                tracing::warn!(
                    peer = %from,
                    %error,
                    singleton = %self.name,
                    "dropped undecodable hand-over message"
                );
                Vec::new()
            }
        }
    }

    fn perform(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Start { incarnation } => self.start_singleton(incarnation),
                Output::Stop { incarnation } => self.stop_singleton(incarnation),
                Output::Send { to, message } => self.send(to, message),
            }
        }
    }

    fn start_singleton(&mut self, incarnation: u64) {
        let node = self.cluster.self_node().clone();
        let singleton = match self.system.spawn(&self.name, self.props.clone()) {
            Ok(singleton) => singleton,
            Err(error) => {
                tracing::warn!(
                    %node,
                    incarnation,
                    singleton = %self.name,
                    %error,
                    "failed to start the singleton"
                );
                // The core treats this like a copy that stopped by itself.
                let _ = self.terminated_sender.send(incarnation);
                return;
            }
        };
        tracing::info!(%node, incarnation, singleton = %self.name, "singleton started");
        if let Err(error) = self.remote.expose(&self.name, &singleton) {
            tracing::warn!(
                %node,
                singleton = %self.name,
                %error,
                "failed to expose the singleton; proxies cannot reach it"
            );
        }
        let watched = singleton.to_any();
        let sender = self.terminated_sender.clone();
        tokio::spawn(async move {
            watched.terminated().await;
            let _ = sender.send(incarnation);
        });
        self.singleton = Some((incarnation, singleton));
        self.active.store(true, Ordering::Release);
    }

    fn stop_singleton(&mut self, incarnation: u64) {
        self.active.store(false, Ordering::Release);
        match &self.singleton {
            Some((running, singleton)) if *running == incarnation => {
                self.system.stop(&singleton.to_any());
            }
            _ => {
                tracing::debug!(
                    incarnation,
                    singleton = %self.name,
                    "no running singleton copy to stop"
                )
            }
        }
    }

    fn note_terminated(&mut self, incarnation: u64) {
        if self
            .singleton
            .as_ref()
            .is_some_and(|(running, _)| *running == incarnation)
        {
            self.singleton = None;
            self.active.store(false, Ordering::Release);
            tracing::info!(
                node = %self.cluster.self_node(),
                incarnation,
                singleton = %self.name,
                "singleton stopped"
            );
        }
    }

    fn send(&self, to: UniqueAddress, message: HandOverMessage) {
        let payload = wire::encode(message);
        let destination = Destination::Node(to.clone());
        match self
            .remote
            .send_protocol(&destination, Lane::Control, &self.manifest, payload)
        {
            Ok(()) => {
                tracing::trace!(
                    peer = %to,
                    ?message,
                    singleton = %self.name,
                    "hand-over message sent"
                )
            }
            // The core resends requests, and a request whose response was lost comes again.
            Err(error) => {
                tracing::debug!(peer = %to, ?message, %error, "hand-over message not sent")
            }
        }
    }
}
