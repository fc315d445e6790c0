//! Settings of the split brain resolver.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::failure_detector::InvalidSetting;

/// Rule by which the resolver chooses the side of a partition that survives.
///
/// Defaults and semantics follow Akka's `akka.cluster.split-brain-resolver` section of
/// `reference.conf`. Only members that are Up, Leaving or preparing a full shutdown are
/// counted; Joining and WeaklyUp members are downed with their side but never counted,
/// because they may have been moved to Up on one side only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DowningStrategy {
    /// The side with more members survives. With equal sides, the side that contains the
    /// member with the lowest address survives.
    ///
    /// Good default when the cluster size changes at run time. A partition into three or
    /// more parts can leave no side with a majority, and then every side downs itself.
    KeepMajority {
        /// Count only members with this role; `None` counts every member.
        role: Option<String>,
    },
    /// A side survives when it has at least `quorum_size` members.
    ///
    /// Suited to a cluster of fixed size. When the cluster has grown beyond
    /// `2 * quorum_size - 1` counted members, two sides could both reach the quorum, so
    /// every node is downed instead.
    StaticQuorum {
        /// Minimum number of counted members for a side to survive.
        quorum_size: NonZeroUsize,
        /// Count only members with this role; `None` counts every member.
        role: Option<String>,
    },
    /// The side with the oldest member (lowest up number) survives.
    ///
    /// Keeps the node that hosts cluster singletons. A single crash of the oldest node
    /// downs every other node unless `down_if_alone` is set.
    KeepOldest {
        /// When the oldest member is alone on its side and the other side has members, the
        /// oldest is downed and the other side survives. Default true.
        down_if_alone: bool,
        /// Look for the oldest among members with this role; `None` uses every member.
        role: Option<String>,
    },
    /// Every node is downed on any partition that lasts past `stable_after`.
    ///
    /// For systems that restart the whole cluster rather than risk a wrong choice.
    DownAll,
    /// The side that acquires an external lease survives; the side without the majority
    /// waits `acquire_lease_delay_for_minority` before trying, so the majority usually wins.
    ///
    /// Safe even when sides cannot count each other, as long as the lease is.
    LeaseMajority {
        /// Count only members with this role for the majority; `None` counts every member.
        role: Option<String>,
        /// Wait of the minority side before it tries to acquire the lease. Default 2 s.
        acquire_lease_delay_for_minority: Duration,
        /// Time after acquiring at which the lease is released, so a later partition can
        /// acquire it. Default 40 s.
        release_after: Duration,
    },
}

impl Default for DowningStrategy {
    fn default() -> Self {
        DowningStrategy::KeepMajority { role: None }
    }
}

impl DowningStrategy {
    /// Returns the lease-majority strategy with Akka's default delays.
    pub fn lease_majority(role: Option<String>) -> Self {
        DowningStrategy::LeaseMajority {
            role,
            acquire_lease_delay_for_minority: Duration::from_secs(2),
            release_after: Duration::from_secs(40),
        }
    }

    /// Returns the role filter of the strategy, if any.
    pub fn role(&self) -> Option<&str> {
        match self {
            DowningStrategy::KeepMajority { role }
            | DowningStrategy::StaticQuorum { role, .. }
            | DowningStrategy::KeepOldest { role, .. }
            | DowningStrategy::LeaseMajority { role, .. } => role.as_deref(),
            DowningStrategy::DownAll => None,
        }
    }
}

/// Settings of the split brain resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbrSettings {
    /// Whether the resolver downs nodes at all.
    ///
    /// Default true. Akka's default is off, which leaves a partition unresolved until an
    /// operator downs nodes by hand. akkord turns it on so that every partition is resolved.
    pub enabled: bool,
    /// Rule that picks the surviving side.
    ///
    /// Default [`DowningStrategy::KeepMajority`] without a role.
    pub strategy: DowningStrategy,
    /// Time membership and reachability must stay unchanged before the resolver decides.
    ///
    /// Duration, default 20 s (Akka). It must cover the time for unreachability to be
    /// detected and gossiped to every node of a side, so both sides decide on the same
    /// picture. Akka's documentation suggests 7 s for about 5 nodes, 10 s for 10, 13 s for
    /// 20, 17 s for 50 and 20 s for 100; see [`SbrSettings::fast`]. Shorter values resolve
    /// crashes sooner but risk decisions on a picture that is still changing. Must be
    /// greater than zero.
    pub stable_after: Duration,
    /// Extra time after `stable_after` at which a reachability picture that keeps changing
    /// makes every node down itself.
    ///
    /// Duration, default 15 s, that is three quarters of `stable_after` but at least 4 s
    /// (Akka's `down-all-when-unstable = on`). Measured from the first reachability change
    /// of an unstable period; the period ends when no member is unreachable. `None` turns
    /// the rule off, and a flapping network may then never be resolved.
    pub down_all_when_unstable: Option<Duration>,
    /// Time the singleton and sharding layers wait after a node was removed before they
    /// start its singletons and shards elsewhere.
    ///
    /// Duration, default equal to `stable_after` (Akka uses `stable-after` when
    /// `down-removal-margin` is off). The downed side needs this long to notice that it was
    /// downed and stop its own copies; a shorter margin risks two active copies. Must be
    /// greater than zero.
    pub down_removal_margin: Duration,
}

impl Default for SbrSettings {
    fn default() -> Self {
        Self::with_stable_after(Duration::from_secs(20))
    }
}

impl SbrSettings {
    /// Returns the default settings with `stable_after` replaced and the settings derived
    /// from it, `down_all_when_unstable` and `down_removal_margin`, recomputed.
    pub fn with_stable_after(stable_after: Duration) -> Self {
        Self {
            enabled: true,
            strategy: DowningStrategy::default(),
            stable_after,
            down_all_when_unstable: Some(default_down_all_when_unstable(stable_after)),
            down_removal_margin: stable_after,
        }
    }

    /// Returns the profile for small clusters of up to about 5 nodes on a reliable network:
    /// `stable_after` 7 s, so a crash is resolved about 12 s after the last heartbeat.
    pub fn fast() -> Self {
        Self::with_stable_after(Duration::from_secs(7))
    }

    /// Checks every field against its documented limits.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] naming the first field that is out of range: a zero
    /// duration, an empty role name, or a lease delay or release time of zero.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.stable_after.is_zero() {
            return Err(InvalidSetting::new(
                "sbr.stable_after",
                self.stable_after,
                "expected a duration greater than zero, for example 20 s",
            ));
        }
        if self.down_all_when_unstable == Some(Duration::ZERO) {
            return Err(InvalidSetting::new(
                "sbr.down_all_when_unstable",
                Duration::ZERO,
                "expected a duration greater than zero, or None to turn the rule off",
            ));
        }
        if self.down_removal_margin.is_zero() {
            return Err(InvalidSetting::new(
                "sbr.down_removal_margin",
                self.down_removal_margin,
                "expected a duration greater than zero, usually stable_after",
            ));
        }
        if self.strategy.role() == Some("") {
            return Err(InvalidSetting::new(
                "sbr.strategy.role",
                "",
                "expected a role name, or None to count every member",
            ));
        }
        if let DowningStrategy::LeaseMajority {
            acquire_lease_delay_for_minority,
            release_after,
            ..
        } = &self.strategy
        {
            if acquire_lease_delay_for_minority.is_zero() {
                return Err(InvalidSetting::new(
                    "sbr.strategy.acquire_lease_delay_for_minority",
                    acquire_lease_delay_for_minority,
                    "expected a duration greater than zero, for example 2 s, so the majority \
                     side tries first",
                ));
            }
            if release_after.is_zero() {
                return Err(InvalidSetting::new(
                    "sbr.strategy.release_after",
                    release_after,
                    "expected a duration greater than zero, for example 40 s",
                ));
            }
        }
        Ok(())
    }

    /// Returns the time after the first reachability change of an unstable period at which
    /// every node is downed, or `None` when the rule is off.
    pub fn unstable_limit(&self) -> Option<Duration> {
        self.down_all_when_unstable
            .map(|extra| self.stable_after + extra)
    }
}

/// Three quarters of `stable_after`, but at least 4 s, as Akka derives
/// `down-all-when-unstable = on`.
fn default_down_all_when_unstable(stable_after: Duration) -> Duration {
    (stable_after * 3 / 4).max(Duration::from_secs(4))
}
