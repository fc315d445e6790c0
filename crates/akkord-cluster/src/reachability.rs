//! Reachability: which member observes which other member as unreachable.
//!
//! Unreachability is a flag next to the member status, kept as observer→subject records.
//! Each observer owns one row: only that node edits it, and every edit bumps the row's
//! version. Merging two tables keeps, per observer, the row with the higher version, so the
//! merge is commutative, associative and idempotent.
//!
//! A row lists only subjects that are not reachable. A row whose subjects are all reachable
//! again stays as an empty row, so that its version keeps ordering later edits. Rows go away with the
//! removal of their observer. A subject's aggregated status is
//! [`ReachabilityStatus::Terminated`] when any observer reports it terminated, else
//! [`ReachabilityStatus::Unreachable`] when any observer reports it unreachable, else
//! reachable.

use std::collections::{BTreeMap, BTreeSet};

use akkord_actor::address::UniqueAddress;

/// Status of one observer→subject record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReachabilityStatus {
    /// The observer receives heartbeats from the subject.
    Reachable,
    /// The observer's failure detector suspects the subject.
    Unreachable,
    /// The subject is known to be gone for good (for example replaced by a new incarnation).
    Terminated,
}

/// One observer's records: its version and the status of each subject it reported on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ObserverRow {
    /// Incremented by the observer on every change of this row.
    pub version: u64,
    /// Status per subject that is not reachable; subjects missing from the map are reachable.
    pub subjects: BTreeMap<UniqueAddress, ReachabilityStatus>,
}

/// The observer→subject reachability table carried in gossip.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reachability {
    rows: BTreeMap<UniqueAddress, ObserverRow>,
}

impl Reachability {
    /// Creates a table where everyone is reachable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `observer` observes `subject` as unreachable.
    pub fn unreachable(&self, observer: &UniqueAddress, subject: &UniqueAddress) -> Self {
        self.change(observer, subject, ReachabilityStatus::Unreachable)
    }

    /// Records that `observer` observes `subject` as reachable again.
    pub fn reachable(&self, observer: &UniqueAddress, subject: &UniqueAddress) -> Self {
        self.change(observer, subject, ReachabilityStatus::Reachable)
    }

    /// Records that `observer` found `subject` gone for good.
    pub fn terminated(&self, observer: &UniqueAddress, subject: &UniqueAddress) -> Self {
        self.change(observer, subject, ReachabilityStatus::Terminated)
    }

    /// Merges `other` into `self`, keeping per observer the row with the higher version.
    ///
    /// Only observers and subjects in `allowed` survive, so rows about removed members do
    /// not come back through an old copy of the table.
    pub fn merge(&self, allowed: &BTreeSet<UniqueAddress>, other: &Reachability) -> Self {
        let mut rows = BTreeMap::new();
        let observers: BTreeSet<&UniqueAddress> =
            self.rows.keys().chain(other.rows.keys()).collect();
        for observer in observers {
            if !allowed.contains(observer) {
                continue;
            }
            let mut row = match (self.rows.get(observer), other.rows.get(observer)) {
                (Some(left), Some(right)) => pick_row(left, right),
                (Some(row), None) | (None, Some(row)) => row.clone(),
                (None, None) => continue,
            };
            row.subjects.retain(|subject, _| allowed.contains(subject));
            rows.insert(observer.clone(), row);
        }
        Self { rows }
    }

    /// Removes every row observed by, and every record about, the given nodes.
    pub fn remove<'a>(&self, nodes: impl IntoIterator<Item = &'a UniqueAddress>) -> Self {
        let nodes: BTreeSet<&UniqueAddress> = nodes.into_iter().collect();
        let mut rows = BTreeMap::new();
        for (observer, row) in &self.rows {
            if nodes.contains(observer) {
                continue;
            }
            let mut row = row.clone();
            row.subjects.retain(|subject, _| !nodes.contains(subject));
            rows.insert(observer.clone(), row);
        }
        Self { rows }
    }

    /// Returns a table without the rows of `observers`, keeping their records about others
    /// out of every query.
    pub fn without_observers<'a>(
        &self,
        observers: impl IntoIterator<Item = &'a UniqueAddress>,
    ) -> Self {
        let observers: BTreeSet<&UniqueAddress> = observers.into_iter().collect();
        let rows = self
            .rows
            .iter()
            .filter(|(observer, _)| !observers.contains(observer))
            .map(|(observer, row)| (observer.clone(), row.clone()))
            .collect();
        Self { rows }
    }

    /// Returns the status `observer` recorded for `subject`.
    pub fn status_by(
        &self,
        observer: &UniqueAddress,
        subject: &UniqueAddress,
    ) -> ReachabilityStatus {
        self.rows
            .get(observer)
            .and_then(|row| row.subjects.get(subject))
            .copied()
            .unwrap_or(ReachabilityStatus::Reachable)
    }

    /// Returns the aggregated status of `subject` over all observers.
    pub fn status(&self, subject: &UniqueAddress) -> ReachabilityStatus {
        let mut status = ReachabilityStatus::Reachable;
        for row in self.rows.values() {
            match row.subjects.get(subject) {
                Some(ReachabilityStatus::Terminated) => return ReachabilityStatus::Terminated,
                Some(ReachabilityStatus::Unreachable) => status = ReachabilityStatus::Unreachable,
                _ => {}
            }
        }
        status
    }

    /// Returns true when no observer reports `subject` as unreachable or terminated.
    pub fn is_reachable(&self, subject: &UniqueAddress) -> bool {
        self.status(subject) == ReachabilityStatus::Reachable
    }

    /// Returns true when `observer` has not reported `subject` as unreachable or terminated.
    pub fn is_reachable_by(&self, observer: &UniqueAddress, subject: &UniqueAddress) -> bool {
        self.status_by(observer, subject) == ReachabilityStatus::Reachable
    }

    /// Returns true when no record marks a subject unreachable or terminated.
    pub fn is_all_reachable(&self) -> bool {
        self.rows.values().all(|row| row.subjects.is_empty())
    }

    /// Returns the subjects that some observer reports as unreachable or terminated.
    pub fn all_unreachable_or_terminated(&self) -> BTreeSet<UniqueAddress> {
        self.rows
            .values()
            .flat_map(|row| row.subjects.iter())
            .filter(|(_, status)| **status != ReachabilityStatus::Reachable)
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// Returns the subjects whose aggregated status is [`ReachabilityStatus::Unreachable`].
    pub fn all_unreachable(&self) -> BTreeSet<UniqueAddress> {
        self.all_unreachable_or_terminated()
            .into_iter()
            .filter(|subject| self.status(subject) == ReachabilityStatus::Unreachable)
            .collect()
    }

    /// Returns the subjects `observer` reports as unreachable or terminated.
    pub fn unreachable_by(&self, observer: &UniqueAddress) -> BTreeSet<UniqueAddress> {
        self.rows
            .get(observer)
            .map(|row| {
                row.subjects
                    .iter()
                    .filter(|(_, status)| **status != ReachabilityStatus::Reachable)
                    .map(|(subject, _)| subject.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Returns, for each subject that is not reachable, the observers that report it.
    ///
    /// The split brain resolver uses this to find indirectly connected nodes: a subject
    /// observed as unreachable by some members while it still observes others, or is still
    /// gossiping, is on neither side of a clean partition.
    pub fn observers_by_unreachable_subject(
        &self,
    ) -> BTreeMap<UniqueAddress, BTreeSet<UniqueAddress>> {
        let mut result: BTreeMap<UniqueAddress, BTreeSet<UniqueAddress>> = BTreeMap::new();
        for (observer, row) in &self.rows {
            for (subject, status) in &row.subjects {
                if *status != ReachabilityStatus::Reachable {
                    result
                        .entry(subject.clone())
                        .or_default()
                        .insert(observer.clone());
                }
            }
        }
        result
    }

    /// Iterates over every record that is not reachable, as (observer, subject, status), in
    /// observer then subject order.
    pub fn records(
        &self,
    ) -> impl Iterator<Item = (&UniqueAddress, &UniqueAddress, ReachabilityStatus)> {
        self.rows.iter().flat_map(|(observer, row)| {
            row.subjects
                .iter()
                .map(move |(subject, status)| (observer, subject, *status))
        })
    }

    /// Returns the version of `observer`'s row, zero when it has none.
    pub fn version_of(&self, observer: &UniqueAddress) -> u64 {
        self.rows.get(observer).map_or(0, |row| row.version)
    }

    /// Iterates over the observer rows in address order.
    pub fn rows(&self) -> impl Iterator<Item = (&UniqueAddress, &ObserverRow)> {
        self.rows.iter()
    }

    fn change(
        &self,
        observer: &UniqueAddress,
        subject: &UniqueAddress,
        status: ReachabilityStatus,
    ) -> Self {
        if observer == subject || self.status_by(observer, subject) == status {
            return self.clone();
        }
        let mut next = self.clone();
        let row = next.rows.entry(observer.clone()).or_default();
        row.version = row.version.saturating_add(1);
        if status == ReachabilityStatus::Reachable {
            row.subjects.remove(subject);
        } else {
            row.subjects.insert(subject.clone(), status);
        }
        next
    }

    /// Builds a table from observer rows, as a decoder of the wire format does.
    pub fn from_rows(rows: BTreeMap<UniqueAddress, ObserverRow>) -> Self {
        Self { rows }
    }
}

/// Picks the row with the higher version.
///
/// Two copies of one observer's row with the same version differ only when one of them lost
/// records about removed members, or after a faulty exchange. Their union, with the stronger
/// status per subject, keeps merge commutative and associative in both cases.
fn pick_row(left: &ObserverRow, right: &ObserverRow) -> ObserverRow {
    match left.version.cmp(&right.version) {
        std::cmp::Ordering::Greater => left.clone(),
        std::cmp::Ordering::Less => right.clone(),
        std::cmp::Ordering::Equal => {
            let mut union = left.clone();
            for (subject, status) in &right.subjects {
                let entry = union.subjects.entry(subject.clone()).or_insert(*status);
                *entry = (*entry).max(*status);
            }
            union
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akkord_actor::address::Address;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(
            Address::new("sys", "127.0.0.1", port).unwrap(),
            u64::from(port),
        )
    }

    fn all(nodes: &[u16]) -> BTreeSet<UniqueAddress> {
        nodes.iter().map(|p| node(*p)).collect()
    }

    #[test]
    fn unreachable_then_reachable_clears_row() {
        let r = Reachability::new().unreachable(&node(1), &node(2));
        assert_eq!(r.status(&node(2)), ReachabilityStatus::Unreachable);
        assert!(!r.is_reachable_by(&node(1), &node(2)));
        assert!(r.is_reachable_by(&node(3), &node(2)));
        let r = r.reachable(&node(1), &node(2));
        assert!(r.is_all_reachable());
    }

    #[test]
    fn terminated_wins_in_aggregate() {
        let r = Reachability::new()
            .unreachable(&node(1), &node(3))
            .terminated(&node(2), &node(3));
        assert_eq!(r.status(&node(3)), ReachabilityStatus::Terminated);
        assert!(r.all_unreachable().is_empty());
        assert_eq!(r.all_unreachable_or_terminated(), all(&[3]));
    }

    #[test]
    fn merge_keeps_newer_row_per_observer() {
        let base = Reachability::new().unreachable(&node(1), &node(2));
        let newer = base.unreachable(&node(1), &node(3));
        let other = Reachability::new().unreachable(&node(4), &node(2));
        let members = all(&[1, 2, 3, 4]);
        let merged = base.merge(&members, &newer).merge(&members, &other);
        assert_eq!(merged.unreachable_by(&node(1)), all(&[2, 3]));
        assert_eq!(merged.unreachable_by(&node(4)), all(&[2]));
        let observers = merged.observers_by_unreachable_subject();
        assert_eq!(observers[&node(2)], all(&[1, 4]));
        assert_eq!(observers[&node(3)], all(&[1]));
    }

    #[test]
    fn merge_drops_non_members() {
        let r = Reachability::new()
            .unreachable(&node(1), &node(2))
            .unreachable(&node(5), &node(1));
        let merged = r.merge(&all(&[1, 5]), &Reachability::new());
        assert!(merged.is_reachable(&node(2)));
        assert!(!merged.is_reachable(&node(1)));
    }

    #[test]
    fn remove_drops_rows_and_subjects() {
        let r = Reachability::new()
            .unreachable(&node(1), &node(2))
            .unreachable(&node(2), &node(3));
        let removed = r.remove([&node(2)]);
        assert!(removed.is_all_reachable());
    }

    #[test]
    fn observer_cannot_mark_itself() {
        let r = Reachability::new().unreachable(&node(1), &node(1));
        assert!(r.is_all_reachable());
    }

    #[test]
    fn without_observers_ignores_their_rows() {
        let r = Reachability::new().unreachable(&node(1), &node(2));
        assert!(r.without_observers([&node(1)]).is_reachable(&node(2)));
    }
}
