//! Settings of the membership core.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::Duration;

use akkord_actor::address::Address;

/// Settings of the membership core.
///
/// Defaults are those of Akka 2.6 and Pekko 1.x (`akka.cluster` in their `reference.conf`).
#[derive(Clone, Debug)]
pub struct MembershipSettings {
    /// Roles of this node, used for role leaders and per-role minimums.
    ///
    /// Default: none.
    pub roles: BTreeSet<String>,
    /// Version of the application on this node, carried in the join request.
    ///
    /// Default: `"0.0.0"`. Rolling updates compare it; membership only carries it.
    pub app_version: String,
    /// Seed nodes to join through, in order; the first one may form a new cluster.
    ///
    /// Default: empty, which means the node joins only through an explicit join command
    /// and never forms a cluster by itself.
    pub seed_nodes: Vec<Address>,
    /// How long the first seed waits for a reply from another seed before it forms a new
    /// cluster.
    ///
    /// Default: 5 s (`seed-node-timeout`). Shorter forms clusters sooner after a cold start
    /// but risks two clusters when seeds start slowly. Longer delays the first start.
    pub seed_node_timeout: Duration,
    /// How often a node in the seed procedure resends `InitJoin` to the seeds that have not
    /// accepted it.
    ///
    /// Default: 1 s, the retry tick of Akka's first-seed process. Akka's other nodes resend
    /// only every `seed-node-timeout` (5 s). akkord uses 1 s for every node: with 5 s, three
    /// seeds started together took 7 s of virtual time to converge in the
    /// `three_seeds_converge_into_one_cluster` scenario, because the non-first seeds sent
    /// `InitJoin` before the first seed had formed the cluster. The cost is one small message
    /// per seed per second while joining.
    pub seed_join_retry_interval: Duration,
    /// Time after sending a join request to one node without a welcome before the seed
    /// procedure starts over; `None` waits forever.
    ///
    /// Default: 10 s (`retry-unsuccessful-join-after`). Shorter recovers faster from a lost
    /// welcome, but a slow welcome can race a second join.
    pub retry_unsuccessful_join_after: Option<Duration>,
    /// Interval between gossip rounds to one peer.
    ///
    /// Default: 1 s (`gossip-interval`). Shorter converges faster for more traffic: each
    /// round sends one message, a full state or a digest.
    pub gossip_interval: Duration,
    /// Probability, from 0 to 1, that a gossip round picks its peer among the members that
    /// have not seen the current version, when there are such members.
    ///
    /// Default: 0.8 (`gossip-different-view-probability`). Higher spreads a change faster,
    /// lower spreads load more evenly.
    pub gossip_different_view_probability: f64,
    /// Cluster size from which the probability above is reduced, falling linearly to a
    /// third of it at three times this size, so large clusters do not flood the nodes that
    /// are behind.
    ///
    /// Default: 400 members (`reduce-gossip-different-view-probability`).
    pub reduce_gossip_different_view_probability: usize,
    /// Interval between leader actions (status moves and removals).
    ///
    /// Default: 1 s (`leader-actions-interval`).
    pub leader_actions_interval: Duration,
    /// Time without convergence after which the leader moves reachable Joining members to
    /// WeaklyUp; `None` disables WeaklyUp.
    ///
    /// Default: 7 s (`allow-weakly-up-members = 7s`). WeaklyUp members can host work while
    /// an unreachable member blocks convergence, but are not counted for it.
    pub weakly_up_after: Option<Duration>,
    /// Minimum number of members before the leader moves Joining members to Up.
    ///
    /// Default: 1 (`min-nr-of-members`). Set it to the expected initial size to start work
    /// only once enough nodes are there.
    pub min_nr_of_members: NonZeroUsize,
    /// Minimum number of members per role before the leader moves Joining members to Up.
    ///
    /// Default: none (`role.<name>.min-nr-of-members`).
    pub role_min_nr_of_members: BTreeMap<String, usize>,
    /// Time to keep the tombstone of a removed incarnation before dropping it.
    ///
    /// Default: 24 h (`prune-gossip-tombstones-after`). A tombstone stops gossip from a node
    /// that missed the removal from bringing the incarnation back. Shorter keeps gossip
    /// smaller under churn, but then a node partitioned for longer can bring it back.
    pub prune_gossip_tombstones_after: Duration,
}

impl Default for MembershipSettings {
    fn default() -> Self {
        Self {
            roles: BTreeSet::new(),
            app_version: "0.0.0".to_owned(),
            seed_nodes: Vec::new(),
            seed_node_timeout: Duration::from_secs(5),
            seed_join_retry_interval: Duration::from_secs(1),
            retry_unsuccessful_join_after: Some(Duration::from_secs(10)),
            gossip_interval: Duration::from_secs(1),
            gossip_different_view_probability: 0.8,
            reduce_gossip_different_view_probability: 400,
            leader_actions_interval: Duration::from_secs(1),
            weakly_up_after: Some(Duration::from_secs(7)),
            min_nr_of_members: NonZeroUsize::MIN,
            role_min_nr_of_members: BTreeMap::new(),
            prune_gossip_tombstones_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl MembershipSettings {
    /// Checks that every interval is positive and the probability is within 0 to 1.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidMembershipSetting`] naming the first invalid field.
    pub fn validate(&self) -> Result<(), InvalidMembershipSetting> {
        let intervals = [
            ("seed_node_timeout", Some(self.seed_node_timeout)),
            (
                "seed_join_retry_interval",
                Some(self.seed_join_retry_interval),
            ),
            (
                "retry_unsuccessful_join_after",
                self.retry_unsuccessful_join_after,
            ),
            ("gossip_interval", Some(self.gossip_interval)),
            (
                "leader_actions_interval",
                Some(self.leader_actions_interval),
            ),
            (
                "prune_gossip_tombstones_after",
                Some(self.prune_gossip_tombstones_after),
            ),
        ];
        for (field, value) in intervals {
            if value.is_some_and(|duration| duration.is_zero()) {
                return Err(InvalidMembershipSetting {
                    field,
                    reason: "must be greater than zero".to_owned(),
                });
            }
        }
        let probability = self.gossip_different_view_probability;
        if !(0.0..=1.0).contains(&probability) {
            return Err(InvalidMembershipSetting {
                field: "gossip_different_view_probability",
                reason: format!("{probability} is outside 0.0..=1.0"),
            });
        }
        Ok(())
    }

    /// Returns the probability of picking a peer that has not seen the current version, for
    /// a cluster of `member_count` members.
    pub fn adjusted_gossip_different_view_probability(&self, member_count: usize) -> f64 {
        let full = self.gossip_different_view_probability.clamp(0.0, 1.0);
        let low = self.reduce_gossip_different_view_probability;
        let high = low.saturating_mul(3);
        if member_count <= low {
            return full;
        }
        let min = full / 3.0;
        if member_count >= high {
            return min;
        }
        let slope = (min - full) / (high - low) as f64;
        full + (member_count - low) as f64 * slope
    }
}

/// A membership setting with a value the core cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid membership setting {field}: {reason}; fix the value or use the default")]
pub struct InvalidMembershipSetting {
    /// Name of the field in [`MembershipSettings`].
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_reduced_for_large_clusters() {
        let s = MembershipSettings::default();
        assert_eq!(s.adjusted_gossip_different_view_probability(10), 0.8);
        assert_eq!(s.adjusted_gossip_different_view_probability(400), 0.8);
        let mid = s.adjusted_gossip_different_view_probability(800);
        assert!((mid - (0.8 + (0.8 / 3.0)) / 2.0).abs() < 1e-9);
        assert!((s.adjusted_gossip_different_view_probability(5000) - 0.8 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn validate_rejects_zero_interval_and_bad_probability() {
        assert_eq!(MembershipSettings::default().validate(), Ok(()));
        let zero = MembershipSettings {
            gossip_interval: Duration::ZERO,
            ..MembershipSettings::default()
        };
        assert_eq!(zero.validate().unwrap_err().field, "gossip_interval");
        let probability = MembershipSettings {
            gossip_different_view_probability: 1.5,
            ..MembershipSettings::default()
        };
        assert_eq!(
            probability.validate().unwrap_err().field,
            "gossip_different_view_probability"
        );
    }
}
