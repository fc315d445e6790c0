//! The `akkord` program as a user runs it: bad configuration, a port in use, and the
//! management commands against a running single-node cluster.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AKKORD: &str = env!("CARGO_BIN_EXE_akkord");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the node when the test ends, also on failure.
struct NodeGuard(Child);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_flag_value_rejected() {
    let output = Command::new(AKKORD)
        .args(["node", "--port", "99999"])
        .env_remove("AKKORD_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("port"), "{stderr}");
    assert!(stderr.contains("99999"), "{stderr}");
    assert!(stderr.contains("0 to 65535"), "{stderr}");
}

#[test]
fn bad_file_and_env_values_rejected() {
    let dir = std::env::temp_dir().join(format!("akkord-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(&file, "roles = [\"worker\"]\nstable_after_secs = 0\n").unwrap();
    let output = Command::new(AKKORD)
        .args(["node", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stable_after_secs"), "{stderr}");
    assert!(stderr.contains("1 to 3600"), "{stderr}");

    let output = Command::new(AKKORD)
        .arg("node")
        .env("AKKORD_SEED_NODES", "127.0.0.1:2552")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AKKORD_SEED_NODES"), "{stderr}");
    assert!(stderr.contains("akkord://"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn port_in_use_says_so() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let output = Command::new(AKKORD)
        .args([
            "node",
            "--port",
            &port.to_string(),
            "--management-port",
            "0",
        ])
        .env_remove("AKKORD_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}

#[test]
fn members_and_leave_via_management() {
    let port = free_port();
    let management = free_port();
    let address = format!("akkord://cli-test@127.0.0.1:{port}");
    let mut child = Command::new(AKKORD)
        .args(["node", "--system", "cli-test", "--port", &port.to_string()])
        .args(["--seed-nodes", &address])
        .args(["--management-port", &management.to_string()])
        .arg("--exit-when-stdin-closes")
        .env_remove("AKKORD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut node = NodeGuard(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("node akkord://cli-test@127.0.0.1:"),
        "{first}"
    );

    let endpoint = format!("127.0.0.1:{management}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = loop {
        let output = Command::new(AKKORD)
            .args(["members", "--endpoint", &endpoint])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && text.contains("Up") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not list itself Up within 30 s: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listing.contains(&format!("127.0.0.1:{port}")), "{listing}");

    let output = Command::new(AKKORD)
        .args(["leave", &address, "--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A single node that leaves is removed and stops by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            assert!(status.success(), "node exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop after leaving"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let output = Command::new(AKKORD)
        .args(["members", "--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "members answered after the node stopped"
    );
}
