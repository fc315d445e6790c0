//! Timing sanity check of the simulator at cluster-benchmark scale.
//!
//! Ignored by default because it measures rather than checks. Run it in release mode:
//!
//! ```text
//! cargo test --release -p akkord-testkit --test sim_timing -- --ignored --nocapture
//! ```

use std::rc::Rc;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_testkit::sim::{Outputs, SimNode, Simulator};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: u32 = 1000;
const HEARTBEAT_TARGETS: u32 = 5;
const GOSSIP_SIZE: usize = 2000;
const VIRTUAL_RUN: Duration = Duration::from_secs(100);

#[derive(Clone, Debug)]
enum Msg {
    Heartbeat,
    HeartbeatAck,
    Gossip(u64),
}

/// Stand-in for a cluster core: every second it sends heartbeats to its ring successors,
/// which reply, and gossips to one to three random peers.
///
/// Nodes use the real cluster address type, so the cost of cloning and hashing addresses
/// is part of the figure.
struct RingNode {
    index: u32,
    ring: Rc<Vec<UniqueAddress>>,
    rng: StdRng,
    version: u64,
}

impl SimNode for RingNode {
    type Address = UniqueAddress;
    type Message = Msg;
    type Event = u64;

    fn address(&self) -> UniqueAddress {
        self.ring[self.index as usize].clone()
    }

    fn handle_message(
        &mut self,
        from: UniqueAddress,
        message: Msg,
        _now: Instant,
        out: &mut Outputs<Self>,
    ) {
        match message {
            Msg::Heartbeat => out.send(from, Msg::HeartbeatAck),
            Msg::HeartbeatAck => {}
            Msg::Gossip(version) => {
                if version > self.version {
                    self.version = version;
                    out.publish(version);
                }
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Outputs<Self>) {
        for offset in 1..=HEARTBEAT_TARGETS {
            let successor = (self.index + offset) % NODES;
            out.send(self.ring[successor as usize].clone(), Msg::Heartbeat);
        }
        for _ in 0..self.rng.random_range(1..=3) {
            let peer = self.rng.random_range(0..NODES);
            out.send(self.ring[peer as usize].clone(), Msg::Gossip(self.version));
        }
        let jitter = Duration::from_micros(self.rng.random_range(0..1000));
        out.schedule_tick(now + Duration::from_millis(999) + jitter);
    }

    fn wire_size(message: &Msg) -> usize {
        match message {
            Msg::Heartbeat | Msg::HeartbeatAck => 32,
            Msg::Gossip(_) => GOSSIP_SIZE,
        }
    }

    fn message_kind(message: &Msg) -> &'static str {
        match message {
            Msg::Heartbeat | Msg::HeartbeatAck => "heartbeat",
            Msg::Gossip(_) => "gossip",
        }
    }
}

#[test]
#[ignore = "measures wall-clock time; run in release mode with --ignored --nocapture"]
fn thousand_nodes_for_100_virtual_seconds() {
    let mut sim = Simulator::new(1);
    sim.events_mut().set_recording(false);
    let ring: Vec<UniqueAddress> = (0..NODES)
        .map(|index| {
            let host = format!("10.0.{}.{}", index / 250, index % 250 + 1);
            let address = Address::new("bench", host, 2552).expect("address is valid");
            UniqueAddress::new(address, u64::from(index) + 1)
        })
        .collect();
    let ring = Rc::new(ring);
    for index in 0..NODES {
        let rng = StdRng::seed_from_u64(sim.random_u64());
        sim.add_node(RingNode {
            index,
            ring: Rc::clone(&ring),
            rng,
            version: u64::from(index),
        });
    }

    let started = Instant::now();
    let before = sim.traffic();
    sim.run_for(VIRTUAL_RUN);
    let took = started.elapsed();

    let stats = sim.network_stats();
    let window = sim.traffic().since(&before);
    let gossip_rate = window.mean_sent_bytes_per_node_per_second(&["heartbeat"]);
    println!(
        "{NODES} nodes, {VIRTUAL_RUN:?} virtual: {took:?} wall-clock, {} steps, {} messages \
         delivered ({:.0} per wall-clock second), gossip {gossip_rate:.0} bytes per node per \
         second",
        sim.steps(),
        stats.delivered,
        stats.delivered as f64 / took.as_secs_f64()
    );

    // Each node sends 5 heartbeats, receives 5 replies and 1 to 3 gossip messages per second.
    let seconds = VIRTUAL_RUN.as_secs();
    let expected_minimum = u64::from(NODES) * seconds * 11;
    assert!(stats.delivered >= expected_minimum, "{stats:?}");
    assert!(sim.nodes().all(|node| node.version == u64::from(NODES - 1)));
}
