//! Transport tests on loopback: lanes, batching, system messages, quarantine, restarts,
//! timeouts, the removal of unused associations, and writes across a late quarantine.

mod common;

use std::time::Duration;

use akkord_actor::address::UniqueAddress;
use akkord_remote::frame::encode_preamble;
use akkord_remote::transport::{Destination, SendError, TransportEvent};
use akkord_remote::Lane;
use common::{envelope, lines_with, logs, settings, wait_until, warn_lines_with, Node};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn nodes_exchange_messages_both_ways() {
    let mut a = Node::start(settings()).await;
    let mut b = Node::start(settings()).await;
    let to_b = Destination::Address(b.address().address);
    a.transport
        .send(&to_b, Lane::Ordinary, &envelope(7, "greeting", b"hi"))
        .unwrap();
    let received = b.next().await;
    assert_eq!(received.from, a.address());
    assert_eq!(received.lane, Lane::Ordinary);
    assert_eq!(received.envelope.recipient, 7);
    assert_eq!(&received.envelope.payload[..], b"hi");

    let to_a = Destination::Node(a.address());
    b.transport
        .send(&to_a, Lane::Control, &envelope(8, "reply", b"ho"))
        .unwrap();
    let received = a.next().await;
    assert_eq!(received.from, b.address());
    assert_eq!(received.lane, Lane::Control);
    assert!(!received.system);
    assert_eq!(received.envelope.manifest, "reply");
}

#[tokio::test]
async fn small_messages_share_writes_in_order() {
    let a = Node::start(settings()).await;
    let mut b = Node::start(settings()).await;
    let to_b = Destination::Node(b.address());
    let count = 2000u64;
    for i in 0..count {
        a.transport
            .send(&to_b, Lane::Ordinary, &envelope(i, "n", &i.to_be_bytes()))
            .unwrap();
    }
    for i in 0..count {
        assert_eq!(b.next().await.envelope.recipient, i);
    }
    let stats = a.transport.stats();
    let lane = Lane::Ordinary.index();
    assert_eq!(stats.frames_sent[lane], count);
    assert!(
        stats.batches_sent[lane] < count / 4,
        "{} writes for {count} frames",
        stats.batches_sent[lane]
    );
}

#[tokio::test]
async fn large_lane_carries_big_messages() {
    let a = Node::start(settings()).await;
    let mut b = Node::start(settings()).await;
    let to_b = Destination::Node(b.address());
    let big = vec![7u8; 1024 * 1024];
    let error = a
        .transport
        .send(&to_b, Lane::Ordinary, &envelope(1, "blob", &big))
        .unwrap_err();
    assert!(matches!(
        error,
        SendError::FrameTooLarge {
            lane: Lane::Ordinary,
            ..
        }
    ));
    a.transport
        .send(&to_b, Lane::Large, &envelope(1, "blob", &big))
        .unwrap();
    let received = b.next().await;
    assert_eq!(received.lane, Lane::Large);
    assert_eq!(received.envelope.payload.len(), big.len());
}

#[tokio::test]
async fn system_messages_arrive_once_in_order() {
    let a = Node::start(settings()).await;
    let mut b = Node::start(settings()).await;
    for i in 0..300 {
        a.transport
            .send_system(&b.address(), envelope(i, "watch", b""))
            .unwrap();
    }
    for i in 0..300 {
        let received = b.next().await;
        assert!(received.system);
        assert_eq!(received.envelope.recipient, i);
    }
    assert!(b.stays_empty(Duration::from_millis(1500)).await);
}

#[tokio::test]
async fn heartbeat_gets_response() {
    let a = Node::start(settings()).await;
    let b = Node::start(settings()).await;
    a.transport
        .send_heartbeat(&Destination::Node(b.address()), 42)
        .unwrap();
    let collector = a.collector.clone();
    wait_until("heartbeat response arrives", || {
        !collector.heartbeats.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(collector.heartbeats.lock().unwrap()[0], (b.address(), 42));
}

#[tokio::test]
async fn quarantine_stops_traffic_until_restart() {
    logs();
    let mut a = Node::start(settings()).await;
    let b = Node::start(settings()).await;
    let b_address = b.address();
    b.transport
        .send(
            &Destination::Node(a.address()),
            Lane::Ordinary,
            &envelope(1, "m", b""),
        )
        .unwrap();
    a.next().await;

    a.transport.quarantine(&b_address, "test decided so");
    assert!(a.transport.is_quarantined(&b_address));
    assert_eq!(
        a.transport.send(
            &Destination::Node(b_address.clone()),
            Lane::Ordinary,
            &envelope(1, "m", b"")
        ),
        Err(SendError::Quarantined(b_address.clone()))
    );
    let events = a.collector.events.lock().unwrap().clone();
    assert!(events.contains(&TransportEvent::Quarantined {
        peer: b_address.clone(),
        reason: "test decided so".into()
    }));

    // The quarantined incarnation's messages no longer arrive. The first ones may be written
    // to the connection that A is closing; later ones need a new handshake, which A rejects.
    let port = b_address.address.port().to_string();
    let to_a = Destination::Node(a.address());
    wait_until("rejection is logged", || {
        let _ = b
            .transport
            .send(&to_a, Lane::Ordinary, &envelope(2, "m", b""));
        !warn_lines_with(&["rejected inbound handshake", "is quarantined", &port]).is_empty()
    })
    .await;
    assert!(a.stays_empty(Duration::from_millis(300)).await);

    // A new incarnation at the same address is accepted.
    b.transport.shutdown().await;
    drop(b);
    let mut restarted = settings();
    restarted.bind = format!("127.0.0.1:{port}").parse().unwrap();
    let b2 = Node::start(restarted).await;
    assert_ne!(b2.address().uid, b_address.uid);
    b2.transport
        .send(
            &Destination::Node(a.address()),
            Lane::Ordinary,
            &envelope(3, "m", b""),
        )
        .unwrap();
    let received = a.next().await;
    assert_eq!(received.from, b2.address());
    assert_eq!(received.envelope.recipient, 3);
}

#[tokio::test]
async fn restart_replaces_incarnation() {
    let a = Node::start(settings()).await;
    let b = Node::start(settings()).await;
    let old = b.address();
    let port = old.address.port();
    b.transport.shutdown().await;
    drop(b);
    let mut restarted = settings();
    restarted.bind = format!("127.0.0.1:{port}").parse().unwrap();
    let mut b2 = Node::start(restarted).await;

    // A message for the old incarnation reveals the new one and is dropped.
    a.transport
        .send(
            &Destination::Node(old.clone()),
            Lane::Ordinary,
            &envelope(1, "m", b""),
        )
        .unwrap();
    let collector = a.collector.clone();
    let new_uid = b2.address().uid;
    wait_until("incarnation change is reported", || {
        collector
            .events
            .lock()
            .unwrap()
            .contains(&TransportEvent::IncarnationChanged {
                address: old.address.clone(),
                old: old.uid,
                new: new_uid,
            })
    })
    .await;
    wait_until("stale message is dropped", || {
        a.transport.stats().dropped_stale >= 1
    })
    .await;
    assert_eq!(
        a.transport.send(
            &Destination::Node(old.clone()),
            Lane::Ordinary,
            &envelope(1, "m", b"")
        ),
        Err(SendError::IncarnationGone {
            peer: old.clone(),
            current: new_uid
        })
    );

    // Messages by address reach the new incarnation.
    a.transport
        .send(
            &Destination::Address(old.address.clone()),
            Lane::Ordinary,
            &envelope(2, "m", b""),
        )
        .unwrap();
    let received = b2.next().await;
    assert_eq!(received.envelope.recipient, 2);
    assert_eq!(received.from, a.address());
}

#[tokio::test]
async fn silent_peer_is_closed_after_handshake_timeout() {
    logs();
    let mut node_settings = settings();
    node_settings.handshake_timeout = Duration::from_millis(300);
    let node = Node::start(node_settings).await;
    let port = node.address().address.port();

    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let local = silent.local_addr().unwrap().to_string();
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let half_local = half.local_addr().unwrap().to_string();
    // A preamble alone is not a handshake either.
    tokio::io::AsyncWriteExt::write_all(&mut half, &encode_preamble(Lane::Control))
        .await
        .unwrap();

    for stream in [&mut silent, &mut half] {
        let mut buffer = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("connection still open after the handshake timeout");
        assert!(matches!(read, Ok(0) | Err(_)));
    }
    for peer in [local, half_local] {
        let lines = warn_lines_with(&["handshake timed out", &peer]);
        assert_eq!(lines.len(), 1, "log lines for {peer}: {lines:?}");
    }
}

#[tokio::test]
async fn unreachable_peer_drops_on_full_queue() {
    logs();
    let mut node_settings = settings();
    node_settings.ordinary_queue_size = 16;
    let a = Node::start(node_settings).await;
    // Bind and drop a listener, so the port refuses connections.
    let closed_port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let ghost: UniqueAddress = UniqueAddress::new(
        format!("akkord://test@127.0.0.1:{closed_port}")
            .parse()
            .unwrap(),
        1,
    );
    let to = Destination::Node(ghost.clone());
    let mut full = 0;
    for i in 0..100 {
        if let Err(SendError::QueueFull { .. }) =
            a.transport
                .send(&to, Lane::Ordinary, &envelope(i, "m", b""))
        {
            full += 1;
        }
    }
    assert!(full >= 100 - 17, "only {full} sends reported a full queue");
    assert_eq!(
        a.transport.stats().dropped_queue_full[Lane::Ordinary.index()],
        full
    );
    let lines = warn_lines_with(&["outbound queue full", &format!(":{closed_port}")]);
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[tokio::test]
async fn new_incarnation_reached_by_uid() {
    let a = Node::start(settings()).await;
    let mut b = Node::start(settings()).await;
    let old = b.address();
    a.transport
        .send(
            &Destination::Node(old.clone()),
            Lane::Ordinary,
            &envelope(1, "m", b""),
        )
        .unwrap();
    b.next().await;

    b.transport.shutdown().await;
    drop(b);
    let mut b2 = Node::start_in_place_of(&old).await;

    // The caller learned the new uid elsewhere (for example from cluster gossip) before the
    // transport did. Messages to it must be queued, not refused for the old incarnation.
    a.transport
        .send_system(&b2.address(), envelope(3, "watch", b""))
        .unwrap();
    // An ordinary message can be lost when it races with the old connection's close, so
    // send until one arrives.
    let to_new = Destination::Node(b2.address());
    let mut system_received = 0;
    let mut ordinary_received = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ordinary_received == 0 || system_received == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new incarnation not reached"
        );
        a.transport
            .send(&to_new, Lane::Ordinary, &envelope(2, "m", b""))
            .unwrap();
        let Ok(Some(received)) =
            tokio::time::timeout(Duration::from_millis(200), b2.inbox.recv()).await
        else {
            continue;
        };
        if received.system {
            assert_eq!(received.envelope.recipient, 3);
            system_received += 1;
        } else {
            assert_eq!(received.envelope.recipient, 2);
            ordinary_received += 1;
        }
    }
    assert_eq!(system_received, 1);
    while let Ok(Some(received)) =
        tokio::time::timeout(Duration::from_millis(300), b2.inbox.recv()).await
    {
        assert!(!received.system, "system message delivered twice");
    }
    assert!(matches!(
        a.transport.send(
            &Destination::Node(old),
            Lane::Ordinary,
            &envelope(4, "m", b"")
        ),
        Err(SendError::IncarnationGone { .. })
    ));
}

#[tokio::test]
async fn unacked_system_overflow_quarantines() {
    // A peer that accepts the handshake and then never acknowledges anything.
    let (listener, silent) = scripted_peer(99).await;
    let peer = tokio::spawn({
        let silent = silent.clone();
        async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            accept_handshake(&mut stream, &silent).await;
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    });

    let mut node_settings = settings();
    node_settings.redelivery.buffer_size = 5;
    let a = Node::start(node_settings).await;
    for i in 0..5 {
        a.transport
            .send_system(&silent, envelope(i, "watch", b""))
            .unwrap();
    }
    assert_eq!(
        a.transport.send_system(&silent, envelope(5, "watch", b"")),
        Err(SendError::Quarantined(silent.clone()))
    );
    assert!(a.transport.is_quarantined(&silent));
    let events = a.collector.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|event| matches!(
            event,
            TransportEvent::Quarantined { peer, reason } if *peer == silent && reason.contains("buffer full")
        )),
        "{events:?}"
    );
    peer.abort();
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let ipv6 = || {
        let mut node_settings = settings();
        node_settings.bind = "[::1]:0".parse().unwrap();
        node_settings
    };
    let a = Node::start(ipv6()).await;
    let mut b = Node::start(ipv6()).await;
    assert_eq!(b.address().address.host(), "::1");
    a.transport
        .send(
            &Destination::Node(b.address()),
            Lane::Ordinary,
            &envelope(6, "m", b"v6"),
        )
        .unwrap();
    let received = b.next().await;
    assert_eq!(received.from, a.address());
    assert_eq!(&received.envelope.payload[..], b"v6");
}

/// Settings whose associations are removed 200 ms after a quarantine, checked every 50 ms.
fn quick_removal() -> akkord_remote::RemoteSettings {
    let mut node_settings = settings();
    node_settings.remove_quarantined_after = Duration::from_millis(200);
    node_settings.redelivery.resend_interval = Duration::from_millis(50);
    node_settings
}

/// Returns an address whose port refuses connections, with incarnation `uid`.
async fn dead_peer(uid: u64) -> UniqueAddress {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    UniqueAddress::new(
        format!("akkord://test@127.0.0.1:{port}").parse().unwrap(),
        uid,
    )
}

#[tokio::test]
async fn association_of_dead_quarantined_peer_is_removed() {
    logs();
    let a = Node::start(quick_removal()).await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let tasks_before = runtime.num_alive_tasks();
    let dead = dead_peer(7).await;
    let port = dead.address.port().to_string();
    // Two messages wait for a peer that refuses every connection, so its lanes keep dialing.
    for (recipient, to) in [
        (1, Destination::Node(dead.clone())),
        (2, Destination::Address(dead.address.clone())),
    ] {
        a.transport
            .send(&to, Lane::Ordinary, &envelope(recipient, "m", b""))
            .unwrap();
    }
    assert_eq!(a.transport.stats().associations, 1);
    assert_eq!(runtime.num_alive_tasks(), tasks_before + 4);

    a.transport.quarantine(&dead, "test decided so");
    wait_until("the association is removed", || {
        a.transport.stats().associations == 0
    })
    .await;
    // The two messages and the quarantine notice, none of them written.
    assert_eq!(a.transport.stats().dropped_stale, 3);
    let removed = lines_with(
        "INFO",
        &["removed the association of a quarantined peer", &port],
    );
    assert_eq!(removed.len(), 1, "{removed:?}");
    // Its three lane writers and its resend ticker end.
    wait_until("the association's tasks end", || {
        runtime.num_alive_tasks() == tasks_before
    })
    .await;

    // The quarantine outlives the association; another incarnation there gets a new one.
    assert_eq!(
        a.transport.send(
            &Destination::Node(dead.clone()),
            Lane::Ordinary,
            &envelope(3, "m", b"")
        ),
        Err(SendError::Quarantined(dead.clone()))
    );
    let successor = UniqueAddress::new(dead.address.clone(), 8);
    a.transport
        .send(
            &Destination::Node(successor),
            Lane::Ordinary,
            &envelope(4, "m", b""),
        )
        .unwrap();
    assert_eq!(a.transport.stats().associations, 1);
}

#[tokio::test]
async fn association_used_by_new_incarnation_is_kept() {
    let a = Node::start(quick_removal()).await;
    let mut b = Node::start(settings()).await;
    let old = b.address();
    a.transport
        .send(
            &Destination::Node(old.clone()),
            Lane::Ordinary,
            &envelope(1, "m", b""),
        )
        .unwrap();
    b.next().await;
    b.transport.shutdown().await;
    drop(b);
    a.transport.quarantine(&old, "test decided so");
    let mut b2 = Node::start_in_place_of(&old).await;
    a.transport
        .send(
            &Destination::Node(b2.address()),
            Lane::Ordinary,
            &envelope(2, "m", b""),
        )
        .unwrap();
    assert_eq!(b2.next().await.envelope.recipient, 2);

    // A dead peer quarantined after B's old incarnation: once its association is removed,
    // B's quarantine is older than the removal delay as well.
    let dead = dead_peer(9).await;
    a.transport
        .send(
            &Destination::Node(dead.clone()),
            Lane::Ordinary,
            &envelope(3, "m", b""),
        )
        .unwrap();
    a.transport.quarantine(&dead, "test decided so");
    assert_eq!(a.transport.stats().associations, 2);
    wait_until("the dead peer's association is removed", || {
        a.transport.stats().associations == 1
    })
    .await;
    // Ticks of B's association that come after its removal delay keep it as well.
    assert!(b2.stays_empty(Duration::from_millis(200)).await);
    assert_eq!(a.transport.stats().associations, 1);
    a.transport
        .send(
            &Destination::Node(b2.address()),
            Lane::Ordinary,
            &envelope(4, "m", b""),
        )
        .unwrap();
    assert_eq!(b2.next().await.envelope.recipient, 4);
}

#[tokio::test]
async fn late_quarantine_keeps_live_write() {
    use tokio::sync::oneshot;

    const MESSAGES: usize = 1000;
    const PAYLOAD: usize = 8 * 1024;

    // A peer that accepts every lane's handshake. Its ordinary lane reads nothing until the
    // test lets it, then counts the frames of that connection.
    let (listener, peer_address) = scripted_peer(41).await;
    let (start_reading, reading) = oneshot::channel::<()>();
    let peer = tokio::spawn({
        let peer_address = peer_address.clone();
        async move {
            let mut others = Vec::new();
            let mut stream = loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let opening = accept_handshake(&mut stream, &peer_address).await;
                if opening.starts_with(&encode_preamble(Lane::Ordinary)) {
                    break stream;
                }
                others.push(stream);
            };
            reading.await.unwrap();
            let mut frames = 0;
            let mut header = [0u8; 4];
            while frames < MESSAGES && stream.read_exact(&mut header).await.is_ok() {
                let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
                if stream.read_exact(&mut body).await.is_err() {
                    break;
                }
                frames += 1;
            }
            frames
        }
    });

    let a = Node::start(settings()).await;
    let to = Destination::Node(peer_address.clone());
    for i in 0..MESSAGES {
        a.transport
            .send(&to, Lane::Ordinary, &envelope(i as u64, "m", &[7; PAYLOAD]))
            .unwrap();
    }
    // The socket buffers fill, and the lane writer waits in a write: the count of written
    // frames stops growing short of all of them.
    let sent = || a.transport.stats().frames_sent[Lane::Ordinary.index()];
    let mut last = sent();
    let mut unchanged = 0;
    wait_until("the writes stall", || {
        let now = sent();
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
        now > 0 && now < MESSAGES as u64 && unchanged >= 5
    })
    .await;

    // Quarantining an earlier incarnation at the address must not cut that write short.
    let earlier = UniqueAddress::new(peer_address.address.clone(), 40);
    a.transport.quarantine(&earlier, "test decided so");
    start_reading.send(()).unwrap();
    let frames = tokio::time::timeout(Duration::from_secs(10), peer)
        .await
        .expect("the peer read for more than 10 s")
        .unwrap();
    assert_eq!(frames, MESSAGES);
}

/// Binds a listener for a peer that the test plays itself, with incarnation `uid`, and
/// returns the listener and the peer's address.
async fn scripted_peer(uid: u64) -> (tokio::net::TcpListener, UniqueAddress) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = UniqueAddress::new(
        format!("akkord://test@127.0.0.1:{port}").parse().unwrap(),
        uid,
    );
    (listener, address)
}

/// Waits up to ten seconds for a lane connection to the scripted peer `peer` on `listener`
/// and accepts its handshake. Returns the connection and the bytes it opened with.
async fn accept_lane(
    listener: &tokio::net::TcpListener,
    peer: &UniqueAddress,
) -> (TcpStream, Vec<u8>) {
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("no connection to the scripted peer within 10 s")
        .unwrap();
    let opened = accept_handshake(&mut stream, peer).await;
    (stream, opened)
}

/// Accepts the handshake of a lane connection to the scripted peer `peer`. Returns the
/// bytes the connection opened with, which start with the lane's preamble.
async fn accept_handshake(stream: &mut TcpStream, peer: &UniqueAddress) -> Vec<u8> {
    use akkord_remote::frame::encode_frame;
    use akkord_remote::handshake::{HandshakeAcceptor, MAX_HANDSHAKE_FRAME_LEN};
    use tokio::io::AsyncWriteExt;

    let acceptor = HandshakeAcceptor::new(peer.clone(), None);
    let response = encode_frame(&acceptor.response(Ok(())), MAX_HANDSHAKE_FRAME_LEN).unwrap();
    // The preamble and the handshake request come in one write.
    let mut opening = vec![0u8; 1024];
    let n = stream.read(&mut opening).await.unwrap();
    opening.truncate(n);
    stream.write_all(&response).await.unwrap();
    opening
}

/// A peer whose handshake does not offer its connection back, such as an older version,
/// gets a connection that this node opens.
#[tokio::test]
async fn peer_without_duplex_is_dialed_back() {
    use akkord_remote::frame::encode_frame;
    use akkord_remote::handshake::{build_request, MAX_HANDSHAKE_FRAME_LEN};
    use tokio::io::AsyncWriteExt;

    let mut b = Node::start(settings()).await;
    let (listener, peer) = scripted_peer(5).await;
    let port = b.address().address.port();
    let mut dialed = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut opening = encode_preamble(Lane::Ordinary).to_vec();
    let request = build_request(&peer, Some(&b.address()), Lane::Ordinary, None);
    assert!(!request.duplex);
    opening.extend_from_slice(&encode_frame(&request, MAX_HANDSHAKE_FRAME_LEN).unwrap());
    dialed.write_all(&opening).await.unwrap();
    let mut response = [0u8; 64];
    assert!(dialed.read(&mut response).await.unwrap() > 0);
    let message = envelope(1, "m", b"");
    let mut frame = (prost::Message::encoded_len(&message) as u32)
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&prost::Message::encode_to_vec(&message));
    dialed.write_all(&frame).await.unwrap();
    assert_eq!(b.next().await.envelope.recipient, 1);

    b.send_ordinary(&peer, 2, b"");
    let (_back, opened) = accept_lane(&listener, &peer).await;
    assert_eq!(
        opened[..encode_preamble(Lane::Ordinary).len()],
        encode_preamble(Lane::Ordinary)
    );
    let ordinary = Lane::Ordinary.index();
    wait_until("B completes its handshake", || {
        b.transport.stats().connections_opened[ordinary] == 1
    })
    .await;
    assert_eq!(b.transport.stats().connections_taken[ordinary], 0);
}

/// Bytes a peer writes back on a connection this node opened are read as frames. A
/// malformed one closes that connection with a warning, and the lane connects again.
#[tokio::test]
async fn malformed_frame_written_back_closes_connection() {
    use tokio::io::AsyncWriteExt;

    let _ = logs();
    let b = Node::start(settings()).await;
    let (listener, peer) = scripted_peer(6).await;
    b.send_ordinary(&peer, 1, b"");
    let (mut first, _) = accept_lane(&listener, &peer).await;
    // A length header beyond the ordinary lane's frame limit.
    first.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let mut rest = Vec::new();
    // B closes the connection after writing the message it had queued.
    tokio::time::timeout(Duration::from_secs(10), first.read_to_end(&mut rest))
        .await
        .expect("B did not close the connection within 10 s")
        .unwrap();
    assert_eq!(b.transport.stats().inbound_rejected, 1);
    let peer_text = peer.to_string();
    wait_until("the warning is logged", || {
        !warn_lines_with(&[&peer_text, "invalid frames written back"]).is_empty()
    })
    .await;

    b.send_ordinary(&peer, 2, b"");
    accept_lane(&listener, &peer).await;
}

/// A lookup request lost on the way, such as one written just before the connection turned
/// out closed, is sent again while no reply has come.
#[tokio::test]
async fn unanswered_lookup_is_sent_again() {
    use akkord_actor::ActorSystem;
    use akkord_remote::remote::{LookupError, RemoteSystem, RemoteSystemSettings};
    use akkord_remote::serialization::SerializationRegistry;

    let (listener, peer) = scripted_peer(9).await;
    let system = ActorSystem::new("test").unwrap();
    let mut registry = SerializationRegistry::new();
    registry.register::<String>("test.Text").unwrap();
    let remote = RemoteSystem::bind(system.clone(), RemoteSystemSettings::new("test"), registry)
        .await
        .unwrap();
    let lookup = {
        let remote = remote.clone();
        let address = peer.address.clone();
        tokio::spawn(async move {
            remote
                .lookup::<String>(&address, "echo", Duration::from_millis(2500))
                .await
        })
    };

    // The scripted peer reads the lookup requests and replies to none of them.
    let preamble = encode_preamble(Lane::Ordinary);
    let (mut stream, opened) = accept_lane(&listener, &peer).await;
    assert_eq!(opened[..preamble.len()], preamble);
    let mut received = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the lookup request was not sent again within 5 s")
            .unwrap();
        assert!(n > 0, "the node closed the connection");
        received.extend_from_slice(&chunk[..n]);
        while received.len() >= 4 {
            let len = u32::from_be_bytes(received[..4].try_into().unwrap()) as usize;
            if received.len() < 4 + len {
                break;
            }
            frames.push(received[4..4 + len].to_vec());
            received.drain(..4 + len);
        }
    }
    assert_eq!(frames[0], frames[1], "the request is sent again unchanged");

    let result = lookup.await.unwrap();
    assert!(
        matches!(result, Err(LookupError::Timeout { .. })),
        "{result:?}"
    );
    remote.shutdown().await;
    system.terminate().await;
}
