//! Routers, the event stream and the receptionist.

use std::collections::HashMap;
use std::time::Duration;

use akkord_actor::{
    Actor, ActorRef, ActorResult, ActorSystem, AnyActorRef, Context, GroupRouter, Listing,
    PoolRouter, Props, RoutingLogic, ServiceKey,
};
use akkord_testkit::TestProbe;

/// Reports `(own path, message)` for each message; `u32::MAX` stops it, and then it also
/// sends its own ref to `stopping`, when set.
struct Echo {
    report: ActorRef<(String, u32)>,
    stopping: Option<ActorRef<AnyActorRef>>,
}

impl Actor for Echo {
    type Msg = u32;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: u32) -> ActorResult {
        if msg == u32::MAX {
            ctx.stop_self();
            if let Some(stopping) = &self.stopping {
                stopping.tell(ctx.self_ref().to_any());
            }
        }
        self.report.tell((ctx.path(), msg));
        Ok(())
    }
}

fn echo_props(probe: &TestProbe<(String, u32)>) -> Props<Echo> {
    let report = probe.actor_ref();
    Props::new(move || Echo {
        report: report.clone(),
        stopping: None,
    })
}

#[tokio::test]
async fn pool_round_robin_spreads_evenly() {
    let system = ActorSystem::new("pool").unwrap();
    let mut probe = TestProbe::new(&system);
    let pool = system
        .spawn(
            "pool",
            PoolRouter::props(3, echo_props(&probe), RoutingLogic::RoundRobin),
        )
        .unwrap();
    for n in 0..9 {
        pool.tell(n);
    }
    let mut per_routee: HashMap<String, Vec<u32>> = HashMap::new();
    for (path, n) in probe.receive_messages(9).await {
        per_routee.entry(path).or_default().push(n);
    }
    assert_eq!(per_routee.len(), 3);
    for (path, numbers) in &per_routee {
        assert!(path.starts_with("/user/pool/routee-"), "{path}");
        assert_eq!(numbers.len(), 3, "{path} got {numbers:?}");
    }
    system.terminate().await;
}

#[tokio::test]
async fn pool_drops_stopped_routee_and_stops_when_empty() {
    let system = ActorSystem::new("pool-shrink").unwrap();
    let mut probe = TestProbe::new(&system);
    let mut stopping = TestProbe::<AnyActorRef>::new(&system);
    let (report, stopping_ref) = (probe.actor_ref(), stopping.actor_ref());
    let routee_props = Props::new(move || Echo {
        report: report.clone(),
        stopping: Some(stopping_ref.clone()),
    });
    let pool = system
        .spawn(
            "pool",
            PoolRouter::props(2, routee_props, RoutingLogic::RoundRobin),
        )
        .unwrap();
    pool.tell(u32::MAX);
    probe.expect_message().await;
    // The pool watched the routee before this test did, so its Terminated signal is queued
    // first, and system messages overtake the messages sent below.
    let stopped = stopping.expect_message().await;
    stopped.terminated().await;
    for n in 0..4 {
        pool.tell(n);
    }
    let paths: std::collections::HashSet<String> = probe
        .receive_messages(4)
        .await
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(paths.len(), 1);
    pool.tell(u32::MAX);
    probe.expect_message().await;
    stopping.expect_message().await;
    probe.expect_terminated(&pool).await;
    system.terminate().await;
}

#[tokio::test]
async fn consistent_hashing_is_sticky() {
    let system = ActorSystem::new("hashing").unwrap();
    let mut probe = TestProbe::new(&system);
    let pool = system
        .spawn(
            "pool",
            PoolRouter::props(
                4,
                echo_props(&probe),
                RoutingLogic::consistent_hashing(|n: &u32| n % 10),
            ),
        )
        .unwrap();
    for n in 0..200 {
        pool.tell(n);
    }
    let mut owner: HashMap<u32, String> = HashMap::new();
    let mut used = std::collections::HashSet::new();
    for (path, n) in probe.receive_messages(200).await {
        let previous = owner.insert(n % 10, path.clone());
        if let Some(previous) = previous {
            assert_eq!(previous, path, "key {} moved", n % 10);
        }
        used.insert(path);
    }
    assert!(
        used.len() >= 2,
        "10 keys should spread over several routees"
    );
    system.terminate().await;
}

#[tokio::test]
async fn random_router_reaches_every_routee() {
    let system = ActorSystem::new("random").unwrap();
    let mut probe = TestProbe::new(&system);
    let pool = system
        .spawn(
            "pool",
            PoolRouter::props(3, echo_props(&probe), RoutingLogic::Random),
        )
        .unwrap();
    for n in 0..300 {
        pool.tell(n);
    }
    let used: std::collections::HashSet<String> = probe
        .receive_messages(300)
        .await
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(used.len(), 3);
    system.terminate().await;
}

#[tokio::test]
async fn group_router_follows_receptionist() {
    let system = ActorSystem::new("group").unwrap();
    let mut probe = TestProbe::new(&system);
    let key = ServiceKey::<u32>::new("echo");
    let first = system.spawn("e1", echo_props(&probe)).unwrap();
    system.receptionist().register(&key, &first);
    let router = system
        .spawn(
            "router",
            GroupRouter::props_for_key(key.clone(), RoutingLogic::RoundRobin),
        )
        .unwrap();
    router.tell(1);
    assert_eq!(probe.expect_message().await, ("/user/e1".to_owned(), 1));
    let second = system.spawn("e2", echo_props(&probe)).unwrap();
    system.receptionist().register(&key, &second);
    for n in 0..4 {
        router.tell(n);
    }
    let paths: std::collections::HashSet<String> = probe
        .receive_messages(4)
        .await
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(paths.len(), 2);
    system.terminate().await;
}

#[tokio::test]
async fn group_router_over_fixed_list() {
    let system = ActorSystem::new("group-fixed").unwrap();
    let mut probe = TestProbe::new(&system);
    let a = system.spawn("a", echo_props(&probe)).unwrap();
    let b = system.spawn("b", echo_props(&probe)).unwrap();
    let router = system
        .spawn(
            "r",
            GroupRouter::props(vec![a, b], RoutingLogic::RoundRobin),
        )
        .unwrap();
    router.tell(1);
    router.tell(2);
    // Round robin sends 1 to `a` and 2 to `b`; the two may handle them in either order.
    let mut got = probe.receive_messages(2).await;
    got.sort();
    assert_eq!(got, [("/user/a".to_owned(), 1), ("/user/b".to_owned(), 2)]);
    system.terminate().await;
}

#[tokio::test]
async fn event_stream_delivers_by_type() {
    let system = ActorSystem::new("events").unwrap();
    let mut strings = TestProbe::<String>::new(&system);
    let mut numbers = TestProbe::<u64>::new(&system);
    system.event_stream().subscribe(&strings.actor_ref());
    system.event_stream().subscribe(&numbers.actor_ref());
    assert_eq!(system.event_stream().publish("hello".to_owned()), 1);
    assert_eq!(system.event_stream().publish(7_u64), 1);
    assert_eq!(system.event_stream().publish(7_u8), 0);
    strings.expect_message_eq("hello".to_owned()).await;
    numbers.expect_message_eq(7).await;
    system.event_stream().unsubscribe(&strings.actor_ref());
    assert_eq!(system.event_stream().publish("again".to_owned()), 0);
    strings.expect_no_message(Duration::from_millis(20)).await;
    system.terminate().await;
}

#[tokio::test]
async fn receptionist_lists_and_forgets_stopped_actors() {
    let system = ActorSystem::new("receptionist").unwrap();
    let probe = TestProbe::new(&system);
    let mut listings = TestProbe::<Listing<u32>>::new(&system);
    let key = ServiceKey::<u32>::new("svc");
    system.receptionist().subscribe(&key, &listings.actor_ref());
    assert!(listings.expect_message().await.services.is_empty());

    let a = system.spawn("a", echo_props(&probe)).unwrap();
    system.receptionist().register(&key, &a);
    system.receptionist().register(&key, &a);
    assert_eq!(
        listings.expect_message().await.services,
        std::slice::from_ref(&a)
    );
    assert_eq!(
        system.receptionist().find(&key).services,
        std::slice::from_ref(&a)
    );
    // The same name with another message type is another key.
    assert!(system
        .receptionist()
        .find(&ServiceKey::<String>::new("svc"))
        .services
        .is_empty());

    system.stop(&a.to_any());
    assert!(listings.expect_message().await.services.is_empty());
    assert!(system.receptionist().find(&key).services.is_empty());
    system.terminate().await;
}
