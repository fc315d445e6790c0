//! Reliable delivery of system messages, without I/O.
//!
//! System messages (watch, unwatch, terminated) must arrive exactly once and in order even
//! when a connection breaks and frames are lost. The sender numbers each message from 1,
//! keeps it until a cumulative acknowledgement covers it and resends every unacknowledged
//! message each resend interval. The receiver delivers only the next expected number, drops
//! duplicates and messages after a gap, and acknowledges the highest number delivered so
//! far after every message it receives.
//!
//! Invariants:
//! - The receiver delivers sequence numbers 1, 2, 3, … each exactly once.
//! - The sender holds at most `buffer_size` unacknowledged messages; one more is an error
//!   that the caller answers by quarantining the peer incarnation.
//! - A message unacknowledged for `give_up_after` is an error with the same answer.
//!
//! One sender and one receiver exist per pair of incarnations; a new incarnation starts
//! again from 1 with fresh state.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of system-message redelivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeliverySettings {
    /// Interval between resends of unacknowledged messages. Default 1 s, Akka's
    /// `system-message-resend-interval`. Shorter recovers faster after a lost frame and
    /// costs more duplicate traffic while a peer is slow.
    pub resend_interval: Duration,
    /// Maximum number of unacknowledged messages per peer incarnation. Default 20000,
    /// Akka's `system-message-buffer-size`. Exceeding it quarantines the peer.
    pub buffer_size: usize,
    /// Time after which an unacknowledged message quarantines the peer. Default 6 h, Akka's
    /// `give-up-system-message-after`. Shorter makes a silent peer fail sooner, at the risk
    /// of quarantining a peer that was only paused.
    pub give_up_after: Duration,
}

impl Default for RedeliverySettings {
    fn default() -> Self {
        Self {
            resend_interval: Duration::from_secs(1),
            buffer_size: 20_000,
            give_up_after: Duration::from_secs(6 * 60 * 60),
        }
    }
}

/// Failure of system-message delivery; the caller quarantines the peer incarnation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedeliveryError {
    /// More unacknowledged messages than the buffer holds.
    #[error("system message buffer full with {limit} unacknowledged messages: the peer does not acknowledge")]
    BufferOverflow {
        /// Buffer size that was exceeded.
        limit: usize,
    },
    /// A message stayed unacknowledged for longer than the give-up time.
    #[error("system message {seq_nr} unacknowledged for {waited:?}, longer than the give-up time")]
    GaveUp {
        /// Sequence number of the oldest unacknowledged message.
        seq_nr: u64,
        /// Time since it was first sent.
        waited: Duration,
    },
}

/// Sending side of system-message redelivery towards one peer incarnation.
#[derive(Debug)]
pub struct SystemMessageSender<M> {
    settings: RedeliverySettings,
    next_seq_nr: u64,
    unacked: VecDeque<Pending<M>>,
    next_resend: Option<Instant>,
}

#[derive(Debug)]
struct Pending<M> {
    seq_nr: u64,
    message: M,
    first_sent: Instant,
}

impl<M: Clone> SystemMessageSender<M> {
    /// Creates a sender whose first message gets sequence number 1.
    pub fn new(settings: RedeliverySettings) -> Self {
        Self {
            settings,
            next_seq_nr: 1,
            unacked: VecDeque::new(),
            next_resend: None,
        }
    }

    /// Numbers `message` and keeps it for resending; returns the sequence number to send.
    ///
    /// # Errors
    ///
    /// Returns [`RedeliveryError::BufferOverflow`] when `buffer_size` messages are already
    /// unacknowledged; the message is not kept.
    pub fn send(&mut self, message: M, now: Instant) -> Result<u64, RedeliveryError> {
        if self.unacked.len() >= self.settings.buffer_size {
            return Err(RedeliveryError::BufferOverflow {
                limit: self.settings.buffer_size,
            });
        }
        let seq_nr = self.next_seq_nr;
        self.next_seq_nr += 1;
        self.unacked.push_back(Pending {
            seq_nr,
            message,
            first_sent: now,
        });
        if self.next_resend.is_none() {
            self.next_resend = Some(now + self.settings.resend_interval);
        }
        Ok(seq_nr)
    }

    /// Drops every message up to and including `cumulative`.
    ///
    /// An acknowledgement of a number never sent is ignored beyond what was sent.
    pub fn on_ack(&mut self, cumulative: u64, now: Instant) {
        let before = self.unacked.len();
        while self
            .unacked
            .front()
            .is_some_and(|pending| pending.seq_nr <= cumulative)
        {
            self.unacked.pop_front();
        }
        if self.unacked.is_empty() {
            self.next_resend = None;
        } else if self.unacked.len() < before {
            self.next_resend = Some(now + self.settings.resend_interval);
        }
    }

    /// Returns the messages to resend at `now`, oldest first, or nothing when no resend is due.
    ///
    /// # Errors
    ///
    /// Returns [`RedeliveryError::GaveUp`] when the oldest message has waited longer than
    /// `give_up_after`.
    pub fn tick(&mut self, now: Instant) -> Result<Vec<(u64, M)>, RedeliveryError> {
        if let Some(oldest) = self.unacked.front() {
            let waited = now.saturating_duration_since(oldest.first_sent);
            if waited >= self.settings.give_up_after {
                return Err(RedeliveryError::GaveUp {
                    seq_nr: oldest.seq_nr,
                    waited,
                });
            }
        }
        match self.next_resend {
            Some(due) if now >= due => {
                self.next_resend = Some(now + self.settings.resend_interval);
                Ok(self
                    .unacked
                    .iter()
                    .map(|pending| (pending.seq_nr, pending.message.clone()))
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Returns the number of unacknowledged messages.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Returns the unacknowledged messages, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = &M> + '_ {
        self.unacked.iter().map(|pending| &pending.message)
    }

    /// Returns when the next resend is due, if any message is unacknowledged.
    pub fn next_resend(&self) -> Option<Instant> {
        self.next_resend
    }
}

/// Decision of the receiver about one received system message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// True when the message is the next in order and must be delivered now.
    pub deliver: bool,
    /// Cumulative acknowledgement to send back.
    pub ack: u64,
}

/// Receiving side of system-message redelivery from one peer incarnation.
#[derive(Clone, Debug, Default)]
pub struct SystemMessageReceiver {
    delivered: u64,
}

impl SystemMessageReceiver {
    /// Creates a receiver that expects sequence number 1 next.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides about message `seq_nr`: deliver it when it is the next one, else drop it.
    pub fn receive(&mut self, seq_nr: u64) -> Receipt {
        let deliver = seq_nr == self.delivered + 1;
        if deliver {
            self.delivered = seq_nr;
        }
        Receipt {
            deliver,
            ack: self.delivered,
        }
    }

    /// Returns the highest sequence number delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

#[cfg(test)]
#[path = "redelivery_tests.rs"]
mod tests;
