//! Deterministic network simulator for sans-IO protocol cores.

mod node;

pub use node::{Outputs, SimNode};
