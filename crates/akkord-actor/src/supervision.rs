//! Supervisor strategies: what happens to an actor after a failure.
//!
//! A failure is a handler or hook that returned `Err` or panicked. The strategy is chosen per
//! child, by the parent, in [`Props::with_supervisor`](crate::Props::with_supervisor):
//!
//! - [`SupervisorStrategy::Stop`] (the default) stops the actor. A parent that watches it gets
//!   `ChildFailed`, and unless the parent handles that, the failure escalates to the parent.
//! - [`SupervisorStrategy::Resume`] drops the message that failed and keeps the state.
//! - [`SupervisorStrategy::Restart`] stops the children, calls `pre_restart` on the failed
//!   instance, and starts a fresh instance from the props factory. More than `max_restarts`
//!   failures within `within` stop the actor instead.
//! - [`SupervisorStrategy::Backoff`] restarts like `Restart`, but after a delay that doubles
//!   with each consecutive failure, from `min` up to `max`, with random jitter. Messages that
//!   arrive during the delay wait in the mailbox.

use std::time::Duration;

use rand::Rng;

/// What happens to an actor after a failure.
#[derive(Debug, Clone, PartialEq)]
pub enum SupervisorStrategy {
    /// Stop the actor; the default, as in Akka Typed.
    Stop,
    /// Drop the failed message and keep going with the current state.
    Resume,
    /// Replace the actor with a fresh instance.
    Restart(RestartLimit),
    /// Replace the actor with a fresh instance after a growing delay.
    Backoff(Backoff),
}

impl SupervisorStrategy {
    /// Restarts without limit.
    pub fn restart() -> Self {
        SupervisorStrategy::Restart(RestartLimit::unlimited())
    }

    /// Restarts at most `max_restarts` times within `within`; one more failure stops the
    /// actor.
    pub fn restart_with_limit(max_restarts: u32, within: Duration) -> Self {
        SupervisorStrategy::Restart(RestartLimit {
            max_restarts: Some(max_restarts),
            within,
        })
    }

    /// Restarts after a delay growing from `min` to `max`, jittered by `random_factor`.
    ///
    /// # Panics
    ///
    /// Panics when `min` is zero, `max` is less than `min`, or `random_factor` is negative or
    /// not finite; these are programming errors in the props.
    pub fn backoff(min: Duration, max: Duration, random_factor: f64) -> Self {
        SupervisorStrategy::Backoff(Backoff::new(min, max, random_factor))
    }
}

/// How many restarts are allowed within a time window.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartLimit {
    /// Maximum restarts within `within`; `None` means no limit.
    pub max_restarts: Option<u32>,
    /// Length of the window in which restarts are counted.
    pub within: Duration,
}

impl RestartLimit {
    /// No limit.
    pub fn unlimited() -> Self {
        Self {
            max_restarts: None,
            within: Duration::ZERO,
        }
    }
}

/// Restart with exponential backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub min: Duration,
    /// Upper bound of the delay, before jitter.
    pub max: Duration,
    /// Jitter: each delay is multiplied by a random factor from 1.0 to `1.0 + random_factor`.
    pub random_factor: f64,
    /// The delay starts again from `min` once the actor has run this long without failing.
    /// Defaults to `max`.
    pub reset_after: Duration,
    /// Stop instead of restarting after this many consecutive failures; `None` means never.
    pub max_restarts: Option<u32>,
}

impl Backoff {
    /// Creates a backoff from `min` to `max` with jitter `random_factor`.
    ///
    /// # Panics
    ///
    /// Panics when `min` is zero, `max` is less than `min`, or `random_factor` is negative or
    /// not finite.
    pub fn new(min: Duration, max: Duration, random_factor: f64) -> Self {
        assert!(!min.is_zero(), "backoff min must be greater than zero");
        assert!(
            max >= min,
            "backoff max ({max:?}) must not be less than min ({min:?})"
        );
        assert!(
            random_factor.is_finite() && random_factor >= 0.0,
            "backoff random_factor must be a finite number >= 0, got {random_factor}"
        );
        Self {
            min,
            max,
            random_factor,
            reset_after: max,
            max_restarts: None,
        }
    }

    /// Sets after how long without a failure the delay starts again from `min`.
    pub fn with_reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// Stops the actor after `max_restarts` consecutive failures.
    pub fn with_max_restarts(mut self, max_restarts: u32) -> Self {
        self.max_restarts = Some(max_restarts);
        self
    }

    /// Returns the delay before restart number `attempt` (0 for the first), with jitter.
    ///
    /// The delay before jitter is `min · 2^attempt`, capped at `max`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self
            .min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if self.random_factor > 0.0 {
            1.0 + rng.random_range(0.0..=self.random_factor)
        } else {
            1.0
        };
        base.mul_f64(jitter)
    }
}

impl From<Backoff> for SupervisorStrategy {
    fn from(backoff: Backoff) -> Self {
        SupervisorStrategy::Backoff(backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_up_to_max() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 0.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: Vec<_> = (0..6).map(|n| backoff.delay(n, &mut rng)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
    }

    #[test]
    fn backoff_jitter_stays_in_bounds() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 0.5);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let delay = backoff.delay(attempt, &mut rng);
            assert!(delay >= Duration::from_millis(100), "{delay:?}");
            assert!(delay <= Duration::from_millis(1500), "{delay:?}");
        }
    }

    #[test]
    #[should_panic(expected = "must not be less than min")]
    fn backoff_rejects_max_below_min() {
        Backoff::new(Duration::from_secs(2), Duration::from_secs(1), 0.1);
    }
}
