//! Sans-IO core of receptionist replication.
//!
//! Each node owns the set of its own registrations, with a version that grows with every
//! change. The core stores the latest set it has of every other member and decides what to
//! send. The shell feeds it inputs and performs its outputs.
//!
//! Steps:
//!
//! 1. A change of the local set raises its version and pushes the whole set to every
//!    member.
//! 2. A node that becomes a member gets the local set pushed and a request for its own.
//! 3. Every gossip interval the core sends the local version to every member.
//! 4. A status with a newer version than the one stored for its sender triggers a request.
//!    The reply to a request is the whole local set.
//! 5. A set with a newer version than the one held replaces it.
//!
//! Messages may be lost, duplicated or reordered: versions make a stale set harmless, and
//! step 3 repairs any loss within one interval after the last change. Input from a node
//! that is not a member is ignored, except requests, which only cost a reply. The sets of
//! unreachable members are kept but not installed; a member that leaves the member list
//! loses its set.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;

use super::wire::{EntryData, ReplicationMessage};

/// Actions the core requests from its shell.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outputs {
    /// Messages to send, in order.
    pub messages: Vec<(UniqueAddress, ReplicationMessage)>,
    /// Sets to install in the local receptionist as the services of a node; an empty set
    /// removes the node's services.
    pub installs: Vec<(UniqueAddress, Vec<EntryData>)>,
    /// Input dropped because its sender is not a member, for a debug log line.
    pub ignored_from: Option<UniqueAddress>,
}

/// The latest known set of one member.
#[derive(Debug, Default)]
struct MemberSet {
    version: u64,
    entries: Vec<EntryData>,
    reachable: bool,
}

impl MemberSet {
    fn visible(&self) -> Vec<EntryData> {
        if self.reachable {
            self.entries.clone()
        } else {
            Vec::new()
        }
    }
}

/// Replication state of one node.
#[derive(Debug)]
pub(crate) struct ReplicationCore {
    self_node: UniqueAddress,
    version: u64,
    entries: Vec<EntryData>,
    members: BTreeMap<UniqueAddress, MemberSet>,
    gossip_interval: Duration,
    next_gossip: Option<Instant>,
}

impl ReplicationCore {
    /// Creates the core of `self_node`, with no registrations and no other members.
    pub(crate) fn new(self_node: UniqueAddress, gossip_interval: Duration) -> Self {
        Self {
            self_node,
            version: 0,
            entries: Vec::new(),
            members: BTreeMap::new(),
            gossip_interval,
            next_gossip: None,
        }
    }

    /// Returns the time of the next gossip round, once the first tick has run.
    pub(crate) fn next_tick(&self) -> Option<Instant> {
        self.next_gossip
    }

    /// Returns the version of the local set.
    #[cfg(test)]
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Returns the sets installed now, by node: those of reachable members.
    #[cfg(test)]
    pub(crate) fn installed(&self) -> BTreeMap<UniqueAddress, Vec<EntryData>> {
        self.members
            .iter()
            .filter(|(_, set)| set.reachable && !set.entries.is_empty())
            .map(|(node, set)| (node.clone(), set.entries.clone()))
            .collect()
    }

    /// Replaces the local set; a different set gets a new version pushed to every member.
    pub(crate) fn set_local_entries(&mut self, mut entries: Vec<EntryData>, out: &mut Outputs) {
        entries.sort();
        entries.dedup();
        if entries == self.entries {
            return;
        }
        self.entries = entries;
        self.version += 1;
        for node in self.members.keys() {
            out.messages.push((node.clone(), self.entries_message()));
        }
    }

    /// Replaces the member list with `members` and whether each is reachable; this node is
    /// skipped when listed.
    pub(crate) fn set_members(
        &mut self,
        members: &BTreeMap<UniqueAddress, bool>,
        out: &mut Outputs,
    ) {
        let departed: Vec<UniqueAddress> = self
            .members
            .keys()
            .filter(|node| !members.contains_key(*node))
            .cloned()
            .collect();
        for node in departed {
            if let Some(set) = self.members.remove(&node) {
                if set.reachable && !set.entries.is_empty() {
                    out.installs.push((node, Vec::new()));
                }
            }
        }

        for (node, reachable) in members {
            if *node == self.self_node {
                continue;
            }
            match self.members.get_mut(node) {
                Some(set) => {
                    if set.reachable != *reachable {
                        set.reachable = *reachable;
                        if !set.entries.is_empty() {
                            out.installs.push((node.clone(), set.visible()));
                        }
                    }
                }
                None => {
                    self.members.insert(
                        node.clone(),
                        MemberSet {
                            reachable: *reachable,
                            ..MemberSet::default()
                        },
                    );
                    out.messages.push((node.clone(), self.entries_message()));
                    out.messages
                        .push((node.clone(), ReplicationMessage::Request));
                }
            }
        }
    }

    /// Handles `message` from `from`.
    pub(crate) fn handle_message(
        &mut self,
        from: &UniqueAddress,
        message: ReplicationMessage,
        out: &mut Outputs,
    ) {
        if let ReplicationMessage::Request = message {
            out.messages.push((from.clone(), self.entries_message()));
            return;
        }
        let Some(set) = self.members.get_mut(from) else {
            out.ignored_from = Some(from.clone());
            return;
        };
        match message {
            ReplicationMessage::Entries {
                version,
                mut entries,
            } => {
                if version <= set.version {
                    return;
                }
                entries.sort();
                entries.dedup();
                set.version = version;
                if entries != set.entries {
                    set.entries = entries;
                    if set.reachable {
                        out.installs.push((from.clone(), set.entries.clone()));
                    }
                }
            }
            ReplicationMessage::Status { version } => {
                if version > set.version {
                    out.messages
                        .push((from.clone(), ReplicationMessage::Request));
                }
            }
            ReplicationMessage::Request => {}
        }
    }

    /// Runs a gossip round when it is due at `now`: sends the local version to every
    /// member.
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Outputs) {
        if self.next_gossip.is_some_and(|at| now < at) {
            return;
        }
        self.next_gossip = Some(now + self.gossip_interval);
        for node in self.members.keys() {
            out.messages.push((
                node.clone(),
                ReplicationMessage::Status {
                    version: self.version,
                },
            ));
        }
    }

    fn entries_message(&self) -> ReplicationMessage {
        ReplicationMessage::Entries {
            version: self.version,
            entries: self.entries.clone(),
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
