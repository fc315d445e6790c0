//! Property tests: every cluster message decodes to what was encoded.

mod wire_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_cluster::gossip::Gossip;
use akkord_cluster::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::membership::{ClusterMessage, JoinRejection, JoinRequest};
use akkord_cluster::node::NodeMessage;
use akkord_cluster::reachability::{Reachability, ReachabilityStatus};
use akkord_cluster::vclock::{VClockNode, VectorClock};
use akkord_cluster::wire;
use proptest::prelude::*;
use wire_support::{base_instant, clock, gossip_spec, node};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-z0-9.-]{0,8}"]
}

fn rejection() -> impl Strategy<Value = JoinRejection> {
    prop_oneof![
        (text(), text())
            .prop_map(|(expected, actual)| JoinRejection::SystemNameMismatch { expected, actual }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(actual, min, max)| {
            JoinRejection::IncompatibleProtocolVersion {
                actual,
                min_supported: min,
                max_supported: max,
            }
        }),
        node().prop_map(|node| JoinRejection::IncarnationRemoved { node }),
    ]
}

fn join_request() -> impl Strategy<Value = JoinRequest> {
    (
        node(),
        proptest::collection::btree_set(text(), 0..5),
        text(),
        text(),
        any::<u32>(),
    )
        .prop_map(
            |(node, roles, app_version, system_name, protocol_version)| JoinRequest {
                node,
                roles,
                app_version,
                system_name,
                protocol_version,
            },
        )
}

/// Membership messages without a gossip state, whose encoding does not depend on `now`.
fn stateless_message() -> impl Strategy<Value = ClusterMessage> {
    prop_oneof![
        node().prop_map(|from| ClusterMessage::InitJoin { from }),
        node().prop_map(|from| ClusterMessage::InitJoinAck { from }),
        node().prop_map(|from| ClusterMessage::InitJoinNack { from }),
        join_request().prop_map(ClusterMessage::Join),
        (node(), rejection())
            .prop_map(|(from, reason)| ClusterMessage::JoinRejected { from, reason }),
        (node(), node(), clock(), any::<u64>()).prop_map(|(from, to, version, seen_digest)| {
            ClusterMessage::GossipStatus {
                from,
                to,
                version,
                seen_digest,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stateless_messages_round_trip(message in stateless_message()) {
        let now = Instant::now();
        let decoded = wire::decode(&wire::encode(&message, now), now).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn gossip_round_trips_with_tombstone_ages(
        spec in gossip_spec(),
        from in node(),
        to in node(),
        transit_millis in 0u64..10_000,
    ) {
        let sent_at = base_instant();
        let received_at = sent_at + Duration::from_millis(transit_millis);
        let gossip = spec.build(sent_at);
        let message = ClusterMessage::Gossip { from: from.clone(), to: to.clone(), gossip: Arc::new(gossip.clone()) };

        let decoded = wire::decode(&wire::encode(&message, sent_at), received_at).unwrap();

        // Every tombstone keeps its age, so its removal time moves by the transit time.
        let expected = spec.build(received_at);
        let ClusterMessage::Gossip { from: decoded_from, to: decoded_to, gossip: decoded_gossip } = decoded else {
            panic!("decoded another kind: {decoded:?}");
        };
        prop_assert_eq!(decoded_from, from);
        prop_assert_eq!(decoded_to, to);
        prop_assert_eq!(decoded_gossip.members().collect::<Vec<_>>(), gossip.members().collect::<Vec<_>>());
        prop_assert_eq!(decoded_gossip.overview(), gossip.overview());
        prop_assert_eq!(decoded_gossip.version(), gossip.version());
        prop_assert_eq!(decoded_gossip.seen_digest(), gossip.seen_digest());
        for ((node, removed_at), (decoded_node, decoded_removed_at)) in
            gossip.tombstones().iter().zip(decoded_gossip.tombstones())
        {
            prop_assert_eq!(node, decoded_node);
            prop_assert_eq!(*decoded_removed_at - *removed_at, received_at - sent_at);
        }
        prop_assert_eq!(decoded_gossip.tombstones().len(), gossip.tombstones().len());
        prop_assert_eq!(&*decoded_gossip, &expected);
    }

    #[test]
    fn welcome_round_trips(spec in gossip_spec(), from in node()) {
        let now = base_instant();
        let message = ClusterMessage::Welcome { from, gossip: Arc::new(spec.build(now)) };
        let decoded = wire::decode(&wire::encode(&message, now), now).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn heartbeats_round_trip(from in node(), to in node(), sequence_nr in any::<u64>()) {
        let request = HeartbeatRequest { from: from.clone(), to, sequence_nr };
        let response = HeartbeatResponse { from, sequence_nr };
        let decoded_request =
            wire::decode_heartbeat_request(&wire::encode_heartbeat_request(&request)).unwrap();
        let decoded_response =
            wire::decode_heartbeat_response(&wire::encode_heartbeat_response(&response)).unwrap();
        prop_assert_eq!(decoded_request, request);
        prop_assert_eq!(decoded_response, response);
    }

    #[test]
    fn node_messages_round_trip(message in stateless_message(), from in node(), sequence_nr in any::<u64>()) {
        let now = Instant::now();
        let messages = [
            NodeMessage::Membership(message),
            NodeMessage::HeartbeatRequest(HeartbeatRequest { from: from.clone(), to: from.clone(), sequence_nr }),
            NodeMessage::HeartbeatResponse(HeartbeatResponse { from, sequence_nr }),
        ];
        for message in messages {
            let decoded = wire::decode_node_message(&wire::encode_node_message(&message, now), now).unwrap();
            prop_assert_eq!(decoded, message);
        }
    }
}

fn node_at(port: u16) -> UniqueAddress {
    UniqueAddress::new(
        Address::new("sys", "127.0.0.1", port).unwrap(),
        u64::from(port),
    )
}

fn gossip_with_tombstone(removed_at: Instant) -> ClusterMessage {
    let mut gossip = Gossip::from_parts(
        [],
        BTreeSet::new(),
        Default::default(),
        Default::default(),
        Default::default(),
    );
    gossip.remove_member(&node_at(9), removed_at);
    ClusterMessage::Gossip {
        from: node_at(1),
        to: node_at(2),
        gossip: Arc::new(gossip),
    }
}

fn removal_time(message: &ClusterMessage) -> Instant {
    let ClusterMessage::Gossip { gossip, .. } = message else {
        panic!("not a gossip: {message:?}");
    };
    gossip.tombstones()[&node_at(9)]
}

#[test]
fn tombstone_age_truncates_to_millis() {
    let now = base_instant();
    let removed_at = now - Duration::from_micros(2_700);
    let message = gossip_with_tombstone(removed_at);
    let decoded = wire::decode(&wire::encode(&message, now), now).unwrap();
    let decoded_removed_at = removal_time(&decoded);
    assert_eq!(now - decoded_removed_at, Duration::from_millis(2));
    assert!(decoded_removed_at - removed_at < Duration::from_millis(1));
}

#[test]
fn tombstone_from_future_has_age_zero() {
    let now = base_instant();
    let message = gossip_with_tombstone(now + Duration::from_secs(5));
    let later = now + Duration::from_secs(1);
    let decoded = wire::decode(&wire::encode(&message, now), later).unwrap();
    assert_eq!(removal_time(&decoded), later);
}

#[test]
fn tombstone_of_largest_age_decodes() {
    // Rust's `Instant` on Linux can go back this far. Other platforms cannot, so the decoder
    // clamps to the oldest instant they represent. Neither may panic.
    let now = Instant::now();
    let mut bytes = wire::encode(&gossip_with_tombstone(now), now);
    let envelope =
        <wire::proto::ClusterEnvelope as prost::Message>::decode(bytes.as_slice()).unwrap();
    let Some(wire::proto::Payload::Gossip(mut data)) = envelope.payload else {
        panic!("not a gossip payload");
    };
    data.gossip.as_mut().unwrap().tombstones[0].age_millis = u64::MAX;
    bytes = prost::Message::encode_to_vec(&wire::proto::ClusterEnvelope {
        payload: Some(wire::proto::Payload::Gossip(data)),
    });
    let decoded = wire::decode(&bytes, now).unwrap();
    assert!(removal_time(&decoded) < now);
}

#[test]
fn generated_states_cover_every_part() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let now = base_instant();
    let (mut tombstones, mut records, mut seen, mut clock_entries, mut roles) = (0, 0, 0, 0, 0);
    for _ in 0..200 {
        let gossip = gossip_spec()
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .build(now);
        tombstones += gossip.tombstones().len();
        records += gossip.reachability().records().count();
        seen += gossip.overview().seen.len();
        clock_entries += gossip.version().len();
        roles += gossip.members().map(|m| m.roles.len()).sum::<usize>();
    }
    assert!(tombstones > 100, "tombstones: {tombstones}");
    assert!(records > 100, "reachability records: {records}");
    assert!(seen > 100, "seen entries: {seen}");
    assert!(clock_entries > 100, "clock entries: {clock_entries}");
    assert!(roles > 100, "member roles: {roles}");
}

#[test]
fn gossip_built_by_operations_round_trips() {
    let now = base_instant();
    let mut gossip = Gossip::new();
    for port in 1..=6 {
        let roles = ["worker".to_owned()].into();
        gossip.put_member(Member::joining(node_at(port), roles, "3.1".to_owned()));
        gossip.increment(&node_at(port));
    }
    gossip.put_member(
        Member::joining(node_at(1), BTreeSet::new(), "3.1".to_owned())
            .with_status(MemberStatus::Up),
    );
    gossip.set_reachability(
        gossip
            .reachability()
            .unreachable(&node_at(1), &node_at(2))
            .terminated(&node_at(3), &node_at(2))
            .unreachable(&node_at(3), &node_at(4))
            .reachable(&node_at(3), &node_at(4)),
    );
    gossip.remove_member(&node_at(5), now - Duration::from_secs(30));
    gossip.increment(&node_at(1));
    gossip.mark_seen(&node_at(2));
    gossip.mark_seen(&node_at(6));
    let message = ClusterMessage::Welcome {
        from: node_at(1),
        gossip: Arc::new(gossip),
    };

    let decoded = wire::decode(&wire::encode(&message, now), now).unwrap();

    assert_eq!(decoded, message);
}

#[test]
fn from_parts_restores_invariants() {
    let now = base_instant();
    let removed = node_at(5);
    let members =
        [1, 2, 5].map(|port| Member::joining(node_at(port), BTreeSet::new(), "1".to_owned()));
    let seen: BTreeSet<UniqueAddress> = [node_at(1), removed.clone()].into();
    let reachability = Reachability::new()
        .unreachable(&node_at(1), &node_at(2))
        .unreachable(&node_at(1), &removed)
        .unreachable(&node_at(7), &node_at(1));
    let clock: VectorClock = [
        (VClockNode::of(&node_at(1)), 2),
        (VClockNode::of(&removed), 3),
    ]
    .into_iter()
    .collect();
    let tombstones = [(removed.clone(), now)].into();

    let gossip = Gossip::from_parts(members, seen, reachability, clock, tombstones);

    assert!(!gossip.has_member(&removed));
    assert_eq!(gossip.member_count(), 2);
    assert!(!gossip.seen_by(&removed));
    assert!(gossip.seen_by(&node_at(1)));
    assert_eq!(gossip.seen_digest(), VClockNode::of(&node_at(1)).0);
    let records: Vec<_> = gossip.reachability().records().collect();
    assert_eq!(
        records,
        [(&node_at(1), &node_at(2), ReachabilityStatus::Unreachable)]
    );
    assert_eq!(gossip.version().get(VClockNode::of(&removed)), 0);
    assert_eq!(gossip.version().get(VClockNode::of(&node_at(1))), 2);
}
