//! The contract between a sans-IO protocol core and the simulator.
//!
//! A protocol core owns no socket, clock or task. The simulator (or, in production, an actor
//! in the layer's shell) feeds it messages and ticks with the current time and performs the
//! outputs it returns: messages to send, the next time it wants a tick, and events to publish.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

/// A sans-IO protocol core that the simulator can run.
///
/// The simulator calls [`SimNode::handle_message`] for every message that reaches the node and
/// [`SimNode::tick`] at each instant the node requested through [`Outputs::schedule_tick`].
/// Both receive the virtual time, which only moves forward.
pub trait SimNode {
    /// Network identity of a node; messages are routed by it.
    type Address: Clone + Eq + Hash + Ord + Debug;
    /// Message exchanged between nodes.
    type Message: Clone + Debug;
    /// Observable fact published by the node, recorded by the simulator for assertions.
    type Event: Clone + Debug;

    /// Returns the address of this node; it never changes for the life of the instance.
    fn address(&self) -> Self::Address;

    /// Handles one message from `from`, received at `now`.
    fn handle_message(
        &mut self,
        from: Self::Address,
        message: Self::Message,
        now: Instant,
        out: &mut Outputs<Self>,
    );

    /// Runs the periodic work that was scheduled for `now`.
    fn tick(&mut self, now: Instant, out: &mut Outputs<Self>);

    /// Returns the encoded size of `message` in bytes, used for traffic figures.
    ///
    /// The default of 0 means the core does not report sizes.
    fn wire_size(_message: &Self::Message) -> usize {
        0
    }

    /// Returns a short label for the kind of `message`, such as `"heartbeat"` or `"gossip"`.
    ///
    /// The simulator groups its traffic counters by this label, so a benchmark can leave
    /// heartbeats out of gossip figures. The default puts every message under `"message"`.
    fn message_kind(_message: &Self::Message) -> &'static str {
        "message"
    }
}

/// Outputs of one call into a [`SimNode`]: messages, a tick request and events.
#[derive(Debug)]
pub struct Outputs<N: SimNode + ?Sized> {
    /// Messages to send, with their destination.
    pub messages: Vec<(N::Address, N::Message)>,
    /// Instants at which the node asked to be ticked.
    pub ticks: Vec<Instant>,
    /// Events published by the node.
    pub events: Vec<N::Event>,
}

impl<N: SimNode + ?Sized> Outputs<N> {
    /// Creates empty outputs.
    pub fn new() -> Self {
        Self {
            messages: Vec::new(),
            ticks: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Queues `message` for `to`.
    pub fn send(&mut self, to: N::Address, message: N::Message) {
        self.messages.push((to, message));
    }

    /// Asks for a call to [`SimNode::tick`] at `at`.
    pub fn schedule_tick(&mut self, at: Instant) {
        self.ticks.push(at);
    }

    /// Publishes `event`.
    pub fn publish(&mut self, event: N::Event) {
        self.events.push(event);
    }

    /// Returns true when no output was produced.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.ticks.is_empty() && self.events.is_empty()
    }
}

impl<N: SimNode + ?Sized> Default for Outputs<N> {
    fn default() -> Self {
        Self::new()
    }
}
