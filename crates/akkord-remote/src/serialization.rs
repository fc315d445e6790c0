//! Serialization registry: stable manifest strings for Rust message types, with pluggable
//! serializers (postcard by default).
//!
//! A manifest names a message type on the wire and must stay the same across versions and
//! nodes. The Rust type name is not used because it changes with refactoring. The sender
//! fails when the type is not registered; the receiver drops a message whose manifest is
//! unknown or whose payload does not decode, with one warning naming the peer and manifest.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use akkord_actor::address::UniqueAddress;
use akkord_actor::fast_hash::FastMap;
use akkord_actor::remote_support::{with_ref_resolver, ActorRefResolver};
use akkord_actor::ActorRef;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use crate::wire::UserEnvelope;

/// Error of a [`Serializer`], boxed so serializers can use their own error types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Converts messages of type `T` to bytes and back.
pub trait Serializer<T>: Send + Sync + 'static {
    /// Serializes `value`.
    ///
    /// # Errors
    ///
    /// Returns the serializer's error when `value` cannot be represented.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, BoxError>;

    /// Serializes `value`, appending the bytes to `out`.
    ///
    /// Remote sends call this with a buffer reused from send to send. The default calls
    /// [`Serializer::serialize`] and copies; a serializer that can write into `out` directly
    /// should override it to save the allocation.
    ///
    /// # Errors
    ///
    /// As [`Serializer::serialize`]. Bytes already appended may stay in `out`.
    fn serialize_into(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(&self.serialize(value)?);
        Ok(())
    }

    /// Deserializes a value from `bytes`.
    ///
    /// # Errors
    ///
    /// Returns the serializer's error when `bytes` are not a valid encoding.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// Serializer with serde and postcard, a compact binary format.
///
/// Serde writes a `Vec<u8>` or `[u8; N]` as a sequence, one call per byte. For byte
/// payloads, mark the field `#[serde(with = "serde_bytes")]` (the `serde_bytes` crate) or use
/// `bytes::Bytes` with its `serde` feature, so the bytes are copied in one piece.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned + 'static> Serializer<T> for Postcard {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_stdvec(value)?)
    }

    fn serialize_into(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        postcard::serialize_with_flavor(value, AppendTo(out))?;
        Ok(())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// Postcard output appended to a vector, which copies each field's bytes in one step
/// (postcard's own `Extend` output copies them one at a time).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Failure to serialize, register or deserialize a message.
#[derive(Debug, thiserror::Error)]
pub enum SerializationError {
    /// The sender tried to serialize a type without a registered manifest.
    #[error(
        "message type {type_name} is not registered: register it with a manifest before sending"
    )]
    NotRegistered {
        /// Rust name of the type.
        type_name: &'static str,
    },
    /// Two registrations use the same manifest or the same type.
    #[error("manifest {manifest:?} or type {type_name} is already registered")]
    AlreadyRegistered {
        /// Manifest of the second registration.
        manifest: String,
        /// Rust name of the second registration's type.
        type_name: &'static str,
    },
    /// The receiver has no deserializer for a manifest.
    #[error("unknown manifest {0:?}: the sender uses a message type this node does not register")]
    UnknownManifest(String),
    /// The serializer failed.
    #[error("failed to {action} message with manifest {manifest:?}: {source}")]
    Codec {
        /// `serialize` or `deserialize`.
        action: &'static str,
        /// Manifest of the message.
        manifest: String,
        /// The serializer's error.
        source: BoxError,
    },
}

/// A deserialized message of a registered type.
pub type AnyMessage = Box<dyn Any + Send>;

/// Registry of message types, their manifests and serializers.
#[derive(Default)]
pub struct SerializationRegistry {
    by_type: FastMap<TypeId, Arc<dyn ErasedCodec>>,
    by_manifest: FastMap<String, Arc<dyn ErasedCodec>>,
}

impl SerializationRegistry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `T` under `manifest` with the [`Postcard`] serializer.
    ///
    /// # Errors
    ///
    /// Returns [`SerializationError::AlreadyRegistered`] when the type or manifest is taken.
    pub fn register<T>(&mut self, manifest: &str) -> Result<(), SerializationError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        self.register_with::<T, _>(manifest, Postcard)
    }

    /// Registers `T` under `manifest` with `serializer`.
    ///
    /// # Errors
    ///
    /// Returns [`SerializationError::AlreadyRegistered`] when the type or manifest is taken.
    pub fn register_with<T, S>(
        &mut self,
        manifest: &str,
        serializer: S,
    ) -> Result<(), SerializationError>
    where
        T: Send + 'static,
        S: Serializer<T>,
    {
        let type_id = TypeId::of::<T>();
        if self.by_type.contains_key(&type_id) || self.by_manifest.contains_key(manifest) {
            return Err(SerializationError::AlreadyRegistered {
                manifest: manifest.to_owned(),
                type_name: std::any::type_name::<T>(),
            });
        }
        let codec: Arc<dyn ErasedCodec> = Arc::new(Codec {
            manifest: manifest.to_owned(),
            serializer,
            marker: PhantomData::<fn() -> T>,
        });
        self.by_type.insert(type_id, codec.clone());
        self.by_manifest.insert(manifest.to_owned(), codec);
        Ok(())
    }

    /// Serializes `value` and returns its manifest and bytes.
    ///
    /// # Errors
    ///
    /// Returns [`SerializationError::NotRegistered`] naming the type when `T` has no
    /// registration, and [`SerializationError::Codec`] when the serializer fails.
    pub fn serialize<T: Send + 'static>(
        &self,
        value: &T,
    ) -> Result<(&str, Vec<u8>), SerializationError> {
        let codec =
            self.by_type
                .get(&TypeId::of::<T>())
                .ok_or(SerializationError::NotRegistered {
                    type_name: std::any::type_name::<T>(),
                })?;
        let bytes = codec
            .serialize(value)
            .map_err(|source| SerializationError::Codec {
                action: "serialize",
                manifest: codec.manifest().to_owned(),
                source,
            })?;
        Ok((codec.manifest(), bytes))
    }

    /// Serializes a boxed `value` of any registered type and returns its manifest and bytes.
    ///
    /// `type_name` names the type in the error when it is not registered.
    ///
    /// # Errors
    ///
    /// As [`SerializationRegistry::serialize`].
    pub fn serialize_any(
        &self,
        value: &(dyn Any + Send),
        type_name: &'static str,
    ) -> Result<(&str, Vec<u8>), SerializationError> {
        let codec = self
            .by_type
            .get(&value.type_id())
            .ok_or(SerializationError::NotRegistered { type_name })?;
        let bytes = codec
            .serialize(value)
            .map_err(|source| SerializationError::Codec {
                action: "serialize",
                manifest: codec.manifest().to_owned(),
                source,
            })?;
        Ok((codec.manifest(), bytes))
    }

    /// Serializes a boxed `value` of any registered type, appending its bytes to `out`, and
    /// returns its manifest.
    ///
    /// `type_name` names the type in the error when it is not registered.
    ///
    /// # Errors
    ///
    /// As [`SerializationRegistry::serialize`].
    pub fn serialize_any_into(
        &self,
        value: &(dyn Any + Send),
        type_name: &'static str,
        out: &mut Vec<u8>,
    ) -> Result<&str, SerializationError> {
        let codec = self
            .by_type
            .get(&value.type_id())
            .ok_or(SerializationError::NotRegistered { type_name })?;
        codec
            .serialize_into(value, out)
            .map_err(|source| SerializationError::Codec {
                action: "serialize",
                manifest: codec.manifest().to_owned(),
                source,
            })?;
        Ok(codec.manifest())
    }

    /// Returns the manifest registered for the type with id `type_id`.
    pub fn manifest_of(&self, type_id: TypeId) -> Option<&str> {
        self.by_type.get(&type_id).map(|codec| codec.manifest())
    }

    /// Returns the id of the type registered under `manifest`.
    pub fn type_of(&self, manifest: &str) -> Option<TypeId> {
        self.by_type
            .iter()
            .find(|(_, codec)| codec.manifest() == manifest)
            .map(|(type_id, _)| *type_id)
    }

    /// Deserializes `bytes` with the serializer registered for `manifest`.
    ///
    /// # Errors
    ///
    /// Returns [`SerializationError::UnknownManifest`] or [`SerializationError::Codec`].
    pub fn deserialize(
        &self,
        manifest: &str,
        bytes: &[u8],
    ) -> Result<AnyMessage, SerializationError> {
        let codec = self
            .by_manifest
            .get(manifest)
            .ok_or_else(|| SerializationError::UnknownManifest(manifest.to_owned()))?;
        codec
            .deserialize(bytes)
            .map_err(|source| SerializationError::Codec {
                action: "deserialize",
                manifest: manifest.to_owned(),
                source,
            })
    }

    /// Deserializes an inbound envelope from `peer`; on failure logs one warning naming the
    /// peer and manifest and returns `None`, so only this message is dropped.
    pub fn deserialize_inbound(
        &self,
        peer: &UniqueAddress,
        envelope: &UserEnvelope,
    ) -> Option<AnyMessage> {
        self.deserialize(&envelope.manifest, &envelope.payload)
            .map_err(|error| log_dropped(peer, envelope.recipient, &envelope.manifest, &error))
            .ok()
    }

    /// Deserializes an inbound message for `to`.
    ///
    /// When the recipient is an `ActorRef` of the type registered for `manifest`, the
    /// message goes to it with `tell` once decoded, without being boxed. On failure, logs one
    /// warning naming the peer and manifest and returns `None`, so only this message is
    /// dropped.
    pub(crate) fn deserialize_inbound_to(
        &self,
        to: &InboundRecipient<'_>,
        manifest: &str,
        payload: &[u8],
    ) -> Option<Decoded> {
        decode_inbound(self.by_manifest.get(manifest), to, manifest, payload)
    }

    /// Decodes `first` and the payloads `rest` yields, all of `manifest`, for `to`, as
    /// [`SerializationRegistry::deserialize_inbound_to`] does for each, with one lookup of
    /// the manifest. Each message that comes back boxed goes to `boxed`, and each that fails
    /// to decode is dropped with one warning.
    pub(crate) fn deserialize_inbound_run<'a>(
        &self,
        to: &InboundRecipient<'_>,
        manifest: &str,
        first: &[u8],
        rest: impl Iterator<Item = &'a [u8]>,
        mut boxed: impl FnMut(AnyMessage),
    ) {
        let codec = self.by_manifest.get(manifest);
        let mut decode = |payload: &[u8]| {
            if let Some(Decoded::Boxed(message)) = decode_inbound(codec, to, manifest, payload) {
                boxed(message);
            }
        };
        decode(first);
        rest.for_each(decode);
    }
}

/// The local actor an inbound message is for, with what decoding the message needs.
pub(crate) struct InboundRecipient<'a> {
    /// Incarnation that sent the message, named in the warning when it is dropped.
    pub(crate) peer: &'a UniqueAddress,
    /// Actor id the message names.
    pub(crate) id: u64,
    /// The exported ref of the actor, type-erased.
    pub(crate) actor: &'a (dyn Any + Send + Sync),
    /// Resolver installed for the actor refs inside the message.
    pub(crate) resolver: &'a Weak<dyn ActorRefResolver>,
}

/// Decodes `payload` with `codec`, the registry's entry for `manifest`, for `to`, or logs
/// one warning and returns `None` when there is no entry or decoding fails.
fn decode_inbound(
    codec: Option<&Arc<dyn ErasedCodec>>,
    to: &InboundRecipient<'_>,
    manifest: &str,
    payload: &[u8],
) -> Option<Decoded> {
    let decoded = match codec {
        Some(codec) => codec
            .deserialize_to(payload, to.actor, to.resolver)
            .map_err(|source| SerializationError::Codec {
                action: "deserialize",
                manifest: manifest.to_owned(),
                source,
            }),
        None => Err(SerializationError::UnknownManifest(manifest.to_owned())),
    };
    decoded
        .map_err(|error| log_dropped(to.peer, to.id, manifest, &error))
        .ok()
}

/// Logs the one warning for an inbound message that failed to decode and is dropped.
fn log_dropped(peer: &UniqueAddress, recipient: u64, manifest: &str, error: &SerializationError) {
    warn!(
        peer = %peer,
        manifest,
        recipient,
        %error,
        "dropped inbound message"
    );
}

/// A message decoded for a local recipient.
pub(crate) enum Decoded {
    /// The message went to the recipient's mailbox, because the recipient is an `ActorRef`
    /// of the registered type.
    Delivered,
    /// The message, for a recipient that is not an `ActorRef` of the registered type.
    Boxed(AnyMessage),
}

impl std::fmt::Debug for SerializationRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerializationRegistry")
            .field("manifests", &self.by_manifest.keys().collect::<Vec<_>>())
            .finish()
    }
}

trait ErasedCodec: Send + Sync {
    fn manifest(&self) -> &str;
    fn serialize(&self, value: &dyn Any) -> Result<Vec<u8>, BoxError>;
    fn serialize_into(&self, value: &dyn Any, out: &mut Vec<u8>) -> Result<(), BoxError>;
    fn deserialize(&self, bytes: &[u8]) -> Result<AnyMessage, BoxError>;
    fn deserialize_to(
        &self,
        bytes: &[u8],
        recipient: &(dyn Any + Send + Sync),
        resolver: &Weak<dyn ActorRefResolver>,
    ) -> Result<Decoded, BoxError>;
}

struct Codec<T, S> {
    manifest: String,
    serializer: S,
    marker: PhantomData<fn() -> T>,
}

impl<T: Send + 'static, S: Serializer<T>> ErasedCodec for Codec<T, S> {
    fn manifest(&self) -> &str {
        &self.manifest
    }

    fn serialize(&self, value: &dyn Any) -> Result<Vec<u8>, BoxError> {
        let value = value
            .downcast_ref::<T>()
            .ok_or("registry entry holds a different type")?;
        self.serializer.serialize(value)
    }

    fn serialize_into(&self, value: &dyn Any, out: &mut Vec<u8>) -> Result<(), BoxError> {
        let value = value
            .downcast_ref::<T>()
            .ok_or("registry entry holds a different type")?;
        self.serializer.serialize_into(value, out)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<AnyMessage, BoxError> {
        Ok(Box::new(self.serializer.deserialize(bytes)?))
    }

    fn deserialize_to(
        &self,
        bytes: &[u8],
        recipient: &(dyn Any + Send + Sync),
        resolver: &Weak<dyn ActorRefResolver>,
    ) -> Result<Decoded, BoxError> {
        // The resolver is installed while decoding only, because the recipient may be a
        // function ref whose function runs inside `tell`.
        let message = with_ref_resolver(resolver, || self.serializer.deserialize(bytes))?;
        match recipient.downcast_ref::<ActorRef<T>>() {
            Some(actor) => {
                actor.tell(message);
                Ok(Decoded::Delivered)
            }
            None => Ok(Decoded::Boxed(Box::new(message))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Greet {
        name: String,
        times: u32,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Unregistered;

    fn registry() -> SerializationRegistry {
        let mut registry = SerializationRegistry::new();
        registry.register::<Greet>("test.Greet").unwrap();
        registry
    }

    #[test]
    fn round_trips_registered_type() {
        let registry = registry();
        let greet = Greet {
            name: "ada".into(),
            times: 3,
        };
        let (manifest, bytes) = registry.serialize(&greet).unwrap();
        assert_eq!(manifest, "test.Greet");
        let decoded = registry.deserialize(manifest, &bytes).unwrap();
        assert_eq!(*decoded.downcast::<Greet>().unwrap(), greet);
    }

    #[test]
    fn unregistered_type_error_names_type() {
        let error = registry().serialize(&Unregistered).unwrap_err();
        assert!(matches!(error, SerializationError::NotRegistered { .. }));
        assert!(error.to_string().contains("Unregistered"), "{error}");
    }

    #[test]
    fn type_of_finds_registered_manifest() {
        let registry = registry();
        assert_eq!(registry.type_of("test.Greet"), Some(TypeId::of::<Greet>()));
        assert_eq!(registry.type_of("test.Missing"), None);
        assert_eq!(registry.type_of(""), None);
    }

    #[test]
    fn serialize_any_uses_dynamic_type() {
        let registry = registry();
        let greet: Box<dyn Any + Send> = Box::new(Greet {
            name: "bo".into(),
            times: 1,
        });
        let (manifest, bytes) = registry.serialize_any(&*greet, "Greet").unwrap();
        assert_eq!(manifest, "test.Greet");
        assert_eq!(
            registry.manifest_of(TypeId::of::<Greet>()),
            Some("test.Greet")
        );
        assert_eq!(registry.manifest_of(TypeId::of::<Unregistered>()), None);
        let decoded = registry.deserialize(manifest, &bytes).unwrap();
        assert_eq!(decoded.downcast::<Greet>().unwrap().name, "bo");
        let unregistered: Box<dyn Any + Send> = Box::new(Unregistered);
        assert!(matches!(
            registry.serialize_any(&*unregistered, "Unregistered"),
            Err(SerializationError::NotRegistered {
                type_name: "Unregistered"
            })
        ));
    }

    /// A serializer without its own `serialize_into`, so the provided method is used.
    struct Utf8;

    impl Serializer<String> for Utf8 {
        fn serialize(&self, value: &String) -> Result<Vec<u8>, BoxError> {
            Ok(value.clone().into_bytes())
        }

        fn deserialize(&self, bytes: &[u8]) -> Result<String, BoxError> {
            Ok(String::from_utf8(bytes.to_vec())?)
        }
    }

    #[test]
    fn serialize_any_into_appends_the_same_bytes() {
        let mut registry = registry();
        registry
            .register_with::<String, _>("test.Text", Utf8)
            .unwrap();
        let greet: Box<dyn Any + Send> = Box::new(Greet {
            name: "bo".into(),
            times: 7,
        });
        let text: Box<dyn Any + Send> = Box::new(String::from("hi"));
        let mut out = b"xy".to_vec();
        let manifest = registry
            .serialize_any_into(&*greet, "Greet", &mut out)
            .unwrap();
        assert_eq!(manifest, "test.Greet");
        let (_, expected) = registry.serialize_any(&*greet, "Greet").unwrap();
        assert_eq!(out[..2], *b"xy");
        assert_eq!(out[2..], expected[..]);
        out.clear();
        let manifest = registry
            .serialize_any_into(&*text, "String", &mut out)
            .unwrap();
        assert_eq!((manifest, out.as_slice()), ("test.Text", &b"hi"[..]));
        let unregistered: Box<dyn Any + Send> = Box::new(Unregistered);
        assert!(matches!(
            registry.serialize_any_into(&*unregistered, "Unregistered", &mut out),
            Err(SerializationError::NotRegistered { .. })
        ));
    }

    #[test]
    fn duplicate_registration_fails() {
        let mut registry = registry();
        assert!(registry.register::<Greet>("other").is_err());
        assert!(registry.register::<Unregistered>("test.Greet").is_err());
    }

    #[test]
    fn unknown_manifest_and_bad_payload_fail() {
        let registry = registry();
        assert!(matches!(
            registry.deserialize("nope", &[]),
            Err(SerializationError::UnknownManifest(m)) if m == "nope"
        ));
        assert!(matches!(
            registry.deserialize("test.Greet", &[0xff, 0xff, 0xff]),
            Err(SerializationError::Codec {
                action: "deserialize",
                ..
            })
        ));
    }

    /// Resolver for the test messages, which carry no actor refs and so never call it.
    struct NoRefs;

    impl ActorRefResolver for NoRefs {
        fn export(
            &self,
            _actor: akkord_actor::remote_support::ExportedRef,
        ) -> Result<akkord_actor::remote_support::SerializedActorRef, String> {
            Err("the test messages carry no actor refs".to_owned())
        }

        fn import(
            &self,
            _data: akkord_actor::remote_support::SerializedActorRef,
            _message_type: TypeId,
            _message_type_name: &'static str,
        ) -> Result<akkord_actor::remote_support::ImportedRef, String> {
            Err("the test messages carry no actor refs".to_owned())
        }
    }

    #[tokio::test]
    async fn inbound_message_delivered_or_boxed() {
        let registry = registry();
        let system = akkord_actor::ActorSystem::new("decode").unwrap();
        let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
        let greeter = ActorRef::from_fn(&system, "greeter", move |greet: Greet| {
            let _ = sender.send(greet);
        });
        let other = ActorRef::from_fn(&system, "other", |_: u64| {});
        let peer = UniqueAddress::new(
            akkord_actor::address::Address::new("decode", "127.0.0.1", 1).unwrap(),
            1,
        );
        let greet = Greet {
            name: "ada".to_owned(),
            times: 2,
        };
        let (manifest, bytes) = registry.serialize(&greet).unwrap();
        // Greet carries no actor ref, so the resolver is never used and a dropped one is enough.
        let resolver: Weak<dyn ActorRefResolver> = Weak::<NoRefs>::new();

        let to = |id, actor| InboundRecipient {
            peer: &peer,
            id,
            actor,
            resolver: &resolver,
        };
        let outcome = registry.deserialize_inbound_to(&to(7, &greeter), manifest, &bytes);
        assert!(matches!(outcome, Some(Decoded::Delivered)));
        let arrived = tokio::time::timeout(std::time::Duration::from_secs(5), received.recv())
            .await
            .expect("no message within 5 s");
        assert_eq!(arrived, Some(greet));

        let boxed = registry.deserialize_inbound_to(&to(8, &other), manifest, &bytes);
        let Some(Decoded::Boxed(message)) = boxed else {
            panic!("a message for a ref of another type was not returned boxed");
        };
        assert!(message.downcast::<Greet>().is_ok());

        let unknown = registry.deserialize_inbound_to(&to(7, &greeter), "nope", &bytes);
        assert!(unknown.is_none());
        let undecodable = registry.deserialize_inbound_to(&to(7, &greeter), manifest, &[0xff]);
        assert!(undecodable.is_none());
        system.terminate().await;
    }
}
