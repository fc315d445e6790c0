//! The replicated cluster state that nodes gossip to each other.
//!
//! A [`Gossip`] holds the members, an overview (which nodes have seen this version, and the
//! reachability table), a vector clock, and tombstones of removed incarnations.
//!
//! Invariants kept by every operation here:
//! - a tombstoned incarnation is never a member, never a seen-set entry, never a
//!   reachability observer or subject, and has no clock entry;
//! - merge is commutative, associative and idempotent on members, reachability, version and
//!   tombstones, so any gossip order ends in the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};

use crate::member::Member;
use crate::reachability::Reachability;
use crate::vclock::{VClockNode, VectorClock};

/// Seen set and reachability table of a gossip state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipOverview {
    /// Nodes that have seen the gossip at its current version.
    pub seen: BTreeSet<UniqueAddress>,
    /// Observer→subject unreachability records.
    pub reachability: Reachability,
}

/// The cluster state replicated by gossip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gossip {
    members: BTreeMap<UniqueAddress, Member>,
    overview: GossipOverview,
    version: VectorClock,
    // NOTE: removal times are `Instant`s, which mean nothing in another process. Until the
    // remoting layer encodes gossip, a wire format must carry each tombstone's age and the
    // receiver must turn it back into an `Instant` on its own clock.
    tombstones: BTreeMap<UniqueAddress, Instant>,
    /// XOR of the clock keys of the seen set, kept up to date by every change of the set so
    /// that status messages do not hash the whole set.
    seen_digest: u64,
}

impl Gossip {
    /// Creates an empty gossip state without members.
    pub fn new() -> Self {
        Self::default()
    }

    /// Iterates over the members in address order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Returns the number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Returns the member of incarnation `node`.
    pub fn member(&self, node: &UniqueAddress) -> Option<&Member> {
        self.members.get(node)
    }

    /// Returns the member running at `address`, whatever its incarnation.
    pub fn member_at(&self, address: &Address) -> Option<&Member> {
        self.members.values().find(|m| m.address() == address)
    }

    /// Returns true when incarnation `node` is a member.
    pub fn has_member(&self, node: &UniqueAddress) -> bool {
        self.members.contains_key(node)
    }

    /// Returns the overview: seen set and reachability.
    pub fn overview(&self) -> &GossipOverview {
        &self.overview
    }

    /// Returns the reachability table.
    pub fn reachability(&self) -> &Reachability {
        &self.overview.reachability
    }

    /// Returns the vector clock of this state.
    pub fn version(&self) -> &VectorClock {
        &self.version
    }

    /// Returns the tombstones: removed incarnations and the time of their removal.
    pub fn tombstones(&self) -> &BTreeMap<UniqueAddress, Instant> {
        &self.tombstones
    }

    /// Returns true when incarnation `node` was removed and its tombstone is still kept.
    pub fn is_tombstoned(&self, node: &UniqueAddress) -> bool {
        self.tombstones.contains_key(node)
    }

    /// Returns true when `node` has seen this version.
    pub fn seen_by(&self, node: &UniqueAddress) -> bool {
        self.overview.seen.contains(node)
    }

    /// Returns a 64-bit digest of the seen set, sent in status messages so a peer with the
    /// same version but a different seen set still gets the full state.
    pub fn seen_digest(&self) -> u64 {
        self.seen_digest
    }

    /// Inserts or replaces a member; the caller bumps the version with [`Gossip::increment`].
    ///
    /// A tombstoned incarnation is ignored so it never comes back.
    pub fn put_member(&mut self, member: Member) {
        if self.is_tombstoned(&member.unique_address) {
            return;
        }
        self.members.insert(member.unique_address.clone(), member);
    }

    /// Replaces the reachability table, keeping only records about members.
    pub fn set_reachability(&mut self, reachability: Reachability) {
        let members: BTreeSet<UniqueAddress> = self.members.keys().cloned().collect();
        self.overview.reachability = reachability.merge(&members, &Reachability::new());
    }

    /// Removes incarnation `node` and keeps a tombstone with removal time `now`.
    ///
    /// The member's clock entry, seen mark and reachability records go with it.
    pub fn remove_member(&mut self, node: &UniqueAddress, now: Instant) {
        self.members.remove(node);
        if self.overview.seen.remove(node) {
            self.seen_digest ^= VClockNode::of(node).0;
        }
        self.overview.reachability = self.overview.reachability.remove([node]);
        self.version.prune(VClockNode::of(node));
        let removed_at = self.tombstones.entry(node.clone()).or_insert(now);
        *removed_at = (*removed_at).max(now);
    }

    /// Drops tombstones older than `keep` at `now`; returns how many were dropped.
    pub fn prune_tombstones(&mut self, now: Instant, keep: Duration) -> usize {
        let before = self.tombstones.len();
        self.tombstones
            .retain(|_, removed_at| now.saturating_duration_since(*removed_at) < keep);
        before - self.tombstones.len()
    }

    /// Increments the clock entry of `node`, marking a local change.
    ///
    /// The seen set is reset to `node`, because no other node has seen the new version yet.
    pub fn increment(&mut self, node: &UniqueAddress) {
        self.version.increment(VClockNode::of(node));
        self.overview.seen.clear();
        self.overview.seen.insert(node.clone());
        self.seen_digest = VClockNode::of(node).0;
    }

    /// Adds `node` to the seen set.
    pub fn mark_seen(&mut self, node: &UniqueAddress) {
        if self.members.contains_key(node) && self.overview.seen.insert(node.clone()) {
            self.seen_digest ^= VClockNode::of(node).0;
        }
    }

    /// Merges the seen set of `other`, which has the same version.
    pub fn merge_seen(&mut self, other: &Gossip) {
        if other.overview.seen.is_subset(&self.overview.seen) {
            return;
        }
        for node in &other.overview.seen {
            self.mark_seen(node);
        }
    }

    /// Pairs the members of `self` and `other` by incarnation, in address order, walking
    /// both sorted maps once instead of looking each member up.
    pub fn zip_members<'a>(
        &'a self,
        other: &'a Gossip,
    ) -> impl Iterator<Item = (Option<&'a Member>, Option<&'a Member>)> + 'a {
        let mut left = self.members.values().peekable();
        let mut right = other.members.values().peekable();
        std::iter::from_fn(move || match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => match l.unique_address.cmp(&r.unique_address) {
                std::cmp::Ordering::Less => Some((left.next(), None)),
                std::cmp::Ordering::Greater => Some((None, right.next())),
                std::cmp::Ordering::Equal => Some((left.next(), right.next())),
            },
            (Some(_), None) => Some((left.next(), None)),
            (None, Some(_)) => Some((None, right.next())),
            (None, None) => None,
        })
    }

    /// Merges two concurrent states into one that dominates both.
    ///
    /// Steps:
    /// 1. tombstones: union, keeping the later removal time;
    /// 2. members: union, keeping per incarnation the copy furthest along (see
    ///    [`Member::highest_priority_of`]), without tombstoned incarnations;
    /// 3. reachability: per observer the newer row, restricted to members;
    /// 4. version: entry-wise maximum, without entries of tombstoned incarnations;
    /// 5. seen: empty, because no node has seen the merged version yet. The merging node
    ///    adds itself.
    pub fn merge(&self, other: &Gossip) -> Gossip {
        // 1. Tombstones.
        let mut tombstones = self.tombstones.clone();
        for (node, removed_at) in &other.tombstones {
            let entry = tombstones.entry(node.clone()).or_insert(*removed_at);
            *entry = (*entry).max(*removed_at);
        }

        // 2. Members.
        let mut members = BTreeMap::new();
        for (left, right) in self.zip_members(other) {
            let merged = match (left, right) {
                (Some(left), Some(right)) => left.clone().highest_priority_of(right.clone()),
                (Some(member), None) | (None, Some(member)) => member.clone(),
                (None, None) => continue,
            };
            if !tombstones.contains_key(&merged.unique_address) {
                members.insert(merged.unique_address.clone(), merged);
            }
        }

        // 3. Reachability.
        let allowed: BTreeSet<UniqueAddress> = members.keys().cloned().collect();
        let reachability = self
            .overview
            .reachability
            .merge(&allowed, &other.overview.reachability);

        // 4. Version.
        let mut version = self.version.merge(&other.version);
        for node in tombstones.keys() {
            version.prune(VClockNode::of(node));
        }

        // 5. Seen.
        Gossip {
            members,
            overview: GossipOverview {
                seen: BTreeSet::new(),
                reachability,
            },
            version,
            tombstones,
            seen_digest: 0,
        }
    }

    /// Builds a state from its parts, as a decoder of the wire format does.
    ///
    /// Parts that would break the invariants of this type are dropped: members, seen
    /// entries and clock entries of tombstoned incarnations, and reachability records whose
    /// observer or subject is not a member. The seen digest is computed from `seen`.
    pub fn from_parts(
        members: impl IntoIterator<Item = Member>,
        seen: BTreeSet<UniqueAddress>,
        reachability: Reachability,
        mut version: VectorClock,
        tombstones: BTreeMap<UniqueAddress, Instant>,
    ) -> Gossip {
        let members: BTreeMap<UniqueAddress, Member> = members
            .into_iter()
            .filter(|m| !tombstones.contains_key(&m.unique_address))
            .map(|m| (m.unique_address.clone(), m))
            .collect();
        let allowed: BTreeSet<UniqueAddress> = members.keys().cloned().collect();
        let reachability = reachability.merge(&allowed, &Reachability::new());
        let seen: BTreeSet<UniqueAddress> = seen
            .into_iter()
            .filter(|node| !tombstones.contains_key(node))
            .collect();
        for node in tombstones.keys() {
            version.prune(VClockNode::of(node));
        }
        let seen_digest = seen
            .iter()
            .fold(0, |digest, node| digest ^ VClockNode::of(node).0);
        Gossip {
            members,
            overview: GossipOverview { seen, reachability },
            version,
            tombstones,
            seen_digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::MemberStatus;
    use crate::vclock::ClockOrdering;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(
            Address::new("sys", "127.0.0.1", port).unwrap(),
            100 + u64::from(port),
        )
    }

    fn member(port: u16, status: MemberStatus) -> Member {
        Member {
            status,
            ..Member::joining(node(port), BTreeSet::new(), "1".into())
        }
    }

    fn gossip(members: &[(u16, MemberStatus)], changed_by: u16) -> Gossip {
        let mut g = Gossip::new();
        for (port, status) in members {
            g.put_member(member(*port, *status));
        }
        g.increment(&node(changed_by));
        g
    }

    #[test]
    fn merge_keeps_status_furthest_along() {
        let a = gossip(&[(1, MemberStatus::Up), (2, MemberStatus::Leaving)], 1);
        let b = gossip(&[(1, MemberStatus::Down), (2, MemberStatus::Up)], 2);
        let merged = a.merge(&b);
        assert_eq!(merged.member(&node(1)).unwrap().status, MemberStatus::Down);
        assert_eq!(
            merged.member(&node(2)).unwrap().status,
            MemberStatus::Leaving
        );
        assert_eq!(a.version().compare(merged.version()), ClockOrdering::Before);
        assert_eq!(b.version().compare(merged.version()), ClockOrdering::Before);
        assert!(merged.overview().seen.is_empty());
    }

    #[test]
    fn merge_unions_members() {
        let a = gossip(&[(1, MemberStatus::Up)], 1);
        let b = gossip(&[(2, MemberStatus::Joining)], 2);
        assert_eq!(a.merge(&b).member_count(), 2);
    }

    #[test]
    fn removed_member_stays_removed_after_merge() {
        let now = Instant::now();
        let old = gossip(&[(1, MemberStatus::Up), (2, MemberStatus::Exiting)], 2);
        let mut removed = old.clone();
        removed.increment(&node(1));
        removed.remove_member(&node(2), now);
        let merged = old.merge(&removed);
        assert!(!merged.has_member(&node(2)));
        assert!(merged.is_tombstoned(&node(2)));
        assert_eq!(merged.version().get(VClockNode::of(&node(2))), 0);
    }

    #[test]
    fn tombstone_blocks_put_member() {
        let mut g = gossip(&[(1, MemberStatus::Up)], 1);
        g.remove_member(&node(1), Instant::now());
        g.put_member(member(1, MemberStatus::Joining));
        assert!(!g.has_member(&node(1)));
    }

    #[test]
    fn tombstones_pruned_after_keep_time() {
        let start = Instant::now();
        let day = Duration::from_secs(24 * 3600);
        let mut g = gossip(&[(1, MemberStatus::Up), (2, MemberStatus::Up)], 1);
        g.remove_member(&node(2), start);
        assert_eq!(
            g.prune_tombstones(start + day - Duration::from_secs(1), day),
            0
        );
        assert!(g.is_tombstoned(&node(2)));
        assert_eq!(g.prune_tombstones(start + day, day), 1);
        assert!(g.tombstones().is_empty());
    }

    #[test]
    fn increment_resets_seen() {
        let mut g = gossip(&[(1, MemberStatus::Up), (2, MemberStatus::Up)], 1);
        g.mark_seen(&node(2));
        assert!(g.seen_by(&node(2)));
        g.increment(&node(1));
        assert!(!g.seen_by(&node(2)));
        assert!(g.seen_by(&node(1)));
    }

    #[test]
    fn seen_digest_differs_by_seen_set() {
        let mut g = gossip(&[(1, MemberStatus::Up), (2, MemberStatus::Up)], 1);
        let before = g.seen_digest();
        g.mark_seen(&node(2));
        assert_ne!(before, g.seen_digest());
    }
}
