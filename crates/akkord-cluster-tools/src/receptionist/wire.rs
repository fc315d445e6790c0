//! Protobuf messages of the receptionist replication protocol, derived with `prost`.
//!
//! Field tags are part of the wire format: a tag never changes its meaning, and a removed
//! field leaves its tag unused, so nodes of two versions can run in one cluster.

use akkord_actor::remote_support::SerializedActorRef;
use prost::Message;

/// Manifest of the replication protocol on the remoting layer.
pub(crate) const RECEPTIONIST_PROTOCOL_MANIFEST: &str = "akkord.cluster.tools.Receptionist";

/// Frame of every replication message: exactly one payload.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ReplicationEnvelope {
    /// The message, or `None` when a newer peer sent a kind this version does not decode.
    #[prost(oneof = "Payload", tags = "1, 2, 3")]
    pub payload: Option<Payload>,
}

/// Message kinds of the replication protocol.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Payload {
    /// The sender's whole set of registrations at a version.
    #[prost(message, tag = "1")]
    Entries(EntriesData),
    /// The version of the sender's set, sent every gossip interval.
    #[prost(message, tag = "2")]
    Status(StatusData),
    /// Asks the receiver for its whole set.
    #[prost(message, tag = "3")]
    Request(RequestData),
}

/// The sender's registrations at `version`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EntriesData {
    /// Version of the set; it grows with every change on the sender's incarnation.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// The registrations.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryData>,
}

/// The version of the sender's set.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusData {
    /// Version of the sender's set.
    #[prost(uint64, tag = "1")]
    pub version: u64,
}

/// A request for the receiver's set.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RequestData {}

/// One registration: key name, message manifest and the encoded actor ref.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub(crate) struct EntryData {
    /// Name of the service key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Manifest of the message type the actor accepts.
    #[prost(string, tag = "2")]
    pub manifest: String,
    /// Actor system name of the hosting node.
    #[prost(string, tag = "3")]
    pub system: String,
    /// Host of the hosting node.
    #[prost(string, tag = "4")]
    pub host: String,
    /// Port of the hosting node; values above 65535 are invalid.
    #[prost(uint32, tag = "5")]
    pub port: u32,
    /// Incarnation uid of the hosting node.
    #[prost(uint64, tag = "6")]
    pub uid: u64,
    /// Actor id within the hosting incarnation.
    #[prost(uint64, tag = "7")]
    pub id: u64,
    /// Path for humans.
    #[prost(string, tag = "8")]
    pub path: String,
}

impl EntryData {
    /// Builds the entry of `actor` registered under the key named `key`.
    pub(crate) fn new(key: &str, actor: SerializedActorRef) -> Self {
        Self {
            key: key.to_owned(),
            manifest: actor.manifest,
            system: actor.system,
            host: actor.host,
            port: u32::from(actor.port),
            uid: actor.uid,
            id: actor.id,
            path: actor.path,
        }
    }

    /// Returns the encoded actor ref, or `None` when the port is out of range.
    pub(crate) fn actor(&self) -> Option<SerializedActorRef> {
        Some(SerializedActorRef {
            system: self.system.clone(),
            host: self.host.clone(),
            port: u16::try_from(self.port).ok()?,
            uid: self.uid,
            id: self.id,
            path: self.path.clone(),
            manifest: self.manifest.clone(),
        })
    }
}

/// A decoded replication message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationMessage {
    /// The sender's whole set at `version`, sorted.
    Entries {
        /// Version of the set.
        version: u64,
        /// The registrations.
        entries: Vec<EntryData>,
    },
    /// The version of the sender's set.
    Status {
        /// Version of the sender's set.
        version: u64,
    },
    /// Asks the receiver for its whole set.
    Request,
}

impl ReplicationMessage {
    /// Encodes the message as protobuf bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let payload = match self {
            ReplicationMessage::Entries { version, entries } => Payload::Entries(EntriesData {
                version: *version,
                entries: entries.clone(),
            }),
            ReplicationMessage::Status { version } => {
                Payload::Status(StatusData { version: *version })
            }
            ReplicationMessage::Request => Payload::Request(RequestData {}),
        };
        ReplicationEnvelope {
            payload: Some(payload),
        }
        .encode_to_vec()
    }

    /// Decodes protobuf bytes.
    ///
    /// # Errors
    ///
    /// Returns a description when the bytes are not a replication message or carry a
    /// message kind this version does not know.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let envelope = ReplicationEnvelope::decode(bytes).map_err(|error| error.to_string())?;
        match envelope.payload {
            Some(Payload::Entries(data)) => {
                let mut entries = data.entries;
                entries.sort();
                Ok(ReplicationMessage::Entries {
                    version: data.version,
                    entries,
                })
            }
            Some(Payload::Status(data)) => Ok(ReplicationMessage::Status {
                version: data.version,
            }),
            Some(Payload::Request(_)) => Ok(ReplicationMessage::Request),
            None => Err("unknown message kind".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry() -> impl Strategy<Value = EntryData> {
        (
            "[a-z]{0,8}",
            "[a-z.]{0,12}",
            "[a-z]{1,6}",
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(key, manifest, system, port, uid, id)| EntryData {
                key,
                manifest,
                system,
                host: "127.0.0.1".to_owned(),
                port: u32::from(port),
                uid,
                id,
                path: "/user/a".to_owned(),
            })
    }

    fn message() -> impl Strategy<Value = ReplicationMessage> {
        prop_oneof![
            (any::<u64>(), proptest::collection::vec(entry(), 0..5)).prop_map(
                |(version, mut entries)| {
                    entries.sort();
                    ReplicationMessage::Entries { version, entries }
                }
            ),
            any::<u64>().prop_map(|version| ReplicationMessage::Status { version }),
            Just(ReplicationMessage::Request),
        ]
    }

    proptest! {
        #[test]
        fn message_round_trips(message in message()) {
            let bytes = message.encode();
            prop_assert_eq!(ReplicationMessage::decode(&bytes), Ok(message));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ReplicationMessage::decode(&bytes);
        }
    }

    #[test]
    fn empty_envelope_rejected() {
        let bytes = ReplicationEnvelope { payload: None }.encode_to_vec();
        assert!(ReplicationMessage::decode(&bytes).is_err());
    }

    #[test]
    fn entry_port_out_of_range_rejected() {
        let mut data = EntryData::new(
            "key",
            SerializedActorRef {
                system: "s".to_owned(),
                host: "127.0.0.1".to_owned(),
                port: 2552,
                uid: 1,
                id: 2,
                path: "/user/a".to_owned(),
                manifest: "m".to_owned(),
            },
        );
        assert_eq!(data.actor().map(|actor| actor.port), Some(2552));
        data.port = 70_000;
        assert_eq!(data.actor(), None);
    }
}
