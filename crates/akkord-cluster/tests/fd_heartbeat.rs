//! Heartbeat ring and heartbeat state machine on a virtual clock.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::heartbeat::{
    HeartbeatCore, HeartbeatRequest, HeartbeatResponse, HeartbeatRing, HeartbeatSettings,
    ReachabilityObservation,
};

fn node(i: u16) -> UniqueAddress {
    let address = Address::new("test", "127.0.0.1", 2550 + i).expect("valid address");
    UniqueAddress::new(address, 1000 + u64::from(i))
}

fn nodes(count: u16) -> BTreeSet<UniqueAddress> {
    (0..count).map(node).collect()
}

fn nine() -> NonZeroUsize {
    NonZeroUsize::new(9).expect("not zero")
}

/// Several heartbeat cores wired together with instant delivery.
struct Cluster {
    cores: BTreeMap<UniqueAddress, HeartbeatCore>,
    /// Nodes that neither respond to requests nor send them, as if crashed.
    silent: BTreeSet<UniqueAddress>,
    now: Instant,
    /// Every observation with its time, per observer.
    observed: Vec<(UniqueAddress, Instant, ReachabilityObservation)>,
}

impl Cluster {
    fn new(members: &BTreeSet<UniqueAddress>) -> Self {
        let now = Instant::now();
        let mut cores = BTreeMap::new();
        for member in members {
            let mut core = HeartbeatCore::new(member.clone(), HeartbeatSettings::default())
                .expect("default settings");
            core.update_members(members, &BTreeSet::new(), now);
            cores.insert(member.clone(), core);
        }
        Self {
            cores,
            silent: BTreeSet::new(),
            now,
            observed: Vec::new(),
        }
    }

    /// Advances the virtual clock in steps of 100 ms for `duration`, ticking every core and
    /// delivering requests and responses at once.
    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += Duration::from_millis(100);
            self.step();
        }
    }

    fn step(&mut self) {
        let now = self.now;
        let mut requests: Vec<HeartbeatRequest> = Vec::new();
        for (address, core) in &mut self.cores {
            if self.silent.contains(address) {
                continue;
            }
            let output = core.tick(now);
            requests.extend(output.requests);
            for observation in output.observations {
                self.observed.push((address.clone(), now, observation));
            }
        }
        for request in requests {
            if self.silent.contains(&request.to) {
                continue;
            }
            let Some(target) = self.cores.get(&request.to) else {
                continue;
            };
            let Some(response) = target.handle_request(&request) else {
                continue;
            };
            if let Some(sender) = self.cores.get_mut(&request.from) {
                sender.handle_response(&response, now);
            }
        }
    }

    fn update_all(
        &mut self,
        members: &BTreeSet<UniqueAddress>,
        unreachable: &BTreeSet<UniqueAddress>,
    ) {
        for core in self.cores.values_mut() {
            core.update_members(members, unreachable, self.now);
        }
    }

    fn first_unreachable_at(&self, subject: &UniqueAddress) -> Vec<Instant> {
        self.observed
            .iter()
            .filter(|(_, _, observation)| {
                *observation == ReachabilityObservation::Unreachable(subject.clone())
            })
            .map(|(_, at, _)| *at)
            .collect()
    }
}

#[test]
fn ring_selection_deterministic() {
    let members = nodes(25);
    let reversed: Vec<UniqueAddress> = members.iter().rev().cloned().collect();
    let ring_a = HeartbeatRing::new(members.iter().cloned(), BTreeSet::new(), nine());
    let ring_b = HeartbeatRing::new(reversed, BTreeSet::new(), nine());
    for member in &members {
        assert_eq!(
            ring_a.receivers(member),
            ring_b.receivers(member),
            "{member}"
        );
    }
}

#[test]
fn ring_monitors_nine_each() {
    let members = nodes(30);
    let ring = HeartbeatRing::new(members.iter().cloned(), BTreeSet::new(), nine());
    let mut monitored_by: BTreeMap<UniqueAddress, usize> = BTreeMap::new();
    for member in &members {
        let receivers = ring.receivers(member);
        assert_eq!(receivers.len(), 9, "receivers of {member}");
        assert!(!receivers.contains(member));
        for receiver in receivers {
            *monitored_by.entry(receiver).or_default() += 1;
        }
    }
    // On a ring where everyone is reachable, each node is monitored by the nine before it.
    for member in &members {
        assert_eq!(monitored_by.get(member), Some(&9), "monitors of {member}");
    }
}

#[test]
fn small_cluster_monitors_everyone() {
    for size in [2u16, 5, 10] {
        let members = nodes(size);
        let ring = HeartbeatRing::new(members.iter().cloned(), BTreeSet::new(), nine());
        for member in &members {
            let receivers = ring.receivers(member);
            assert_eq!(receivers.len(), usize::from(size) - 1, "size {size}");
            assert!(!receivers.contains(member));
        }
    }
}

#[test]
fn ring_unreachable_monitored_not_counted() {
    let members = nodes(30);
    let sender = node(0);
    let plain = HeartbeatRing::new(members.iter().cloned(), BTreeSet::new(), nine());
    let first_two: BTreeSet<UniqueAddress> = {
        let order: Vec<UniqueAddress> = plain.nodes().cloned().collect();
        let position = order.iter().position(|n| *n == sender).expect("on ring");
        (1..=2)
            .map(|offset| order[(position + offset) % order.len()].clone())
            .collect()
    };
    let ring = HeartbeatRing::new(members.iter().cloned(), first_two.clone(), nine());
    let receivers = ring.receivers(&sender);
    let reachable = receivers.difference(&first_two).count();
    assert_eq!(reachable, 9);
    assert!(receivers.is_superset(&first_two));
    assert_eq!(receivers.len(), 11);
}

#[test]
fn silent_node_unreachable_near_4_5s() {
    let members = nodes(5);
    let mut cluster = Cluster::new(&members);
    cluster.run_for(Duration::from_secs(30));
    assert!(cluster.observed.is_empty(), "{:?}", cluster.observed);

    let victim = node(3);
    let last_heartbeat = cluster.now;
    cluster.silent.insert(victim.clone());
    cluster.run_for(Duration::from_secs(10));

    let times = cluster.first_unreachable_at(&victim);
    assert_eq!(times.len(), 4, "every other node observes the victim");
    for at in times {
        let after = at - last_heartbeat;
        assert!(after >= Duration::from_millis(3500), "too early: {after:?}");
        assert!(after <= Duration::from_secs(6), "too late: {after:?}");
    }
    let others_unreachable = cluster
        .observed
        .iter()
        .filter(|(_, _, observation)| {
            *observation != ReachabilityObservation::Unreachable(victim.clone())
        })
        .count();
    assert_eq!(others_unreachable, 0);
}

#[test]
fn never_answering_node_unreachable() {
    let members = nodes(3);
    let mut cluster = Cluster::new(&members);
    let mute = node(2);
    cluster.silent.insert(mute.clone());
    let start = cluster.now;
    cluster.run_for(Duration::from_secs(15));
    let times = cluster.first_unreachable_at(&mute);
    assert_eq!(times.len(), 2);
    for at in times {
        let after = at - start;
        // First request at 0.1 s, detector started 1 s later from the seed history
        // (mean 1 s, deviation 250 ms), so phi 8 is reached about 5.3 s after that.
        assert!(after >= Duration::from_secs(5), "too early: {after:?}");
        assert!(after <= Duration::from_secs(8), "too late: {after:?}");
    }
}

#[test]
fn recovered_node_reachable_again() {
    let members = nodes(4);
    let mut cluster = Cluster::new(&members);
    cluster.run_for(Duration::from_secs(10));
    let victim = node(1);
    cluster.silent.insert(victim.clone());
    cluster.run_for(Duration::from_secs(8));
    assert_eq!(cluster.first_unreachable_at(&victim).len(), 3);

    // The membership core records the observations and passes the new unreachable set.
    let unreachable: BTreeSet<UniqueAddress> = [victim.clone()].into();
    cluster.update_all(&members, &unreachable);
    cluster.silent.remove(&victim);
    cluster.run_for(Duration::from_secs(3));

    let reachable: Vec<&UniqueAddress> = cluster
        .observed
        .iter()
        .filter(|(_, _, observation)| {
            *observation == ReachabilityObservation::Reachable(victim.clone())
        })
        .map(|(observer, _, _)| observer)
        .collect();
    assert_eq!(reachable.len(), 3, "{:?}", cluster.observed);
    for core in cluster.cores.values() {
        assert!(!core.is_reported_unreachable(&victim));
    }
}

#[test]
fn removed_member_not_monitored() {
    let members = nodes(6);
    let mut cluster = Cluster::new(&members);
    cluster.run_for(Duration::from_secs(5));
    let removed = node(4);
    let observer = node(0);
    assert!(cluster.cores[&observer].detector(&removed).is_some());

    let mut remaining = members.clone();
    remaining.remove(&removed);
    cluster.update_all(&remaining, &BTreeSet::new());
    cluster.silent.insert(removed.clone());
    let core = cluster.cores.get_mut(&observer).expect("observer");
    assert!(!core.active_receivers().contains(&removed));
    assert!(core.detector(&removed).is_none());

    let now = cluster.now + Duration::from_secs(1);
    let output = core.tick(now);
    assert_eq!(output.requests.len(), 4);
    assert!(output.requests.iter().all(|request| request.to != removed));
    cluster.run_for(Duration::from_secs(20));
    assert!(cluster.first_unreachable_at(&removed).is_empty());
}

#[test]
fn ring_recomputed_on_membership_change() {
    let start = Instant::now();
    let observer = node(0);
    let mut core =
        HeartbeatCore::new(observer.clone(), HeartbeatSettings::default()).expect("defaults");
    let small = nodes(8);
    core.update_members(&small, &BTreeSet::new(), start);
    assert_eq!(core.ring_receivers().len(), 7);

    let large = nodes(40);
    core.update_members(&large, &BTreeSet::new(), start);
    let expected =
        HeartbeatRing::new(large.iter().cloned(), BTreeSet::new(), nine()).receivers(&observer);
    assert_eq!(core.ring_receivers(), &expected);
    let output = core.tick(start);
    let sent_to: BTreeSet<UniqueAddress> = output.requests.into_iter().map(|r| r.to).collect();
    assert_eq!(sent_to, expected);
}

#[test]
fn former_receiver_monitored_until_reachable() {
    let members = nodes(12);
    let observer = node(0);
    let mut core =
        HeartbeatCore::new(observer.clone(), HeartbeatSettings::default()).expect("defaults");
    let mut now = Instant::now();
    core.update_members(&members, &BTreeSet::new(), now);
    let receivers: Vec<UniqueAddress> = core.ring_receivers().iter().cloned().collect();
    let victim = receivers[0].clone();

    // Steady responses from everyone, then the victim goes silent.
    for round in 0..30 {
        now += Duration::from_secs(1);
        let output = core.tick(now);
        for request in output.requests {
            if round >= 20 && request.to == victim {
                continue;
            }
            let response = HeartbeatResponse {
                from: request.to,
                sequence_nr: request.sequence_nr,
            };
            core.handle_response(&response, now);
        }
    }
    assert!(core.is_reported_unreachable(&victim));

    // Many new members push the victim off this node's ring receivers.
    let grown: BTreeSet<UniqueAddress> = nodes(200);
    let unreachable: BTreeSet<UniqueAddress> = [victim.clone()].into();
    core.update_members(&grown, &unreachable, now);
    assert!(!core.ring_receivers().contains(&victim));
    assert!(core.active_receivers().contains(&victim));

    // The victim responds again, is reported reachable, and is then monitored only if it is
    // still a ring receiver.
    now += Duration::from_secs(1);
    let output = core.tick(now);
    assert!(output.requests.iter().any(|request| request.to == victim));
    core.handle_response(
        &HeartbeatResponse {
            from: victim.clone(),
            sequence_nr: 31,
        },
        now,
    );
    let output = core.tick(now + Duration::from_millis(10));
    assert!(output
        .observations
        .contains(&ReachabilityObservation::Reachable(victim.clone())));
    assert!(!core.active_receivers().contains(&victim));
    assert!(core.detector(&victim).is_none());
}

#[test]
fn late_tick_reported() {
    let mut core = HeartbeatCore::new(node(0), HeartbeatSettings::default()).expect("defaults");
    core.update_members(&nodes(3), &BTreeSet::new(), Instant::now());
    let start = Instant::now();
    assert_eq!(core.tick(start).late_by, None);
    assert_eq!(core.next_wakeup(), Some(start + Duration::from_secs(1)));

    let on_time = core.tick(start + Duration::from_millis(1300));
    assert_eq!(on_time.late_by, None);
    assert_eq!(on_time.requests.len(), 2);

    let late = core.tick(start + Duration::from_millis(3000));
    assert_eq!(late.late_by, Some(Duration::from_millis(700)));
    assert_eq!(late.requests.len(), 2);
}

#[test]
fn no_round_before_interval() {
    let mut core = HeartbeatCore::new(node(0), HeartbeatSettings::default()).expect("defaults");
    let start = Instant::now();
    core.update_members(&nodes(3), &BTreeSet::new(), start);
    assert_eq!(core.tick(start).requests.len(), 2);
    assert!(core
        .tick(start + Duration::from_millis(999))
        .requests
        .is_empty());
    assert_eq!(core.tick(start + Duration::from_secs(1)).requests.len(), 2);
}

#[test]
fn request_for_other_incarnation_dropped() {
    let core = HeartbeatCore::new(node(0), HeartbeatSettings::default()).expect("defaults");
    let mut old_incarnation = node(0);
    old_incarnation.uid += 1;
    let request = HeartbeatRequest {
        from: node(1),
        to: old_incarnation,
        sequence_nr: 1,
    };
    assert_eq!(core.handle_request(&request), None);
    let request = HeartbeatRequest {
        from: node(1),
        to: node(0),
        sequence_nr: 7,
    };
    let response = core.handle_request(&request).expect("answered");
    assert_eq!(response.from, node(0));
    assert_eq!(response.sequence_nr, 7);
}

#[test]
fn response_from_stranger_ignored() {
    let mut core = HeartbeatCore::new(node(0), HeartbeatSettings::default()).expect("defaults");
    let now = Instant::now();
    core.update_members(&nodes(3), &BTreeSet::new(), now);
    let stranger = node(50);
    core.handle_response(
        &HeartbeatResponse {
            from: stranger.clone(),
            sequence_nr: 1,
        },
        now,
    );
    assert!(core.detector(&stranger).is_none());
}

#[test]
fn settings_rejected_with_field() {
    let settings = HeartbeatSettings {
        interval: Duration::ZERO,
        ..HeartbeatSettings::default()
    };
    let error = HeartbeatCore::new(node(0), settings).expect_err("zero interval");
    assert_eq!(error.field, "heartbeat.interval");
    let settings = HeartbeatSettings {
        expected_response_after: Duration::ZERO,
        ..HeartbeatSettings::default()
    };
    let error = settings.validate().expect_err("zero expected response");
    assert_eq!(error.field, "heartbeat.expected_response_after");
}
