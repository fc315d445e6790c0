//! Tests of the hand-over core on a virtual clock: scenarios step by step, and a seeded
//! randomized simulation that checks that two copies never run at once.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::member::{Member, MemberStatus};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{HandOverMessage, ManagerCore, Output};

const MARGIN: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(1);
const ROLE: &str = "host";

fn node(port: u16) -> UniqueAddress {
    UniqueAddress::new(
        Address::new("sim", "127.0.0.1", port).unwrap(),
        u64::from(port) * 7,
    )
}

fn member(port: u16, status: MemberStatus, up_number: u32) -> Member {
    let roles = BTreeSet::from([ROLE.to_owned()]);
    Member {
        status,
        up_number,
        ..Member::joining(node(port), roles, "1".to_owned())
    }
}

fn core(port: u16) -> ManagerCore {
    ManagerCore::new(node(port), "single", Some(ROLE.to_owned()), MARGIN, RETRY)
}

fn starts(outputs: &[Output]) -> Vec<u64> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Start { incarnation } => Some(*incarnation),
            _ => None,
        })
        .collect()
}

fn sends(outputs: &[Output]) -> Vec<(UniqueAddress, HandOverMessage)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send { to, message } => Some((to.clone(), *message)),
            _ => None,
        })
        .collect()
}

#[test]
fn oldest_starts_at_once() {
    let now = Instant::now();
    let mut a = core(1);
    let outputs = a.apply_members(
        &[
            member(1, MemberStatus::Up, 1),
            member(2, MemberStatus::Up, 2),
        ],
        now,
    );
    assert_eq!(starts(&outputs), vec![1]);
    assert!(a.is_active());
}

#[test]
fn younger_member_does_not_start() {
    let now = Instant::now();
    let mut b = core(2);
    let outputs = b.apply_members(
        &[
            member(1, MemberStatus::Up, 1),
            member(2, MemberStatus::Up, 2),
        ],
        now,
    );
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(!b.is_active());
}

#[test]
fn member_without_role_does_not_start() {
    let now = Instant::now();
    let mut plain = core(1);
    let without_role = Member {
        roles: BTreeSet::new(),
        ..member(1, MemberStatus::Up, 1)
    };
    let outputs = plain.apply_members(&[without_role, member(2, MemberStatus::Up, 2)], now);
    assert!(outputs.is_empty(), "{outputs:?}");
}

#[test]
fn leave_hands_over_step_by_step() {
    let now = Instant::now();
    let mut a = core(1);
    let mut b = core(2);
    let up = [
        member(1, MemberStatus::Up, 1),
        member(2, MemberStatus::Up, 2),
    ];
    assert_eq!(starts(&a.apply_members(&up, now)), vec![1]);
    assert!(b.apply_members(&up, now).is_empty());

    // The oldest leaves; the next oldest requests the hand-over.
    let leaving = [
        member(1, MemberStatus::Leaving, 1),
        member(2, MemberStatus::Up, 2),
    ];
    assert!(a.apply_members(&leaving, now).is_empty());
    let request = b.apply_members(&leaving, now);
    assert_eq!(
        sends(&request),
        vec![(node(1), HandOverMessage::HandOverToMe)]
    );
    assert!(starts(&request).is_empty());

    // The old oldest stops its copy and confirms only after termination.
    let stop = a.handle_message(&node(2), HandOverMessage::HandOverToMe, now);
    assert_eq!(stop, vec![Output::Stop { incarnation: 1 }]);
    assert!(!a.is_active());
    assert!(a.is_running());
    let done = a.singleton_terminated(1, now);
    assert_eq!(sends(&done), vec![(node(2), HandOverMessage::HandOverDone)]);
    assert!(!a.is_running());

    // The new oldest starts.
    let start = b.handle_message(&node(1), HandOverMessage::HandOverDone, now);
    assert_eq!(starts(&start), vec![1]);
    assert!(b.is_active());
}

#[test]
fn hand_over_request_resent_every_interval() {
    let now = Instant::now();
    let mut b = core(2);
    let leaving = [
        member(1, MemberStatus::Leaving, 1),
        member(2, MemberStatus::Up, 2),
    ];
    assert_eq!(sends(&b.apply_members(&leaving, now)).len(), 1);
    assert!(sends(&b.tick(now + RETRY / 2)).is_empty());
    assert_eq!(
        sends(&b.tick(now + RETRY)),
        vec![(node(1), HandOverMessage::HandOverToMe)]
    );
    assert!(sends(&b.tick(now + RETRY + RETRY / 2)).is_empty());
}

#[test]
fn request_ignored_until_own_view_shows_leaving() {
    let now = Instant::now();
    let mut a = core(1);
    let up = [
        member(1, MemberStatus::Up, 1),
        member(2, MemberStatus::Up, 2),
    ];
    a.apply_members(&up, now);
    let outputs = a.handle_message(&node(2), HandOverMessage::HandOverToMe, now);
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(a.is_active());
}

#[test]
fn idle_leaving_member_confirms_at_once() {
    let now = Instant::now();
    let mut b = core(2);
    let leaving = [
        member(1, MemberStatus::Up, 1),
        member(2, MemberStatus::Leaving, 2),
        member(3, MemberStatus::Up, 3),
    ];
    b.apply_members(&leaving, now);
    let outputs = b.handle_message(&node(3), HandOverMessage::HandOverToMe, now);
    assert_eq!(
        sends(&outputs),
        vec![(node(3), HandOverMessage::HandOverDone)]
    );
}

#[test]
fn take_over_waits_for_removal_and_margin() {
    let now = Instant::now();
    let mut b = core(2);
    let up = [
        member(1, MemberStatus::Up, 1),
        member(2, MemberStatus::Up, 2),
    ];
    b.apply_members(&up, now);

    let downed = [
        member(1, MemberStatus::Down, 1),
        member(2, MemberStatus::Up, 2),
    ];
    let outputs = b.apply_members(&downed, now);
    assert!(
        outputs.is_empty(),
        "a downed member gets no request: {outputs:?}"
    );
    assert!(b.tick(now + Duration::from_secs(60)).is_empty());

    let removed_at = now + Duration::from_secs(61);
    assert!(b
        .apply_members(&[member(2, MemberStatus::Up, 2)], removed_at)
        .is_empty());
    assert!(b
        .tick(removed_at + MARGIN - Duration::from_millis(1))
        .is_empty());
    assert_eq!(starts(&b.tick(removed_at + MARGIN)), vec![1]);
}

#[test]
fn removal_without_confirmation_waits_margin() {
    let now = Instant::now();
    let mut b = core(2);
    let exiting = [
        member(1, MemberStatus::Exiting, 1),
        member(2, MemberStatus::Up, 2),
    ];
    b.apply_members(&exiting, now);
    let removed = [member(2, MemberStatus::Up, 2)];
    assert!(starts(&b.apply_members(&removed, now)).is_empty());
    assert!(starts(&b.tick(now + MARGIN / 2)).is_empty());
    assert_eq!(starts(&b.tick(now + MARGIN)), vec![1]);
}

#[test]
fn removal_after_confirmation_starts_at_once() {
    let now = Instant::now();
    let mut b = core(2);
    let exiting = [
        member(1, MemberStatus::Exiting, 1),
        member(2, MemberStatus::Up, 2),
    ];
    b.apply_members(&exiting, now);
    // The confirmation was lost once, so the start waits for the resent request.
    b.tick(now + RETRY);
    let started = b.handle_message(&node(1), HandOverMessage::HandOverDone, now + RETRY);
    assert_eq!(starts(&started), vec![1]);
    let removed = [member(2, MemberStatus::Up, 2)];
    let outputs = b.apply_members(&removed, now + RETRY);
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(b.is_active());
}

#[test]
fn downed_node_stops_its_copy() {
    let now = Instant::now();
    let mut a = core(1);
    a.apply_members(
        &[
            member(1, MemberStatus::Up, 1),
            member(2, MemberStatus::Up, 2),
        ],
        now,
    );
    let outputs = a.apply_members(
        &[
            member(1, MemberStatus::Down, 1),
            member(2, MemberStatus::Up, 2),
        ],
        now,
    );
    assert_eq!(outputs, vec![Output::Stop { incarnation: 1 }]);
    assert!(a.singleton_terminated(1, now).is_empty());
    assert!(a.tick(now + Duration::from_secs(600)).is_empty());
}

#[test]
fn removed_self_stops_its_copy() {
    let now = Instant::now();
    let mut a = core(1);
    a.apply_members(&[member(1, MemberStatus::Up, 1)], now);
    let outputs = a.apply_members(&[member(2, MemberStatus::Up, 2)], now);
    assert_eq!(outputs, vec![Output::Stop { incarnation: 1 }]);
}

#[test]
fn copy_that_stops_by_itself_is_not_restarted() {
    let now = Instant::now();
    let mut a = core(1);
    assert_eq!(
        starts(&a.apply_members(&[member(1, MemberStatus::Up, 1)], now)),
        vec![1]
    );
    assert!(a.singleton_terminated(1, now).is_empty());
    assert!(a.tick(now + Duration::from_secs(5)).is_empty());
    assert!(!a.is_running());
}

#[test]
fn stale_termination_ignored() {
    let now = Instant::now();
    let mut a = core(1);
    a.apply_members(&[member(1, MemberStatus::Up, 1)], now);
    assert!(a.singleton_terminated(7, now).is_empty());
    assert!(a.is_active());
}

// The randomized simulation below runs several managers against one membership history.
// Each node receives the history in order but late, messages are delayed and lost, and a
// crashed node is cut off from everyone until it learns that it was downed.

/// Maximum delay before a node observes a membership change; below the removal margin, as
/// the protocol requires.
const MAX_VIEW_LAG_MS: u64 = 800;
/// Maximum time between a stop and the termination of the singleton actor.
const MAX_STOP_MS: u64 = 300;
const TICK_MS: u64 = 100;

#[derive(Clone, Debug)]
enum Event {
    View {
        node: usize,
        members: Vec<Member>,
    },
    Deliver {
        to: usize,
        from: usize,
        message: HandOverMessage,
    },
    Terminated {
        node: usize,
        incarnation: u64,
    },
    Tick {
        node: usize,
    },
}

struct Sim {
    rng: SmallRng,
    start: Instant,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Event>,
    cores: Vec<ManagerCore>,
    /// Incarnation of the copy running on each node, from start until its termination
    /// reaches the manager.
    running: Vec<Option<u64>>,
    /// The time each node was cut off from the others.
    crashed_at: Vec<Option<u64>>,
    /// Per node, the time of its last view, so views arrive in order.
    last_view: Vec<u64>,
    starts: usize,
    drop_rate: f64,
}

impl Sim {
    fn new(seed: u64, nodes: usize) -> Self {
        let cores = (0..nodes).map(|i| core(i as u16 + 1)).collect();
        Self {
            rng: SmallRng::seed_from_u64(seed),
            start: Instant::now(),
            queue: BinaryHeap::new(),
            events: Vec::new(),
            cores,
            running: vec![None; nodes],
            crashed_at: vec![None; nodes],
            last_view: vec![0; nodes],
            starts: 0,
            drop_rate: 0.25,
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        let seq = self.events.len() as u64;
        self.events.push(event);
        self.queue.push(Reverse((at, seq, seq as usize)));
    }

    /// Shows `members` to `node` after a random lag, keeping its views in order.
    fn show(&mut self, node: usize, at: u64, members: Vec<Member>) {
        let lag = self.rng.random_range(0..=MAX_VIEW_LAG_MS);
        let when = (at + lag).max(self.last_view[node]);
        self.last_view[node] = when;
        self.schedule(when, Event::View { node, members });
    }

    /// Publishes a membership state at `at` to every node that is not cut off by then.
    fn publish(&mut self, at: u64, members: &[Member]) {
        for node in 0..self.cores.len() {
            if self.crashed_at[node].is_none_or(|crashed| at < crashed) {
                self.show(node, at, members.to_vec());
            }
        }
    }

    fn perform(&mut self, node: usize, now: u64, outputs: Vec<Output>, seed: u64) {
        for output in outputs {
            match output {
                Output::Start { incarnation } => {
                    let others: Vec<usize> = (0..self.running.len())
                        .filter(|other| *other != node && self.running[*other].is_some())
                        .collect();
                    assert!(
                        others.is_empty(),
                        "seed {seed}: node {node} started at {now} ms while {others:?} still run"
                    );
                    self.running[node] = Some(incarnation);
                    self.starts += 1;
                }
                Output::Stop { incarnation } => {
                    let delay = self.rng.random_range(1..=MAX_STOP_MS);
                    self.schedule(now + delay, Event::Terminated { node, incarnation });
                }
                Output::Send { to, message } => {
                    let to = (to.address.port() - 1) as usize;
                    let cut = |n: usize| self.crashed_at[n].is_some_and(|at| at <= now);
                    if cut(node) || cut(to) || self.rng.random_bool(self.drop_rate) {
                        continue;
                    }
                    let delay = self.rng.random_range(1..=50);
                    self.schedule(
                        now + delay,
                        Event::Deliver {
                            to,
                            from: node,
                            message,
                        },
                    );
                }
            }
        }
    }

    fn run(&mut self, until: u64, seed: u64) {
        for node in 0..self.cores.len() {
            let mut at = 0;
            while at <= until {
                self.schedule(at, Event::Tick { node });
                at += TICK_MS;
            }
        }
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            let now = self.start + Duration::from_millis(at);
            let event = self.events[index].clone();
            let (node, outputs) = match event {
                Event::View { node, members } => {
                    (node, self.cores[node].apply_members(&members, now))
                }
                Event::Deliver { to, from, message } => {
                    let from = node(from as u16 + 1);
                    (to, self.cores[to].handle_message(&from, message, now))
                }
                Event::Terminated { node, incarnation } => {
                    if self.running[node] == Some(incarnation) {
                        self.running[node] = None;
                    }
                    (
                        node,
                        self.cores[node].singleton_terminated(incarnation, now),
                    )
                }
                Event::Tick { node } => (node, self.cores[node].tick(now)),
            };
            self.perform(node, at, outputs, seed);
        }
    }
}

/// Builds a random membership history: members join Up one by one, then some leave
/// gracefully and some crash and are downed, while at least one stays.
fn random_history(sim: &mut Sim, seed: u64) -> (Vec<usize>, u64) {
    let nodes = sim.cores.len();
    let mut members: Vec<Member> = Vec::new();
    let mut at = 0;
    for i in 0..nodes {
        members.push(member(i as u16 + 1, MemberStatus::Up, i as u32 + 1));
        sim.publish(at, &members);
        at += sim.rng.random_range(0..2_000);
    }
    let changes = sim.rng.random_range(1..nodes);
    let mut remaining: Vec<usize> = (0..nodes).collect();
    for _ in 0..changes {
        at += sim.rng.random_range(0..6_000);
        // Prefer the oldest, whose departure moves the singleton.
        let pick = if sim.rng.random_bool(0.6) {
            0
        } else {
            sim.rng.random_range(0..remaining.len())
        };
        let departing = remaining.remove(pick);
        let index = members
            .iter()
            .position(|m| m.unique_address == node(departing as u16 + 1))
            .unwrap_or_else(|| panic!("seed {seed}: node {departing} missing"));
        if sim.rng.random_bool(0.5) {
            // Graceful leave: Leaving, Exiting, removed.
            members[index].status = MemberStatus::Leaving;
            sim.publish(at, &members);
            let exit_at = at + sim.rng.random_range(100..3_000);
            members[index].status = MemberStatus::Exiting;
            sim.publish(exit_at, &members);
            let removed_at = exit_at + sim.rng.random_range(100..2_000);
            members.remove(index);
            sim.publish(removed_at, &members);
        } else {
            // Crash: cut off now, downed after failure detection, then removed. The crashed
            // node learns of its own downing from its side of the partition.
            sim.crashed_at[departing] = Some(at);
            let down_at = at + sim.rng.random_range(500..12_000);
            members[index].status = MemberStatus::Down;
            sim.publish(down_at, &members);
            let own_view = members.clone();
            sim.show(departing, down_at, own_view);
            let removed_at = down_at + sim.rng.random_range(0..1_500);
            members.remove(index);
            sim.publish(removed_at, &members);
        }
    }
    (remaining, at + 30_000)
}

#[test]
fn randomized_histories_never_run_two_copies() {
    let mut moved = 0;
    for seed in 0..400 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let nodes = rng.random_range(2..=5);
        let mut sim = Sim::new(seed, nodes);
        let (remaining, until) = random_history(&mut sim, seed);
        sim.run(until, seed);

        // Liveness: once the history settles, the oldest remaining node runs the only copy.
        let oldest = remaining[0];
        let running: Vec<usize> = (0..nodes).filter(|n| sim.running[*n].is_some()).collect();
        assert_eq!(
            running,
            vec![oldest],
            "seed {seed}: expected only node {oldest} to run the singleton at the end"
        );
        if oldest != 0 {
            moved += 1;
        }
        assert!(sim.starts >= 1, "seed {seed}: no start at all");
    }
    assert!(moved > 100, "only {moved} histories moved the singleton");
}
