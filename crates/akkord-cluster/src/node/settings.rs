//! Settings of the cluster node: the settings of its three cores plus its own timers.

use std::time::Duration;

use crate::failure_detector::InvalidSetting;
use crate::heartbeat::HeartbeatSettings;
use crate::membership::{InvalidMembershipSetting, MembershipSettings};
use crate::sbr::SbrSettings;

/// Settings of a [`crate::node::ClusterNode`].
#[derive(Clone, Debug)]
pub struct ClusterNodeSettings {
    /// Settings of the membership core: seed nodes, gossip and leader intervals, WeaklyUp.
    pub membership: MembershipSettings,
    /// Settings of the heartbeat sender and the phi accrual failure detectors.
    pub heartbeat: HeartbeatSettings,
    /// Settings of the split brain resolver.
    pub sbr: SbrSettings,
    /// Interval at which the node runs the resolver's timers (stable-after, down-all when
    /// unstable, lease delays).
    ///
    /// Duration, default 1 s, as Akka's resolver tick. The resolver decides at most this
    /// long after its view became stable, so shorter values resolve a partition a little
    /// sooner at the cost of more ticks. Must be greater than zero.
    pub resolver_tick_interval: Duration,
    /// Time without convergence after which the node reports
    /// [`crate::node::NodeEvent::ConvergenceBlocked`] with the members that block it; the
    /// report repeats every such interval while convergence stays blocked.
    ///
    /// Duration, default 10 s, longer than the failure detection time (about 4.5 s) plus a
    /// few gossip rounds, so ordinary joins and crashes resolve before a report. Must be
    /// greater than zero.
    pub convergence_blocked_report_after: Duration,
}

impl Default for ClusterNodeSettings {
    fn default() -> Self {
        Self {
            membership: MembershipSettings::default(),
            heartbeat: HeartbeatSettings::default(),
            sbr: SbrSettings::default(),
            resolver_tick_interval: Duration::from_secs(1),
            convergence_blocked_report_after: Duration::from_secs(10),
        }
    }
}

impl ClusterNodeSettings {
    /// Checks the settings of every core and the node's own timers.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidClusterSetting`] for the first invalid field found, checking the
    /// membership, heartbeat, resolver and node settings in that order.
    pub fn validate(&self) -> Result<(), InvalidClusterSetting> {
        self.membership.validate()?;
        self.heartbeat.validate()?;
        self.sbr.validate()?;
        for (field, value) in [
            ("node.resolver_tick_interval", self.resolver_tick_interval),
            (
                "node.convergence_blocked_report_after",
                self.convergence_blocked_report_after,
            ),
        ] {
            if value.is_zero() {
                return Err(InvalidSetting::new(
                    field,
                    value,
                    "expected a duration greater than zero, for example 1 s",
                )
                .into());
            }
        }
        Ok(())
    }
}

/// A setting of the cluster node with a value it cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidClusterSetting {
    /// A membership setting is invalid.
    #[error(transparent)]
    Membership(#[from] InvalidMembershipSetting),
    /// A heartbeat, failure detector, resolver or node timer setting is invalid.
    #[error(transparent)]
    Setting(#[from] InvalidSetting),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ClusterNodeSettings::default().validate(), Ok(()));
    }

    #[test]
    fn zero_node_timer_rejected() {
        let settings = ClusterNodeSettings {
            resolver_tick_interval: Duration::ZERO,
            ..ClusterNodeSettings::default()
        };
        let Err(InvalidClusterSetting::Setting(error)) = settings.validate() else {
            panic!("a zero resolver tick interval was accepted");
        };
        assert_eq!(error.field, "node.resolver_tick_interval");
    }

    #[test]
    fn core_settings_checked() {
        let mut settings = ClusterNodeSettings::default();
        settings.membership.gossip_interval = Duration::ZERO;
        assert!(matches!(
            settings.validate(),
            Err(InvalidClusterSetting::Membership(_))
        ));
        let mut settings = ClusterNodeSettings::default();
        settings.heartbeat.interval = Duration::ZERO;
        assert!(matches!(
            settings.validate(),
            Err(InvalidClusterSetting::Setting(error)) if error.field == "heartbeat.interval"
        ));
        let mut settings = ClusterNodeSettings::default();
        settings.sbr.stable_after = Duration::ZERO;
        assert!(matches!(
            settings.validate(),
            Err(InvalidClusterSetting::Setting(error)) if error.field == "sbr.stable_after"
        ));
    }
}
