//! Phi-accrual failure detector, sans-IO: heartbeat arrival times go in, a suspicion level
//! comes out.
//!
//! The detector keeps the intervals between recent heartbeats and models the next interval
//! as a normal distribution with their mean (plus an acceptable pause) and standard
//! deviation (at least a minimum). `phi = -log10(1 - F(t))`, with `F` that distribution's
//! cumulative distribution function and `t` the time since the last heartbeat, so phi 1
//! means a 10 % chance the peer is still alive and phi 10 about one in 10^10. The resource
//! counts as unavailable once phi exceeds the threshold.
//!
//! `F` uses a logistic approximation of the normal CDF, accurate to about 1e-4.
//!
//! NOTE: `akkord-cluster` has its own phi-accrual detector with the same model; one of
//! the two should go once the cluster crate can use this one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of a [`PhiAccrualDetector`].
#[derive(Clone, Debug, PartialEq)]
pub struct PhiSettings {
    /// Phi above which the resource counts as unavailable.
    pub threshold: f64,
    /// Number of intervals kept.
    pub max_sample_size: usize,
    /// Lower bound of the standard deviation, so a very regular history does not make
    /// the detector jump at the first late heartbeat.
    pub min_std_deviation: Duration,
    /// Pause added to the mean interval that does not raise suspicion.
    pub acceptable_heartbeat_pause: Duration,
    /// Interval assumed before the first one is measured; seeds the history.
    pub first_heartbeat_estimate: Duration,
}

impl PhiSettings {
    /// Defaults of Akka's remote death watch (`akka.remote.watch-failure-detector` in Akka
    /// 2.6 `reference.conf`): threshold 10, 200 samples, minimum deviation 100 ms,
    /// acceptable pause 10 s, first heartbeat estimate 1 s.
    pub fn remote_watch() -> Self {
        Self {
            threshold: 10.0,
            max_sample_size: 200,
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_secs(10),
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }
}

/// Phi-accrual failure detector of one monitored resource.
#[derive(Clone, Debug)]
pub struct PhiAccrualDetector {
    settings: PhiSettings,
    intervals: VecDeque<f64>,
    sum: f64,
    sum_of_squares: f64,
    last: Option<Instant>,
}

impl PhiAccrualDetector {
    /// Creates a detector that has seen no heartbeat yet.
    pub fn new(settings: PhiSettings) -> Self {
        Self {
            settings,
            intervals: VecDeque::new(),
            sum: 0.0,
            sum_of_squares: 0.0,
            last: None,
        }
    }

    /// Records a heartbeat that arrived at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        match self.last {
            None => {
                // Seed the history with two intervals around the estimate, so the first
                // deviation is a quarter of the estimate, as Akka does.
                let mean = self.settings.first_heartbeat_estimate.as_secs_f64() * 1000.0;
                let deviation = mean / 4.0;
                self.record(mean - deviation);
                self.record(mean + deviation);
            }
            Some(last) => {
                let interval = now.saturating_duration_since(last).as_secs_f64() * 1000.0;
                self.record(interval);
            }
        }
        self.last = Some(now);
    }

    /// Returns true when a heartbeat has been recorded.
    pub fn is_monitoring(&self) -> bool {
        self.last.is_some()
    }

    /// Returns phi at `now`; 0 before the first heartbeat.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(last).as_secs_f64() * 1000.0;
        let count = self.intervals.len() as f64;
        let mean = self.sum / count;
        let variance = (self.sum_of_squares / count - mean * mean).max(0.0);
        let min_deviation = self.settings.min_std_deviation.as_secs_f64() * 1000.0;
        let deviation = variance.sqrt().max(min_deviation);
        let mean = mean + self.settings.acceptable_heartbeat_pause.as_secs_f64() * 1000.0;
        phi(elapsed, mean, deviation)
    }

    /// Returns false once phi at `now` exceeds the threshold.
    pub fn is_available(&self, now: Instant) -> bool {
        self.phi(now) < self.settings.threshold
    }

    fn record(&mut self, interval: f64) {
        if self.intervals.len() >= self.settings.max_sample_size.max(1) {
            if let Some(oldest) = self.intervals.pop_front() {
                self.sum -= oldest;
                self.sum_of_squares -= oldest * oldest;
            }
        }
        self.intervals.push_back(interval);
        self.sum += interval;
        self.sum_of_squares += interval * interval;
    }
}

/// Phi of `elapsed` milliseconds for a normal distribution with `mean` and `deviation`.
fn phi(elapsed: f64, mean: f64, deviation: f64) -> f64 {
    let y = (elapsed - mean) / deviation;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if elapsed > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector_with_beats(start: Instant, count: u32, every: Duration) -> PhiAccrualDetector {
        let mut detector = PhiAccrualDetector::new(PhiSettings::remote_watch());
        for i in 0..count {
            detector.heartbeat(start + every * i);
        }
        detector
    }

    #[test]
    fn phi_is_zero_before_first_heartbeat() {
        let detector = PhiAccrualDetector::new(PhiSettings::remote_watch());
        assert_eq!(detector.phi(Instant::now()), 0.0);
        assert!(!detector.is_monitoring());
    }

    #[test]
    fn regular_heartbeats_keep_resource_available() {
        let start = Instant::now();
        let every = Duration::from_secs(1);
        let detector = detector_with_beats(start, 30, every);
        let last = start + every * 29;
        assert!(detector.is_available(last + Duration::from_secs(1)));
        assert!(detector.phi(last + Duration::from_secs(1)) < 1.0);
    }

    #[test]
    fn phi_grows_with_silence() {
        let start = Instant::now();
        let every = Duration::from_secs(1);
        let detector = detector_with_beats(start, 30, every);
        let last = start + every * 29;
        let mut previous = 0.0;
        for seconds in [2, 5, 10, 11, 12] {
            let value = detector.phi(last + Duration::from_secs(seconds));
            assert!(
                value >= previous,
                "phi {value} after {seconds} s fell below {previous}"
            );
            previous = value;
        }
    }

    #[test]
    fn remote_watch_defaults_detect_after_pause() {
        let start = Instant::now();
        let every = Duration::from_secs(1);
        let detector = detector_with_beats(start, 30, every);
        let last = start + every * 29;
        // Mean 1 s plus the 10 s acceptable pause: still available at 11 s, not at 12 s.
        assert!(detector.is_available(last + Duration::from_secs(11)));
        assert!(!detector.is_available(last + Duration::from_secs(12)));
    }

    #[test]
    fn history_is_bounded() {
        let start = Instant::now();
        let mut settings = PhiSettings::remote_watch();
        settings.max_sample_size = 5;
        let mut detector = PhiAccrualDetector::new(settings);
        for i in 0..50 {
            detector.heartbeat(start + Duration::from_secs(i));
        }
        assert_eq!(detector.intervals.len(), 5);
    }
}
