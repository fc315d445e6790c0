//! Running the simulator: steps, deliveries, ticks and the outputs of nodes.

use std::time::Duration;

use tracing::{debug, trace};

use super::error::SimTimeout;
use super::network::Transmission;
use super::node::SimNode;
use super::queue::{AddressId, Item};
use super::simulator::Simulator;

/// Number of steps at one virtual instant after which a run is taken to be stuck.
///
/// A node that schedules a tick at "now" from every tick would otherwise keep the clock
/// from moving forever. A thousand nodes whose timers fire at the same instant take a few
/// thousand steps, far below this bound.
const MAX_STEPS_AT_INSTANT: u64 = 10_000_000;

impl<N: SimNode> Simulator<N> {
    /// Processes the earliest queued delivery or tick, moving the clock to its time.
    ///
    /// Returns false when nothing is queued.
    ///
    /// # Panics
    ///
    /// Panics when more than ten million steps run at one virtual instant, which means some
    /// node keeps scheduling work at the current time.
    pub fn step(&mut self) -> bool {
        let Some((at, item)) = self.queue.pop() else {
            return false;
        };
        if at > self.clock.elapsed() {
            self.clock.advance_to(at);
            self.steps_at_instant = 0;
        }
        self.steps += 1;
        self.steps_at_instant += 1;
        assert!(
            self.steps_at_instant <= MAX_STEPS_AT_INSTANT,
            "more than {MAX_STEPS_AT_INSTANT} steps at one virtual instant: a node keeps \
             scheduling work at the current time ({})",
            self.context()
        );
        self.process(item);
        true
    }

    /// Runs everything due within `duration` of virtual time, then sets the clock to the end
    /// of that span.
    ///
    /// # Panics
    ///
    /// Panics as [`Simulator::step`] does when a node keeps scheduling work at one instant.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.clock.elapsed() + duration;
        while self.queue.peek_time().is_some_and(|at| at <= deadline) {
            self.step();
        }
        self.move_clock_to(deadline);
    }

    /// Lets `duration` of virtual time pass; the same as [`Simulator::run_for`], named for
    /// scenarios.
    ///
    /// # Panics
    ///
    /// Panics as [`Simulator::step`] does when a node keeps scheduling work at one instant.
    pub fn advance(&mut self, duration: Duration) {
        self.run_for(duration);
    }

    /// Runs until `predicate` returns true and returns the virtual time that took.
    ///
    /// The predicate is checked before the first step and after every step, so the clock
    /// stops at the step that made it true.
    ///
    /// # Errors
    ///
    /// Returns [`SimTimeout`] when the predicate still does not hold after `within` of
    /// virtual time; the clock is then at the end of that span.
    ///
    /// # Panics
    ///
    /// Panics as [`Simulator::step`] does when a node keeps scheduling work at one instant.
    pub fn run_until(
        &mut self,
        within: Duration,
        mut predicate: impl FnMut(&Simulator<N>) -> bool,
    ) -> Result<Duration, SimTimeout> {
        let start = self.clock.elapsed();
        let deadline = start + within;
        if predicate(self) {
            return Ok(Duration::ZERO);
        }
        while self.queue.peek_time().is_some_and(|at| at <= deadline) {
            self.step();
            if predicate(self) {
                return Ok(self.clock.elapsed() - start);
            }
        }
        self.move_clock_to(deadline);
        if predicate(self) {
            return Ok(within);
        }
        Err(self.timeout(within))
    }

    /// Runs until `predicate` holds, checking it only every `interval` of virtual time, and
    /// returns the virtual time that took, rounded up to the interval.
    ///
    /// Use it instead of [`Simulator::run_until`] when the predicate is costly, for example
    /// when it looks at every node of a large cluster.
    ///
    /// # Errors
    ///
    /// Returns [`SimTimeout`] when the predicate still does not hold after `within` of
    /// virtual time; the clock is then at the end of that span.
    ///
    /// # Panics
    ///
    /// Panics when `interval` is zero, and as [`Simulator::step`] does when a node keeps
    /// scheduling work at one instant.
    pub fn run_until_polling(
        &mut self,
        within: Duration,
        interval: Duration,
        mut predicate: impl FnMut(&Simulator<N>) -> bool,
    ) -> Result<Duration, SimTimeout> {
        assert!(!interval.is_zero(), "the polling interval must not be zero");
        let start = self.clock.elapsed();
        let deadline = start + within;
        loop {
            if predicate(self) {
                return Ok(self.clock.elapsed() - start);
            }
            let now = self.clock.elapsed();
            if now >= deadline {
                return Err(self.timeout(within));
            }
            self.run_for(interval.min(deadline - now));
        }
    }

    /// Handles one item popped from the queue: drops it, keeps it for a frozen node or
    /// hands it to the node.
    fn process(&mut self, item: Item<N::Message>) {
        let id = item.target();
        let slot = &self.slots[id as usize];
        if slot.node.is_none() {
            if let Item::Deliver { from, to, .. } = &item {
                self.stats.dropped_no_node += 1;
                debug!(
                    from = ?self.addresses[*from as usize],
                    to = ?self.addresses[*to as usize],
                    "message dropped: no live node at the destination"
                );
            }
            return;
        }
        match &item {
            Item::Tick { instance, .. } if *instance != slot.instance => return,
            Item::Deliver { from, to, .. } if self.network.is_blocked(*from, *to) => {
                self.stats.dropped_blocked += 1;
                debug!(
                    from = ?self.addresses[*from as usize],
                    to = ?self.addresses[*to as usize],
                    "message dropped: link blocked while it was in flight"
                );
                return;
            }
            _ => {}
        }
        if slot.frozen {
            self.slots[id as usize].held.push_back(item);
            return;
        }
        self.dispatch(id, item);
    }

    /// Hands `item` to the live node at `id` and performs its outputs.
    pub(super) fn dispatch(&mut self, id: AddressId, item: Item<N::Message>) {
        let now = self.clock.now();
        let slot = &mut self.slots[id as usize];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        match item {
            Item::Deliver { from, message, .. } => {
                let kind = N::message_kind(&message);
                slot.traffic.received.record(kind, N::wire_size(&message));
                self.stats.delivered += 1;
                let sender = self.addresses[from as usize].clone();
                trace!(from = ?sender, to = ?self.addresses[id as usize], kind, "message delivered");
                node.handle_message(sender, message, now, &mut self.scratch);
            }
            Item::Tick { .. } => node.tick(now, &mut self.scratch),
        }
        self.perform_outputs(id);
    }

    /// Records the events, schedules the ticks and sends the messages that the node at
    /// `source` left in the output buffer.
    pub(super) fn perform_outputs(&mut self, source: AddressId) {
        if self.scratch.is_empty() {
            return;
        }
        let mut outputs = std::mem::take(&mut self.scratch);
        let now = self.clock.elapsed();
        let instance = self.slots[source as usize].instance;

        for event in outputs.events.drain(..) {
            self.events
                .record(now, &self.addresses[source as usize], event);
        }
        for tick in outputs.ticks.drain(..) {
            let due = self.clock.elapsed_at(tick);
            self.queue.push(
                due,
                Item::Tick {
                    node: source,
                    instance,
                },
            );
        }
        for (to, message) in outputs.messages.drain(..) {
            self.route(source, &to, message);
        }

        // Hand the emptied buffer back so its capacity is reused by the next call.
        self.scratch = outputs;
    }

    /// Sends `message` from `from` to `to` through the link between them.
    pub(super) fn route(&mut self, from: AddressId, to: &N::Address, message: N::Message) {
        let to = self.intern(to);
        let kind = N::message_kind(&message);
        self.stats.sent += 1;
        self.slots[from as usize]
            .traffic
            .sent
            .record(kind, N::wire_size(&message));
        trace!(
            from = ?self.addresses[from as usize],
            to = ?self.addresses[to as usize],
            kind,
            "message sent"
        );

        if self.network.is_blocked(from, to) {
            self.stats.dropped_blocked += 1;
            debug!(
                from = ?self.addresses[from as usize],
                to = ?self.addresses[to as usize],
                kind,
                "message dropped: link blocked"
            );
            return;
        }
        let now = self.clock.elapsed();
        match self.network.transmit(from, to, &mut self.rng) {
            Transmission::Dropped => {
                self.stats.dropped_random += 1;
                debug!(
                    from = ?self.addresses[from as usize],
                    to = ?self.addresses[to as usize],
                    kind,
                    "message dropped: lost on the link"
                );
            }
            Transmission::Once(delay) => {
                self.queue
                    .push(now + delay, Item::Deliver { from, to, message });
            }
            Transmission::Twice(first, second) => {
                self.stats.duplicated += 1;
                let copy = message.clone();
                self.queue.push(
                    now + first,
                    Item::Deliver {
                        from,
                        to,
                        message: copy,
                    },
                );
                self.queue
                    .push(now + second, Item::Deliver { from, to, message });
            }
        }
    }

    fn move_clock_to(&mut self, to: Duration) {
        if to > self.clock.elapsed() {
            self.clock.advance_to(to);
            self.steps_at_instant = 0;
        }
    }

    fn timeout(&self, waited: Duration) -> SimTimeout {
        SimTimeout {
            seed: self.seed,
            waited,
            now: self.clock.elapsed(),
        }
    }
}
