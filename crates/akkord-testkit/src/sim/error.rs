//! Errors of the simulator.

use std::time::Duration;

use thiserror::Error;

use super::seeds::SEED_ENV;

/// A condition passed to [`Simulator::run_until`](super::Simulator::run_until) did not hold
/// within the given virtual time.
///
/// The simulator is left at the end of the wait, with its clock at `now`, and can go on
/// running.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "condition did not hold within {waited:?} of virtual time (seed {seed}, virtual time \
     {now:?}); replay with {env}={seed}",
    env = SEED_ENV
)]
pub struct SimTimeout {
    /// Seed of the simulator.
    pub seed: u64,
    /// Virtual time waited.
    pub waited: Duration,
    /// Virtual time since the start of the simulation when the wait ended.
    pub now: Duration,
}
