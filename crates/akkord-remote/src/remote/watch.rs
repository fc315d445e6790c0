//! Failure detection of nodes that host watched actors, sans-IO.
//!
//! While a local watcher watches at least one actor on a node incarnation, this node sends
//! that incarnation a heartbeat request every [`WatchSettings::heartbeat_interval`] and feeds
//! the responses to a phi-accrual detector. When phi passes the threshold, every watched
//! actor of the incarnation counts as terminated and the incarnation is quarantined, so it
//! can never come back. Detection starts with the first response, or
//! [`WatchSettings::expected_response_after`] after the first request when none arrives, so
//! a node that never answers is detected too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;

use crate::phi::{PhiAccrualDetector, PhiSettings};
use crate::settings::{require_nonzero, InvalidSetting};

/// Settings of remote death watch, field by field. Defaults are Akka's
/// `akka.remote.watch-failure-detector` values.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchSettings {
    /// Time between heartbeat requests to a watched node, and between checks of the
    /// detectors. Default 1 s.
    pub heartbeat_interval: Duration,
    /// Time after the first heartbeat request after which detection starts even without a
    /// response. Default 1 s.
    pub expected_response_after: Duration,
    /// The phi-accrual detector. Default [`PhiSettings::remote_watch`]: threshold 10 and an
    /// acceptable pause of 10 s, so a crashed node counts as gone about 11 to 12 s after
    /// its last response. Lower the pause for faster detection at the cost of false
    /// positives during long garbage-collection-like stalls or network hiccups.
    pub detector: PhiSettings,
}

impl WatchSettings {
    /// Checks every field, the detector's included.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] naming the first field out of range: a zero
    /// `heartbeat_interval`, `expected_response_after`, minimum deviation or first
    /// heartbeat estimate, a threshold that is not a positive number, or a zero sample
    /// size.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let detector = &self.detector;
        let durations = [
            ("watch.heartbeat_interval", self.heartbeat_interval),
            (
                "watch.expected_response_after",
                self.expected_response_after,
            ),
            (
                "watch.detector.min_std_deviation",
                detector.min_std_deviation,
            ),
            (
                "watch.detector.first_heartbeat_estimate",
                detector.first_heartbeat_estimate,
            ),
        ];
        require_nonzero(&durations)?;
        if !(detector.threshold.is_finite() && detector.threshold > 0.0) {
            return Err(InvalidSetting::new(
                "watch.detector.threshold",
                detector.threshold,
                "expected a number greater than zero, for example 10",
            ));
        }
        if detector.max_sample_size == 0 {
            return Err(InvalidSetting::new(
                "watch.detector.max_sample_size",
                detector.max_sample_size,
                "expected at least 1, for example 200",
            ));
        }
        Ok(())
    }
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            expected_response_after: Duration::from_secs(1),
            detector: PhiSettings::remote_watch(),
        }
    }
}

/// Nodes with watched actors and their detectors.
#[derive(Debug)]
pub(crate) struct NodeWatch {
    settings: WatchSettings,
    nodes: HashMap<UniqueAddress, Watched>,
}

#[derive(Debug)]
struct Watched {
    /// Number of watched actors on the node.
    actors: usize,
    detector: PhiAccrualDetector,
    first_request: Option<Instant>,
}

/// Actions a tick requests from the shell.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TickOutput {
    /// Nodes to send a heartbeat request to.
    pub heartbeats: Vec<UniqueAddress>,
    /// Nodes the detector declared gone; they are no longer watched.
    pub unreachable: Vec<UniqueAddress>,
}

impl NodeWatch {
    pub(crate) fn new(settings: WatchSettings) -> Self {
        Self {
            settings,
            nodes: HashMap::new(),
        }
    }

    /// Returns the number of watched actors counted on `node`.
    #[cfg(test)]
    pub(crate) fn watched_actors(&self, node: &UniqueAddress) -> usize {
        self.nodes.get(node).map_or(0, |watched| watched.actors)
    }

    /// Counts one more watched actor on `node`.
    pub(crate) fn watch(&mut self, node: &UniqueAddress) {
        let detector = self.settings.detector.clone();
        self.nodes
            .entry(node.clone())
            .or_insert_with(|| Watched {
                actors: 0,
                detector: PhiAccrualDetector::new(detector),
                first_request: None,
            })
            .actors += 1;
    }

    /// Counts one watched actor less on `node`; stops watching the node at zero.
    pub(crate) fn unwatch(&mut self, node: &UniqueAddress) {
        if let Some(watched) = self.nodes.get_mut(node) {
            watched.actors = watched.actors.saturating_sub(1);
            if watched.actors == 0 {
                self.nodes.remove(node);
            }
        }
    }

    /// Stops watching `node`.
    pub(crate) fn remove(&mut self, node: &UniqueAddress) {
        self.nodes.remove(node);
    }

    /// Records a heartbeat response from `node` at `now`.
    pub(crate) fn heartbeat(&mut self, node: &UniqueAddress, now: Instant) {
        if let Some(watched) = self.nodes.get_mut(node) {
            watched.detector.heartbeat(now);
        }
    }

    /// Checks every detector at `now` and lists the heartbeats to send.
    pub(crate) fn tick(&mut self, now: Instant) -> TickOutput {
        let mut output = TickOutput::default();
        let expected_after = self.settings.expected_response_after;
        self.nodes.retain(|node, watched| {
            let first = *watched.first_request.get_or_insert(now);
            if !watched.detector.is_monitoring() && now >= first + expected_after {
                watched.detector.heartbeat(first + expected_after);
            }
            if watched.detector.is_monitoring() && !watched.detector.is_available(now) {
                output.unreachable.push(node.clone());
                return false;
            }
            output.heartbeats.push(node.clone());
            true
        });
        output
    }
}

#[cfg(test)]
mod tests {
    use akkord_actor::address::Address;

    use super::*;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(Address::new("test", "127.0.0.1", port).unwrap(), 7)
    }

    fn fast_settings() -> WatchSettings {
        let mut settings = WatchSettings::default();
        settings.detector.acceptable_heartbeat_pause = Duration::from_secs(2);
        settings
    }

    #[test]
    fn answering_node_stays_watched() {
        let mut watch = NodeWatch::new(fast_settings());
        let peer = node(1);
        watch.watch(&peer);
        let start = Instant::now();
        for second in 0..30 {
            let now = start + Duration::from_secs(second);
            let output = watch.tick(now);
            assert_eq!(output.heartbeats, vec![peer.clone()]);
            assert!(output.unreachable.is_empty(), "unreachable at {second} s");
            watch.heartbeat(&peer, now + Duration::from_millis(5));
        }
    }

    #[test]
    fn silent_node_is_declared_unreachable_once() {
        let mut watch = NodeWatch::new(fast_settings());
        let peer = node(1);
        watch.watch(&peer);
        let start = Instant::now();
        for second in 0..10 {
            let now = start + Duration::from_secs(second);
            watch.tick(now);
            watch.heartbeat(&peer, now);
        }
        let mut declared_at = None;
        for second in 10..30 {
            let output = watch.tick(start + Duration::from_secs(second));
            if !output.unreachable.is_empty() {
                assert_eq!(output.unreachable, vec![peer.clone()]);
                declared_at.get_or_insert(second);
            }
        }
        // Last response at 9 s, mean interval 1 s plus a 2 s pause: detected at 13 or 14 s.
        let declared_at = declared_at.expect("silent node never declared unreachable");
        assert!(
            (12..=14).contains(&declared_at),
            "declared at {declared_at} s"
        );
    }

    #[test]
    fn node_that_never_answers_is_detected() {
        let mut watch = NodeWatch::new(fast_settings());
        let peer = node(2);
        watch.watch(&peer);
        let start = Instant::now();
        let declared = (0..20).find(|second| {
            !watch
                .tick(start + Duration::from_secs(*second))
                .unreachable
                .is_empty()
        });
        assert!(declared.is_some(), "never declared unreachable");
    }

    #[test]
    fn unwatch_of_last_actor_stops_heartbeats() {
        let mut watch = NodeWatch::new(fast_settings());
        let peer = node(3);
        watch.watch(&peer);
        watch.watch(&peer);
        watch.unwatch(&peer);
        assert_eq!(watch.tick(Instant::now()).heartbeats.len(), 1);
        watch.unwatch(&peer);
        assert!(watch.tick(Instant::now()).heartbeats.is_empty());
    }
}
