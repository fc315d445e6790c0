//! Assertions for scenarios whose failure messages name the seed and the virtual time.

use std::time::Duration;

use super::events::RecordedEvent;
use super::node::SimNode;
use super::seeds::SEED_ENV;
use super::simulator::Simulator;

impl<N: SimNode> Simulator<N> {
    /// Returns the seed and virtual time with the way to replay the run, for failure
    /// messages.
    pub fn context(&self) -> String {
        format!(
            "seed {seed}, virtual time {now:?}; replay with {SEED_ENV}={seed}",
            seed = self.seed,
            now = self.elapsed()
        )
    }

    /// Asserts `condition`, describing it as `what` in the failure message.
    ///
    /// # Panics
    ///
    /// Panics when `condition` is false, with `what`, the seed and the virtual time.
    #[track_caller]
    pub fn check(&self, condition: bool, what: &str) {
        assert!(condition, "check failed: {what} ({})", self.context());
    }

    /// Asserts that the node at `address` is alive and satisfies `predicate`.
    ///
    /// # Panics
    ///
    /// Panics when no live node has the address or `predicate` returns false, with `what`,
    /// the seed and the virtual time.
    #[track_caller]
    pub fn check_node(&self, address: &N::Address, what: &str, predicate: impl FnOnce(&N) -> bool) {
        let Some(node) = self.node(address) else {
            panic!(
                "check failed: {what}: no live node at {address:?} ({})",
                self.context()
            );
        };
        assert!(
            predicate(node),
            "check failed: {what} on {address:?} ({})",
            self.context()
        );
    }

    /// Runs until `predicate` holds, checking after every step, and returns the virtual time
    /// that took.
    ///
    /// # Panics
    ///
    /// Panics when the predicate does not hold within `within` of virtual time, with `what`,
    /// the seed and the virtual time.
    #[track_caller]
    pub fn expect_within(
        &mut self,
        within: Duration,
        what: &str,
        predicate: impl FnMut(&Simulator<N>) -> bool,
    ) -> Duration {
        match self.run_until(within, predicate) {
            Ok(took) => took,
            Err(timeout) => panic!("expected {what} within {within:?}: {timeout}"),
        }
    }

    /// Runs until an event matching `predicate` is in the log and returns a copy of the first
    /// such event. Events recorded before the call count too, and recording must be on, see
    /// [`EventLog::set_recording`](super::EventLog::set_recording).
    ///
    /// # Panics
    ///
    /// Panics when no such event is recorded within `within` of virtual time, with `what`,
    /// the seed and the virtual time.
    #[track_caller]
    pub fn expect_event_within(
        &mut self,
        within: Duration,
        what: &str,
        mut predicate: impl FnMut(&RecordedEvent<N::Address, N::Event>) -> bool,
    ) -> RecordedEvent<N::Address, N::Event> {
        // Each check only looks at events recorded since the previous one, so waiting stays
        // linear in the length of the log.
        let mut checked = 0;
        let mut found = None;
        let result = self.run_until(within, |sim| {
            let entries = sim.events().all();
            let start = checked.min(entries.len());
            checked = entries.len();
            if let Some(offset) = entries[start..].iter().position(&mut predicate) {
                found = Some(start + offset);
            }
            found.is_some()
        });
        match (result, found) {
            (Ok(_), Some(index)) => self.events().all()[index].clone(),
            (Err(timeout), _) => panic!("expected event {what} within {within:?}: {timeout}"),
            (Ok(_), None) => unreachable!("run_until returned Ok without the predicate holding"),
        }
    }
}
