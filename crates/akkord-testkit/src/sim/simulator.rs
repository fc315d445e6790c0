//! The simulator: nodes, their lifecycle and what can be observed of them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::debug;

use super::clock::VirtualClock;
use super::events::EventLog;
use super::network::{Network, NetworkStats};
use super::node::{Outputs, SimNode};
use super::queue::{AddressId, EventQueue, Item};
use super::traffic::{NodeTraffic, TrafficReport};

/// Runs many [`SimNode`]s in one process on a virtual clock and a simulated network.
///
/// See the [module documentation](super) for the model and an example.
pub struct Simulator<N: SimNode> {
    pub(super) seed: u64,
    pub(super) rng: StdRng,
    pub(super) clock: VirtualClock,
    pub(super) queue: EventQueue<N::Message>,
    /// Every address seen so far, indexed by [`AddressId`]; entries are never removed.
    pub(super) addresses: Vec<N::Address>,
    pub(super) ids: HashMap<N::Address, AddressId>,
    /// One slot per address, parallel to `addresses`.
    pub(super) slots: Vec<Slot<N>>,
    pub(super) network: Network,
    pub(super) stats: NetworkStats,
    pub(super) events: EventLog<N::Address, N::Event>,
    /// Output buffer reused across calls into nodes, so a step allocates nothing.
    pub(super) scratch: Outputs<N>,
    pub(super) next_instance: u64,
    pub(super) steps: u64,
    /// Steps processed since the clock last moved, to catch a node that keeps scheduling
    /// work at the same instant.
    pub(super) steps_at_instant: u64,
}

/// The node instance, if any, that currently has one address.
pub(super) struct Slot<N: SimNode> {
    pub(super) node: Option<N>,
    /// Number of the current or last instance; ticks of other instances are stale.
    pub(super) instance: u64,
    pub(super) frozen: bool,
    /// Deliveries and ticks that arrived while the node was frozen, oldest first.
    pub(super) held: VecDeque<Item<N::Message>>,
    pub(super) traffic: NodeTraffic,
}

impl<N: SimNode> Slot<N> {
    fn empty() -> Self {
        Self {
            node: None,
            instance: 0,
            frozen: false,
            held: VecDeque::new(),
            traffic: NodeTraffic::default(),
        }
    }
}

impl<N: SimNode> Simulator<N> {
    /// Creates a simulator without nodes whose random choices all derive from `seed`.
    ///
    /// Every link starts with [`LinkConfig::default`](super::LinkConfig::default).
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
            clock: VirtualClock::new(),
            queue: EventQueue::new(),
            addresses: Vec::new(),
            ids: HashMap::new(),
            slots: Vec::new(),
            network: Network::default(),
            stats: NetworkStats::default(),
            events: EventLog::new(),
            scratch: Outputs::new(),
            next_instance: 1,
            steps: 0,
            steps_at_instant: 0,
        }
    }

    /// Returns the seed the simulator was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Returns the current virtual instant, the one handed to nodes.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Returns the virtual time elapsed since the simulator was created.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Returns the instant that corresponds to virtual time zero.
    pub fn start_instant(&self) -> Instant {
        self.clock.base()
    }

    /// Returns the seeded random generator, for random choices in a scenario that must
    /// replay with the seed.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Returns a random number from the seeded generator, for example a new node uid.
    pub fn random_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// Returns the number of deliveries and ticks waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Returns the number of steps processed so far, stale ticks and dropped arrivals
    /// included.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Adds `node` and delivers its first tick at the current virtual time.
    ///
    /// A killed node's address can be reused; messages still travelling to that address then
    /// reach the new node. Returns the node's address.
    ///
    /// # Panics
    ///
    /// Panics when a live node, frozen or not, already has the same address.
    pub fn add_node(&mut self, node: N) -> N::Address {
        let address = node.address();
        let id = self.intern(&address);
        if self.slots[id as usize].node.is_some() {
            panic!(
                "cannot add node {address:?}: a live node already has that address, kill or \
                 restart it first ({})",
                self.context()
            );
        }
        let instance = self.next_instance;
        self.next_instance += 1;

        let slot = &mut self.slots[id as usize];
        slot.node = Some(node);
        slot.instance = instance;
        slot.frozen = false;
        self.queue
            .push(self.clock.elapsed(), Item::Tick { node: id, instance });
        debug!(node = ?address, instance, "node added");
        address
    }

    /// Kills the node at `address` and returns it, or returns `None` when no node runs there.
    ///
    /// The node processes nothing from now on. Its pending ticks are discarded, messages
    /// held while it was frozen are lost, and messages that arrive later for its address are
    /// dropped unless a new node takes the address. Messages it already sent still arrive.
    pub fn kill(&mut self, address: &N::Address) -> Option<N> {
        let id = *self.ids.get(address)?;
        let slot = &mut self.slots[id as usize];
        let node = slot.node.take()?;
        slot.frozen = false;
        let lost = slot
            .held
            .drain(..)
            .filter(|item| matches!(item, Item::Deliver { .. }))
            .count();
        self.stats.dropped_no_node += lost as u64;
        debug!(node = ?address, lost, "node killed");
        Some(node)
    }

    /// Replaces the node at `old` by `new` and returns the new node's address.
    ///
    /// The old node, killed or running, is discarded as with [`Simulator::kill`], and the new
    /// one is added as with [`Simulator::add_node`]. When the new node has another address,
    /// typically the same host with a new uid, messages for the old address are dropped. When
    /// it has the same address, messages still travelling reach the new node.
    ///
    /// # Panics
    ///
    /// Panics when the new address differs from `old` and a live node already has it.
    pub fn restart(&mut self, old: &N::Address, new: N) -> N::Address {
        self.kill(old);
        self.add_node(new)
    }

    /// Freezes the node at `address`, like a process paused with SIGSTOP.
    ///
    /// Time keeps running; messages and ticks for the node are held in arrival order and
    /// handed over by [`Simulator::unfreeze`]. Returns false when no live node has the
    /// address or it was already frozen.
    pub fn freeze(&mut self, address: &N::Address) -> bool {
        let Some(slot) = self.live_slot_mut(address) else {
            return false;
        };
        let was_frozen = std::mem::replace(&mut slot.frozen, true);
        debug!(node = ?address, "node frozen");
        !was_frozen
    }

    /// Unfreezes the node at `address` and hands it everything held while it was frozen,
    /// in arrival order, at the current virtual time.
    ///
    /// Ticks that came due while frozen run now, like timers of a resumed process. Returns
    /// false when no live node has the address or it was not frozen.
    pub fn unfreeze(&mut self, address: &N::Address) -> bool {
        let Some(&id) = self.ids.get(address) else {
            return false;
        };
        let slot = &mut self.slots[id as usize];
        if slot.node.is_none() || !slot.frozen {
            return false;
        }
        slot.frozen = false;
        let held = std::mem::take(&mut slot.held);
        debug!(node = ?address, held = held.len(), "node unfrozen");
        for item in held {
            self.dispatch(id, item);
        }
        true
    }

    /// Returns true when a node, frozen or not, runs at `address`.
    pub fn is_alive(&self, address: &N::Address) -> bool {
        self.node(address).is_some()
    }

    /// Returns true when the node at `address` is alive and frozen.
    pub fn is_frozen(&self, address: &N::Address) -> bool {
        self.slot(address)
            .is_some_and(|slot| slot.node.is_some() && slot.frozen)
    }

    /// Returns the live node at `address`, frozen or not.
    pub fn node(&self, address: &N::Address) -> Option<&N> {
        self.slot(address)?.node.as_ref()
    }

    /// Returns the live node at `address` for changes outside the protocol, such as test
    /// hooks.
    ///
    /// Outputs of such changes are not collected; [`Simulator::invoke`] performs them.
    pub fn node_mut(&mut self, address: &N::Address) -> Option<&mut N> {
        self.live_slot_mut(address)?.node.as_mut()
    }

    /// Iterates over the live nodes, frozen ones included, in the order their addresses were
    /// first seen.
    pub fn nodes(&self) -> impl Iterator<Item = &N> + '_ {
        self.slots.iter().filter_map(|slot| slot.node.as_ref())
    }

    /// Iterates over the addresses of live nodes, frozen ones included, in the order they
    /// were first seen.
    pub fn addresses(&self) -> impl Iterator<Item = &N::Address> + '_ {
        self.addresses
            .iter()
            .zip(&self.slots)
            .filter(|(_, slot)| slot.node.is_some())
            .map(|(address, _)| address)
    }

    /// Returns the number of live nodes, frozen ones included.
    pub fn node_count(&self) -> usize {
        self.nodes().count()
    }

    /// Calls `action` on the node at `address` with the current virtual time and performs
    /// the outputs it produces, as for a command from outside such as join or leave.
    ///
    /// Returns `None`, without calling `action`, when no live node has the address or the
    /// node is frozen.
    pub fn invoke<R>(
        &mut self,
        address: &N::Address,
        action: impl FnOnce(&mut N, Instant, &mut Outputs<N>) -> R,
    ) -> Option<R> {
        let id = *self.ids.get(address)?;
        let now = self.clock.now();
        let slot = &mut self.slots[id as usize];
        if slot.frozen {
            return None;
        }
        let node = slot.node.as_mut()?;
        let result = action(node, now, &mut self.scratch);
        self.perform_outputs(id);
        Some(result)
    }

    /// Sends `message` from `from` to `to` through the simulated network, as if a node at
    /// `from` had sent it; `from` need not be a node.
    pub fn send(&mut self, from: &N::Address, to: &N::Address, message: N::Message) {
        let from = self.intern(from);
        self.route(from, to, message);
    }

    /// Returns the log of published events.
    pub fn events(&self) -> &EventLog<N::Address, N::Event> {
        &self.events
    }

    /// Returns the log of published events, to take or drain entries or stop recording.
    pub fn events_mut(&mut self) -> &mut EventLog<N::Address, N::Event> {
        &mut self.events
    }

    /// Returns the traffic of every address seen so far, from the start until now.
    pub fn traffic(&self) -> TrafficReport<N::Address> {
        let nodes = self
            .addresses
            .iter()
            .zip(&self.slots)
            .map(|(address, slot)| (address.clone(), slot.traffic.clone()))
            .collect();
        TrafficReport::new(self.clock.elapsed(), nodes)
    }

    /// Returns the traffic of the address from the start until now, without copying the
    /// counters of other addresses.
    pub fn node_traffic(&self, address: &N::Address) -> Option<&NodeTraffic> {
        self.slot(address).map(|slot| &slot.traffic)
    }

    /// Returns the counts of sent, delivered and dropped messages.
    pub fn network_stats(&self) -> NetworkStats {
        self.stats
    }

    /// Returns the id of `address`, adding it to the address table when it is new.
    pub(super) fn intern(&mut self, address: &N::Address) -> AddressId {
        if let Some(&id) = self.ids.get(address) {
            return id;
        }
        let id = AddressId::try_from(self.addresses.len()).expect(
            "address table is full: the simulator supports at most 2^32 distinct addresses",
        );
        self.addresses.push(address.clone());
        self.ids.insert(address.clone(), id);
        self.slots.push(Slot::empty());
        id
    }

    /// Returns the id of `address` when the simulator has seen it.
    pub(super) fn id_of(&self, address: &N::Address) -> Option<AddressId> {
        self.ids.get(address).copied()
    }

    fn slot(&self, address: &N::Address) -> Option<&Slot<N>> {
        let id = *self.ids.get(address)?;
        Some(&self.slots[id as usize])
    }

    fn live_slot_mut(&mut self, address: &N::Address) -> Option<&mut Slot<N>> {
        let id = *self.ids.get(address)?;
        let slot = &mut self.slots[id as usize];
        slot.node.as_ref()?;
        Some(slot)
    }
}

impl<N: SimNode> std::fmt::Debug for Simulator<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("seed", &self.seed)
            .field("elapsed", &self.clock.elapsed())
            .field("nodes", &self.node_count())
            .field("pending", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
