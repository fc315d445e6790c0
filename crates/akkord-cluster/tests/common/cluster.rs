//! A simulator node around the whole cluster node (membership, heartbeats and resolver),
//! shared by the cluster scenario tests.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::lease::{InProcessLease, Lease};
use akkord_cluster::member::MemberStatus;
use akkord_cluster::node::{
    ClusterNode, ClusterNodeSettings, NodeEvent, NodeMessage, NodeOutputs, ShutdownReason,
};
use akkord_cluster::sbr::{LeaseCommand, SbrSettings};
use akkord_testkit::sim::{Outputs, SimNode, Simulator};

/// Actor system name used by the scenarios.
pub const SYSTEM: &str = "sim";

/// A cluster node run by the simulator; it starts on its first tick.
pub struct SimClusterNode {
    pub node: ClusterNode,
    /// When false, the node drops heartbeat requests instead of responding to them.
    pub answers_heartbeats: bool,
    /// Lease used for the lease-majority strategy; lease commands are ignored without one.
    pub lease: Option<InProcessLease>,
    started: bool,
    scheduled: Option<Instant>,
}

impl SimClusterNode {
    pub fn new(node: UniqueAddress, settings: ClusterNodeSettings, rng_seed: u64) -> Self {
        Self {
            node: ClusterNode::new(node, settings, rng_seed).expect("valid settings"),
            answers_heartbeats: true,
            lease: None,
            started: false,
            scheduled: None,
        }
    }

    fn perform(&mut self, now: Instant, result: NodeOutputs, out: &mut Outputs<Self>) {
        for (to, message) in result.messages {
            out.send(to, message);
        }
        let mut lease_results = Vec::new();
        for event in result.events {
            if let (NodeEvent::Lease(command), Some(lease)) = (&event, &self.lease) {
                match command {
                    LeaseCommand::Acquire { owner } => {
                        lease_results.push(lease.acquire(owner).unwrap_or(false))
                    }
                    LeaseCommand::Release { owner } => {
                        let _ = lease.release(owner);
                    }
                }
            }
            out.publish(event);
        }
        for acquired in lease_results {
            let mut result = NodeOutputs::new();
            self.node.handle_lease_result(acquired, now, &mut result);
            self.perform(now, result, out);
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

    /// Runs a command against the node and performs its outputs.
    pub fn command<R>(
        &mut self,
        now: Instant,
        out: &mut Outputs<Self>,
        action: impl FnOnce(&mut ClusterNode, &mut NodeOutputs) -> R,
    ) -> R {
        let mut result = NodeOutputs::new();
        let value = action(&mut self.node, &mut result);
        self.perform(now, result, out);
        value
    }

    /// Returns this node's own status, `None` before joining, after removal and after it
    /// stopped.
    pub fn status(&self) -> Option<MemberStatus> {
        if self.node.is_running() {
            self.node.self_status()
        } else {
            None
        }
    }

    /// Returns true when the node runs and considers itself Up.
    pub fn is_up(&self) -> bool {
        self.status() == Some(MemberStatus::Up)
    }

    /// Returns the member set of this node's state with each status.
    pub fn members(&self) -> Vec<(UniqueAddress, MemberStatus)> {
        self.node
            .membership()
            .gossip()
            .members()
            .map(|m| (m.unique_address.clone(), m.status))
            .collect()
    }
}

impl SimNode for SimClusterNode {
    type Address = Address;
    type Message = NodeMessage;
    type Event = NodeEvent;

    fn address(&self) -> Address {
        self.node.self_node().address.clone()
    }

    fn handle_message(
        &mut self,
        from: Address,
        message: NodeMessage,
        now: Instant,
        out: &mut Outputs<Self>,
    ) {
        if !self.answers_heartbeats && matches!(message, NodeMessage::HeartbeatRequest(_)) {
            return;
        }
        let mut result = NodeOutputs::new();
        self.node.handle_message(from, message, now, &mut result);
        self.perform(now, result, out);
    }

    fn tick(&mut self, now: Instant, out: &mut Outputs<Self>) {
        let mut result = NodeOutputs::new();
        if !self.started {
            self.started = true;
            self.node.start(now, &mut result);
        }
        self.node.tick(now, &mut result);
        self.perform(now, result, out);
    }

    fn wire_size(message: &NodeMessage) -> usize {
        message.wire_size()
    }

    fn message_kind(message: &NodeMessage) -> &'static str {
        message.kind()
    }
}

pub fn address(port: u16) -> Address {
    Address::new(SYSTEM, "10.0.0.1", port).unwrap()
}

pub fn unique(port: u16, uid: u64) -> UniqueAddress {
    UniqueAddress::new(address(port), uid)
}

/// Default settings with the given seed ports.
pub fn settings(seeds: &[u16]) -> ClusterNodeSettings {
    let mut settings = ClusterNodeSettings::default();
    settings.membership.seed_nodes = seeds.iter().map(|p| address(*p)).collect();
    settings
}

/// Settings with the given seed ports and the resolver's fast profile (stable-after 7 s).
pub fn fast_settings(seeds: &[u16]) -> ClusterNodeSettings {
    ClusterNodeSettings {
        sbr: SbrSettings::fast(),
        ..settings(seeds)
    }
}

/// Adds a node at `port` with incarnation `uid` and returns its address.
pub fn add(
    sim: &mut Simulator<SimClusterNode>,
    port: u16,
    uid: u64,
    settings: ClusterNodeSettings,
) -> Address {
    let seed = sim.random_u64();
    sim.add_node(SimClusterNode::new(unique(port, uid), settings, seed))
}

/// Adds nodes at ports `1..=count` with uid `100 + port`, all using the first
/// `seeds.min(count)` ports as seed nodes.
pub fn cluster(
    sim: &mut Simulator<SimClusterNode>,
    count: u16,
    seeds: u16,
    settings_for: impl Fn(&[u16]) -> ClusterNodeSettings,
) -> Vec<Address> {
    let seed_ports: Vec<u16> = (1..=seeds.min(count)).collect();
    (1..=count)
        .map(|port| add(sim, port, 100 + u64::from(port), settings_for(&seed_ports)))
        .collect()
}

/// Returns true when each node of `nodes` runs, lists exactly those nodes as members, all
/// Up, and has converged on one version.
pub fn all_up(sim: &Simulator<SimClusterNode>, nodes: &[Address]) -> bool {
    let expected: BTreeSet<&Address> = nodes.iter().collect();
    let mut versions = Vec::new();
    for address in nodes {
        let Some(node) = sim.node(address) else {
            return false;
        };
        let membership = node.node.membership();
        let gossip = membership.gossip();
        let listed: BTreeSet<&Address> = gossip.members().map(|m| m.address()).collect();
        if !node.node.is_running()
            || listed != expected
            || gossip.members().any(|m| m.status != MemberStatus::Up)
            || !membership.is_converged()
        {
            return false;
        }
        versions.push(gossip.version().clone());
    }
    versions.windows(2).all(|pair| pair[0] == pair[1])
}

/// Returns the reason `address` stopped, from its published events.
pub fn shutdown_reason(
    sim: &Simulator<SimClusterNode>,
    address: &Address,
) -> Option<ShutdownReason> {
    sim.events().from_node(address).find_map(|e| match e.event {
        NodeEvent::ShutdownRequested { reason } => Some(reason),
        _ => None,
    })
}

/// Returns true when `observer` currently reports `subject` unreachable in its own row.
pub fn observes_unreachable(
    sim: &Simulator<SimClusterNode>,
    observer: &Address,
    subject: &UniqueAddress,
) -> bool {
    sim.node(observer).is_some_and(|n| {
        let self_node = n.node.self_node();
        !n.node
            .membership()
            .gossip()
            .reachability()
            .is_reachable_by(self_node, subject)
    })
}

pub const SECOND: Duration = Duration::from_secs(1);
pub const MINUTE: Duration = Duration::from_secs(60);
