//! `Serialize` and `Deserialize` for [`ActorRef<M>`], through a resolver the remote layer
//! installs.
//!
//! An actor ref means something only together with the node that hosts the actor, so the
//! runtime cannot encode one by itself. While the remote layer serializes or deserializes a
//! message, it installs an [`ActorRefResolver`] for the current thread with
//! [`with_ref_resolver`]. Every ref inside the message is then encoded as a
//! [`SerializedActorRef`] (node incarnation, actor id, path and message manifest). Decoding
//! gives the local ref back when it points at this node, and an external ref otherwise.
//! Serializing a ref with no resolver installed fails with a serde error.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{BoxedMessage, ExternalActor};
use crate::actor_ref::{ActorRef, AnyActorRef};

/// An actor ref as encoded inside a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerializedActorRef {
    /// Actor system name of the hosting node.
    pub system: String,
    /// Host of the hosting node.
    pub host: String,
    /// Port of the hosting node.
    pub port: u16,
    /// Incarnation uid of the hosting node.
    pub uid: u64,
    /// Actor id, unique within the hosting incarnation.
    pub id: u64,
    /// Path for humans; not used to find the actor.
    pub path: String,
    /// Manifest of the message type the actor accepts, empty when the type is not
    /// registered for serialization.
    pub manifest: String,
}

/// Delivers a boxed message to a local actor, giving it back when it has the wrong type.
pub type DeliverFn = dyn Fn(BoxedMessage) -> Result<(), BoxedMessage> + Send + Sync;

/// A ref being serialized, with what the resolver needs to deliver messages to it later.
pub struct ExportedRef {
    /// The ref, type-erased.
    pub actor: AnyActorRef,
    /// Type of the messages the ref accepts.
    pub message_type: TypeId,
    /// Rust name of that type, for logs.
    pub message_type_name: &'static str,
    /// The typed ref, an `ActorRef<M>`, returned when the ref is imported back home.
    pub typed: Arc<dyn Any + Send + Sync>,
    /// Delivers a message of the ref's type to it.
    pub deliver: Arc<DeliverFn>,
}

impl ExportedRef {
    /// Describes `actor` for export; its `deliver` tells the message to `actor`.
    pub fn new<M: Send + 'static>(actor: &ActorRef<M>) -> Self {
        let target = actor.clone();
        ExportedRef {
            actor: actor.to_any(),
            message_type: TypeId::of::<M>(),
            message_type_name: std::any::type_name::<M>(),
            typed: Arc::new(actor.clone()),
            deliver: Arc::new(move |message: BoxedMessage| match message.downcast::<M>() {
                Ok(message) => {
                    target.tell(*message);
                    Ok(())
                }
                Err(message) => Err(message),
            }),
        }
    }
}

/// A ref resolved during deserialization.
pub enum ImportedRef {
    /// A ref to an actor of this node: the typed `ActorRef<M>` from [`ExportedRef::typed`].
    Local(Arc<dyn Any + Send + Sync>),
    /// A ref to an actor elsewhere.
    External(Arc<dyn ExternalActor>),
}

/// Encodes and decodes actor refs for the thread it is installed on.
pub trait ActorRefResolver: Send + Sync + 'static {
    /// Encodes `actor`, registering it so that messages to the encoded ref reach it.
    ///
    /// # Errors
    ///
    /// Returns a message for the serde error when the ref cannot be encoded.
    fn export(&self, actor: ExportedRef) -> Result<SerializedActorRef, String>;

    /// Decodes `data` into a ref that accepts messages of type `message_type`.
    ///
    /// # Errors
    ///
    /// Returns a message for the serde error when the data is invalid or the actor accepts
    /// another message type.
    fn import(
        &self,
        data: SerializedActorRef,
        message_type: TypeId,
        message_type_name: &'static str,
    ) -> Result<ImportedRef, String>;
}

thread_local! {
    static RESOLVER: RefCell<Option<Arc<dyn ActorRefResolver>>> = const { RefCell::new(None) };
}

/// Runs `f` with `resolver` installed for actor refs serialized or deserialized on this
/// thread, then restores the resolver installed before, also when `f` panics.
pub fn with_ref_resolver<R>(resolver: Arc<dyn ActorRefResolver>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn ActorRefResolver>>);

    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            RESOLVER.with(|slot| *slot.borrow_mut() = previous);
        }
    }

    let previous = RESOLVER.with(|slot| slot.replace(Some(resolver)));
    let _restore = Restore(previous);
    f()
}

fn current_resolver() -> Option<Arc<dyn ActorRefResolver>> {
    RESOLVER.with(|slot| slot.borrow().clone())
}

const NO_RESOLVER: &str = "actor refs can only be serialized inside remote messages: no actor \
     ref resolver is installed on this thread";

impl<M: Send + 'static> Serialize for ActorRef<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let resolver = current_resolver().ok_or_else(|| S::Error::custom(NO_RESOLVER))?;
        resolver
            .export(ExportedRef::new(self))
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, M: Send + 'static> Deserialize<'de> for ActorRef<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = SerializedActorRef::deserialize(deserializer)?;
        let resolver = current_resolver().ok_or_else(|| D::Error::custom(NO_RESOLVER))?;
        let type_name = std::any::type_name::<M>();
        match resolver
            .import(data, TypeId::of::<M>(), type_name)
            .map_err(D::Error::custom)?
        {
            ImportedRef::Local(typed) => {
                typed.downcast_ref::<ActorRef<M>>().cloned().ok_or_else(|| {
                    D::Error::custom(format!(
                        "actor ref points at a local actor that does not accept {type_name}"
                    ))
                })
            }
            ImportedRef::External(external) => Ok(ActorRef::from_external(external)),
        }
    }
}
