//! Local actor runtime of akkord.
//!
//! An [`Actor`] owns its state and handles one message at a time; other code talks to it
//! through a typed [`ActorRef`]. Actors form a hierarchy under an [`ActorSystem`]: each actor
//! is started by a parent, which chooses its [`SupervisorStrategy`], and stops with it.
//!
//! - Mailboxes: unbounded by default, or bounded with an overflow policy
//!   ([`MailboxConfig`]); system messages overtake user messages.
//! - Supervision: stop, resume, restart with a limit, restart with backoff.
//! - Death watch: [`Context::watch`], with exactly one notification per watch.
//! - Ask: [`ActorRef::ask`] with a timeout and typed errors; [`Context::pipe_to_self`].
//! - Timers, stash, routers ([`router`]), the [`EventStream`], dead letters,
//!   the [`Receptionist`] and [`CoordinatedShutdown`].
//!
//! Message ordering and delivery guarantees are described in `docs/delivery.md`, and
//! supervision semantics in `docs/supervision.md`, in the repository.
//!
//! # Example
//!
//! ```
//! use akkord_actor::{Actor, ActorResult, ActorSystem, Context, Props};
//!
//! struct Greeter;
//!
//! impl Actor for Greeter {
//!     type Msg = String;
//!
//!     async fn handle(&mut self, ctx: &mut Context<Self>, name: String) -> ActorResult {
//!         println!("hello, {name}, from {}", ctx.path());
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let system = ActorSystem::new("hello")?;
//! let greeter = system.spawn("greeter", Props::new(|| Greeter))?;
//! greeter.tell("world".to_owned());
//! system.terminate().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod actor;
mod actor_ref;
pub mod address;
mod cell;
mod context;
mod dead_letters;
mod error;
mod event_stream;
pub mod fast_hash;
pub mod mailbox;
mod receptionist;
pub mod remote_support;
pub mod router;
mod scheduler;
pub mod shutdown;
pub mod supervision;
mod system;
mod timers;

pub use actor::{Actor, Props, DEFAULT_STASH_CAPACITY};
pub use actor_ref::{ActorId, ActorRef, AnyActorRef, Terminated};
pub use context::Context;
pub use dead_letters::{DeadLetter, DeadLetterReason};
pub use error::{ActorError, ActorErrorKind, ActorResult, AskError, SendError, SpawnError};
pub use event_stream::EventStream;
pub use mailbox::{MailboxConfig, Overflow};
pub use receptionist::{Listing, Receptionist, ServiceKey};
pub use router::{GroupRouter, PoolRouter, RoutingLogic};
pub use shutdown::{CoordinatedShutdown, PhaseConfig, ShutdownError, ShutdownReason};
pub use supervision::{Backoff, RestartLimit, SupervisorStrategy};
pub use system::{ActorSystem, ActorSystemConfig, SystemError};
pub use timers::TimerKey;
