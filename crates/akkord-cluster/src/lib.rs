//! Cluster membership of akkord: gossip, failure detection and the split brain resolver.
//!
//! The protocol logic lives in sans-IO cores with no sockets, clocks or tasks inside.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod member;
