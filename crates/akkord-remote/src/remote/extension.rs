//! Hooks for layers above remoting, such as cluster membership: extra protocols carried
//! by the transport, and declaring a node incarnation gone.
//!
//! An extension protocol is a manifest with a handler. Its messages travel as
//! [`UserEnvelope`]s to actor id 0, like lookups, on the lane the sender picks; they are
//! neither acknowledged nor resent, so the protocol must tolerate loss. The handler runs on
//! the connection task that read the message, so it must return quickly, for example by
//! queueing the payload for its own task.

use std::collections::HashMap;
use std::sync::Arc;

use akkord_actor::address::UniqueAddress;
use bytes::Bytes;

use super::protocol::PROTOCOL_RECIPIENT;
use super::RemoteSystem;
use crate::transport::{lock, Destination, SendError};
use crate::wire::UserEnvelope;
use crate::Lane;

/// Receives the payload of an extension protocol message and the incarnation it came
/// from.
pub type ProtocolHandler = Arc<dyn Fn(&UniqueAddress, Bytes) + Send + Sync>;

/// Failure of [`RemoteSystem::register_protocol`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterProtocolError {
    /// The manifest is taken by remoting itself or by another registered protocol.
    #[error("protocol manifest {0:?} is already in use: choose another manifest")]
    ManifestTaken(String),
}

/// Registered extension protocols by manifest.
pub(crate) type ProtocolHandlers = HashMap<String, ProtocolHandler>;

impl RemoteSystem {
    /// Registers `handler` for inbound protocol messages with `manifest`.
    ///
    /// # Errors
    ///
    /// Returns [`RegisterProtocolError::ManifestTaken`] when remoting uses the manifest
    /// itself (names starting with `akkord.remote.`) or another handler has it.
    pub fn register_protocol(
        &self,
        manifest: &str,
        handler: ProtocolHandler,
    ) -> Result<(), RegisterProtocolError> {
        if manifest.starts_with("akkord.remote.") {
            return Err(RegisterProtocolError::ManifestTaken(manifest.to_owned()));
        }
        let mut handlers = lock(&self.core.protocol_handlers);
        if handlers.contains_key(manifest) {
            return Err(RegisterProtocolError::ManifestTaken(manifest.to_owned()));
        }
        handlers.insert(manifest.to_owned(), handler);
        Ok(())
    }

    /// Sends one message of an extension protocol to `to` on `lane`, without
    /// acknowledgement or resend.
    ///
    /// # Errors
    ///
    /// Returns [`SendError`] when the message was not queued, as [`crate::Transport::send`].
    pub fn send_protocol(
        &self,
        to: &Destination,
        lane: Lane,
        manifest: &str,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let envelope = UserEnvelope {
            recipient: PROTOCOL_RECIPIENT,
            sender: None,
            manifest: manifest.to_owned(),
            payload,
        };
        self.transport.send(to, lane, &envelope)
    }

    /// Hands failure detection of the nodes for which `owns` returns true to the caller:
    /// remote death watch no longer declares them gone when their heartbeats stop, and the
    /// caller declares them gone with [`RemoteSystem::declare_node_gone`]. A cluster
    /// calls this for its members, whose fate its own failure detector and split brain
    /// resolver decide. A later call replaces the earlier one.
    pub fn set_failure_detection_owner(
        &self,
        owns: impl Fn(&UniqueAddress) -> bool + Send + Sync + 'static,
    ) {
        *lock(&self.core.detection_owner) = Some(Arc::new(owns));
    }

    /// Treats incarnation `node` as gone, as when it is quarantined: local watchers of its
    /// actors get `Terminated`, its watches of local actors end, and refs to its actors
    /// lead to dead letters from now on. A cluster calls this when it downs or removes a
    /// member. Repeated calls for one incarnation do nothing.
    pub fn declare_node_gone(&self, node: &UniqueAddress, reason: &str) {
        self.core.node_gone(node, reason);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use akkord_actor::ActorSystem;

    use super::*;
    use crate::remote::RemoteSystemSettings;
    use crate::serialization::SerializationRegistry;

    async fn bind() -> RemoteSystem {
        let system = ActorSystem::new("ext").unwrap();
        RemoteSystem::bind(
            system,
            RemoteSystemSettings::new("ext"),
            SerializationRegistry::new(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn protocol_message_reaches_handler() {
        let a = bind().await;
        let b = bind().await;
        let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
        let handler: ProtocolHandler = Arc::new(move |from: &UniqueAddress, payload: Bytes| {
            let _ = sender.send((from.clone(), payload));
        });
        b.register_protocol("test.Ping", handler).unwrap();
        let to = Destination::Address(b.local_address().address.clone());
        a.send_protocol(&to, Lane::Control, "test.Ping", Bytes::from_static(b"hi"))
            .unwrap();
        let (from, payload) = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&from, a.local_address());
        assert_eq!(&payload[..], b"hi");
        a.shutdown().await;
        b.shutdown().await;
    }

    #[tokio::test]
    async fn reserved_manifest_rejected() {
        let a = bind().await;
        let handler: ProtocolHandler = Arc::new(|_: &UniqueAddress, _: Bytes| {});
        assert_eq!(
            a.register_protocol("akkord.remote.Watch", handler.clone()),
            Err(RegisterProtocolError::ManifestTaken(
                "akkord.remote.Watch".to_owned()
            ))
        );
        a.register_protocol("test.Once", handler.clone()).unwrap();
        assert!(a.register_protocol("test.Once", handler).is_err());
        a.shutdown().await;
    }
}
