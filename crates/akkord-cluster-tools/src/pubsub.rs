//! Distributed publish/subscribe by topic.
//!
//! A subscription to a topic is a registration in the cluster-wide receptionist under a
//! key derived from the topic name and the message type, so it replicates to every member
//! like any registration. [`DistributedPubSub::publish`] sends one copy of the message to
//! every subscriber the local receptionist lists for the topic: the local ones and those of
//! every reachable member. Subscribers on other nodes need the message type registered for
//! serialization on both nodes; otherwise the subscription stays local.
//!
//! Each copy is sent with `tell`, so delivery is at most once. A subscription made on
//! another node becomes visible here after replication: at once when the update arrives,
//! or about one gossip interval later when it was lost.

use akkord_actor::{ActorRef, ActorSystem, ServiceKey};
use akkord_cluster::shell::Cluster;
use akkord_remote::RemoteSystem;
use tracing::trace;

use crate::receptionist::{ClusterReceptionist, ClusterReceptionistSettings, ReceptionistError};

/// Prefix of the service keys that hold topic subscriptions.
const TOPIC_KEY_PREFIX: &str = "akkord.pubsub/";

/// Failure of [`DistributedPubSub::start`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PubSubError {
    /// The cluster receptionist that carries subscriptions could not start.
    #[error("failed to start the cluster receptionist for pub/sub: {0}")]
    Receptionist(#[from] ReceptionistError),
}

/// Handle of distributed publish/subscribe on one node; cheap to clone.
#[derive(Clone, Debug)]
pub struct DistributedPubSub {
    system: ActorSystem,
}

impl DistributedPubSub {
    /// Starts pub/sub on this node, starting the [`ClusterReceptionist`] with default
    /// settings unless one already runs.
    ///
    /// # Errors
    ///
    /// [`PubSubError::Receptionist`] when the receptionist cannot start for another reason
    /// than already running.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start(
        system: &ActorSystem,
        remote: &RemoteSystem,
        cluster: &Cluster,
    ) -> Result<Self, PubSubError> {
        match ClusterReceptionist::start(
            system,
            remote,
            cluster,
            ClusterReceptionistSettings::default(),
        ) {
            Ok(_) | Err(ReceptionistError::AlreadyStarted) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(Self {
            system: system.clone(),
        })
    }

    /// Subscribes `subscriber` to messages of type `M` published to `topic`; subscribing
    /// again has no further effect. The subscription ends when the subscriber stops.
    pub fn subscribe<M: Send + 'static>(&self, topic: &str, subscriber: &ActorRef<M>) {
        self.system
            .receptionist()
            .register(&topic_key::<M>(topic), subscriber);
    }

    /// Ends the subscription of `subscriber` to `topic`.
    pub fn unsubscribe<M: Send + 'static>(&self, topic: &str, subscriber: &ActorRef<M>) {
        self.system
            .receptionist()
            .deregister(&topic_key::<M>(topic), subscriber);
    }

    /// Returns the subscribers of `topic` for type `M` listed on this node now: the local
    /// ones, then those of other reachable members.
    pub fn subscribers<M: Send + 'static>(&self, topic: &str) -> Vec<ActorRef<M>> {
        self.system
            .receptionist()
            .find(&topic_key::<M>(topic))
            .services
    }

    /// Sends a copy of `message` to every subscriber of `topic` for type `M` in the
    /// cluster, as listed on this node now. Returns the number of subscribers sent to.
    pub fn publish<M: Clone + Send + 'static>(&self, topic: &str, message: M) -> usize {
        let subscribers = self.subscribers::<M>(topic);
        trace!(topic, subscribers = subscribers.len(), "publishing");
        for subscriber in &subscribers {
            subscriber.tell(message.clone());
        }
        subscribers.len()
    }
}

fn topic_key<M>(topic: &str) -> ServiceKey<M> {
    ServiceKey::new(format!("{TOPIC_KEY_PREFIX}{topic}"))
}
