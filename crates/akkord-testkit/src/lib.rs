//! Test support for akkord: probes for actor tests and a deterministic network simulator.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod probe;
pub mod sim;
pub mod time;
pub mod wait;

pub use probe::TestProbe;
pub use wait::wait_until;
