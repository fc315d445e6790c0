//! The sans-IO core of the singleton manager: decides when this node starts, stops and
//! hands over the singleton, from membership, protocol messages and the clock.
//!
//! The core holds no sockets, tasks or clock. The shell feeds it the members in its view
//! ([`ManagerCore::apply_members`]), hand-over messages from other nodes
//! ([`ManagerCore::handle_message`]), the termination of the singleton actor
//! ([`ManagerCore::singleton_terminated`]) and ticks ([`ManagerCore::tick`]); each call
//! returns [`Output`]s that the shell performs.
//!
//! # Invariant
//!
//! A node starts the singleton only when every member with the role that is older than
//! this node (lower `up_number`) is cleared, which means one of:
//!
//! - it sent `HandOverDone`. It sends that only after its own copy has terminated, and
//!   a node that sent it never starts the singleton again;
//! - it was removed at least `removal_margin` ago. The margin must cover the time the
//!   removed node needs to learn that it was downed or removed and to stop its copy.
//!
//! Members become Up in `up_number` order, and a gossip state that shows a node Up also
//! shows every older member, at status Up or further along. So two nodes never both count
//! themselves the oldest with all older members cleared.
//!
//! NOTE: an older member removed before this core ever saw it (for example while this
//! node was still joining) is not waited for, as in Akka's manager; the removal margin
//! then protects nothing against a copy that member may still run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;
use akkord_cluster::member::{Member, MemberStatus};

/// A message of the hand-over protocol between the managers of two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOverMessage {
    /// Sent by the new oldest to an older member that is leaving: stop your copy and
    /// confirm. Resent every `hand_over_retry_interval` until confirmed.
    HandOverToMe,
    /// Sent by a leaving member: my copy has terminated and I never start one again.
    HandOverDone,
}

/// An action for the shell to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Start the singleton actor; `incarnation` identifies this copy in later outputs and in
    /// [`ManagerCore::singleton_terminated`].
    Start {
        /// Number of this copy on this node, counting from 1.
        incarnation: u64,
    },
    /// Stop the singleton actor started with `incarnation`.
    Stop {
        /// The copy to stop.
        incarnation: u64,
    },
    /// Send a protocol message to the manager on node `to`.
    Send {
        /// The recipient node incarnation.
        to: UniqueAddress,
        /// The message.
        message: HandOverMessage,
    },
}

/// State of the singleton copy on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Copy {
    /// No copy runs here.
    Idle,
    /// A copy runs here.
    Active { incarnation: u64 },
    /// A stop of the copy was requested; `reply_to` gets `HandOverDone` once it has
    /// terminated.
    Stopping {
        incarnation: u64,
        reply_to: BTreeSet<UniqueAddress>,
    },
}

/// The decision logic of one node's singleton manager.
#[derive(Debug)]
pub struct ManagerCore {
    self_node: UniqueAddress,
    name: String,
    role: Option<String>,
    removal_margin: Duration,
    retry_interval: Duration,
    /// Current members with the role, by node.
    members: BTreeMap<UniqueAddress, Member>,
    /// Members with the role that left the view, with the instant this core noticed it.
    removed: BTreeMap<UniqueAddress, (Member, Instant)>,
    /// Older members that confirmed with `HandOverDone`.
    handed_over: BTreeSet<UniqueAddress>,
    /// Next instant a `HandOverToMe` may go to each leaving older member.
    next_request: BTreeMap<UniqueAddress, Instant>,
    /// Older members for which the wait for removal was logged.
    waiting_logged: BTreeSet<UniqueAddress>,
    /// Removed older members for which the wait for the removal margin was logged.
    margin_logged: BTreeSet<UniqueAddress>,
    copy: Copy,
    /// Incarnation of the last copy started here.
    last_incarnation: u64,
    /// Set once this node handed over or lost its copy: it never starts one again.
    retired: bool,
    /// Set once this node is Down or removed in its own view.
    self_gone: bool,
}

impl ManagerCore {
    /// Creates the core of `self_node` for the singleton `name`, hosted by members with
    /// `role` (any member when `None`).
    pub fn new(
        self_node: UniqueAddress,
        name: impl Into<String>,
        role: Option<String>,
        removal_margin: Duration,
        retry_interval: Duration,
    ) -> Self {
        Self {
            self_node,
            name: name.into(),
            role,
            removal_margin,
            retry_interval,
            members: BTreeMap::new(),
            removed: BTreeMap::new(),
            handed_over: BTreeSet::new(),
            next_request: BTreeMap::new(),
            waiting_logged: BTreeSet::new(),
            margin_logged: BTreeSet::new(),
            copy: Copy::Idle,
            last_incarnation: 0,
            retired: false,
            self_gone: false,
        }
    }

    /// Returns true while a copy started here runs and no stop of it was requested.
    pub fn is_active(&self) -> bool {
        matches!(self.copy, Copy::Active { .. })
    }

    /// Returns true while a copy started here has not terminated.
    pub fn is_running(&self) -> bool {
        !matches!(self.copy, Copy::Idle)
    }

    /// Replaces the view of the cluster with `members`, the full member list of the
    /// current cluster state. Members missing from it count as removed at `now`.
    pub fn apply_members(&mut self, members: &[Member], now: Instant) -> Vec<Output> {
        let mut current = BTreeMap::new();
        let mut self_seen = false;
        for member in members {
            if member.unique_address == self.self_node {
                self_seen = true;
                if matches!(member.status, MemberStatus::Down | MemberStatus::Removed) {
                    self.self_gone = true;
                }
            }
            if !self.has_role(member) {
                continue;
            }
            if member.status == MemberStatus::Removed {
                self.note_removed(member.clone(), now);
            } else {
                current.insert(member.unique_address.clone(), member.clone());
            }
        }
        let missing: Vec<Member> = self
            .members
            .iter()
            .filter(|(node, _)| !current.contains_key(*node))
            .map(|(_, member)| member.clone())
            .collect();
        for member in missing {
            self.note_removed(member, now);
        }
        let was_member = self.members.contains_key(&self.self_node);
        if was_member && !self_seen {
            self.self_gone = true;
        }
        self.members = current;
        self.evaluate(now)
    }

    /// Handles a protocol message from the manager on node `from`.
    pub fn handle_message(
        &mut self,
        from: &UniqueAddress,
        message: HandOverMessage,
        now: Instant,
    ) -> Vec<Output> {
        let mut outputs = Vec::new();
        match message {
            HandOverMessage::HandOverToMe => self.hand_over_to(from, &mut outputs),
            HandOverMessage::HandOverDone => {
                if self.handed_over.insert(from.clone()) {
                    tracing::info!(
                        node = %self.self_node,
                        previous = %from,
                        singleton = %self.name,
                        "hand-over done by the previous oldest"
                    );
                }
            }
        }
        outputs.extend(self.evaluate(now));
        outputs
    }

    /// Records that the copy started with `incarnation` has terminated.
    pub fn singleton_terminated(&mut self, incarnation: u64, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        match std::mem::replace(&mut self.copy, Copy::Idle) {
            Copy::Stopping {
                incarnation: stopping,
                reply_to,
            } if stopping == incarnation => {
                for to in reply_to {
                    tracing::info!(
                        node = %self.self_node,
                        next = %to,
                        singleton = %self.name,
                        "hand-over done, confirming to the next oldest"
                    );
                    outputs.push(Output::Send {
                        to,
                        message: HandOverMessage::HandOverDone,
                    });
                }
            }
            Copy::Active {
                incarnation: active,
            } if active == incarnation => {
                // Like Akka's manager, a singleton that stops by itself is not restarted
                // here; its own supervisor decides about restarts.
                self.retired = true;
                tracing::warn!(
                    node = %self.self_node,
                    incarnation,
                    singleton = %self.name,
                    "singleton stopped by itself; it is not restarted on this node"
                );
            }
            other => {
                tracing::debug!(
                    node = %self.self_node,
                    incarnation,
                    "ignored termination of an earlier singleton copy"
                );
                self.copy = other;
            }
        }
        outputs.extend(self.evaluate(now));
        outputs
    }

    /// Advances the clock to `now`: resends hand-over requests that are due and starts the
    /// singleton once the removal margin of the previous oldest has passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        self.evaluate(now)
    }

    fn has_role(&self, member: &Member) -> bool {
        self.role.as_ref().is_none_or(|role| member.has_role(role))
    }

    fn note_removed(&mut self, member: Member, now: Instant) {
        if self.removed.contains_key(&member.unique_address) {
            return;
        }
        if member.unique_address == self.self_node {
            self.self_gone = true;
        }
        self.members.remove(&member.unique_address);
        self.removed
            .insert(member.unique_address.clone(), (member, now));
    }

    /// Handles `HandOverToMe` from `from`: stops the local copy and confirms once it has
    /// terminated, or confirms at once when none runs.
    fn hand_over_to(&mut self, from: &UniqueAddress, outputs: &mut Vec<Output>) {
        let leaving = self.self_gone
            || self.members.get(&self.self_node).is_none_or(|member| {
                matches!(
                    member.status,
                    MemberStatus::Leaving | MemberStatus::Exiting | MemberStatus::Down
                )
            });
        if !leaving {
            // The requester saw this node leaving before this node did; it retries.
            tracing::debug!(
                node = %self.self_node,
                requester = %from,
                "ignored hand-over request: this node is not leaving in its own view yet"
            );
            return;
        }
        self.retired = true;
        match &mut self.copy {
            Copy::Idle => {
                tracing::info!(
                    node = %self.self_node,
                    next = %from,
                    singleton = %self.name,
                    "hand-over requested while no singleton runs here, confirming"
                );
                outputs.push(Output::Send {
                    to: from.clone(),
                    message: HandOverMessage::HandOverDone,
                });
            }
            Copy::Active { incarnation } => {
                let incarnation = *incarnation;
                tracing::info!(
                    node = %self.self_node,
                    next = %from,
                    incarnation,
                    singleton = %self.name,
                    "handing over: stopping the singleton"
                );
                self.copy = Copy::Stopping {
                    incarnation,
                    reply_to: BTreeSet::from([from.clone()]),
                };
                outputs.push(Output::Stop { incarnation });
            }
            Copy::Stopping { reply_to, .. } => {
                reply_to.insert(from.clone());
            }
        }
    }

    /// Compares the view with the local copy: stops it when this node is gone, and starts
    /// it when this node is the oldest and every older member is cleared.
    fn evaluate(&mut self, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();

        // Step 1: a downed or removed node stops its copy and never starts one again.
        if self.self_gone {
            self.retired = true;
            if let Copy::Active { incarnation } = self.copy {
                tracing::info!(
                    node = %self.self_node,
                    incarnation,
                    singleton = %self.name,
                    "this node is down or removed: stopping the singleton"
                );
                self.copy = Copy::Stopping {
                    incarnation,
                    reply_to: BTreeSet::new(),
                };
                outputs.push(Output::Stop { incarnation });
            }
            return outputs;
        }

        // Step 2: only the oldest Up member with the role may host the singleton.
        let Some(this) = self.members.get(&self.self_node).cloned() else {
            return outputs;
        };
        let oldest_up = self
            .members
            .values()
            .filter(|member| member.status == MemberStatus::Up)
            .min_by(|a, b| a.age_order(b))
            .map(|member| member.unique_address.clone());
        if oldest_up.as_ref() != Some(&self.self_node) {
            if let (Copy::Active { incarnation }, MemberStatus::Up) = (&self.copy, this.status) {
                // An older Up member appeared while the copy runs here; members become Up
                // in age order, so this means the view was wrong before.
                let incarnation = *incarnation;
                tracing::warn!(
                    node = %self.self_node,
                    oldest = ?oldest_up,
                    incarnation,
                    singleton = %self.name,
                    "an older member is up while the singleton runs here: stopping it"
                );
                self.retired = true;
                self.copy = Copy::Stopping {
                    incarnation,
                    reply_to: BTreeSet::new(),
                };
                outputs.push(Output::Stop { incarnation });
            }
            return outputs;
        }
        if self.retired || self.copy != Copy::Idle {
            return outputs;
        }

        // Step 3: ask leaving older members to hand over, and wait out the removal margin
        // of downed or removed ones that did not confirm.
        let blocked = self.request_hand_over(&this, now, &mut outputs);
        if blocked {
            return outputs;
        }

        // Step 4: every older member is cleared, so start.
        self.last_incarnation += 1;
        let incarnation = self.last_incarnation;
        self.copy = Copy::Active { incarnation };
        outputs.push(Output::Start { incarnation });
        outputs
    }

    /// Sends due `HandOverToMe` requests to leaving older members; returns true when some
    /// older member is not cleared yet.
    fn request_hand_over(
        &mut self,
        this: &Member,
        now: Instant,
        outputs: &mut Vec<Output>,
    ) -> bool {
        let mut blocked = false;
        let older: Vec<Member> = self
            .members
            .values()
            .filter(|member| member.is_older_than(this))
            .filter(|member| !self.handed_over.contains(&member.unique_address))
            .cloned()
            .collect();
        for member in older {
            blocked = true;
            let node = member.unique_address.clone();
            match member.status {
                MemberStatus::Leaving | MemberStatus::Exiting => {
                    let due = self.next_request.get(&node).is_none_or(|at| *at <= now);
                    if due {
                        if !self.next_request.contains_key(&node) {
                            tracing::info!(
                                node = %self.self_node,
                                previous = %node,
                                singleton = %self.name,
                                "previous oldest is leaving: requesting hand-over"
                            );
                        }
                        self.next_request
                            .insert(node.clone(), now + self.retry_interval);
                        outputs.push(Output::Send {
                            to: node,
                            message: HandOverMessage::HandOverToMe,
                        });
                    }
                }
                _ => {
                    if self.waiting_logged.insert(node.clone()) {
                        tracing::info!(
                            node = %self.self_node,
                            previous = %node,
                            status = %member.status,
                            singleton = %self.name,
                            "taking over: waiting for the previous oldest to be removed"
                        );
                    }
                }
            }
        }
        let margin = self.removal_margin;
        for (node, (member, removed_at)) in &self.removed {
            let node = node.clone();
            if !member.is_older_than(this) || self.handed_over.contains(&node) {
                continue;
            }
            if now < *removed_at + margin {
                blocked = true;
                if self.margin_logged.insert(node.clone()) {
                    tracing::info!(
                        node = %self.self_node,
                        previous = %node,
                        margin_ms = margin.as_millis() as u64,
                        singleton = %self.name,
                        "taking over: previous oldest removed, waiting for the removal margin"
                    );
                }
            }
        }
        blocked
    }
}

#[cfg(test)]
mod tests;
