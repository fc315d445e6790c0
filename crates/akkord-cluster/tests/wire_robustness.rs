//! Decoding hostile input: random and damaged bytes, invalid fields, fields of newer versions.

mod wire_support;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::gossip::Gossip;
use akkord_cluster::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::membership::{
    ClusterMessage, JoinRejection, JoinRequest, MEMBERSHIP_PROTOCOL_VERSION,
};
use akkord_cluster::node::NodeMessage;
use akkord_cluster::reachability::Reachability;
use akkord_cluster::vclock::{VClockNode, VectorClock};
use akkord_cluster::wire::proto::{
    ClockEntryData, ClockKeyData, ClusterEnvelope, GossipData, GossipMessageData, JoinRejectedData,
    Payload, UniqueAddressData,
};
use akkord_cluster::wire::{self, WireError, MAX_ADDRESSES, MAX_ROLES, MAX_STRING_BYTES};
use prost::encoding::encode_varint;
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wire_support::{base_instant, typical_gossip};

const SEED: u64 = 0x5eed_c1a5_7e12;

/// Returns one instant for the whole test binary, so states built in two places compare
/// equal.
fn fixed_now() -> Instant {
    static NOW: OnceLock<Instant> = OnceLock::new();
    *NOW.get_or_init(base_instant)
}

fn node(port: u16) -> UniqueAddress {
    UniqueAddress::new(
        Address::new("sys", "127.0.0.1", port).unwrap(),
        1000 + u64::from(port),
    )
}

/// Builds a state with members, roles, reachability, a clock and a tombstone.
fn sample_gossip(now: Instant) -> Gossip {
    let members = (1..=4).map(|port| Member {
        unique_address: node(port),
        status: MemberStatus::Up,
        roles: ["backend".to_owned()].into(),
        up_number: u32::from(port),
        app_version: "2.0".to_owned(),
    });
    let reachability = Reachability::new().unreachable(&node(1), &node(2));
    let clock: VectorClock = [(VClockNode::of(&node(1)), 4), (VClockNode(77), 2)]
        .into_iter()
        .collect();
    let seen: BTreeSet<UniqueAddress> = [node(1), node(3)].into();
    let tombstones = [(node(9), now - Duration::from_secs(60))].into();
    Gossip::from_parts(members, seen, reachability, clock, tombstones)
}

fn sample_message(now: Instant) -> ClusterMessage {
    ClusterMessage::Gossip {
        from: node(1),
        to: node(2),
        gossip: Arc::new(sample_gossip(now)),
    }
}

/// Returns valid encodings of every message kind, the seeds of the damaged inputs.
fn corpus(now: Instant) -> Vec<Vec<u8>> {
    let membership = [
        sample_message(now),
        ClusterMessage::Welcome {
            from: node(1),
            gossip: Arc::new(typical_gossip(20, false, now)),
        },
        ClusterMessage::InitJoin { from: node(3) },
        ClusterMessage::Join(JoinRequest {
            node: node(5),
            roles: ["a".to_owned(), "b".to_owned()].into(),
            app_version: "1".to_owned(),
            system_name: "sys".to_owned(),
            protocol_version: MEMBERSHIP_PROTOCOL_VERSION,
        }),
        ClusterMessage::JoinRejected {
            from: node(1),
            reason: JoinRejection::IncarnationRemoved { node: node(5) },
        },
        ClusterMessage::GossipStatus {
            from: node(1),
            to: node(2),
            version: sample_gossip(now).version().clone(),
            seen_digest: 99,
        },
    ];
    let mut corpus: Vec<Vec<u8>> = membership.iter().map(|m| wire::encode(m, now)).collect();
    corpus.push(wire::encode_heartbeat_request(&HeartbeatRequest {
        from: node(1),
        to: node(2),
        sequence_nr: 7,
    }));
    corpus.push(wire::encode_heartbeat_response(&HeartbeatResponse {
        from: node(2),
        sequence_nr: 7,
    }));
    corpus
}

/// Decodes `bytes` and returns whether it decoded. A message that decodes must survive
/// another round trip unchanged.
fn decode_checked(bytes: &[u8], now: Instant) -> bool {
    match wire::decode_node_message(bytes, now) {
        Ok(message) => {
            let again = wire::decode_node_message(&wire::encode_node_message(&message, now), now);
            assert_eq!(again.as_ref(), Ok(&message), "input {bytes:02x?}");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn random_bytes_never_panic() {
    let now = fixed_now();
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut rejected = 0;
    for _ in 0..20_000 {
        let len = rng.random_range(0..256);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if !decode_checked(&bytes, now) {
            rejected += 1;
        }
    }
    assert!(
        rejected > 10_000,
        "only {rejected} of 20000 random inputs rejected"
    );
}

#[test]
fn truncated_encodings_never_panic() {
    let now = fixed_now();
    let mut rejected = 0;
    let mut total = 0;
    for bytes in corpus(now) {
        for len in 0..bytes.len() {
            total += 1;
            if !decode_checked(&bytes[..len], now) {
                rejected += 1;
            }
        }
        assert!(decode_checked(&bytes, now), "valid encoding rejected");
    }
    assert!(
        rejected * 2 > total,
        "only {rejected} of {total} truncations rejected"
    );
}

#[test]
fn mutated_encodings_never_panic() {
    let now = fixed_now();
    let corpus = corpus(now);
    let mut rng = SmallRng::seed_from_u64(SEED + 1);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = corpus[rng.random_range(0..corpus.len())].clone();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut bytes, &mut rng);
        }
        if decode_checked(&bytes, now) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(accepted > 100, "only {accepted} mutated inputs decoded");
    assert!(rejected > 1_000, "only {rejected} mutated inputs rejected");
}

fn mutate(bytes: &mut Vec<u8>, rng: &mut SmallRng) {
    if bytes.is_empty() {
        bytes.push(rng.random());
        return;
    }
    let at = rng.random_range(0..bytes.len());
    match rng.random_range(0..5) {
        0 => bytes[at] ^= 1 << rng.random_range(0..8),
        1 => bytes[at] = rng.random(),
        2 => bytes.insert(at, rng.random()),
        3 => {
            bytes.remove(at);
        }
        _ => {
            let end = rng.random_range(at..bytes.len());
            let copy = bytes[at..=end].to_vec();
            bytes.splice(at..at, copy);
        }
    }
}

/// Appends fields no version defines yet: a varint, a length-delimited, a fixed64 and a
/// fixed32 field.
fn with_unknown_fields(mut bytes: Vec<u8>) -> Vec<u8> {
    encode_varint(99 << 3, &mut bytes);
    encode_varint(12_345, &mut bytes);
    encode_varint(100 << 3 | 2, &mut bytes);
    encode_varint(3, &mut bytes);
    bytes.extend_from_slice(b"new");
    encode_varint(101 << 3 | 1, &mut bytes);
    bytes.extend_from_slice(&[7; 8]);
    encode_varint(102 << 3 | 5, &mut bytes);
    bytes.extend_from_slice(&[7; 4]);
    bytes
}

fn append_message(bytes: &mut Vec<u8>, tag: u64, message: &[u8]) {
    encode_varint(tag << 3 | 2, bytes);
    encode_varint(message.len() as u64, bytes);
    bytes.extend_from_slice(message);
}

fn gossip_payload(bytes: &[u8]) -> GossipMessageData {
    match ClusterEnvelope::decode(bytes).unwrap().payload {
        Some(Payload::Gossip(data)) => data,
        other => panic!("not a gossip payload: {other:?}"),
    }
}

#[test]
fn unknown_fields_are_skipped_at_every_level() {
    let now = fixed_now();
    let message = sample_message(now);
    let mut data = gossip_payload(&wire::encode(&message, now));
    let mut gossip = data.gossip.take().unwrap();
    let members = std::mem::take(&mut gossip.members);
    let rows = std::mem::take(&mut gossip.reachability);
    let clock = gossip.version.take().unwrap();

    // Rebuild the gossip by hand, with unknown fields in every nested message.
    let mut gossip_bytes = gossip.encode_to_vec();
    for member in &members {
        append_message(
            &mut gossip_bytes,
            4,
            &with_unknown_fields(member.encode_to_vec()),
        );
    }
    for row in &rows {
        append_message(
            &mut gossip_bytes,
            6,
            &with_unknown_fields(row.encode_to_vec()),
        );
    }
    let mut clock_bytes = Vec::new();
    for entry in &clock.entries {
        append_message(
            &mut clock_bytes,
            1,
            &with_unknown_fields(entry.encode_to_vec()),
        );
    }
    append_message(&mut gossip_bytes, 7, &with_unknown_fields(clock_bytes));
    let mut message_bytes = data.encode_to_vec();
    append_message(&mut message_bytes, 3, &with_unknown_fields(gossip_bytes));
    let mut envelope = Vec::new();
    append_message(&mut envelope, 7, &with_unknown_fields(message_bytes));
    let envelope = with_unknown_fields(envelope);

    assert_eq!(wire::decode(&envelope, now), Ok(message));
}

#[test]
fn unknown_message_kind_is_reported() {
    // Field 11 of the envelope, empty: a message kind of a newer version.
    let bytes = [11 << 3 | 2, 0];
    assert_eq!(
        wire::decode_node_message(&bytes, Instant::now()),
        Err(WireError::UnknownKind)
    );
}

#[test]
fn kinds_are_checked_by_typed_decoders() {
    let now = Instant::now();
    let request = wire::encode_heartbeat_request(&HeartbeatRequest {
        from: node(1),
        to: node(2),
        sequence_nr: 1,
    });
    let init_join = wire::encode(&ClusterMessage::InitJoin { from: node(1) }, now);
    assert!(matches!(
        wire::decode(&request, now),
        Err(WireError::UnexpectedKind {
            expected: "membership",
            actual: "heartbeat-request"
        })
    ));
    assert!(matches!(
        wire::decode_heartbeat_response(&request),
        Err(WireError::UnexpectedKind { .. })
    ));
    assert!(matches!(
        wire::decode_heartbeat_request(&init_join),
        Err(WireError::UnexpectedKind {
            actual: "init-join",
            ..
        })
    ));
    assert!(matches!(
        wire::decode_node_message(&request, now),
        Ok(NodeMessage::HeartbeatRequest(_))
    ));
}

/// Encodes the sample gossip message after `change` edits its gossip, and decodes it.
fn decode_changed(change: impl FnOnce(&mut GossipData)) -> Result<ClusterMessage, WireError> {
    let now = fixed_now();
    let mut data = gossip_payload(&wire::encode(&sample_message(now), now));
    change(data.gossip.as_mut().unwrap());
    let bytes = ClusterEnvelope {
        payload: Some(Payload::Gossip(data)),
    }
    .encode_to_vec();
    wire::decode(&bytes, now)
}

fn address_data(port: u32, uid: u64) -> UniqueAddressData {
    UniqueAddressData {
        system: "sys".to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        uid,
    }
}

/// Position of `node` in the address table.
fn index_of(gossip: &GossipData, port: u16) -> u32 {
    let position = gossip
        .addresses
        .iter()
        .position(|a| a.port == u32::from(port))
        .unwrap();
    position as u32
}

#[test]
fn sample_gossip_decodes_unchanged() {
    let now = fixed_now();
    assert_eq!(decode_changed(|_| {}), Ok(sample_message(now)));
}

#[test]
fn invalid_indexes_are_rejected() {
    let error = decode_changed(|g| g.members[0].address_index = 1000).unwrap_err();
    assert!(matches!(
        error,
        WireError::IndexOutOfRange {
            field: "gossip.members.address_index",
            index: 1000,
            ..
        }
    ));
    assert!(error.to_string().contains("gossip.members.address_index"));
    let error = decode_changed(|g| g.members[0].role_indexes.push(5)).unwrap_err();
    assert!(matches!(error, WireError::IndexOutOfRange { .. }));
    let error = decode_changed(|g| g.members[0].app_version_index = 3).unwrap_err();
    assert!(matches!(error, WireError::IndexOutOfRange { .. }));
    let error = decode_changed(|g| g.seen.push(u32::MAX)).unwrap_err();
    assert!(matches!(error, WireError::IndexOutOfRange { .. }));
    let error = decode_changed(|g| g.tombstones[0].address_index = 99).unwrap_err();
    assert!(matches!(error, WireError::IndexOutOfRange { .. }));
    let error = decode_changed(|g| g.reachability[0].subjects[0].subject_index = 99).unwrap_err();
    assert!(matches!(error, WireError::IndexOutOfRange { .. }));
    let error = decode_changed(|g| {
        g.version.as_mut().unwrap().entries[0].key = Some(ClockKeyData::AddressIndex(99))
    })
    .unwrap_err();
    assert!(matches!(error, WireError::IndexOutOfRange { .. }));
}

#[test]
fn unknown_status_values_are_rejected() {
    for value in [0, 10, -1] {
        let error = decode_changed(|g| g.members[0].status = value).unwrap_err();
        assert_eq!(
            error,
            WireError::UnknownStatus {
                field: "gossip.members.status",
                value
            }
        );
    }
    for value in [0, 4] {
        let error = decode_changed(|g| g.reachability[0].subjects[0].status = value).unwrap_err();
        assert!(matches!(error, WireError::UnknownStatus { .. }));
    }
}

#[test]
fn invalid_addresses_are_rejected() {
    let cases: [fn(&mut UniqueAddressData); 5] = [
        |a| a.port = 70_000,
        |a| a.host = "bad host".to_owned(),
        |a| a.host = String::new(),
        |a| a.system = String::new(),
        |a| a.system = "sys/tem".to_owned(),
    ];
    for case in cases {
        let error = decode_changed(|g| case(&mut g.addresses[0])).unwrap_err();
        assert!(
            matches!(
                error,
                WireError::InvalidAddress {
                    field: "gossip.addresses",
                    ..
                }
            ),
            "{error}"
        );
    }
    let now = Instant::now();
    let mut envelope = ClusterEnvelope::decode(
        wire::encode(&ClusterMessage::InitJoin { from: node(1) }, now).as_slice(),
    )
    .unwrap();
    if let Some(Payload::InitJoin(data)) = envelope.payload.as_mut() {
        data.from.as_mut().unwrap().port = 65_536;
    }
    let error = wire::decode(&envelope.encode_to_vec(), now).unwrap_err();
    assert!(matches!(
        error,
        WireError::InvalidAddress {
            field: "init_join.from",
            ..
        }
    ));
}

#[test]
fn oversized_collections_are_rejected() {
    let error = decode_changed(|g| {
        g.roles = (0..=MAX_ROLES).map(|i| i.to_string()).collect();
    })
    .unwrap_err();
    assert_eq!(
        error,
        WireError::TooMany {
            field: "gossip.roles",
            count: MAX_ROLES + 1,
            max: MAX_ROLES
        }
    );
    let error = decode_changed(|g| {
        let start = g.addresses.len() as u32;
        g.addresses
            .extend((start..=MAX_ADDRESSES as u32).map(|i| address_data(i % 65_536, u64::from(i))));
    })
    .unwrap_err();
    assert!(matches!(
        error,
        WireError::TooMany {
            field: "gossip.addresses",
            ..
        }
    ));
    let error = decode_changed(|g| g.roles[0] = "r".repeat(MAX_STRING_BYTES + 1)).unwrap_err();
    assert!(matches!(
        error,
        WireError::StringTooLong {
            field: "gossip.roles",
            ..
        }
    ));
    let error =
        decode_changed(|g| g.addresses[0].host = "h".repeat(MAX_STRING_BYTES + 1)).unwrap_err();
    assert!(matches!(error, WireError::StringTooLong { .. }));
}

#[test]
fn duplicates_are_rejected() {
    let error = decode_changed(|g| g.addresses.push(g.addresses[0].clone())).unwrap_err();
    assert!(matches!(
        error,
        WireError::Duplicate {
            field: "gossip.addresses",
            ..
        }
    ));
    let error = decode_changed(|g| g.members.push(g.members[0].clone())).unwrap_err();
    assert!(matches!(
        error,
        WireError::Duplicate {
            field: "gossip.members",
            ..
        }
    ));
    let error = decode_changed(|g| g.seen.push(g.seen[0])).unwrap_err();
    assert!(matches!(
        error,
        WireError::Duplicate {
            field: "gossip.seen",
            ..
        }
    ));
    let error = decode_changed(|g| g.roles.push(g.roles[0].clone())).unwrap_err();
    assert!(matches!(
        error,
        WireError::Duplicate {
            field: "gossip.roles",
            ..
        }
    ));
    let error = decode_changed(|g| g.members[0].role_indexes.push(0)).unwrap_err();
    assert!(matches!(error, WireError::Duplicate { .. }));
    let error = decode_changed(|g| g.reachability.push(g.reachability[0].clone())).unwrap_err();
    assert!(matches!(
        error,
        WireError::Duplicate {
            field: "gossip.reachability",
            ..
        }
    ));
    let error = decode_changed(|g| {
        let entries = &mut g.version.as_mut().unwrap().entries;
        entries.push(entries[0].clone());
    })
    .unwrap_err();
    assert!(matches!(
        error,
        WireError::Duplicate {
            field: "gossip.version",
            ..
        }
    ));
}

#[test]
fn tombstoned_incarnations_elsewhere_are_rejected() {
    let error = decode_changed(|g| {
        let tombstoned = g.tombstones[0].address_index;
        g.members[0].address_index = tombstoned;
    })
    .unwrap_err();
    assert_eq!(
        error,
        WireError::Tombstoned {
            field: "gossip.members",
            node: node(9)
        }
    );
    let error = decode_changed(|g| g.seen.push(g.tombstones[0].address_index)).unwrap_err();
    assert!(matches!(
        error,
        WireError::Tombstoned {
            field: "gossip.seen",
            ..
        }
    ));
    let error = decode_changed(|g| {
        let key = ClockKeyData::AddressIndex(g.tombstones[0].address_index);
        g.version.as_mut().unwrap().entries.push(ClockEntryData {
            key: Some(key),
            version: 1,
        });
    })
    .unwrap_err();
    assert!(matches!(
        error,
        WireError::Tombstoned {
            field: "gossip.version",
            ..
        }
    ));
}

#[test]
fn reachability_about_non_members_is_rejected() {
    let error = decode_changed(|g| {
        g.reachability[0].observer_index = g.tombstones[0].address_index;
    })
    .unwrap_err();
    assert_eq!(
        error,
        WireError::NotAMember {
            field: "gossip.reachability.observer_index",
            node: node(9)
        }
    );
    let error = decode_changed(|g| {
        g.addresses.push(address_data(50, 50));
        g.reachability[0].subjects[0].subject_index = g.addresses.len() as u32 - 1;
    })
    .unwrap_err();
    assert!(matches!(error, WireError::NotAMember { .. }));
}

#[test]
fn missing_fields_are_rejected() {
    let error = decode_changed(|g| g.version = None).unwrap_err();
    assert_eq!(
        error,
        WireError::MissingField {
            field: "gossip.version"
        }
    );
    let error = decode_changed(|g| g.version.as_mut().unwrap().entries[0].key = None).unwrap_err();
    assert_eq!(
        error,
        WireError::MissingField {
            field: "gossip.version"
        }
    );

    let now = Instant::now();
    let empty_gossip = ClusterEnvelope {
        payload: Some(Payload::Gossip(GossipMessageData::default())),
    };
    let error = wire::decode(&empty_gossip.encode_to_vec(), now).unwrap_err();
    assert_eq!(
        error,
        WireError::MissingField {
            field: "gossip_message.from"
        }
    );
    let no_reason = ClusterEnvelope {
        payload: Some(Payload::JoinRejected(JoinRejectedData {
            from: Some(address_data(1, 1)),
            reason: None,
        })),
    };
    let error = wire::decode(&no_reason.encode_to_vec(), now).unwrap_err();
    assert_eq!(
        error,
        WireError::MissingField {
            field: "join_rejected.reason"
        }
    );
}

#[test]
fn unreferenced_table_entries_are_accepted() {
    // A newer version may refer to table entries from fields this version skips.
    let now = fixed_now();
    let decoded = decode_changed(|g| {
        g.addresses.push(address_data(60, 60));
        g.roles.push("unused".to_owned());
        g.app_versions.push("9".to_owned());
    });
    assert_eq!(decoded, Ok(sample_message(now)));
}

#[test]
fn index_clock_entries_match_table_order() {
    // A clock entry by index names the incarnation at that position in the table.
    let now = fixed_now();
    let decoded = decode_changed(|g| {
        let index = index_of(g, 1);
        let entries = &mut g.version.as_mut().unwrap().entries;
        let entry = entries
            .iter_mut()
            .find(|e| e.key == Some(ClockKeyData::AddressIndex(index)))
            .unwrap();
        entry.key = Some(ClockKeyData::Key(VClockNode::of(&node(1)).0));
    });
    assert_eq!(decoded, Ok(sample_message(now)));
}

#[test]
fn corrupt_bytes_report_protobuf_error() {
    let error = wire::decode_node_message(&[0x3a, 0x05, 0x01], Instant::now()).unwrap_err();
    assert!(matches!(error, WireError::Protobuf(_)), "{error}");
    assert!(error.to_string().contains("invalid protobuf encoding"));
}
