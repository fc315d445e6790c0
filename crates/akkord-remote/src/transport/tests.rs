//! Tests of the transport's bookkeeping of associations and inbound peers, which need its
//! internals.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::*;

/// Handler that passes every user message to a channel.
struct Inbox(mpsc::UnboundedSender<UserEnvelope>);

impl InboundHandler for Inbox {
    fn on_user_message(&self, _from: &UniqueAddress, _lane: Lane, envelope: UserEnvelope) {
        let _ = self.0.send(envelope);
    }
}

async fn node() -> (Transport, mpsc::UnboundedReceiver<UserEnvelope>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let transport = Transport::bind(RemoteSettings::new("test"), Arc::new(Inbox(sender)))
        .await
        .unwrap();
    (transport, receiver)
}

async fn next(inbox: &mut mpsc::UnboundedReceiver<UserEnvelope>) -> u64 {
    tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("no message within 10 s")
        .expect("inbox closed")
        .recipient
}

/// Waits up to ten seconds for `condition`, polling every 10 ms.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn kept_route_to_removed_association_finds_successor() {
    let (a, _) = node().await;
    let (b, mut inbox) = node().await;
    let to = b.local_address().clone();
    let route = RouteCache::default();
    let send = |recipient| a.send_parts(&to, &route, Lane::Ordinary, recipient, "m", b"x");
    send(1).unwrap();
    assert_eq!(next(&mut inbox).await, 1);
    let kept = route.0.get().unwrap().clone();

    // As when the removal runs between a sender's lookup and its push.
    kept.remove_now(&a.inner);
    assert_eq!(a.stats().associations, 0);
    send(2).unwrap();
    send(3).unwrap();
    assert_eq!(next(&mut inbox).await, 2);
    assert_eq!(next(&mut inbox).await, 3);
    assert_eq!(a.stats().associations, 1);
    assert!(Arc::ptr_eq(route.0.get().unwrap(), &kept));

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn inbound_peer_leaves_with_its_last_connection() {
    let (a, _) = node().await;
    let (b, mut inbox) = node().await;
    let to = Destination::Node(b.local_address().clone());
    for lane in [Lane::Ordinary, Lane::Large] {
        a.send(
            &to,
            lane,
            &UserEnvelope::without_sender(1, "m", Bytes::new()),
        )
        .unwrap();
        assert_eq!(next(&mut inbox).await, 1);
    }
    let peers = || {
        lock(&b.inner.inbound_peers)
            .get(a.local_address())
            .map(|peer| peer.connections)
    };
    assert_eq!(peers(), Some(2));

    a.shutdown().await;
    wait_until("the peer's connections are closed", || peers().is_none()).await;
    b.shutdown().await;
}
