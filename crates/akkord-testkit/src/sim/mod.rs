//! Deterministic network simulator for sans-IO protocol cores.
//!
//! The simulator runs many [`SimNode`]s, such as cluster membership, failure detector and
//! split brain resolver cores, in one process and one thread, on a virtual clock and a
//! simulated network. A scenario adds nodes, lets virtual time pass, partitions and heals
//! the network, freezes, kills and restarts nodes, and checks what the nodes published.
//!
//! # Virtual time
//!
//! Time is a base [`Instant`](std::time::Instant), captured once when the simulator is
//! created, plus a virtual elapsed [`Duration`](std::time::Duration). A queue contains every
//! pending message delivery and tick, ordered by due time and then by insertion order.
//! [`Simulator::step`] takes the earliest item and moves the clock to its time. Time only
//! moves forward, so a tick requested for a past instant runs at the current time. Running
//! for a minute of virtual time takes as long as processing that minute's messages, never a
//! minute of wall-clock time.
//!
//! # Determinism
//!
//! Every random choice, whether latency, loss, duplication or jitter, comes from one
//! [`StdRng`](rand::rngs::StdRng) seeded with the simulator's seed. The simulator never
//! iterates over a hash map to decide anything and nodes run one at a time, so the same
//! seed and the same scenario give the same run, event for event. For its runs to replay, a
//! node must take the time only from the `now` it is handed and draw its own randomness
//! from a seeded generator, for example one seeded with [`Simulator::random_u64`]. The base
//! instant differs between runs, so compare virtual times such as [`RecordedEvent::at`]
//! rather than instants.
//!
//! # Network
//!
//! Each directed link has a [`LinkConfig`]: a base latency drawn uniformly from a range
//! (1–5 ms by default), a drop probability, a duplicate probability, an extra delay and a
//! probability of extra jitter. Messages overtake each other whenever their latencies
//! differ by more than the gap between sending them, and the jitter makes that more likely.
//! A link without its own setting uses the default one.
//!
//! Partitions, one-way blocks and isolated nodes are kept apart from link settings. A
//! message on a blocked link is lost, whether the block was in place when it was sent or
//! started while it was in flight. [`Simulator::heal`] removes every block and keeps link
//! settings. Nothing lost is resent, as with packets dropped by a firewall.
//!
//! # Node lifecycle
//!
//! - [`Simulator::add_node`] adds a node and delivers its first tick at the current time.
//! - [`Simulator::freeze`] pauses a node like SIGSTOP. Time keeps running; messages and
//!   ticks for the node are held, and [`Simulator::unfreeze`] hands them over in arrival
//!   order at the time of the unfreeze.
//! - [`Simulator::kill`] removes a node. Its pending ticks and held messages are discarded,
//!   and messages that later arrive for its address are dropped.
//! - [`Simulator::restart`] replaces a killed or running node by a new instance supplied by
//!   the caller, usually with a new uid and so a new address; messages for the old address
//!   are then dropped. Ticks of the old instance never reach the new one.
//!
//! # Observation
//!
//! Events that nodes publish are logged with the virtual time and the node's address, see
//! [`EventLog`]. Traffic is counted per address and per [`SimNode::message_kind`], in
//! messages and [`SimNode::wire_size`] bytes, see [`TrafficReport`], and lost messages per
//! cause, see [`NetworkStats`].
//!
//! # Randomized faults and replaying a seed
//!
//! [`FaultSchedule::generate`] draws a bounded list of timed faults from a seed, and
//! [`FaultSchedule::run`] applies it to a simulator. [`run_seeds`] runs a test for a range of
//! seeds and, when a seed fails, panics with that seed. Setting the environment variable
//! `AKKORD_SIM_SEED` to it runs only that seed, for example
//! `AKKORD_SIM_SEED=17 cargo test -p akkord-testkit --test sim_scenarios`. Failure messages of
//! [`Simulator::check`], [`Simulator::expect_within`] and [`SimTimeout`] carry the seed and
//! the virtual time as well.
//!
//! # Example
//!
//! Three nodes gossip the largest number they have seen; node 3 holds the largest one.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use akkord_testkit::sim::{Outputs, SimNode, Simulator};
//!
//! struct MaxNode {
//!     id: u32,
//!     peers: Vec<u32>,
//!     max: u32,
//! }
//!
//! impl SimNode for MaxNode {
//!     type Address = u32;
//!     type Message = u32;
//!     /// A larger number the node learned.
//!     type Event = u32;
//!
//!     fn address(&self) -> u32 {
//!         self.id
//!     }
//!
//!     fn handle_message(&mut self, _from: u32, value: u32, _now: Instant, out: &mut Outputs<Self>) {
//!         if value > self.max {
//!             self.max = value;
//!             out.publish(value);
//!         }
//!     }
//!
//!     fn tick(&mut self, now: Instant, out: &mut Outputs<Self>) {
//!         for &peer in &self.peers {
//!             out.send(peer, self.max);
//!         }
//!         out.schedule_tick(now + Duration::from_millis(100));
//!     }
//!
//!     fn wire_size(_value: &u32) -> usize {
//!         4
//!     }
//! }
//!
//! let mut sim = Simulator::new(7);
//! let ids = [1, 2, 3];
//! for id in ids {
//!     let peers = ids.into_iter().filter(|&peer| peer != id).collect();
//!     sim.add_node(MaxNode { id, peers, max: id * 10 });
//! }
//!
//! // Cut node 3 off: the others only learn 20.
//! sim.isolate(&3);
//! sim.advance(Duration::from_secs(1));
//! sim.check_node(&1, "node 1 knows 20", |node| node.max == 20);
//!
//! // After healing, node 3's next gossip round spreads 30.
//! sim.heal();
//! let took = sim.expect_within(Duration::from_secs(1), "every node knows 30", |sim| {
//!     sim.nodes().all(|node| node.max == 30)
//! });
//! assert!(took <= Duration::from_millis(110));
//! assert_eq!(sim.events().from_node(&1).last().map(|entry| entry.event), Some(30));
//!
//! // Node 3 sent its 4-byte number to two peers every 100 ms.
//! let sent = sim.traffic().node(&3).map(|traffic| traffic.sent.total().messages);
//! assert!(sent >= Some(20));
//! ```

mod clock;
mod error;
mod events;
mod faults;
mod links;
mod network;
mod node;
mod queue;
mod run;
mod scenario;
mod seeds;
mod simulator;
mod traffic;

pub use error::SimTimeout;
pub use events::{EventLog, RecordedEvent};
pub use faults::{Fault, FaultConfig, FaultSchedule, TimedFault};
pub use network::{LinkConfig, LinkConfigError, NetworkStats};
pub use node::{Outputs, SimNode};
pub use seeds::{replay_seed_from_env, run_seeds, run_seeds_with, SeedFailure, SEED_ENV};
pub use simulator::Simulator;
pub use traffic::{Counter, KindCounters, NodeTraffic, TrafficReport};
