use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const INTERVAL: Duration = Duration::from_secs(2);

fn node(port: u16) -> UniqueAddress {
    UniqueAddress::new(
        Address::new("sim", "10.0.0.1", port).unwrap(),
        u64::from(port),
    )
}

fn entry(key: &str, host: &UniqueAddress, id: u64) -> EntryData {
    EntryData {
        key: key.to_owned(),
        manifest: "test.Msg".to_owned(),
        system: host.address.system().to_owned(),
        host: host.address.host().to_owned(),
        port: u32::from(host.address.port()),
        uid: host.uid,
        id,
        path: format!("/user/a{id}"),
    }
}

fn members(nodes: &[(UniqueAddress, bool)]) -> BTreeMap<UniqueAddress, bool> {
    nodes.iter().cloned().collect()
}

fn core_with_member(peer: &UniqueAddress) -> ReplicationCore {
    let mut core = ReplicationCore::new(node(1), INTERVAL);
    core.set_members(
        &members(&[(node(1), true), (peer.clone(), true)]),
        &mut Outputs::default(),
    );
    core
}

#[test]
fn local_change_pushes_set_to_members() {
    let peer = node(2);
    let mut core = core_with_member(&peer);
    let mut out = Outputs::default();
    core.set_local_entries(vec![entry("k", &node(1), 7)], &mut out);
    assert_eq!(core.version(), 1);
    assert_eq!(
        out.messages,
        vec![(
            peer.clone(),
            ReplicationMessage::Entries {
                version: 1,
                entries: vec![entry("k", &node(1), 7)]
            }
        )]
    );

    let mut again = Outputs::default();
    core.set_local_entries(vec![entry("k", &node(1), 7)], &mut again);
    assert_eq!(core.version(), 1, "an unchanged set keeps its version");
    assert!(again.messages.is_empty());
}

#[test]
fn new_member_gets_push_and_request() {
    let mut core = ReplicationCore::new(node(1), INTERVAL);
    let mut out = Outputs::default();
    core.set_local_entries(vec![entry("k", &node(1), 7)], &mut out);
    assert!(out.messages.is_empty(), "no members yet");

    let mut out = Outputs::default();
    core.set_members(&members(&[(node(1), true), (node(2), true)]), &mut out);
    assert_eq!(out.messages.len(), 2);
    assert!(matches!(
        &out.messages[0],
        (to, ReplicationMessage::Entries { version: 1, .. }) if *to == node(2)
    ));
    assert_eq!(out.messages[1], (node(2), ReplicationMessage::Request));
}

#[test]
fn newer_status_triggers_request() {
    let peer = node(2);
    let mut core = core_with_member(&peer);
    let mut out = Outputs::default();
    core.handle_message(&peer, ReplicationMessage::Status { version: 0 }, &mut out);
    assert!(
        out.messages.is_empty(),
        "version 0 is the empty set already held"
    );

    core.handle_message(&peer, ReplicationMessage::Status { version: 3 }, &mut out);
    assert_eq!(
        out.messages,
        vec![(peer.clone(), ReplicationMessage::Request)]
    );
}

#[test]
fn request_answered_with_set() {
    let mut core = ReplicationCore::new(node(1), INTERVAL);
    core.set_local_entries(vec![entry("k", &node(1), 7)], &mut Outputs::default());
    let mut out = Outputs::default();
    core.handle_message(&node(9), ReplicationMessage::Request, &mut out);
    assert_eq!(
        out.messages,
        vec![(
            node(9),
            ReplicationMessage::Entries {
                version: 1,
                entries: vec![entry("k", &node(1), 7)]
            }
        )]
    );
}

#[test]
fn entries_installed_once_per_version() {
    let peer = node(2);
    let mut core = core_with_member(&peer);
    let set = vec![entry("k", &peer, 1)];
    let mut out = Outputs::default();
    core.handle_message(
        &peer,
        ReplicationMessage::Entries {
            version: 2,
            entries: set.clone(),
        },
        &mut out,
    );
    assert_eq!(out.installs, vec![(peer.clone(), set.clone())]);

    let mut stale = Outputs::default();
    core.handle_message(
        &peer,
        ReplicationMessage::Entries {
            version: 1,
            entries: Vec::new(),
        },
        &mut stale,
    );
    assert!(stale.installs.is_empty(), "an older version is ignored");
    assert_eq!(core.installed().get(&peer), Some(&set));
}

#[test]
fn entries_from_non_member_ignored() {
    let mut core = ReplicationCore::new(node(1), INTERVAL);
    let mut out = Outputs::default();
    core.handle_message(
        &node(3),
        ReplicationMessage::Entries {
            version: 1,
            entries: vec![entry("k", &node(3), 1)],
        },
        &mut out,
    );
    assert!(out.installs.is_empty());
    assert_eq!(out.ignored_from, Some(node(3)));
    assert!(core.installed().is_empty());
}

#[test]
fn unreachable_member_hidden_then_restored() {
    let peer = node(2);
    let mut core = core_with_member(&peer);
    let set = vec![entry("k", &peer, 1)];
    core.handle_message(
        &peer,
        ReplicationMessage::Entries {
            version: 1,
            entries: set.clone(),
        },
        &mut Outputs::default(),
    );

    let mut out = Outputs::default();
    core.set_members(
        &members(&[(node(1), true), (peer.clone(), false)]),
        &mut out,
    );
    assert_eq!(out.installs, vec![(peer.clone(), Vec::new())]);
    assert!(core.installed().is_empty());

    let mut out = Outputs::default();
    core.set_members(&members(&[(node(1), true), (peer.clone(), true)]), &mut out);
    assert_eq!(out.installs, vec![(peer.clone(), set)]);
}

#[test]
fn removed_member_uninstalled() {
    let peer = node(2);
    let mut core = core_with_member(&peer);
    core.handle_message(
        &peer,
        ReplicationMessage::Entries {
            version: 1,
            entries: vec![entry("k", &peer, 1)],
        },
        &mut Outputs::default(),
    );
    let mut out = Outputs::default();
    core.set_members(&members(&[(node(1), true)]), &mut out);
    assert_eq!(out.installs, vec![(peer.clone(), Vec::new())]);

    let mut late = Outputs::default();
    core.handle_message(
        &peer,
        ReplicationMessage::Entries {
            version: 5,
            entries: vec![entry("k", &peer, 1)],
        },
        &mut late,
    );
    assert!(
        late.installs.is_empty(),
        "a removed member's late set is ignored"
    );
}

#[test]
fn gossip_once_per_interval() {
    let peer = node(2);
    let mut core = core_with_member(&peer);
    let start = Instant::now();
    let mut out = Outputs::default();
    core.tick(start, &mut out);
    assert_eq!(
        out.messages,
        vec![(peer.clone(), ReplicationMessage::Status { version: 0 })]
    );
    assert_eq!(core.next_tick(), Some(start + INTERVAL));

    let mut early = Outputs::default();
    core.tick(start + INTERVAL / 2, &mut early);
    assert!(early.messages.is_empty());

    let mut due = Outputs::default();
    core.tick(start + INTERVAL, &mut due);
    assert_eq!(due.messages.len(), 1);
}

/// A lossy network of cores on a virtual clock.
struct Net {
    nodes: Vec<UniqueAddress>,
    cores: Vec<ReplicationCore>,
    /// Installed sets per node index, as the receptionist would hold them.
    views: Vec<BTreeMap<UniqueAddress, Vec<EntryData>>>,
    in_flight: Vec<(Instant, usize, UniqueAddress, ReplicationMessage)>,
    rng: StdRng,
    drop_probability: f64,
}

impl Net {
    fn new(count: u16, seed: u64, drop_probability: f64) -> Self {
        let nodes: Vec<UniqueAddress> = (1..=count).map(node).collect();
        let cores = nodes
            .iter()
            .map(|n| ReplicationCore::new(n.clone(), INTERVAL))
            .collect();
        Self {
            views: vec![BTreeMap::new(); nodes.len()],
            nodes,
            cores,
            in_flight: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            drop_probability,
        }
    }

    fn index(&self, address: &UniqueAddress) -> usize {
        self.nodes.iter().position(|n| n == address).unwrap()
    }

    fn perform(&mut self, from: usize, now: Instant, out: Outputs) {
        for (to, message) in out.messages {
            if self.rng.random_bool(self.drop_probability) {
                continue;
            }
            let copies = if self.rng.random_bool(0.05) { 2 } else { 1 };
            for _ in 0..copies {
                let delay = Duration::from_millis(self.rng.random_range(1..400));
                let to = self.index(&to);
                self.in_flight
                    .push((now + delay, to, self.nodes[from].clone(), message.clone()));
            }
        }
        for (node, entries) in out.installs {
            if entries.is_empty() {
                self.views[from].remove(&node);
            } else {
                self.views[from].insert(node, entries);
            }
        }
    }

    fn set_members(&mut self, now: Instant, members: &BTreeMap<UniqueAddress, bool>) {
        for i in 0..self.cores.len() {
            let mut out = Outputs::default();
            self.cores[i].set_members(members, &mut out);
            self.perform(i, now, out);
        }
    }

    fn step(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(at, ..)| *at <= now);
        self.in_flight = later;
        for (_, to, from, message) in due {
            let mut out = Outputs::default();
            self.cores[to].handle_message(&from, message, &mut out);
            self.perform(to, now, out);
        }
        for i in 0..self.cores.len() {
            let mut out = Outputs::default();
            self.cores[i].tick(now, &mut out);
            self.perform(i, now, out);
        }
    }

    fn converged(&self) -> bool {
        (0..self.nodes.len()).all(|i| {
            let expected: BTreeMap<UniqueAddress, Vec<EntryData>> = (0..self.nodes.len())
                .filter(|j| *j != i && !self.cores[*j].entries.is_empty())
                .map(|j| (self.nodes[j].clone(), self.cores[j].entries.clone()))
                .collect();
            self.views[i] == expected && self.cores[i].installed() == expected
        })
    }
}

#[test]
fn lossy_network_converges() {
    for seed in 0..20 {
        let mut net = Net::new(5, seed, 0.3);
        let start = Instant::now();
        let everyone = members(
            &net.nodes
                .iter()
                .map(|n| (n.clone(), true))
                .collect::<Vec<_>>(),
        );
        net.set_members(start, &everyone);

        // Random registration changes for 20 virtual seconds.
        let mut now = start;
        let step = Duration::from_millis(100);
        while now < start + Duration::from_secs(20) {
            if net.rng.random_bool(0.1) {
                let i = net.rng.random_range(0..net.nodes.len());
                let count = net.rng.random_range(0..4u64);
                let host = net.nodes[i].clone();
                let entries = (0..count)
                    .map(|id| entry(&format!("k{}", id % 2), &host, net.rng.random_range(1..6)))
                    .collect();
                let mut out = Outputs::default();
                net.cores[i].set_local_entries(entries, &mut out);
                net.perform(i, now, out);
            }
            net.step(now);
            now += step;
        }

        // No more changes: the periodic exchange repairs every loss.
        let deadline = now + Duration::from_secs(60);
        while !net.converged() && now < deadline {
            net.step(now);
            now += step;
        }
        assert!(
            net.converged(),
            "seed {seed}: views did not converge within 60 virtual seconds"
        );
    }
}

#[test]
fn lossy_network_forgets_removed_member() {
    let mut net = Net::new(3, 7, 0.3);
    let start = Instant::now();
    let everyone = members(
        &net.nodes
            .iter()
            .map(|n| (n.clone(), true))
            .collect::<Vec<_>>(),
    );
    net.set_members(start, &everyone);
    let host = net.nodes[2].clone();
    let mut out = Outputs::default();
    net.cores[2].set_local_entries(vec![entry("k", &host, 1)], &mut out);
    net.perform(2, start, out);
    let mut now = start;
    while !net.converged() && now < start + Duration::from_secs(60) {
        net.step(now);
        now += Duration::from_millis(100);
    }
    assert!(
        net.views[0].contains_key(&host),
        "node 0 never saw node 2's set"
    );

    let without = members(&[(net.nodes[0].clone(), true), (net.nodes[1].clone(), true)]);
    for i in 0..2 {
        let mut out = Outputs::default();
        net.cores[i].set_members(&without, &mut out);
        net.perform(i, now, out);
    }
    for _ in 0..100 {
        net.step(now);
        now += Duration::from_millis(100);
    }
    assert!(!net.views[0].contains_key(&host));
    assert!(!net.views[1].contains_key(&host));
}
