//! Messages and actors of the remote test node, shared with the tests that start it.

use akkord_actor::{Actor, ActorRef, ActorResult, Context};
use akkord_remote::serialization::SerializationRegistry;
use serde::{Deserialize, Serialize};

/// Request to reply with `text` to `reply_to`; the text `stop` stops the echo actor instead.
#[derive(Debug, Serialize, Deserialize)]
pub struct Echo {
    /// Text to send back.
    pub text: String,
    /// Recipient of the text.
    pub reply_to: ActorRef<String>,
}

/// Request to the commander actor of a test node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Command {
    /// Ask `target` to echo `text`, then send `answer: <reply>` to `reply_to`, or
    /// `failed: <error>`.
    AskBack {
        /// The echo actor to ask, usually on another node.
        target: ActorRef<Echo>,
        /// Text to echo.
        text: String,
        /// Recipient of the answer.
        reply_to: ActorRef<String>,
    },
}

/// A large message; the sink replies with its length.
#[derive(Debug, Serialize, Deserialize)]
pub struct Blob {
    /// Payload bytes.
    pub bytes: Vec<u8>,
    /// Recipient of the length.
    pub reply_to: ActorRef<u64>,
}

/// Path of the sink, whose messages use the large lane.
pub const SINK_PATH: &str = "/user/sink";

/// Returns the registry of every message type the test node and its tests exchange.
pub fn registry() -> SerializationRegistry {
    let mut registry = SerializationRegistry::new();
    let registered = registry
        .register::<String>("test.Text")
        .and_then(|()| registry.register::<u64>("test.Count"))
        .and_then(|()| registry.register::<Echo>("test.Echo"))
        .and_then(|()| registry.register::<Command>("test.Command"))
        .and_then(|()| registry.register::<Blob>("test.Blob"));
    if let Err(error) = registered {
        panic!("test registry is inconsistent: {error}");
    }
    registry
}

/// Replies to each [`Echo`] with its text.
pub struct EchoActor;

impl Actor for EchoActor {
    type Msg = Echo;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Echo) -> ActorResult {
        if msg.text == "stop" {
            ctx.stop_self();
        } else {
            msg.reply_to.tell(msg.text);
        }
        Ok(())
    }
}

/// Handles [`Command`]s.
pub struct CommanderActor;

impl Actor for CommanderActor {
    type Msg = Command;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Command) -> ActorResult {
        let Command::AskBack {
            target,
            text,
            reply_to,
        } = msg;
        tokio::spawn(async move {
            let reply = target
                .ask(
                    |reply| Echo {
                        text,
                        reply_to: reply,
                    },
                    std::time::Duration::from_secs(10),
                )
                .await;
            match reply {
                Ok(answer) => reply_to.tell(format!("answer: {answer}")),
                Err(error) => reply_to.tell(format!("failed: {error}")),
            }
        });
        Ok(())
    }
}

/// Replies to each [`Blob`] with its length.
pub struct SinkActor;

impl Actor for SinkActor {
    type Msg = Blob;

    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: Blob) -> ActorResult {
        msg.reply_to.tell(msg.bytes.len() as u64);
        Ok(())
    }
}
