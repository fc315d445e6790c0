//! Helpers for tests on tokio's paused clock.
//!
//! Run the test with `#[tokio::test(start_paused = true)]` (current-thread runtime). Timers
//! then fire in virtual time: when every task is idle, tokio advances the clock to the next
//! timer at once, so a test of a 10-second timeout takes no real time.

use std::time::Duration;

/// Moves the paused clock forward by `duration`, running every timer that falls due.
///
/// # Panics
///
/// Panics when the clock is not paused.
pub async fn advance(duration: Duration) {
    tokio::time::advance(duration).await;
}

/// Lets every ready task run until all are idle, without moving the clock.
pub async fn settle() {
    // Each yield lets the scheduler run other ready tasks once; a bounded number of rounds
    // covers chains of actors passing messages on.
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// Returns the time on tokio's clock, paused or not.
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}
