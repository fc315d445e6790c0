//! Cluster heartbeats: the monitoring ring and the sender/receiver state machine.
//!
//! Each node sends a heartbeat request every `interval` to a few members and feeds the
//! responses into one [`PhiAccrualFailureDetector`] per monitored member. From the detector
//! it derives observations, "subject became unreachable" and "subject became reachable",
//! which the membership core records in its row of the reachability table.
//!
//! The members are placed on a ring ordered by [`ring_hash`] of their unique address. A node
//! monitors the next `monitored_by_nr_of_members` reachable members after itself on the ring,
//! wrapping around, or every other member when the cluster is no larger than that plus one.
//! Unreachable members met on the way are monitored as well but not counted, so that someone
//! keeps watching them and can notice when they come back. Because every node computes the
//! same ring, each member is monitored by about `monitored_by_nr_of_members` others.
//!
//! Invariants:
//!
//! - The active receivers are the ring receivers of this node plus the former receivers that
//!   were unavailable when the ring changed. Heartbeats go to exactly these nodes.
//! - A detector exists only for an active receiver, and only after its first heartbeat (a
//!   response, or the expected-first-heartbeat rule below).
//! - An observation is emitted only when the status reported for a subject changes, so the
//!   membership core receives each transition once.
//!
//! Steps of [`HeartbeatCore::tick`]:
//!
//! 1. Start the detector of each receiver whose first request has had no response within
//!    `expected_response_after`, so a node that never responds still becomes unreachable.
//! 2. When a heartbeat round is due, measure how late the tick runs, then send one request
//!    to each active receiver and remember when a first request went to a receiver that has
//!    no detector yet.
//! 3. Compare each detector's availability with the status last reported and emit an
//!    observation for every change.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;

use crate::failure_detector::{FailureDetectorSettings, InvalidSetting, PhiAccrualFailureDetector};

/// Settings of the cluster heartbeat.
///
/// The defaults are those of Akka's and Pekko's `akka.cluster` section in `reference.conf`,
/// except `late_tick_threshold`, which akkord adds.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatSettings {
    /// Time between two heartbeat rounds.
    ///
    /// Duration, default 1 s (`heartbeat-interval`). Shorter intervals detect failures a
    /// little sooner at the cost of more messages, one request and one response per round
    /// and monitored member. Must be greater than zero.
    pub interval: Duration,
    /// Time after the first request to a member at which its detector starts even without a
    /// response.
    ///
    /// Duration, default 1 s (`failure-detector.expected-response-after`). Without this rule
    /// a node that never responds would never get a detector and never become unreachable.
    /// Must be greater than zero.
    pub expected_response_after: Duration,
    /// Number of reachable members each member is monitored by.
    ///
    /// Count, default 9 (`failure-detector.monitored-by-nr-of-members`). More monitors
    /// detect a failure even when some monitors are themselves cut off, at the cost of more
    /// heartbeat traffic per node.
    pub monitored_by_nr_of_members: NonZeroUsize,
    /// Lateness of a heartbeat round above which the tick is reported as late.
    ///
    /// Duration, default 500 ms, half the default interval. A late round means the thread
    /// or task that sends heartbeats was starved, and the peers may suspect this node soon.
    /// Akka warns only when a full interval is missed; this threshold warns earlier.
    pub late_tick_threshold: Duration,
    /// Settings of the per-member phi accrual failure detectors.
    pub failure_detector: FailureDetectorSettings,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            expected_response_after: Duration::from_secs(1),
            monitored_by_nr_of_members: NonZeroUsize::new(9).expect("9 is not zero"),
            late_tick_threshold: Duration::from_millis(500),
            failure_detector: FailureDetectorSettings::default(),
        }
    }
}

impl HeartbeatSettings {
    /// Checks every field, the failure detector settings included.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] naming the first field that is out of range: a zero
    /// `interval` or `expected_response_after`, or an invalid failure detector setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.interval.is_zero() {
            return Err(InvalidSetting::new(
                "heartbeat.interval",
                self.interval,
                "expected a duration greater than zero, for example 1 s",
            ));
        }
        if self.expected_response_after.is_zero() {
            return Err(InvalidSetting::new(
                "heartbeat.expected_response_after",
                self.expected_response_after,
                "expected a duration greater than zero, for example 1 s",
            ));
        }
        self.failure_detector.validate()
    }
}

/// Heartbeat request sent by the monitoring node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The monitoring node.
    pub from: UniqueAddress,
    /// The monitored incarnation; another incarnation at the same address does not respond.
    pub to: UniqueAddress,
    /// Number of the heartbeat round, increasing by one per round.
    pub sequence_nr: u64,
}

/// Heartbeat response sent back by the monitored node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The monitored node that responds.
    pub from: UniqueAddress,
    /// Sequence number copied from the request.
    pub sequence_nr: u64,
}

/// Change of this node's opinion about a monitored member, to be recorded by the membership
/// core in this node's row of the reachability table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReachabilityObservation {
    /// The failure detector of the subject crossed the phi threshold.
    Unreachable(UniqueAddress),
    /// The subject was reported unreachable and is available again, or is no longer
    /// monitored by this node.
    Reachable(UniqueAddress),
}

/// Outputs of one [`HeartbeatCore::tick`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeartbeatOutput {
    /// Requests to send, one per active receiver when a round was due.
    pub requests: Vec<HeartbeatRequest>,
    /// Reachability changes seen by this node, in ring order of the subjects.
    pub observations: Vec<ReachabilityObservation>,
    /// How late the heartbeat round ran, when more than `late_tick_threshold`.
    pub late_by: Option<Duration>,
}

/// Returns how much later than `expected` a tick runs at `now`; zero when it is on time or
/// early.
pub fn tick_lateness(expected: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(expected)
}

/// Returns the position of `node` on the heartbeat ring.
///
/// The hash is 64-bit FNV-1a over the address text and the uid, so every node computes the
/// same ring regardless of platform or Rust version.
pub fn ring_hash(node: &UniqueAddress) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let text = node.address.to_string();
    let bytes = text.bytes().chain(node.uid.to_be_bytes());
    bytes.fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Members ordered by [`ring_hash`], with the unreachable ones marked.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatRing {
    /// Nodes sorted by (hash, address); the address breaks hash ties.
    nodes: Vec<(u64, UniqueAddress)>,
    unreachable: BTreeSet<UniqueAddress>,
    monitored_by_nr_of_members: usize,
}

impl HeartbeatRing {
    /// Builds the ring of `nodes`; `unreachable` marks the nodes that are monitored but not
    /// counted.
    pub fn new(
        nodes: impl IntoIterator<Item = UniqueAddress>,
        unreachable: BTreeSet<UniqueAddress>,
        monitored_by_nr_of_members: NonZeroUsize,
    ) -> Self {
        let mut nodes: Vec<(u64, UniqueAddress)> = nodes
            .into_iter()
            .map(|node| (ring_hash(&node), node))
            .collect();
        nodes.sort();
        nodes.dedup();
        Self {
            nodes,
            unreachable,
            monitored_by_nr_of_members: monitored_by_nr_of_members.get(),
        }
    }

    /// Returns the nodes on the ring, in ring order.
    pub fn nodes(&self) -> impl Iterator<Item = &UniqueAddress> {
        self.nodes.iter().map(|(_, node)| node)
    }

    /// Returns the nodes that `sender` monitors.
    ///
    /// Walks the ring from the position after `sender`, wrapping around, and takes nodes
    /// until `monitored_by_nr_of_members` reachable ones are taken. Unreachable nodes met on
    /// the way are taken too but not counted, as long as fewer than
    /// `monitored_by_nr_of_members` nodes have been taken in total. When the ring has no
    /// more than `monitored_by_nr_of_members + 1` nodes, returns every node but `sender`.
    /// `sender` need not be on the ring.
    pub fn receivers(&self, sender: &UniqueAddress) -> BTreeSet<UniqueAddress> {
        let limit = self.monitored_by_nr_of_members;
        if self.nodes.len() <= limit + 1 {
            return self
                .nodes()
                .filter(|node| *node != sender)
                .cloned()
                .collect();
        }
        let key = (ring_hash(sender), sender.clone());
        let start = match self.nodes.binary_search(&key) {
            Ok(position) => position + 1,
            Err(position) => position,
        };
        let mut receivers = BTreeSet::new();
        let mut reachable_taken = 0;
        for offset in 0..self.nodes.len() {
            if reachable_taken == limit {
                break;
            }
            let node = &self.nodes[(start + offset) % self.nodes.len()].1;
            if node == sender {
                continue;
            }
            if !self.unreachable.contains(node) {
                receivers.insert(node.clone());
                reachable_taken += 1;
            } else if receivers.len() < limit {
                receivers.insert(node.clone());
            }
        }
        receivers
    }
}

/// Sans-IO heartbeat sender and receiver of one node.
#[derive(Debug)]
pub struct HeartbeatCore {
    self_address: UniqueAddress,
    settings: HeartbeatSettings,
    members: BTreeSet<UniqueAddress>,
    ring: HeartbeatRing,
    ring_receivers: BTreeSet<UniqueAddress>,
    /// Former ring receivers that were unavailable when the ring changed; monitored until
    /// they respond again or leave the cluster.
    old_receivers_now_unreachable: BTreeSet<UniqueAddress>,
    detectors: BTreeMap<UniqueAddress, PhiAccrualFailureDetector>,
    /// Time of the first request to each receiver that has no detector yet.
    first_request_sent: BTreeMap<UniqueAddress, Instant>,
    reported_unreachable: BTreeSet<UniqueAddress>,
    next_round_due: Option<Instant>,
    sequence_nr: u64,
}

impl HeartbeatCore {
    /// Creates the heartbeat core of the node `self_address`, with no member to monitor yet.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] when `settings` fail [`HeartbeatSettings::validate`].
    pub fn new(
        self_address: UniqueAddress,
        settings: HeartbeatSettings,
    ) -> Result<Self, InvalidSetting> {
        settings.validate()?;
        let ring = HeartbeatRing::new(
            [self_address.clone()],
            BTreeSet::new(),
            settings.monitored_by_nr_of_members,
        );
        Ok(Self {
            self_address,
            settings,
            members: BTreeSet::new(),
            ring,
            ring_receivers: BTreeSet::new(),
            old_receivers_now_unreachable: BTreeSet::new(),
            detectors: BTreeMap::new(),
            first_request_sent: BTreeMap::new(),
            reported_unreachable: BTreeSet::new(),
            next_round_due: None,
            sequence_nr: 0,
        })
    }

    /// Replaces the member set and recomputes the ring.
    ///
    /// `members` are the incarnations to place on the ring: every member that is not
    /// Removed (this node may be included or not). `unreachable` are the members that the
    /// reachability table marks unreachable by any observer. A former receiver that is
    /// unavailable at `now` stays monitored until it responds again, and a node that left
    /// `members` loses its detector at once.
    pub fn update_members(
        &mut self,
        members: &BTreeSet<UniqueAddress>,
        unreachable: &BTreeSet<UniqueAddress>,
        now: Instant,
    ) {
        self.members = members
            .iter()
            .filter(|node| **node != self.self_address)
            .cloned()
            .collect();
        let ring_nodes = self
            .members
            .iter()
            .cloned()
            .chain([self.self_address.clone()]);
        self.ring = HeartbeatRing::new(
            ring_nodes,
            unreachable.clone(),
            self.settings.monitored_by_nr_of_members,
        );
        let new_receivers = self.ring.receivers(&self.self_address);

        // Former receivers stay monitored while unavailable, so this node can report them
        // reachable again; available ones are dropped.
        let dropped: Vec<UniqueAddress> = self
            .ring_receivers
            .difference(&new_receivers)
            .cloned()
            .collect();
        for node in dropped {
            let unavailable = self
                .detectors
                .get(&node)
                .is_some_and(|detector| !detector.is_available(now));
            if unavailable && self.members.contains(&node) {
                self.old_receivers_now_unreachable.insert(node);
            } else {
                self.stop_monitoring(&node);
            }
        }
        self.ring_receivers = new_receivers;

        // Nodes that left the cluster are no longer monitored at all.
        let left: Vec<UniqueAddress> = self
            .detectors
            .keys()
            .chain(self.old_receivers_now_unreachable.iter())
            .chain(self.first_request_sent.keys())
            .filter(|node| !self.members.contains(*node))
            .cloned()
            .collect();
        for node in left {
            self.old_receivers_now_unreachable.remove(&node);
            self.stop_monitoring(&node);
        }
        self.reported_unreachable
            .retain(|node| self.members.contains(node));
        tracing::trace!(
            node = %self.self_address,
            receivers = self.ring_receivers.len(),
            old_unreachable = self.old_receivers_now_unreachable.len(),
            "heartbeat ring recomputed"
        );
    }

    /// Builds the response to a heartbeat request; returns `None` when the request is for another
    /// incarnation.
    pub fn handle_request(&self, request: &HeartbeatRequest) -> Option<HeartbeatResponse> {
        if request.to != self.self_address {
            tracing::debug!(
                node = %self.self_address,
                from = %request.from,
                to = %request.to,
                "heartbeat request for another incarnation dropped"
            );
            return None;
        }
        tracing::trace!(node = %self.self_address, from = %request.from, "heartbeat request");
        Some(HeartbeatResponse {
            from: self.self_address.clone(),
            sequence_nr: request.sequence_nr,
        })
    }

    /// Feeds a heartbeat response received at `now` into the detector of its sender.
    ///
    /// Responses from nodes that are not active receivers are dropped. A former receiver
    /// that answers again is no longer monitored once it is reported reachable.
    pub fn handle_response(&mut self, response: &HeartbeatResponse, now: Instant) {
        let from = &response.from;
        if !self.is_active_receiver(from) {
            tracing::debug!(
                node = %self.self_address,
                from = %from,
                "heartbeat response from a node not monitored dropped"
            );
            return;
        }
        tracing::trace!(node = %self.self_address, from = %from, "heartbeat response");
        self.first_request_sent.remove(from);
        self.heartbeat(from, now);
    }

    /// Runs the heartbeat steps due at `now` and returns what to send and report.
    pub fn tick(&mut self, now: Instant) -> HeartbeatOutput {
        let mut output = HeartbeatOutput::default();

        // 1. Expected first heartbeat: start detectors of receivers that never answered.
        let expired: Vec<(UniqueAddress, Instant)> = self
            .first_request_sent
            .iter()
            .map(|(node, sent)| (node.clone(), *sent + self.settings.expected_response_after))
            .filter(|(_, deadline)| *deadline <= now)
            .collect();
        for (node, deadline) in expired {
            self.first_request_sent.remove(&node);
            if self.is_active_receiver(&node) && !self.detectors.contains_key(&node) {
                tracing::debug!(
                    node = %self.self_address,
                    subject = %node,
                    "no first heartbeat response, starting the failure detector anyway"
                );
                self.heartbeat(&node, deadline);
            }
        }

        // 2. Heartbeat round, with a lateness check against the planned time.
        let round_due = self.next_round_due.is_none_or(|due| due <= now);
        if round_due {
            if let Some(due) = self.next_round_due {
                let lateness = tick_lateness(due, now);
                if lateness > self.settings.late_tick_threshold {
                    tracing::warn!(
                        node = %self.self_address,
                        late_ms = lateness.as_millis() as u64,
                        interval_ms = self.settings.interval.as_millis() as u64,
                        "heartbeat round ran late, peers may suspect this node"
                    );
                    output.late_by = Some(lateness);
                }
            }
            self.sequence_nr += 1;
            for to in self.active_receivers() {
                if !self.detectors.contains_key(&to) {
                    self.first_request_sent.entry(to.clone()).or_insert(now);
                }
                output.requests.push(HeartbeatRequest {
                    from: self.self_address.clone(),
                    to,
                    sequence_nr: self.sequence_nr,
                });
            }
            self.next_round_due = Some(now + self.settings.interval);
        }

        // 3. Reachability changes, in ring order.
        let ring_order: Vec<UniqueAddress> = self.ring.nodes().cloned().collect();
        for node in ring_order {
            let available = self
                .detectors
                .get(&node)
                .is_none_or(|detector| detector.is_available(now));
            let reported = self.reported_unreachable.contains(&node);
            if !available && !reported {
                tracing::trace!(node = %self.self_address, subject = %node, "subject unreachable");
                self.reported_unreachable.insert(node.clone());
                output
                    .observations
                    .push(ReachabilityObservation::Unreachable(node));
            } else if available && reported {
                tracing::trace!(node = %self.self_address, subject = %node, "subject reachable");
                self.reported_unreachable.remove(&node);
                self.old_receivers_now_unreachable.remove(&node);
                if !self.ring_receivers.contains(&node) {
                    self.stop_monitoring(&node);
                }
                output
                    .observations
                    .push(ReachabilityObservation::Reachable(node));
            }
        }
        output
    }

    /// Returns when [`HeartbeatCore::tick`] should run next; `None` before the first tick,
    /// which should run at once.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let first_deadline = self
            .first_request_sent
            .values()
            .map(|sent| *sent + self.settings.expected_response_after)
            .min();
        match (self.next_round_due, first_deadline) {
            (Some(round), Some(first)) => Some(round.min(first)),
            (round, first) => round.or(first),
        }
    }

    /// Returns the nodes heartbeats are sent to: the ring receivers and the former receivers
    /// still unavailable.
    pub fn active_receivers(&self) -> BTreeSet<UniqueAddress> {
        self.ring_receivers
            .union(&self.old_receivers_now_unreachable)
            .cloned()
            .collect()
    }

    /// Returns the receivers chosen on the ring, without the former unavailable ones.
    pub fn ring_receivers(&self) -> &BTreeSet<UniqueAddress> {
        &self.ring_receivers
    }

    /// Returns the failure detector of `node`, if it is monitored and has started.
    pub fn detector(&self, node: &UniqueAddress) -> Option<&PhiAccrualFailureDetector> {
        self.detectors.get(node)
    }

    /// Returns true when this node currently reports `node` unreachable.
    pub fn is_reported_unreachable(&self, node: &UniqueAddress) -> bool {
        self.reported_unreachable.contains(node)
    }

    /// Returns the settings of this core.
    pub fn settings(&self) -> &HeartbeatSettings {
        &self.settings
    }

    fn is_active_receiver(&self, node: &UniqueAddress) -> bool {
        self.ring_receivers.contains(node) || self.old_receivers_now_unreachable.contains(node)
    }

    fn heartbeat(&mut self, node: &UniqueAddress, at: Instant) {
        let detector = self.detectors.entry(node.clone()).or_insert_with(|| {
            PhiAccrualFailureDetector::new(self.settings.failure_detector.clone())
                .expect("failure detector settings were validated in HeartbeatCore::new")
        });
        detector.heartbeat(at);
    }

    fn stop_monitoring(&mut self, node: &UniqueAddress) {
        self.detectors.remove(node);
        self.first_request_sent.remove(node);
    }
}
