//! akkord: an actor runtime with remoting and clustering.
//!
//! This facade re-exports the local runtime at its root and each layer above it as a
//! module: [`remote`] (transport, serialization, remote actor refs), [`cluster`]
//! (membership, failure detection, split brain resolver), [`cluster_tools`] (singleton,
//! cluster-wide receptionist, pub/sub, group router) and [`management`] (HTTP endpoints).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use akkord_actor::*;
pub use akkord_cluster as cluster;
pub use akkord_cluster_tools as cluster_tools;
pub use akkord_management as management;
pub use akkord_remote as remote;

/// Compiles and runs the README's Rust examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
