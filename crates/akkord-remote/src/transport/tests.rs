//! Tests of the transport's bookkeeping of associations and inbound peers, which need its
//! internals.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use akkord_testkit::wait_until;

use super::*;

/// Longest wait for a condition.
const WAIT: Duration = Duration::from_secs(10);

/// Handler that passes every user message to a channel.
struct Inbox(mpsc::UnboundedSender<UserEnvelope>);

impl InboundHandler for Inbox {
    fn on_user_message(&self, _from: &UniqueAddress, _lane: Lane, envelope: UserEnvelope) {
        let _ = self.0.send(envelope);
    }
}

async fn node() -> (Transport, mpsc::UnboundedReceiver<UserEnvelope>) {
    bind(RemoteSettings::new("test")).await
}

/// Binds a node at the port of `old`, as the next incarnation there.
async fn restart_at(old: &UniqueAddress) -> (Transport, mpsc::UnboundedReceiver<UserEnvelope>) {
    let mut settings = RemoteSettings::new("test");
    settings.bind = format!("127.0.0.1:{}", old.address.port()).parse().unwrap();
    bind(settings).await
}

async fn bind(settings: RemoteSettings) -> (Transport, mpsc::UnboundedReceiver<UserEnvelope>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let transport = Transport::bind(settings, Arc::new(Inbox(sender)))
        .await
        .unwrap();
    (transport, receiver)
}

/// Sends an empty message for `recipient` from `from` to incarnation `to` on the ordinary
/// lane.
fn send_ordinary(from: &Transport, to: &UniqueAddress, recipient: u64) {
    let message = UserEnvelope::without_sender(recipient, "m", Bytes::new());
    from.send(&Destination::Node(to.clone()), Lane::Ordinary, &message)
        .unwrap();
}

async fn next(inbox: &mut mpsc::UnboundedReceiver<UserEnvelope>) -> u64 {
    tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("no message within 10 s")
        .expect("inbox closed")
        .recipient
}

#[tokio::test]
async fn cached_route_to_removed_association_finds_successor() {
    let (a, _) = node().await;
    let (b, mut inbox) = node().await;
    let to = b.local_address().clone();
    let route = RouteCache::default();
    let send = |recipient| a.send_parts(&to, &route, Lane::Ordinary, recipient, "m", b"x");
    send(1).unwrap();
    assert_eq!(next(&mut inbox).await, 1);
    let cached = route.0.get().unwrap().clone();

    // As when the removal runs between a sender's lookup and its push.
    cached.remove_now(&a.inner);
    assert_eq!(a.stats().associations, 0);
    send(2).unwrap();
    send(3).unwrap();
    assert_eq!(next(&mut inbox).await, 2);
    assert_eq!(next(&mut inbox).await, 3);
    assert_eq!(a.stats().associations, 1);
    assert!(Arc::ptr_eq(route.0.get().unwrap(), &cached));

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
    wait_until("the peer's connections are closed", WAIT, || {
        peers().is_none()
    })
    .await;
    b.shutdown().await;
}

#[tokio::test]
async fn replaced_incarnation_leaves_no_inbound_state() {
    let (a, _) = node().await;
    let (b, _) = node().await;
    let old = b.local_address().clone();
    // A system message leaves receiver state on A, and A's acknowledgement dials B.
    b.send_system(
        a.local_address(),
        UserEnvelope::without_sender(1, "watch", Bytes::new()),
    )
    .unwrap();
    let known = || lock(&a.inner.receivers).contains_key(&old);
    wait_until("A keeps B's system-message state", WAIT, known).await;
    wait_until("B's message is acknowledged", WAIT, || {
        b.unacked_system_messages(&a.local_address().address) == 0
    })
    .await;
    b.shutdown().await;

    let (restarted, _inbox) = restart_at(&old).await;
    // A message to the old incarnation makes A's lane reach the new one. The first may go
    // into the old connection before A notices that it closed, so one is sent per poll.
    wait_until("A forgets the replaced incarnation", WAIT, || {
        let _ = a.send(
            &Destination::Node(old.clone()),
            Lane::Control,
            &UserEnvelope::without_sender(2, "m", Bytes::new()),
        );
        !known()
    })
    .await;
    assert!(lock(&a.inner.inbound_peers).get(&old).is_none());

    a.shutdown().await;
    restarted.shutdown().await;
}

#[tokio::test]
async fn reply_uses_peer_opened_connection() {
    let (a, mut a_inbox) = node().await;
    let (b, mut b_inbox) = node().await;
    send_ordinary(&a, b.local_address(), 1);
    assert_eq!(next(&mut b_inbox).await, 1);
    send_ordinary(&b, a.local_address(), 2);
    assert_eq!(next(&mut a_inbox).await, 2);

    let ordinary = Lane::Ordinary.index();
    assert_eq!(a.stats().connections_opened[ordinary], 1);
    assert_eq!(b.stats().connections_opened[ordinary], 0);
    assert_eq!(b.stats().connections_taken[ordinary], 1);
    // B never connected to A, so A has no connection of B's to offer.
    assert_eq!(a.inner.offered_link_count(), 0);

    // Once A's connection closes, B connects to A's next incarnation itself.
    let old = a.local_address().clone();
    a.shutdown().await;
    let (restarted, mut restarted_inbox) = restart_at(&old).await;
    wait_until("B sees A's connection close", WAIT, || {
        lock(&b.inner.inbound_peers).get(&old).is_none()
    })
    .await;
    send_ordinary(&b, restarted.local_address(), 3);
    assert_eq!(next(&mut restarted_inbox).await, 3);
    assert_eq!(b.stats().connections_opened[ordinary], 1);

    b.shutdown().await;
    restarted.shutdown().await;
}
