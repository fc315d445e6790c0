//! Dead letters: messages that could not be delivered.
//!
//! Every dead letter is counted, published on the event stream as a [`DeadLetter`], and
//! logged at `warn`. Logging is rate-limited: at most
//! [`ActorSystemConfig::dead_letter_log_limit`](crate::ActorSystemConfig::dead_letter_log_limit)
//! lines per window of
//! [`ActorSystemConfig::dead_letter_log_window`](crate::ActorSystemConfig::dead_letter_log_window),
//! after which one line reports how many were suppressed. While the system shuts down, dead
//! letters are counted but not logged, since stopping actors with queued messages is expected
//! then.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

/// Reason a message became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The recipient had stopped, or stopped with the message still queued.
    RecipientStopped,
    /// The recipient's bounded mailbox was full.
    MailboxFull,
    /// The recipient's stash was full.
    StashFull,
    /// A router had no routee to send the message to.
    NoRoutee,
    /// A queue towards another node was full.
    OutboundQueueFull,
    /// The message could not be serialized for another node, or was too large for its lane.
    NotSerializable,
    /// A message from another node named an actor that is unknown here, or one that does not
    /// accept the message's type.
    UnknownRecipient,
}

/// A message that could not be delivered, as published on the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Path of the intended recipient.
    pub recipient: String,
    /// Rust type name of the message.
    pub message_type: &'static str,
    /// Reason it was not delivered.
    pub reason: DeadLetterReason,
}

pub(crate) struct DeadLetters {
    count: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    log: Mutex<LogWindow>,
    limit: u32,
    window: Duration,
}

struct LogWindow {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl DeadLetters {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            count: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            log: Mutex::new(LogWindow {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
            limit,
            window,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, letter: &DeadLetter) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut log) = self.log.lock() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(log.started) >= self.window {
            if log.suppressed > 0 {
                warn!(
                    suppressed = log.suppressed,
                    window = ?self.window,
                    "dead letters were not logged in the last window"
                );
            }
            log.started = now;
            log.logged = 0;
            log.suppressed = 0;
        }
        if log.logged < self.limit {
            log.logged += 1;
            warn!(
                recipient = %letter.recipient,
                message_type = letter.message_type,
                reason = ?letter.reason,
                total = self.count(),
                "dead letter"
            );
            if log.logged == self.limit {
                warn!(
                    limit = self.limit,
                    window = ?self.window,
                    "dead letter log limit reached; further dead letters in this window are \
                     only counted"
                );
            }
        } else {
            log.suppressed += 1;
        }
    }
}
