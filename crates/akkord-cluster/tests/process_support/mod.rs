//! Starts `akkord-cluster-test-node` processes and waits on what they print.
//!
//! Every wait has a deadline and reads the children's output; nothing sleeps in place of a
//! condition. Children are killed when their [`Node`] is dropped, also when a test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// System name every test node uses.
pub const SYSTEM: &str = "cluster-test";

/// Path of the test node binary.
pub const NODE_BINARY: &str = env!("CARGO_BIN_EXE_akkord-cluster-test-node");

/// Output of one child, with a condition variable signalled on every new line.
#[derive(Default)]
struct Output {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

/// One running test node.
pub struct Node {
    /// Label for failure messages.
    pub name: String,
    /// The node's incarnation as printed, `akkord://system@host:port#uid`.
    pub unique_address: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Output>,
    /// File the node's log (stderr) goes to.
    pub log_path: std::path::PathBuf,
}

/// One `members` line: convergence, leader and `(node, status, reachable)` per member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members {
    /// Whether the node's state has converged.
    pub converged: bool,
    /// The leader, `-` when there is none.
    pub leader: String,
    /// Members as `(unique address, status, reachable)`.
    pub members: Vec<(String, String, bool)>,
}

impl Members {
    /// Counts members with `status` that are reachable.
    pub fn reachable_with_status(&self, status: &str) -> usize {
        self.members
            .iter()
            .filter(|(_, s, reachable)| s == status && *reachable)
            .count()
    }

    /// Returns the entry of `node`.
    pub fn member(&self, node: &str) -> Option<&(String, String, bool)> {
        self.members.iter().find(|(n, _, _)| n == node)
    }
}

impl Output {
    /// Locks the lines; a panic of a waiting test thread must not take the reader down.
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<String>, bool)> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Node {
    /// Starts a node with `command`, whose last arguments are the node's options; `name`
    /// labels failure messages.
    pub fn spawn(name: &str, mut command: Command) -> Node {
        let log_path = std::env::temp_dir().join(format!(
            "akkord-cluster-test-{}-{name}.log",
            std::process::id()
        ));
        let log = std::fs::File::create(&log_path).expect("create the node log file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start node {name}: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let output = Arc::new(Output::default());
        let reader_output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut lines = reader_output.lock();
                lines.0.push(line);
                reader_output.changed.notify_all();
            }
            reader_output.lock().1 = true;
            reader_output.changed.notify_all();
        });
        let mut node = Node {
            name: name.to_owned(),
            unique_address: String::new(),
            child,
            stdin,
            output,
            log_path,
        };
        let line = node.wait_for_line(Duration::from_secs(20), |line| line.starts_with("self "));
        node.unique_address = line["self ".len()..].to_owned();
        node
    }

    /// Starts a node on loopback at `port` with `seeds` and extra `options`.
    pub fn spawn_local(name: &str, port: u16, seeds: &[u16], options: &[&str]) -> Node {
        let mut command = Command::new(NODE_BINARY);
        command.args(["--port", &port.to_string()]);
        for seed in seeds {
            command.args(["--seed", &local_address(*seed)]);
        }
        command.args(options);
        Node::spawn(name, command)
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (such as `STOP`, `CONT`) to the process with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Writes a command line to the node's stdin.
    pub fn command(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Returns all lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().0.clone()
    }

    /// Returns true when some printed line satisfies `predicate`.
    pub fn printed(&self, predicate: impl Fn(&str) -> bool) -> bool {
        self.output.lock().0.iter().any(|line| predicate(line))
    }

    /// Waits until the node prints a line for which `predicate` holds, searching from the
    /// start of its output; returns that line.
    ///
    /// # Panics
    ///
    /// Panics with the tail of the output when `timeout` passes first or stdout closes.
    pub fn wait_for_line(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lock();
        loop {
            if let Some(line) = lines.0.iter().find(|line| predicate(line)) {
                return line.clone();
            }
            let now = Instant::now();
            if now >= deadline || lines.1 {
                let tail: Vec<String> = lines.0.iter().rev().take(8).cloned().collect();
                let closed = lines.1;
                drop(lines);
                panic!(
                    "node {} ({}): no expected line within {timeout:?} (stdout closed: {}); last lines, newest first: {tail:#?}; log: {}",
                    self.name,
                    self.unique_address,
                    closed,
                    self.log_path.display()
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until the latest `members` line satisfies `predicate`; returns it.
    ///
    /// # Panics
    ///
    /// Panics with the latest `members` line when `timeout` passes first.
    pub fn wait_for_members(
        &self,
        timeout: Duration,
        predicate: impl Fn(&Members) -> bool,
    ) -> Members {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lock();
        loop {
            let latest = lines.0.iter().rev().find_map(|line| parse_members(line));
            if let Some(members) = latest.as_ref().filter(|members| predicate(members)) {
                return members.clone();
            }
            let now = Instant::now();
            if now >= deadline || lines.1 {
                drop(lines);
                panic!(
                    "node {} ({}): members not as expected within {timeout:?}; latest: {latest:#?}; log: {}",
                    self.name,
                    self.unique_address,
                    self.log_path.display()
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until the process exits; returns true when it did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Polls the exit status; std offers no wait with a timeout on a child.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Resume a stopped child first, so it can be reaped.
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
        // Keep the log only when the test failed, for its failure message points at it.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// Returns `count` distinct free TCP ports on 127.0.0.1, found by binding port 0 and
/// releasing the listeners. Another process may take one in between, which the test would
/// see as a bind failure of a node.
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// Returns the address of a loopback test node at `port`.
pub fn local_address(port: u16) -> String {
    format!("akkord://{SYSTEM}@127.0.0.1:{port}")
}

/// Parses a `members converged=<bool> leader=<node> <node>/<status>/<r|u>,...` line.
pub fn parse_members(line: &str) -> Option<Members> {
    let rest = line.strip_prefix("members ")?;
    let mut parts = rest.split(' ');
    let converged = parts.next()?.strip_prefix("converged=")? == "true";
    let leader = parts.next()?.strip_prefix("leader=")?.to_owned();
    let list = parts.next().unwrap_or("");
    let members = list
        .split(',')
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let mut fields = entry.rsplitn(3, '/');
            let reachable = fields.next()? == "r";
            let status = fields.next()?.to_owned();
            let node = fields.next()?.to_owned();
            Some((node, status, reachable))
        })
        .collect();
    Some(Members {
        converged,
        leader,
        members,
    })
}

/// Returns true when `members` lists exactly `count` members, all Up and reachable, and
/// has converged.
pub fn all_up(members: &Members, count: usize) -> bool {
    members.converged
        && members.members.len() == count
        && members.reachable_with_status("Up") == count
}
