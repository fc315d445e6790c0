//! A simulator node around the membership core, shared by the membership scenario tests.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::member::MemberStatus;
use akkord_cluster::membership::{
    ClusterEvent, ClusterMessage, MembershipCore, MembershipOutputs, MembershipSettings,
};
use akkord_testkit::sim::{Outputs, SimNode, Simulator};

/// Actor system name used by the scenarios.
pub const SYSTEM: &str = "sim";

/// A membership core run by the simulator; it starts the seed procedure on its first tick.
pub struct MemberNode {
    pub core: MembershipCore,
    started: bool,
    scheduled: Option<Instant>,
}

impl MemberNode {
    pub fn new(node: UniqueAddress, settings: MembershipSettings, rng_seed: u64) -> Self {
        Self {
            core: MembershipCore::new(node, settings, rng_seed).expect("valid settings"),
            started: false,
            scheduled: None,
        }
    }

    fn perform(&mut self, now: Instant, result: MembershipOutputs, out: &mut Outputs<Self>) {
        for (to, message) in result.messages {
            out.send(to, message);
        }
        for event in result.events {
            out.publish(event);
        }
        if let Some(at) = result.next_tick {
            // Ask for a tick only when it is earlier than the pending one, so the queue
            // does not fill with one tick per handled message.
            let pending = self.scheduled.filter(|scheduled| *scheduled > now);
            if pending.is_none_or(|scheduled| at < scheduled) {
                self.scheduled = Some(at);
                out.schedule_tick(at);
            }
        }
    }

    /// Runs a command against the core and performs its outputs.
    pub fn command<R>(
        &mut self,
        now: Instant,
        out: &mut Outputs<Self>,
        action: impl FnOnce(&mut MembershipCore, &mut MembershipOutputs) -> R,
    ) -> R {
        let mut result = MembershipOutputs::new();
        let value = action(&mut self.core, &mut result);
        self.perform(now, result, out);
        value
    }

    pub fn status(&self) -> Option<MemberStatus> {
        self.core.self_member().map(|m| m.status)
    }
}

impl SimNode for MemberNode {
    type Address = Address;
    type Message = ClusterMessage;
    type Event = ClusterEvent;

    fn address(&self) -> Address {
        self.core.self_node().address.clone()
    }

    fn handle_message(
        &mut self,
        from: Address,
        message: ClusterMessage,
        now: Instant,
        out: &mut Outputs<Self>,
    ) {
        let mut result = MembershipOutputs::new();
        self.core.handle_message(from, message, now, &mut result);
        self.perform(now, result, out);
    }

    fn tick(&mut self, now: Instant, out: &mut Outputs<Self>) {
        let mut result = MembershipOutputs::new();
        if !self.started {
            self.started = true;
            self.core.start(now, &mut result);
        } else {
            self.core.tick(now, &mut result);
        }
        self.perform(now, result, out);
    }

    fn wire_size(message: &ClusterMessage) -> usize {
        message.wire_size()
    }

    fn message_kind(message: &ClusterMessage) -> &'static str {
        message.kind()
    }
}

pub fn address(port: u16) -> Address {
    Address::new(SYSTEM, "10.0.0.1", port).unwrap()
}

pub fn unique(port: u16, uid: u64) -> UniqueAddress {
    UniqueAddress::new(address(port), uid)
}

pub fn settings(seeds: &[u16]) -> MembershipSettings {
    MembershipSettings {
        seed_nodes: seeds.iter().map(|p| address(*p)).collect(),
        ..MembershipSettings::default()
    }
}

/// Adds a node at `port` with incarnation `uid` and returns its address.
pub fn add(
    sim: &mut Simulator<MemberNode>,
    port: u16,
    uid: u64,
    settings: MembershipSettings,
) -> Address {
    let seed = sim.random_u64();
    sim.add_node(MemberNode::new(unique(port, uid), settings, seed))
}

/// Returns true when every live node is a member with status Up, lists `count` members and
/// has converged on one version.
pub fn all_up(sim: &Simulator<MemberNode>, count: usize) -> bool {
    let mut versions = Vec::new();
    for node in sim.nodes() {
        let gossip = node.core.gossip();
        if gossip.member_count() != count
            || gossip.members().any(|m| m.status != MemberStatus::Up)
            || !node.core.is_converged()
        {
            return false;
        }
        versions.push(gossip.version().clone());
    }
    versions.windows(2).all(|pair| pair[0] == pair[1])
}

pub const MINUTE: Duration = Duration::from_secs(60);
