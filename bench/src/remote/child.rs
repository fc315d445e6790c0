//! The serving child process: started by the measuring parent as a copy of this binary with
//! `--remote-child FRAMEWORK`, it announces its address on stdout and serves until its
//! standard input closes. The parent kills it when the handle drops.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::RemoteFramework;

/// Start of the stdout line that carries the serving address.
pub(super) const ADDRESS_PREFIX: &str = "remote-address=";
/// Upper bound on the child's start-up, until it announces its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on the child's graceful exit after its standard input closes.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The child stops by itself after this long, even when its parent never closes its input.
pub(super) const CHILD_LIFETIME: Duration = Duration::from_secs(600);

/// A running serving child; killed on drop unless [`Child::stop`] ended it first.
pub(super) struct Child {
    process: std::process::Child,
    address: String,
}

impl Child {
    /// Starts the serving child for `framework` with `workers` runtime worker threads (one
    /// per core when `None`) and waits for its address.
    ///
    /// # Errors
    ///
    /// Returns an error when the child cannot start, exits, or announces nothing within
    /// [`START_TIMEOUT`].
    pub(super) fn start(
        framework: RemoteFramework,
        workers: Option<usize>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the benchmark binary")?;
        let mut command = Command::new(exe);
        command.args(["--remote-child", framework.name()]);
        if let Some(count) = workers {
            command.args(["--workers", &count.to_string()]);
        }
        let mut process = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the serving child process")?;
        let stdout = process
            .stdout
            .take()
            .context("the serving child has no stdout pipe")?;
        let mut child = Self {
            process,
            address: String::new(),
        };
        let (found, announced) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let address = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.strip_prefix(ADDRESS_PREFIX)
                    .map(|address| address.trim().to_owned())
            });
            let _ = found.send(address);
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines.map_while(Result::ok) {}
        });
        match announced.recv_timeout(START_TIMEOUT) {
            Ok(Some(address)) => child.address = address,
            Ok(None) => bail!(
                "the {} serving child exited without announcing its address",
                framework.name()
            ),
            Err(_) => bail!(
                "the {} serving child announced no address within {START_TIMEOUT:?}",
                framework.name()
            ),
        }
        Ok(child)
    }

    /// The address the child serves on, as it announced it.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// Closes the child's input and waits up to [`STOP_TIMEOUT`] for it to exit; the drop
    /// kills it when it has not.
    pub(super) fn stop(mut self) {
        drop(self.process.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
        }
        let _ = self.process.wait();
    }
}

/// Resolves when this process's standard input closes (the parent stopped or died) or after
/// [`CHILD_LIFETIME`].
pub(super) async fn parent_gone() {
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0_u8; 64];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = tokio::time::timeout(CHILD_LIFETIME, on_close).await;
}
