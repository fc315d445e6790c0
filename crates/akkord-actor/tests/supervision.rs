//! Supervision: stop, resume, restart with a limit, backoff, escalation.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use akkord_actor::{
    Actor, ActorError, ActorErrorKind, ActorRef, ActorResult, ActorSystem, AnyActorRef, Backoff,
    Context, Props, SupervisorStrategy,
};
use akkord_testkit::TestProbe;
use common::{Counter, CounterMsg};

const ASK: Duration = Duration::from_secs(2);

#[tokio::test]
async fn default_strategy_stops_on_failure() {
    let system = ActorSystem::new("stop").unwrap();
    let counter = system.spawn("c", Props::new(Counter::default)).unwrap();
    counter.tell(CounterMsg::Fail);
    let terminated = counter.to_any().terminated().await;
    assert!(terminated.failure.is_some());
    system.terminate().await;
}

#[tokio::test]
async fn resume_keeps_state() {
    let system = ActorSystem::new("resume").unwrap();
    let props = Props::new(Counter::default).with_supervisor(SupervisorStrategy::Resume);
    let counter = system.spawn("c", props).unwrap();
    counter.tell(CounterMsg::Add(5));
    counter.tell(CounterMsg::Fail);
    counter.tell(CounterMsg::Panic);
    counter.tell(CounterMsg::Add(1));
    assert_eq!(counter.ask(CounterMsg::Get, ASK).await.unwrap(), 6);
    system.terminate().await;
}

#[tokio::test]
async fn restart_resets_state() {
    let system = ActorSystem::new("restart").unwrap();
    let props = Props::new(Counter::default).with_supervisor(SupervisorStrategy::restart());
    let counter = system.spawn("c", props).unwrap();
    counter.tell(CounterMsg::Add(5));
    assert_eq!(counter.ask(CounterMsg::Get, ASK).await.unwrap(), 5);
    counter.tell(CounterMsg::Panic);
    counter.tell(CounterMsg::Add(2));
    assert_eq!(counter.ask(CounterMsg::Get, ASK).await.unwrap(), 2);
    system.terminate().await;
}

/// A parent that watches one child and reports its signals to a probe.
struct Parent {
    child_props: Props<Counter>,
    child: Option<ActorRef<CounterMsg>>,
    report: ActorRef<String>,
    handle_failure: bool,
}

enum ParentMsg {
    Forward(CounterMsg),
    GetChild(ActorRef<ActorRef<CounterMsg>>),
}

impl Actor for Parent {
    type Msg = ParentMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        let child = ctx.spawn("child", self.child_props.clone())?;
        ctx.watch(&child);
        self.child = Some(child);
        Ok(())
    }

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: ParentMsg) -> ActorResult {
        let child = self.child.clone().expect("child started");
        match msg {
            ParentMsg::Forward(msg) => child.tell(msg),
            ParentMsg::GetChild(reply_to) => reply_to.tell(child),
        }
        Ok(())
    }

    async fn child_failed(
        &mut self,
        _ctx: &mut Context<Self>,
        child: AnyActorRef,
        error: ActorError,
    ) -> ActorResult {
        self.report
            .tell(format!("child-failed {} {error}", child.path()));
        if self.handle_failure {
            Ok(())
        } else {
            Err(ActorError::msg("parent gives up"))
        }
    }

    async fn terminated(&mut self, _ctx: &mut Context<Self>, actor: AnyActorRef) -> ActorResult {
        self.report.tell(format!("terminated {}", actor.path()));
        Ok(())
    }
}

#[tokio::test]
async fn restart_limit_stops_child_and_notifies_parent() {
    let system = ActorSystem::new("limit").unwrap();
    let mut probe = TestProbe::<String>::new(&system);
    let report = probe.actor_ref();
    let child_props = Props::new(Counter::default).with_supervisor(
        SupervisorStrategy::restart_with_limit(2, Duration::from_secs(60)),
    );
    let parent = system
        .spawn(
            "parent",
            Props::new(move || Parent {
                child_props: child_props.clone(),
                child: None,
                report: report.clone(),
                handle_failure: true,
            }),
        )
        .unwrap();
    let child = parent.ask(ParentMsg::GetChild, ASK).await.unwrap();

    // Two failures are restarts: the child keeps running with fresh state.
    for _ in 0..2 {
        parent.tell(ParentMsg::Forward(CounterMsg::Add(3)));
        parent.tell(ParentMsg::Forward(CounterMsg::Fail));
    }
    parent.tell(ParentMsg::Forward(CounterMsg::Add(1)));
    let total = parent
        .ask(
            |reply_to| ParentMsg::Forward(CounterMsg::Get(reply_to)),
            ASK,
        )
        .await
        .unwrap();
    assert_eq!(total, 1, "state is fresh after each restart");
    probe.expect_no_message(Duration::from_millis(50)).await;

    // The third failure within the window exceeds the limit.
    parent.tell(ParentMsg::Forward(CounterMsg::Fail));
    let report = probe.expect_message().await;
    assert_eq!(
        report, "child-failed /user/parent/child asked to fail",
        "parent must get ChildFailed"
    );
    let terminated = probe.expect_terminated(&child).await;
    assert!(terminated.failure.is_some());
    assert!(!parent.to_any().is_terminated());
    system.terminate().await;
}

#[tokio::test]
async fn unhandled_child_failure_escalates() {
    let system = ActorSystem::new("escalate").unwrap();
    let mut probe = TestProbe::<String>::new(&system);
    let report = probe.actor_ref();
    let parent = system
        .spawn(
            "parent",
            Props::new(move || Parent {
                child_props: Props::new(Counter::default),
                child: None,
                report: report.clone(),
                handle_failure: false,
            }),
        )
        .unwrap();
    parent.tell(ParentMsg::Forward(CounterMsg::Fail));
    assert!(probe.expect_message().await.starts_with("child-failed"));
    let terminated = probe.expect_terminated(&parent).await;
    let failure = terminated.failure.expect("parent stopped by a failure");
    assert_eq!(failure.to_string(), "parent gives up");
    system.terminate().await;
}

#[tokio::test]
async fn default_child_failed_hook_escalates() {
    /// Watches its child and forwards every message to it; keeps the default hooks.
    #[derive(Default)]
    struct Forwarder(Option<ActorRef<CounterMsg>>);
    impl Actor for Forwarder {
        type Msg = CounterMsg;
        async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
            let child = ctx.spawn("child", Props::new(Counter::default))?;
            ctx.watch(&child);
            self.0 = Some(child);
            Ok(())
        }
        async fn handle(&mut self, _ctx: &mut Context<Self>, msg: CounterMsg) -> ActorResult {
            self.0.as_ref().expect("started").tell(msg);
            Ok(())
        }
    }
    let system = ActorSystem::new("escalate-default").unwrap();
    let parent = system.spawn("p", Props::new(Forwarder::default)).unwrap();
    parent.tell(CounterMsg::Fail);
    let terminated = parent.to_any().terminated().await;
    match terminated.failure.expect("parent failed").kind() {
        ActorErrorKind::ChildFailed { child, .. } => assert_eq!(child, "/user/p/child"),
        other => panic!("unexpected failure {other:?}"),
    }
    system.terminate().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_grow_between_min_and_max() {
    /// Fails in `started` every time, recording when each start happened.
    struct Failing(Arc<Mutex<Vec<tokio::time::Instant>>>);
    impl Actor for Failing {
        type Msg = ();
        async fn started(&mut self, _ctx: &mut Context<Self>) -> ActorResult {
            self.0.lock().unwrap().push(tokio::time::Instant::now());
            Err(ActorError::msg("cannot start"))
        }
        async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> ActorResult {
            Ok(())
        }
    }
    let system = ActorSystem::new("backoff").unwrap();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800), 0.2)
        .with_max_restarts(7);
    let recorded = Arc::clone(&starts);
    let actor = system
        .spawn(
            "failing",
            Props::new(move || Failing(Arc::clone(&recorded))).with_supervisor(backoff.into()),
        )
        .unwrap();
    let terminated = tokio::time::timeout(Duration::from_secs(60), actor.to_any().terminated())
        .await
        .expect("backoff stops after max restarts");
    assert!(terminated.failure.is_some());
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 8, "first start plus 7 restarts");
    let delays: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let expected_base = [100, 200, 400, 800, 800, 800, 800];
    for (delay, base) in delays.iter().zip(expected_base) {
        let base = Duration::from_millis(base);
        assert!(*delay >= base, "delay {delay:?} below {base:?}");
        assert!(
            *delay <= base.mul_f64(1.2) + Duration::from_millis(5),
            "delay {delay:?} above {base:?}·1.2"
        );
    }
    system.terminate().await;
}
