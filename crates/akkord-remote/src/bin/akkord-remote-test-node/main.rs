//! A node for the remote tests: exposes an echo actor, a second echo actor to stop
//! (`victim`), a commander that asks other nodes, and a sink for large messages.
//!
//! Usage: `akkord-remote-test-node [PORT]` (default 0: any free port on 127.0.0.1). Prints
//! `ready <address> <uid>` on stdout once bound, and exits when stdin closes, so a node
//! never outlives the test that started it.

mod protocol;

use std::io::{BufRead, Write};

use akkord_actor::{ActorSystem, Props};
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use protocol::{registry, CommanderActor, EchoActor, SinkActor, SINK_PATH};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port.parse()?,
        None => 0,
    };
    let system = ActorSystem::new("test")?;
    let mut settings = RemoteSystemSettings::new("test");
    settings.transport.bind.set_port(port);
    settings.large_message_recipients.push(SINK_PATH.to_owned());
    let remote = RemoteSystem::bind(system.clone(), settings, registry()).await?;

    remote.expose("echo", &system.spawn("echo", Props::new(|| EchoActor))?)?;
    remote.expose("victim", &system.spawn("victim", Props::new(|| EchoActor))?)?;
    remote.expose(
        "commander",
        &system.spawn("commander", Props::new(|| CommanderActor))?,
    )?;
    remote.expose("sink", &system.spawn("sink", Props::new(|| SinkActor))?)?;

    let local = remote.local_address();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready {} {}", local.address, local.uid)?;
    stdout.flush()?;

    // Exit when the parent closes stdin or dies.
    tokio::task::spawn_blocking(|| {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                break;
            }
        }
    })
    .await?;
    remote.shutdown().await;
    system.terminate().await;
    Ok(())
}
