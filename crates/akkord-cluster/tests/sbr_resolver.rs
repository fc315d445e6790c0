//! Split brain resolver timing rules and the lease-majority strategy, on a virtual clock.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::lease::{InProcessLease, Lease};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::sbr::{
    ClusterView, Decision, DowningStrategy, LeaseCommand, SbrOutput, SbrSettings,
    SplitBrainResolver, UnreachableRecord,
};

fn node(i: u16) -> UniqueAddress {
    let address = Address::new("test", "127.0.0.1", 2550 + i).expect("valid address");
    UniqueAddress::new(address, 9000 + u64::from(i))
}

fn up_members(count: u16) -> Vec<Member> {
    (0..count)
        .map(|i| Member {
            unique_address: node(i),
            status: MemberStatus::Up,
            roles: BTreeSet::new(),
            up_number: u32::from(i),
            app_version: "1.0.0".to_owned(),
        })
        .collect()
}

fn set(indices: &[u16]) -> BTreeSet<UniqueAddress> {
    indices.iter().map(|i| node(*i)).collect()
}

/// View of node 0, the leader, where node 0 records each of `unreachable` as unreachable.
fn view_with_unreachable(members: &[Member], unreachable: &[u16]) -> ClusterView {
    ClusterView {
        members: members.to_vec(),
        unreachable_records: unreachable
            .iter()
            .map(|i| UnreachableRecord {
                observer: node(0),
                subject: node(*i),
            })
            .collect(),
        seen_by: set(&[0]),
        is_leader: true,
    }
}

/// View of a side of a clean partition, as in the strategy tests.
fn side_view(members: &[Member], side: &BTreeSet<UniqueAddress>) -> ClusterView {
    let mut records = Vec::new();
    for observer in side {
        for member in members {
            if !side.contains(&member.unique_address) {
                records.push(UnreachableRecord {
                    observer: observer.clone(),
                    subject: member.unique_address.clone(),
                });
            }
        }
    }
    ClusterView {
        members: members.to_vec(),
        unreachable_records: records,
        seen_by: side.clone(),
        is_leader: true,
    }
}

fn resolver(settings: SbrSettings) -> SplitBrainResolver {
    SplitBrainResolver::new(node(0), settings).expect("valid settings")
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

#[test]
fn no_decision_before_stable_after() {
    let members = up_members(5);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    sbr.update_view(view_with_unreachable(&members, &[4]), start);
    for second in 0..20 {
        let output = sbr.tick(start + secs(second));
        assert_eq!(output, SbrOutput::default(), "decided at {second} s");
    }
    let output = sbr.tick(start + secs(20));
    assert_eq!(output.decision, Some(Decision::DownUnreachable));
    assert_eq!(output.down, set(&[4]));
}

#[test]
fn stable_timer_restarts_on_reachability_change() {
    let members = up_members(7);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    sbr.update_view(view_with_unreachable(&members, &[5]), start);
    sbr.update_view(view_with_unreachable(&members, &[5, 6]), start + secs(15));
    assert_eq!(sbr.stable_deadline(), Some(start + secs(35)));
    assert_eq!(sbr.tick(start + secs(20)), SbrOutput::default());
    assert_eq!(sbr.tick(start + secs(34)), SbrOutput::default());
    let output = sbr.tick(start + secs(35));
    assert_eq!(output.down, set(&[5, 6]));
}

#[test]
fn stable_timer_restarts_on_member_change() {
    let mut members = up_members(5);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    sbr.update_view(view_with_unreachable(&members, &[4]), start);
    members[2].status = MemberStatus::Leaving;
    sbr.update_view(view_with_unreachable(&members, &[4]), start + secs(10));
    assert_eq!(sbr.tick(start + secs(20)), SbrOutput::default());
    assert_eq!(sbr.tick(start + secs(30)).down, set(&[4]));
}

#[test]
fn stable_timer_ignores_joining_and_same_view() {
    let mut members = up_members(5);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    sbr.update_view(view_with_unreachable(&members, &[4]), start);
    // Same picture again, and a new joining member: neither restarts the timer.
    sbr.update_view(view_with_unreachable(&members, &[4]), start + secs(5));
    let mut joining = members[0].clone();
    joining.unique_address = node(9);
    joining.status = MemberStatus::Joining;
    joining.up_number = u32::MAX;
    members.push(joining);
    sbr.update_view(view_with_unreachable(&members, &[4]), start + secs(10));
    assert_eq!(sbr.stable_deadline(), Some(start + secs(20)));
    assert_eq!(sbr.tick(start + secs(20)).down, set(&[4]));
}

#[test]
fn decision_repeated_once_per_stable_after() {
    let members = up_members(5);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    sbr.update_view(view_with_unreachable(&members, &[4]), start);
    assert_eq!(sbr.tick(start + secs(20)).down, set(&[4]));
    assert_eq!(sbr.tick(start + secs(21)), SbrOutput::default());
    // The membership core has not applied the down yet, so the decision comes again.
    assert_eq!(sbr.tick(start + secs(40)).down, set(&[4]));

    // Once node 4 is Down nothing is unreachable any more.
    let mut downed = members.clone();
    downed[4].status = MemberStatus::Down;
    sbr.update_view(view_with_unreachable(&downed, &[4]), start + secs(41));
    assert_eq!(sbr.tick(start + secs(100)), SbrOutput::default());
}

#[test]
fn down_all_when_unstable() {
    let members = up_members(9);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    // The unreachable set changes every 10 s, so the view is never stable for 20 s.
    let pictures: [&[u16]; 2] = [&[7], &[7, 8]];
    let mut second = 0;
    let mut downed_all_at = None;
    while second <= 60 {
        if second % 10 == 0 {
            let picture = pictures[(second / 10) as usize % 2];
            sbr.update_view(
                view_with_unreachable(&members, picture),
                start + secs(second),
            );
        }
        let output = sbr.tick(start + secs(second));
        if let Some(decision) = output.decision {
            assert_eq!(decision, Decision::DownAll, "at {second} s");
            assert_eq!(output.down.len(), 9);
            downed_all_at = Some(second);
            break;
        }
        second += 1;
    }
    // The limit is stable_after 20 s plus three quarters of it, 15 s.
    assert_eq!(downed_all_at, Some(36));
}

#[test]
fn down_all_when_unstable_on_follower() {
    let members = up_members(9);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    for step in 0..4u64 {
        let mut view = view_with_unreachable(&members, if step % 2 == 0 { &[7] } else { &[8] });
        view.is_leader = false;
        sbr.update_view(view, start + secs(step * 10));
    }
    assert_eq!(sbr.tick(start + secs(35)), SbrOutput::default());
    assert_eq!(sbr.tick(start + secs(36)).decision, Some(Decision::DownAll));
}

#[test]
fn unstable_period_ends_when_healed() {
    let members = up_members(9);
    let mut sbr = resolver(SbrSettings::default());
    let start = Instant::now();
    sbr.update_view(view_with_unreachable(&members, &[7]), start);
    sbr.update_view(view_with_unreachable(&members, &[7, 8]), start + secs(10));
    sbr.update_view(view_with_unreachable(&members, &[]), start + secs(19));
    sbr.update_view(view_with_unreachable(&members, &[8]), start + secs(25));
    // A new period started at 25 s; the stable deadline is at 45 s.
    assert_eq!(sbr.tick(start + secs(44)), SbrOutput::default());
    assert_eq!(
        sbr.tick(start + secs(45)).decision,
        Some(Decision::DownUnreachable)
    );
}

#[test]
fn unstable_rule_can_be_turned_off() {
    let members = up_members(9);
    let settings = SbrSettings {
        down_all_when_unstable: None,
        ..SbrSettings::default()
    };
    let mut sbr = resolver(settings);
    let start = Instant::now();
    for step in 0..10u64 {
        let picture: &[u16] = if step % 2 == 0 { &[7] } else { &[8] };
        sbr.update_view(
            view_with_unreachable(&members, picture),
            start + secs(step * 10),
        );
        assert_eq!(sbr.tick(start + secs(step * 10 + 9)), SbrOutput::default());
    }
}

/// Drives the resolver of one side with a shared lease, as the shell would.
fn run_lease_side(
    sbr: &mut SplitBrainResolver,
    lease: &InProcessLease,
    from: Instant,
    seconds: u64,
) -> Option<SbrOutput> {
    for tenth in 0..seconds * 10 {
        let now = from + Duration::from_millis(tenth * 100);
        let output = sbr.tick(now);
        match &output.lease {
            Some(LeaseCommand::Acquire { owner }) => {
                let acquired = lease.acquire(owner).expect("in-process lease");
                return Some(sbr.handle_lease_result(acquired, now));
            }
            Some(LeaseCommand::Release { owner }) => {
                lease.release(owner).expect("in-process lease");
            }
            None => {}
        }
        if output.decision.is_some() {
            return Some(output);
        }
    }
    None
}

#[test]
fn lease_majority_one_side_survives() {
    let members = up_members(5);
    let lease = InProcessLease::new("sbr-lease");
    let settings = SbrSettings {
        strategy: DowningStrategy::lease_majority(None),
        ..SbrSettings::default()
    };
    let start = Instant::now();
    let mut majority = SplitBrainResolver::new(node(0), settings.clone()).expect("valid");
    let mut minority = SplitBrainResolver::new(node(3), settings).expect("valid");
    majority.update_view(side_view(&members, &set(&[0, 1, 2])), start);
    minority.update_view(side_view(&members, &set(&[3, 4])), start);

    // Nothing before stable_after; then the majority requests the lease at once and the minority 2 s
    // later.
    assert_eq!(majority.tick(start + secs(19)), SbrOutput::default());
    let stable = start + secs(20);
    assert_eq!(minority.tick(stable), SbrOutput::default());
    assert_eq!(
        minority.tick(stable + Duration::from_millis(1900)).lease,
        None
    );

    let majority_output = run_lease_side(&mut majority, &lease, stable, 5).expect("decided");
    assert_eq!(majority_output.decision, Some(Decision::DownUnreachable));
    assert_eq!(majority_output.down, set(&[3, 4]));
    assert_eq!(lease.holder(), Some(majority.lease_owner()));

    let minority_output = run_lease_side(&mut minority, &lease, stable, 5).expect("decided");
    assert_eq!(minority_output.decision, Some(Decision::DownReachable));
    assert_eq!(minority_output.down, set(&[3, 4]));

    // The membership core applies the downs; the lease is released 40 s after it was
    // acquired.
    let mut downed = members.clone();
    downed[3].status = MemberStatus::Down;
    downed[4].status = MemberStatus::Down;
    majority.update_view(side_view(&downed, &set(&[0, 1, 2])), stable + secs(1));
    assert_eq!(majority.tick(stable + secs(39)), SbrOutput::default());
    assert_eq!(
        majority.tick(stable + secs(40)).lease,
        Some(LeaseCommand::Release {
            owner: majority.lease_owner()
        })
    );
}

#[test]
fn lease_majority_holder_wins_even_in_minority() {
    let members = up_members(5);
    let lease = InProcessLease::new("sbr-lease");
    let settings = SbrSettings {
        strategy: DowningStrategy::lease_majority(None),
        ..SbrSettings::default()
    };
    let start = Instant::now();
    let mut majority = SplitBrainResolver::new(node(0), settings.clone()).expect("valid");
    let mut minority = SplitBrainResolver::new(node(3), settings).expect("valid");
    // The minority side already holds the lease, for example from an earlier decision.
    assert_eq!(lease.acquire(&minority.lease_owner()), Ok(true));
    majority.update_view(side_view(&members, &set(&[0, 1, 2])), start);
    minority.update_view(side_view(&members, &set(&[3, 4])), start);

    let stable = start + secs(20);
    let majority_output = run_lease_side(&mut majority, &lease, stable, 5).expect("decided");
    assert_eq!(majority_output.decision, Some(Decision::DownReachable));
    assert_eq!(majority_output.down, set(&[0, 1, 2]));
    let minority_output = run_lease_side(&mut minority, &lease, stable, 5).expect("decided");
    assert_eq!(minority_output.decision, Some(Decision::DownUnreachable));
    assert_eq!(minority_output.down, set(&[0, 1, 2]));
}

#[test]
fn lease_result_without_request_ignored() {
    let mut sbr = resolver(SbrSettings {
        strategy: DowningStrategy::lease_majority(None),
        ..SbrSettings::default()
    });
    assert_eq!(
        sbr.handle_lease_result(true, Instant::now()),
        SbrOutput::default()
    );
}

#[test]
fn fast_profile_and_derived_defaults() {
    let defaults = SbrSettings::default();
    assert_eq!(defaults.stable_after, secs(20));
    assert_eq!(defaults.down_all_when_unstable, Some(secs(15)));
    assert_eq!(defaults.down_removal_margin, secs(20));
    assert!(defaults.enabled);
    assert_eq!(
        defaults.strategy,
        DowningStrategy::KeepMajority { role: None }
    );

    let fast = SbrSettings::fast();
    assert_eq!(fast.stable_after, secs(7));
    assert_eq!(
        fast.down_all_when_unstable,
        Some(Duration::from_millis(5250))
    );
    assert_eq!(fast.down_removal_margin, secs(7));
    let sbr = resolver(fast);
    assert_eq!(sbr.down_removal_margin(), secs(7));

    // Three quarters of 4 s is below the 4 s floor.
    let tiny = SbrSettings::with_stable_after(secs(4));
    assert_eq!(tiny.down_all_when_unstable, Some(secs(4)));
}

#[test]
fn settings_rejected_with_field() {
    let cases = [
        (
            SbrSettings {
                stable_after: Duration::ZERO,
                ..SbrSettings::default()
            },
            "sbr.stable_after",
        ),
        (
            SbrSettings {
                down_all_when_unstable: Some(Duration::ZERO),
                ..SbrSettings::default()
            },
            "sbr.down_all_when_unstable",
        ),
        (
            SbrSettings {
                down_removal_margin: Duration::ZERO,
                ..SbrSettings::default()
            },
            "sbr.down_removal_margin",
        ),
        (
            SbrSettings {
                strategy: DowningStrategy::KeepMajority {
                    role: Some(String::new()),
                },
                ..SbrSettings::default()
            },
            "sbr.strategy.role",
        ),
        (
            SbrSettings {
                strategy: DowningStrategy::LeaseMajority {
                    role: None,
                    acquire_lease_delay_for_minority: Duration::ZERO,
                    release_after: secs(40),
                },
                ..SbrSettings::default()
            },
            "sbr.strategy.acquire_lease_delay_for_minority",
        ),
        (
            SbrSettings {
                strategy: DowningStrategy::LeaseMajority {
                    role: None,
                    acquire_lease_delay_for_minority: secs(2),
                    release_after: Duration::ZERO,
                },
                ..SbrSettings::default()
            },
            "sbr.strategy.release_after",
        ),
    ];
    for (settings, field) in cases {
        let error = SplitBrainResolver::new(node(0), settings).expect_err(field);
        assert_eq!(error.field, field);
        assert!(error.to_string().contains(field), "{error}");
    }
}

#[test]
fn lease_result_after_heal_downs_nothing() {
    let members = up_members(5);
    let lease = InProcessLease::new("sbr-lease");
    let settings = SbrSettings {
        strategy: DowningStrategy::lease_majority(None),
        ..SbrSettings::default()
    };
    let start = Instant::now();
    let mut minority = SplitBrainResolver::new(node(3), settings).expect("valid");
    assert_eq!(lease.acquire("someone else"), Ok(true));
    minority.update_view(side_view(&members, &set(&[3, 4])), start);
    let stable = start + secs(20);
    assert_eq!(minority.tick(stable).lease, None);
    let acquire = minority.tick(stable + secs(2)).lease;
    assert_eq!(
        acquire,
        Some(LeaseCommand::Acquire {
            owner: minority.lease_owner()
        })
    );

    // The partition heals before the lease backend responds.
    let mut healed = side_view(&members, &set(&[3, 4]));
    healed.unreachable_records.clear();
    minority.update_view(healed, stable + Duration::from_millis(2100));
    let acquired = lease
        .acquire(&minority.lease_owner())
        .expect("in-process lease");
    assert!(!acquired);
    let output = minority.handle_lease_result(acquired, stable + Duration::from_millis(2200));
    assert_eq!(output, SbrOutput::default());
}
