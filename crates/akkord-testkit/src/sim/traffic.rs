//! Traffic counters per node, grouped by message kind.

use std::time::Duration;

/// Number of messages and their total size in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Number of messages.
    pub messages: u64,
    /// Sum of [`SimNode::wire_size`](super::SimNode::wire_size) over those messages.
    pub bytes: u64,
}

impl Counter {
    fn add(&mut self, other: Counter) {
        self.messages += other.messages;
        self.bytes += other.bytes;
    }

    fn saturating_sub(self, other: Counter) -> Counter {
        Counter {
            messages: self.messages.saturating_sub(other.messages),
            bytes: self.bytes.saturating_sub(other.bytes),
        }
    }
}

/// Counters keyed by [`SimNode::message_kind`](super::SimNode::message_kind).
///
/// A core has a handful of message kinds, so the counters live in a small vector searched
/// linearly, which is cheaper per message than hashing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindCounters {
    kinds: Vec<(&'static str, Counter)>,
}

impl KindCounters {
    /// Returns the counter of `kind`, zero when no message of that kind was counted.
    pub fn get(&self, kind: &str) -> Counter {
        self.kinds
            .iter()
            .find(|(name, _)| *name == kind)
            .map(|(_, counter)| *counter)
            .unwrap_or_default()
    }

    /// Returns the sum over all kinds.
    pub fn total(&self) -> Counter {
        self.total_excluding(&[])
    }

    /// Returns the sum over all kinds except those in `excluded`, for example heartbeats.
    pub fn total_excluding(&self, excluded: &[&str]) -> Counter {
        let mut total = Counter::default();
        for (kind, counter) in &self.kinds {
            if !excluded.contains(kind) {
                total.add(*counter);
            }
        }
        total
    }

    /// Iterates over the kinds in the order they were first counted.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Counter)> + '_ {
        self.kinds.iter().copied()
    }

    pub(crate) fn record(&mut self, kind: &'static str, bytes: usize) {
        let one = Counter {
            messages: 1,
            bytes: bytes as u64,
        };
        self.add_counter(kind, one);
    }

    fn add_counter(&mut self, kind: &'static str, counter: Counter) {
        match self.kinds.iter_mut().find(|(name, _)| *name == kind) {
            Some((_, existing)) => existing.add(counter),
            None => self.kinds.push((kind, counter)),
        }
    }

    fn add_all(&mut self, other: &KindCounters) {
        for (kind, counter) in &other.kinds {
            self.add_counter(kind, *counter);
        }
    }

    fn saturating_sub(&self, earlier: &KindCounters) -> KindCounters {
        let kinds = self
            .kinds
            .iter()
            .map(|(kind, counter)| (*kind, counter.saturating_sub(earlier.get(kind))))
            .collect();
        KindCounters { kinds }
    }
}

/// Messages one node sent and received.
///
/// A message counts as sent when the node hands it to the network, lost or not, and as
/// received when it is handed to the node, so a duplicated message is received twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTraffic {
    /// Messages sent by the node.
    pub sent: KindCounters,
    /// Messages handed to the node.
    pub received: KindCounters,
}

impl NodeTraffic {
    fn add_all(&mut self, other: &NodeTraffic) {
        self.sent.add_all(&other.sent);
        self.received.add_all(&other.received);
    }

    fn saturating_sub(&self, earlier: &NodeTraffic) -> NodeTraffic {
        NodeTraffic {
            sent: self.sent.saturating_sub(&earlier.sent),
            received: self.received.saturating_sub(&earlier.received),
        }
    }
}

/// Traffic of every address the simulator has seen, over a window of virtual time.
///
/// [`Simulator::traffic`](super::Simulator::traffic) returns the window from the start to
/// now. To measure a window, take a report before and after running the simulator and call
/// [`TrafficReport::since`] on the later one with the earlier one.
#[derive(Debug, Clone)]
pub struct TrafficReport<A> {
    start: Duration,
    end: Duration,
    nodes: Vec<(A, NodeTraffic)>,
}

impl<A: PartialEq + Clone> TrafficReport<A> {
    pub(crate) fn new(end: Duration, nodes: Vec<(A, NodeTraffic)>) -> Self {
        Self {
            start: Duration::ZERO,
            end,
            nodes,
        }
    }

    /// Returns the virtual time at which the window starts.
    pub fn start(&self) -> Duration {
        self.start
    }

    /// Returns the virtual time at which the window ends.
    pub fn end(&self) -> Duration {
        self.end
    }

    /// Returns the length of the window.
    pub fn window(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    /// Returns the traffic of the node at `address` in the window.
    pub fn node(&self, address: &A) -> Option<&NodeTraffic> {
        self.nodes
            .iter()
            .find(|(candidate, _)| candidate == address)
            .map(|(_, traffic)| traffic)
    }

    /// Iterates over every address with its traffic, in the order addresses were first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&A, &NodeTraffic)> + '_ {
        self.nodes
            .iter()
            .map(|(address, traffic)| (address, traffic))
    }

    /// Returns the sum over all nodes.
    pub fn total(&self) -> NodeTraffic {
        let mut total = NodeTraffic::default();
        for (_, traffic) in &self.nodes {
            total.add_all(traffic);
        }
        total
    }

    /// Returns the traffic between `earlier` and this report, for addresses in this report.
    ///
    /// Addresses that first appeared after `earlier` count from zero.
    pub fn since(&self, earlier: &TrafficReport<A>) -> TrafficReport<A> {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, (address, traffic))| {
                // Reports of one simulator list addresses in the same order, so the entry at
                // the same index is almost always the match.
                let before = match earlier.nodes.get(index) {
                    Some((candidate, before)) if candidate == address => Some(before),
                    _ => earlier.node(address),
                };
                let window = match before {
                    Some(before) => traffic.saturating_sub(before),
                    None => traffic.clone(),
                };
                (address.clone(), window)
            })
            .collect();
        TrafficReport {
            start: earlier.end,
            end: self.end,
            nodes,
        }
    }

    /// Returns the mean number of bytes sent per node and per second of the window, leaving
    /// out the message kinds in `excluded`.
    ///
    /// Only nodes that sent at least one message of any kind in the window count, so the
    /// addresses of killed instances do not dilute the mean. Returns 0 for an empty window.
    pub fn mean_sent_bytes_per_node_per_second(&self, excluded: &[&str]) -> f64 {
        let seconds = self.window().as_secs_f64();
        let senders: Vec<Counter> = self
            .nodes
            .iter()
            .filter(|(_, traffic)| traffic.sent.total().messages > 0)
            .map(|(_, traffic)| traffic.sent.total_excluding(excluded))
            .collect();
        if seconds == 0.0 || senders.is_empty() {
            return 0.0;
        }
        let bytes: u64 = senders.iter().map(|counter| counter.bytes).sum();
        bytes as f64 / senders.len() as f64 / seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_add_up_and_exclude() {
        let mut counters = KindCounters::default();
        counters.record("gossip", 100);
        counters.record("heartbeat", 10);
        counters.record("gossip", 50);
        assert_eq!(
            counters.get("gossip"),
            Counter {
                messages: 2,
                bytes: 150
            }
        );
        assert_eq!(counters.total().bytes, 160);
        assert_eq!(counters.total_excluding(&["heartbeat"]).messages, 2);
        assert_eq!(counters.get("absent"), Counter::default());
    }

    #[test]
    fn report_since_gives_the_window() {
        let mut early = NodeTraffic::default();
        early.sent.record("gossip", 100);
        let before = TrafficReport::new(Duration::from_secs(10), vec![("a", early.clone())]);

        let mut late = early;
        late.sent.record("gossip", 300);
        late.sent.record("heartbeat", 40);
        let mut other = NodeTraffic::default();
        other.sent.record("gossip", 100);
        let mut quiet = NodeTraffic::default();
        quiet.sent.record("heartbeat", 40);
        let silent = NodeTraffic::default();
        let nodes = vec![("a", late), ("b", other), ("c", quiet), ("d", silent)];
        let after = TrafficReport::new(Duration::from_secs(20), nodes);

        let window = after.since(&before);
        assert_eq!(window.window(), Duration::from_secs(10));
        assert_eq!(window.node(&"a").map(|t| t.sent.total().bytes), Some(340));
        assert_eq!(window.node(&"b").map(|t| t.sent.total().bytes), Some(100));
        // a, b and c sent 300, 100 and 0 gossip bytes over 10 s, and d sent nothing at all, so
        // the mean is 400 bytes over 3 nodes and 10 s.
        let mean = window.mean_sent_bytes_per_node_per_second(&["heartbeat"]);
        assert!((mean - 400.0 / 30.0).abs() < 1e-9, "mean {mean}");
    }
}
