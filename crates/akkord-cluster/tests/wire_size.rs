//! Encoded sizes of cluster messages, and how well `wire_size` estimates them.
//!
//! Run with `--nocapture` to print the figures.

mod wire_support;

use std::time::Instant;

use akkord_cluster::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use akkord_cluster::membership::ClusterMessage;
use akkord_cluster::node::NodeMessage;
use akkord_cluster::wire;
use wire_support::{gossip_message, typical_gossip};

/// Bounds of estimate / encoded size that the estimates must stay within.
const MIN_RATIO: f64 = 0.9;
const MAX_RATIO: f64 = 1.35;

struct Sample {
    name: String,
    encoded: usize,
    estimated: usize,
}

impl Sample {
    fn ratio(&self) -> f64 {
        self.estimated as f64 / self.encoded as f64
    }
}

fn samples(now: Instant) -> Vec<Sample> {
    let mut samples = Vec::new();
    for size in [5, 100, 1000] {
        for full_clock in [false, true] {
            let gossip = typical_gossip(size, full_clock, now);
            let clock = if full_clock {
                "every member"
            } else {
                "every tenth member"
            };
            let full = gossip_message(&gossip);
            let ClusterMessage::Gossip { from, to, .. } = &full else {
                unreachable!("gossip_message builds a gossip");
            };
            let status = ClusterMessage::GossipStatus {
                from: from.clone(),
                to: to.clone(),
                version: gossip.version().clone(),
                seen_digest: gossip.seen_digest(),
            };
            for (kind, message) in [("gossip", &full), ("gossip status", &status)] {
                samples.push(Sample {
                    name: format!("{kind}, {size} members, clock entries of {clock}"),
                    encoded: wire::encode(message, now).len(),
                    estimated: message.wire_size(),
                });
            }
        }
    }
    let gossip = typical_gossip(5, false, now);
    let mut nodes = gossip.members().map(|m| m.unique_address.clone());
    let (from, to) = (nodes.next().unwrap(), nodes.next().unwrap());
    let heartbeats = [
        NodeMessage::HeartbeatRequest(HeartbeatRequest {
            from: from.clone(),
            to,
            sequence_nr: 1_000,
        }),
        NodeMessage::HeartbeatResponse(HeartbeatResponse {
            from,
            sequence_nr: 1_000,
        }),
    ];
    for message in heartbeats {
        samples.push(Sample {
            name: format!("{message:?}").split('(').next().unwrap().to_owned(),
            encoded: wire::encode_node_message(&message, now).len(),
            estimated: message.wire_size(),
        });
    }
    samples
}

#[test]
fn encoded_sizes_match_estimates() {
    let now = Instant::now();
    println!(
        "{:<62} {:>9} {:>9} {:>6}",
        "message", "encoded", "estimate", "ratio"
    );
    let samples = samples(now);
    for sample in &samples {
        println!(
            "{:<62} {:>9} {:>9} {:>6.2}",
            sample.name,
            sample.encoded,
            sample.estimated,
            sample.ratio()
        );
    }
    for sample in &samples {
        assert!(
            (MIN_RATIO..=MAX_RATIO).contains(&sample.ratio()),
            "{}: estimate {} is {:.2} times the encoded size {}",
            sample.name,
            sample.estimated,
            sample.ratio(),
            sample.encoded
        );
    }
}

#[test]
fn gossip_size_grows_linearly_with_members() {
    let now = Instant::now();
    let size =
        |members| wire::encode(&gossip_message(&typical_gossip(members, true, now)), now).len();
    let per_member_100 = size(100) as f64 / 100.0;
    let per_member_1000 = size(1000) as f64 / 1000.0;
    println!("bytes per member: {per_member_100:.1} at 100 members, {per_member_1000:.1} at 1000");
    assert!(per_member_1000 < per_member_100 * 1.2);
    assert!(per_member_1000 > per_member_100 * 0.8);
}
