//! The simulated network: per-link latency, loss, duplication, reordering and blocks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use thiserror::Error;

use super::queue::AddressId;

/// Behaviour of one directed link, or of every link without its own setting.
///
/// A message on a link is lost with `drop_probability`. Otherwise its delay is a latency
/// drawn uniformly from `min_latency..=max_latency` plus `extra_delay`. With
/// `reorder_probability`, a jitter drawn uniformly from `0..=reorder_jitter` is added. Each copy
/// sent draws its own latency, so messages on one link can overtake each other whenever the
/// latency range is wider than the gap between them. With `duplicate_probability` a second
/// copy is sent with its own latency.
///
/// Partitions are not part of a link's setting: they are kept apart by
/// [`Simulator::partition`](super::Simulator::partition) and friends, so healing a partition
/// keeps the latency and loss settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Lower bound of the base latency.
    pub min_latency: Duration,
    /// Upper bound of the base latency, inclusive; at least `min_latency`.
    pub max_latency: Duration,
    /// Probability in `0.0..=1.0` that a message is lost.
    pub drop_probability: f64,
    /// Probability in `0.0..=1.0` that a delivered message arrives twice.
    pub duplicate_probability: f64,
    /// Delay added to every message, for a slow link.
    pub extra_delay: Duration,
    /// Probability in `0.0..=1.0` that a message gets a random jitter on top of its latency.
    pub reorder_probability: f64,
    /// Upper bound of the jitter added with `reorder_probability`.
    pub reorder_jitter: Duration,
}

impl LinkConfig {
    /// Returns this setting with a base latency drawn uniformly from `min..=max`.
    pub fn with_latency(mut self, min: Duration, max: Duration) -> Self {
        self.min_latency = min;
        self.max_latency = max;
        self
    }

    /// Returns this setting with the given probability of losing a message.
    pub fn with_drop_probability(mut self, probability: f64) -> Self {
        self.drop_probability = probability;
        self
    }

    /// Returns this setting with the given probability of delivering a message twice.
    pub fn with_duplicate_probability(mut self, probability: f64) -> Self {
        self.duplicate_probability = probability;
        self
    }

    /// Returns this setting with `delay` added to every message.
    pub fn with_extra_delay(mut self, delay: Duration) -> Self {
        self.extra_delay = delay;
        self
    }

    /// Returns this setting with a jitter of up to `jitter` added with `probability`.
    pub fn with_reorder(mut self, probability: f64, jitter: Duration) -> Self {
        self.reorder_probability = probability;
        self.reorder_jitter = jitter;
        self
    }

    /// Checks that probabilities lie in `0.0..=1.0` and the latency range is not empty.
    ///
    /// # Errors
    ///
    /// Returns [`LinkConfigError`] naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), LinkConfigError> {
        let probabilities = [
            ("drop_probability", self.drop_probability),
            ("duplicate_probability", self.duplicate_probability),
            ("reorder_probability", self.reorder_probability),
        ];
        for (field, value) in probabilities {
            if !(0.0..=1.0).contains(&value) {
                return Err(LinkConfigError::InvalidProbability { field, value });
            }
        }
        if self.min_latency > self.max_latency {
            return Err(LinkConfigError::InvalidLatency {
                min: self.min_latency,
                max: self.max_latency,
            });
        }
        Ok(())
    }
}

impl Default for LinkConfig {
    /// Returns a reliable link with a latency of 1 to 5 ms, like a local network.
    fn default() -> Self {
        Self {
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(5),
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            extra_delay: Duration::ZERO,
            reorder_probability: 0.0,
            reorder_jitter: Duration::from_millis(50),
        }
    }
}

/// Invalid value in a [`LinkConfig`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LinkConfigError {
    /// A probability lies outside `0.0..=1.0` or is NaN.
    #[error("link setting {field} is {value}, but must lie in 0.0..=1.0")]
    InvalidProbability {
        /// Name of the field.
        field: &'static str,
        /// Value that was given.
        value: f64,
    },
    /// The latency range is empty.
    #[error(
        "link latency range {min:?}..={max:?} is empty: min_latency must not exceed max_latency"
    )]
    InvalidLatency {
        /// Lower bound that was given.
        min: Duration,
        /// Upper bound that was given.
        max: Duration,
    },
}

/// Counts of messages in the simulated network since the simulator started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Messages that nodes or scenarios handed to the network.
    pub sent: u64,
    /// Messages handed to a node, duplicates included.
    pub delivered: u64,
    /// Messages lost on a blocked link, at sending or at arrival.
    pub dropped_blocked: u64,
    /// Messages lost to a link's drop probability.
    pub dropped_random: u64,
    /// Messages whose destination had no live node on arrival: never added, killed, or
    /// restarted at another address. Messages held for a frozen node that is then killed or
    /// restarted count here too.
    pub dropped_no_node: u64,
    /// Extra copies created by a link's duplicate probability.
    pub duplicated: u64,
}

impl NetworkStats {
    /// Returns the number of messages lost for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_blocked + self.dropped_random + self.dropped_no_node
    }
}

/// Fate of one message drawn from its link's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transmission {
    /// The message is lost.
    Dropped,
    /// The message arrives after the delay.
    Once(Duration),
    /// The message arrives twice, after each delay.
    Twice(Duration, Duration),
}

/// Link settings and blocks of the whole network, keyed by address ids.
#[derive(Debug, Default)]
pub(crate) struct Network {
    default_link: LinkConfig,
    links: HashMap<(AddressId, AddressId), LinkConfig>,
    blocked: HashSet<(AddressId, AddressId)>,
    isolated: HashSet<AddressId>,
}

impl Network {
    /// Returns the setting of the link from `from` to `to`.
    pub(crate) fn link(&self, from: AddressId, to: AddressId) -> &LinkConfig {
        if self.links.is_empty() {
            return &self.default_link;
        }
        self.links.get(&(from, to)).unwrap_or(&self.default_link)
    }

    /// Returns the setting of links without their own setting.
    pub(crate) fn default_link(&self) -> &LinkConfig {
        &self.default_link
    }

    pub(crate) fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
    }

    pub(crate) fn set_link(&mut self, from: AddressId, to: AddressId, config: LinkConfig) {
        self.links.insert((from, to), config);
    }

    /// Returns the link from `from` to `to` to the default setting.
    pub(crate) fn reset_link(&mut self, from: AddressId, to: AddressId) {
        self.links.remove(&(from, to));
    }

    /// Returns every link to the default setting; blocks stay.
    pub(crate) fn reset_links(&mut self) {
        self.links.clear();
    }

    /// Returns true when messages from `from` to `to` are lost to a block or an isolation.
    /// Messages from a node to itself are never blocked.
    pub(crate) fn is_blocked(&self, from: AddressId, to: AddressId) -> bool {
        if from == to || (self.blocked.is_empty() && self.isolated.is_empty()) {
            return false;
        }
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.blocked.contains(&(from, to))
    }

    pub(crate) fn block(&mut self, from: AddressId, to: AddressId) {
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    pub(crate) fn unblock(&mut self, from: AddressId, to: AddressId) {
        self.blocked.remove(&(from, to));
    }

    pub(crate) fn isolate(&mut self, node: AddressId) {
        self.isolated.insert(node);
    }

    pub(crate) fn rejoin(&mut self, node: AddressId) {
        self.isolated.remove(&node);
    }

    /// Removes every block and isolation; link settings stay.
    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
        self.isolated.clear();
    }

    /// Draws the fate of one message on the link from `from` to `to`.
    pub(crate) fn transmit(
        &self,
        from: AddressId,
        to: AddressId,
        rng: &mut StdRng,
    ) -> Transmission {
        let link = self.link(from, to);
        if draw(rng, link.drop_probability) {
            return Transmission::Dropped;
        }
        let first = sample_delay(link, rng);
        if draw(rng, link.duplicate_probability) {
            Transmission::Twice(first, sample_delay(link, rng))
        } else {
            Transmission::Once(first)
        }
    }
}

/// Returns true with `probability`, drawing nothing when the probability is zero so that
/// reliable links leave the random sequence untouched.
fn draw(rng: &mut StdRng, probability: f64) -> bool {
    probability > 0.0 && rng.random::<f64>() < probability
}

fn sample_delay(link: &LinkConfig, rng: &mut StdRng) -> Duration {
    let mut delay = uniform(rng, link.min_latency, link.max_latency) + link.extra_delay;
    if draw(rng, link.reorder_probability) {
        delay += uniform(rng, Duration::ZERO, link.reorder_jitter);
    }
    delay
}

fn uniform(rng: &mut StdRng, min: Duration, max: Duration) -> Duration {
    if min >= max {
        return min;
    }
    let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
    min + Duration::from_nanos(rng.random_range(0..=span))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn default_link_is_valid() {
        assert_eq!(LinkConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_bad_values() {
        let nan = LinkConfig::default().with_drop_probability(f64::NAN);
        assert!(matches!(
            nan.validate(),
            Err(LinkConfigError::InvalidProbability {
                field: "drop_probability",
                ..
            })
        ));
        let above_one = LinkConfig::default().with_duplicate_probability(1.5);
        assert!(above_one.validate().is_err());
        let empty_range =
            LinkConfig::default().with_latency(Duration::from_millis(9), Duration::from_millis(2));
        assert!(matches!(
            empty_range.validate(),
            Err(LinkConfigError::InvalidLatency { .. })
        ));
    }

    #[test]
    fn delays_stay_within_the_range() {
        let mut network = Network::default();
        let link = LinkConfig::default()
            .with_latency(Duration::from_millis(2), Duration::from_millis(4))
            .with_extra_delay(Duration::from_millis(10));
        network.set_link(0, 1, link);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let Transmission::Once(delay) = network.transmit(0, 1, &mut rng) else {
                panic!("a reliable link dropped or duplicated a message");
            };
            assert!(delay >= Duration::from_millis(12), "delay {delay:?}");
            assert!(delay <= Duration::from_millis(14), "delay {delay:?}");
        }
    }

    #[test]
    fn blocks_are_directed_and_spare_self_links() {
        let mut network = Network::default();
        network.block(0, 1);
        assert!(network.is_blocked(0, 1));
        assert!(!network.is_blocked(1, 0));
        network.isolate(2);
        assert!(network.is_blocked(2, 0));
        assert!(network.is_blocked(0, 2));
        assert!(!network.is_blocked(2, 2));
        network.heal();
        assert!(!network.is_blocked(0, 1));
        assert!(!network.is_blocked(0, 2));
    }

    #[test]
    fn heal_keeps_link_settings() {
        let mut network = Network::default();
        let lossy = LinkConfig::default().with_drop_probability(0.5);
        network.set_link(0, 1, lossy.clone());
        network.block(0, 1);
        network.heal();
        assert_eq!(network.link(0, 1), &lossy);
        network.reset_links();
        assert_eq!(network.link(0, 1), &LinkConfig::default());
    }
}
