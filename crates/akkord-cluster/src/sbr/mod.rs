//! Split brain resolver: decides which members to down when some are unreachable.
//!
//! After a network partition or a crash, the members that can still reach each other form
//! a side. Both sides must agree, without talking to each other, on which one keeps running.
//! Each side's leader applies the same [`DowningStrategy`] to its own [`ClusterView`] and
//! downs either the other side or its own, itself included.
//!
//! Invariants:
//!
//! - A strategy decision is taken only on the leader of a side, only while some member is
//!   unreachable or indirectly connected, and only when membership and reachability have
//!   not changed for `stable_after`. A change of a counted member's status, or of the set of
//!   unreachable or indirectly connected members, restarts that timer; Joining and WeaklyUp
//!   members do not.
//! - Indirectly connected members, reported unreachable by some observers while still
//!   taking part in gossip, are always downed with the decision, and alone when nothing
//!   else is unreachable.
//! - When the reachability picture has kept changing for longer than
//!   `stable_after + down_all_when_unstable` since the first change of an unstable period,
//!   every member is downed. As in Akka, this rule acts on every node, not only the leader,
//!   so a flapping cluster stops even when its leadership flaps too.
//! - After a decision the stable timer restarts and the unstable period ends, so the same
//!   decision is repeated at most once per `stable_after` while the membership core has not
//!   yet applied it.
//!
//! Steps of [`SplitBrainResolver::tick`]:
//!
//! 1. If the unstable period is over the limit, down all.
//! 2. If waiting for a lease and the delay has passed, request it once.
//! 3. If a held lease is due for release, request its release.
//! 4. If this node is the leader, a member is unreachable, the view is stable and no lease
//!    request is pending, decide; a lease decision starts the wait of step 2, any other
//!    decision is output with the nodes to down.
//!
//! The shell performs lease requests with a [`crate::lease::Lease`] and reports the outcome
//! through [`SplitBrainResolver::handle_lease_result`].

mod decision;
mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;

use crate::failure_detector::InvalidSetting;
use crate::member::MemberStatus;

pub use decision::{decide, Analysis, ClusterView, Decision, UnreachableRecord};
pub use settings::{DowningStrategy, SbrSettings};

/// Request for the shell to perform on the lease of the lease-majority strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseCommand {
    /// Acquire the lease for `owner`, then call
    /// [`SplitBrainResolver::handle_lease_result`].
    ///
    /// The shell must always report a result: an error or a timeout of the lease backend
    /// counts as not acquired. Until the result arrives the resolver takes no other
    /// strategy decision.
    Acquire {
        /// Owner name to acquire with.
        owner: String,
    },
    /// Release the lease held by `owner`; no result is expected.
    Release {
        /// Owner name the lease was acquired with.
        owner: String,
    },
}

/// Outputs of one step of the resolver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SbrOutput {
    /// Decision taken in this step, if any.
    pub decision: Option<Decision>,
    /// Members to mark Down, this node included when its side loses.
    pub down: BTreeSet<UniqueAddress>,
    /// Lease request for the shell, if any.
    pub lease: Option<LeaseCommand>,
}

/// Sans-IO split brain resolver of one node.
#[derive(Debug)]
pub struct SplitBrainResolver {
    self_node: UniqueAddress,
    settings: SbrSettings,
    view: ClusterView,
    analysis: Analysis,
    fingerprint: Option<Fingerprint>,
    stable_deadline: Option<Instant>,
    /// Start of the current unstable period: the first reachability change since no member
    /// was unreachable.
    unstable_since: Option<Instant>,
    lease: LeaseState,
}

impl SplitBrainResolver {
    /// Creates the resolver of the node `self_node`; it decides nothing before the first
    /// [`SplitBrainResolver::update_view`].
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] when `settings` fail [`SbrSettings::validate`].
    pub fn new(self_node: UniqueAddress, settings: SbrSettings) -> Result<Self, InvalidSetting> {
        settings.validate()?;
        let view = ClusterView::default();
        let analysis = Analysis::new(&view);
        Ok(Self {
            self_node,
            settings,
            view,
            analysis,
            fingerprint: None,
            stable_deadline: None,
            unstable_since: None,
            lease: LeaseState::Idle,
        })
    }

    /// Replaces the view of the cluster, restarting the stable timer when membership or
    /// reachability changed.
    pub fn update_view(&mut self, view: ClusterView, now: Instant) {
        let analysis = Analysis::new(&view);
        let fingerprint = Fingerprint::new(&view, &analysis);
        let changed = self.fingerprint.as_ref() != Some(&fingerprint);
        let reachability_changed = self
            .fingerprint
            .as_ref()
            .is_none_or(|previous| previous.suspects != fingerprint.suspects);
        if changed {
            tracing::trace!(node = %self.self_node, "sbr view changed, stable timer restarted");
            self.stable_deadline = Some(now + self.settings.stable_after);
        }
        if !analysis.has_problem() {
            self.unstable_since = None;
        } else if reachability_changed && self.unstable_since.is_none() {
            self.unstable_since = Some(now);
        }
        self.fingerprint = Some(fingerprint);
        self.view = view;
        self.analysis = analysis;
    }

    /// Runs the steps due at `now`.
    pub fn tick(&mut self, now: Instant) -> SbrOutput {
        let mut output = SbrOutput::default();
        if !self.settings.enabled {
            return output;
        }

        // 1. Down all when the reachability picture keeps changing for too long.
        if let (Some(since), Some(limit)) = (self.unstable_since, self.settings.unstable_limit()) {
            if now.saturating_duration_since(since) > limit {
                tracing::warn!(
                    node = %self.self_node,
                    unstable_ms = now.saturating_duration_since(since).as_millis() as u64,
                    "sbr downing all members because reachability is unstable"
                );
                self.unstable_since = None;
                self.emit(Decision::DownAll, now, &mut output);
                return output;
            }
        }

        // 2. and 3. Lease requests that are due.
        let owner = self.lease_owner();
        match &mut self.lease {
            LeaseState::Waiting {
                acquire_at,
                requested,
                ..
            } => {
                if !*requested && *acquire_at <= now {
                    *requested = true;
                    output.lease = Some(LeaseCommand::Acquire { owner });
                }
                return output;
            }
            LeaseState::Held { release_at } if *release_at <= now => {
                self.lease = LeaseState::Idle;
                output.lease = Some(LeaseCommand::Release { owner });
            }
            LeaseState::Held { .. } | LeaseState::Idle => {}
        }

        // 4. Strategy decision on a stable view.
        let stable = self.stable_deadline.is_some_and(|deadline| deadline <= now);
        if !(self.view.is_leader && self.analysis.has_problem() && stable) {
            return output;
        }
        let decision = decide(&self.settings.strategy, &self.analysis);
        if let Some(delay) = decision.lease_delay() {
            tracing::info!(
                node = %self.self_node,
                delay_ms = delay.as_millis() as u64,
                decision = ?decision,
                "sbr waiting to acquire the lease"
            );
            // A zero delay requests the lease at once. The request replaces a release
            // output just above, because this node keeps the lease it is about to use.
            let requested = delay.is_zero();
            self.lease = LeaseState::Waiting {
                decision,
                acquire_at: now + delay,
                requested,
            };
            if requested {
                output.lease = Some(LeaseCommand::Acquire {
                    owner: self.lease_owner(),
                });
            }
            return output;
        }
        self.emit(decision, now, &mut output);
        output
    }

    /// Completes a lease request: with the lease this side survives, without it this side
    /// downs itself. Returns the resulting downs.
    ///
    /// Does nothing when no request is pending. Downs nothing when, meanwhile, no member is
    /// unreachable any more, so a partition that healed while the minority waited for the
    /// lease does not down that side.
    pub fn handle_lease_result(&mut self, acquired: bool, now: Instant) -> SbrOutput {
        let mut output = SbrOutput::default();
        let LeaseState::Waiting {
            decision,
            requested: true,
            ..
        } = &self.lease
        else {
            tracing::debug!(node = %self.self_node, acquired, "unexpected lease result dropped");
            return output;
        };
        let final_decision = decision.after_lease(acquired);
        let healed = !self.analysis.has_problem();
        self.lease = if acquired {
            LeaseState::Held {
                release_at: now + self.lease_release_after(),
            }
        } else {
            LeaseState::Idle
        };
        if healed {
            tracing::debug!(
                node = %self.self_node,
                acquired,
                "lease result after the partition healed, decision dropped"
            );
            return output;
        }
        self.emit(final_decision, now, &mut output);
        output
    }

    /// Returns the time at which the view will count as stable, if a view was given.
    pub fn stable_deadline(&self) -> Option<Instant> {
        self.stable_deadline
    }

    /// Returns the margin the singleton and sharding layers wait after a removal.
    pub fn down_removal_margin(&self) -> Duration {
        self.settings.down_removal_margin
    }

    /// Returns the owner name this node uses for the lease: its unique address as text.
    pub fn lease_owner(&self) -> String {
        self.self_node.to_string()
    }

    /// Returns the sides derived from the latest view.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Returns the settings of this resolver.
    pub fn settings(&self) -> &SbrSettings {
        &self.settings
    }

    fn emit(&mut self, decision: Decision, now: Instant, output: &mut SbrOutput) {
        let down = self.analysis.nodes_to_down(&decision);
        let downs_self = down.contains(&self.self_node);
        tracing::warn!(
            node = %self.self_node,
            decision = ?decision,
            down = ?down,
            downs_self,
            "sbr decision taken"
        );
        // A decision ends the unstable period; the next reachability change starts a new one.
        self.stable_deadline = Some(now + self.settings.stable_after);
        self.unstable_since = None;
        output.decision = Some(decision);
        output.down = down;
    }

    fn lease_release_after(&self) -> Duration {
        match &self.settings.strategy {
            DowningStrategy::LeaseMajority { release_after, .. } => *release_after,
            _ => Duration::ZERO,
        }
    }
}

/// The parts of a view whose change restarts the stable timer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    /// Status of every member that is not Joining or WeaklyUp.
    statuses: BTreeMap<UniqueAddress, MemberStatus>,
    /// Unreachable and indirectly connected members.
    suspects: (BTreeSet<UniqueAddress>, BTreeSet<UniqueAddress>),
}

impl Fingerprint {
    fn new(view: &ClusterView, analysis: &Analysis) -> Self {
        let statuses = view
            .members
            .iter()
            .filter(|member| {
                !matches!(
                    member.status,
                    MemberStatus::Joining | MemberStatus::WeaklyUp
                )
            })
            .map(|member| (member.unique_address.clone(), member.status))
            .collect();
        Self {
            statuses,
            suspects: (
                analysis.unreachable.clone(),
                analysis.indirectly_connected.clone(),
            ),
        }
    }
}

#[derive(Clone, Debug)]
enum LeaseState {
    Idle,
    Waiting {
        decision: Decision,
        acquire_at: Instant,
        requested: bool,
    },
    Held {
        release_at: Instant,
    },
}
