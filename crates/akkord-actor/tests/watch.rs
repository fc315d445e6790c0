//! Death watch: exactly-once notification, already-dead targets, watch_with, unwatch, and
//! message adapters, which stop with their actor.

mod common;

use std::time::Duration;

use akkord_actor::{
    Actor, ActorRef, ActorResult, ActorSystem, AnyActorRef, Context, Listing, Props, ServiceKey,
};
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

/// Hands out message adapters and reports what reaches it through them.
struct Owner {
    report: ActorRef<String>,
}

enum OwnerMsg {
    Adapter(ActorRef<ActorRef<u32>>),
    Subscribe(ServiceKey<u32>, ActorRef<()>),
    Got(u32),
    Listed(usize),
}

impl Actor for Owner {
    type Msg = OwnerMsg;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: OwnerMsg) -> ActorResult {
        match msg {
            OwnerMsg::Adapter(reply_to) => reply_to.tell(ctx.message_adapter(OwnerMsg::Got)),
            OwnerMsg::Subscribe(key, done) => {
                let adapter = ctx.message_adapter(|listing: Listing<u32>| {
                    OwnerMsg::Listed(listing.services.len())
                });
                ctx.system().receptionist().subscribe(&key, &adapter);
                done.tell(());
            }
            OwnerMsg::Got(n) => self.report.tell(format!("got {n}")),
            OwnerMsg::Listed(n) => self.report.tell(format!("listed {n}")),
        }
        Ok(())
    }
}

fn spawn_owner(system: &ActorSystem, probe: &TestProbe<String>) -> ActorRef<OwnerMsg> {
    let report = probe.actor_ref();
    system
        .spawn(
            "owner",
            Props::new(move || Owner {
                report: report.clone(),
            }),
        )
        .unwrap()
}

#[tokio::test]
async fn adapter_stops_with_its_actor() {
    let system = ActorSystem::new("adapter-stop").unwrap();
    let mut probe = TestProbe::new(&system);
    let owner = spawn_owner(&system, &probe);
    let adapter = owner
        .ask(OwnerMsg::Adapter, Duration::from_secs(1))
        .await
        .unwrap();
    adapter.tell(5);
    probe.expect_message_eq("got 5".to_owned()).await;
    assert!(adapter
        .path()
        .starts_with(&format!("/user/owner/$adapter-{}", adapter.id())));

    // One watcher of both: each watch ends with its own notification.
    let watcher = spawn_watcher(&system, &probe);
    watcher.tell(WatcherMsg::Watch(owner.to_any()));
    watcher.tell(WatcherMsg::Watch(adapter.to_any()));
    watcher
        .ask(WatcherMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!adapter.to_any().is_terminated());
    system.stop(&owner.to_any());
    let mut reports = probe.receive_messages(2).await;
    reports.sort();
    assert_eq!(
        reports,
        [
            "terminated /user/owner".to_owned(),
            format!("terminated {}", adapter.path()),
        ]
    );
    assert!(adapter.to_any().is_terminated());

    // Later messages are dead letters, and a new watch ends at once.
    let dead_letters = system.dead_letter_count();
    adapter.tell(6);
    assert_eq!(system.dead_letter_count(), dead_letters + 1);
    adapter.to_any().terminated().await;
    probe.expect_no_message(Duration::from_millis(100)).await;
    system.terminate().await;
}

#[tokio::test]
async fn adapter_unwatch_prevents_notification() {
    let system = ActorSystem::new("adapter-unwatch").unwrap();
    let mut probe = TestProbe::new(&system);
    let owner = spawn_owner(&system, &probe);
    let adapter = owner
        .ask(OwnerMsg::Adapter, Duration::from_secs(1))
        .await
        .unwrap();
    let watcher = spawn_watcher(&system, &probe);
    watcher.tell(WatcherMsg::Watch(owner.to_any()));
    watcher.tell(WatcherMsg::Watch(adapter.to_any()));
    watcher.tell(WatcherMsg::Unwatch(adapter.to_any()));
    watcher
        .ask(WatcherMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    system.stop(&owner.to_any());
    probe
        .expect_message_eq("terminated /user/owner".to_owned())
        .await;
    probe.expect_no_message(Duration::from_millis(100)).await;
    system.terminate().await;
}

#[tokio::test]
async fn receptionist_drops_adapter_of_stopped_actor() {
    let system = ActorSystem::new("adapter-listing").unwrap();
    let mut probe = TestProbe::new(&system);
    let owner = spawn_owner(&system, &probe);
    let key = ServiceKey::<u32>::new("numbers");
    owner
        .ask(
            |done| OwnerMsg::Subscribe(key.clone(), done),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    probe.expect_message_eq("listed 0".to_owned()).await;

    system.stop(&owner.to_any());
    owner.to_any().terminated().await;
    let dead_letters = system.dead_letter_count();
    let service = ActorRef::from_fn(&system, "numbers", |_: u32| {});
    system.receptionist().register(&key, &service);
    // The listing of the change is not sent to the stopped actor's adapter.
    assert_eq!(system.dead_letter_count(), dead_letters);
    probe.expect_no_message(Duration::from_millis(100)).await;
    system.terminate().await;
}
