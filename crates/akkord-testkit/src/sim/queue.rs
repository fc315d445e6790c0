//! The queue of scheduled message deliveries and ticks, ordered by virtual time.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Index of an address in the simulator's address table.
pub(crate) type AddressId = u32;

/// Something that happens to one node at a scheduled time.
#[derive(Debug)]
pub(crate) enum Item<M> {
    /// Delivery of `message`, sent by the node at `from`, to the node that has the address `to` on arrival.
    Deliver {
        from: AddressId,
        to: AddressId,
        message: M,
    },
    /// A tick requested by one instance of the node at `node`.
    ///
    /// The instance number keeps a tick of a killed or replaced instance away from its
    /// successor at the same address.
    Tick { node: AddressId, instance: u64 },
}

impl<M> Item<M> {
    /// Returns the address of the node this item is for.
    pub(crate) fn target(&self) -> AddressId {
        match self {
            Item::Deliver { to, .. } => *to,
            Item::Tick { node, .. } => *node,
        }
    }
}

/// Min-queue of items keyed by (virtual time, insertion sequence).
///
/// The sequence number breaks ties in insertion order, so two items due at the same time
/// always run in the same order and a run is reproducible.
#[derive(Debug)]
pub(crate) struct EventQueue<M> {
    heap: BinaryHeap<Entry<M>>,
    next_sequence: u64,
}

impl<M> EventQueue<M> {
    /// Creates an empty queue.
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_sequence: 0,
        }
    }

    /// Schedules `item` at virtual time `at`, after every item already scheduled at `at`.
    pub(crate) fn push(&mut self, at: Duration, item: Item<M>) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Entry { at, sequence, item });
    }

    /// Returns the time of the earliest item.
    pub(crate) fn peek_time(&self) -> Option<Duration> {
        self.heap.peek().map(|entry| entry.at)
    }

    /// Removes and returns the earliest item with its time.
    pub(crate) fn pop(&mut self) -> Option<(Duration, Item<M>)> {
        self.heap.pop().map(|entry| (entry.at, entry.item))
    }

    /// Returns the number of scheduled items.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[derive(Debug)]
struct Entry<M> {
    at: Duration,
    sequence: u64,
    item: Item<M>,
}

impl<M> PartialEq for Entry<M> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.sequence == other.sequence
    }
}

impl<M> Eq for Entry<M> {}

impl<M> PartialOrd for Entry<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for Entry<M> {
    /// Orders the earliest entry as the greatest, because `BinaryHeap` is a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(node: AddressId) -> Item<()> {
        Item::Tick { node, instance: 0 }
    }

    #[test]
    fn queue_pops_by_time_then_insertion() {
        let mut queue = EventQueue::new();
        queue.push(Duration::from_millis(5), tick(1));
        queue.push(Duration::from_millis(1), tick(2));
        queue.push(Duration::from_millis(5), tick(3));
        queue.push(Duration::from_millis(1), tick(4));

        let order: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|(at, item)| (at.as_millis(), item.target()))
            .collect();
        assert_eq!(order, vec![(1, 2), (1, 4), (5, 1), (5, 3)]);
    }

    #[test]
    fn peek_time_is_earliest() {
        let mut queue = EventQueue::new();
        assert_eq!(queue.peek_time(), None);
        queue.push(Duration::from_millis(9), tick(1));
        queue.push(Duration::from_millis(3), tick(1));
        assert_eq!(queue.peek_time(), Some(Duration::from_millis(3)));
        assert_eq!(queue.len(), 2);
    }
}
