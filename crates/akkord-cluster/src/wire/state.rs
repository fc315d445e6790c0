//! Encoding of a gossip state with index tables, and its validating decoder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use akkord_actor::address::UniqueAddress;

use super::proto::{
    ClockData, ClockEntryData, ClockKeyData, GossipData, MemberData, MemberStatusData,
    ObserverRowData, ReachabilityStatusData, SubjectData, TombstoneData, UniqueAddressData,
};
use super::{
    check_count, check_string, decode_address, encode_address, WireError, MAX_ADDRESSES, MAX_ROLES,
};
use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus};
use crate::reachability::{ObserverRow, Reachability, ReachabilityStatus};
use crate::vclock::{VClockNode, VectorClock};

/// Encodes `gossip`, sending each tombstone's removal time as its age at `now`.
pub(super) fn encode_gossip(gossip: &Gossip, now: Instant) -> GossipData {
    let mut addresses = Table::default();
    let mut roles = Table::default();
    let mut app_versions = Table::default();

    let members = gossip
        .members()
        .map(|member| MemberData {
            address_index: addresses.index_of(&member.unique_address),
            status: encode_member_status(member.status) as i32,
            up_number: member.up_number,
            role_indexes: member
                .roles
                .iter()
                .map(|role| roles.index_of(role.as_str()))
                .collect(),
            app_version_index: app_versions.index_of(member.app_version.as_str()),
        })
        .collect();
    let tombstones = gossip
        .tombstones()
        .iter()
        .map(|(node, removed_at)| TombstoneData {
            address_index: addresses.index_of(node),
            age_millis: millis(now.saturating_duration_since(*removed_at)),
        })
        .collect();
    let seen = gossip
        .overview()
        .seen
        .iter()
        .map(|node| addresses.index_of(node))
        .collect();
    let reachability = gossip
        .reachability()
        .rows()
        .map(|(observer, row)| ObserverRowData {
            observer_index: addresses.index_of(observer),
            version: row.version,
            subjects: row
                .subjects
                .iter()
                .map(|(subject, status)| SubjectData {
                    subject_index: addresses.index_of(subject),
                    status: encode_reachability_status(*status) as i32,
                })
                .collect(),
        })
        .collect();

    // Clock entries of incarnations in the table refer to them by index, which is shorter
    // than the 64-bit key.
    let clock_indexes: HashMap<u64, u32> = addresses
        .entries
        .iter()
        .enumerate()
        .map(|(index, node)| (VClockNode::of(node).0, table_index(index)))
        .collect();
    let version = encode_clock(gossip.version(), |key| clock_indexes.get(&key).copied());

    GossipData {
        addresses: addresses
            .entries
            .iter()
            .map(|n| encode_address(n))
            .collect(),
        roles: roles.entries.iter().map(|r| (*r).to_owned()).collect(),
        app_versions: app_versions
            .entries
            .iter()
            .map(|v| (*v).to_owned())
            .collect(),
        members,
        seen,
        reachability,
        version: Some(version),
        tombstones,
    }
}

/// Decodes and validates a gossip state, counting tombstone ages back from `now`.
pub(super) fn decode_gossip(data: &GossipData, now: Instant) -> Result<Gossip, WireError> {
    let addresses = decode_address_table(&data.addresses)?;
    let roles = decode_string_table("gossip.roles", &data.roles, MAX_ROLES)?;
    let app_versions =
        decode_string_table("gossip.app_versions", &data.app_versions, MAX_ADDRESSES)?;

    // Tombstones.
    check_count("gossip.tombstones", data.tombstones.len(), MAX_ADDRESSES)?;
    let mut tombstones = BTreeMap::new();
    for tombstone in &data.tombstones {
        let node = lookup(
            "gossip.tombstones.address_index",
            &addresses,
            tombstone.address_index,
        )?;
        let removed_at = instant_before(now, Duration::from_millis(tombstone.age_millis));
        if tombstones.insert(node.clone(), removed_at).is_some() {
            return Err(duplicate("gossip.tombstones", node));
        }
    }

    // Members.
    check_count("gossip.members", data.members.len(), MAX_ADDRESSES)?;
    let mut members = BTreeMap::new();
    for member in &data.members {
        let member = decode_member(member, &addresses, &roles, &app_versions)?;
        if tombstones.contains_key(&member.unique_address) {
            return Err(WireError::Tombstoned {
                field: "gossip.members",
                node: member.unique_address,
            });
        }
        if members.contains_key(&member.unique_address) {
            return Err(duplicate("gossip.members", &member.unique_address));
        }
        members.insert(member.unique_address.clone(), member);
    }

    // Seen set.
    check_count("gossip.seen", data.seen.len(), MAX_ADDRESSES)?;
    let mut seen = BTreeSet::new();
    for index in &data.seen {
        let node = lookup("gossip.seen", &addresses, *index)?;
        if tombstones.contains_key(node) {
            return Err(WireError::Tombstoned {
                field: "gossip.seen",
                node: node.clone(),
            });
        }
        if !seen.insert(node.clone()) {
            return Err(duplicate("gossip.seen", node));
        }
    }

    let reachability = decode_reachability(&data.reachability, &addresses, &members)?;

    // Version.
    let clock = data.version.as_ref().ok_or(WireError::MissingField {
        field: "gossip.version",
    })?;
    let version = decode_clock("gossip.version", clock, Some(&addresses))?;
    for node in tombstones.keys() {
        if version.get(VClockNode::of(node)) > 0 {
            return Err(WireError::Tombstoned {
                field: "gossip.version",
                node: node.clone(),
            });
        }
    }

    Ok(Gossip::from_parts(
        members.into_values(),
        seen,
        reachability,
        version,
        tombstones,
    ))
}

/// Encodes a vector clock. `index_of` returns the table index of a key, if any.
pub(super) fn encode_clock(
    clock: &VectorClock,
    index_of: impl Fn(u64) -> Option<u32>,
) -> ClockData {
    let entries = clock
        .entries()
        .map(|(node, version)| ClockEntryData {
            key: Some(match index_of(node.0) {
                Some(index) => ClockKeyData::AddressIndex(index),
                None => ClockKeyData::Key(node.0),
            }),
            version,
        })
        .collect();
    ClockData { entries }
}

/// Decodes a vector clock. An entry refers to `addresses` by index, or carries its key when
/// the message has no address table or the table lacks the entry's incarnation.
///
/// Entries with version zero are dropped, because a missing entry counts as zero.
pub(super) fn decode_clock(
    field: &'static str,
    data: &ClockData,
    addresses: Option<&[UniqueAddress]>,
) -> Result<VectorClock, WireError> {
    check_count(field, data.entries.len(), MAX_ADDRESSES)?;
    let mut entries = BTreeMap::new();
    for entry in &data.entries {
        let key = match entry.key {
            Some(ClockKeyData::Key(key)) => VClockNode(key),
            Some(ClockKeyData::AddressIndex(index)) => {
                let table = addresses.unwrap_or(&[]);
                VClockNode::of(lookup(field, table, index)?)
            }
            None => return Err(WireError::MissingField { field }),
        };
        if entries.insert(key, entry.version).is_some() {
            return Err(WireError::Duplicate {
                field,
                entry: format!("clock key {key:?}"),
            });
        }
    }
    Ok(entries.into_iter().collect())
}

/// Returns the instant `age` before `now`.
///
/// When the monotonic clock cannot go back that far, returns the oldest instant it can
/// represent, so the receiver keeps the tombstone longer than the sender, never shorter.
/// Rust's `Instant` on Linux stores signed seconds and goes back any `u64` milliseconds, but
/// other platforms count from an origin such as boot.
pub(super) fn instant_before(now: Instant, age: Duration) -> Instant {
    if let Some(instant) = now.checked_sub(age) {
        return instant;
    }
    let fitting = largest_fitting_millis(millis(age), |candidate| {
        now.checked_sub(Duration::from_millis(candidate)).is_some()
    });
    now.checked_sub(Duration::from_millis(fitting))
        .unwrap_or(now)
}

/// Returns the largest number of milliseconds below `limit` for which `fits` returns true,
/// by binary search. `fits` must return true for zero and for every value below one that
/// fits.
fn largest_fitting_millis(limit: u64, fits: impl Fn(u64) -> bool) -> u64 {
    let (mut fitting, mut too_far) = (0, limit.max(1));
    while too_far - fitting > 1 {
        let middle = fitting + (too_far - fitting) / 2;
        if fits(middle) {
            fitting = middle;
        } else {
            too_far = middle;
        }
    }
    fitting
}

fn decode_member(
    data: &MemberData,
    addresses: &[UniqueAddress],
    roles: &[String],
    app_versions: &[String],
) -> Result<Member, WireError> {
    let unique_address = lookup(
        "gossip.members.address_index",
        addresses,
        data.address_index,
    )?;
    let status = decode_member_status(data.status)?;
    check_count(
        "gossip.members.role_indexes",
        data.role_indexes.len(),
        MAX_ROLES,
    )?;
    let mut member_roles = BTreeSet::new();
    for index in &data.role_indexes {
        let role = lookup("gossip.members.role_indexes", roles, *index)?;
        if !member_roles.insert(role.clone()) {
            return Err(WireError::Duplicate {
                field: "gossip.members.role_indexes",
                entry: format!("role {role:?}"),
            });
        }
    }
    let app_version = lookup(
        "gossip.members.app_version_index",
        app_versions,
        data.app_version_index,
    )?;
    Ok(Member {
        unique_address: unique_address.clone(),
        status,
        roles: member_roles,
        up_number: data.up_number,
        app_version: app_version.clone(),
    })
}

fn decode_reachability(
    rows: &[ObserverRowData],
    addresses: &[UniqueAddress],
    members: &BTreeMap<UniqueAddress, Member>,
) -> Result<Reachability, WireError> {
    const OBSERVER: &str = "gossip.reachability.observer_index";
    const SUBJECT: &str = "gossip.reachability.subjects.subject_index";
    let member = |field: &'static str, index: u32| -> Result<UniqueAddress, WireError> {
        let node = lookup(field, addresses, index)?;
        if !members.contains_key(node) {
            return Err(WireError::NotAMember {
                field,
                node: node.clone(),
            });
        }
        Ok(node.clone())
    };

    check_count("gossip.reachability", rows.len(), MAX_ADDRESSES)?;
    let mut decoded = BTreeMap::new();
    for row in rows {
        let observer = member(OBSERVER, row.observer_index)?;
        check_count(
            "gossip.reachability.subjects",
            row.subjects.len(),
            MAX_ADDRESSES,
        )?;
        let mut subjects = BTreeMap::new();
        for record in &row.subjects {
            let subject = member(SUBJECT, record.subject_index)?;
            let status = decode_reachability_status(record.status)?;
            if subjects.insert(subject.clone(), status).is_some() {
                return Err(duplicate("gossip.reachability.subjects", &subject));
            }
        }
        let row = ObserverRow {
            version: row.version,
            subjects,
        };
        if decoded.insert(observer.clone(), row).is_some() {
            return Err(duplicate("gossip.reachability", &observer));
        }
    }
    Ok(Reachability::from_rows(decoded))
}

fn decode_address_table(data: &[UniqueAddressData]) -> Result<Vec<UniqueAddress>, WireError> {
    check_count("gossip.addresses", data.len(), MAX_ADDRESSES)?;
    let addresses = data
        .iter()
        .map(|entry| decode_address("gossip.addresses", entry))
        .collect::<Result<Vec<_>, _>>()?;
    let mut unique = BTreeSet::new();
    for node in &addresses {
        if !unique.insert(node) {
            return Err(duplicate("gossip.addresses", node));
        }
    }
    Ok(addresses)
}

fn decode_string_table(
    field: &'static str,
    data: &[String],
    max: usize,
) -> Result<Vec<String>, WireError> {
    check_count(field, data.len(), max)?;
    let mut unique = BTreeSet::new();
    for text in data {
        check_string(field, text)?;
        if !unique.insert(text.as_str()) {
            return Err(WireError::Duplicate {
                field,
                entry: format!("{text:?}"),
            });
        }
    }
    Ok(data.to_vec())
}

fn lookup<'a, T>(field: &'static str, table: &'a [T], index: u32) -> Result<&'a T, WireError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or(WireError::IndexOutOfRange {
            field,
            index,
            len: table.len(),
        })
}

fn duplicate(field: &'static str, node: &UniqueAddress) -> WireError {
    WireError::Duplicate {
        field,
        entry: format!("incarnation {node}"),
    }
}

fn encode_member_status(status: MemberStatus) -> MemberStatusData {
    match status {
        MemberStatus::Joining => MemberStatusData::Joining,
        MemberStatus::WeaklyUp => MemberStatusData::WeaklyUp,
        MemberStatus::Up => MemberStatusData::Up,
        MemberStatus::PreparingForShutdown => MemberStatusData::PreparingForShutdown,
        MemberStatus::ReadyForShutdown => MemberStatusData::ReadyForShutdown,
        MemberStatus::Leaving => MemberStatusData::Leaving,
        MemberStatus::Exiting => MemberStatusData::Exiting,
        MemberStatus::Down => MemberStatusData::Down,
        MemberStatus::Removed => MemberStatusData::Removed,
    }
}

fn decode_member_status(value: i32) -> Result<MemberStatus, WireError> {
    let unknown = WireError::UnknownStatus {
        field: "gossip.members.status",
        value,
    };
    Ok(
        match MemberStatusData::try_from(value).map_err(|_| unknown.clone())? {
            MemberStatusData::Unspecified => return Err(unknown),
            MemberStatusData::Joining => MemberStatus::Joining,
            MemberStatusData::WeaklyUp => MemberStatus::WeaklyUp,
            MemberStatusData::Up => MemberStatus::Up,
            MemberStatusData::PreparingForShutdown => MemberStatus::PreparingForShutdown,
            MemberStatusData::ReadyForShutdown => MemberStatus::ReadyForShutdown,
            MemberStatusData::Leaving => MemberStatus::Leaving,
            MemberStatusData::Exiting => MemberStatus::Exiting,
            MemberStatusData::Down => MemberStatus::Down,
            MemberStatusData::Removed => MemberStatus::Removed,
        },
    )
}

fn encode_reachability_status(status: ReachabilityStatus) -> ReachabilityStatusData {
    match status {
        ReachabilityStatus::Reachable => ReachabilityStatusData::Reachable,
        ReachabilityStatus::Unreachable => ReachabilityStatusData::Unreachable,
        ReachabilityStatus::Terminated => ReachabilityStatusData::Terminated,
    }
}

fn decode_reachability_status(value: i32) -> Result<ReachabilityStatus, WireError> {
    let unknown = WireError::UnknownStatus {
        field: "gossip.reachability.subjects.status",
        value,
    };
    match ReachabilityStatusData::try_from(value) {
        Ok(ReachabilityStatusData::Reachable) => Ok(ReachabilityStatus::Reachable),
        Ok(ReachabilityStatusData::Unreachable) => Ok(ReachabilityStatus::Unreachable),
        Ok(ReachabilityStatusData::Terminated) => Ok(ReachabilityStatus::Terminated),
        Ok(ReachabilityStatusData::Unspecified) | Err(_) => Err(unknown),
    }
}

/// Entries in order of first use, each with its index.
struct Table<K> {
    entries: Vec<K>,
    indexes: BTreeMap<K, u32>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            indexes: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> Table<K> {
    /// Returns the index of `key`, adding it to the table on first use.
    fn index_of(&mut self, key: K) -> u32 {
        if let Some(index) = self.indexes.get(&key) {
            return *index;
        }
        let index = table_index(self.entries.len());
        self.entries.push(key);
        self.indexes.insert(key, index);
        index
    }
}

/// Converts a table position to a wire index, saturating at `u32::MAX`.
///
/// The decoder rejects tables of more than [`MAX_ADDRESSES`] entries, far fewer than
/// `u32::MAX`, so a saturated index only leads to a decoding error at the peer.
fn table_index(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_fitting_millis_finds_boundary() {
        for boundary in [0, 1, 2, 999, 86_400_000] {
            let found = largest_fitting_millis(u64::MAX, |candidate| candidate <= boundary);
            assert_eq!(found, boundary);
        }
        assert_eq!(largest_fitting_millis(10, |_| true), 9);
        assert_eq!(largest_fitting_millis(0, |_| false), 0);
    }
}
