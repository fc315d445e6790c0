//! The receptionist: a registry of actors by [`ServiceKey`], with subscriptions.
//!
//! An actor registered under a key stays listed until it is deregistered or stops. A
//! subscriber receives the current [`Listing`] at once and a new one after each change. Keys
//! are typed: the same name with another message type is another key.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::actor_ref::{ActorId, ActorRef, WatchNotify, WatcherEntry};
use crate::error::SendError;

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

#[derive(Default)]
struct Entry {
    /// `ActorRef<M>` values with the watcher id used to track their termination.
    services: Vec<(Box<dyn Any + Send + Sync>, ActorId)>,
    /// `ActorRef<Listing<M>>` values.
    subscribers: Vec<Box<dyn Any + Send + Sync>>,
}

/// Registry of actors by service key; get it from
/// [`ActorSystem::receptionist`](crate::ActorSystem::receptionist).
#[derive(Clone)]
pub struct Receptionist {
    state: Arc<Mutex<HashMap<EntryKey, Entry>>>,
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
            let entry = state.entry(entry_key(key)).or_default();
            if typed_services::<M>(entry).any(|s| s == service) {
                return;
            }
            entry.services.push((Box::new(service.clone()), watcher));
        }
        self.notify(key);
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

    /// Returns the actors registered under `key` now.
    pub fn find<M: Send + 'static>(&self, key: &ServiceKey<M>) -> Listing<M> {
        let state = self.lock();
        let services = state
            .get(&entry_key(key))
            .map(|entry| typed_services::<M>(entry).cloned().collect())
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
            let entry = state.entry(entry_key(key)).or_default();
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
        if let Some(entry) = self.lock().get_mut(&entry_key(key)) {
            entry
                .subscribers
                .retain(|s| s.downcast_ref::<ActorRef<Listing<M>>>() != Some(subscriber));
        }
    }

    /// Removes `service` from `key`; returns its watcher id when it was registered.
    fn remove<M: Send + 'static>(
        &self,
        key: &ServiceKey<M>,
        service: &ActorRef<M>,
    ) -> Option<ActorId> {
        let watcher = {
            let mut state = self.lock();
            let entry = state.get_mut(&entry_key(key))?;
            let index = entry
                .services
                .iter()
                .position(|(s, _)| s.downcast_ref::<ActorRef<M>>() == Some(service))?;
            entry.services.remove(index).1
        };
        self.notify(key);
        Some(watcher)
    }

    fn notify<M: Send + 'static>(&self, key: &ServiceKey<M>) {
        let listing = self.find(key);
        let subscribers: Vec<ActorRef<Listing<M>>> = match self.lock().get(&entry_key(key)) {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntryKey, Entry>> {
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
        .filter_map(|(s, _)| s.downcast_ref::<ActorRef<M>>())
}
