//! akkord: an actor runtime with remoting and clustering.
//!
//! This facade re-exports the local runtime; the remoting and cluster layers join it as
//! they are completed.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use akkord_actor::*;

/// Compiles and runs the README's Rust examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
