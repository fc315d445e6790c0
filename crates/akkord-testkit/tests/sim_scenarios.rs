//! Scenarios on a toy protocol that exercise the simulator's clock, network and node
//! lifecycle.

use std::time::{Duration, Instant};

use akkord_testkit::sim::{
    run_seeds, FaultConfig, FaultSchedule, LinkConfig, Outputs, SimNode, Simulator,
};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// Address of a toy node: an id and the uid of its incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Addr {
    id: u32,
    uid: u64,
}

fn addr(id: u32) -> Addr {
    Addr { id, uid: 1 }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Msg {
    /// Asks the receiver for a `Pong` with the same number.
    Ping(u64),
    Pong(u64),
    /// A counter value sent on every tick.
    Value(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Received(Addr, Msg),
    Ticked,
}

/// Toy protocol: records everything it receives, replies to pings, and on every tick sends the
/// next counter value to each target.
struct Toy {
    address: Addr,
    targets: Vec<Addr>,
    /// Time between ticks; zero means only the first tick runs.
    interval: Duration,
    next_value: u64,
    received: Vec<(Addr, Msg)>,
    ticks: u64,
}

impl Toy {
    fn new(address: Addr) -> Self {
        Self {
            address,
            targets: Vec::new(),
            interval: Duration::ZERO,
            next_value: 0,
            received: Vec::new(),
            ticks: 0,
        }
    }

    fn sending(mut self, targets: &[Addr], interval: Duration) -> Self {
        self.targets = targets.to_vec();
        self.interval = interval;
        self
    }

    fn values_from(&self, from: Addr) -> Vec<u64> {
        self.received
            .iter()
            .filter_map(|(sender, msg)| match msg {
                Msg::Value(value) if *sender == from => Some(*value),
                _ => None,
            })
            .collect()
    }
}

impl SimNode for Toy {
    type Address = Addr;
    type Message = Msg;
    type Event = Ev;

    fn address(&self) -> Addr {
        self.address
    }

    fn handle_message(&mut self, from: Addr, message: Msg, _now: Instant, out: &mut Outputs<Self>) {
        if let Msg::Ping(number) = message {
            out.send(from, Msg::Pong(number));
        }
        out.publish(Ev::Received(from, message.clone()));
        self.received.push((from, message));
    }

    fn tick(&mut self, now: Instant, out: &mut Outputs<Self>) {
        self.ticks += 1;
        out.publish(Ev::Ticked);
        for &target in &self.targets {
            out.send(target, Msg::Value(self.next_value));
        }
        self.next_value += 1;
        if !self.interval.is_zero() {
            out.schedule_tick(now + self.interval);
        }
    }

    fn wire_size(message: &Msg) -> usize {
        match message {
            Msg::Ping(_) | Msg::Pong(_) => 8,
            Msg::Value(_) => 16,
        }
    }

    fn message_kind(message: &Msg) -> &'static str {
        match message {
            Msg::Ping(_) => "ping",
            Msg::Pong(_) => "pong",
            Msg::Value(_) => "value",
        }
    }
}

/// Returns a link whose latency is exactly `latency`, so messages never overtake each other.
fn fixed_link(latency: Duration) -> LinkConfig {
    LinkConfig::default().with_latency(latency, latency)
}

fn ping(sim: &mut Simulator<Toy>, from: Addr, to: Addr, number: u64) {
    sim.invoke(&from, |_, _, out| out.send(to, Msg::Ping(number)))
        .expect("the pinging node is alive and not frozen");
}

fn pongs(sim: &Simulator<Toy>, at: Addr) -> Vec<u64> {
    let node = sim.node(&at).expect("node is alive");
    node.received
        .iter()
        .filter_map(|(_, msg)| match msg {
            Msg::Pong(number) => Some(*number),
            _ => None,
        })
        .collect()
}

fn pings_received(sim: &Simulator<Toy>, at: Addr) -> usize {
    let node = sim.node(&at).expect("node is alive");
    node.received
        .iter()
        .filter(|(_, msg)| matches!(msg, Msg::Ping(_)))
        .count()
}

/// Runs five nodes that all send to each other over a lossy, duplicating, jittery network
/// and returns the event trace as text.
fn noisy_trace(seed: u64) -> Vec<String> {
    let mut sim = Simulator::new(seed);
    sim.set_default_link(
        LinkConfig::default()
            .with_drop_probability(0.2)
            .with_duplicate_probability(0.1)
            .with_reorder(0.3, 20 * MS),
    );
    let all: Vec<Addr> = (1..=5).map(addr).collect();
    for &node in &all {
        sim.add_node(Toy::new(node).sending(&all, 50 * MS));
    }
    sim.run_for(2 * SECOND);
    sim.events()
        .all()
        .iter()
        .map(|entry| format!("{:?} {:?} {:?}", entry.at, entry.node, entry.event))
        .collect()
}

#[test]
fn same_seed_gives_same_trace() {
    let first = noisy_trace(42);
    let again = noisy_trace(42);
    assert!(first.len() > 500, "only {} events", first.len());
    assert_eq!(first, again);
}

#[test]
fn different_seed_gives_different_trace() {
    assert_ne!(noisy_trace(42), noisy_trace(43));
}

#[test]
fn partition_blocks_both_ways() {
    let mut sim = Simulator::new(1);
    let (a, b, c) = (addr(1), addr(2), addr(3));
    for node in [a, b, c] {
        sim.add_node(Toy::new(node));
    }
    sim.partition(&[a], &[b, c]);
    ping(&mut sim, a, b, 1);
    ping(&mut sim, b, a, 2);
    ping(&mut sim, c, a, 3);
    ping(&mut sim, b, c, 4);
    sim.advance(SECOND);

    assert_eq!(pings_received(&sim, a), 0);
    assert_eq!(pings_received(&sim, b), 0);
    // Links within one side are untouched.
    assert_eq!(pings_received(&sim, c), 1);
    assert_eq!(pongs(&sim, b), vec![4]);
    assert_eq!(sim.network_stats().dropped_blocked, 3);
    assert!(sim.is_blocked(&a, &b));
    assert!(sim.is_blocked(&c, &a));
    assert!(!sim.is_blocked(&b, &c));
}

#[test]
fn one_way_block_blocks_one_direction() {
    let mut sim = Simulator::new(2);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a));
    sim.add_node(Toy::new(b));
    sim.partition_one_way(&a, &b);

    ping(&mut sim, a, b, 1);
    ping(&mut sim, b, a, 2);
    sim.advance(SECOND);

    assert_eq!(
        pings_received(&sim, b),
        0,
        "a's ping crossed the blocked direction"
    );
    assert_eq!(
        pings_received(&sim, a),
        1,
        "b's ping did not cross the open direction"
    );
    // a's reply to b's ping travels a -> b, the blocked direction.
    assert_eq!(pongs(&sim, b), Vec::<u64>::new());
}

#[test]
fn heal_restores_delivery() {
    let mut sim = Simulator::new(3);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a));
    sim.add_node(Toy::new(b));
    sim.partition(&[a], &[b]);
    ping(&mut sim, a, b, 1);
    sim.advance(SECOND);
    assert_eq!(pongs(&sim, a), Vec::<u64>::new());

    sim.heal();
    ping(&mut sim, a, b, 2);
    sim.advance(SECOND);
    // The ping sent during the partition is lost, not held until the heal.
    assert_eq!(pongs(&sim, a), vec![2]);
}

#[test]
fn heal_link_restores_one_pair() {
    let mut sim = Simulator::new(3);
    let (a, b, c) = (addr(1), addr(2), addr(3));
    for node in [a, b, c] {
        sim.add_node(Toy::new(node));
    }
    sim.partition(&[a], &[b, c]);
    sim.heal_link(&a, &b);
    ping(&mut sim, a, b, 1);
    ping(&mut sim, a, c, 2);
    sim.advance(SECOND);
    assert_eq!(pongs(&sim, a), vec![1]);
}

#[test]
fn partition_drops_messages_in_flight() {
    let mut sim = Simulator::new(4);
    sim.set_default_link(fixed_link(10 * MS));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a));
    sim.add_node(Toy::new(b));
    ping(&mut sim, a, b, 1);
    sim.advance(5 * MS);
    sim.partition(&[a], &[b]);
    sim.advance(SECOND);
    assert_eq!(pings_received(&sim, b), 0);
    assert_eq!(sim.network_stats().dropped_blocked, 1);
}

#[test]
fn isolated_node_is_cut_off() {
    let mut sim = Simulator::new(5);
    let (a, b, c) = (addr(1), addr(2), addr(3));
    for node in [a, b, c] {
        sim.add_node(Toy::new(node));
    }
    sim.isolate(&a);
    ping(&mut sim, a, b, 1);
    ping(&mut sim, c, a, 2);
    ping(&mut sim, b, c, 3);
    sim.advance(SECOND);
    assert_eq!(pings_received(&sim, a), 0);
    assert_eq!(pings_received(&sim, b), 0);
    assert_eq!(pings_received(&sim, c), 1);

    sim.rejoin(&a);
    ping(&mut sim, a, b, 4);
    sim.advance(SECOND);
    assert_eq!(pongs(&sim, a), vec![4]);
}

#[test]
fn drop_probability_one_drops_everything() {
    let mut sim = Simulator::new(6);
    sim.set_default_link(LinkConfig::default().with_drop_probability(1.0));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 10 * MS));
    sim.add_node(Toy::new(b));
    sim.advance(SECOND);

    let stats = sim.network_stats();
    assert!(stats.sent >= 100, "only {} sent", stats.sent);
    assert_eq!(stats.dropped_random, stats.sent);
    assert_eq!(stats.delivered, 0);
    assert!(sim.node(&b).is_some_and(|node| node.received.is_empty()));
}

#[test]
fn drop_probability_zero_drops_nothing() {
    let mut sim = Simulator::new(6);
    sim.set_default_link(LinkConfig::default().with_drop_probability(0.0));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 10 * MS));
    sim.add_node(Toy::new(b));
    sim.advance(SECOND);
    // Stop sending and let the last messages arrive.
    sim.kill(&a);
    sim.advance(SECOND);

    let stats = sim.network_stats();
    assert!(stats.sent >= 100, "only {} sent", stats.sent);
    assert_eq!(stats.dropped(), 0);
    assert_eq!(stats.delivered, stats.sent);
    let values = sim.node(&b).map(|node| node.values_from(a).len() as u64);
    assert_eq!(values, Some(stats.sent));
}

#[test]
fn lossy_link_drops_about_its_share() {
    let mut sim = Simulator::new(7);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], MS));
    sim.add_node(Toy::new(b));
    sim.set_link(&a, &b, LinkConfig::default().with_drop_probability(0.25));
    sim.advance(10 * SECOND);

    let stats = sim.network_stats();
    let share = stats.dropped_random as f64 / stats.sent as f64;
    assert!((0.2..0.3).contains(&share), "dropped share {share}");
}

#[test]
fn jitter_reorders_messages() {
    let mut sim = Simulator::new(8);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], MS));
    sim.add_node(Toy::new(b));
    sim.set_link(&a, &b, fixed_link(MS).with_reorder(0.5, 20 * MS));
    sim.advance(SECOND);
    sim.kill(&a);
    sim.advance(SECOND);

    let values = sim
        .node(&b)
        .map(|node| node.values_from(a))
        .unwrap_or_default();
    let overtaken = values.windows(2).filter(|pair| pair[0] > pair[1]).count();
    assert!(values.len() > 900, "only {} values arrived", values.len());
    assert!(
        overtaken > 50,
        "only {overtaken} messages arrived out of order"
    );
    let mut sorted = values.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..values.len() as u64).collect::<Vec<_>>());
}

#[test]
fn fixed_latency_keeps_order() {
    let mut sim = Simulator::new(8);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], MS));
    sim.add_node(Toy::new(b));
    sim.set_link(&a, &b, fixed_link(3 * MS));
    sim.advance(SECOND);

    let values = sim
        .node(&b)
        .map(|node| node.values_from(a))
        .unwrap_or_default();
    assert!(values.len() > 900, "only {} values arrived", values.len());
    assert!(values.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn duplicate_probability_one_doubles_delivery() {
    let mut sim = Simulator::new(9);
    sim.set_default_link(LinkConfig::default().with_duplicate_probability(1.0));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a));
    sim.add_node(Toy::new(b));
    ping(&mut sim, a, b, 1);
    sim.advance(SECOND);

    assert_eq!(pings_received(&sim, b), 2);
    // a replies to each of the two pings, and each reply is duplicated too.
    assert_eq!(pongs(&sim, a), vec![1, 1, 1, 1]);
    assert_eq!(sim.network_stats().duplicated, 3);
}

#[test]
fn frozen_node_catches_up_in_order() {
    let mut sim = Simulator::new(10);
    sim.set_default_link(fixed_link(2 * MS));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 100 * MS));
    sim.add_node(Toy::new(b).sending(&[a], 100 * MS));
    sim.advance(SECOND);

    let froze = sim.freeze(&b);
    sim.check(froze, "b was running and is now frozen");
    let ticks = sim.node(&b).map(|node| node.ticks);
    let received = sim.node(&b).map(|node| node.received.len());
    let values_at_a = sim.node(&a).map(|node| node.values_from(b).len());
    sim.advance(2 * SECOND);

    assert!(sim.is_frozen(&b));
    assert_eq!(
        sim.node(&b).map(|node| node.ticks),
        ticks,
        "b ticked while frozen"
    );
    assert_eq!(sim.node(&b).map(|node| node.received.len()), received);
    assert_eq!(
        sim.node(&a).map(|node| node.values_from(b).len()),
        values_at_a.map(|count| count + 1),
        "b sent something while frozen besides the one value already in flight"
    );

    let resumed_at = sim.elapsed();
    assert!(sim.unfreeze(&b));
    let node = sim.node(&b).expect("b is alive");
    let values = node.values_from(a);
    assert_eq!(values, (0..values.len() as u64).collect::<Vec<_>>());
    assert!(values.len() >= 29, "only {} values arrived", values.len());
    // The one tick that came due while frozen ran at the unfreeze.
    assert_eq!(Some(node.ticks), ticks.map(|count| count + 1));
    let caught_up = sim
        .events()
        .from_node(&b)
        .filter(|entry| entry.at == resumed_at)
        .count();
    assert!(caught_up >= 21, "only {caught_up} events at the unfreeze");
}

#[test]
fn killed_node_receives_nothing() {
    let mut sim = Simulator::new(11);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 10 * MS));
    sim.add_node(Toy::new(b));
    sim.advance(SECOND);

    let killed = sim.kill(&b).expect("b was alive");
    let before = killed.received.len();
    assert!(before > 0);
    let dropped_before = sim.network_stats().dropped_no_node;
    sim.advance(SECOND);

    assert!(!sim.is_alive(&b));
    assert!(sim.node(&b).is_none());
    assert!(sim.kill(&b).is_none());
    assert!(sim.network_stats().dropped_no_node >= dropped_before + 99);
    assert_eq!(sim.addresses().copied().collect::<Vec<_>>(), vec![a]);
}

#[test]
fn restart_with_new_uid_starts_fresh() {
    let mut sim = Simulator::new(12);
    sim.set_default_link(fixed_link(5 * MS));
    let a = addr(1);
    let old = addr(2);
    sim.add_node(Toy::new(a));
    sim.add_node(Toy::new(old).sending(&[a], 100 * MS));
    ping(&mut sim, a, old, 1);
    sim.advance(SECOND);
    let old_ticks = sim.node(&old).map(|node| node.ticks);
    assert_eq!(old_ticks, Some(11));

    // A ping is in flight to the old incarnation when it restarts.
    ping(&mut sim, a, old, 2);
    let new = Addr { id: 2, uid: 2 };
    let replacement = Toy::new(new).sending(&[a], 100 * MS);
    assert_eq!(sim.restart(&old, replacement), new);
    ping(&mut sim, a, new, 3);
    sim.advance(SECOND);

    assert!(!sim.is_alive(&old));
    let node = sim.node(&new).expect("the new incarnation is alive");
    assert_eq!(
        node.next_value, 11,
        "the new node kept its predecessor's counter"
    );
    assert_eq!(node.received, vec![(a, Msg::Ping(3))]);
    // The old instance's pending tick does not reach the new one.
    assert_eq!(node.ticks, 11);
    assert_eq!(sim.network_stats().dropped_no_node, 1);
    // The value sent at the last tick, 2 s, is still in flight.
    let values = sim.node(&a).map(|node| node.values_from(new));
    assert_eq!(values, Some((0..10).collect()));
}

#[test]
fn restart_at_same_address_gets_messages_in_flight() {
    let mut sim = Simulator::new(13);
    sim.set_default_link(fixed_link(5 * MS));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a));
    sim.add_node(Toy::new(b));
    ping(&mut sim, a, b, 1);
    sim.restart(&b, Toy::new(b));
    sim.advance(SECOND);
    assert_eq!(pings_received(&sim, b), 1);
    assert_eq!(pongs(&sim, a), vec![1]);
}

#[test]
fn traffic_counters_match_messages() {
    let mut sim = Simulator::new(14);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 100 * MS));
    sim.add_node(Toy::new(b));
    for number in 0..7 {
        ping(&mut sim, a, b, number);
    }
    sim.advance(SECOND);
    let before = sim.traffic();
    sim.advance(10 * SECOND);
    let report = sim.traffic();

    let at_a = report.node(&a).expect("a has traffic");
    let at_b = report.node(&b).expect("b has traffic");
    let values_sent = sim.node(&a).map_or(0, |node| node.next_value);
    assert_eq!(at_a.sent.get("ping").messages, 7);
    assert_eq!(at_a.sent.get("ping").bytes, 56);
    assert_eq!(at_a.sent.get("value").messages, values_sent);
    assert_eq!(at_a.sent.get("value").bytes, 16 * values_sent);
    assert_eq!(at_b.received.get("ping").messages, 7);
    assert_eq!(at_b.sent.get("pong").messages, 7);
    assert_eq!(at_a.received.get("pong").messages, 7);
    assert_eq!(at_a.received.get("value").messages, 0);
    let delivered = sim.network_stats().delivered;
    assert_eq!(report.total().received.total().messages, delivered);

    // Over the window, a sends ten values of 16 bytes per second and b sends nothing.
    let window = report.since(&before);
    assert_eq!(window.window(), 10 * SECOND);
    assert_eq!(window.node(&a).map(|t| t.sent.total().messages), Some(100));
    let rate = window.mean_sent_bytes_per_node_per_second(&["ping", "pong"]);
    assert!((rate - 160.0).abs() < 1e-9, "rate {rate}");
}

#[test]
fn run_until_times_out() {
    let mut sim = Simulator::new(15);
    sim.add_node(Toy::new(addr(1)).sending(&[addr(1)], 100 * MS));
    let error = sim
        .run_until(5 * SECOND, |sim| sim.node(&addr(1)).is_none())
        .unwrap_err();
    assert_eq!(error.seed, 15);
    assert_eq!(error.waited, 5 * SECOND);
    assert_eq!(error.now, 5 * SECOND);
    assert_eq!(sim.elapsed(), 5 * SECOND);
    let text = error.to_string();
    assert!(text.contains("AKKORD_SIM_SEED=15"), "{text}");
}

#[test]
fn run_until_returns_time_taken() {
    let mut sim = Simulator::new(16);
    sim.set_default_link(fixed_link(3 * MS));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 100 * MS));
    sim.add_node(Toy::new(b));
    sim.advance(50 * MS);
    // Values 0 and 1 are sent at 0 and 100 ms and arrive 3 ms later.
    let took = sim.run_until(SECOND, |sim| {
        sim.node(&b)
            .is_some_and(|node| node.values_from(a).len() == 2)
    });
    assert_eq!(took, Ok(53 * MS));
    let polled = sim.run_until_polling(SECOND, 100 * MS, |sim| {
        sim.node(&b)
            .is_some_and(|node| node.values_from(a).len() == 4)
    });
    assert_eq!(polled, Ok(200 * MS));
}

#[test]
fn tick_in_the_past_runs_now() {
    struct Late(Addr);
    impl SimNode for Late {
        type Address = Addr;
        type Message = Msg;
        type Event = Duration;
        fn address(&self) -> Addr {
            self.0
        }
        fn handle_message(&mut self, _: Addr, _: Msg, _: Instant, _: &mut Outputs<Self>) {}
        fn tick(&mut self, now: Instant, out: &mut Outputs<Self>) {
            out.publish(Duration::ZERO);
            if let Some(past) = now.checked_sub(SECOND) {
                out.schedule_tick(past);
            }
        }
    }

    let mut sim = Simulator::new(17);
    sim.advance(5 * SECOND);
    sim.add_node(Late(addr(1)));
    sim.step();
    sim.step();
    assert_eq!(sim.elapsed(), 5 * SECOND);
    let times: Vec<_> = sim.events().all().iter().map(|entry| entry.at).collect();
    assert_eq!(times, vec![5 * SECOND, 5 * SECOND]);
}

#[test]
fn event_log_can_be_taken_and_filtered() {
    let mut sim = Simulator::new(18);
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 100 * MS));
    sim.add_node(Toy::new(b));
    sim.advance(SECOND);

    let received = sim
        .events_mut()
        .drain_matching(|entry| matches!(entry.event, Ev::Received(..)));
    assert_eq!(received.len(), 10);
    assert!(received.iter().all(|entry| entry.node == b));
    assert!(sim
        .events()
        .all()
        .iter()
        .all(|entry| entry.event == Ev::Ticked));
    let taken = sim.events_mut().take();
    assert_eq!(taken.len(), 12);
    assert!(sim.events().is_empty());

    sim.events_mut().set_recording(false);
    sim.advance(SECOND);
    assert!(sim.events().is_empty());
}

#[test]
fn expect_event_finds_the_first_match() {
    let mut sim = Simulator::new(19);
    sim.set_default_link(fixed_link(MS));
    let (a, b) = (addr(1), addr(2));
    sim.add_node(Toy::new(a).sending(&[b], 100 * MS));
    sim.add_node(Toy::new(b));
    let event = sim.expect_event_within(SECOND, "b receives value 3", |entry| {
        entry.event == Ev::Received(a, Msg::Value(3))
    });
    assert_eq!(event.node, b);
    assert_eq!(event.at, 301 * MS);
    assert_eq!(sim.elapsed(), 301 * MS);
}

#[test]
#[should_panic(expected = "replay with AKKORD_SIM_SEED=20")]
fn failed_check_names_the_seed() {
    let mut sim = Simulator::new(20);
    sim.add_node(Toy::new(addr(1)));
    sim.expect_within(SECOND, "node 2 to appear", |sim| sim.is_alive(&addr(2)));
}

#[test]
#[should_panic(expected = "a live node already has that address")]
fn duplicate_address_is_rejected() {
    let mut sim = Simulator::new(21);
    sim.add_node(Toy::new(addr(1)));
    sim.add_node(Toy::new(addr(1)));
}

#[test]
#[should_panic(expected = "invalid setting for link")]
fn invalid_link_setting_is_rejected() {
    let mut sim: Simulator<Toy> = Simulator::new(22);
    sim.set_link(
        &addr(1),
        &addr(2),
        LinkConfig::default().with_drop_probability(2.0),
    );
}

#[test]
fn frozen_node_ignores_invoke() {
    let mut sim = Simulator::new(23);
    let a = addr(1);
    sim.add_node(Toy::new(a));
    sim.freeze(&a);
    assert_eq!(sim.invoke(&a, |_, _, _| ()), None);
    assert!(!sim.freeze(&a), "freezing twice reported a change");
    sim.unfreeze(&a);
    assert_eq!(sim.invoke(&a, |_, _, _| ()), Some(()));
    assert!(
        !sim.unfreeze(&a),
        "unfreezing a running node reported a change"
    );
}

/// Checks that, once a fault schedule has healed, every live node hears from every other
/// live node again.
fn survives_fault_schedule(seed: u64) -> Result<(), String> {
    let mut sim = Simulator::new(seed);
    let mut members: Vec<Addr> = (1..=5).map(addr).collect();
    let all = members.clone();
    for &member in &members {
        sim.add_node(Toy::new(member).sending(&all, 100 * MS));
    }
    let config = FaultConfig {
        max_faults: 6,
        max_dead: 2,
        ..FaultConfig::default()
    };
    let schedule = FaultSchedule::generate(seed, members.len(), 20 * SECOND, &config);
    // A restarted node keeps its id, gets the new uid and sends to the original addresses,
    // so only nodes that were never restarted are expected to hear from it.
    schedule.run(&mut sim, &mut members, |old, uid| {
        Toy::new(Addr { id: old.id, uid }).sending(&all, 100 * MS)
    });

    let healed_at = sim.elapsed();
    sim.advance(SECOND);
    let live: Vec<Addr> = sim.addresses().copied().collect();
    for &receiver in live.iter().filter(|address| address.uid == 1) {
        let node = sim.node(&receiver).ok_or("live node vanished")?;
        for &sender in &live {
            let heard = node.received.iter().any(|(from, _)| *from == sender);
            if !heard {
                return Err(format!(
                    "{receiver:?} heard nothing from {sender:?} within 1 s after the heal at \
                     {healed_at:?}\n{schedule}"
                ));
            }
        }
    }
    if sim.is_blocked(&members[0], &members[1]) {
        return Err(format!("links still blocked after the heal\n{schedule}"));
    }
    Ok(())
}

#[test]
fn fault_schedules_heal_by_the_end() {
    let ran = run_seeds(0..30, survives_fault_schedule);
    assert!(ran >= 1);
}
