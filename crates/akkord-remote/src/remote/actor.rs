//! [`RemoteActor`]: the target behind an actor ref to an actor on another node.

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};

use akkord_actor::address::UniqueAddress;
use akkord_actor::remote_support::{
    with_ref_resolver, BoxedMessage, ExternalActor, ExternalRejection, RefRejection, Watcher,
};
use akkord_actor::{ActorError, ActorId, ActorRef, ActorSystem, AnyActorRef, DeadLetterReason};
use tracing::{trace, warn};

use super::core::{ask_reply_path, is_ask_reply_path, RemoteCore, ASK_PATH_MAX};
use crate::transport::{lock, RouteCache, SendError};
use crate::Lane;

/// Serialized messages up to this size leave their buffer for the thread's next send.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    /// Buffer that outbound messages are serialized into, reused from send to send.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An actor on another node incarnation, as seen from this node.
///
/// One exists per (incarnation, actor id) while this node has refs to the actor, so every
/// ref to it shares the local alias id and the watchers.
pub(crate) struct RemoteActor {
    pub(crate) node: UniqueAddress,
    /// The transport's association with `node`, found on the first send. Targets on one
    /// node made one after another share it.
    route: Arc<RouteCache>,
    pub(crate) id: u64,
    path: RemotePath,
    alias: ActorId,
    lane: Lane,
    system: ActorSystem,
    core: Weak<RemoteCore>,
    me: Weak<RemoteActor>,
    state: Mutex<State>,
    /// Flag set while this target's watch message is queued and no unwatch has followed
    /// it. Read and written only under the core's watch order lock.
    pub(crate) watch_held: AtomicBool,
}

/// Path of a remote actor on its node, kept for humans: logs, dead letters, encoded refs.
enum RemotePath {
    /// The path of an ask's reply ref with the actor's id, which is not stored but written
    /// out when needed, because one such target is decoded for every ask served.
    AskReply,
    /// Any other path.
    Other(String),
}

#[derive(Default)]
struct State {
    /// `Some(failure)` once the actor is known to have stopped.
    terminated: Option<Option<ActorError>>,
    watchers: Vec<Watcher>,
    /// Other targets of the same remote actor, decoded on their own and then watched while
    /// this one was in the remote actor table. They are kept and terminated with this one.
    siblings: Vec<Arc<RemoteActor>>,
}

impl RemoteActor {
    /// Creates the target, which sends through `route`. `terminated` marks one whose node is
    /// already known to be gone.
    pub(crate) fn create(
        core: &Arc<RemoteCore>,
        node: UniqueAddress,
        route: Arc<RouteCache>,
        id: u64,
        path: Cow<'_, str>,
        terminated: bool,
    ) -> Arc<Self> {
        let lane = core.lane_for(&path);
        let path = if is_ask_reply_path(&path, id) {
            RemotePath::AskReply
        } else {
            RemotePath::Other(path.into_owned())
        };
        Arc::new_cyclic(|me| RemoteActor {
            route,
            node,
            id,
            path,
            alias: akkord_actor::remote_support::new_actor_id(),
            lane,
            system: core.system.clone(),
            core: Arc::downgrade(core),
            me: me.clone(),
            state: Mutex::new(State {
                terminated: terminated.then_some(None),
                watchers: Vec::new(),
                siblings: Vec::new(),
            }),
            watch_held: AtomicBool::new(false),
        })
    }

    /// Runs `f` with the actor's path on its node, such as `/user/worker`.
    pub(crate) fn with_path<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match &self.path {
            RemotePath::AskReply => f(ask_reply_path(self.id, &mut [0u8; ASK_PATH_MAX])),
            RemotePath::Other(path) => f(path),
        }
    }

    /// Serializes `message` and queues it for the actor's node, or writes it there.
    fn send_serialized(
        &self,
        message: &(dyn Any + Send),
        type_name: &'static str,
    ) -> Result<(), RefRejection> {
        let Some(core) = self.core.upgrade() else {
            return Err(RefRejection::Stopped);
        };
        if self.is_terminated() {
            return Err(RefRejection::Stopped);
        }
        let Some(transport) = core.transport() else {
            return Err(RefRejection::Stopped);
        };
        // Taken out of the thread's slot rather than borrowed, so a nested send while
        // serializing finds an empty buffer instead of a borrowed one.
        let mut payload = SCRATCH.take();
        payload.clear();
        let serialized = with_ref_resolver(&core.resolver, || {
            core.registry
                .serialize_any_into(message, type_name, &mut payload)
        });
        let sent = serialized.map(|manifest| {
            transport
                .send_parts(
                    &self.node,
                    &self.route,
                    self.lane,
                    self.id,
                    manifest,
                    &payload,
                )
                .map(|()| manifest)
        });
        if payload.capacity() <= SCRATCH_KEPT {
            SCRATCH.set(payload);
        }
        let sent = match sent {
            Ok(sent) => sent,
            Err(error) => {
                warn!(recipient = %self.path(), message_type = type_name, %error, "message to remote actor not sent");
                return Err(RefRejection::Dropped {
                    reason: DeadLetterReason::NotSerializable,
                });
            }
        };
        match sent {
            Ok(manifest) => {
                trace!(recipient = %self.path(), manifest, "sent remote message");
                Ok(())
            }
            Err(SendError::QueueFull { .. }) => Err(RefRejection::Dropped {
                reason: DeadLetterReason::OutboundQueueFull,
            }),
            Err(SendError::Quarantined(_) | SendError::IncarnationGone { .. }) => {
                core.node_gone(&self.node, "incarnation quarantined or replaced");
                Err(RefRejection::Stopped)
            }
            Err(SendError::ShutDown) => Err(RefRejection::Stopped),
            Err(error @ (SendError::FrameTooLarge { .. } | SendError::LocalDestination(_))) => {
                warn!(recipient = %self.path(), message_type = type_name, %error, "message to remote actor not sent");
                Err(RefRejection::Dropped {
                    reason: DeadLetterReason::NotSerializable,
                })
            }
        }
    }

    /// Returns a type-erased ref to this actor, as carried in [`akkord_actor::Terminated`].
    pub(crate) fn any_ref(&self) -> Option<AnyActorRef> {
        let me = self.me.upgrade()?;
        Some(ActorRef::<()>::from_external(me).to_any())
    }

    /// Returns true while a local watcher watches this actor.
    pub(crate) fn is_watched(&self) -> bool {
        !lock(&self.state).watchers.is_empty()
    }

    /// Drops the siblings (see [`RemoteActor::add_sibling`]) that lost their watchers and
    /// are used nowhere else; returns true when some remain.
    pub(crate) fn keep_watched_siblings(&self) -> bool {
        let mut state = lock(&self.state);
        state
            .siblings
            .retain(|sibling| Arc::strong_count(sibling) > 1 || sibling.is_watched());
        !state.siblings.is_empty()
    }

    /// Returns true when this target or one of its siblings, other than `except`, has a
    /// watcher.
    pub(crate) fn watched_besides(&self, except: &Arc<RemoteActor>) -> bool {
        let siblings: Vec<Arc<RemoteActor>> = lock(&self.state)
            .siblings
            .iter()
            .filter(|sibling| !Arc::ptr_eq(sibling, except))
            .cloned()
            .collect();
        let this_watched = !std::ptr::eq(self, Arc::as_ptr(except)) && self.is_watched();
        this_watched || siblings.iter().any(|sibling| sibling.is_watched())
    }

    /// Returns the siblings (see [`RemoteActor::add_sibling`]).
    pub(crate) fn siblings(&self) -> Vec<Arc<RemoteActor>> {
        lock(&self.state).siblings.clone()
    }

    /// Links `sibling`, another target of the same remote actor, so that it is terminated
    /// with this one.
    ///
    /// # Errors
    ///
    /// When this one is terminated already, returns its failure, with which the caller
    /// terminates `sibling`.
    pub(crate) fn add_sibling(&self, sibling: &Arc<RemoteActor>) -> Result<(), Option<ActorError>> {
        let mut state = lock(&self.state);
        if let Some(failure) = &state.terminated {
            return Err(failure.clone());
        }
        if !state.siblings.iter().any(|kept| Arc::ptr_eq(kept, sibling)) {
            state.siblings.push(sibling.clone());
        }
        Ok(())
    }

    /// Marks the actor stopped and notifies every watcher once; later calls do nothing.
    /// Siblings are terminated with it.
    pub(crate) fn terminate(&self, failure: Option<ActorError>) {
        let (watchers, siblings) = {
            let mut state = lock(&self.state);
            if state.terminated.is_some() {
                return;
            }
            state.terminated = Some(failure.clone());
            (
                std::mem::take(&mut state.watchers),
                std::mem::take(&mut state.siblings),
            )
        };
        for sibling in siblings {
            sibling.terminate(failure.clone());
        }
        if watchers.is_empty() {
            return;
        }
        let Some(actor) = self.any_ref() else {
            return;
        };
        for watcher in watchers {
            watcher.notify(&actor, failure.clone());
        }
    }
}

impl ExternalActor for RemoteActor {
    fn id(&self) -> ActorId {
        self.alias
    }

    fn path(&self) -> String {
        self.with_path(|path| format!("{}{path}", self.node.address))
    }

    fn system(&self) -> &ActorSystem {
        &self.system
    }

    fn send(
        &self,
        message: BoxedMessage,
        type_name: &'static str,
    ) -> Result<(), ExternalRejection> {
        match self.send_serialized(&*message, type_name) {
            Ok(()) => Ok(()),
            Err(RefRejection::Stopped) => Err(ExternalRejection::Stopped(message)),
            Err(RefRejection::Full { capacity }) => {
                Err(ExternalRejection::Full { message, capacity })
            }
            Err(RefRejection::Dropped { reason }) => Err(ExternalRejection::Dropped { reason }),
        }
    }

    fn send_ref(
        &self,
        message: &(dyn Any + Send),
        type_name: &'static str,
    ) -> Option<Result<(), RefRejection>> {
        Some(self.send_serialized(message, type_name))
    }

    fn add_watcher(&self, watcher: Watcher) -> Result<(), (Watcher, Option<ActorError>)> {
        let first = {
            let mut state = lock(&self.state);
            if let Some(failure) = &state.terminated {
                return Err((watcher, failure.clone()));
            }
            if state.watchers.iter().any(|w| w.id() == watcher.id()) {
                return Ok(());
            }
            state.watchers.push(watcher);
            state.watchers.len() == 1
        };
        if first {
            if let (Some(core), Some(me)) = (self.core.upgrade(), self.me.upgrade()) {
                core.watch_remote(&me);
            }
        }
        Ok(())
    }

    fn unwatch(&self, watcher: ActorId) {
        let last = {
            let mut state = lock(&self.state);
            let before = state.watchers.len();
            state.watchers.retain(|w| w.id() != watcher);
            before > 0 && state.watchers.is_empty() && state.terminated.is_none()
        };
        if last {
            if let (Some(core), Some(me)) = (self.core.upgrade(), self.me.upgrade()) {
                core.unwatch_remote(&me);
            }
        }
    }

    fn is_terminated(&self) -> bool {
        lock(&self.state).terminated.is_some()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
