//! Waiting on a condition in real time, for tests that run real sockets or processes.

use std::time::{Duration, Instant};

/// Interval between two checks of the condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` every 50 ms until it is true.
///
/// # Panics
///
/// Panics with a message naming `what` when `condition` is still false after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_condition_holds() {
        let checks = AtomicUsize::new(0);
        wait_until("the third check", Duration::from_secs(5), || {
            checks.fetch_add(1, Ordering::Relaxed) == 2
        })
        .await;
        assert_eq!(checks.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 100ms waiting until never")]
    async fn panics_after_timeout() {
        wait_until("never", Duration::from_millis(100), || false).await;
    }
}
