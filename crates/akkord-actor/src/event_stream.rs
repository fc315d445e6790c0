//! Event stream: publish and subscribe by event type, inside one actor system.
//!
//! Subscribers are actor refs of the event type. Publishing clones the event for each
//! subscriber. A subscriber that has stopped is removed when the next event of its type is
//! published. The runtime publishes [`DeadLetter`](crate::DeadLetter) events here.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::RwLock;

use crate::actor_ref::ActorRef;
use crate::error::SendError;

/// Publish/subscribe by event type within an actor system.
#[derive(Default)]
pub struct EventStream {
    subscribers: RwLock<HashMap<TypeId, Vec<Box<dyn Any + Send + Sync>>>>,
}

impl EventStream {
    /// Subscribes `subscriber` to every published event of type `E`.
    ///
    /// Subscribing the same actor twice has no further effect.
    pub fn subscribe<E: Clone + Send + 'static>(&self, subscriber: &ActorRef<E>) {
        let mut subscribers = self.write();
        let list = subscribers.entry(TypeId::of::<E>()).or_default();
        let present = list
            .iter()
            .filter_map(|s| s.downcast_ref::<ActorRef<E>>())
            .any(|s| s == subscriber);
        if !present {
            list.push(Box::new(subscriber.clone()));
        }
    }

    /// Removes `subscriber` from the subscribers of `E`.
    pub fn unsubscribe<E: Clone + Send + 'static>(&self, subscriber: &ActorRef<E>) {
        if let Some(list) = self.write().get_mut(&TypeId::of::<E>()) {
            list.retain(|s| s.downcast_ref::<ActorRef<E>>() != Some(subscriber));
        }
    }

    /// Sends a clone of `event` to every subscriber of `E`; returns how many received it.
    pub fn publish<E: Clone + Send + 'static>(&self, event: E) -> usize {
        let targets: Vec<ActorRef<E>> = {
            let subscribers = self
                .subscribers
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match subscribers.get(&TypeId::of::<E>()) {
                None => return 0,
                Some(list) => list
                    .iter()
                    .filter_map(|s| s.downcast_ref::<ActorRef<E>>().cloned())
                    .collect(),
            }
        };
        let mut delivered = 0;
        let mut stopped = Vec::new();
        for target in targets {
            match target.try_tell(event.clone()) {
                Ok(()) => delivered += 1,
                Err(SendError::Stopped { .. }) => stopped.push(target),
                Err(SendError::MailboxFull { .. }) => {}
            }
        }
        for target in &stopped {
            self.unsubscribe(target);
        }
        delivered
    }

    /// Returns true when `E` has at least one subscriber.
    pub fn has_subscribers<E: 'static>(&self) -> bool {
        self.subscribers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&TypeId::of::<E>())
            .is_some_and(|list| !list.is_empty())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TypeId, Vec<Box<dyn Any + Send + Sync>>>> {
        self.subscribers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
