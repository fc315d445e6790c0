//! Cluster membership of akkord: gossip, failure detection and the split brain resolver.
//!
//! The protocol logic lives in sans-IO cores with no sockets, clocks or tasks inside.
//!
//! Membership modules:
//! - [`membership`]: the membership core (join, gossip, leader actions, events), driven by
//!   a shell or a simulator;
//! - [`gossip`]: the replicated state and its merge;
//! - [`convergence`]: convergence rules and leader election over a gossip state;
//! - [`reachability`]: the observer→subject unreachability table;
//! - [`vclock`]: vector clocks that version the gossip state;
//! - [`member`]: members and their status.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod convergence;
pub mod failure_detector;
pub mod gossip;
pub mod heartbeat;
pub mod lease;
pub mod member;
pub mod membership;
pub mod node;
pub mod reachability;
pub mod sbr;
pub mod shell;
pub mod vclock;
pub mod wire;
