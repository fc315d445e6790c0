//! A 3|2 network partition between five node processes, each in its own Linux network
//! namespace: the minority downs itself and exits, the majority keeps three members.
//!
//! Needs root and `ip netns`; the test prints why it skipped otherwise. It creates six
//! namespaces named after the test's process id: one per node plus one with a bridge that
//! connects the nodes' veth pairs. Node addresses come from 10.213.7.0/24 and exist only
//! inside these namespaces. The partition is made of blackhole routes, so new connections
//! fail at once while open ones stall. Everything is deleted when [`Namespaces`] is dropped,
//! also on failure.

mod process_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process_support::{all_up, Node, NODE_BINARY, SYSTEM};

const SUBNET: &str = "10.213.7";
const PORT: &str = "2552";
const NODES: usize = 5;

/// The namespaces of one test run; deleted on drop.
struct Namespaces {
    bridge: String,
    nodes: Vec<String>,
}

impl Namespaces {
    /// Creates the bridge namespace and one namespace per node, wired through veth pairs.
    fn create() -> Namespaces {
        let pid = std::process::id();
        let namespaces = Namespaces {
            bridge: format!("akc{pid}br"),
            nodes: (0..NODES).map(|i| format!("akc{pid}n{i}")).collect(),
        };
        ip(&["netns", "add", &namespaces.bridge]);
        ip(&[
            "-n",
            &namespaces.bridge,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
        ]);
        ip(&["-n", &namespaces.bridge, "link", "set", "br0", "up"]);
        for (i, node) in namespaces.nodes.iter().enumerate() {
            let port = format!("p{i}");
            ip(&["netns", "add", node]);
            ip(&[
                "-n",
                &namespaces.bridge,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node,
            ]);
            ip(&[
                "-n",
                &namespaces.bridge,
                "link",
                "set",
                &port,
                "master",
                "br0",
            ]);
            ip(&["-n", &namespaces.bridge, "link", "set", &port, "up"]);
            ip(&["-n", node, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                node,
                "addr",
                "add",
                &format!("{}/24", host(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", node, "link", "set", "eth0", "up"]);
        }
        namespaces
    }

    /// Drops every packet from node `from` to node `to` with a blackhole route in `from`'s
    /// namespace.
    fn blackhole(&self, from: usize, to: usize) {
        ip(&[
            "-n",
            &self.nodes[from],
            "route",
            "add",
            "blackhole",
            &format!("{}/32", host(to)),
        ]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for namespace in self.nodes.iter().chain(std::iter::once(&self.bridge)) {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip` with `args`.
///
/// # Panics
///
/// Panics when it fails, naming the command.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn host(node: usize) -> String {
    format!("{SUBNET}.{}", node + 1)
}

fn seed(node: usize) -> String {
    format!("akkord://{SYSTEM}@{}:{PORT}", host(node))
}

/// Returns why this test cannot run here, or `None` when it can.
fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root".to_owned());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Some(format!("`ip` is not available: {error}")),
    }
}

#[test]
fn minority_downs_itself_majority_stays() {
    if let Some(reason) = skip_reason() {
        println!("skipped netns partition test: {reason}");
        return;
    }
    let namespaces = Namespaces::create();
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", &namespaces.nodes[i], NODE_BINARY]);
            command.args(["--host", &host(i), "--port", PORT, "--fast-sbr"]);
            command.args(["--seed", &seed(0), "--seed", &seed(1)]);
            Node::spawn(&format!("ns{i}"), command)
        })
        .collect();

    // 1. Five members Up and converged everywhere.
    for node in &nodes {
        node.wait_for_members(Duration::from_secs(40), |members| all_up(members, NODES));
    }

    // 2. Partition {0, 1, 2} | {3, 4} in both directions.
    let majority = [0, 1, 2];
    let minority = [3, 4];
    for &a in &majority {
        for &b in &minority {
            namespaces.blackhole(a, b);
            namespaces.blackhole(b, a);
        }
    }
    let partitioned = Instant::now();

    // 3. The minority downs itself (keep-majority, stable-after 7 s) and its processes
    // exit.
    for &i in &minority {
        let node = &mut nodes[i];
        assert!(
            node.wait_exit(Duration::from_secs(40)),
            "minority node {} did not exit within 40 s of the partition; log: {}",
            node.unique_address,
            node.log_path.display()
        );
        assert!(
            node.printed(|line| line.starts_with("shutdown ")),
            "minority node {} exited without running the coordinated shutdown",
            node.unique_address
        );
    }
    println!(
        "minority exited {:?} after the partition",
        partitioned.elapsed()
    );

    // 4. The majority carries on with its three members, Up and converged.
    let removed: Vec<String> = minority
        .iter()
        .map(|&i| nodes[i].unique_address.clone())
        .collect();
    for &i in &majority {
        let members = nodes[i].wait_for_members(Duration::from_secs(30), |members| {
            all_up(members, majority.len())
        });
        for node in &removed {
            assert!(members.member(node).is_none(), "{node} is still a member");
        }
        assert!(
            nodes[i]
                .wait_for_members(Duration::ZERO, |_| true)
                .converged
        );
    }
    println!(
        "majority of 3 converged {:?} after the partition",
        partitioned.elapsed()
    );
    drop(nodes);
    drop(namespaces);
}
