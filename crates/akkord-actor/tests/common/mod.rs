//! Small actors shared by the integration tests.
#![allow(dead_code)]

use akkord_actor::{Actor, ActorRef, ActorResult, Context};

/// Counts `Add` messages and answers `Get`; fails on `Fail`, panics on `Panic`.
#[derive(Debug)]
pub enum CounterMsg {
    Add(u64),
    Get(ActorRef<u64>),
    Fail,
    Panic,
}

#[derive(Default)]
pub struct Counter {
    pub total: u64,
}

impl Actor for Counter {
    type Msg = CounterMsg;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: CounterMsg) -> ActorResult {
        match msg {
            CounterMsg::Add(n) => self.total += n,
            CounterMsg::Get(reply_to) => reply_to.tell(self.total),
            CounterMsg::Fail => return Err(akkord_actor::ActorError::msg("asked to fail")),
            CounterMsg::Panic => panic!("asked to panic"),
        }
        Ok(())
    }
}
