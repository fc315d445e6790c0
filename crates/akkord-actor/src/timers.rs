//! Per-actor timers.
//!
//! Each timer has a key and a generation. Starting a timer with a key that is in use
//! replaces the old timer; cancelling, replacing, restarting or stopping the actor retires
//! the generation, and a message whose generation is retired is dropped when it reaches the
//! front of the mailbox. So a message from a cancelled or superseded timer is never handled.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::actor_ref::{ActorRef, Envelope};

/// Name of a timer; starting a timer under a key in use replaces the old one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TimerKey(Cow<'static, str>);

impl fmt::Debug for TimerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<&'static str> for TimerKey {
    fn from(key: &'static str) -> Self {
        TimerKey(Cow::Borrowed(key))
    }
}

impl From<String> for TimerKey {
    fn from(key: String) -> Self {
        TimerKey(Cow::Owned(key))
    }
}

struct TimerEntry {
    generation: u64,
    periodic: bool,
    task: JoinHandle<()>,
}

pub(crate) struct Timers<M> {
    runtime: Handle,
    by_key: HashMap<TimerKey, TimerEntry>,
    by_generation: HashMap<u64, TimerKey>,
    next_generation: u64,
    _message: std::marker::PhantomData<fn(M)>,
}

impl<M: Send + 'static> Timers<M> {
    pub(crate) fn new(runtime: Handle) -> Self {
        Self {
            runtime,
            by_key: HashMap::new(),
            by_generation: HashMap::new(),
            next_generation: 0,
            _message: std::marker::PhantomData,
        }
    }

    pub(crate) fn start_single(
        &mut self,
        key: TimerKey,
        target: ActorRef<M>,
        msg: M,
        delay: Duration,
    ) {
        let generation = self.retire_and_next(&key);
        let task = self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = target.deliver(Envelope::Timer { generation, msg }, false);
        });
        self.insert(key, generation, false, task);
    }

    pub(crate) fn start_periodic(
        &mut self,
        key: TimerKey,
        target: ActorRef<M>,
        msg: M,
        initial_delay: Duration,
        interval: Duration,
        fixed_rate: bool,
    ) where
        M: Clone,
    {
        let generation = self.retire_and_next(&key);
        // A zero interval would make the task spin; treat it as the smallest non-zero period.
        let interval = interval.max(Duration::from_millis(1));
        let task = self.runtime.spawn(async move {
            let start = tokio::time::Instant::now() + initial_delay;
            let mut ticks = tokio::time::interval_at(start, interval);
            ticks.set_missed_tick_behavior(if fixed_rate {
                MissedTickBehavior::Burst
            } else {
                MissedTickBehavior::Delay
            });
            loop {
                ticks.tick().await;
                let envelope = Envelope::Timer {
                    generation,
                    msg: msg.clone(),
                };
                if target.deliver(envelope, false).is_err() {
                    // Stopped, or a full bounded mailbox: skip this tick.
                    if target.to_any().is_terminated() {
                        return;
                    }
                }
            }
        });
        self.insert(key, generation, true, task);
    }

    fn retire_and_next(&mut self, key: &TimerKey) -> u64 {
        self.cancel(key);
        self.next_generation += 1;
        self.next_generation
    }

    fn insert(&mut self, key: TimerKey, generation: u64, periodic: bool, task: JoinHandle<()>) {
        self.by_generation.insert(generation, key.clone());
        self.by_key.insert(
            key,
            TimerEntry {
                generation,
                periodic,
                task,
            },
        );
    }

    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some(entry) = self.by_key.remove(key) {
            entry.task.abort();
            self.by_generation.remove(&entry.generation);
        }
    }

    pub(crate) fn cancel_all(&mut self) {
        for (_, entry) in self.by_key.drain() {
            entry.task.abort();
        }
        self.by_generation.clear();
    }

    pub(crate) fn is_active(&self, key: &TimerKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Returns whether a message of `generation` may be handled; a single timer is done then.
    pub(crate) fn accept(&mut self, generation: u64) -> bool {
        let Some(key) = self.by_generation.get(&generation) else {
            return false;
        };
        let periodic = self.by_key.get(key).is_some_and(|entry| entry.periodic);
        if !periodic {
            let key = key.clone();
            self.by_generation.remove(&generation);
            self.by_key.remove(&key);
        }
        true
    }
}

impl<M> Drop for Timers<M> {
    fn drop(&mut self) {
        for entry in self.by_key.values() {
            entry.task.abort();
        }
    }
}
