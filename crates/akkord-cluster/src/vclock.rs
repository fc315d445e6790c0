//! Vector clocks that version the gossip state.
//!
//! Each node that changes the gossip state increments its own entry. Two states are ordered
//! when one clock dominates the other entry by entry; otherwise they were changed
//! concurrently and must be merged.
//!
//! Entries are keyed by [`VClockNode`], a stable 64-bit hash of the incarnation, so a clock
//! stays small on the wire. Entries of removed incarnations are pruned so the clock does not
//! grow with every join and leave.

use std::collections::BTreeMap;
use std::fmt;

use akkord_actor::address::UniqueAddress;

/// Key of one vector clock entry: a stable hash of a node incarnation.
///
/// The hash is FNV-1a over the textual unique address, so every node computes the same key
/// for the same incarnation regardless of platform or process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VClockNode(pub u64);

impl VClockNode {
    /// Returns the clock key of `node`.
    pub fn of(node: &UniqueAddress) -> Self {
        let mut hash = Fnv1a::new();
        hash.write(node.address.system().as_bytes());
        hash.write(b"@");
        hash.write(node.address.host().as_bytes());
        hash.write(&node.address.port().to_be_bytes());
        hash.write(&node.uid.to_be_bytes());
        Self(hash.finish())
    }
}

impl fmt::Debug for VClockNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Result of comparing two vector clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockOrdering {
    /// Both clocks have the same entries.
    Same,
    /// The left clock happened before the right one: the right one has seen all its changes.
    Before,
    /// The left clock happened after the right one.
    After,
    /// Each clock has a change the other has not seen.
    Concurrent,
}

/// A vector clock: one counter per node that changed the versioned state.
///
/// A missing entry counts as zero.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct VectorClock {
    versions: BTreeMap<VClockNode, u64>,
}

impl VectorClock {
    /// Creates an empty clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a copy of the clock with the entry of `node` incremented by one.
    pub fn incremented(&self, node: VClockNode) -> Self {
        let mut next = self.clone();
        next.increment(node);
        next
    }

    /// Increments the entry of `node` by one.
    pub fn increment(&mut self, node: VClockNode) {
        let entry = self.versions.entry(node).or_insert(0);
        *entry = entry.saturating_add(1);
    }

    /// Compares `self` with `other`.
    pub fn compare(&self, other: &VectorClock) -> ClockOrdering {
        let mut self_greater = false;
        let mut other_greater = false;
        for node in self.versions.keys().chain(other.versions.keys()) {
            let left = self.get(*node);
            let right = other.get(*node);
            self_greater |= left > right;
            other_greater |= right > left;
            if self_greater && other_greater {
                return ClockOrdering::Concurrent;
            }
        }
        match (self_greater, other_greater) {
            (false, false) => ClockOrdering::Same,
            (true, false) => ClockOrdering::After,
            (false, true) => ClockOrdering::Before,
            (true, true) => ClockOrdering::Concurrent,
        }
    }

    /// Returns the entry-wise maximum of `self` and `other`.
    pub fn merge(&self, other: &VectorClock) -> VectorClock {
        let mut merged = self.clone();
        for (node, version) in &other.versions {
            let entry = merged.versions.entry(*node).or_insert(0);
            *entry = (*entry).max(*version);
        }
        merged
    }

    /// Removes the entry of `node`, used once that incarnation was removed from the cluster.
    pub fn prune(&mut self, node: VClockNode) {
        self.versions.remove(&node);
    }

    /// Returns the counter of `node`, zero when it has no entry.
    pub fn get(&self, node: VClockNode) -> u64 {
        self.versions.get(&node).copied().unwrap_or(0)
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Returns true when the clock has no entry.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Iterates over the entries in key order.
    pub fn entries(&self) -> impl Iterator<Item = (VClockNode, u64)> + '_ {
        self.versions
            .iter()
            .map(|(node, version)| (*node, *version))
    }

    /// Returns a 64-bit digest of the clock, equal for equal clocks.
    pub fn digest(&self) -> u64 {
        let mut hash = Fnv1a::new();
        for (node, version) in &self.versions {
            hash.write(&node.0.to_be_bytes());
            hash.write(&version.to_be_bytes());
        }
        hash.finish()
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.versions.iter()).finish()
    }
}

impl FromIterator<(VClockNode, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (VClockNode, u64)>>(entries: I) -> Self {
        let mut clock = VectorClock::new();
        for (node, version) in entries {
            if version > 0 {
                let entry = clock.versions.entry(node).or_insert(0);
                *entry = (*entry).max(version);
            }
        }
        clock
    }
}

/// 64-bit FNV-1a, a small stable hash for clock keys and digests.
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> Self {
        Self(Self::OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock(entries: &[(u64, u64)]) -> VectorClock {
        entries
            .iter()
            .map(|(node, version)| (VClockNode(*node), *version))
            .collect()
    }

    #[test]
    fn compare_covers_all_orderings() {
        let a = clock(&[(1, 1)]);
        let b = clock(&[(1, 2)]);
        let c = clock(&[(1, 1), (2, 1)]);
        let d = clock(&[(1, 2), (2, 0)]);
        assert_eq!(a.compare(&a), ClockOrdering::Same);
        assert_eq!(a.compare(&b), ClockOrdering::Before);
        assert_eq!(b.compare(&a), ClockOrdering::After);
        assert_eq!(a.compare(&c), ClockOrdering::Before);
        assert_eq!(c.compare(&d), ClockOrdering::Concurrent);
        assert_eq!(VectorClock::new().compare(&a), ClockOrdering::Before);
    }

    #[test]
    fn increment_moves_clock_after() {
        let a = clock(&[(1, 3), (2, 1)]);
        let b = a.incremented(VClockNode(2));
        assert_eq!(b.get(VClockNode(2)), 2);
        assert_eq!(a.compare(&b), ClockOrdering::Before);
    }

    #[test]
    fn merge_dominates_both() {
        let c = clock(&[(1, 1), (2, 1)]);
        let d = clock(&[(1, 2), (3, 4)]);
        let merged = c.merge(&d);
        assert_eq!(merged, clock(&[(1, 2), (2, 1), (3, 4)]));
        assert_eq!(c.compare(&merged), ClockOrdering::Before);
        assert_eq!(d.compare(&merged), ClockOrdering::Before);
    }

    #[test]
    fn prune_drops_entry() {
        let mut c = clock(&[(1, 1), (2, 5)]);
        c.prune(VClockNode(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(VClockNode(2)), 0);
    }

    #[test]
    fn node_key_depends_on_uid() {
        let address = akkord_actor::address::Address::new("s", "h", 1).unwrap();
        let one = VClockNode::of(&UniqueAddress::new(address.clone(), 1));
        let two = VClockNode::of(&UniqueAddress::new(address.clone(), 2));
        assert_ne!(one, two);
        assert_eq!(one, VClockNode::of(&UniqueAddress::new(address, 1)));
    }

    fn arbitrary_clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::vec((0u64..5, 0u64..4), 0..6).prop_map(|entries| {
            entries
                .into_iter()
                .map(|(n, v)| (VClockNode(n), v))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arbitrary_clock(), b in arbitrary_clock()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
        }

        #[test]
        fn merge_is_associative(
            a in arbitrary_clock(), b in arbitrary_clock(), c in arbitrary_clock()
        ) {
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
        }

        #[test]
        fn merge_is_idempotent(a in arbitrary_clock()) {
            prop_assert_eq!(a.merge(&a), a);
        }

        #[test]
        fn compare_is_antisymmetric(a in arbitrary_clock(), b in arbitrary_clock()) {
            let expected = match a.compare(&b) {
                ClockOrdering::Before => ClockOrdering::After,
                ClockOrdering::After => ClockOrdering::Before,
                other => other,
            };
            prop_assert_eq!(b.compare(&a), expected);
        }
    }
}
