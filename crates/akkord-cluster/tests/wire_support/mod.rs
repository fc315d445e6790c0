//! Generators of cluster states and messages shared by the wire tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::gossip::Gossip;
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::membership::ClusterMessage;
use akkord_cluster::reachability::{ObserverRow, Reachability, ReachabilityStatus};
use akkord_cluster::vclock::{VClockNode, VectorClock};
use proptest::prelude::*;

/// Nodes a generated state draws from, before duplicates are dropped.
pub const POOL: usize = 16;

const SYSTEMS: [&str; 3] = ["akkord", "sys-1", "a_b"];
const HOSTS: [&str; 4] = ["127.0.0.1", "::1", "node-7.cluster.local", "10.1.2.3"];
const ROLES: [&str; 5] = ["backend", "frontend", "dc-eu", "ünïcode", ""];
const APP_VERSIONS: [&str; 3] = ["1.0.0", "1.1.0-rc.1", ""];
const STATUSES: [MemberStatus; 9] = [
    MemberStatus::Joining,
    MemberStatus::WeaklyUp,
    MemberStatus::Up,
    MemberStatus::PreparingForShutdown,
    MemberStatus::ReadyForShutdown,
    MemberStatus::Leaving,
    MemberStatus::Exiting,
    MemberStatus::Down,
    MemberStatus::Removed,
];
const REACHABILITY: [ReachabilityStatus; 3] = [
    ReachabilityStatus::Reachable,
    ReachabilityStatus::Unreachable,
    ReachabilityStatus::Terminated,
];

/// Maximum tombstone age in a generated state: two days.
pub const MAX_AGE_MILLIS: u64 = 2 * 24 * 3600 * 1000;

/// Returns an instant late enough that every generated tombstone age fits before it, even
/// on a platform whose monotonic clock starts at boot.
pub fn base_instant() -> Instant {
    Instant::now() + Duration::from_millis(MAX_AGE_MILLIS) + Duration::from_secs(3600)
}

/// Generates a node incarnation from a few systems and hosts, with any port and uid.
pub fn node() -> impl Strategy<Value = UniqueAddress> {
    (0..SYSTEMS.len(), 0..HOSTS.len(), any::<u16>(), any::<u64>()).prop_map(
        |(system, host, port, uid)| {
            let address = Address::new(SYSTEMS[system], HOSTS[host], port).unwrap();
            UniqueAddress::new(address, uid)
        },
    )
}

/// What one node of the pool is in a generated state, and its attributes.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// 0 to 2: member; 3: tombstone; 4: neither, named only by the seen set or the clock.
    pub kind: u8,
    pub status: usize,
    pub roles: u8,
    pub up_number: u32,
    pub app_version: usize,
    pub seen: bool,
    pub age_millis: u64,
}

/// A reachability row: observer, row version and (subject, status) records, with nodes as
/// pool positions.
pub type RowSpec = (usize, u64, Vec<(usize, usize)>);

/// A generated gossip state, turned into a [`Gossip`] by [`GossipSpec::build`].
#[derive(Clone, Debug)]
pub struct GossipSpec {
    pub nodes: Vec<UniqueAddress>,
    pub attributes: Vec<NodeSpec>,
    pub rows: Vec<RowSpec>,
    /// Clock entries of pool nodes.
    pub clock: Vec<(usize, u64)>,
    /// Clock entries of keys that belong to no node of the state.
    pub foreign_clock: Vec<(u64, u64)>,
}

impl GossipSpec {
    /// Builds the state with tombstones removed `age_millis` before `now`.
    pub fn build(&self, now: Instant) -> Gossip {
        let nodes: Vec<UniqueAddress> = self
            .nodes
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut members = Vec::new();
        let mut seen = BTreeSet::new();
        let mut tombstones = BTreeMap::new();
        for (node, spec) in nodes.iter().zip(&self.attributes) {
            match spec.kind {
                0..=2 => members.push(Member {
                    unique_address: node.clone(),
                    status: STATUSES[spec.status % STATUSES.len()],
                    roles: ROLES
                        .iter()
                        .enumerate()
                        .filter(|(bit, _)| spec.roles & (1 << bit) != 0)
                        .map(|(_, role)| (*role).to_owned())
                        .collect(),
                    up_number: spec.up_number,
                    app_version: APP_VERSIONS[spec.app_version % APP_VERSIONS.len()].to_owned(),
                }),
                3 => {
                    let removed_at = now - Duration::from_millis(spec.age_millis);
                    tombstones.insert(node.clone(), removed_at);
                    continue;
                }
                _ => {}
            }
            if spec.seen {
                seen.insert(node.clone());
            }
        }
        let pick = |position: usize| nodes[position % nodes.len()].clone();
        let mut rows = BTreeMap::new();
        for (observer, version, records) in &self.rows {
            let subjects = records
                .iter()
                .map(|(subject, status)| (pick(*subject), REACHABILITY[status % 3]))
                .collect();
            let row = ObserverRow {
                version: *version,
                subjects,
            };
            rows.insert(pick(*observer), row);
        }
        let clock: VectorClock = self
            .clock
            .iter()
            .map(|(position, version)| (VClockNode::of(&pick(*position)), *version))
            .chain(
                self.foreign_clock
                    .iter()
                    .map(|(key, version)| (VClockNode(*key), *version)),
            )
            .collect();
        Gossip::from_parts(
            members,
            seen,
            Reachability::from_rows(rows),
            clock,
            tombstones,
        )
    }
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        0u8..5,
        0..STATUSES.len(),
        any::<u8>(),
        prop_oneof![Just(u32::MAX), any::<u32>(), 0u32..100],
        0..APP_VERSIONS.len(),
        any::<bool>(),
        0..=MAX_AGE_MILLIS,
    )
        .prop_map(
            |(kind, status, roles, up_number, app_version, seen, age_millis)| NodeSpec {
                kind,
                status,
                roles,
                up_number,
                app_version,
                seen,
                age_millis,
            },
        )
}

/// Generates a gossip state of up to [`POOL`] nodes.
pub fn gossip_spec() -> impl Strategy<Value = GossipSpec> {
    (
        proptest::collection::vec(node(), 1..=POOL),
        proptest::collection::vec(node_spec(), POOL),
        proptest::collection::vec(
            (
                0..POOL,
                any::<u64>(),
                proptest::collection::vec((0..POOL, 0usize..3), 0..5),
            ),
            0..6,
        ),
        proptest::collection::vec((0..POOL, 1..=u64::MAX), 0..10),
        proptest::collection::vec((any::<u64>(), 1..=u64::MAX), 0..3),
    )
        .prop_map(
            |(nodes, attributes, rows, clock, foreign_clock)| GossipSpec {
                nodes,
                attributes,
                rows,
                clock,
                foreign_clock,
            },
        )
}

/// Generates a vector clock with arbitrary keys.
pub fn clock() -> impl Strategy<Value = VectorClock> {
    proptest::collection::vec((any::<u64>(), 1..=u64::MAX), 0..12).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(k, v)| (VClockNode(k), v))
            .collect()
    })
}

/// Builds a converged state of `size` Up members, seen by all of them.
///
/// The clock has an entry for every tenth member, or with `full_clock` for every member.
/// From 100 members on, the state also has one unreachable record and two tombstones.
pub fn typical_gossip(size: usize, full_clock: bool, now: Instant) -> Gossip {
    let nodes: Vec<UniqueAddress> = (0..size)
        .map(|i| {
            let host = format!("10.0.{}.{}", i / 250, i % 250 + 1);
            let address = Address::new("akkord", host, 2552).unwrap();
            UniqueAddress::new(address, 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1))
        })
        .collect();
    let members = nodes.iter().enumerate().map(|(i, node)| Member {
        unique_address: node.clone(),
        status: MemberStatus::Up,
        roles: [if i % 3 == 0 { "frontend" } else { "backend" }.to_owned()].into(),
        up_number: i as u32 + 1,
        app_version: "1.4.2".to_owned(),
    });
    let seen: BTreeSet<UniqueAddress> = nodes.iter().cloned().collect();
    let step = if full_clock { 1 } else { 10 };
    let clock: VectorClock = nodes
        .iter()
        .step_by(step)
        .enumerate()
        .map(|(i, node)| (VClockNode::of(node), 3 + i as u64 * 7))
        .collect();
    let mut reachability = Reachability::new();
    let mut tombstones = BTreeMap::new();
    if size >= 100 {
        reachability = reachability.unreachable(&nodes[1], &nodes[2]);
        for uid in [1, 2] {
            let address = Address::new("akkord", "10.9.9.9", 2552).unwrap();
            let node = UniqueAddress::new(address, uid);
            tombstones.insert(node, now - Duration::from_secs(3600 * uid));
        }
    }
    Gossip::from_parts(members, seen, reachability, clock, tombstones)
}

/// Builds a full gossip message of `gossip` between its first two members.
pub fn gossip_message(gossip: &Gossip) -> ClusterMessage {
    let mut nodes = gossip.members().map(|m| m.unique_address.clone());
    let from = nodes.next().unwrap();
    let to = nodes.next().unwrap_or_else(|| from.clone());
    ClusterMessage::Gossip {
        from,
        to,
        gossip: Arc::new(gossip.clone()),
    }
}
