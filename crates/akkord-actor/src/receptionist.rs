//! The receptionist: a registry of actors by [`ServiceKey`], with subscriptions.
//!
//! An actor registered under a key stays listed until it is deregistered or stops. A
//! subscriber receives the current [`Listing`] at once and a new one after each change. Keys
//! are typed: the same name with another message type is another key.
//!
//! A cluster layer extends the registry across nodes through three hooks: it learns of
//! changes to this node's own registrations with
//! [`Receptionist::set_local_change_listener`], reads them with
//! `Receptionist::local_services` (feature `serde`), and installs the services of each
//! other node incarnation with [`Receptionist::replace_remote_services`]. [`Receptionist::find`]
//! and subscriber listings then contain the remote services whose message type is the key's
//! type, after the local ones.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::actor_ref::{ActorId, ActorRef, WatchNotify, WatcherEntry};
use crate::address::UniqueAddress;
use crate::error::SendError;
#[cfg(feature = "serde")]
use crate::remote_support::ExportedRef;
use crate::remote_support::ExternalActor;

/// Name of a service whose providers handle messages of type `M`.
pub struct ServiceKey<M> {
    id: Arc<str>,
    _message: PhantomData<fn(M)>,
}

impl<M> ServiceKey<M> {
    /// Creates a key named `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self {
            id: id.into(),
            _message: PhantomData,
        }
    }

    /// Returns the key's name.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<M> Clone for ServiceKey<M> {
    fn clone(&self) -> Self {
        Self {
            id: Arc::clone(&self.id),
            _message: PhantomData,
        }
    }
}

impl<M> PartialEq for ServiceKey<M> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<M> Eq for ServiceKey<M> {}

impl<M> fmt::Debug for ServiceKey<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceKey({:?})", self.id)
    }
}

/// The actors registered under a key at one moment.
pub struct Listing<M> {
    /// The key.
    pub key: ServiceKey<M>,
    /// The registered actors, in registration order.
    pub services: Vec<ActorRef<M>>,
}

impl<M: 'static> Clone for Listing<M> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            services: self.services.clone(),
        }
    }
}

impl<M: 'static> fmt::Debug for Listing<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listing")
            .field("key", &self.key)
            .field("services", &self.services)
            .finish()
    }
}

type EntryKey = (Arc<str>, TypeId);

/// Sends the current listing of the key with the given name to its subscribers. The first
/// generic call on a key creates it, because only that call has the key's message type.
type Notifier = fn(&Receptionist, &Arc<str>);

/// Describes a local service, an `ActorRef<M>` behind `dyn Any`, for export to other nodes.
#[cfg(feature = "serde")]
type Exporter = fn(&(dyn Any + Send + Sync)) -> Option<ExportedRef>;

/// Called after every change to this node's own registrations.
type LocalChangeListener = Arc<dyn Fn() + Send + Sync>;

/// A service registered on this node.
struct LocalService {
    /// The `ActorRef<M>`.
    service: Box<dyn Any + Send + Sync>,
    /// Watcher id used to track the service's termination.
    watcher: ActorId,
    #[cfg(feature = "serde")]
    export: Exporter,
}

#[derive(Default)]
struct Entry {
    /// Services registered on this node, in registration order.
    services: Vec<LocalService>,
    /// Services of other node incarnations, installed by a cluster layer.
    remote: BTreeMap<UniqueAddress, Vec<Arc<dyn ExternalActor>>>,
    /// `ActorRef<Listing<M>>` values.
    subscribers: Vec<Box<dyn Any + Send + Sync>>,
    notifier: Option<Notifier>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.services.is_empty() && self.remote.is_empty() && self.subscribers.is_empty()
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<EntryKey, Entry>,
    local_change_listener: Option<LocalChangeListener>,
}

/// Registry of actors by service key; get it from
/// [`ActorSystem::receptionist`](crate::ActorSystem::receptionist).
#[derive(Clone)]
pub struct Receptionist {
    state: Arc<Mutex<State>>,
}

impl Receptionist {
    pub(crate) fn new() -> Self {
        Self {
            state: Arc::default(),
        }
    }

    /// Registers `service` under `key`; registering it again has no further effect.
    ///
    /// The registration ends when the service stops or is deregistered.
    pub fn register<M: Send + 'static>(&self, key: &ServiceKey<M>, service: &ActorRef<M>) {
        let watcher = ActorId::next();
        {
            let mut state = self.lock();
            let entry = state.entries.entry(entry_key(key)).or_default();
            entry.notifier.get_or_insert(notify_erased::<M>);
            if typed_services::<M>(entry).any(|s| s == service) {
                return;
            }
            entry.services.push(LocalService {
                service: Box::new(service.clone()),
                watcher,
                #[cfg(feature = "serde")]
                export: export_erased::<M>,
            });
        }
        self.notify(key);
        self.local_changed();
        let receptionist = self.clone();
        let key_for_watch = key.clone();
        let service_for_watch = service.clone();
        service.to_any().add_watch(WatcherEntry {
            watcher,
            notify: WatchNotify::Callback(Box::new(move |_| {
                receptionist.remove(&key_for_watch, &service_for_watch);
            })),
        });
    }

    /// Removes `service` from `key`.
    pub fn deregister<M: Send + 'static>(&self, key: &ServiceKey<M>, service: &ActorRef<M>) {
        if let Some(watcher) = self.remove(key, service) {
            service.target.unwatch(watcher);
        }
    }

    /// Returns the actors registered under `key` now: the local ones in registration order,
    /// then those of other nodes by node address.
    pub fn find<M: Send + 'static>(&self, key: &ServiceKey<M>) -> Listing<M> {
        let state = self.lock();
        let services = state
            .entries
            .get(&entry_key(key))
            .map(|entry| {
                let remote = entry
                    .remote
                    .values()
                    .flatten()
                    .map(|target| ActorRef::from_external(Arc::clone(target)));
                typed_services::<M>(entry).cloned().chain(remote).collect()
            })
            .unwrap_or_default();
        Listing {
            key: key.clone(),
            services,
        }
    }

    /// Sends the current listing of `key` to `subscriber` now and after every change.
    ///
    /// A subscriber that has stopped is dropped at the next change.
    pub fn subscribe<M: Send + 'static>(
        &self,
        key: &ServiceKey<M>,
        subscriber: &ActorRef<Listing<M>>,
    ) {
        {
            let mut state = self.lock();
            let entry = state.entries.entry(entry_key(key)).or_default();
            entry.notifier.get_or_insert(notify_erased::<M>);
            let present = entry
                .subscribers
                .iter()
                .filter_map(|s| s.downcast_ref::<ActorRef<Listing<M>>>())
                .any(|s| s == subscriber);
            if !present {
                entry.subscribers.push(Box::new(subscriber.clone()));
            }
        }
        subscriber.tell(self.find(key));
    }

    /// Stops sending listings of `key` to `subscriber`.
    pub fn unsubscribe<M: Send + 'static>(
        &self,
        key: &ServiceKey<M>,
        subscriber: &ActorRef<Listing<M>>,
    ) {
        if let Some(entry) = self.lock().entries.get_mut(&entry_key(key)) {
            entry
                .subscribers
                .retain(|s| s.downcast_ref::<ActorRef<Listing<M>>>() != Some(subscriber));
        }
    }

    /// Installs `listener`, called after every change to this node's own registrations,
    /// including a registered actor that stops. It replaces the listener installed before.
    ///
    /// The listener runs on the thread that made the change, without the receptionist's
    /// lock held, so it may call [`Receptionist::find`]; it must return quickly.
    pub fn set_local_change_listener(&self, listener: Arc<dyn Fn() + Send + Sync>) {
        self.lock().local_change_listener = Some(listener);
    }

    /// Returns this node's own registrations as key name and exported ref, sorted by key
    /// name, ready to be encoded for other nodes.
    #[cfg(feature = "serde")]
    pub fn local_services(&self) -> Vec<(Arc<str>, ExportedRef)> {
        let state = self.lock();
        let mut services = Vec::new();
        for ((id, _), entry) in &state.entries {
            for local in &entry.services {
                if let Some(exported) = (local.export)(local.service.as_ref()) {
                    services.push((Arc::clone(id), exported));
                }
            }
        }
        services.sort_by(|a, b| a.0.cmp(&b.0));
        services
    }

    /// Replaces the services of node incarnation `node` with `services`, each given as key
    /// name, message type and external target. An empty list removes the node's services.
    /// Subscribers of every key whose listing changed get the new listing.
    ///
    /// A cluster layer calls this for other members; the entries then show up in
    /// [`Receptionist::find`] for keys of the same name and message type.
    pub fn replace_remote_services(
        &self,
        node: &UniqueAddress,
        services: Vec<(Arc<str>, TypeId, Arc<dyn ExternalActor>)>,
    ) {
        let mut grouped: HashMap<EntryKey, Vec<Arc<dyn ExternalActor>>> = HashMap::new();
        for (id, message_type, target) in services {
            grouped.entry((id, message_type)).or_default().push(target);
        }
        let mut changed: Vec<(Arc<str>, Notifier)> = Vec::new();
        {
            let mut state = self.lock();
            for (key, entry) in state.entries.iter_mut() {
                if !grouped.contains_key(key) && entry.remote.remove(node).is_some() {
                    changed.extend(
                        entry
                            .notifier
                            .map(|notifier| (Arc::clone(&key.0), notifier)),
                    );
                }
            }
            for (key, targets) in grouped {
                let entry = state.entries.entry(key.clone()).or_default();
                let unchanged = entry
                    .remote
                    .get(node)
                    .is_some_and(|old| same_targets(old, &targets));
                if !unchanged {
                    entry.remote.insert(node.clone(), targets);
                    changed.extend(
                        entry
                            .notifier
                            .map(|notifier| (Arc::clone(&key.0), notifier)),
                    );
                }
            }
            state.entries.retain(|_, entry| !entry.is_empty());
        }
        for (id, notifier) in changed {
            notifier(self, &id);
        }
    }

    /// Returns the node incarnations whose services are installed.
    pub fn remote_nodes(&self) -> Vec<UniqueAddress> {
        let state = self.lock();
        let mut nodes: Vec<UniqueAddress> = state
            .entries
            .values()
            .flat_map(|entry| entry.remote.keys().cloned())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Removes `service` from `key`; returns its watcher id when it was registered.
    fn remove<M: Send + 'static>(
        &self,
        key: &ServiceKey<M>,
        service: &ActorRef<M>,
    ) -> Option<ActorId> {
        let watcher = {
            let mut state = self.lock();
            let entry = state.entries.get_mut(&entry_key(key))?;
            let index = entry
                .services
                .iter()
                .position(|s| s.service.downcast_ref::<ActorRef<M>>() == Some(service))?;
            entry.services.remove(index).watcher
        };
        self.notify(key);
        self.local_changed();
        Some(watcher)
    }

    fn local_changed(&self) {
        let listener = self.lock().local_change_listener.clone();
        if let Some(listener) = listener {
            listener();
        }
    }

    fn notify<M: Send + 'static>(&self, key: &ServiceKey<M>) {
        let listing = self.find(key);
        let subscribers: Vec<ActorRef<Listing<M>>> = match self.lock().entries.get(&entry_key(key))
        {
            Some(entry) => entry
                .subscribers
                .iter()
                .filter_map(|s| s.downcast_ref::<ActorRef<Listing<M>>>().cloned())
                .collect(),
            None => return,
        };
        for subscriber in subscribers {
            if let Err(SendError::Stopped { .. }) = subscriber.try_tell(listing.clone()) {
                self.unsubscribe(key, &subscriber);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn entry_key<M: 'static>(key: &ServiceKey<M>) -> EntryKey {
    (Arc::clone(&key.id), TypeId::of::<M>())
}

fn typed_services<M: Send + 'static>(entry: &Entry) -> impl Iterator<Item = &ActorRef<M>> {
    entry
        .services
        .iter()
        .filter_map(|s| s.service.downcast_ref::<ActorRef<M>>())
}

fn notify_erased<M: Send + 'static>(receptionist: &Receptionist, id: &Arc<str>) {
    receptionist.notify(&ServiceKey::<M>::new(Arc::clone(id)));
}

#[cfg(feature = "serde")]
fn export_erased<M: Send + 'static>(service: &(dyn Any + Send + Sync)) -> Option<ExportedRef> {
    service.downcast_ref::<ActorRef<M>>().map(ExportedRef::new)
}

fn same_targets(old: &[Arc<dyn ExternalActor>], new: &[Arc<dyn ExternalActor>]) -> bool {
    old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a.id() == b.id())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::address::Address;
    use crate::remote_support::{new_actor_id, BoxedMessage, ExternalRejection, Watcher};
    use crate::{ActorError, ActorSystem};

    /// An external target that accepts and discards every message.
    struct Sink {
        id: ActorId,
        system: ActorSystem,
    }

    impl ExternalActor for Sink {
        fn id(&self) -> ActorId {
            self.id
        }

        fn path(&self) -> String {
            "akkord://test@127.0.0.1:2/user/sink".to_owned()
        }

        fn system(&self) -> &ActorSystem {
            &self.system
        }

        fn send(&self, _: BoxedMessage, _: &'static str) -> Result<(), ExternalRejection> {
            Ok(())
        }

        fn add_watcher(&self, _: Watcher) -> Result<(), (Watcher, Option<ActorError>)> {
            Ok(())
        }

        fn unwatch(&self, _: ActorId) {}

        fn is_terminated(&self) -> bool {
            false
        }

        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn sink(system: &ActorSystem) -> Arc<dyn ExternalActor> {
        Arc::new(Sink {
            id: new_actor_id(),
            system: system.clone(),
        })
    }

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(Address::new("test", "127.0.0.1", port).unwrap(), 7)
    }

    /// Returns a subscriber that keeps the sizes of the listings it receives.
    fn listing_sizes<M: Send + 'static>(
        system: &ActorSystem,
    ) -> (ActorRef<Listing<M>>, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&sizes);
        let subscriber = ActorRef::from_fn(system, "sizes", move |listing: Listing<M>| {
            store.lock().unwrap().push(listing.services.len());
        });
        (subscriber, sizes)
    }

    #[tokio::test]
    async fn find_lists_remote_services_after_local() {
        let system = ActorSystem::new("test").unwrap();
        let receptionist = system.receptionist();
        let key = ServiceKey::<u32>::new("svc");
        let local = ActorRef::from_fn(&system, "local", |_: u32| {});
        receptionist.register(&key, &local);
        let remote = sink(&system);
        receptionist.replace_remote_services(
            &node(2),
            vec![
                (Arc::from("svc"), TypeId::of::<u32>(), Arc::clone(&remote)),
                (Arc::from("svc"), TypeId::of::<String>(), sink(&system)),
                (Arc::from("other"), TypeId::of::<u32>(), sink(&system)),
            ],
        );
        let services = receptionist.find(&key).services;
        assert_eq!(services.len(), 2, "only the entry of the key's type counts");
        assert_eq!(services[0], local);
        assert_eq!(services[1].id(), remote.id());
        assert_eq!(receptionist.remote_nodes(), vec![node(2)]);
        system.terminate().await;
    }

    #[tokio::test]
    async fn subscribers_see_remote_changes() {
        let system = ActorSystem::new("test").unwrap();
        let receptionist = system.receptionist();
        let key = ServiceKey::<u32>::new("svc");
        let (subscriber, sizes) = listing_sizes::<u32>(&system);
        receptionist.subscribe(&key, &subscriber);
        let remote = sink(&system);
        let services = vec![(Arc::from("svc"), TypeId::of::<u32>(), Arc::clone(&remote))];
        receptionist.replace_remote_services(&node(2), services.clone());
        receptionist.replace_remote_services(&node(2), services);
        receptionist.replace_remote_services(&node(2), Vec::new());
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![0, 1, 0],
            "one listing at subscription, one per real change"
        );
        assert!(receptionist.remote_nodes().is_empty());
        system.terminate().await;
    }

    #[tokio::test]
    async fn replacing_one_node_keeps_others() {
        let system = ActorSystem::new("test").unwrap();
        let receptionist = system.receptionist();
        let key = ServiceKey::<u32>::new("svc");
        for port in [2, 3] {
            receptionist.replace_remote_services(
                &node(port),
                vec![(Arc::from("svc"), TypeId::of::<u32>(), sink(&system))],
            );
        }
        receptionist.replace_remote_services(&node(2), Vec::new());
        assert_eq!(receptionist.find(&key).services.len(), 1);
        assert_eq!(receptionist.remote_nodes(), vec![node(3)]);
        system.terminate().await;
    }

    #[tokio::test]
    async fn local_change_listener_runs_on_each_change() {
        let system = ActorSystem::new("test").unwrap();
        let receptionist = system.receptionist();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        receptionist.set_local_change_listener(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        let key = ServiceKey::<u32>::new("svc");
        let local = ActorRef::from_fn(&system, "local", |_: u32| {});
        receptionist.register(&key, &local);
        receptionist.register(&key, &local);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a repeated registration is no change"
        );
        receptionist.deregister(&key, &local);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        receptionist.replace_remote_services(
            &node(2),
            vec![(Arc::from("svc"), TypeId::of::<u32>(), sink(&system))],
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "remote changes are not local"
        );
        system.terminate().await;
    }

    #[cfg(feature = "serde")]
    #[tokio::test]
    async fn local_services_exported_by_key() {
        let system = ActorSystem::new("test").unwrap();
        let receptionist = system.receptionist();
        let b = ActorRef::from_fn(&system, "b", |_: u32| {});
        let a = ActorRef::from_fn(&system, "a", |_: String| {});
        receptionist.register(&ServiceKey::<u32>::new("b"), &b);
        receptionist.register(&ServiceKey::<String>::new("a"), &a);
        receptionist.replace_remote_services(
            &node(2),
            vec![(Arc::from("c"), TypeId::of::<u32>(), sink(&system))],
        );
        let services = receptionist.local_services();
        let keys: Vec<&str> = services.iter().map(|(key, _)| key.as_ref()).collect();
        assert_eq!(keys, vec!["a", "b"], "remote services are not local");
        assert_eq!(services[0].1.message_type, TypeId::of::<String>());
        assert_eq!(services[1].1.actor, b.to_any());
        system.terminate().await;
    }
}
