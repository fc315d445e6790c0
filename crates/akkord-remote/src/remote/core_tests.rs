use std::time::Duration;

use akkord_actor::remote_support::{new_actor_id, unwatch, watch_with_callback};
use akkord_actor::{ActorRef, ActorSystem, AnyActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::*;
use crate::remote::{RemoteSystem, RemoteSystemSettings};

const WAIT: Duration = Duration::from_secs(5);

/// A question whose answer goes to `reply_to`.
#[derive(Serialize, Deserialize)]
struct Question {
    reply_to: ActorRef<u64>,
}

async fn bind() -> RemoteSystem {
    let system = ActorSystem::new("core").unwrap();
    let mut registry = SerializationRegistry::new();
    registry.register::<u64>("test.Count").unwrap();
    registry.register::<Question>("test.Question").unwrap();
    registry.register::<String>("test.Text").unwrap();
    RemoteSystem::bind(system, RemoteSystemSettings::new("core"), registry)
        .await
        .unwrap()
}

/// Number of exported ask reply refs on `remote`.
fn exported_ask_replies(remote: &RemoteSystem) -> usize {
    lock(&remote.core.exports)
        .by_id
        .values()
        .filter(|export| export.ask_reply)
        .count()
}

/// Number of targets of ask reply refs in the remote actor table of `remote`.
fn remote_ask_replies(remote: &RemoteSystem) -> usize {
    lock(&remote.core.remotes)
        .values()
        .filter(|actor| actor.with_path(|path| path.starts_with(ASK_REPLY_PATH)))
        .count()
}

#[tokio::test]
async fn answered_ask_leaves_no_table_entry() {
    let asking = bind().await;
    let serving = bind().await;
    let answerer = ActorRef::from_fn(serving.system(), "answerer", |question: Question| {
        question.reply_to.tell(42);
    });
    serving.expose("answerer", &answerer).unwrap();
    let remote: ActorRef<Question> = asking
        .lookup(&serving.local_address().address, "answerer", WAIT)
        .await
        .unwrap();
    for _ in 0..3 {
        let answer = remote.ask(|reply_to| Question { reply_to }, WAIT).await;
        assert_eq!(answer, Ok(42));
        // The reply ref leaves the export table before the reply reaches it, and the
        // serving node does not keep its side of the unwatched ref.
        assert_eq!(exported_ask_replies(&asking), 0);
        assert_eq!(remote_ask_replies(&serving), 0);
    }
    asking.shutdown().await;
    serving.shutdown().await;
}

#[tokio::test]
async fn undelivered_reply_keeps_ask_open() {
    let asking = bind().await;
    let (sender, mut questions) = mpsc::unbounded_channel();
    let silent = ActorRef::from_fn(asking.system(), "silent", move |reply_to: ActorRef<u64>| {
        let _ = sender.send(reply_to);
    });
    let ask = tokio::spawn(async move { silent.ask(|reply_to| reply_to, WAIT).await });
    let reply_to = questions.recv().await.unwrap();
    let id = asking.encode_ref(&reply_to).unwrap().id;
    assert_eq!(exported_ask_replies(&asking), 1);

    let peer = UniqueAddress::new(Address::new("core", "127.0.0.1", 1).unwrap(), 7);
    // A varint longer than ten bytes is no u64.
    asking.core.deliver(&peer, id, "test.Count", &[0xff; 11]);
    assert_eq!(exported_ask_replies(&asking), 1);
    // A sound message of a type the reply ref does not accept.
    let text = postcard::to_allocvec("five").unwrap();
    asking.core.deliver(&peer, id, "test.Text", &text);
    assert_eq!(exported_ask_replies(&asking), 1);

    let answer = postcard::to_allocvec(&5_u64).unwrap();
    asking.core.deliver(&peer, id, "test.Count", &answer);
    assert_eq!(ask.await.unwrap(), Ok(5));
    assert_eq!(exported_ask_replies(&asking), 0);
    asking.shutdown().await;
}

/// Returns the encoded reply ref of an ask, id 3, from the node `127.0.0.1:1` with uid 7.
fn ask_reply_data() -> SerializedActorRef {
    SerializedActorRef {
        system: "core".to_owned(),
        host: "127.0.0.1".to_owned(),
        port: 1,
        uid: 7,
        id: 3,
        path: format!("{ASK_REPLY_PATH}3"),
        manifest: "test.Count".to_owned(),
    }
}

/// Decodes the reply ref of [`ask_reply_data`] twice on `serving`, then watches both
/// copies. Returns the channel that receives one item per `Terminated`.
///
/// A ref decoded after its first copy is watched is that copy, so both are decoded first.
fn watch_two_copies(serving: &RemoteSystem) -> mpsc::UnboundedReceiver<()> {
    let copies: Vec<ActorRef<u64>> = (0..2)
        .map(|_| serving.decode_ref(ask_reply_data()).unwrap())
        .collect();
    let (sender, terminated) = mpsc::unbounded_channel();
    for copy in &copies {
        let sender = sender.clone();
        watch_with_callback(&copy.to_any(), new_actor_id(), move |_| {
            let _ = sender.send(());
        });
    }
    terminated
}

async fn expect_terminated(terminated: &mut mpsc::UnboundedReceiver<()>, count: usize) {
    for n in 0..count {
        tokio::time::timeout(WAIT, terminated.recv())
            .await
            .unwrap_or_else(|_| panic!("Terminated {n} timed out after 5 s"))
            .unwrap();
    }
}

#[tokio::test]
async fn both_watched_copies_end_with_node() {
    let serving = bind().await;
    let mut terminated = watch_two_copies(&serving);
    assert_eq!(remote_ask_replies(&serving), 1);
    let node = UniqueAddress::new(Address::new("core", "127.0.0.1", 1).unwrap(), 7);
    serving.core.node_gone(&node, "test");
    expect_terminated(&mut terminated, 2).await;
    serving.shutdown().await;
}

#[tokio::test]
async fn both_watched_copies_end_with_actor() {
    let serving = bind().await;
    let mut terminated = watch_two_copies(&serving);
    let node = UniqueAddress::new(Address::new("core", "127.0.0.1", 1).unwrap(), 7);
    let watched_actors = || lock(&serving.core.node_watch).watched_actors(&node);
    assert_eq!(watched_actors(), 2);
    let notice = DeathWatchNotification {
        watchee: 3,
        failure: None,
    };
    serving.core.on_death_notification(&node, notice);
    expect_terminated(&mut terminated, 2).await;
    // Both copies' watches end, so the node is no longer watched.
    assert_eq!(watched_actors(), 0);
    serving.shutdown().await;
}

#[tokio::test]
async fn sweep_keeps_copies_while_watched() {
    let serving = bind().await;
    let mut copies: Vec<Option<AnyActorRef>> = (0..2)
        .map(|_| {
            let copy: ActorRef<u64> = serving.decode_ref(ask_reply_data()).unwrap();
            Some(copy.to_any())
        })
        .collect();
    let mut watchers = Vec::new();
    for copy in copies.iter().flatten() {
        let watcher = new_actor_id();
        watch_with_callback(copy, watcher, |_| {});
        watchers.push(watcher);
    }
    let in_table = || lock(&serving.core.remotes).contains_key(&(7, 3));

    // The table's copy loses its watcher and its last ref, but the second copy, its
    // sibling, is still watched.
    let first = copies[0].take().unwrap();
    unwatch(&first, watchers[0]);
    drop(first);
    serving.core.sweep();
    assert!(in_table(), "a watched sibling keeps the table's copy");

    let second = copies[1].take().unwrap();
    unwatch(&second, watchers[1]);
    drop(second);
    serving.core.sweep();
    assert!(!in_table());
    serving.shutdown().await;
}

#[tokio::test]
async fn watch_stays_while_copy_watched() {
    let serving = bind().await;
    let copies: Vec<AnyActorRef> = (0..2)
        .map(|_| {
            let copy: ActorRef<u64> = serving.decode_ref(ask_reply_data()).unwrap();
            copy.to_any()
        })
        .collect();
    let watchers: Vec<_> = copies
        .iter()
        .map(|copy| {
            let watcher = new_actor_id();
            watch_with_callback(copy, watcher, |_| {});
            watcher
        })
        .collect();
    // Nothing listens at port 1, so every watch message stays unacknowledged.
    let address = Address::new("core", "127.0.0.1", 1).unwrap();
    let pending = || serving.transport().unacked_system_messages(&address);
    let watches = pending();
    assert!(watches >= 1);

    for (index, (copy, watcher)) in copies.iter().zip(&watchers).enumerate() {
        unwatch(copy, *watcher);
        // Only the last copy to lose its watchers ends the remote watch.
        let expected = if index == 0 { watches } else { watches + 1 };
        assert_eq!(pending(), expected, "after unwatching copy {index}");
    }
    serving.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_messages_leave_in_decision_order() {
    // Rounds of the race. Each queues at most four messages, far below the buffer's limit
    // of 20 000.
    const ROUNDS: u64 = 400;
    let serving = bind().await;
    // Nothing listens at port 1, so every watch message stays queued, in order.
    let address = Address::new("core", "127.0.0.1", 1).unwrap();
    let last_message = || {
        let envelope = serving
            .transport()
            .unacked_system_envelopes(&address)
            .pop()?;
        let request = WatchRequest::decode(envelope.payload).unwrap();
        Some((envelope.manifest, request.watchee))
    };
    let node = UniqueAddress::new(address.clone(), 7);
    let watched_actors = || lock(&serving.core.node_watch).watched_actors(&node);
    let runtime = tokio::runtime::Handle::current();
    for round in 0..ROUNDS {
        // A new actor each round, so that no copy of an earlier round is in the table.
        let id = 100 + round;
        let data = SerializedActorRef {
            id,
            path: format!("{ASK_REPLY_PATH}{id}"),
            ..ask_reply_data()
        };
        let decode = || -> AnyActorRef {
            let copy: ActorRef<u64> = serving.decode_ref(data.clone()).unwrap();
            copy.to_any()
        };
        // Even rounds: one target whose only watcher leaves while another arrives. Odd
        // rounds: two copies of the ref, one losing its only watcher while the other gains
        // its first.
        let losing = decode();
        let gaining = if round % 2 == 0 {
            losing.clone()
        } else {
            decode()
        };
        let (losing_watcher, gaining_watcher) = (new_actor_id(), new_actor_id());
        watch_with_callback(&losing, losing_watcher, |_| {});
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _runtime = runtime.enter();
                start.wait();
                unwatch(&losing, losing_watcher);
            });
            start.wait();
            watch_with_callback(&gaining, gaining_watcher, |_| {});
        });
        assert_eq!(
            last_message(),
            Some((WATCH.to_owned(), id)),
            "round {round}: the ref is watched, but the last message ends the watch"
        );
        assert_eq!(watched_actors(), 1, "round {round}: one watched target");
        unwatch(&gaining, gaining_watcher);
        assert_eq!(
            last_message(),
            Some((UNWATCH.to_owned(), id)),
            "round {round}"
        );
        assert_eq!(watched_actors(), 0, "round {round}: no watched target");
    }
    serving.shutdown().await;
}

#[tokio::test]
async fn watched_ask_reply_ends_with_its_node() {
    let serving = bind().await;
    let node = UniqueAddress::new(Address::new("core", "127.0.0.1", 1).unwrap(), 7);
    let reply_to: ActorRef<u64> = serving.decode_ref(ask_reply_data()).unwrap();
    assert_eq!(remote_ask_replies(&serving), 0);

    let (sender, mut terminated) = mpsc::unbounded_channel();
    watch_with_callback(&reply_to.to_any(), new_actor_id(), move |_| {
        let _ = sender.send(());
    });
    assert_eq!(remote_ask_replies(&serving), 1);
    serving.core.node_gone(&node, "test");
    tokio::time::timeout(WAIT, terminated.recv())
        .await
        .expect("no Terminated within 5 s")
        .unwrap();
    serving.shutdown().await;
}

/// Frames of user messages to `recipient` without a sender, back to back.
fn frames(recipient: u64, messages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut buffer = Vec::new();
    for (manifest, payload) in messages {
        let mut body = Vec::new();
        crate::wire::encode_user_envelope(recipient, manifest, payload, &mut body);
        buffer.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buffer.extend_from_slice(&body);
    }
    buffer
}

#[tokio::test]
async fn run_drops_only_bad_messages() {
    let remote = bind().await;
    let system = remote.system().clone();
    let (sender, mut received) = mpsc::unbounded_channel();
    let counter = ActorRef::from_fn(&system, "counter", move |count: u64| {
        let _ = sender.send(count);
    });
    let id = remote.encode_ref(&counter).unwrap().id;
    let peer = UniqueAddress::new(Address::new("core", "127.0.0.1", 1).unwrap(), 7);
    let count = |n: u64| ("test.Count", postcard::to_allocvec(&n).unwrap());
    let rest = frames(
        id,
        &[
            count(2),
            // A varint longer than ten bytes is no u64.
            ("test.Count", vec![0xff; 11]),
            count(3),
            // Another manifest ends the run.
            ("test.Text", postcard::to_allocvec("four").unwrap()),
        ],
    );
    let codec = crate::frame::FrameCodec::new(1024);
    let mut run = UserRun::new(&rest, codec, id, "test.Count");
    remote
        .core
        .deliver_run(&peer, id, "test.Count", &count(1).1, &mut run);
    let delivered: Vec<u64> = std::iter::from_fn(|| received.try_recv().ok()).collect();
    assert_eq!(delivered, [1, 2, 3]);
    assert_eq!(run.count(), 0, "the run went past its last message");
    assert_eq!(system.dead_letter_count(), 0);

    // Messages of a type the recipient does not accept are dead letters, one each.
    let text = |text: &str| ("test.Text", postcard::to_allocvec(text).unwrap());
    let rest = frames(id, &[text("six")]);
    let mut run = UserRun::new(&rest, codec, id, "test.Text");
    remote
        .core
        .deliver_run(&peer, id, "test.Text", &text("five").1, &mut run);
    assert!(received.try_recv().is_err());
    assert_eq!(system.dead_letter_count(), 2);
    remote.shutdown().await;
}

#[tokio::test]
async fn ask_reply_run_takes_one_message() {
    let asking = bind().await;
    let system = asking.system().clone();
    let (sender, mut questions) = mpsc::unbounded_channel();
    let silent = ActorRef::from_fn(&system, "silent", move |reply_to: ActorRef<u64>| {
        let _ = sender.send(reply_to);
    });
    let ask = tokio::spawn(async move { silent.ask(|reply_to| reply_to, WAIT).await });
    let reply_to = questions.recv().await.unwrap();
    let id = asking.encode_ref(&reply_to).unwrap().id;

    let peer = UniqueAddress::new(Address::new("core", "127.0.0.1", 1).unwrap(), 7);
    let count = |n: u64| postcard::to_allocvec(&n).unwrap();
    let rest = frames(id, &[("test.Count", count(6))]);
    let mut run = UserRun::new(&rest, crate::frame::FrameCodec::new(1024), id, "test.Count");
    asking
        .core
        .deliver_run(&peer, id, "test.Count", &count(5), &mut run);
    assert_eq!(ask.await.unwrap(), Ok(5));
    // The second reply found the ask completed and its reply ref gone.
    assert_eq!(exported_ask_replies(&asking), 0);
    assert_eq!(system.dead_letter_count(), 1);
    asking.shutdown().await;
}

/// Hands out a message adapter that counts into `counted`.
struct AdapterOwner {
    counted: mpsc::UnboundedSender<u64>,
}

impl akkord_actor::Actor for AdapterOwner {
    type Msg = AdapterOwnerMsg;

    async fn handle(
        &mut self,
        ctx: &mut akkord_actor::Context<Self>,
        msg: AdapterOwnerMsg,
    ) -> akkord_actor::ActorResult {
        match msg {
            AdapterOwnerMsg::Adapter(reply_to) => {
                reply_to.tell(ctx.message_adapter(AdapterOwnerMsg::Count));
            }
            AdapterOwnerMsg::Count(n) => {
                let _ = self.counted.send(n);
            }
        }
        Ok(())
    }
}

enum AdapterOwnerMsg {
    Adapter(ActorRef<ActorRef<u64>>),
    Count(u64),
}

#[tokio::test]
async fn adapter_unexported_when_actor_stops() {
    let serving = bind().await;
    let asking = bind().await;
    let (counted, mut counts) = mpsc::unbounded_channel();
    let owner = serving
        .system()
        .spawn_anonymous(akkord_actor::Props::new(move || AdapterOwner {
            counted: counted.clone(),
        }))
        .unwrap();
    let adapter = owner.ask(AdapterOwnerMsg::Adapter, WAIT).await.unwrap();
    serving.expose("adapter", &adapter).unwrap();
    let remote: ActorRef<u64> = asking
        .lookup(&serving.local_address().address, "adapter", WAIT)
        .await
        .unwrap();
    remote.tell(7);
    assert_eq!(tokio::time::timeout(WAIT, counts.recv()).await, Ok(Some(7)));
    let id = adapter.id().value();
    assert!(lock(&serving.core.exports).by_id.contains_key(&id));

    serving.system().stop(&owner.to_any());
    owner.to_any().terminated().await;
    akkord_testkit::wait_until("the adapter is unexported", WAIT, || {
        !lock(&serving.core.exports).by_id.contains_key(&id)
    })
    .await;
    assert!(!lock(&serving.core.exports).by_name.contains_key("adapter"));
    asking.shutdown().await;
    serving.shutdown().await;
}

#[test]
fn ask_reply_path_fits_every_id() {
    for id in [0, 7, 1_000_000, u64::MAX] {
        let mut buffer = [0u8; ASK_PATH_MAX];
        assert_eq!(
            ask_reply_path(id, &mut buffer),
            format!("{ASK_REPLY_PATH}{id}")
        );
    }
}

#[test]
fn ask_reply_path_recognized_only_with_its_id() {
    let mut buffer = [0u8; ASK_PATH_MAX];
    assert!(is_ask_reply_path(ask_reply_path(42, &mut buffer), 42));
    let longest = format!("{ASK_REPLY_PATH}{}", u64::MAX);
    assert!(is_ask_reply_path(&longest, u64::MAX));
    assert!(!is_ask_reply_path(&format!("{ASK_REPLY_PATH}042"), 42));
    assert!(!is_ask_reply_path(&format!("{ASK_REPLY_PATH}42"), 4));
    assert!(!is_ask_reply_path(ASK_REPLY_PATH, 0));
    assert!(!is_ask_reply_path("/user/pong", 0));
}
