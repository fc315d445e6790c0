//! Remote actor refs between two nodes in one process: tell, ask, refs inside messages,
//! lookup errors, dead letters and death watch.

#[path = "../src/bin/akkord-remote-test-node/protocol.rs"]
#[allow(dead_code)]
mod protocol;

use std::time::Duration;

use akkord_actor::{ActorRef, ActorSystem, Props};
use akkord_remote::remote::{LookupError, RemoteSystem, RemoteSystemSettings};
use akkord_remote::serialization::SerializationRegistry;
use protocol::{registry, Command, Echo, EchoActor};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Node {
    system: ActorSystem,
    remote: RemoteSystem,
}

impl Node {
    async fn start() -> Node {
        Self::with_registry(registry()).await
    }

    async fn with_registry(registry: SerializationRegistry) -> Node {
        let system = ActorSystem::new("test").unwrap();
        let remote =
            RemoteSystem::bind(system.clone(), RemoteSystemSettings::new("test"), registry)
                .await
                .unwrap();
        Node { system, remote }
    }

    fn address(&self) -> akkord_actor::address::Address {
        self.remote.local_address().address.clone()
    }

    async fn stop(self) {
        self.remote.shutdown().await;
        self.system.terminate().await;
    }
}

/// Creates a ref whose messages arrive on the returned channel.
fn probe<M: Send + 'static>(system: &ActorSystem) -> (ActorRef<M>, mpsc::UnboundedReceiver<M>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let actor = ActorRef::from_fn(system, "probe", move |msg| {
        let _ = sender.send(msg);
    });
    (actor, receiver)
}

async fn next<M>(receiver: &mut mpsc::UnboundedReceiver<M>) -> M {
    tokio::time::timeout(TIMEOUT, receiver.recv())
        .await
        .expect("no message within the timeout")
        .expect("probe channel closed")
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn tell_reaches_remote_actor_with_reply_ref() {
    let a = Node::start().await;
    let b = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();

    let remote_echo: ActorRef<Echo> = b
        .remote
        .lookup(&a.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    assert_ne!(remote_echo.id(), echo.id());
    assert!(
        remote_echo.path().ends_with("/user/echo"),
        "{}",
        remote_echo.path()
    );
    let (reply_to, mut replies) = probe::<String>(&b.system);
    remote_echo.tell(Echo {
        text: "over the wire".into(),
        reply_to,
    });
    assert_eq!(next(&mut replies).await, "over the wire");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn ask_works_across_nodes() {
    let a = Node::start().await;
    let b = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();
    let remote_echo: ActorRef<Echo> = b
        .remote
        .lookup(&a.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    for i in 0..20 {
        let text = format!("question {i}");
        let answer = remote_echo
            .ask(
                |reply_to| Echo {
                    text: text.clone(),
                    reply_to,
                },
                TIMEOUT,
            )
            .await
            .unwrap();
        assert_eq!(answer, text);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn ref_in_message_is_used_to_ask_back() {
    let a = Node::start().await;
    let b = Node::start().await;
    let commander = a
        .system
        .spawn("commander", Props::new(|| protocol::CommanderActor))
        .unwrap();
    a.remote.expose("commander", &commander).unwrap();
    let b_echo = b.system.spawn("echo", Props::new(|| EchoActor)).unwrap();

    let remote_commander: ActorRef<Command> = b
        .remote
        .lookup(&a.address(), "commander", TIMEOUT)
        .await
        .unwrap();
    let (reply_to, mut replies) = probe::<String>(&b.system);
    remote_commander.tell(Command::AskBack {
        target: b_echo,
        text: "ping".into(),
        reply_to,
    });
    assert_eq!(next(&mut replies).await, "answer: ping");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn ref_sent_home_is_the_local_ref() {
    #[derive(Serialize, Deserialize)]
    struct Bounce {
        actor: ActorRef<String>,
        reply_to: ActorRef<ActorRef<String>>,
    }
    let make_registry = || {
        let mut registry = registry();
        registry.register::<Bounce>("test.Bounce").unwrap();
        registry
            .register::<ActorRef<String>>("test.StringRef")
            .unwrap();
        registry
    };
    let a = Node::with_registry(make_registry()).await;
    let b = Node::with_registry(make_registry()).await;
    let bouncer = ActorRef::from_fn(&a.system, "bouncer", |msg: Bounce| {
        msg.reply_to.tell(msg.actor);
    });
    a.remote.expose("bouncer", &bouncer).unwrap();
    let remote_bouncer: ActorRef<Bounce> = b
        .remote
        .lookup(&a.address(), "bouncer", TIMEOUT)
        .await
        .unwrap();

    let (original, _) = probe::<String>(&b.system);
    let (reply_to, mut replies) = probe::<ActorRef<String>>(&b.system);
    for _ in 0..2 {
        remote_bouncer.tell(Bounce {
            actor: original.clone(),
            reply_to: reply_to.clone(),
        });
        let returned = next(&mut replies).await;
        assert_eq!(returned, original);
        assert!(returned.external().is_none());
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn lookup_reports_typed_errors() {
    let a = Node::start().await;
    let b = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();

    let missing = b
        .remote
        .lookup::<Echo>(&a.address(), "nobody", TIMEOUT)
        .await;
    assert!(
        matches!(missing, Err(LookupError::NotFound { .. })),
        "{missing:?}"
    );
    let wrong = b
        .remote
        .lookup::<String>(&a.address(), "echo", TIMEOUT)
        .await;
    assert!(
        matches!(&wrong, Err(LookupError::WrongMessageType { expected, actual, .. })
            if expected == "test.Text" && actual == "test.Echo"),
        "{wrong:?}"
    );
    let unregistered = b
        .remote
        .lookup::<Vec<i8>>(&a.address(), "echo", TIMEOUT)
        .await;
    assert!(
        matches!(unregistered, Err(LookupError::NotRegistered { .. })),
        "{unregistered:?}"
    );

    // A port with no listener: the connection fails and the lookup times out.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = akkord_actor::address::Address::new("test", "127.0.0.1", port).unwrap();
    let timeout = b
        .remote
        .lookup::<Echo>(&nowhere, "echo", Duration::from_millis(300))
        .await;
    assert!(
        matches!(timeout, Err(LookupError::Timeout { .. })),
        "{timeout:?}"
    );

    let local = a
        .remote
        .lookup::<Echo>(&a.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(local, echo);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn expose_rejects_taken_name_and_unregistered_type() {
    let a = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();
    assert!(a.remote.expose("echo", &echo).is_err());
    let (unregistered, _) = probe::<Vec<i8>>(&a.system);
    assert!(a.remote.expose("bytes", &unregistered).is_err());
    assert!(a.remote.unexpose("echo"));
    assert!(!a.remote.unexpose("echo"));
    a.remote.expose("echo", &echo).unwrap();
    a.stop().await;
}

#[tokio::test]
async fn unregistered_message_type_is_dead_letter_at_sender() {
    #[derive(Serialize, Deserialize)]
    struct Unregistered;
    #[derive(Serialize, Deserialize)]
    struct Holder {
        actor: ActorRef<Unregistered>,
    }
    let mut with_holder = registry();
    with_holder.register::<Holder>("test.Holder").unwrap();
    let a = Node::with_registry(with_holder).await;
    let mut with_holder = registry();
    with_holder.register::<Holder>("test.Holder").unwrap();
    let b = Node::with_registry(with_holder).await;
    let (holder_sink, mut holders) = probe::<Holder>(&a.system);
    a.remote.expose("holders", &holder_sink).unwrap();
    let remote_holders: ActorRef<Holder> = b
        .remote
        .lookup(&a.address(), "holders", TIMEOUT)
        .await
        .unwrap();
    let (target, _) = probe::<Unregistered>(&b.system);
    remote_holders.tell(Holder { actor: target });
    let remote_target = next(&mut holders).await.actor;

    let before = a.system.dead_letter_count();
    remote_target.tell(Unregistered);
    assert_eq!(a.system.dead_letter_count(), before + 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn message_to_stopped_actor_is_dead_letter_at_receiver() {
    let a = Node::start().await;
    let b = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();
    let remote_echo: ActorRef<Echo> = b
        .remote
        .lookup(&a.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    assert!(a.system.stop(&echo.to_any()));
    echo.to_any().terminated().await;

    let (reply_to, _) = probe::<String>(&b.system);
    let before = a.system.dead_letter_count();
    remote_echo.tell(Echo {
        text: "anyone?".into(),
        reply_to,
    });
    wait_until("the receiver counts a dead letter", || {
        a.system.dead_letter_count() > before
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn watch_of_remote_actor_reports_its_stop() {
    let a = Node::start().await;
    let b = Node::start().await;
    let victim = a.system.spawn("victim", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("victim", &victim).unwrap();
    let remote_victim: ActorRef<Echo> = b
        .remote
        .lookup(&a.address(), "victim", TIMEOUT)
        .await
        .unwrap();
    let watching = tokio::spawn({
        let remote_victim = remote_victim.to_any();
        async move { remote_victim.terminated().await }
    });
    // The watch request and the stop travel on different lanes; wait until the watch
    // has been acknowledged, so the stop cannot overtake it.
    wait_until("the watch request is acknowledged", || {
        b.remote.transport().unacked_system_messages(&a.address()) == 0
            && b.remote.transport().stats().frames_sent[0] > 0
    })
    .await;
    let (reply_to, _) = probe::<String>(&b.system);
    remote_victim.tell(Echo {
        text: "stop".into(),
        reply_to,
    });
    let terminated = tokio::time::timeout(TIMEOUT, watching)
        .await
        .expect("no Terminated within the timeout")
        .unwrap();
    assert_eq!(terminated.actor, remote_victim.to_any());
    assert!(remote_victim.to_any().is_terminated());

    let before = b.system.dead_letter_count();
    let (reply_to, _) = probe::<String>(&b.system);
    remote_victim.tell(Echo {
        text: "late".into(),
        reply_to,
    });
    assert_eq!(b.system.dead_letter_count(), before + 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn watch_of_unknown_actor_reports_terminated() {
    let a = Node::start().await;
    let b = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();
    let remote_echo: ActorRef<Echo> = b
        .remote
        .lookup(&a.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    assert!(a.system.stop(&echo.to_any()));
    echo.to_any().terminated().await;
    let terminated = tokio::time::timeout(TIMEOUT, remote_echo.to_any().terminated()).await;
    assert!(
        terminated.is_ok(),
        "watching a stopped remote actor never completed"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn large_message_reaches_sink_on_large_lane() {
    let mut settings = RemoteSystemSettings::new("test");
    settings
        .large_message_recipients
        .push(protocol::SINK_PATH.to_owned());
    let system_a = ActorSystem::new("test").unwrap();
    let a = RemoteSystem::bind(system_a.clone(), settings.clone(), registry())
        .await
        .unwrap();
    let system_b = ActorSystem::new("test").unwrap();
    let b = RemoteSystem::bind(system_b.clone(), settings, registry())
        .await
        .unwrap();
    let sink = system_a
        .spawn("sink", Props::new(|| protocol::SinkActor))
        .unwrap();
    a.expose("sink", &sink).unwrap();
    let remote_sink: ActorRef<protocol::Blob> = b
        .lookup(&a.local_address().address, "sink", TIMEOUT)
        .await
        .unwrap();
    let (reply_to, mut lengths) = probe::<u64>(&system_b);
    remote_sink.tell(protocol::Blob {
        bytes: vec![7; 1 << 20],
        reply_to,
    });
    assert_eq!(next(&mut lengths).await, 1 << 20);
    let stats = b.transport().stats();
    assert_eq!(stats.frames_sent[2], 1, "{stats:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn actor_ref_needs_resolver_to_serialize() {
    let system = ActorSystem::new("test").unwrap();
    let (actor, _) = probe::<String>(&system);
    let error = postcard::to_stdvec(&actor).unwrap_err();
    assert!(
        matches!(error, postcard::Error::SerdeSerCustom),
        "{error:?}"
    );
    system.terminate().await;
}

#[tokio::test]
async fn ref_to_other_node_is_forwarded_unchanged() {
    let a = Node::start().await;
    let b = Node::start().await;
    let c = Node::start().await;
    // b receives a ref to c's echo from a lookup, then hands it to a's commander, which
    // asks c directly.
    let c_echo = c.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    c.remote.expose("echo", &c_echo).unwrap();
    let commander = a
        .system
        .spawn("commander", Props::new(|| protocol::CommanderActor))
        .unwrap();
    a.remote.expose("commander", &commander).unwrap();
    let echo_on_c: ActorRef<Echo> = b
        .remote
        .lookup(&c.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    let commander_on_a: ActorRef<Command> = b
        .remote
        .lookup(&a.address(), "commander", TIMEOUT)
        .await
        .unwrap();
    let (reply_to, mut replies) = probe::<String>(&b.system);
    commander_on_a.tell(Command::AskBack {
        target: echo_on_c,
        text: "via a".into(),
        reply_to,
    });
    assert_eq!(next(&mut replies).await, "answer: via a");
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn actor_watching_remote_actor_gets_message() {
    use akkord_actor::{Actor, ActorResult, Context};

    struct Watcher {
        target: ActorRef<Echo>,
        report: mpsc::UnboundedSender<String>,
    }
    impl Actor for Watcher {
        type Msg = String;
        async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
            ctx.watch_with(&self.target, "remote echo stopped".to_owned());
            Ok(())
        }
        async fn handle(&mut self, _ctx: &mut Context<Self>, msg: String) -> ActorResult {
            let _ = self.report.send(msg);
            Ok(())
        }
    }

    let a = Node::start().await;
    let b = Node::start().await;
    let echo = a.system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    a.remote.expose("echo", &echo).unwrap();
    let remote_echo: ActorRef<Echo> = b
        .remote
        .lookup(&a.address(), "echo", TIMEOUT)
        .await
        .unwrap();
    let (report, mut reports) = mpsc::unbounded_channel();
    let target = remote_echo.clone();
    b.system
        .spawn(
            "watcher",
            Props::new(move || Watcher {
                target: target.clone(),
                report: report.clone(),
            }),
        )
        .unwrap();
    wait_until("the watch request is acknowledged", || {
        b.remote.transport().stats().frames_sent[0] > 0
            && b.remote.transport().unacked_system_messages(&a.address()) == 0
    })
    .await;
    assert!(a.system.stop(&echo.to_any()));
    assert_eq!(next(&mut reports).await, "remote echo stopped");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn bind_rejects_out_of_range_settings() {
    use akkord_remote::transport::TransportError;

    let mut settings = RemoteSystemSettings::new("refs");
    settings.watch.heartbeat_interval = Duration::ZERO;
    let system = ActorSystem::new("refs").unwrap();
    let error = RemoteSystem::bind(system.clone(), settings, registry())
        .await
        .expect_err("a zero heartbeat interval is rejected");
    assert!(
        matches!(&error, TransportError::InvalidSettings(invalid) if invalid.field == "watch.heartbeat_interval"),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "invalid setting watch.heartbeat_interval = 0ns: expected a duration greater \
         than zero, for example 1 s"
    );

    let mut settings = RemoteSystemSettings::new("refs");
    settings.transport.redelivery.resend_interval = Duration::ZERO;
    let error = RemoteSystem::bind(system, settings, registry())
        .await
        .expect_err("a zero resend interval is rejected");
    assert!(
        matches!(&error, TransportError::InvalidSettings(invalid) if invalid.field == "redelivery.resend_interval"),
        "{error}"
    );
}
