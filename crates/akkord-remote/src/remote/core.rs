//! Shared state of a [`RemoteSystem`](super::RemoteSystem): exported actors, known remote
//! actors, the actor ref resolver, inbound dispatch and remote death watch.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::fast_hash::FastMap;
use akkord_actor::remote_support::{
    new_actor_id, record_dead_letter, unwatch, watch_with_callback, ActorRefResolver, DeliverFn,
    ExportedRef, ImportedRef, SerializedActorRef, SerializedActorRefView, ASK_REPLY_PATH,
};
use akkord_actor::{ActorError, ActorId, ActorSystem, AnyActorRef, DeadLetterReason};
use prost::Message;
use tokio::sync::oneshot;
use tracing::{debug, info, trace, warn};

use super::actor::RemoteActor;
use super::extension::ProtocolHandlers;
use super::protocol::{
    DeathWatchNotification, LookupReply, LookupRequest, WatchRequest, DEATH_WATCH_NOTIFICATION,
    LOOKUP_REPLY, LOOKUP_REQUEST, PROTOCOL_RECIPIENT, UNWATCH, WATCH,
};
use super::watch::NodeWatch;
use super::RemoteSystemSettings;
use crate::serialization::{Decoded, InboundRecipient, SerializationRegistry};
use crate::transport::{
    each_envelope, lock, Destination, InboundHandler, RouteCache, Transport, TransportEvent,
    UserRun,
};
use crate::wire::{ActorRefData, UniqueAddressData, UserEnvelope};
use crate::{Lane, SendError};

/// Stands in for the type of an inbound message that could not be delivered, in dead
/// letters recorded before the message is decoded.
struct InboundRemoteMessage;

pub(crate) struct RemoteCore {
    pub(crate) system: ActorSystem,
    pub(crate) registry: SerializationRegistry,
    large_message_recipients: HashSet<String>,
    transport: OnceLock<Transport>,
    me: Weak<RemoteCore>,
    /// Weak reference to this core, installed as the actor ref resolver while messages are
    /// encoded and decoded.
    pub(crate) resolver: Weak<dyn ActorRefResolver>,
    exports: Mutex<Exports>,
    /// Remote actors this node has refs to, by (incarnation uid, actor id).
    remotes: Mutex<HashMap<(u64, u64), Arc<RemoteActor>>>,
    gone: Mutex<HashSet<UniqueAddress>>,
    /// The node of the last remote ref decoded or target created, with the route to it.
    /// Consecutive refs to one node, such as the reply refs of its asks, share both.
    last_node: Mutex<Option<(UniqueAddress, Arc<RouteCache>)>>,
    /// Watches of local actors by remote nodes: (watching node, actor id) → watcher id.
    remote_watchers: Mutex<HashMap<(UniqueAddress, u64), ActorId>>,
    pub(crate) node_watch: Mutex<NodeWatch>,
    /// Lock taken while a watch or unwatch of a remote actor is decided and queued, so that
    /// these messages leave in the order of the decisions (see `RemoteCore::watch_remote`).
    watch_order: Mutex<()>,
    pub(crate) lookups: Mutex<HashMap<u64, oneshot::Sender<LookupReply>>>,
    pub(crate) pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// Handlers of extension protocols by manifest.
    pub(crate) protocol_handlers: Mutex<ProtocolHandlers>,
    /// Predicate for the nodes whose failure a layer above, such as a cluster, detects
    /// itself. Remote death watch does not declare those gone when their heartbeats stop.
    pub(crate) detection_owner: Mutex<Option<DetectionOwner>>,
    next_request: AtomicU64,
}

/// Returns true for a node whose failure a layer above detects itself.
pub(crate) type DetectionOwner = Arc<dyn Fn(&UniqueAddress) -> bool + Send + Sync>;

/// Local actors that remote nodes can address, by actor id and by exposed name.
#[derive(Default)]
struct Exports {
    by_id: FastMap<u64, Export>,
    by_name: HashMap<String, u64>,
}

struct Export {
    actor: AnyActorRef,
    message_type: TypeId,
    typed: Arc<dyn Any + Send + Sync>,
    deliver: DeliverFn,
    /// The reply ref of an ask: unexported when the first message reaches it.
    ask_reply: bool,
}

impl RemoteCore {
    pub(crate) fn new(
        system: ActorSystem,
        registry: SerializationRegistry,
        settings: &RemoteSystemSettings,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| RemoteCore {
            system,
            registry,
            large_message_recipients: settings.large_message_recipients.iter().cloned().collect(),
            transport: OnceLock::new(),
            me: me.clone(),
            resolver: me.clone(),
            exports: Mutex::default(),
            remotes: Mutex::default(),
            gone: Mutex::default(),
            last_node: Mutex::default(),
            remote_watchers: Mutex::default(),
            node_watch: Mutex::new(NodeWatch::new(settings.watch.clone())),
            watch_order: Mutex::new(()),
            lookups: Mutex::default(),
            pings: Mutex::default(),
            protocol_handlers: Mutex::default(),
            detection_owner: Mutex::default(),
            next_request: AtomicU64::new(1),
        })
    }

    pub(crate) fn set_transport(&self, transport: Transport) {
        let _ = self.transport.set(transport);
    }

    pub(crate) fn transport(&self) -> Option<&Transport> {
        self.transport.get()
    }

    fn local(&self) -> Option<&UniqueAddress> {
        self.transport().map(|transport| transport.local_address())
    }

    fn arc(&self) -> Option<Arc<RemoteCore>> {
        self.me.upgrade()
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Returns the lane for messages to the actor at `path`.
    pub(crate) fn lane_for(&self, path: &str) -> Lane {
        // Most systems name no large-message recipient, and hashing the path costs more
        // than the rest of the choice.
        if !self.large_message_recipients.is_empty() && self.large_message_recipients.contains(path)
        {
            Lane::Large
        } else {
            Lane::Ordinary
        }
    }

    /// Makes `exported` addressable by remote nodes under its actor id; returns its id.
    ///
    /// The reply ref of an ask is unexported when a message reaches it, or by the sweep once
    /// the ask is over. It is not watched, because it notifies no watcher.
    ///
    /// NOTE: a ref that never stops, one from `ActorRef::from_fn`, stays exported until the
    /// remote system is dropped. A message adapter is unexported when its actor stops.
    pub(crate) fn export_local(&self, exported: ExportedRef) -> u64 {
        let id = exported.actor.id().value();
        let ask_reply = exported.actor.is_ask_reply();
        let actor = (!ask_reply).then(|| exported.actor.clone());
        {
            let mut exports = lock(&self.exports);
            if exports.by_id.contains_key(&id) {
                return id;
            }
            exports.by_id.insert(
                id,
                Export {
                    actor: exported.actor,
                    message_type: exported.message_type,
                    typed: exported.typed,
                    deliver: exported.deliver,
                    ask_reply,
                },
            );
        }
        let Some(actor) = actor else {
            return id;
        };
        // The callback may run at once when the actor has already stopped, so the exports
        // lock must not be held here.
        let me = self.me.clone();
        watch_with_callback(&actor, new_actor_id(), move |_| {
            if let Some(core) = me.upgrade() {
                core.unexport(id);
            }
        });
        id
    }

    /// Exposes `exported` under `name`; returns false when the name is taken.
    pub(crate) fn expose(&self, name: &str, exported: ExportedRef) -> bool {
        if lock(&self.exports).by_name.contains_key(name) {
            return false;
        }
        let id = self.export_local(exported);
        let mut exports = lock(&self.exports);
        if exports.by_name.contains_key(name) {
            return false;
        }
        // An actor that has already stopped was unexported at once and gets no name.
        if exports.by_id.contains_key(&id) {
            exports.by_name.insert(name.to_owned(), id);
        }
        true
    }

    /// Removes the name `name`; returns false when nothing was exposed under it.
    pub(crate) fn unexpose(&self, name: &str) -> bool {
        lock(&self.exports).by_name.remove(name).is_some()
    }

    fn unexport(&self, id: u64) {
        let mut exports = lock(&self.exports);
        exports.by_id.remove(&id);
        exports.by_name.retain(|_, exported| *exported != id);
    }

    /// Returns the ref data and manifest of the actor exposed under `name`.
    pub(crate) fn exposed(
        &self,
        name: &str,
    ) -> Option<(u64, String, String, Arc<dyn Any + Send + Sync>)> {
        let exports = lock(&self.exports);
        let id = *exports.by_name.get(name)?;
        let export = exports.by_id.get(&id)?;
        let manifest = self
            .registry
            .manifest_of(export.message_type)
            .unwrap_or_default();
        Some((
            id,
            export.actor.path(),
            manifest.to_owned(),
            export.typed.clone(),
        ))
    }

    /// Returns the shared target of the actor `id` on `node`, creating it when unknown.
    pub(crate) fn remote_actor(
        &self,
        node: UniqueAddress,
        id: u64,
        path: String,
    ) -> Option<Arc<RemoteActor>> {
        match self.known_remote_actor(node.uid, id, |known| *known == node) {
            Some(actor) => Some(actor),
            None => {
                let route = self.route_to(&node);
                self.new_remote_actor(node, route, id, path.into())
            }
        }
    }

    /// Returns the target of actor `id` on the incarnation `uid`, when one exists and its
    /// node passes `is_node`.
    fn known_remote_actor(
        &self,
        uid: u64,
        id: u64,
        is_node: impl FnOnce(&UniqueAddress) -> bool,
    ) -> Option<Arc<RemoteActor>> {
        lock(&self.remotes)
            .get(&(uid, id))
            .filter(|actor| is_node(&actor.node))
            .cloned()
    }

    /// Creates the target of actor `id` on `node` and keeps it in the table, unless another
    /// thread created it first.
    ///
    /// The reply ref of an ask stays out of the table until something watches it: it
    /// expects one message, so nothing is gained by sharing it, and the table stays small
    /// while many ask replies are pending.
    fn new_remote_actor(
        &self,
        node: UniqueAddress,
        route: Arc<RouteCache>,
        id: u64,
        path: Cow<'_, str>,
    ) -> Option<Arc<RemoteActor>> {
        let core = self.arc()?;
        let gone = self.is_gone(&node)
            || self
                .transport()
                .is_some_and(|transport| transport.is_quarantined(&node));
        let ask_reply = path.starts_with(ASK_REPLY_PATH);
        let actor = RemoteActor::create(&core, node, route, id, path, gone);
        if ask_reply {
            return Some(actor);
        }
        let mut remotes = lock(&self.remotes);
        match remotes.entry((actor.node.uid, id)) {
            Entry::Vacant(entry) => Some(entry.insert(actor).clone()),
            Entry::Occupied(entry) if entry.get().node == actor.node => Some(entry.get().clone()),
            // NOTE: when two nodes have the same random 64-bit uid, which is unlikely, the
            // second node's actor stays out of the table, so it is not terminated when that
            // node is declared gone.
            Entry::Occupied(_) => Some(actor),
        }
    }

    /// Returns true when `node` was declared gone.
    fn is_gone(&self, node: &UniqueAddress) -> bool {
        let gone = lock(&self.gone);
        // Checked first because hashing an address costs more than the rest of the lookup.
        !gone.is_empty() && gone.contains(node)
    }

    /// Starts watching `actor`, which just got its first local watcher.
    ///
    /// Watches and unwatches of remote actors are decided and queued under one lock, from
    /// the watchers each target has at that moment. So when one watcher leaves while
    /// another arrives on another thread, the last message the other node gets is a watch.
    pub(crate) fn watch_remote(&self, actor: &Arc<RemoteActor>) {
        let sent = {
            let order = lock(&self.watch_order);
            if !actor.is_watched() || actor.watch_held.load(Ordering::Relaxed) {
                // The watcher left again, or another call queued the watch already.
                return;
            }
            // An ask's reply ref enters the table here, so that its node's death terminates
            // it. When the ref was decoded more than once, another target of the same actor
            // may be there already, and this one is then terminated with it.
            let in_table = match lock(&self.remotes).entry((actor.node.uid, actor.id)) {
                Entry::Vacant(entry) => {
                    entry.insert(actor.clone());
                    None
                }
                Entry::Occupied(entry)
                    if entry.get().node == actor.node && !Arc::ptr_eq(entry.get(), actor) =>
                {
                    Some(entry.get().clone())
                }
                Entry::Occupied(_) => None,
            };
            if let Some(Err(failure)) = in_table.map(|in_table| in_table.add_sibling(actor)) {
                // Terminated outside the lock, because its watchers are notified at once.
                drop(order);
                actor.terminate(failure);
                return;
            }
            actor.watch_held.store(true, Ordering::Relaxed);
            lock(&self.node_watch).watch(&actor.node);
            self.queue_watch_message(&actor.node, WATCH, actor.id)
        };
        self.on_system_sent(&actor.node, WATCH, sent);
    }

    /// Stops watching `actor`, which just lost its last local watcher.
    ///
    /// The other node keeps one watch per watching node, so while another target of the
    /// same actor (see `watch_remote`) is still watched, the watch stays.
    pub(crate) fn unwatch_remote(&self, actor: &Arc<RemoteActor>) {
        let sent = {
            let _order = lock(&self.watch_order);
            if actor.is_watched() || !actor.watch_held.load(Ordering::Relaxed) {
                // A watcher arrived again, or no watch was queued.
                return;
            }
            actor.watch_held.store(false, Ordering::Relaxed);
            lock(&self.node_watch).unwatch(&actor.node);
            let in_table = lock(&self.remotes)
                .get(&(actor.node.uid, actor.id))
                .filter(|in_table| in_table.node == actor.node)
                .cloned();
            if in_table.is_some_and(|in_table| in_table.watched_besides(actor)) {
                return;
            }
            self.queue_watch_message(&actor.node, UNWATCH, actor.id)
        };
        self.on_system_sent(&actor.node, UNWATCH, sent);
    }

    fn queue_watch_message(
        &self,
        node: &UniqueAddress,
        manifest: &str,
        watchee: u64,
    ) -> Result<(), SendError> {
        let payload = WatchRequest { watchee }.encode_to_vec();
        self.queue_system(node, manifest, payload)
    }

    /// Queues a system message for `node`. With a transport that is not started yet or has
    /// shut down, the message counts as sent.
    fn queue_system(
        &self,
        node: &UniqueAddress,
        manifest: &str,
        payload: Vec<u8>,
    ) -> Result<(), SendError> {
        let Some(transport) = self.transport() else {
            return Ok(());
        };
        let envelope = UserEnvelope::without_sender(PROTOCOL_RECIPIENT, manifest, payload);
        transport.send_system(node, envelope)
    }

    /// Declares `node` gone when a system message to it could not be queued.
    fn on_system_sent(&self, node: &UniqueAddress, manifest: &str, sent: Result<(), SendError>) {
        if let Err(error) = sent {
            debug!(peer = %node, manifest, %error, "death watch message not sent");
            self.node_gone(node, &error.to_string());
        }
    }

    fn send_system(&self, node: &UniqueAddress, manifest: &str, payload: Vec<u8>) {
        let sent = self.queue_system(node, manifest, payload);
        self.on_system_sent(node, manifest, sent);
    }

    /// Treats incarnation `node` as gone: its actors count as terminated for their local
    /// watchers, its watches of local actors end, and refs to it go to dead letters.
    pub(crate) fn node_gone(&self, node: &UniqueAddress, reason: &str) {
        if !lock(&self.gone).insert(node.clone()) {
            return;
        }
        info!(peer = %node, reason, "remote node incarnation gone; its actors count as terminated");
        lock(&self.node_watch).remove(node);
        let actors: Vec<Arc<RemoteActor>> = {
            let mut remotes = lock(&self.remotes);
            let actors = remotes
                .values()
                .filter(|actor| actor.node == *node)
                .cloned()
                .collect();
            remotes.retain(|_, actor| actor.node != *node);
            actors
        };
        let failure = ActorError::msg(format!("node {node} is gone: {reason}"));
        for actor in actors {
            actor.terminate(Some(failure.clone()));
        }
        let watches: Vec<(u64, ActorId)> = {
            let mut watchers = lock(&self.remote_watchers);
            let ended = watchers
                .iter()
                .filter(|((watcher_node, _), _)| watcher_node == node)
                .map(|((_, watchee), watcher)| (*watchee, *watcher))
                .collect();
            watchers.retain(|(watcher_node, _), _| watcher_node != node);
            ended
        };
        for (watchee, watcher) in watches {
            if let Some(actor) = self.exported_actor(watchee) {
                unwatch(&actor, watcher);
            }
        }
    }

    fn exported_actor(&self, id: u64) -> Option<AnyActorRef> {
        lock(&self.exports)
            .by_id
            .get(&id)
            .map(|export| export.actor.clone())
    }

    /// Sends heartbeats, declares silent nodes gone and drops entries nobody uses.
    pub(crate) fn tick(&self, now: Instant) {
        let output = lock(&self.node_watch).tick(now);
        if let Some(transport) = self.transport() {
            for node in &output.heartbeats {
                let nonce = self.next_request_id();
                if let Err(error) =
                    transport.send_heartbeat(&Destination::Node(node.clone()), nonce)
                {
                    self.node_gone(node, &error.to_string());
                }
            }
            let owner = lock(&self.detection_owner).clone();
            for node in &output.unreachable {
                if owner.as_ref().is_some_and(|owned| owned(node)) {
                    // The layer above decides, for example a cluster through its
                    // failure detector and split brain resolver.
                    continue;
                }
                warn!(peer = %node, "remote node unreachable by death watch; quarantining it");
                transport.quarantine(node, "unreachable by remote death watch");
                self.node_gone(node, "unreachable by remote death watch");
            }
        }
        self.sweep();
    }

    /// Drops exports of stopped targets (such as answered asks) and remote actors that
    /// only the table refers to.
    fn sweep(&self) {
        let stopped: Vec<u64> = lock(&self.exports)
            .by_id
            .iter()
            .filter(|(_, export)| export.actor.is_terminated())
            .map(|(id, _)| *id)
            .collect();
        for id in stopped {
            self.unexport(id);
        }
        // The watch order lock keeps the sweep from dropping an entry between a watch
        // finding it and linking a new target to it.
        let _order = lock(&self.watch_order);
        lock(&self.remotes).retain(|_, actor| {
            let siblings = actor.keep_watched_siblings();
            Arc::strong_count(actor) > 1 || actor.is_watched() || siblings
        });
    }

    /// Delivers consecutive inbound user messages for one exported actor, all of
    /// `manifest`, looking the actor and the manifest up once.
    ///
    /// The reply ref of an ask takes one message, and an unknown recipient none, so their
    /// messages go through [`RemoteCore::deliver`] one by one.
    fn deliver_run(
        self: &Arc<Self>,
        from: &UniqueAddress,
        recipient: u64,
        manifest: &str,
        first: &[u8],
        rest: &mut UserRun<'_>,
    ) {
        let (typed, deliver) = match self.take_recipient(recipient) {
            Recipient::Exported(typed, deliver) => (typed, deliver),
            // An ask's reply ref takes the first message only. It goes back to the table
            // when that message is not delivered.
            taken => {
                self.deliver_to(from, recipient, manifest, first, taken);
                for payload in rest {
                    self.deliver(from, recipient, manifest, payload);
                }
                return;
            }
        };
        // A message for a ref of another type than the manifest's comes back boxed, and only
        // the ref's delivery function can tell whether it accepts the message.
        let boxed = |message| match deliver(&*typed, message) {
            Ok(()) => trace!(peer = %from, recipient, manifest, "delivered remote message"),
            Err(_) => {
                debug!(peer = %from, recipient, manifest, "dropped message of a type the recipient does not accept");
                self.inbound_dead_letter(recipient, DeadLetterReason::UnknownRecipient);
            }
        };
        let to = InboundRecipient {
            peer: from,
            id: recipient,
            actor: &*typed,
            resolver: &self.resolver,
        };
        self.registry
            .deserialize_inbound_run(&to, manifest, first, rest, boxed);
    }

    /// Delivers an inbound user message to the exported actor it names.
    ///
    /// Decoding runs on the connection task of the lane the message came on, so a large
    /// message delays further reads of that lane only.
    fn deliver(
        self: &Arc<Self>,
        from: &UniqueAddress,
        recipient: u64,
        manifest: &str,
        payload: &[u8],
    ) {
        let found = self.take_recipient(recipient);
        self.deliver_to(from, recipient, manifest, payload, found);
    }

    /// Looks up the exported actor `id`.
    ///
    /// The reply ref of an ask takes one message, so it leaves the table here. It goes back
    /// when that message is not delivered, so that a sound reply can still follow.
    fn take_recipient(&self, id: u64) -> Recipient {
        let mut exports = lock(&self.exports);
        match exports.by_id.entry(id) {
            Entry::Occupied(entry) if entry.get().ask_reply => Recipient::AskReply(entry.remove()),
            Entry::Occupied(entry) => {
                Recipient::Exported(entry.get().typed.clone(), entry.get().deliver)
            }
            Entry::Vacant(_) => Recipient::Unknown,
        }
    }

    /// Delivers `payload` to `found`, the exported actor `recipient` as looked up.
    fn deliver_to(
        self: &Arc<Self>,
        from: &UniqueAddress,
        recipient: u64,
        manifest: &str,
        payload: &[u8],
        found: Recipient,
    ) {
        let (typed, ask_reply) = match found {
            Recipient::Exported(typed, _) => (Some(typed), None),
            Recipient::AskReply(export) => (Some(export.typed.clone()), Some(export)),
            Recipient::Unknown => (None, None),
        };
        let Some(typed) = typed else {
            debug!(peer = %from, recipient, manifest, "dropped message for unknown actor");
            self.inbound_dead_letter(recipient, DeadLetterReason::UnknownRecipient);
            return;
        };
        let to = InboundRecipient {
            peer: from,
            id: recipient,
            actor: &*typed,
            resolver: &self.resolver,
        };
        let decoded = self.registry.deserialize_inbound_to(&to, manifest, payload);
        let message = match decoded {
            Some(Decoded::Delivered) => {
                trace!(peer = %from, recipient, manifest, "delivered remote message");
                return;
            }
            Some(Decoded::Boxed(message)) => message,
            None => {
                self.restore_ask_reply(recipient, ask_reply);
                return;
            }
        };
        // The recipient's ref has another type than the manifest's, so only its delivery
        // function can tell whether it accepts the message.
        let deliver = match &ask_reply {
            Some(export) => Some((export.typed.clone(), export.deliver)),
            None => lock(&self.exports)
                .by_id
                .get(&recipient)
                .map(|export| (export.typed.clone(), export.deliver)),
        };
        match deliver.map(|(typed, deliver)| deliver(&*typed, message)) {
            Some(Ok(())) => trace!(peer = %from, recipient, manifest, "delivered remote message"),
            Some(Err(_)) => {
                debug!(peer = %from, recipient, manifest, "dropped message of a type the recipient does not accept");
                self.inbound_dead_letter(recipient, DeadLetterReason::UnknownRecipient);
                self.restore_ask_reply(recipient, ask_reply);
            }
            // The actor was unexported while the message was decoded.
            None => {
                debug!(peer = %from, recipient, manifest, "dropped message for unknown actor");
                self.inbound_dead_letter(recipient, DeadLetterReason::UnknownRecipient);
            }
        }
    }

    /// Exports again the reply ref of an ask that `deliver` took out of the table for a
    /// message it then dropped.
    fn restore_ask_reply(&self, id: u64, export: Option<Export>) {
        if let Some(export) = export {
            lock(&self.exports).by_id.entry(id).or_insert(export);
        }
    }

    fn inbound_dead_letter(&self, recipient: u64, reason: DeadLetterReason) {
        let path = match self.local() {
            Some(local) => format!("{}#{recipient}", local.address),
            None => format!("#{recipient}"),
        };
        record_dead_letter::<InboundRemoteMessage>(&self.system, &path, reason);
    }

    fn on_protocol_message(&self, from: &UniqueAddress, envelope: &UserEnvelope) {
        match envelope.manifest.as_str() {
            LOOKUP_REQUEST => match LookupRequest::decode(envelope.payload.clone()) {
                Ok(request) => self.answer_lookup(from, request),
                Err(error) => debug!(peer = %from, %error, "dropped undecodable lookup request"),
            },
            LOOKUP_REPLY => match LookupReply::decode(envelope.payload.clone()) {
                Ok(reply) => {
                    if let Some(pending) = lock(&self.lookups).remove(&reply.request_id) {
                        let _ = pending.send(reply);
                    }
                }
                Err(error) => debug!(peer = %from, %error, "dropped undecodable lookup reply"),
            },
            other => {
                let handler = lock(&self.protocol_handlers).get(other).cloned();
                match handler {
                    Some(handler) => handler(from, envelope.payload.clone()),
                    None => {
                        debug!(peer = %from, manifest = other, "dropped protocol message of unknown kind")
                    }
                }
            }
        }
    }

    fn answer_lookup(&self, from: &UniqueAddress, request: LookupRequest) {
        let (Some(transport), Some(local)) = (self.transport(), self.local()) else {
            return;
        };
        let found = self.exposed(&request.name);
        let reply = LookupReply {
            request_id: request.request_id,
            actor: found.as_ref().map(|(id, path, _, _)| ActorRefData {
                node: Some(UniqueAddressData::from(local)),
                id: *id,
                path: path.clone(),
            }),
            manifest: found
                .map(|(_, _, manifest, _)| manifest)
                .unwrap_or_default(),
        };
        let envelope =
            UserEnvelope::without_sender(PROTOCOL_RECIPIENT, LOOKUP_REPLY, reply.encode_to_vec());
        if let Err(error) =
            transport.send(&Destination::Node(from.clone()), Lane::Ordinary, &envelope)
        {
            debug!(peer = %from, %error, "lookup reply not sent");
        }
    }

    fn on_watch(&self, from: &UniqueAddress, watchee: u64) {
        let Some(actor) = self.exported_actor(watchee) else {
            self.send_death_notification(from, watchee, None);
            return;
        };
        let watcher = {
            let mut watchers = lock(&self.remote_watchers);
            let key = (from.clone(), watchee);
            if watchers.contains_key(&key) {
                return;
            }
            let watcher = new_actor_id();
            watchers.insert(key, watcher);
            watcher
        };
        let me = self.me.clone();
        let node = from.clone();
        watch_with_callback(&actor, watcher, move |terminated| {
            let Some(core) = me.upgrade() else {
                return;
            };
            let key = (node.clone(), watchee);
            let current = lock(&core.remote_watchers).get(&key).copied();
            if current == Some(watcher) {
                lock(&core.remote_watchers).remove(&key);
                let failure = terminated.failure.as_ref().map(ToString::to_string);
                core.send_death_notification(&node, watchee, failure);
            }
        });
    }

    fn on_unwatch(&self, from: &UniqueAddress, watchee: u64) {
        let watcher = lock(&self.remote_watchers).remove(&(from.clone(), watchee));
        if let (Some(watcher), Some(actor)) = (watcher, self.exported_actor(watchee)) {
            unwatch(&actor, watcher);
        }
    }

    fn send_death_notification(&self, to: &UniqueAddress, watchee: u64, failure: Option<String>) {
        let payload = DeathWatchNotification { watchee, failure }.encode_to_vec();
        self.send_system(to, DEATH_WATCH_NOTIFICATION, payload);
    }

    fn on_death_notification(&self, from: &UniqueAddress, notice: DeathWatchNotification) {
        let actor = self.known_remote_actor(from.uid, notice.watchee, |node| node == from);
        if let Some(actor) = actor {
            {
                // Each target of the actor with a queued watch counts once on its node.
                let _order = lock(&self.watch_order);
                let mut node_watch = lock(&self.node_watch);
                for target in std::iter::once(actor.clone()).chain(actor.siblings()) {
                    if target.watch_held.swap(false, Ordering::Relaxed) {
                        node_watch.unwatch(from);
                    }
                }
            }
            actor.terminate(notice.failure.map(ActorError::msg));
        }
    }
}

impl RemoteCore {
    /// Exports `exported` and passes its encoded form to `encode`, borrowing the text from
    /// this node's tables.
    fn exported_view<R>(
        &self,
        exported: ExportedRef,
        encode: impl FnOnce(SerializedActorRefView<'_>) -> R,
    ) -> Result<R, String> {
        let manifest = self
            .registry
            .manifest_of(exported.message_type)
            .unwrap_or_default();
        if let Some(external) = exported.actor.external() {
            let Some(remote) = external.as_any().downcast_ref::<RemoteActor>() else {
                return Err(format!(
                    "actor ref {} points at an external target that cannot be sent to another node",
                    exported.actor.path()
                ));
            };
            return Ok(
                remote.with_path(|path| encode(view_of(&remote.node, remote.id, path, manifest)))
            );
        }
        let local = self.local().ok_or("the remote system is not bound yet")?;
        // An ask's reply ref, one per ask, has its path written on the stack.
        let mut buffer = [0u8; ASK_PATH_MAX];
        let path = if exported.actor.is_ask_reply() {
            Cow::Borrowed(ask_reply_path(exported.actor.id().value(), &mut buffer))
        } else {
            Cow::Owned(exported.actor.path())
        };
        debug_assert_eq!(path, exported.actor.path());
        let id = self.export_local(exported);
        Ok(encode(view_of(local, id, &path, manifest)))
    }
}

impl ActorRefResolver for RemoteCore {
    fn export(&self, exported: ExportedRef) -> Result<SerializedActorRef, String> {
        self.exported_view(exported, |data| data.into_owned())
    }

    fn export_view(
        &self,
        exported: ExportedRef,
        encode: &mut dyn FnMut(&SerializedActorRefView<'_>),
    ) -> Result<(), String> {
        self.exported_view(exported, |data| encode(&data))
    }

    fn import(
        &self,
        data: SerializedActorRef,
        message_type: TypeId,
        message_type_name: &'static str,
    ) -> Result<ImportedRef, String> {
        self.import_view(data.view(), message_type, message_type_name)
    }

    fn import_view(
        &self,
        data: SerializedActorRefView<'_>,
        message_type: TypeId,
        message_type_name: &'static str,
    ) -> Result<ImportedRef, String> {
        if let Some(expected) = self.registry.manifest_of(message_type) {
            if !data.manifest.is_empty() && data.manifest != expected {
                return Err(format!(
                    "actor ref akkord://{}@{}:{}#{}{} accepts messages with manifest {:?}, not \
                     {message_type_name} ({expected:?})",
                    data.system, data.host, data.port, data.uid, data.path, data.manifest
                ));
            }
        }
        if let Some(local) = self.local().filter(|local| names_node(&data, local)) {
            if let Some(export) = lock(&self.exports).by_id.get(&data.id) {
                if export.message_type != message_type {
                    return Err(format!(
                        "actor ref {} does not accept {message_type_name}",
                        export.actor.path()
                    ));
                }
                return Ok(ImportedRef::Local(export.typed.clone()));
            }
            // A stopped actor or an answered ask: a ref whose messages are dead letters.
            let core = self.arc().ok_or("the remote system is shut down")?;
            let route = self.route_to(local);
            let actor = RemoteActor::create(&core, local.clone(), route, data.id, data.path, true);
            return Ok(ImportedRef::External(actor));
        }
        if let Some(actor) =
            self.known_remote_actor(data.uid, data.id, |node| names_node(&data, node))
        {
            return Ok(ImportedRef::External(actor));
        }
        let (node, route) = self.node_of(&data)?;
        let actor = self
            .new_remote_actor(node, route, data.id, data.path)
            .ok_or("the remote system is shut down")?;
        Ok(ImportedRef::External(actor))
    }
}

impl RemoteCore {
    /// Returns the node that the encoded ref `data` names with the route for targets on
    /// it, or why its address is invalid. The node becomes the last node.
    fn node_of(
        &self,
        data: &SerializedActorRefView<'_>,
    ) -> Result<(UniqueAddress, Arc<RouteCache>), String> {
        let mut last = lock(&self.last_node);
        if let Some((node, route)) = last.as_ref().filter(|(node, _)| names_node(data, node)) {
            return Ok((node.clone(), route.clone()));
        }
        let address = Address::new(data.system.as_ref(), data.host.as_ref(), data.port)
            .map_err(|e| e.to_string())?;
        let node = UniqueAddress::new(address, data.uid);
        let route = Arc::<RouteCache>::default();
        *last = Some((node.clone(), route.clone()));
        Ok((node, route))
    }

    /// Returns the route for a new target on `node`: the last node's route when that node is
    /// `node`, otherwise a new route, which becomes the last node's.
    pub(crate) fn route_to(&self, node: &UniqueAddress) -> Arc<RouteCache> {
        let mut last = lock(&self.last_node);
        match last.as_ref() {
            Some((known, route)) if known == node => route.clone(),
            _ => {
                let route = Arc::<RouteCache>::default();
                *last = Some((node.clone(), route.clone()));
                route
            }
        }
    }
}

/// Returns the encoded form of a ref to actor `id` on `node`.
fn view_of<'a>(
    node: &'a UniqueAddress,
    id: u64,
    path: &'a str,
    manifest: &'a str,
) -> SerializedActorRefView<'a> {
    SerializedActorRefView {
        system: Cow::Borrowed(node.address.system()),
        host: Cow::Borrowed(node.address.host()),
        port: node.address.port(),
        uid: node.uid,
        id,
        path: Cow::Borrowed(path),
        manifest: Cow::Borrowed(manifest),
    }
}

/// Room for [`ASK_REPLY_PATH`] followed by any actor id.
pub(crate) const ASK_PATH_MAX: usize = ASK_REPLY_PATH.len() + ID_DIGITS_MAX;

/// Decimal digits of the largest actor id.
const ID_DIGITS_MAX: usize = 20;

/// Writes the path of the ask reply ref `id` into `buffer` and returns it.
pub(crate) fn ask_reply_path(id: u64, buffer: &mut [u8; ASK_PATH_MAX]) -> &str {
    let (prefix, rest) = buffer.split_at_mut(ASK_REPLY_PATH.len());
    prefix.copy_from_slice(ASK_REPLY_PATH.as_bytes());
    let digits = id_digits(id, rest.try_into().expect("the rest has room for any id")).len();
    // The digits sit at the end of the buffer; they move up to follow the prefix.
    buffer.copy_within(ASK_PATH_MAX - digits.., ASK_REPLY_PATH.len());
    let len = ASK_REPLY_PATH.len() + digits;
    std::str::from_utf8(&buffer[..len]).unwrap_or(ASK_REPLY_PATH)
}

/// Returns true when `path` is the path of the ask reply ref `id`.
pub(crate) fn is_ask_reply_path(path: &str, id: u64) -> bool {
    path.strip_prefix(ASK_REPLY_PATH)
        .is_some_and(|digits| digits.as_bytes() == id_digits(id, &mut [0; ID_DIGITS_MAX]))
}

/// Writes the decimal digits of `id` at the end of `buffer` and returns them.
///
/// Written by hand: `write!` goes through the formatting machinery, which took about a
/// fifth of the instructions of encoding an ask's reply ref in a callgrind profile.
fn id_digits(id: u64, buffer: &mut [u8; ID_DIGITS_MAX]) -> &[u8] {
    let mut start = ID_DIGITS_MAX;
    let mut rest = id;
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &buffer[start..];
        }
    }
}

/// Returns true when the encoded ref `data` names the incarnation `node`.
fn names_node(data: &SerializedActorRefView<'_>, node: &UniqueAddress) -> bool {
    data.uid == node.uid
        && data.port == node.address.port()
        && data.host == node.address.host()
        && data.system == node.address.system()
}

/// An exported actor looked up for an inbound message.
enum Recipient {
    /// An actor that stays exported: its typed ref and delivery function.
    Exported(Arc<dyn Any + Send + Sync>, DeliverFn),
    /// An ask's reply ref, taken out of the table.
    AskReply(Export),
    /// No actor is exported under the id.
    Unknown,
}

/// Receives the transport's inbound traffic for a [`RemoteCore`].
pub(crate) struct Handler(pub(crate) Weak<RemoteCore>);

impl InboundHandler for Handler {
    fn on_user_message(&self, from: &UniqueAddress, _lane: Lane, envelope: UserEnvelope) {
        let Some(core) = self.0.upgrade() else {
            return;
        };
        if envelope.recipient == PROTOCOL_RECIPIENT {
            core.on_protocol_message(from, &envelope);
        } else {
            core.deliver(
                from,
                envelope.recipient,
                &envelope.manifest,
                &envelope.payload,
            );
        }
    }

    fn on_user_run(
        &self,
        from: &UniqueAddress,
        lane: Lane,
        recipient: u64,
        manifest: &str,
        first: &[u8],
        rest: &mut UserRun<'_>,
    ) {
        if recipient == PROTOCOL_RECIPIENT {
            each_envelope(recipient, manifest, first, rest, |envelope| {
                self.on_user_message(from, lane, envelope);
            });
            return;
        }
        let Some(core) = self.0.upgrade() else {
            return;
        };
        core.deliver_run(from, recipient, manifest, first, rest);
    }

    fn on_system_message(&self, from: &UniqueAddress, envelope: UserEnvelope) {
        let Some(core) = self.0.upgrade() else {
            return;
        };
        match envelope.manifest.as_str() {
            WATCH | UNWATCH => match WatchRequest::decode(envelope.payload.clone()) {
                Ok(request) if envelope.manifest == WATCH => core.on_watch(from, request.watchee),
                Ok(request) => core.on_unwatch(from, request.watchee),
                Err(error) => debug!(peer = %from, %error, "dropped undecodable watch message"),
            },
            DEATH_WATCH_NOTIFICATION => {
                match DeathWatchNotification::decode(envelope.payload.clone()) {
                    Ok(notice) => core.on_death_notification(from, notice),
                    Err(error) => {
                        debug!(peer = %from, %error, "dropped undecodable death watch notification")
                    }
                }
            }
            other => {
                debug!(peer = %from, manifest = other, "dropped system message of unknown kind")
            }
        }
    }

    fn on_heartbeat_response(&self, from: &UniqueAddress, nonce: u64) {
        let Some(core) = self.0.upgrade() else {
            return;
        };
        let ping = lock(&core.pings).remove(&nonce);
        match ping {
            Some(ping) => {
                let _ = ping.send(());
            }
            None => lock(&core.node_watch).heartbeat(from, Instant::now()),
        }
    }

    fn on_event(&self, event: TransportEvent) {
        let Some(core) = self.0.upgrade() else {
            return;
        };
        match event {
            TransportEvent::IncarnationChanged { address, old, new } => {
                let reason = format!("restarted as incarnation {new}");
                core.node_gone(&UniqueAddress::new(address, old), &reason);
            }
            TransportEvent::Quarantined { peer, reason } => core.node_gone(&peer, &reason),
            TransportEvent::QuarantinedByPeer { peer, reason } => {
                core.node_gone(&peer, &format!("it quarantined this node: {reason}"))
            }
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
