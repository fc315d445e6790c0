//! Running a randomized test over many seeds, and replaying one seed.

use std::fmt::Display;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};

use thiserror::Error;

/// Environment variable that makes [`run_seeds`] run only the seed it names.
pub const SEED_ENV: &str = "AKKORD_SIM_SEED";

/// A seed for which a test returned an error or panicked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "simulation failed with seed {seed} after {passed} passing seeds: {message}\nreplay only \
     this seed with {env}={seed}",
    env = SEED_ENV
)]
pub struct SeedFailure {
    /// The failing seed.
    pub seed: u64,
    /// The error the test returned or its panic message.
    pub message: String,
    /// Number of seeds that passed before this one.
    pub passed: u64,
}

/// Runs `test` once per seed in `seeds`, in order, and stops at the first failure.
///
/// When the environment variable [`SEED_ENV`] is set, only the seed it names runs.
///
/// A seed fails when `test` returns an error or panics. The run is bounded by the range
/// and ends by itself. Returns the number of seeds that ran.
///
/// # Panics
///
/// Panics with a message naming the failing seed and the command to replay it, and when
/// [`SEED_ENV`] is set to something other than a decimal `u64`.
///
/// # Examples
///
/// ```
/// use akkord_testkit::sim::run_seeds;
/// use rand::rngs::StdRng;
/// use rand::{Rng, SeedableRng};
///
/// let ran = run_seeds(0..20, |seed| {
///     let first: u64 = StdRng::seed_from_u64(seed).random();
///     let again: u64 = StdRng::seed_from_u64(seed).random();
///     if first == again {
///         Ok(())
///     } else {
///         Err(format!("seed {seed} gave {first} and then {again}"))
///     }
/// });
/// assert!(ran >= 1);
/// ```
pub fn run_seeds<E: Display>(seeds: Range<u64>, test: impl Fn(u64) -> Result<(), E>) -> u64 {
    let replay = replay_seed_from_env();
    if let Some(seed) = replay {
        eprintln!("running only seed {seed}, taken from {SEED_ENV}");
    }
    match run_seeds_with(seeds, replay, test) {
        Ok(ran) => ran,
        Err(failure) => panic!("{failure}"),
    }
}

/// Runs `test` once per seed in `seeds`, or only for `replay` when it is set, and stops at
/// the first failure; [`run_seeds`] without the environment.
///
/// Returns the number of seeds that ran.
///
/// # Errors
///
/// Returns [`SeedFailure`] for the first seed whose test returned an error or panicked.
pub fn run_seeds_with<E: Display>(
    seeds: Range<u64>,
    replay: Option<u64>,
    test: impl Fn(u64) -> Result<(), E>,
) -> Result<u64, SeedFailure> {
    let seeds = match replay {
        Some(seed) => seed..seed.saturating_add(1),
        None => seeds,
    };
    let mut passed = 0;
    for seed in seeds {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| test(seed)));
        let message = match outcome {
            Ok(Ok(())) => {
                passed += 1;
                continue;
            }
            Ok(Err(error)) => error.to_string(),
            Err(payload) => panic_message(payload.as_ref()),
        };
        return Err(SeedFailure {
            seed,
            message,
            passed,
        });
    }
    Ok(passed)
}

/// Returns the seed named by [`SEED_ENV`], or `None` when the variable is unset or empty.
///
/// # Panics
///
/// Panics when the variable is set to something other than a decimal `u64`.
pub fn replay_seed_from_env() -> Option<u64> {
    let value = std::env::var(SEED_ENV).ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match value.parse() {
        Ok(seed) => Some(seed),
        Err(_) => {
            panic!("{SEED_ENV}={value} is not a valid seed: set it to a decimal u64 or unset it")
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        format!("panicked: {message}")
    } else if let Some(message) = payload.downcast_ref::<String>() {
        format!("panicked: {message}")
    } else {
        "panicked with a payload that is not a string".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[test]
    fn runner_stops_at_the_first_failure() {
        let ran = RefCell::new(Vec::new());
        let failure = run_seeds_with(0..10, None, |seed| {
            ran.borrow_mut().push(seed);
            if seed == 4 {
                Err("value diverged")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(failure.seed, 4);
        assert_eq!(failure.passed, 4);
        assert_eq!(failure.message, "value diverged");
        assert_eq!(*ran.borrow(), vec![0, 1, 2, 3, 4]);
        let text = failure.to_string();
        assert!(text.contains("seed 4"), "{text}");
        assert!(text.contains("AKKORD_SIM_SEED=4"), "{text}");
    }

    #[test]
    fn runner_reports_a_panicking_seed() {
        let failure = run_seeds_with(0..5, None, |seed| {
            assert!(seed != 2, "invariant broken at {seed}");
            Ok::<(), String>(())
        })
        .unwrap_err();
        assert_eq!(failure.seed, 2);
        assert!(
            failure.message.contains("invariant broken at 2"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn replay_runs_only_that_seed() {
        let ran = RefCell::new(Vec::new());
        let count = run_seeds_with(0..100, Some(1234), |seed| {
            ran.borrow_mut().push(seed);
            Ok::<(), String>(())
        });
        assert_eq!(count, Ok(1));
        assert_eq!(*ran.borrow(), vec![1234]);
    }

    #[test]
    fn runner_counts_passing_seeds() {
        assert_eq!(run_seeds_with(3..8, None, |_| Ok::<(), String>(())), Ok(5));
    }
}
