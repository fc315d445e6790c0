//! Ask, pipe_to_self and timers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use akkord_actor::{
    Actor, ActorRef, ActorResult, ActorSystem, AskError, Context, Props, SupervisorStrategy,
};
use akkord_testkit::TestProbe;
use common::{Counter, CounterMsg};

#[tokio::test(start_paused = true)]
async fn ask_times_out_without_reply() {
    /// Keeps every reply ref without answering.
    #[derive(Default)]
    struct Silent(Vec<ActorRef<u64>>);
    impl Actor for Silent {
        type Msg = ActorRef<u64>;
        async fn handle(&mut self, _ctx: &mut Context<Self>, msg: ActorRef<u64>) -> ActorResult {
            self.0.push(msg);
            Ok(())
        }
    }
    let system = ActorSystem::new("ask-timeout").unwrap();
    let silent = system.spawn("silent", Props::new(Silent::default)).unwrap();
    let error = silent.ask(|r| r, Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(
        error,
        AskError::Timeout {
            path: "/user/silent".to_owned(),
            timeout: Duration::from_secs(5)
        }
    );
    system.terminate().await;
}

#[tokio::test]
async fn ask_to_dead_actor_fails_at_once() {
    let system = ActorSystem::new("ask-dead").unwrap();
    let counter = system.spawn("c", Props::new(Counter::default)).unwrap();
    system.stop(&counter.to_any());
    counter.to_any().terminated().await;
    let error = counter
        .ask(CounterMsg::Get, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        AskError::TargetStopped {
            path: "/user/c".to_owned()
        }
    );
    system.terminate().await;
}

#[tokio::test]
async fn ask_fails_when_target_stops_before_replying() {
    /// Blocks in its first handler until released; never replies.
    struct Busy(Arc<tokio::sync::Notify>);
    impl Actor for Busy {
        type Msg = Option<ActorRef<u64>>;
        async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Self::Msg) -> ActorResult {
            if msg.is_none() {
                self.0.notified().await;
            }
            Ok(())
        }
    }
    let system = ActorSystem::new("ask-stops").unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let busy_release = Arc::clone(&release);
    let busy = system
        .spawn("busy", Props::new(move || Busy(Arc::clone(&busy_release))))
        .unwrap();
    busy.tell(None);
    let asking = {
        let busy = busy.clone();
        tokio::spawn(async move { busy.ask(Some, Duration::from_secs(60)).await })
    };
    // The ask waits in the mailbox behind the blocked handler; stop the actor, then let
    // the handler finish, so the ask is dropped with the rest of the mailbox.
    tokio::task::yield_now().await;
    system.stop(&busy.to_any());
    release.notify_one();
    let error = asking.await.unwrap().unwrap_err();
    assert_eq!(
        error,
        AskError::TargetStopped {
            path: "/user/busy".to_owned()
        }
    );
    system.terminate().await;
}

#[tokio::test]
async fn ask_reports_dropped_reply_ref() {
    struct Dropper;
    impl Actor for Dropper {
        type Msg = ActorRef<u64>;
        async fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ActorRef<u64>) -> ActorResult {
            Ok(())
        }
    }
    let system = ActorSystem::new("ask-dropped").unwrap();
    let dropper = system.spawn("d", Props::new(|| Dropper)).unwrap();
    let error = dropper
        .ask(|r| r, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        AskError::NoReply {
            path: "/user/d".to_owned()
        }
    );
    system.terminate().await;
}

/// Asks a counter from inside an actor and reports the piped result.
struct Asker {
    counter: ActorRef<CounterMsg>,
    report: ActorRef<String>,
}

enum AskerMsg {
    Start,
    Result(Result<u64, AskError>),
}

impl Actor for Asker {
    type Msg = AskerMsg;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: AskerMsg) -> ActorResult {
        match msg {
            AskerMsg::Start => ctx.ask(
                &self.counter,
                CounterMsg::Get,
                Duration::from_secs(1),
                AskerMsg::Result,
            ),
            AskerMsg::Result(result) => self.report.tell(format!("{result:?}")),
        }
        Ok(())
    }
}

#[tokio::test]
async fn ask_from_actor_pipes_result_to_self() {
    let system = ActorSystem::new("pipe").unwrap();
    let mut probe = TestProbe::new(&system);
    let counter = system.spawn("c", Props::new(Counter::default)).unwrap();
    counter.tell(CounterMsg::Add(41));
    let report = probe.actor_ref();
    let asker = system
        .spawn(
            "asker",
            Props::new(move || Asker {
                counter: counter.clone(),
                report: report.clone(),
            }),
        )
        .unwrap();
    asker.tell(AskerMsg::Start);
    probe.expect_message_eq("Ok(41)".to_owned()).await;
    system.terminate().await;
}

/// Starts timers on command and reports each tick.
struct Ticker {
    report: ActorRef<String>,
}

#[derive(Clone, Debug)]
enum TickerMsg {
    Single(&'static str, u64),
    Periodic(&'static str, u64),
    Cancel(&'static str),
    Tick(&'static str),
    Fail,
    Ping(ActorRef<()>),
}

impl Actor for Ticker {
    type Msg = TickerMsg;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: TickerMsg) -> ActorResult {
        match msg {
            TickerMsg::Single(key, ms) => {
                ctx.start_single_timer(key, TickerMsg::Tick(key), Duration::from_millis(ms))
            }
            TickerMsg::Periodic(key, ms) => ctx.start_timer_at_fixed_rate(
                key,
                TickerMsg::Tick(key),
                Duration::from_millis(ms),
                Duration::from_millis(ms),
            ),
            TickerMsg::Cancel(key) => ctx.cancel_timer(key),
            TickerMsg::Tick(key) => self.report.tell(key.to_owned()),
            TickerMsg::Fail => return Err(akkord_actor::ActorError::msg("fail")),
            TickerMsg::Ping(reply_to) => reply_to.tell(()),
        }
        Ok(())
    }
}

fn spawn_ticker(system: &ActorSystem, probe: &TestProbe<String>) -> ActorRef<TickerMsg> {
    let report = probe.actor_ref();
    system
        .spawn(
            "ticker",
            Props::new(move || Ticker {
                report: report.clone(),
            })
            .with_supervisor(SupervisorStrategy::restart()),
        )
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn timers_fire_and_cancel() {
    let system = ActorSystem::new("timers").unwrap();
    let mut probe = TestProbe::new(&system).with_timeout(Duration::from_secs(10));
    let ticker = spawn_ticker(&system, &probe);
    ticker.tell(TickerMsg::Single("once", 100));
    probe.expect_message_eq("once".to_owned()).await;
    probe.expect_no_message(Duration::from_secs(1)).await;

    ticker.tell(TickerMsg::Periodic("rate", 100));
    let ticks = probe.receive_messages(3).await;
    assert_eq!(ticks, ["rate", "rate", "rate"]);
    ticker.tell(TickerMsg::Cancel("rate"));
    ticker
        .ask(TickerMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    probe.expect_no_message(Duration::from_secs(1)).await;
    system.terminate().await;
}

#[tokio::test(start_paused = true)]
async fn replaced_timer_never_fires() {
    let system = ActorSystem::new("timer-replace").unwrap();
    let mut probe = TestProbe::new(&system).with_timeout(Duration::from_secs(10));
    let ticker = spawn_ticker(&system, &probe);
    ticker.tell(TickerMsg::Single("k", 100));
    ticker.tell(TickerMsg::Single("k", 300));
    probe.expect_message_eq("k".to_owned()).await;
    probe.expect_no_message(Duration::from_secs(2)).await;
    system.terminate().await;
}

#[tokio::test(start_paused = true)]
async fn restart_cancels_timers() {
    let system = ActorSystem::new("timer-restart").unwrap();
    let mut probe = TestProbe::new(&system);
    let ticker = spawn_ticker(&system, &probe);
    ticker.tell(TickerMsg::Single("single", 100));
    ticker.tell(TickerMsg::Periodic("periodic", 50));
    ticker.tell(TickerMsg::Fail);
    ticker
        .ask(TickerMsg::Ping, Duration::from_secs(1))
        .await
        .unwrap();
    probe.expect_no_message(Duration::from_secs(2)).await;
    system.terminate().await;
}
