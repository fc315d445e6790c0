//! Errors of decoding cluster messages.

use akkord_actor::address::{AddressError, UniqueAddress};

/// A received cluster message that cannot be decoded.
///
/// Every variant is caused by the sender: corrupt bytes, a newer protocol version that this
/// version cannot read, or a sender whose state breaks the invariants of the gossip state.
/// Decoding has no side effects, so the receiver drops the message and keeps its state.
/// Field names are protobuf field paths such as `gossip.members.address_index`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not a valid protobuf encoding of the message.
    #[error(
        "invalid protobuf encoding of a cluster message: {0}; the peer sent corrupt bytes or \
         a message of another protocol"
    )]
    Protobuf(#[from] prost::DecodeError),
    /// The envelope contains no message kind this version decodes.
    #[error(
        "cluster message of a kind this version does not know; the sender runs a newer \
         protocol version, so drop the message"
    )]
    UnknownKind,
    /// The message is of another kind than the caller decodes.
    #[error("expected a {expected} message but received a {actual} message")]
    UnexpectedKind {
        /// Kind the caller expected.
        expected: &'static str,
        /// Kind received.
        actual: &'static str,
    },
    /// A required field is missing, or contains a variant this version does not decode.
    #[error(
        "missing field {field}; the sender runs an incompatible version or sent a corrupt \
         message"
    )]
    MissingField {
        /// Path of the field.
        field: &'static str,
    },
    /// An incarnation has an invalid system name, host or port.
    #[error("invalid node address in {field}: {source}")]
    InvalidAddress {
        /// Path of the field.
        field: &'static str,
        /// The address error.
        source: AddressError,
    },
    /// An index does not point into its table.
    #[error("index {index} in {field} is out of range for a table of {len} entries")]
    IndexOutOfRange {
        /// Path of the field.
        field: &'static str,
        /// The index received.
        index: u32,
        /// Number of entries in the table.
        len: usize,
    },
    /// A status field contains a value this version does not decode, or none.
    #[error(
        "unknown status value {value} in {field}; the sender runs a newer protocol version or \
         sent a corrupt message"
    )]
    UnknownStatus {
        /// Path of the field.
        field: &'static str,
        /// The value received.
        value: i32,
    },
    /// A collection has more entries than the decoder accepts.
    #[error("{field} has {count} entries, more than the limit of {max}")]
    TooMany {
        /// Path of the field.
        field: &'static str,
        /// Number of entries received.
        count: usize,
        /// Maximum number of entries.
        max: usize,
    },
    /// A string is longer than the decoder accepts.
    #[error("{field} is {len} bytes long, more than the limit of {max} bytes")]
    StringTooLong {
        /// Path of the field.
        field: &'static str,
        /// Length received, in bytes.
        len: usize,
        /// Maximum length in bytes.
        max: usize,
    },
    /// A table, set or map lists one entry twice.
    #[error("{field} lists {entry} twice")]
    Duplicate {
        /// Path of the field.
        field: &'static str,
        /// The repeated entry, as text.
        entry: String,
    },
    /// A removed incarnation appears in a part of the state other than the tombstones.
    #[error(
        "{field} names the tombstoned incarnation {node}; a gossip state never names a \
         removed incarnation outside its tombstones, so the sender's state is corrupt"
    )]
    Tombstoned {
        /// Path of the field.
        field: &'static str,
        /// The removed incarnation.
        node: UniqueAddress,
    },
    /// A reachability record names a node that is not a member.
    #[error(
        "{field} names {node}, which is not a member; reachability records are about members \
         only, so the sender's state is corrupt"
    )]
    NotAMember {
        /// Path of the field.
        field: &'static str,
        /// The node named.
        node: UniqueAddress,
    },
}
