//! Mailboxes, stash, hierarchy, shutdown order and names.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use akkord_actor::{
    Actor, ActorRef, ActorResult, ActorSystem, ActorSystemConfig, Context, DeadLetter,
    MailboxConfig, Overflow, PhaseConfig, Props, SendError, SpawnError,
};
use akkord_testkit::TestProbe;
use common::{Counter, CounterMsg};

/// Reports each message; on message 0 it then blocks until released, so its mailbox fills.
struct Gate {
    release: Arc<tokio::sync::Notify>,
    seen: ActorRef<u32>,
}

impl Actor for Gate {
    type Msg = u32;
    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: u32) -> ActorResult {
        self.seen.tell(msg);
        if msg == 0 {
            self.release.notified().await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn bounded_overflow_counts_dead_letters() {
    let system = ActorSystem::new("bounded").unwrap();
    let mut seen = TestProbe::new(&system);
    let mut letters = TestProbe::<DeadLetter>::new(&system);
    system.event_stream().subscribe(&letters.actor_ref());
    let release = Arc::new(tokio::sync::Notify::new());
    let (gate_release, seen_ref) = (Arc::clone(&release), seen.actor_ref());
    let gate = system
        .spawn(
            "gate",
            Props::new(move || Gate {
                release: Arc::clone(&gate_release),
                seen: seen_ref.clone(),
            })
            .with_mailbox(MailboxConfig::bounded(2)),
        )
        .unwrap();
    gate.tell(0);
    // Message 0 is in the handler now, so the queue is empty.
    seen.expect_message_eq(0).await;
    gate.tell(1);
    gate.tell(2);
    let before = system.dead_letter_count();
    gate.tell(3);
    gate.tell(4);
    assert_eq!(system.dead_letter_count() - before, 2);
    match gate.try_tell(5) {
        Err(SendError::MailboxFull {
            message, capacity, ..
        }) => {
            assert_eq!(message, 5);
            assert_eq!(capacity, 2);
        }
        other => panic!("expected MailboxFull, got {other:?}"),
    }
    let letter = letters.expect_message().await;
    assert_eq!(letter.recipient, "/user/gate");
    assert_eq!(letter.message_type, "u32");
    release.notify_one();
    assert_eq!(seen.receive_messages(2).await, [1, 2]);
    system.terminate().await;
}

#[tokio::test]
async fn drop_oldest_keeps_newest() {
    let system = ActorSystem::new("drop-oldest").unwrap();
    let mut seen = TestProbe::new(&system);
    let release = Arc::new(tokio::sync::Notify::new());
    let (gate_release, seen_ref) = (Arc::clone(&release), seen.actor_ref());
    let gate = system
        .spawn(
            "gate",
            Props::new(move || Gate {
                release: Arc::clone(&gate_release),
                seen: seen_ref.clone(),
            })
            .with_mailbox(MailboxConfig::Bounded {
                capacity: 2.try_into().unwrap(),
                overflow: Overflow::DropOldest,
            }),
        )
        .unwrap();
    gate.tell(0);
    seen.expect_message_eq(0).await;
    gate.tell(1);
    gate.tell(2);
    gate.tell(3);
    release.notify_one();
    assert_eq!(seen.receive_messages(2).await, [2, 3]);
    system.terminate().await;
}

#[tokio::test]
async fn send_waits_for_room() {
    let system = ActorSystem::new("send-waits").unwrap();
    let mut seen = TestProbe::new(&system);
    let release = Arc::new(tokio::sync::Notify::new());
    let (gate_release, seen_ref) = (Arc::clone(&release), seen.actor_ref());
    let gate = system
        .spawn(
            "gate",
            Props::new(move || Gate {
                release: Arc::clone(&gate_release),
                seen: seen_ref.clone(),
            })
            .with_mailbox(MailboxConfig::bounded(1)),
        )
        .unwrap();
    gate.send(0).await.unwrap();
    seen.expect_message_eq(0).await;
    gate.try_tell(1).unwrap();
    let sender = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.send(2).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !sender.is_finished(),
        "send must wait while the mailbox is full"
    );
    release.notify_one();
    sender.await.unwrap().unwrap();
    assert_eq!(seen.receive_messages(2).await, [1, 2]);
    system.terminate().await;
}

#[tokio::test]
async fn messages_to_stopped_actor_are_dead_letters() {
    let system = ActorSystem::new("dead").unwrap();
    let counter = system.spawn("c", Props::new(Counter::default)).unwrap();
    system.stop(&counter.to_any());
    counter.to_any().terminated().await;
    let before = system.dead_letter_count();
    counter.tell(CounterMsg::Add(1));
    assert_eq!(system.dead_letter_count(), before + 1);
    assert!(matches!(
        counter.try_tell(CounterMsg::Add(1)),
        Err(SendError::Stopped { .. })
    ));
    system.terminate().await;
}

/// Stashes messages until `Open`, then unstashes them.
struct Door {
    open: bool,
    seen: ActorRef<String>,
}

impl Actor for Door {
    type Msg = String;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: String) -> ActorResult {
        if msg == "open" {
            self.open = true;
            ctx.unstash_all();
        } else if self.open {
            self.seen.tell(msg);
        } else {
            ctx.stash(msg)?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn stash_and_unstash_keep_order() {
    let system = ActorSystem::new("stash").unwrap();
    let mut seen = TestProbe::new(&system);
    let seen_ref = seen.actor_ref();
    let door = system
        .spawn(
            "door",
            Props::new(move || Door {
                open: false,
                seen: seen_ref.clone(),
            }),
        )
        .unwrap();
    for text in ["a", "b", "open", "c"] {
        door.tell(text.to_owned());
    }
    assert_eq!(seen.receive_messages(3).await, ["a", "b", "c"]);
    system.terminate().await;
}

#[tokio::test]
async fn stash_overflow_is_a_failure() {
    let system = ActorSystem::new("stash-full").unwrap();
    let seen = TestProbe::<String>::new(&system);
    let seen_ref = seen.actor_ref();
    let door = system
        .spawn(
            "door",
            Props::new(move || Door {
                open: false,
                seen: seen_ref.clone(),
            })
            .with_stash_capacity(2),
        )
        .unwrap();
    for text in ["a", "b", "c"] {
        door.tell(text.to_owned());
    }
    let terminated = door.to_any().terminated().await;
    let failure = terminated.failure.expect("stash overflow fails the actor");
    assert_eq!(failure.to_string(), "stash is full (2 messages)");
    system.terminate().await;
}

/// Records its stop in a shared log, and spawns `depth` levels of children.
struct Node {
    depth: u32,
    log: Arc<Mutex<Vec<String>>>,
}

impl Actor for Node {
    type Msg = ();
    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        if self.depth > 0 {
            for index in 0..2 {
                let (depth, log) = (self.depth - 1, Arc::clone(&self.log));
                ctx.spawn(
                    &format!("n{index}"),
                    Props::new(move || Node {
                        depth,
                        log: Arc::clone(&log),
                    }),
                )?;
            }
        }
        Ok(())
    }
    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> ActorResult {
        Ok(())
    }
    async fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.log.lock().unwrap().push(ctx.path());
    }
}

#[tokio::test]
async fn terminate_stops_children_before_parents() {
    let system = ActorSystem::new("tree").unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let root_log = Arc::clone(&log);
    system
        .spawn(
            "root",
            Props::new(move || Node {
                depth: 2,
                log: Arc::clone(&root_log),
            }),
        )
        .unwrap();
    // Children spawned in `started` exist before the parent handles anything, and a stop
    // is a system message handled after `started`, so all 7 nodes stop.
    system.terminate().await;
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 7, "every node stopped: {log:?}");
    for (index, path) in log.iter().enumerate() {
        for later in &log[index + 1..] {
            assert!(
                !later.starts_with(&format!("{path}/")),
                "{later} stopped after its ancestor {path}"
            );
        }
    }
    assert_eq!(log.last().unwrap(), "/user/root");
}

#[tokio::test]
async fn sibling_name_clash_is_an_error() {
    let system = ActorSystem::new("names").unwrap();
    system.spawn("same", Props::new(Counter::default)).unwrap();
    let error = system
        .spawn("same", Props::new(Counter::default))
        .unwrap_err();
    assert_eq!(
        error,
        SpawnError::NameTaken {
            parent: "/user".to_owned(),
            name: "same".to_owned()
        }
    );
    for bad in ["", "$x", "a/b", "a b", "a#b"] {
        assert!(matches!(
            system.spawn(bad, Props::new(Counter::default)),
            Err(SpawnError::InvalidName(_))
        ));
    }
    system.terminate().await;
    assert!(matches!(
        system.spawn("late", Props::new(Counter::default)),
        Err(SpawnError::ParentStopped { .. })
    ));
}

#[tokio::test]
async fn actor_ref_identity_and_debug() {
    let system = ActorSystem::new("refs").unwrap();
    let a = system.spawn("a", Props::new(Counter::default)).unwrap();
    let b = system.spawn("b", Props::new(Counter::default)).unwrap();
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    let set: std::collections::HashSet<_> = [a.clone(), a.clone(), b.clone()].into();
    assert_eq!(set.len(), 2);
    assert!(format!("{a:?}").starts_with("ActorRef(/user/a#"));
    system.terminate().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_phases_run_in_order_and_time_out() {
    let config = ActorSystemConfig {
        shutdown_phases: vec![
            PhaseConfig::new("first").with_timeout(Duration::from_secs(1)),
            PhaseConfig::new("second").with_timeout(Duration::from_secs(1)),
            PhaseConfig::new("actor-system-terminate"),
        ],
        ..ActorSystemConfig::default()
    };
    let system = ActorSystem::with_config("phases", config).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let entry = |text: &'static str| {
        let log = Arc::clone(&log);
        move || async move {
            log.lock().unwrap().push(text);
            Ok(())
        }
    };
    let shutdown = system.coordinated_shutdown();
    shutdown.add_task("second", "b", entry("second")).unwrap();
    shutdown.add_task("first", "a", entry("first")).unwrap();
    shutdown
        .add_task("first", "hangs", || {
            std::future::pending::<Result<(), String>>()
        })
        .unwrap();
    shutdown
        .add_task("actor-system-terminate", "c", entry("terminate"))
        .unwrap();
    assert!(shutdown.add_task("nope", "x", entry("x")).is_err());
    let started = tokio::time::Instant::now();
    system.terminate().await;
    let elapsed = started.elapsed();
    assert_eq!(*log.lock().unwrap(), ["first", "second", "terminate"]);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
        "the hanging task is cut off after the 1 s phase timeout, took {elapsed:?}"
    );
    assert!(system.is_terminated());
    assert!(matches!(
        shutdown.add_task("first", "late", entry("late")),
        Err(akkord_actor::ShutdownError::AlreadyStarted { .. })
    ));
}

/// Stops itself at message 10, reporting each message it handles.
struct StopAtTen {
    seen: ActorRef<u32>,
}

impl Actor for StopAtTen {
    type Msg = u32;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: u32) -> ActorResult {
        self.seen.tell(msg);
        if msg == 10 {
            ctx.stop_self();
        }
        Ok(())
    }
}

#[tokio::test]
async fn messages_queued_at_stop_are_dead_letters() {
    let system = ActorSystem::new("stop-queue").unwrap();
    let mut seen = TestProbe::new(&system);
    let seen_ref = seen.actor_ref();
    let actor = system
        .spawn(
            "stopper",
            Props::new(move || StopAtTen {
                seen: seen_ref.clone(),
            }),
        )
        .unwrap();
    let before = system.dead_letter_count();
    for n in 1..=100 {
        actor.tell(n);
    }
    actor.to_any().terminated().await;
    assert_eq!(
        seen.receive_messages(10).await,
        (1..=10).collect::<Vec<_>>()
    );
    seen.expect_no_message(Duration::from_millis(20)).await;
    assert_eq!(system.dead_letter_count() - before, 90);
    system.terminate().await;
}

/// On `Start`, tells its peer and then waits in the handler until released.
struct Waiter {
    peer: ActorRef<u32>,
    release: Arc<tokio::sync::Notify>,
}

impl Actor for Waiter {
    type Msg = ();
    async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> ActorResult {
        self.peer.tell(1);
        self.release.notified().await;
        Ok(())
    }
}

#[tokio::test]
async fn waiting_handler_does_not_hold_up_others() {
    let system = ActorSystem::new("waiting").unwrap();
    let mut seen = TestProbe::new(&system).with_timeout(Duration::from_secs(2));
    let release = Arc::new(tokio::sync::Notify::new());
    let (peer, waiter_release) = (seen.actor_ref(), Arc::clone(&release));
    // The peer is an actor, so it is made ready from inside the waiter's turn.
    let relay = system
        .spawn(
            "relay",
            Props::new(move || Gate {
                release: Arc::new(tokio::sync::Notify::new()),
                seen: peer.clone(),
            }),
        )
        .unwrap();
    let waiter = system
        .spawn(
            "waiter",
            Props::new(move || Waiter {
                peer: relay.clone(),
                release: Arc::clone(&waiter_release),
            }),
        )
        .unwrap();
    waiter.tell(());
    seen.expect_message_eq(1).await;
    release.notify_one();
    system.terminate().await;
}
