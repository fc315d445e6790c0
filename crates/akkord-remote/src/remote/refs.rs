//! Encoding actor refs outside a message, for layers that replicate refs in their own
//! protocol, such as a cluster-wide receptionist.
//!
//! An encoded ref is the same [`SerializedActorRef`] that travels inside serde messages, so
//! it names the node incarnation, the actor id, a path and the manifest of the message type
//! the actor accepts. Encoding a local ref exports it, so that messages sent to the decoded
//! ref on another node reach it.

use std::any::TypeId;

use akkord_actor::remote_support::{
    ActorRefResolver, ExportedRef, ImportedRef, SerializedActorRef,
};
use akkord_actor::ActorRef;

use super::RemoteSystem;

/// Failure to encode or decode an actor ref.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefCodecError {
    /// The message type of the ref has no manifest in this node's registry, so another
    /// node could not tell which type the actor accepts.
    #[error(
        "message type {type_name} is not registered: register it to encode refs that accept it"
    )]
    NotRegistered {
        /// Rust name of the message type.
        type_name: &'static str,
    },
    /// The encoded ref names a manifest that this node's registry does not know.
    #[error(
        "unknown manifest {0:?} in an encoded actor ref: register the message type on this node"
    )]
    UnknownManifest(String),
    /// The ref cannot be encoded, for example because it points at an external target that
    /// is not a remote actor, or this remote system is not bound.
    #[error("failed to encode actor ref: {0}")]
    Encode(String),
    /// The encoded ref is invalid or accepts another message type than requested.
    #[error("failed to decode actor ref: {0}")]
    Decode(String),
}

/// An actor ref decoded without a static message type.
pub struct DecodedRef {
    /// Type of the messages the actor accepts, found from the manifest.
    pub message_type: TypeId,
    /// Manifest of that type.
    pub manifest: String,
    /// The ref: the typed local ref when it points at this node, an external target
    /// otherwise.
    pub target: ImportedRef,
}

impl RemoteSystem {
    /// Encodes `actor` so that another node can decode it into a ref to the same actor.
    ///
    /// # Errors
    ///
    /// [`RefCodecError::NotRegistered`] when `M` has no manifest in the registry,
    /// [`RefCodecError::Encode`] when the ref cannot be exported.
    pub fn encode_ref<M: Send + 'static>(
        &self,
        actor: &ActorRef<M>,
    ) -> Result<SerializedActorRef, RefCodecError> {
        self.encode_exported_ref(ExportedRef::new(actor))
    }

    /// Returns the manifest under which `M` is registered for serialization, `None` when it
    /// is not registered, so layers above can reject such a type before any message is sent.
    pub fn manifest_of<M: 'static>(&self) -> Option<&str> {
        self.core.registry.manifest_of(std::any::TypeId::of::<M>())
    }

    /// Encodes a type-erased ref, as returned by the receptionist's local services.
    ///
    /// # Errors
    ///
    /// As [`RemoteSystem::encode_ref`].
    pub fn encode_exported_ref(
        &self,
        actor: ExportedRef,
    ) -> Result<SerializedActorRef, RefCodecError> {
        if self.core.registry.manifest_of(actor.message_type).is_none() {
            return Err(RefCodecError::NotRegistered {
                type_name: actor.message_type_name,
            });
        }
        self.core.export(actor).map_err(RefCodecError::Encode)
    }

    /// Decodes `data` into a ref that accepts messages of type `M`.
    ///
    /// # Errors
    ///
    /// [`RefCodecError::Decode`] when the data is invalid or the actor accepts another
    /// type.
    pub fn decode_ref<M: Send + 'static>(
        &self,
        data: SerializedActorRef,
    ) -> Result<ActorRef<M>, RefCodecError> {
        let type_name = std::any::type_name::<M>();
        match self
            .core
            .import(data, TypeId::of::<M>(), type_name)
            .map_err(RefCodecError::Decode)?
        {
            ImportedRef::Local(typed) => {
                typed.downcast_ref::<ActorRef<M>>().cloned().ok_or_else(|| {
                    RefCodecError::Decode(format!(
                        "actor ref points at a local actor that does not accept {type_name}"
                    ))
                })
            }
            ImportedRef::External(external) => Ok(ActorRef::from_external(external)),
        }
    }

    /// Decodes `data` into a ref whose message type is the one registered for its
    /// manifest.
    ///
    /// # Errors
    ///
    /// [`RefCodecError::UnknownManifest`] when the manifest is empty or not registered here,
    /// [`RefCodecError::Decode`] when the data is invalid.
    pub fn decode_untyped_ref(
        &self,
        data: SerializedActorRef,
    ) -> Result<DecodedRef, RefCodecError> {
        let manifest = data.manifest.clone();
        let message_type = self
            .core
            .registry
            .type_of(&manifest)
            .ok_or_else(|| RefCodecError::UnknownManifest(manifest.clone()))?;
        let target = self
            .core
            .import(data, message_type, "the type registered for the manifest")
            .map_err(RefCodecError::Decode)?;
        Ok(DecodedRef {
            message_type,
            manifest,
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use akkord_actor::ActorSystem;

    use akkord_actor::remote_support::SerializedActorRefView;

    use super::*;
    use crate::remote::RemoteSystemSettings;
    use crate::serialization::SerializationRegistry;

    async fn bind() -> RemoteSystem {
        let system = ActorSystem::new("refs").unwrap();
        let mut registry = SerializationRegistry::new();
        registry.register::<String>("test.Text").unwrap();
        RemoteSystem::bind(system, RemoteSystemSettings::new("refs"), registry)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn encoded_ref_reaches_actor_from_other_node() {
        let a = bind().await;
        let b = bind().await;
        let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
        let printer = ActorRef::from_fn(a.system(), "printer", move |text: String| {
            let _ = sender.send(text);
        });
        let data = a.encode_ref(&printer).unwrap();
        assert_eq!(data.manifest, "test.Text");
        assert_eq!(data.uid, a.local_address().uid);

        let typed: ActorRef<String> = b.decode_ref(data.clone()).unwrap();
        typed.tell("typed".to_owned());
        let untyped = b.decode_untyped_ref(data).unwrap();
        assert_eq!(untyped.message_type, TypeId::of::<String>());
        assert_eq!(untyped.manifest, "test.Text");
        let ImportedRef::External(target) = untyped.target else {
            panic!("a ref to another node decoded as a local ref");
        };
        ActorRef::<String>::from_external(target).tell("untyped".to_owned());

        for expected in ["typed", "untyped"] {
            let text = tokio::time::timeout(Duration::from_secs(5), received.recv())
                .await
                .expect("no message within 5 s")
                .unwrap();
            assert_eq!(text, expected);
        }
        a.shutdown().await;
        b.shutdown().await;
    }

    #[tokio::test]
    async fn remote_ref_decodes_to_shared_target() {
        let a = bind().await;
        let b = bind().await;
        let printer = ActorRef::from_fn(a.system(), "printer", |_: String| {});
        let data = a.encode_ref(&printer).unwrap();
        let first: ActorRef<String> = b.decode_ref(data.clone()).unwrap();
        let second: ActorRef<String> = b.decode_ref(data.clone()).unwrap();
        assert_eq!(first, second);

        // The same actor id on another incarnation is another actor.
        let mut restarted = data;
        restarted.uid = restarted.uid.wrapping_add(1);
        let other: ActorRef<String> = b.decode_ref(restarted).unwrap();
        assert_ne!(other, first);
        a.shutdown().await;
        b.shutdown().await;
    }

    proptest::proptest! {
        #[test]
        fn view_encodes_as_owned_ref(
            system in ".{0,12}",
            host in ".{0,12}",
            port: u16,
            uid: u64,
            id: u64,
            path in ".{0,24}",
            manifest in ".{0,12}",
        ) {
            let data = SerializedActorRef { system, host, port, uid, id, path, manifest };
            let bytes = postcard::to_allocvec(&data).unwrap();
            proptest::prop_assert_eq!(&postcard::to_allocvec(&data.view()).unwrap(), &bytes);

            let view: SerializedActorRefView<'_> = postcard::from_bytes(&bytes).unwrap();
            proptest::prop_assert!(matches!(view.path, std::borrow::Cow::Borrowed(_)));
            proptest::prop_assert_eq!(view.into_owned(), data);
        }
    }

    #[tokio::test]
    async fn own_ref_decodes_to_local_ref() {
        let a = bind().await;
        let printer = ActorRef::from_fn(a.system(), "printer", |_: String| {});
        let data = a.encode_ref(&printer).unwrap();
        assert_eq!(a.decode_ref::<String>(data.clone()).unwrap(), printer);
        assert!(matches!(
            a.decode_ref::<u64>(data),
            Err(RefCodecError::Decode(_))
        ));
        a.shutdown().await;
    }

    #[tokio::test]
    async fn unregistered_type_and_manifest_rejected() {
        let a = bind().await;
        let counter = ActorRef::from_fn(a.system(), "counter", |_: u64| {});
        assert_eq!(
            a.encode_ref(&counter),
            Err(RefCodecError::NotRegistered { type_name: "u64" })
        );
        let printer = ActorRef::from_fn(a.system(), "printer", |_: String| {});
        let mut data = a.encode_ref(&printer).unwrap();
        data.manifest = "test.Unknown".to_owned();
        assert!(matches!(
            a.decode_untyped_ref(data),
            Err(RefCodecError::UnknownManifest(manifest)) if manifest == "test.Unknown"
        ));
        a.shutdown().await;
    }
}
