//! The virtual clock of the simulator.

use std::time::{Duration, Instant};

/// Virtual time: a base [`Instant`] captured once plus a virtual elapsed [`Duration`].
///
/// Only the elapsed part changes, and only forward, so every instant handed to a node is
/// `base + elapsed` and no run depends on the wall clock after the base was captured.
#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    base: Instant,
    elapsed: Duration,
}

impl VirtualClock {
    /// Creates a clock at elapsed time zero, with the current wall-clock instant as its base.
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }

    /// Returns the base instant, which corresponds to virtual time zero.
    pub(crate) fn base(&self) -> Instant {
        self.base
    }

    /// Returns the virtual time elapsed since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Returns the current virtual instant.
    pub(crate) fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Moves the clock to `to` when that is later than now; an earlier time leaves it as is.
    pub(crate) fn advance_to(&mut self, to: Duration) {
        if to > self.elapsed {
            self.elapsed = to;
        }
    }

    /// Converts `instant` to virtual elapsed time, mapping past instants to now.
    pub(crate) fn elapsed_at(&self, instant: Instant) -> Duration {
        instant
            .saturating_duration_since(self.base)
            .max(self.elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_never_moves_backwards() {
        let mut clock = VirtualClock::new();
        clock.advance_to(Duration::from_secs(5));
        clock.advance_to(Duration::from_secs(2));
        assert_eq!(clock.elapsed(), Duration::from_secs(5));
        assert_eq!(clock.now(), clock.base() + Duration::from_secs(5));
    }

    #[test]
    fn past_instants_map_to_now() {
        let mut clock = VirtualClock::new();
        clock.advance_to(Duration::from_secs(3));
        let past = clock.base() + Duration::from_secs(1);
        let future = clock.base() + Duration::from_secs(7);
        assert_eq!(clock.elapsed_at(past), Duration::from_secs(3));
        assert_eq!(clock.elapsed_at(future), Duration::from_secs(7));
    }
}
