//! Errors of the local runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Failure of an actor: an error returned by a handler or hook, or a panic inside one.
///
/// Cheap to clone, because one failure is reported to the supervisor, to watchers and to the
/// log.
#[derive(Clone)]
pub struct ActorError {
    kind: Arc<ActorErrorKind>,
}

/// What an [`ActorError`] is.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActorErrorKind {
    /// A handler or hook returned an error.
    Handler(Box<dyn std::error::Error + Send + Sync>),
    /// A handler or hook panicked; the panic message, when it was a string.
    Panic(String),
    /// A watched child failed and the `child_failed` hook did not handle it.
    ChildFailed {
        /// Path of the child.
        child: String,
        /// The child's failure.
        cause: ActorError,
    },
    /// A message the actor stashed did not fit in the stash.
    StashOverflow {
        /// Capacity of the stash.
        capacity: usize,
    },
}

impl ActorError {
    /// Creates a failure from any error value.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::from_kind(ActorErrorKind::Handler(error.into()))
    }

    /// Creates a failure from a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new(message.to_string())
    }

    pub(crate) fn from_kind(kind: ActorErrorKind) -> Self {
        Self {
            kind: Arc::new(kind),
        }
    }

    pub(crate) fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_owned()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "panic with a non-string payload".to_owned()
        };
        Self::from_kind(ActorErrorKind::Panic(message))
    }

    /// Returns what the failure is.
    pub fn kind(&self) -> &ActorErrorKind {
        &self.kind
    }

    /// Returns true when the failure was a panic.
    pub fn is_panic(&self) -> bool {
        matches!(*self.kind, ActorErrorKind::Panic(_))
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ActorErrorKind::Handler(error) => write!(f, "{error}"),
            ActorErrorKind::Panic(message) => write!(f, "panicked: {message}"),
            ActorErrorKind::ChildFailed { child, cause } => {
                write!(
                    f,
                    "child {child} failed and the failure was not handled: {cause}"
                )
            }
            ActorErrorKind::StashOverflow { capacity } => {
                write!(f, "stash is full ({capacity} messages)")
            }
        }
    }
}

impl fmt::Debug for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.kind, f)
    }
}

impl<E> From<E> for ActorError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

/// Result of a handler or hook; an `Err` is a failure handled by the actor's supervisor.
pub type ActorResult = Result<(), ActorError>;

/// Why a message could not be delivered; the message is given back.
#[derive(thiserror::Error)]
pub enum SendError<M> {
    /// The recipient has stopped.
    #[error("recipient {path} has stopped")]
    Stopped {
        /// The message that was not delivered.
        message: M,
        /// Path of the recipient.
        path: String,
    },
    /// The recipient's bounded mailbox is full.
    #[error("mailbox of {path} is full ({capacity} messages)")]
    MailboxFull {
        /// The message that was not delivered.
        message: M,
        /// Path of the recipient.
        path: String,
        /// Capacity of the mailbox.
        capacity: usize,
    },
}

impl<M> SendError<M> {
    /// Returns the message that was not delivered.
    pub fn into_message(self) -> M {
        match self {
            SendError::Stopped { message, .. } | SendError::MailboxFull { message, .. } => message,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Stopped { path, .. } => f
                .debug_struct("Stopped")
                .field("path", path)
                .finish_non_exhaustive(),
            SendError::MailboxFull { path, capacity, .. } => f
                .debug_struct("MailboxFull")
                .field("path", path)
                .field("capacity", capacity)
                .finish_non_exhaustive(),
        }
    }
}

/// Failure of an ask.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// No reply arrived within the timeout.
    #[error("ask to {path} timed out after {timeout:?} without a reply")]
    Timeout {
        /// Path of the target.
        path: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The target had stopped, or stopped before it replied.
    #[error("ask to {path} failed: the target has stopped")]
    TargetStopped {
        /// Path of the target.
        path: String,
    },
    /// The target dropped the reply ref without replying.
    #[error("ask to {path} failed: the target dropped the request without replying")]
    NoReply {
        /// Path of the target.
        path: String,
    },
    /// The target's bounded mailbox was full.
    #[error("ask to {path} failed: its mailbox is full")]
    MailboxFull {
        /// Path of the target.
        path: String,
    },
}

/// Failure to spawn an actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The parent already has a child with this name.
    #[error("an actor named {name:?} already exists under {parent}; choose another name")]
    NameTaken {
        /// Path of the parent.
        parent: String,
        /// The name that is taken.
        name: String,
    },
    /// The name is empty, starts with `$` or contains `/`, `#` or whitespace.
    #[error(
        "invalid actor name {0:?}: use a non-empty name without '/', '#' or whitespace, \
         not starting with '$'"
    )]
    InvalidName(String),
    /// The parent is stopping or has stopped, or the system is terminating.
    #[error("cannot spawn under {parent}: it is stopping or has stopped")]
    ParentStopped {
        /// Path of the parent.
        parent: String,
    },
}
