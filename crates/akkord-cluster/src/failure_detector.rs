//! Phi accrual failure detector.
//!
//! The detector turns the arrival times of heartbeats from one subject into a suspicion
//! level `phi` instead of a boolean. It keeps the intervals between heartbeats, fits a
//! normal distribution to them and, at time `now`, returns
//!
//! ```text
//! phi = -log10(1 - F(now - last_heartbeat))
//! ```
//!
//! where `F` is the cumulative distribution function of a normal distribution with
//!
//! - mean = mean of the recorded intervals + `acceptable_heartbeat_pause`, and
//! - standard deviation = max(standard deviation of the intervals, `min_std_deviation`).
//!
//! `F` is computed with the logistic approximation of the normal CDF,
//! `F(y) ≈ 1 / (1 + exp(-y (1.5976 + 0.070566 y²)))` for the standardized `y`, which is
//! accurate to about 1.4e-4 (Bowling, Khasawneh, Kaewkuekool and Cho, "A logistic
//! approximation to the cumulative normal distribution", 2009) and is the same
//! approximation Akka's `PhiAccrualFailureDetector` uses. Far into the tail `1 - F` rounds
//! to zero and phi becomes positive infinity, which is above any threshold.
//!
//! The subject counts as available while `phi < threshold`. With the defaults and a steady
//! 1 s heartbeat, phi reaches 8 about 4.5 s after the last heartbeat: 4 s of mean plus about
//! 5.2 standard deviations of roughly 100 ms.
//!
//! Invariants:
//!
//! - The history never contains more than `max_sample_size` intervals. Before the first
//!   heartbeat it holds two seed intervals, `first_heartbeat_estimate ± 25 %`, so the
//!   detector has a distribution from the first heartbeat on.
//! - `phi` is 0 until the first heartbeat, and never negative or NaN (it may be infinite).
//! - An interval is added to the history only when the subject was still available when the
//!   heartbeat arrived, so one long pause does not widen the distribution for later checks.
//!
//! Steps of [`PhiAccrualFailureDetector::heartbeat`]:
//!
//! 1. On the first heartbeat, store its time and return.
//! 2. Otherwise compute the interval since the previous heartbeat.
//! 3. Add the interval to the history if the subject was available at `now`, dropping the
//!    oldest interval when the history is full.
//! 4. Store `now` as the time of the latest heartbeat.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// Invalid value of a cluster setting: the remote transport's settings error, shared.
pub use akkord_remote::settings::InvalidSetting;

/// Settings of the phi accrual failure detector.
///
/// The defaults are those of Akka's and Pekko's `akka.cluster.failure-detector` section in
/// `reference.conf`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureDetectorSettings {
    /// Value of phi at and above which the subject counts as unavailable.
    ///
    /// Unitless, default 8.0. Phi 8 means the detector would be wrong about one time in 10⁸
    /// if the intervals really were normally distributed. A lower threshold detects crashes
    /// sooner but marks slow or paused nodes unreachable more often. Must be finite and
    /// greater than 0.
    pub threshold: f64,
    /// Maximum number of intervals kept in the history.
    ///
    /// Count, default 1000. A longer history adapts more slowly to a change of the heartbeat
    /// rhythm and costs 8 bytes per interval and subject.
    pub max_sample_size: NonZeroUsize,
    /// Lower bound of the standard deviation used in the phi computation.
    ///
    /// Duration, default 100 ms. Very regular heartbeats would otherwise give a tiny standard
    /// deviation, and phi would jump from 0 to the threshold on the first small delay.
    /// Must be greater than zero.
    pub min_std_deviation: Duration,
    /// Extra pause tolerated on top of the mean interval before phi rises.
    ///
    /// Duration, default 3 s. It absorbs garbage collection pauses, scheduling stalls and
    /// short network hiccups. A larger pause means fewer false suspicions and slower crash
    /// detection, roughly one for one in seconds. Zero is allowed (no extra tolerance) as in
    /// Akka.
    pub acceptable_heartbeat_pause: Duration,
    /// Expected interval between heartbeats, used to seed the history before the first one.
    ///
    /// Duration, default 1 s, which is the cluster heartbeat interval. The history starts
    /// with two intervals, this estimate minus and plus a quarter of it. Must be greater
    /// than zero.
    pub first_heartbeat_estimate: Duration,
}

impl Default for FailureDetectorSettings {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            max_sample_size: NonZeroUsize::new(1000).expect("1000 is not zero"),
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_secs(3),
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }
}

impl FailureDetectorSettings {
    /// Checks every field against its documented limits.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] naming the first field that is out of range: a threshold
    /// that is not finite or not greater than 0, or a zero `min_std_deviation` or
    /// `first_heartbeat_estimate`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !self.threshold.is_finite() || self.threshold <= 0.0 {
            return Err(InvalidSetting::new(
                "failure_detector.threshold",
                self.threshold,
                "expected a finite number greater than 0, for example 8.0",
            ));
        }
        if self.min_std_deviation.is_zero() {
            return Err(InvalidSetting::new(
                "failure_detector.min_std_deviation",
                self.min_std_deviation,
                "expected a duration greater than zero, for example 100 ms",
            ));
        }
        if self.first_heartbeat_estimate.is_zero() {
            return Err(InvalidSetting::new(
                "failure_detector.first_heartbeat_estimate",
                self.first_heartbeat_estimate,
                "expected a duration greater than zero, usually the heartbeat interval",
            ));
        }
        Ok(())
    }
}

/// Phi accrual failure detector for one monitored subject.
#[derive(Clone, Debug)]
pub struct PhiAccrualFailureDetector {
    settings: FailureDetectorSettings,
    history: IntervalHistory,
    last_heartbeat: Option<Instant>,
}

impl PhiAccrualFailureDetector {
    /// Creates a detector that has seen no heartbeat yet.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] when `settings` fail [`FailureDetectorSettings::validate`].
    pub fn new(settings: FailureDetectorSettings) -> Result<Self, InvalidSetting> {
        settings.validate()?;
        let history = IntervalHistory::seeded(&settings);
        Ok(Self {
            settings,
            history,
            last_heartbeat: None,
        })
    }

    /// Records a heartbeat that arrived at `now`.
    ///
    /// A `now` earlier than the previous heartbeat counts as an interval of zero.
    pub fn heartbeat(&mut self, now: Instant) {
        let Some(previous) = self.last_heartbeat else {
            self.last_heartbeat = Some(now);
            return;
        };
        if self.is_available(now) {
            let interval = now.saturating_duration_since(previous);
            self.history
                .push(interval, self.settings.max_sample_size.get());
        }
        self.last_heartbeat = Some(now.max(previous));
    }

    /// Returns the suspicion level at `now`: 0 before the first heartbeat, then growing with
    /// the time since the latest heartbeat.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last_heartbeat else {
            return 0.0;
        };
        let elapsed_ms = millis(now.saturating_duration_since(last));
        let mean_ms = self.history.mean_ms() + millis(self.settings.acceptable_heartbeat_pause);
        let std_ms = self
            .history
            .std_deviation_ms()
            .max(millis(self.settings.min_std_deviation));
        phi(elapsed_ms, mean_ms, std_ms)
    }

    /// Returns true while phi at `now` is below the threshold; always true before the first
    /// heartbeat.
    pub fn is_available(&self, now: Instant) -> bool {
        self.phi(now) < self.settings.threshold
    }

    /// Returns true once the first heartbeat has been recorded.
    pub fn is_monitoring(&self) -> bool {
        self.last_heartbeat.is_some()
    }

    /// Returns the time of the latest heartbeat, if any.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last_heartbeat
    }

    /// Returns the mean of the recorded intervals, without the acceptable pause.
    pub fn mean_interval(&self) -> Duration {
        Duration::from_secs_f64(self.history.mean_ms() / 1000.0)
    }

    /// Returns the standard deviation of the recorded intervals, before the lower bound
    /// `min_std_deviation` is applied.
    pub fn std_deviation(&self) -> Duration {
        Duration::from_secs_f64(self.history.std_deviation_ms() / 1000.0)
    }

    /// Returns the number of intervals in the history, seed intervals included.
    pub fn history_len(&self) -> usize {
        self.history.intervals.len()
    }

    /// Returns the settings this detector was created with.
    pub fn settings(&self) -> &FailureDetectorSettings {
        &self.settings
    }
}

/// Computes phi for a time since the last heartbeat, given the mean and standard deviation of
/// the expected interval, all in milliseconds.
///
/// Uses the logistic approximation of the normal CDF. The two branches compute `1 - F`
/// without cancellation: above the mean from `e / (1 + e)`, below it from `1 - 1 / (1 + e)`.
pub fn phi(elapsed_ms: f64, mean_ms: f64, std_deviation_ms: f64) -> f64 {
    let y = (elapsed_ms - mean_ms) / std_deviation_ms;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let value = if elapsed_ms > mean_ms {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    };
    if value.is_nan() {
        // The exponent overflowed to infinity far below the mean: nothing is suspicious.
        0.0
    } else {
        value.max(0.0)
    }
}

/// Bounded history of heartbeat intervals with running sums for O(1) statistics.
///
/// Sums are kept in whole microseconds as integers, so removing an old interval subtracts
/// exactly what was added and the statistics never drift.
#[derive(Clone, Debug)]
struct IntervalHistory {
    intervals: VecDeque<u64>,
    sum_us: u128,
    sum_squares_us: u128,
}

impl IntervalHistory {
    fn seeded(settings: &FailureDetectorSettings) -> Self {
        let mut history = Self {
            intervals: VecDeque::new(),
            sum_us: 0,
            sum_squares_us: 0,
        };
        let estimate = settings.first_heartbeat_estimate;
        let quarter = estimate / 4;
        let max = settings.max_sample_size.get();
        history.push(estimate - quarter, max);
        history.push(estimate + quarter, max);
        history
    }

    fn push(&mut self, interval: Duration, max_len: usize) {
        // Capping each interval at about 12.7 days keeps the sum of 2^40-sized squares of
        // any realistic history far below u128::MAX.
        let micros = u64::try_from(interval.as_micros())
            .unwrap_or(MAX_INTERVAL_US)
            .min(MAX_INTERVAL_US);
        while self.intervals.len() >= max_len {
            if let Some(oldest) = self.intervals.pop_front() {
                self.sum_us -= u128::from(oldest);
                self.sum_squares_us -= u128::from(oldest) * u128::from(oldest);
            }
        }
        self.intervals.push_back(micros);
        self.sum_us += u128::from(micros);
        self.sum_squares_us += u128::from(micros) * u128::from(micros);
    }

    fn mean_ms(&self) -> f64 {
        if self.intervals.is_empty() {
            return 0.0;
        }
        self.sum_us as f64 / self.intervals.len() as f64 / 1000.0
    }

    fn std_deviation_ms(&self) -> f64 {
        let n = self.intervals.len() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let mean_us = self.sum_us as f64 / n;
        let variance_us = (self.sum_squares_us as f64 / n - mean_us * mean_us).max(0.0);
        variance_us.sqrt() / 1000.0
    }
}

/// Largest interval stored in the history, in microseconds (2^40 µs, about 12.7 days).
const MAX_INTERVAL_US: u64 = 1 << 40;

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> PhiAccrualFailureDetector {
        PhiAccrualFailureDetector::new(FailureDetectorSettings::default()).expect("defaults")
    }

    /// Feeds `count` heartbeats at a steady `interval` starting at `start` and returns the
    /// time of the last one.
    fn steady(
        fd: &mut PhiAccrualFailureDetector,
        start: Instant,
        count: u32,
        interval: Duration,
    ) -> Instant {
        let mut now = start;
        for i in 0..count {
            now = start + interval * i;
            fd.heartbeat(now);
        }
        now
    }

    /// Returns the first time after `last`, in steps of 10 ms, at which `fd` reports the
    /// subject unavailable.
    fn time_to_unavailable(fd: &PhiAccrualFailureDetector, last: Instant) -> Duration {
        let step = Duration::from_millis(10);
        let mut elapsed = Duration::ZERO;
        while fd.is_available(last + elapsed) {
            elapsed += step;
            assert!(
                elapsed < Duration::from_secs(60),
                "phi never crossed threshold"
            );
        }
        elapsed
    }

    #[test]
    fn phi_zero_before_first_heartbeat() {
        let fd = detector();
        let now = Instant::now();
        assert_eq!(fd.phi(now + Duration::from_secs(100)), 0.0);
        assert!(fd.is_available(now + Duration::from_secs(100)));
        assert!(!fd.is_monitoring());
    }

    #[test]
    fn phi_grows_with_silence() {
        let mut fd = detector();
        let start = Instant::now();
        let last = steady(&mut fd, start, 20, Duration::from_secs(1));
        let mut previous = fd.phi(last);
        for ms in (500..10_000).step_by(500) {
            let current = fd.phi(last + Duration::from_millis(ms));
            assert!(
                current >= previous,
                "phi fell from {previous} to {current} at {ms} ms"
            );
            previous = current;
        }
        assert!(previous > 8.0, "phi after 9.5 s of silence is {previous}");
    }

    #[test]
    fn defaults_cross_threshold_near_4_5s() {
        let mut fd = detector();
        let start = Instant::now();
        let last = steady(&mut fd, start, 60, Duration::from_secs(1));
        let elapsed = time_to_unavailable(&fd, last);
        assert!(
            elapsed >= Duration::from_millis(3500),
            "unavailable too early: {elapsed:?}"
        );
        assert!(
            elapsed <= Duration::from_millis(6000),
            "unavailable too late: {elapsed:?}"
        );
    }

    #[test]
    fn first_heartbeat_uses_estimate() {
        let mut fd = detector();
        let start = Instant::now();
        fd.heartbeat(start);
        // Seed history 750 ms and 1250 ms: mean 1 s, standard deviation 250 ms.
        assert_eq!(fd.mean_interval(), Duration::from_secs(1));
        assert_eq!(fd.std_deviation(), Duration::from_millis(250));
        let elapsed = time_to_unavailable(&fd, start);
        assert!(elapsed > Duration::from_secs(4), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(7), "{elapsed:?}");
    }

    #[test]
    fn irregular_heartbeats_raise_deviation() {
        let start = Instant::now();
        let mut regular = detector();
        let regular_last = steady(&mut regular, start, 50, Duration::from_secs(1));

        let mut irregular = detector();
        let mut now = start;
        for i in 0..50u64 {
            now += Duration::from_millis(if i % 2 == 0 { 400 } else { 1600 });
            irregular.heartbeat(now);
        }
        assert!(
            irregular.std_deviation() > regular.std_deviation() * 2,
            "irregular {:?} regular {:?}",
            irregular.std_deviation(),
            regular.std_deviation()
        );
        let silence = Duration::from_millis(4500);
        assert!(irregular.phi(now + silence) < regular.phi(regular_last + silence));
    }

    #[test]
    fn history_is_bounded() {
        let settings = FailureDetectorSettings {
            max_sample_size: NonZeroUsize::new(10).expect("not zero"),
            ..FailureDetectorSettings::default()
        };
        let mut fd = PhiAccrualFailureDetector::new(settings).expect("valid");
        let start = Instant::now();
        steady(&mut fd, start, 100, Duration::from_millis(500));
        assert_eq!(fd.history_len(), 10);
        // Only 500 ms intervals remain once the seeds have been pushed out.
        assert_eq!(fd.mean_interval(), Duration::from_millis(500));
        assert_eq!(fd.std_deviation(), Duration::ZERO);
    }

    #[test]
    fn default_history_bound_is_1000() {
        let mut fd = detector();
        let start = Instant::now();
        steady(&mut fd, start, 1500, Duration::from_secs(1));
        assert_eq!(fd.history_len(), 1000);
    }

    #[test]
    fn long_pause_not_added_to_history() {
        let mut fd = detector();
        let start = Instant::now();
        let last = steady(&mut fd, start, 20, Duration::from_secs(1));
        let len = fd.history_len();
        fd.heartbeat(last + Duration::from_secs(30));
        assert_eq!(fd.history_len(), len);
        assert!(fd.is_available(last + Duration::from_secs(30)));
    }

    #[test]
    fn phi_far_in_tail_not_nan() {
        let far_above = phi(1.0e9, 1000.0, 100.0);
        assert!(!far_above.is_nan());
        assert!(far_above > 8.0, "{far_above}");
        let far_below = phi(0.0, 1.0e9, 100.0);
        assert_eq!(far_below, 0.0);
    }

    #[test]
    fn settings_reject_invalid_values() {
        let cases = [
            FailureDetectorSettings {
                threshold: f64::NAN,
                ..FailureDetectorSettings::default()
            },
            FailureDetectorSettings {
                threshold: 0.0,
                ..FailureDetectorSettings::default()
            },
            FailureDetectorSettings {
                threshold: f64::INFINITY,
                ..FailureDetectorSettings::default()
            },
            FailureDetectorSettings {
                min_std_deviation: Duration::ZERO,
                ..FailureDetectorSettings::default()
            },
            FailureDetectorSettings {
                first_heartbeat_estimate: Duration::ZERO,
                ..FailureDetectorSettings::default()
            },
        ];
        let fields = [
            "failure_detector.threshold",
            "failure_detector.threshold",
            "failure_detector.threshold",
            "failure_detector.min_std_deviation",
            "failure_detector.first_heartbeat_estimate",
        ];
        for (settings, field) in cases.iter().zip(fields) {
            let error = settings.validate().expect_err("must be rejected");
            assert_eq!(error.field, field);
            assert!(error.to_string().contains(field), "{error}");
        }
        assert!(FailureDetectorSettings::default().validate().is_ok());
    }
}
