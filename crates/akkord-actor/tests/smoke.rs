mod common;

use std::time::Duration;

use akkord_actor::{ActorSystem, Props};
use common::{Counter, CounterMsg};

#[tokio::test]
async fn tell_and_ask_round_trip() {
    let system = ActorSystem::new("smoke").unwrap();
    let counter = system
        .spawn("counter", Props::new(Counter::default))
        .unwrap();
    for n in 1..=100 {
        counter.tell(CounterMsg::Add(n));
    }
    let total = counter
        .ask(CounterMsg::Get, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(total, 5050);
    assert_eq!(counter.path(), "/user/counter");
    system.terminate().await;
    assert!(system.is_terminated());
    assert!(counter.to_any().is_terminated());
}
