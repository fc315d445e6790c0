//! Remoting of akkord: the wire protocol, framing, handshake and TCP transport between
//! nodes, system-message redelivery and the serialization registry.
//!
//! The transport keeps one association per remote node address, for the incarnation that
//! lives there. It has three lanes over separate TCP connections: control (system
//! messages, acknowledgements, heartbeats), ordinary and large. Every connection starts
//! with a handshake that checks the protocol version, the system name, an optional shared
//! secret and the incarnations on both ends. The node that opens a connection also reads
//! what the peer writes back on it. So a peer without a connection of its own on a lane
//! sends its replies on the one this node opened. An association whose incarnation was
//! quarantined is removed an hour later, with its tasks and connections, unless a newer
//! incarnation at the address is in use ([`RemoteSettings::remove_quarantined_after`]).
//!
//! On top of the transport, [`RemoteSystem`] gives location transparency: an
//! [`ActorRef`](akkord_actor::ActorRef) to an actor on another node is used like a local one,
//! including refs inside messages, ask and death watch (see [`remote`]).
//!
//! # Who can connect
//!
//! Without a shared secret ([`RemoteSettings::secret`]) or TLS ([`RemoteSettings::tls`]),
//! any process that reaches the listener and gives the system name is a peer. It can send
//! messages to every exposed actor, and to any other exported ref whose id it guesses (ids
//! are sequential). It names its own address in the handshake. Acknowledgements and
//! replies go back on the connection it opened, and this node dials the named address
//! when that connection is gone or the peer did not offer it. So such a process can also
//! claim another node's address, and receive what this node sends to that node while it
//! has no connection of its own there. The listener
//! binds loopback by default. A node reachable from other machines should bind a private
//! interface and set a secret, or TLS where the network itself is not trusted.
//!
//! Where several nodes share a machine, give each a tokio runtime with as many worker
//! threads as it has cores to itself. On two cores shared by two nodes, one worker per node
//! carried about 1.4 times the one-way rate, and twice the rate of 64 concurrent askers, of
//! the default of one worker per core in each (`docs/benchmarks.md`, "A read drained by the
//! reading task").

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod frame;
pub mod fuzzing;
pub mod handshake;
pub mod phi;
pub mod redelivery;
pub mod remote;
pub mod serialization;
pub mod settings;
pub mod tls;
pub mod transport;
pub mod wire;

pub use frame::Lane;
pub use remote::{RemoteSystem, RemoteSystemSettings};
pub use settings::RemoteSettings;
pub use transport::{Destination, InboundHandler, SendError, Transport, TransportEvent};
