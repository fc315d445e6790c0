//! Mailbox configuration.
//!
//! Every actor has one mailbox with two queues: system messages (stop, watch notifications,
//! child termination) and user messages. System messages overtake user messages. An actor
//! handles at most [`ActorSystemConfig::throughput`](crate::ActorSystemConfig::throughput)
//! messages per turn before it yields its thread to other actors.

use std::num::NonZeroUsize;

/// Capacity and overflow behaviour of an actor's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MailboxConfig {
    /// No limit on queued user messages; the default.
    #[default]
    Unbounded,
    /// At most `capacity` queued user messages.
    ///
    /// [`ActorRef::tell`](crate::ActorRef::tell) on a full mailbox applies `overflow`;
    /// [`ActorRef::try_tell`](crate::ActorRef::try_tell) gives the message back;
    /// [`ActorRef::send`](crate::ActorRef::send) waits until there is room.
    Bounded {
        /// Maximum number of queued user messages.
        capacity: NonZeroUsize,
        /// Behaviour of `tell` when the mailbox is full.
        overflow: Overflow,
    },
}

impl MailboxConfig {
    /// A bounded mailbox whose overflow drops the new message to dead letters.
    ///
    /// # Panics
    ///
    /// Panics when `capacity` is zero.
    pub fn bounded(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).expect("mailbox capacity must be at least 1");
        MailboxConfig::Bounded {
            capacity,
            overflow: Overflow::DropNewest,
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        match self {
            MailboxConfig::Unbounded => None,
            MailboxConfig::Bounded { capacity, .. } => Some(capacity.get()),
        }
    }
}

/// Behaviour of `tell` when a bounded mailbox is full. Every dropped message is counted in dead
/// letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the message being sent.
    #[default]
    DropNewest,
    /// Drop the oldest queued message and enqueue the new one.
    DropOldest,
}
