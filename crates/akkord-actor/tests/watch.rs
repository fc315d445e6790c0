//! Death watch: exactly-once notification, already-dead targets, watch_with, unwatch.

mod common;

use std::time::Duration;

use akkord_actor::{Actor, ActorRef, ActorResult, ActorSystem, AnyActorRef, Context, Props};
use akkord_testkit::TestProbe;
use common::{Counter, CounterMsg};

/// Watches the actors it is sent and reports each `Terminated` or custom message.
struct Watcher {
    report: ActorRef<String>,
}

enum WatcherMsg {
    Watch(AnyActorRef),
    WatchWith(AnyActorRef, String),
    Unwatch(AnyActorRef),
    Custom(String),
    Ping(ActorRef<()>),
}

impl Actor for Watcher {
    type Msg = WatcherMsg;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WatcherMsg) -> ActorResult {
        match msg {
            WatcherMsg::Watch(actor) => ctx.watch(actor),
            WatcherMsg::WatchWith(actor, text) => ctx.watch_with(actor, WatcherMsg::Custom(text)),
            WatcherMsg::Unwatch(actor) => ctx.unwatch(actor),
            WatcherMsg::Custom(text) => self.report.tell(text),
            WatcherMsg::Ping(reply_to) => reply_to.tell(()),
        }
        Ok(())
    }

    async fn terminated(&mut self, _ctx: &mut Context<Self>, actor: AnyActorRef) -> ActorResult {
        self.report.tell(format!("terminated {}", actor.path()));
        Ok(())
    }
}

fn spawn_watcher(system: &ActorSystem, probe: &TestProbe<String>) -> ActorRef<WatcherMsg> {
    let report = probe.actor_ref();
    system
        .spawn_anonymous(Props::new(move || Watcher {
            report: report.clone(),
        }))
        .unwrap()
}

#[tokio::test]
async fn terminated_arrives_exactly_once() {
    let system = ActorSystem::new("watch-once").unwrap();
    let mut probe = TestProbe::new(&system);
    let watcher = spawn_watcher(&system, &probe);
    let target = system
        .spawn("target", Props::new(Counter::default))
        .unwrap();
    // Watching twice still gives one notification.
    watcher.tell(WatcherMsg::Watch(target.to_any()));
    watcher.tell(WatcherMsg::Watch(target.to_any()));
    watcher
        .ask(WatcherMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(system.stop(&target.to_any()));
    probe
        .expect_message_eq("terminated /user/target".to_owned())
        .await;
    probe.expect_no_message(Duration::from_millis(100)).await;
    system.terminate().await;
}

#[tokio::test]
async fn watching_a_dead_actor_notifies_at_once() {
    let system = ActorSystem::new("watch-dead").unwrap();
    let mut probe = TestProbe::new(&system);
    let target = system.spawn("gone", Props::new(Counter::default)).unwrap();
    system.stop(&target.to_any());
    target.to_any().terminated().await;
    let watcher = spawn_watcher(&system, &probe);
    watcher.tell(WatcherMsg::Watch(target.to_any()));
    probe
        .expect_message_eq("terminated /user/gone".to_owned())
        .await;
    probe.expect_no_message(Duration::from_millis(50)).await;
    system.terminate().await;
}

#[tokio::test]
async fn watch_with_delivers_custom_message() {
    let system = ActorSystem::new("watch-with").unwrap();
    let mut probe = TestProbe::new(&system);
    let watcher = spawn_watcher(&system, &probe);
    let target = system.spawn("t", Props::new(Counter::default)).unwrap();
    watcher.tell(WatcherMsg::WatchWith(
        target.to_any(),
        "t is gone".to_owned(),
    ));
    watcher
        .ask(WatcherMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    target.tell(CounterMsg::Fail);
    probe.expect_message_eq("t is gone".to_owned()).await;
    system.terminate().await;
}

#[tokio::test]
async fn unwatch_prevents_notification() {
    let system = ActorSystem::new("unwatch").unwrap();
    let mut probe = TestProbe::new(&system);
    let watcher = spawn_watcher(&system, &probe);
    let target = system.spawn("t", Props::new(Counter::default)).unwrap();
    watcher.tell(WatcherMsg::Watch(target.to_any()));
    watcher.tell(WatcherMsg::Unwatch(target.to_any()));
    watcher
        .ask(WatcherMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    system.stop(&target.to_any());
    target.to_any().terminated().await;
    probe.expect_no_message(Duration::from_millis(100)).await;
    system.terminate().await;
}
