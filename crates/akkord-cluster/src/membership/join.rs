//! Joining a cluster: the seed-node procedure, join requests and welcomes.
//!
//! Seed-node procedure, as in Akka Cluster:
//! 1. The first seed in the list sends `InitJoin` to the other seeds every
//!    `seed_join_retry_interval`. It joins the first seed that replies `InitJoinAck`. It
//!    forms a new cluster (joins itself) when every other seed replied `InitJoinNack` (none
//!    is a member yet), or when no seed replied within `seed_node_timeout`. A list that
//!    holds only this node forms a cluster at once.
//! 2. Every other node sends `InitJoin` to all seeds except itself every
//!    `seed_join_retry_interval` and joins the first that replies `InitJoinAck`. It never forms a
//!    cluster.
//! 3. Joining a node means sending it `Join`. Without a `Welcome` within
//!    `retry_unsuccessful_join_after`, the node starts over with step 1 or 2, or resends
//!    `Join` when it joined without seed nodes.
//!
//! A member answers `Join` as follows:
//! - another system name or protocol version: `JoinRejected` with the reason;
//! - a tombstoned incarnation: `JoinRejected`, because a removed incarnation never returns;
//! - the same incarnation again (a lost welcome): another `Welcome`;
//! - a new incarnation at the address of a member: the old incarnation is marked
//!   terminated and Down, so the leader removes it; the joiner's retry then succeeds;
//! - otherwise: the joiner becomes a Joining member and gets a `Welcome`.

use std::sync::Arc;
use std::time::Instant;

use akkord_actor::address::{Address, UniqueAddress};

use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus};
use crate::membership::messages::{
    ClusterMessage, JoinRejection, JoinRequest, MEMBERSHIP_PROTOCOL_VERSION,
    MIN_SUPPORTED_PROTOCOL_VERSION,
};
use crate::membership::{ClusterEvent, JoinState, MembershipCore, MembershipOutputs};

/// State of the seed-node procedure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SeedProcess {
    /// The full seed list, used again when a join attempt times out.
    seeds: Vec<Address>,
    /// Seeds other than this node that may still reply.
    remaining: Vec<Address>,
    /// Set when this node is the first seed: the instant at which it forms a new cluster.
    form_cluster_at: Option<Instant>,
    /// When to resend `InitJoin`.
    resend_at: Instant,
}

impl SeedProcess {
    pub(super) fn next_deadline(&self) -> Instant {
        match self.form_cluster_at {
            Some(at) => at.min(self.resend_at),
            None => self.resend_at,
        }
    }
}

impl MembershipCore {
    pub(super) fn can_start_joining(&self) -> bool {
        matches!(
            self.join,
            JoinState::Idle
                | JoinState::Seeding(_)
                | JoinState::Joining { .. }
                | JoinState::Rejected
        )
    }

    pub(super) fn start_seed_process(
        &mut self,
        seeds: Vec<Address>,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        let self_address = self.self_node.address.clone();
        let is_first_seed = seeds.first() == Some(&self_address);
        let mut remaining: Vec<Address> = Vec::new();
        for seed in &seeds {
            if *seed != self_address && !remaining.contains(seed) {
                remaining.push(seed.clone());
            }
        }
        if is_first_seed && remaining.is_empty() {
            self.form_cluster(now, out);
            return;
        }
        if remaining.is_empty() {
            tracing::warn!(node = %self.self_node, "seed list holds only this node, which is not the first seed; not joining");
            self.join = JoinState::Idle;
            return;
        }
        tracing::info!(node = %self.self_node, seeds = ?seeds, first_seed = is_first_seed, "joining through seed nodes");
        let form_cluster_at = is_first_seed.then(|| now + self.settings.seed_node_timeout);
        self.join = JoinState::Seeding(SeedProcess {
            seeds,
            remaining,
            form_cluster_at,
            resend_at: now,
        });
        self.tick_join(now, out);
    }

    /// Sends `Join` to `address`, or forms a new cluster when it is this node's address.
    pub(super) fn join_to(&mut self, address: Address, now: Instant, out: &mut MembershipOutputs) {
        if !self.can_start_joining() {
            tracing::debug!(node = %self.self_node, target = %address, "ignored join command: already a member or removed");
            return;
        }
        if address == self.self_node.address {
            self.form_cluster(now, out);
            return;
        }
        tracing::debug!(node = %self.self_node, target = %address, "sending join request");
        out.messages
            .push((address.clone(), ClusterMessage::Join(self.join_request())));
        let retry_at = self
            .settings
            .retry_unsuccessful_join_after
            .map(|after| now + after);
        self.join = JoinState::Joining {
            target: address,
            retry_at,
        };
    }

    /// Runs the join timers that are due.
    pub(super) fn tick_join(&mut self, now: Instant, out: &mut MembershipOutputs) {
        match &mut self.join {
            JoinState::Seeding(process) => {
                if process.form_cluster_at.is_some_and(|at| now >= at) {
                    tracing::info!(node = %self.self_node, "no other seed node answered in time; forming a new cluster");
                    self.form_cluster(now, out);
                    return;
                }
                if now < process.resend_at {
                    return;
                }
                process.resend_at = now + self.settings.seed_join_retry_interval;
                for seed in &process.remaining {
                    out.messages.push((
                        seed.clone(),
                        ClusterMessage::InitJoin {
                            from: self.self_node.clone(),
                        },
                    ));
                }
            }
            JoinState::Joining { target, retry_at } => {
                if !retry_at.is_some_and(|at| now >= at) {
                    return;
                }
                let target = target.clone();
                let seeds = self.settings.seed_nodes.clone();
                tracing::info!(node = %self.self_node, target = %target, "no welcome received; joining again");
                if seeds.is_empty() {
                    self.join = JoinState::Idle;
                    self.join_to(target, now, out);
                } else {
                    self.start_seed_process(seeds, now, out);
                }
            }
            _ => {}
        }
    }

    pub(super) fn handle_init_join(&mut self, from: UniqueAddress, out: &mut MembershipOutputs) {
        let accepting = self.join == JoinState::Member
            && self.self_member().is_some_and(|m| {
                !matches!(
                    m.status,
                    MemberStatus::Leaving | MemberStatus::Exiting | MemberStatus::Down
                )
            });
        let reply = if accepting {
            ClusterMessage::InitJoinAck {
                from: self.self_node.clone(),
            }
        } else {
            ClusterMessage::InitJoinNack {
                from: self.self_node.clone(),
            }
        };
        out.messages.push((from.address, reply));
    }

    pub(super) fn handle_init_join_ack(
        &mut self,
        from: UniqueAddress,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        if !matches!(self.join, JoinState::Seeding(_)) {
            tracing::debug!(node = %self.self_node, from = %from, "ignored init-join-ack outside the seed procedure");
            return;
        }
        self.join = JoinState::Idle;
        self.join_to(from.address, now, out);
    }

    pub(super) fn handle_init_join_nack(
        &mut self,
        from: UniqueAddress,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        let JoinState::Seeding(process) = &mut self.join else {
            return;
        };
        if process.form_cluster_at.is_none() {
            return;
        }
        process.remaining.retain(|seed| *seed != from.address);
        if process.remaining.is_empty() {
            tracing::info!(node = %self.self_node, "no other seed node is a member; forming a new cluster");
            self.form_cluster(now, out);
        }
    }

    pub(super) fn handle_join(&mut self, request: JoinRequest, out: &mut MembershipOutputs) {
        let joiner = request.node.clone();
        if self.join != JoinState::Member {
            tracing::debug!(node = %self.self_node, joiner = %joiner, "ignored join request: not a member yet");
            return;
        }
        if let Some(reason) = self.check_join_request(&request) {
            tracing::warn!(node = %self.self_node, joiner = %joiner, %reason, "rejected join request");
            out.messages.push((
                joiner.address.clone(),
                ClusterMessage::JoinRejected {
                    from: self.self_node.clone(),
                    reason,
                },
            ));
            return;
        }
        let self_status = self.self_member().map(|m| m.status);
        if matches!(
            self_status,
            Some(MemberStatus::Down | MemberStatus::Exiting)
        ) {
            tracing::info!(node = %self.self_node, joiner = %joiner, "ignored join request while leaving the cluster");
            return;
        }

        match self.gossip.member_at(&joiner.address).cloned() {
            Some(existing) if existing.unique_address == joiner => {
                tracing::debug!(node = %self.self_node, joiner = %joiner, "member joined again; resending welcome");
                self.send_welcome(&joiner, out);
            }
            Some(existing) => {
                tracing::info!(
                    node = %self.self_node, old = %existing.unique_address, new = %joiner,
                    "new incarnation at the address of a member; downing the old one"
                );
                if existing.status != MemberStatus::Down {
                    let next = self
                        .gossip
                        .reachability()
                        .terminated(&self.self_node, &existing.unique_address);
                    Arc::make_mut(&mut self.gossip).set_reachability(next);
                    self.down_member(&existing);
                }
            }
            None => {
                tracing::debug!(node = %self.self_node, joiner = %joiner, roles = ?request.roles, "member is joining");
                let own = self.own_member();
                if !self.gossip.has_member(&self.self_node) {
                    Arc::make_mut(&mut self.gossip).put_member(own);
                }
                Arc::make_mut(&mut self.gossip).put_member(Member::joining(
                    joiner.clone(),
                    request.roles,
                    request.app_version,
                ));
                Arc::make_mut(&mut self.gossip).increment(&self.self_node);
                self.send_welcome(&joiner, out);
            }
        }
    }

    pub(super) fn handle_welcome(
        &mut self,
        from: UniqueAddress,
        gossip: Arc<Gossip>,
        now: Instant,
        out: &mut MembershipOutputs,
    ) {
        let expected =
            matches!(&self.join, JoinState::Joining { target, .. } if *target == from.address);
        if !expected {
            tracing::debug!(node = %self.self_node, from = %from, "ignored unexpected welcome");
            return;
        }
        if !gossip.has_member(&self.self_node) || gossip.is_tombstoned(&self.self_node) {
            tracing::warn!(node = %self.self_node, from = %from, "ignored welcome that does not list this node");
            return;
        }
        tracing::info!(node = %self.self_node, from = %from, "welcomed into the cluster");
        self.gossip = gossip;
        Arc::make_mut(&mut self.gossip).mark_seen(&self.self_node);
        self.become_member(now);
        self.send_gossip(&from, out);
    }

    pub(super) fn handle_join_rejected(
        &mut self,
        from: UniqueAddress,
        reason: JoinRejection,
        out: &mut MembershipOutputs,
    ) {
        if !matches!(self.join, JoinState::Joining { .. } | JoinState::Seeding(_)) {
            tracing::debug!(node = %self.self_node, from = %from, "ignored join rejection while not joining");
            return;
        }
        tracing::warn!(node = %self.self_node, by = %from, %reason, "join request rejected; stopped joining");
        self.join = JoinState::Rejected;
        out.events
            .push(ClusterEvent::JoinRejected { by: from, reason });
    }

    /// Makes this node the only member of a new cluster.
    fn form_cluster(&mut self, now: Instant, out: &mut MembershipOutputs) {
        tracing::info!(node = %self.self_node, "forming a new cluster");
        let mut gossip = Gossip::new();
        gossip.put_member(self.own_member());
        gossip.increment(&self.self_node);
        self.gossip = Arc::new(gossip);
        self.become_member(now);
        // Moving this node to Up right away makes it the oldest member of the new cluster.
        self.leader_actions(now, out);
    }

    fn become_member(&mut self, now: Instant) {
        self.join = JoinState::Member;
        self.next_gossip = Some(now + self.settings.gossip_interval);
        self.next_leader_actions = Some(now + self.settings.leader_actions_interval);
    }

    fn check_join_request(&self, request: &JoinRequest) -> Option<JoinRejection> {
        let system = self.self_node.address.system();
        if request.system_name != system || request.node.address.system() != system {
            return Some(JoinRejection::SystemNameMismatch {
                expected: system.to_owned(),
                actual: request.system_name.clone(),
            });
        }
        let supported = MIN_SUPPORTED_PROTOCOL_VERSION..=MEMBERSHIP_PROTOCOL_VERSION;
        if !supported.contains(&request.protocol_version) {
            return Some(JoinRejection::IncompatibleProtocolVersion {
                actual: request.protocol_version,
                min_supported: MIN_SUPPORTED_PROTOCOL_VERSION,
                max_supported: MEMBERSHIP_PROTOCOL_VERSION,
            });
        }
        if self.gossip.is_tombstoned(&request.node) {
            return Some(JoinRejection::IncarnationRemoved {
                node: request.node.clone(),
            });
        }
        None
    }

    fn send_welcome(&self, joiner: &UniqueAddress, out: &mut MembershipOutputs) {
        if *joiner == self.self_node {
            return;
        }
        out.messages.push((
            joiner.address.clone(),
            ClusterMessage::Welcome {
                from: self.self_node.clone(),
                gossip: Arc::clone(&self.gossip),
            },
        ));
    }

    fn own_member(&self) -> Member {
        Member::joining(
            self.self_node.clone(),
            self.settings.roles.clone(),
            self.settings.app_version.clone(),
        )
    }

    fn join_request(&self) -> JoinRequest {
        JoinRequest {
            node: self.self_node.clone(),
            roles: self.settings.roles.clone(),
            app_version: self.settings.app_version.clone(),
            system_name: self.self_node.address.system().to_owned(),
            protocol_version: MEMBERSHIP_PROTOCOL_VERSION,
        }
    }
}
