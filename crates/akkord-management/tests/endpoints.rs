//! The management endpoints over real HTTP against in-process cluster nodes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use akkord_actor::{Actor, ActorResult, Context, Props};

use akkord_management::client::{format_members, ClientError, ManagementClient};
use akkord_management::{ManagementError, ManagementServer, ManagementSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use common::{eventually, raw_request, two_node_cluster, TestNode, CLUSTER_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_lists_both_nodes_up() {
    let (first, second) = two_node_cluster("mgmt-members").await;

    let members = second.client.members().await.unwrap();
    assert_eq!(members.self_node, second.address().to_string());
    assert_eq!(
        members.self_uid,
        second.remote.local_address().uid.to_string()
    );
    assert_eq!(members.members.len(), 2);
    let addresses: BTreeSet<&str> = members.members.iter().map(|m| m.address.as_str()).collect();
    assert!(addresses.contains(first.address().to_string().as_str()));
    assert!(addresses.contains(second.address().to_string().as_str()));
    for member in &members.members {
        assert_eq!(member.status, "Up", "{member:?}");
        assert!(member.reachable, "{member:?}");
        assert!(member.up_number.is_some(), "{member:?}");
    }
    let leader = members.leader.clone().expect("a leader");
    assert!(addresses.contains(leader.as_str()), "leader {leader}");
    assert!(members.oldest.is_some());
    assert!(members.unreachable.is_empty());

    let short_form = format!("127.0.0.1:{}", first.address().port());
    let member = second.client.member(&short_form).await.unwrap();
    assert_eq!(member.address, first.address().to_string());
    assert_eq!(member.status, "Up");
    match second.client.member("127.0.0.1:1").await {
        Err(ClientError::Status { status, .. }) => assert_eq!(status, 404),
        other => panic!("expected 404, got {other:?}"),
    }

    let table = format_members(&members);
    assert!(table.contains(&first.address().to_string()), "{table}");
    assert!(table.contains(&second.address().to_string()), "{table}");

    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_up() {
    let node = TestNode::start("mgmt-ready", Vec::new()).await;

    let (status, body) = node.client.get("/health/ready").await.unwrap();
    assert_eq!(status, 503, "{body:?}");
    assert!(String::from_utf8_lossy(&body).contains("not-ready"));
    let (status, _) = node.client.get("/health/alive").await.unwrap();
    assert_eq!(status, 200);

    node.cluster.join(node.address()).unwrap();
    eventually("ready returns 200", CLUSTER_TIMEOUT, || async {
        let (status, _) = node.client.get("/health/ready").await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    let (_, body) = node.client.get("/health/ready").await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["member_status"], "Up");
    let (status, body) = node.client.get("/health/alive").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["status"],
        "alive"
    );

    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_removes_second_node() {
    let (first, second) = two_node_cluster("mgmt-leave").await;
    let leaving = second.address();
    let short_form = format!("127.0.0.1:{}", leaving.port());

    let message = first.client.leave(&short_form).await.unwrap();
    assert_eq!(message, format!("leaving {leaving}"));

    // The member moves through Leaving and Exiting and is then removed.
    eventually("second node leaves", CLUSTER_TIMEOUT, || async {
        let members = first.client.members().await.ok()?;
        match members.member(&leaving.to_string()) {
            None => Some(()),
            Some(member) => {
                assert!(
                    ["Up", "Leaving", "Exiting"].contains(&member.status.as_str()),
                    "unexpected status {member:?}"
                );
                None
            }
        }
    })
    .await;
    eventually("removed node stops", CLUSTER_TIMEOUT, || async {
        second.system.is_terminated().then_some(())
    })
    .await;
    let (status, _) = second.client.get("/health/alive").await.unwrap();
    assert_eq!(status, 503);

    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_marks_node_down() {
    let (first, second) = two_node_cluster("mgmt-down").await;
    let downed = second.address();

    let message = first.client.down(&downed.to_string()).await.unwrap();
    assert_eq!(message, format!("downing {downed}"));

    // The leader removes a Down member on a later leader tick, so a view without it also
    // shows that it was downed.
    let seen_status = eventually("second node is Down", CLUSTER_TIMEOUT, || async {
        let members = first.client.members().await.ok()?;
        match members.member(&downed.to_string()) {
            Some(member) if member.status == "Down" => Some("Down"),
            None => Some("removed"),
            Some(_) => None,
        }
    })
    .await;
    assert!(["Down", "removed"].contains(&seen_status));

    first.stop().await;
    second.stop().await;
}

/// The downed node is the one with the lower address: if it never learned that it was
/// downed, its resolver would keep its own side and it would stay Up alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downed_node_stops_being_ready() {
    let (first, second) = two_node_cluster("mgmt-down-ready").await;
    let (downer, downed) = if first.address() < second.address() {
        (&second, &first)
    } else {
        (&first, &second)
    };
    downer
        .client
        .down(&downed.address().to_string())
        .await
        .unwrap();
    eventually("downed node is not ready", CLUSTER_TIMEOUT, || async {
        let (status, _) = downed.client.get("/health/ready").await.ok()?;
        (status == 503).then_some(())
    })
    .await;
    // A node that learned it was downed shuts its actor system down.
    tokio::time::timeout(CLUSTER_TIMEOUT, downed.system.when_terminated())
        .await
        .expect("the downed node shuts down");

    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_rejected() {
    let node = TestNode::start("mgmt-bad", Vec::new()).await;
    node.cluster.join(node.address()).unwrap();
    eventually("node is Up", CLUSTER_TIMEOUT, || async {
        let (status, _) = node.client.get("/health/ready").await.ok()?;
        (status == 200).then_some(())
    })
    .await;

    for address in [
        "not an address",
        "localhost",
        "akkord://mgmt-bad@127.0.0.1:http",
        "127.0.0.1:70000",
    ] {
        for result in [
            node.client.leave(address).await,
            node.client.down(address).await,
        ] {
            match result {
                Err(ClientError::Status { status, message }) => {
                    assert_eq!(status, 400, "{address}: {message}");
                    assert!(message.contains(address), "{address}: {message}");
                    assert!(
                        message.contains("expected") || message.contains("number"),
                        "{message}"
                    );
                }
                other => panic!("{address}: expected 400, got {other:?}"),
            }
        }
    }

    let unknown = "akkord://mgmt-bad@127.0.0.1:1";
    for result in [
        node.client.leave(unknown).await,
        node.client.down(unknown).await,
        node.client.down("127.0.0.1:1").await,
    ] {
        match result {
            Err(ClientError::Status { status, message }) => {
                assert_eq!(status, 404, "{message}");
                assert!(message.contains(unknown), "{message}");
            }
            other => panic!("expected 404, got {other:?}"),
        }
    }

    // Invalid UTF-8 after percent-decoding is rejected as a bad address too.
    let (status, text) = raw_request(
        node.endpoint(),
        b"POST /cluster/members/%FF%FE/leave HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, Some(400), "{text}");
    assert!(text.contains("\"error\""), "{text}");

    let (status, text) = raw_request(
        node.endpoint(),
        b"GET /cluster/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, Some(404), "{text}");
    assert!(text.contains("/cluster/nodes"), "{text}");

    let (status, _) = raw_request(
        node.endpoint(),
        b"GET /cluster/members/127.0.0.1:1/down HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, Some(405));

    // The node is still a member after all of that.
    let members = node.client.members().await.unwrap();
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].status, "Up");

    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_keeps_server_running() {
    let node = TestNode::start("mgmt-garbage", Vec::new()).await;

    let (status, _) = raw_request(node.endpoint(), b"\x00\x01garbage\r\n\r\n").await;
    assert!(status.is_none() || status == Some(400), "{status:?}");

    let long_header = format!(
        "GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _) = raw_request(node.endpoint(), long_header.as_bytes()).await;
    assert!(
        status.is_none() || status == Some(431) || status == Some(400),
        "{status:?}"
    );

    let body = "x".repeat(akkord_management::MAX_BODY_BYTES * 4);
    let request = format!(
        "POST /cluster/members/127.0.0.1:1/leave HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _) = raw_request(node.endpoint(), request.as_bytes()).await;
    assert!(status.is_some_and(|code| code >= 400), "{status:?}");

    let (status, _) = node.client.get("/health/alive").await.unwrap();
    assert_eq!(status, 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_closed() {
    let node = TestNode::start("mgmt-slow", Vec::new()).await;
    let mut stream = TcpStream::connect(node.endpoint()).await.unwrap();
    stream
        .write_all(b"GET /health/alive HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    // The headers never end, so the server closes the connection after its header read
    // timeout, with a 408 or without a response.
    let limit = akkord_management::HEADER_READ_TIMEOUT + Duration::from_secs(5);
    let mut response = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "connection still open after {limit:?}");
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    let (status, _) = node.client.get("/health/alive").await.unwrap();
    assert_eq!(status, 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let (first, second) = two_node_cluster("mgmt-metrics").await;

    let text = first.client.metrics().await.unwrap();
    let families = parse_exposition(&text);
    for name in [
        "akkord_cluster_members",
        "akkord_cluster_unreachable_members",
        "akkord_cluster_converged",
        "akkord_cluster_is_leader",
        "akkord_remote_messages_sent_total",
        "akkord_remote_messages_received_total",
        "akkord_remote_messages_dropped_total",
        "akkord_remote_messages_dropped_stale_total",
        "akkord_remote_inbound_rejected_total",
        "akkord_remote_associations",
        "akkord_actor_dead_letters_total",
        "akkord_actor_mailbox_depth",
    ] {
        assert!(
            families.contains_key(name),
            "metric {name} missing:\n{text}"
        );
    }
    let up = sample(&families, "akkord_cluster_members", "status=\"Up\"");
    assert_eq!(up, 2.0, "{text}");
    let unreachable = sample(&families, "akkord_cluster_unreachable_members", "");
    assert_eq!(unreachable, 0.0);
    // The other node is the one remote address this node talks to.
    let associations = sample(&families, "akkord_remote_associations", "");
    assert_eq!(associations, 1.0, "{text}");
    // Heartbeats and gossip flow on the control lane between the two nodes.
    let control_sent = sample(
        &families,
        "akkord_remote_messages_sent_total",
        "lane=\"control\"",
    );
    assert!(control_sent > 0.0, "{text}");
    let control_received = sample(
        &families,
        "akkord_remote_messages_received_total",
        "lane=\"control\"",
    );
    assert!(control_received > 0.0, "{text}");

    // An actor blocked in its first message keeps the rest queued in its mailbox.
    let gate = Arc::new(Semaphore::new(0));
    let gated = first
        .system
        .spawn(
            "gated",
            Props::new({
                let gate = gate.clone();
                move || Gated(gate.clone())
            }),
        )
        .unwrap();
    for n in 0..100 {
        gated.tell(n);
    }
    let depth = eventually("mailbox depth listed", CLUSTER_TIMEOUT, || async {
        let text = first.client.metrics().await.ok()?;
        let families = parse_exposition(&text);
        families
            .get("akkord_actor_mailbox_depth")?
            .get("path=\"/user/gated\"")
            .copied()
    })
    .await;
    assert!((1.0..100.0).contains(&depth), "depth {depth}");
    gate.add_permits(100);

    let (_, head) = raw_request(
        first.endpoint(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );

    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_shown_unreachable() {
    let (first, second) = two_node_cluster("mgmt-crash").await;
    let crashed = second.address().to_string();
    second.stop().await;

    let members = eventually("crashed node unreachable", CLUSTER_TIMEOUT, || async {
        let members = first.client.members().await.ok()?;
        members
            .unreachable
            .iter()
            .any(|entry| entry.address == crashed)
            .then_some(members)
    })
    .await;
    let member = members
        .member(&crashed)
        .expect("still a member while unreachable");
    assert!(!member.reachable);
    if member.status == "Up" {
        assert!(!members.converged);
        assert!(
            members
                .convergence_blockers
                .iter()
                .any(|blocker| blocker.address == crashed
                    && blocker.reason == "unreachable-not-downed"),
            "{members:?}"
        );
    }
    let table = format_members(&members);
    assert!(table.contains("unreachable:"), "{table}");

    // What follows depends on the addresses: in a cluster of two, the resolver keeps the
    // side with the lowest address, which may be the crashed one.
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_names_address() {
    let node = TestNode::start("mgmt-port", Vec::new()).await;
    let bound_address = node.endpoint();

    let again = ManagementServer::start(
        ManagementSettings {
            bind: bound_address,
        },
        node.cluster.clone(),
        node.remote.clone(),
        node.system.clone(),
    )
    .await;
    match again {
        Err(error @ ManagementError::Bind { .. }) => {
            assert!(
                error.to_string().contains(&bound_address.to_string()),
                "{error}"
            );
        }
        other => panic!("expected a bind error, got {other:?}"),
    }

    node.stop().await;
    let client = ManagementClient::new(bound_address).with_timeout(Duration::from_secs(5));
    assert!(
        matches!(client.members().await, Err(ClientError::Connect { .. })),
        "server still accepts after shutdown"
    );
}

/// Waits for a permit before handling each message.
struct Gated(Arc<Semaphore>);

impl Actor for Gated {
    type Msg = u32;

    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u32) -> ActorResult {
        if let Ok(permit) = self.0.acquire().await {
            permit.forget();
        }
        Ok(())
    }
}

/// Samples of one metric family: label text (between the braces) to value.
type Family = BTreeMap<String, f64>;

/// Parses exposition text, checking that every family has HELP and TYPE before its samples
/// and that every sample line is `name{labels} value` with a float value.
fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut typed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(!help.is_empty(), "empty HELP: {line}");
            helped.insert(name.to_owned());
            families.entry(name.to_owned()).or_default();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type: {line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value is not a float: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (
                name,
                labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels not closed: {line}")),
            ),
            None => (series, ""),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "invalid metric name: {line}"
        );
        assert!(
            helped.contains(name) && typed.contains(name),
            "sample before HELP and TYPE: {line}"
        );
        check_labels(labels, line);
        families
            .get_mut(name)
            .expect("family listed by HELP")
            .insert(labels.to_owned(), value);
    }
    families
}

/// Checks `label="value",...` with escapes inside the quoted values.
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without a quoted value: {line}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "invalid label name: {line}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let escaped = chars.next().map(|(_, c)| c);
                    assert!(
                        matches!(escaped, Some('\\' | '"' | 'n')),
                        "invalid escape: {line}"
                    );
                }
                Some((index, '"')) => break index,
                Some(_) => {}
                None => panic!("label value not closed: {line}"),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn sample(families: &BTreeMap<String, Family>, name: &str, labels: &str) -> f64 {
    *families
        .get(name)
        .and_then(|family| family.get(labels))
        .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
}
