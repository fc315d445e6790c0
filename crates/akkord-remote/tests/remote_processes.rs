//! Remote actor refs between this test process and child processes running
//! `akkord-remote-test-node` on loopback: tell and ask both ways, refs inside messages,
//! remote death watch of a stopped actor and of a killed process, restarts at the same port,
//! and control-lane latency while large messages stream.

#[path = "../src/bin/akkord-remote-test-node/protocol.rs"]
#[allow(dead_code)]
mod protocol;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use akkord_actor::{ActorRef, ActorSystem, Props};
use akkord_remote::remote::{RemoteSystem, RemoteSystemSettings};
use protocol::{registry, Blob, Command as NodeCommand, Echo, EchoActor, SINK_PATH};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A child node process; killed when dropped.
struct ChildNode {
    process: Child,
    node: UniqueAddress,
}

impl ChildNode {
    /// Starts a child node on `port` (0 for any) and waits until it is bound.
    fn start(port: u16) -> ChildNode {
        let mut process = Command::new(env!("CARGO_BIN_EXE_akkord-remote-test-node"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("failed to start the test node");
        let stdout = process.stdout.take().expect("child stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(TIMEOUT)
            .expect("test node did not report ready in time");
        let mut parts = line.split_whitespace();
        assert_eq!(
            parts.next(),
            Some("ready"),
            "unexpected first line {line:?}"
        );
        let address: Address = parts.next().expect("address missing").parse().unwrap();
        let uid: u64 = parts.next().expect("uid missing").parse().unwrap();
        ChildNode {
            process,
            node: UniqueAddress::new(address, uid),
        }
    }

    /// Kills the process with SIGKILL and waits for it to exit.
    fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn local_node(settings: RemoteSystemSettings) -> (ActorSystem, RemoteSystem) {
    let system = ActorSystem::new("test").unwrap();
    let remote = RemoteSystem::bind(system.clone(), settings, registry())
        .await
        .unwrap();
    (system, remote)
}

fn settings() -> RemoteSystemSettings {
    let mut settings = RemoteSystemSettings::new("test");
    settings.large_message_recipients.push(SINK_PATH.to_owned());
    settings
}

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

async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_and_ask_work_both_ways() {
    let child = ChildNode::start(0);
    let (system, remote) = local_node(settings()).await;
    let address = &child.node.address;

    let echo: ActorRef<Echo> = remote.lookup(address, "echo", TIMEOUT).await.unwrap();
    let (reply_to, mut replies) = probe::<String>(&system);
    echo.tell(Echo {
        text: "told".into(),
        reply_to,
    });
    assert_eq!(next(&mut replies).await, "told");
    let answer = echo
        .ask(
            |reply_to| Echo {
                text: "asked".into(),
                reply_to,
            },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(answer, "asked");

    // The child asks an actor of this process, through a ref it received in a message, and
    // answers through another ref from the same message.
    let local_echo = system.spawn("echo", Props::new(|| EchoActor)).unwrap();
    let commander: ActorRef<NodeCommand> =
        remote.lookup(address, "commander", TIMEOUT).await.unwrap();
    let (reply_to, mut answers) = probe::<String>(&system);
    commander.tell(NodeCommand::AskBack {
        target: local_echo,
        text: "from the child".into(),
        reply_to,
    });
    assert_eq!(next(&mut answers).await, "answer: from the child");

    remote.shutdown().await;
    system.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_stop_of_remote_actor() {
    let child = ChildNode::start(0);
    let (system, remote) = local_node(settings()).await;
    let victim: ActorRef<Echo> = remote
        .lookup(&child.node.address, "victim", TIMEOUT)
        .await
        .unwrap();
    let watching = tokio::spawn({
        let victim = victim.to_any();
        async move { victim.terminated().await }
    });
    let (reply_to, _) = probe::<String>(&system);
    victim.tell(Echo {
        text: "stop".into(),
        reply_to,
    });
    let terminated = tokio::time::timeout(TIMEOUT, watching)
        .await
        .expect("no Terminated within the timeout")
        .unwrap();
    assert_eq!(terminated.actor, victim.to_any());
    assert!(terminated.failure.is_none(), "{:?}", terminated.failure);
    let lookup = remote
        .lookup::<Echo>(&child.node.address, "victim", TIMEOUT)
        .await;
    assert!(lookup.is_err(), "a stopped actor is still exposed");

    remote.shutdown().await;
    system.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_killed_process() {
    let mut child = ChildNode::start(0);
    // A 2 s acceptable pause instead of the default 10 s keeps the test short; detection
    // then takes about 3 to 4 s after the last heartbeat response.
    let mut settings = settings();
    settings.watch.detector.acceptable_heartbeat_pause = Duration::from_secs(2);
    let (system, remote) = local_node(settings).await;
    let echo: ActorRef<Echo> = remote
        .lookup(&child.node.address, "echo", TIMEOUT)
        .await
        .unwrap();
    let watching = tokio::spawn({
        let echo = echo.to_any();
        async move { echo.terminated().await }
    });
    // Let a few heartbeat rounds pass so the detector has a history.
    for _ in 0..3 {
        remote.ping(&child.node, TIMEOUT).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        !watching.is_finished(),
        "Terminated before the process was killed"
    );

    let killed_at = Instant::now();
    child.kill();
    let terminated = tokio::time::timeout(Duration::from_secs(15), watching)
        .await
        .expect("no Terminated within 15 s of the kill")
        .unwrap();
    let detected_after = killed_at.elapsed();
    assert!(
        detected_after >= Duration::from_secs(2),
        "detected after {detected_after:?}, faster than the acceptable pause"
    );
    let failure = terminated.failure.expect("a node failure carries a reason");
    assert!(failure.to_string().contains("gone"), "{failure}");
    assert!(remote.transport().is_quarantined(&child.node));

    let before = system.dead_letter_count();
    echo.tell(Echo {
        text: "to the dead".into(),
        reply_to: probe::<String>(&system).0,
    });
    assert_eq!(system.dead_letter_count(), before + 1);
    remote.shutdown().await;
    system.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_at_same_port_is_new_incarnation() {
    let mut child = ChildNode::start(0);
    let (system, remote) = local_node(settings()).await;
    let address = child.node.address.clone();
    let old_echo: ActorRef<Echo> = remote.lookup(&address, "echo", TIMEOUT).await.unwrap();
    let answer = old_echo
        .ask(
            |reply_to| Echo {
                text: "first life".into(),
                reply_to,
            },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(answer, "first life");
    let old_watch = tokio::spawn({
        let old_echo = old_echo.to_any();
        async move { old_echo.terminated().await }
    });

    child.kill();
    let restarted = ChildNode::start(address.port());
    assert_eq!(restarted.node.address, address);
    assert_ne!(restarted.node.uid, child.node.uid);

    let new_echo: ActorRef<Echo> = remote.lookup(&address, "echo", TIMEOUT).await.unwrap();
    assert_ne!(new_echo, old_echo);
    let answer = new_echo
        .ask(
            |reply_to| Echo {
                text: "second life".into(),
                reply_to,
            },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(answer, "second life");

    let terminated = tokio::time::timeout(TIMEOUT, old_watch)
        .await
        .expect("old incarnation's actor never reported Terminated")
        .unwrap();
    assert!(terminated.failure.is_some());
    let before = system.dead_letter_count();
    old_echo.tell(Echo {
        text: "to the old incarnation".into(),
        reply_to: probe::<String>(&system).0,
    });
    wait_until(
        "a message to the old incarnation is a dead letter",
        TIMEOUT,
        || system.dead_letter_count() > before,
    )
    .await;
    drop(restarted);
    remote.shutdown().await;
    system.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_lane_stays_fast_while_large_messages_stream() {
    // Bound on the median control-lane round trip (heartbeat request and response) while
    // 1 MiB messages stream on the large lane. Idle loopback round trips take well under a
    // millisecond. If control frames queued behind the large ones, most round trips would
    // wait for several large messages to be written and decoded, tens to hundreds of
    // milliseconds each in a debug build. Single round trips are not bounded: on a loaded
    // two-core machine one can stall for a second or more while the decoding of large
    // messages and other processes take the cores.
    const MEDIAN_BOUND: Duration = Duration::from_millis(50);
    const BLOBS: usize = 32;
    let child = ChildNode::start(0);
    let (system, remote) = local_node(settings()).await;
    let sink: ActorRef<Blob> = remote
        .lookup(&child.node.address, "sink", TIMEOUT)
        .await
        .unwrap();
    remote.ping(&child.node, TIMEOUT).await.unwrap();

    let (reply_to, mut lengths) = probe::<u64>(&system);
    let sender = tokio::spawn(async move {
        for _ in 0..BLOBS {
            sink.tell(Blob {
                bytes: vec![7; 1 << 20],
                reply_to: reply_to.clone(),
            });
            tokio::task::yield_now().await;
        }
    });
    let mut received = 0;
    let mut round_trips = Vec::new();
    let mut during_stream = 0;
    while received < BLOBS {
        let round_trip = remote.ping(&child.node, TIMEOUT).await.unwrap();
        // Pause between round trips so the probing does not take the CPU from the stream.
        tokio::time::sleep(Duration::from_millis(5)).await;
        round_trips.push(round_trip);
        while let Ok(length) = lengths.try_recv() {
            assert_eq!(length, 1 << 20);
            received += 1;
        }
        if received < BLOBS {
            during_stream += 1;
        }
        if round_trips.len() > 6_000 {
            panic!("only {received} of {BLOBS} large messages arrived within 6000 round trips");
        }
    }
    sender.await.unwrap();
    assert!(
        during_stream >= 3,
        "only {during_stream} round trips overlapped the stream"
    );
    round_trips.sort();
    let median = round_trips[round_trips.len() / 2];
    assert!(
        median <= MEDIAN_BOUND,
        "median control round trip {median:?} exceeds {MEDIAN_BOUND:?} ({} round trips, \
         slowest {:?})",
        round_trips.len(),
        round_trips[round_trips.len() - 1]
    );
    remote.shutdown().await;
    system.terminate().await;
}
