//! The singleton proxy: an [`ActorRef`] that forwards to the singleton wherever it runs,
//! and buffers while it moves.
//!
//! The proxy task follows the cluster to find the node that hosts the singleton: the
//! oldest Up member with the role, or the oldest Leaving one when no member with the role
//! is Up. It looks the singleton up there with [`RemoteSystem::lookup`] every
//! [`IDENTIFY_INTERVAL`] until found, watches it, and looks again when the host changes or
//! the singleton terminates. While it has no target, and while the host is unreachable, it
//! buffers messages; they go out in order once the singleton is found.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;
use akkord_actor::{ActorRef, ActorSystem, DeadLetterReason};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::shell::{Cluster, ClusterState};
use akkord_remote::RemoteSystem;
use tokio::sync::{broadcast, mpsc, watch};

use super::{check_registered, SingletonError, SingletonSettings};

/// Interval between attempts to look up the singleton while the proxy has no target.
const IDENTIFY_INTERVAL: Duration = Duration::from_millis(250);

/// Time one lookup waits for the response.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Minimum time between two warnings about dropped buffered messages.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Starts proxies to a cluster singleton.
#[derive(Debug)]
pub struct ClusterSingletonProxy;

impl ClusterSingletonProxy {
    /// Starts a proxy on this node to the singleton `settings.name`, which accepts messages
    /// of type `M`. The node needs no role, because `settings.role` names the members the singleton runs on.
    ///
    /// # Errors
    ///
    /// [`SingletonError::InvalidSettings`] for invalid settings,
    /// [`SingletonError::NotRegistered`] when `M` has no manifest in `remote`'s registry.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start<M: Send + 'static>(
        system: &ActorSystem,
        remote: &RemoteSystem,
        cluster: &Cluster,
        settings: SingletonSettings,
    ) -> Result<SingletonProxy<M>, SingletonError> {
        settings.validate()?;
        check_registered::<M>(remote)?;
        let (inbox_sender, inbox) = mpsc::unbounded_channel();
        let actor_ref = ActorRef::from_fn(
            system,
            &format!("singleton-proxy-{}", settings.name),
            move |message: M| {
                // The send fails only after the proxy task ended, once the actor system
                // terminated or the cluster daemon stopped, so the message is dropped.
                let _ = inbox_sender.send(message);
            },
        );
        let (location_sender, location) = watch::channel(None);
        let task = ProxyTask {
            remote: remote.clone(),
            cluster: cluster.clone(),
            system: system.clone(),
            settings: settings.clone(),
            buffer: Buffer::new(settings.buffer_size),
            host: None,
            target: None,
            generation: 0,
            lookup_in_flight: false,
            location: location_sender,
            last_drop_warning: None,
        };
        tokio::spawn(task.run(inbox));
        Ok(SingletonProxy {
            actor_ref,
            location,
        })
    }
}

/// A running proxy to a cluster singleton.
pub struct SingletonProxy<M> {
    actor_ref: ActorRef<M>,
    location: watch::Receiver<Option<UniqueAddress>>,
}

impl<M: Send + 'static> SingletonProxy<M> {
    /// Returns the ref that forwards to the singleton wherever it runs, keeping the order
    /// of the messages sent through it.
    pub fn actor_ref(&self) -> ActorRef<M> {
        self.actor_ref.clone()
    }

    /// Returns the node the proxy currently sends to, `None` while it buffers.
    pub fn location(&self) -> watch::Receiver<Option<UniqueAddress>> {
        self.location.clone()
    }
}

impl<M: Send + 'static> std::fmt::Debug for SingletonProxy<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingletonProxy")
            .field("actor_ref", &self.actor_ref)
            .field("location", &*self.location.borrow())
            .finish()
    }
}

/// A bounded queue of messages that drops its oldest message when full.
#[derive(Debug)]
pub(crate) struct Buffer<M> {
    messages: VecDeque<M>,
    capacity: usize,
    dropped: u64,
}

impl<M> Buffer<M> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            messages: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Appends `message`; returns the message dropped to make room, which is `message`
    /// itself when the capacity is zero.
    pub(crate) fn push(&mut self, message: M) -> Option<M> {
        if self.capacity == 0 {
            self.dropped += 1;
            return Some(message);
        }
        let evicted = if self.messages.len() >= self.capacity {
            self.dropped += 1;
            self.messages.pop_front()
        } else {
            None
        };
        self.messages.push_back(message);
        evicted
    }

    /// Removes and returns every buffered message, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = M> + '_ {
        self.messages.drain(..)
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Returns the number of messages dropped since the buffer was created.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Returns the node that hosts or will host the singleton in `state`: the oldest Up member
/// with `role`, or the oldest Leaving or Exiting one when none is Up.
pub(crate) fn singleton_host(members: &[Member], role: Option<&str>) -> Option<UniqueAddress> {
    let with_role = || {
        members
            .iter()
            .filter(move |member| role.is_none_or(|role| member.has_role(role)))
    };
    let oldest = |statuses: &[MemberStatus]| {
        with_role()
            .filter(|member| statuses.contains(&member.status))
            .min_by(|a, b| a.age_order(b))
            .map(|member| member.unique_address.clone())
    };
    oldest(&[MemberStatus::Up]).or_else(|| oldest(&[MemberStatus::Leaving, MemberStatus::Exiting]))
}

/// Messages from the proxy's helper tasks to the proxy task.
enum Update<M> {
    /// A lookup of generation `generation` finished.
    Found(u64, Option<ActorRef<M>>),
    /// The target of generation `generation` terminated.
    Terminated(u64),
}

/// The proxy's task state.
struct ProxyTask<M> {
    remote: RemoteSystem,
    cluster: Cluster,
    system: ActorSystem,
    settings: SingletonSettings,
    buffer: Buffer<M>,
    /// The node that hosts the singleton in the current view, when it is reachable.
    host: Option<UniqueAddress>,
    /// The singleton at `host`, once found.
    target: Option<ActorRef<M>>,
    /// Changes with every host change, so late lookup results and terminations of
    /// earlier targets are ignored.
    generation: u64,
    lookup_in_flight: bool,
    location: watch::Sender<Option<UniqueAddress>>,
    last_drop_warning: Option<Instant>,
}

impl<M: Send + 'static> ProxyTask<M> {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<M>) {
        let (snapshot, mut events) = self.cluster.subscribe();
        let (updates_sender, mut updates) = mpsc::unbounded_channel();
        self.apply_state(&snapshot);
        let mut identify = tokio::time::interval(IDENTIFY_INTERVAL);
        identify.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let system = self.system.clone();
        let system_terminated = system.when_terminated();
        tokio::pin!(system_terminated);
        loop {
            tokio::select! {
                _ = &mut system_terminated => break,
                Some(message) = inbox.recv() => self.forward(message),
                event = events.recv() => match event {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        let state = self.cluster.state();
                        self.apply_state(&state);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(update) = updates.recv() => self.apply_update(update, &updates_sender),
                _ = identify.tick() => self.identify(&updates_sender),
            }
        }
        if self.buffer.len() > 0 {
            tracing::debug!(
                dropped = self.buffer.len(),
                singleton = %self.settings.name,
                "singleton proxy stopped with buffered messages"
            );
        }
    }

    fn forward(&mut self, message: M) {
        if let Some(target) = &self.target {
            tracing::trace!(singleton = %self.settings.name, "forwarded message to the singleton");
            target.tell(message);
            return;
        }
        if self.buffer.push(message).is_some() {
            akkord_actor::remote_support::record_dead_letter::<M>(
                &self.system,
                &format!("singleton proxy of {}", self.settings.name),
                DeadLetterReason::MailboxFull,
            );
            let now = Instant::now();
            let due = self
                .last_drop_warning
                .is_none_or(|last| now.duration_since(last) >= DROP_WARN_INTERVAL);
            if due {
                self.last_drop_warning = Some(now);
                tracing::warn!(
                    singleton = %self.settings.name,
                    buffer_size = self.settings.buffer_size,
                    dropped_total = self.buffer.dropped(),
                    "singleton proxy buffer full: dropped the oldest message as a dead letter"
                );
            }
        }
    }

    /// Recomputes the host from `state`; on a change, drops the target and looks again.
    fn apply_state(&mut self, state: &ClusterState) {
        let host = singleton_host(&state.members, self.settings.role.as_deref())
            .filter(|host| !state.unreachable.contains(host));
        if host == self.host {
            return;
        }
        tracing::debug!(host = ?host, singleton = %self.settings.name, "singleton host changed");
        self.host = host;
        self.drop_target();
    }

    fn drop_target(&mut self) {
        self.generation += 1;
        self.target = None;
        self.lookup_in_flight = false;
        self.location.send_replace(None);
    }

    fn identify(&mut self, updates: &mpsc::UnboundedSender<Update<M>>) {
        if self.target.is_some() || self.lookup_in_flight {
            return;
        }
        let Some(host) = self.host.clone() else {
            return;
        };
        self.lookup_in_flight = true;
        let generation = self.generation;
        let remote = self.remote.clone();
        let name = self.settings.name.clone();
        let updates = updates.clone();
        tokio::spawn(async move {
            let found = remote
                .lookup::<M>(&host.address, &name, LOOKUP_TIMEOUT)
                .await;
            if let Err(error) = &found {
                tracing::debug!(%host, %error, singleton = %name, "singleton not found yet");
            }
            let _ = updates.send(Update::Found(generation, found.ok()));
        });
    }

    fn apply_update(&mut self, update: Update<M>, updates: &mpsc::UnboundedSender<Update<M>>) {
        match update {
            Update::Found(generation, _) | Update::Terminated(generation)
                if generation != self.generation => {}
            Update::Found(_, None) => self.lookup_in_flight = false,
            Update::Found(generation, Some(target)) => {
                self.lookup_in_flight = false;
                let watched = target.to_any();
                let updates = updates.clone();
                tokio::spawn(async move {
                    watched.terminated().await;
                    let _ = updates.send(Update::Terminated(generation));
                });
                let buffered = self.buffer.len();
                for message in self.buffer.drain() {
                    target.tell(message);
                }
                tracing::info!(
                    host = ?self.host,
                    buffered,
                    singleton = %self.settings.name,
                    "singleton proxy found the singleton"
                );
                self.target = Some(target);
                self.location.send_replace(self.host.clone());
            }
            Update::Terminated(_) => {
                tracing::debug!(
                    singleton = %self.settings.name,
                    "singleton terminated; looking it up again"
                );
                self.drop_target();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use akkord_actor::address::Address;

    use super::*;

    #[test]
    fn buffer_drops_oldest_beyond_capacity() {
        let mut buffer = Buffer::new(3);
        for message in 0..3 {
            assert_eq!(buffer.push(message), None);
        }
        assert_eq!(buffer.push(3), Some(0));
        assert_eq!(buffer.push(4), Some(1));
        assert_eq!(buffer.dropped(), 2);
        assert_eq!(buffer.drain().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn zero_capacity_buffer_drops_everything() {
        let mut buffer = Buffer::new(0);
        assert_eq!(buffer.push("a"), Some("a"));
        assert_eq!(buffer.len(), 0);
        assert_eq!(buffer.dropped(), 1);
    }

    fn member(port: u16, status: MemberStatus, up_number: u32, roles: &[&str]) -> Member {
        let node = UniqueAddress::new(Address::new("s", "127.0.0.1", port).unwrap(), port as u64);
        let roles = roles
            .iter()
            .map(|role| role.to_string())
            .collect::<BTreeSet<_>>();
        Member {
            status,
            up_number,
            ..Member::joining(node, roles, "1".to_owned())
        }
    }

    #[test]
    fn host_is_oldest_up_member_with_role() {
        let members = vec![
            member(1, MemberStatus::Up, 1, &[]),
            member(2, MemberStatus::Up, 2, &["worker"]),
            member(3, MemberStatus::Up, 3, &["worker"]),
            member(4, MemberStatus::Joining, u32::MAX, &["worker"]),
        ];
        assert_eq!(singleton_host(&members, None).map(|n| n.uid), Some(1));
        assert_eq!(
            singleton_host(&members, Some("worker")).map(|n| n.uid),
            Some(2)
        );
        assert_eq!(singleton_host(&members, Some("none")), None);
    }

    #[test]
    fn host_skips_leaving_member_while_another_is_up() {
        let members = vec![
            member(1, MemberStatus::Leaving, 1, &[]),
            member(2, MemberStatus::Up, 2, &[]),
        ];
        assert_eq!(singleton_host(&members, None).map(|n| n.uid), Some(2));
        let alone = vec![member(1, MemberStatus::Exiting, 1, &[])];
        assert_eq!(singleton_host(&alone, None).map(|n| n.uid), Some(1));
    }
}
