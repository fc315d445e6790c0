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
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

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

impl SerializedActorRef {
    /// Returns a view borrowing this ref's text, which encodes exactly as the ref does.
    pub fn view(&self) -> SerializedActorRefView<'_> {
        SerializedActorRefView {
            system: Cow::Borrowed(&self.system),
            host: Cow::Borrowed(&self.host),
            port: self.port,
            uid: self.uid,
            id: self.id,
            path: Cow::Borrowed(&self.path),
            manifest: Cow::Borrowed(&self.manifest),
        }
    }
}

/// An actor ref as encoded inside a message, with its text borrowed where it can be.
///
/// It has the fields of [`SerializedActorRef`] in the same order and under the same names,
/// so both encode to the same bytes in every serde format. Resolvers use it to encode a ref
/// from text they already have, and to decode one without copying its text out of the
/// message when the format allows borrowing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "SerializedActorRef")]
pub struct SerializedActorRefView<'a> {
    /// Actor system name of the hosting node.
    #[serde(borrow)]
    pub system: Cow<'a, str>,
    /// Host of the hosting node.
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    /// Port of the hosting node.
    pub port: u16,
    /// Incarnation uid of the hosting node.
    pub uid: u64,
    /// Actor id, unique within the hosting incarnation.
    pub id: u64,
    /// Path for humans; not used to find the actor.
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    /// Manifest of the message type the actor accepts, empty when the type is not
    /// registered for serialization.
    #[serde(borrow)]
    pub manifest: Cow<'a, str>,
}

impl SerializedActorRefView<'_> {
    /// Copies the text out into an owned [`SerializedActorRef`].
    pub fn into_owned(self) -> SerializedActorRef {
        SerializedActorRef {
            system: self.system.into_owned(),
            host: self.host.into_owned(),
            port: self.port,
            uid: self.uid,
            id: self.id,
            path: self.path.into_owned(),
            manifest: self.manifest.into_owned(),
        }
    }
}

/// Delivers a boxed message to the typed ref of an [`ExportedRef`] (its `typed` field),
/// giving the message back when it or the ref has another type.
pub type DeliverFn =
    fn(typed: &(dyn Any + Send + Sync), message: BoxedMessage) -> Result<(), BoxedMessage>;

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
    /// Function that delivers a message of the ref's type to `typed`.
    pub deliver: DeliverFn,
}

impl ExportedRef {
    /// Describes `actor` for export; its `deliver` tells the message to `actor`.
    pub fn new<M: Send + 'static>(actor: &ActorRef<M>) -> Self {
        ExportedRef {
            actor: actor.to_any(),
            message_type: TypeId::of::<M>(),
            message_type_name: std::any::type_name::<M>(),
            typed: Arc::new(actor.clone()),
            deliver: deliver_to::<M>,
        }
    }
}

/// Tells `message` to `typed` when they are an `M` and an `ActorRef<M>`.
fn deliver_to<M: Send + 'static>(
    typed: &(dyn Any + Send + Sync),
    message: BoxedMessage,
) -> Result<(), BoxedMessage> {
    let Some(actor) = typed.downcast_ref::<ActorRef<M>>() else {
        return Err(message);
    };
    let message = message.downcast::<M>()?;
    actor.tell(*message);
    Ok(())
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

    /// Exports `actor` as [`ActorRefResolver::export`] does and passes the encoded ref to
    /// `encode` as a view, so a resolver that has the ref's text at hand can lend it instead
    /// of copying it. `encode` runs once when the export succeeds.
    ///
    /// # Errors
    ///
    /// As [`ActorRefResolver::export`].
    fn export_view(
        &self,
        actor: ExportedRef,
        encode: &mut dyn FnMut(&SerializedActorRefView<'_>),
    ) -> Result<(), String> {
        let data = self.export(actor)?;
        encode(&data.view());
        Ok(())
    }

    /// Decodes a ref read as a view, as [`ActorRefResolver::import`] does. A resolver that
    /// can find the ref without owning its text overrides this method to skip the copies.
    ///
    /// # Errors
    ///
    /// As [`ActorRefResolver::import`].
    fn import_view(
        &self,
        data: SerializedActorRefView<'_>,
        message_type: TypeId,
        message_type_name: &'static str,
    ) -> Result<ImportedRef, String> {
        self.import(data.into_owned(), message_type, message_type_name)
    }
}

thread_local! {
    /// Resolver of the innermost [`with_ref_resolver`] call running on this thread, or of
    /// the last call when none runs. It stays after the call, so installing the same
    /// resolver again changes no reference count. It is weak, so a remote system that shut
    /// down is not kept alive by the threads that served it.
    static RESOLVER: RefCell<Option<Weak<dyn ActorRefResolver>>> = const { RefCell::new(None) };
    /// Flag set while a [`with_ref_resolver`] call runs on this thread.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with `resolver` installed for actor refs serialized or deserialized on this
/// thread, then restores the resolver installed before, also when `f` panics.
///
/// Takes the resolver as a weak reference, so installing the resolver the thread used last
/// costs no atomic operation. Only a ref met while `f` runs upgrades it, and such a ref
/// fails to encode or decode once the resolver was dropped.
pub fn with_ref_resolver<R>(resolver: &Weak<dyn ActorRefResolver>, f: impl FnOnce() -> R) -> R {
    struct Restore {
        was_active: bool,
        /// Resolver to put back, for a call nested in a call with another resolver.
        previous: Option<Weak<dyn ActorRefResolver>>,
    }

    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.set(self.was_active);
            if let Some(previous) = self.previous.take() {
                RESOLVER.with(|slot| *slot.borrow_mut() = Some(previous));
            }
        }
    }

    let was_active = ACTIVE.replace(true);
    let replaced = RESOLVER.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot
            .as_ref()
            .is_some_and(|current| Weak::ptr_eq(current, resolver))
        {
            None
        } else {
            slot.replace(resolver.clone())
        }
    });
    // A nested call puts the outer call's resolver back when it ends. After the outermost
    // call, the slot keeps this resolver for the next call.
    let _restore = Restore {
        was_active,
        previous: replaced.filter(|_| was_active),
    };
    f()
}

fn current_resolver() -> Result<Arc<dyn ActorRefResolver>, &'static str> {
    if !ACTIVE.get() {
        return Err(NO_RESOLVER);
    }
    RESOLVER
        .with(|slot| slot.borrow().as_ref().and_then(Weak::upgrade))
        .ok_or(RESOLVER_GONE)
}

const NO_RESOLVER: &str = "actor refs can only be serialized inside remote messages: no actor \
     ref resolver is installed on this thread";
const NOT_ENCODED: &str = "the actor ref resolver exported the ref without encoding it";
const RESOLVER_GONE: &str = "the remote system that installed the actor ref resolver has shut down";

impl<M: Send + 'static> Serialize for ActorRef<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let resolver = current_resolver().map_err(S::Error::custom)?;
        let mut serializer = Some(serializer);
        let mut encoded = None;
        resolver
            .export_view(ExportedRef::new(self), &mut |data| {
                if let Some(serializer) = serializer.take() {
                    encoded = Some(data.serialize(serializer));
                }
            })
            .map_err(S::Error::custom)?;
        encoded.unwrap_or_else(|| Err(S::Error::custom(NOT_ENCODED)))
    }
}

impl<'de, M: Send + 'static> Deserialize<'de> for ActorRef<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = SerializedActorRefView::deserialize(deserializer)?;
        let resolver = current_resolver().map_err(D::Error::custom)?;
        let type_name = std::any::type_name::<M>();
        match resolver
            .import_view(data, TypeId::of::<M>(), type_name)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolver that rejects every ref, because the tests only check which one is installed.
    struct Rejecting;

    impl ActorRefResolver for Rejecting {
        fn export(&self, _actor: ExportedRef) -> Result<SerializedActorRef, String> {
            Err("rejected by the test resolver".to_owned())
        }

        fn import(
            &self,
            _data: SerializedActorRef,
            _message_type: TypeId,
            _message_type_name: &'static str,
        ) -> Result<ImportedRef, String> {
            Err("rejected by the test resolver".to_owned())
        }
    }

    fn resolver() -> (Arc<dyn ActorRefResolver>, Weak<dyn ActorRefResolver>) {
        let strong: Arc<dyn ActorRefResolver> = Arc::new(Rejecting);
        let weak = Arc::downgrade(&strong);
        (strong, weak)
    }

    /// Returns whether the resolver installed now is `expected`.
    fn installed_is(expected: &Arc<dyn ActorRefResolver>) -> bool {
        current_resolver().is_ok_and(|current| Arc::ptr_eq(&current, expected))
    }

    #[test]
    fn nested_resolver_restored() {
        let (outer, outer_weak) = resolver();
        let (inner, inner_weak) = resolver();
        assert_eq!(current_resolver().err(), Some(NO_RESOLVER));
        with_ref_resolver(&outer_weak, || {
            assert!(installed_is(&outer));
            with_ref_resolver(&inner_weak, || assert!(installed_is(&inner)));
            assert!(installed_is(&outer));
            with_ref_resolver(&outer_weak, || assert!(installed_is(&outer)));
            assert!(installed_is(&outer));
        });
        // The slot keeps the last resolver for the next call, but none counts as installed.
        assert_eq!(current_resolver().err(), Some(NO_RESOLVER));
        with_ref_resolver(&inner_weak, || assert!(installed_is(&inner)));
        assert_eq!(current_resolver().err(), Some(NO_RESOLVER));
    }

    #[test]
    fn panic_restores_outer_resolver() {
        let (outer, outer_weak) = resolver();
        let (_inner, inner_weak) = resolver();
        with_ref_resolver(&outer_weak, || {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_ref_resolver(&inner_weak, || panic!("serializer panicked"))
            }));
            assert!(caught.is_err());
            assert!(installed_is(&outer));
        });
        assert_eq!(current_resolver().err(), Some(NO_RESOLVER));
    }

    #[test]
    fn dropped_resolver_fails() {
        let (strong, weak) = resolver();
        drop(strong);
        with_ref_resolver(&weak, || {
            assert_eq!(current_resolver().err(), Some(RESOLVER_GONE));
        });
    }
}
