//! The node's metrics in the Prometheus text exposition format, version 0.0.4.
//!
//! Each metric family is written as a `# HELP` line, a `# TYPE` line and its samples,
//! `name{label="value",...} value`. Label values escape backslash, double quote and line
//! feed; help text escapes backslash and line feed, as the format requires.

use std::fmt::Write;

use akkord_actor::ActorSystem;
use akkord_cluster::member::MemberStatus;
use akkord_cluster::shell::ClusterState;
use akkord_remote::transport::TransportStats;
use akkord_remote::Lane;

/// Content type of the exposition text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Number of actors listed in `akkord_actor_mailbox_depth`.
pub const BUSIEST_MAILBOXES: usize = 10;

/// Every member status, for one `akkord_cluster_members` sample each.
const STATUSES: [MemberStatus; 9] = [
    MemberStatus::Joining,
    MemberStatus::WeaklyUp,
    MemberStatus::Up,
    MemberStatus::PreparingForShutdown,
    MemberStatus::ReadyForShutdown,
    MemberStatus::Leaving,
    MemberStatus::Exiting,
    MemberStatus::Down,
    MemberStatus::Removed,
];

/// The inputs of one scrape, read from the running node.
pub struct Snapshot<'a> {
    /// Cluster state in this node's view.
    pub cluster: &'a ClusterState,
    /// True when this node is the leader.
    pub is_leader: bool,
    /// Transport counters.
    pub transport: TransportStats,
    /// Dead letters since the actor system started.
    pub dead_letters: u64,
    /// Paths and queued user messages of the actors with the deepest mailboxes.
    pub mailboxes: Vec<(String, usize)>,
}

impl Snapshot<'_> {
    /// Reads the actor system's counters for a scrape of `cluster`.
    pub fn of<'a>(
        system: &ActorSystem,
        cluster: &'a ClusterState,
        is_leader: bool,
        transport: TransportStats,
    ) -> Snapshot<'a> {
        Snapshot {
            cluster,
            is_leader,
            transport,
            dead_letters: system.dead_letter_count(),
            mailboxes: system.busiest_mailboxes(BUSIEST_MAILBOXES),
        }
    }
}

/// Renders `snapshot` as exposition text.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut out = Exposition::default();
    render_cluster(&mut out, snapshot);
    render_transport(&mut out, &snapshot.transport);

    out.family(
        "akkord_actor_dead_letters_total",
        "counter",
        "Messages that could not be delivered to a local actor since the actor system started.",
    );
    out.sample(
        "akkord_actor_dead_letters_total",
        &[],
        snapshot.dead_letters as f64,
    );

    out.family(
        "akkord_actor_mailbox_depth",
        "gauge",
        "User messages queued in the mailboxes of the actors with the most queued messages.",
    );
    for (path, depth) in &snapshot.mailboxes {
        out.sample(
            "akkord_actor_mailbox_depth",
            &[("path", path)],
            *depth as f64,
        );
    }
    out.text
}

fn render_cluster(out: &mut Exposition, snapshot: &Snapshot<'_>) {
    let cluster = snapshot.cluster;
    out.family(
        "akkord_cluster_members",
        "gauge",
        "Cluster members by status, in this node's view.",
    );
    for status in STATUSES {
        let name = status.to_string();
        out.sample(
            "akkord_cluster_members",
            &[("status", &name)],
            cluster.count(status) as f64,
        );
    }

    out.family(
        "akkord_cluster_unreachable_members",
        "gauge",
        "Members that some observer reports as unreachable.",
    );
    out.sample(
        "akkord_cluster_unreachable_members",
        &[],
        cluster.unreachable.len() as f64,
    );

    out.family(
        "akkord_cluster_converged",
        "gauge",
        "1 when this node's view of the cluster state has converged, else 0.",
    );
    out.sample("akkord_cluster_converged", &[], flag(cluster.converged));

    out.family(
        "akkord_cluster_is_leader",
        "gauge",
        "1 when this node is the cluster leader, else 0.",
    );
    out.sample("akkord_cluster_is_leader", &[], flag(snapshot.is_leader));
}

fn render_transport(out: &mut Exposition, stats: &TransportStats) {
    let lanes = Lane::ALL;
    let per_lane: [(&str, &str, &[u64; 3]); 5] = [
        (
            "akkord_remote_messages_sent_total",
            "Messages written to peers, control messages included, per lane.",
            &stats.frames_sent,
        ),
        (
            "akkord_remote_messages_received_total",
            "Messages received from peers and decoded, control messages included, per lane.",
            &stats.frames_received,
        ),
        (
            "akkord_remote_messages_dropped_total",
            "Messages dropped because the lane's outbound queue was full, per lane.",
            &stats.dropped_queue_full,
        ),
        (
            "akkord_remote_connections_opened_total",
            "Connections this node opened to peers, per lane.",
            &stats.connections_opened,
        ),
        (
            "akkord_remote_connections_taken_total",
            "Connections peers opened that this node also sends on, per lane.",
            &stats.connections_taken,
        ),
    ];
    for (name, help, values) in per_lane {
        out.family(name, "counter", help);
        for lane in lanes {
            out.sample(name, &[("lane", lane.name())], values[lane.index()] as f64);
        }
    }

    out.family(
        "akkord_remote_messages_dropped_stale_total",
        "counter",
        "Messages dropped before writing because their peer incarnation was gone or quarantined.",
    );
    out.sample(
        "akkord_remote_messages_dropped_stale_total",
        &[],
        stats.dropped_stale as f64,
    );

    out.family(
        "akkord_remote_associations",
        "gauge",
        "Remote addresses this node keeps an association with.",
    );
    out.sample("akkord_remote_associations", &[], stats.associations as f64);

    out.family(
        "akkord_remote_inbound_rejected_total",
        "counter",
        "Inbound connections closed for a failed handshake or a malformed frame.",
    );
    out.sample(
        "akkord_remote_inbound_rejected_total",
        &[],
        stats.inbound_rejected as f64,
    );
}

fn flag(value: bool) -> f64 {
    if value {
        1.0
    } else {
        0.0
    }
}

/// Exposition text under construction.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }
}

/// Escapes a label value: `\` as `\\`, `"` as `\"` and line feed as `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a sample value; whole numbers print without a fraction.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escaped() {
        assert_eq!(escape_label_value("/user/a"), "/user/a");
        assert_eq!(escape_label_value("a\"b"), "a\\\"b");
        assert_eq!(escape_label_value("a\\b"), "a\\\\b");
        assert_eq!(escape_label_value("a\nb"), "a\\nb");
    }

    #[test]
    fn values_formatted() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn render_lists_every_family() {
        let cluster = ClusterState {
            converged: true,
            ..ClusterState::default()
        };
        let snapshot = Snapshot {
            cluster: &cluster,
            is_leader: true,
            transport: TransportStats {
                frames_sent: [1, 2, 3],
                connections_taken: [0, 4, 0],
                associations: 2,
                ..TransportStats::default()
            },
            dead_letters: 7,
            mailboxes: vec![("/user/q\"x".to_owned(), 12)],
        };
        let text = render(&snapshot);

        assert!(text.contains("akkord_cluster_members{status=\"Up\"} 0\n"));
        assert!(text.contains("akkord_cluster_converged 1\n"));
        assert!(text.contains("akkord_cluster_is_leader 1\n"));
        assert!(text.contains("akkord_remote_messages_sent_total{lane=\"ordinary\"} 2\n"));
        assert!(text.contains("akkord_actor_dead_letters_total 7\n"));
        assert!(text.contains("akkord_remote_associations 2\n"));
        assert!(text.contains("akkord_remote_connections_taken_total{lane=\"ordinary\"} 4\n"));
        assert!(text.contains("akkord_actor_mailbox_depth{path=\"/user/q\\\"x\"} 12\n"));
        assert!(text.contains("# TYPE akkord_actor_dead_letters_total counter\n"));
    }
}
