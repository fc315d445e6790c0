//! The multi-process demo on a small input, with a worker node killed midway, alone and
//! followed by the master's node: the lost chunks are handed out again, and the cluster's
//! count must equal the single-process count.

use std::process::Command;

const AKKORD: &str = env!("CARGO_BIN_EXE_akkord");

#[test]
fn demo_with_kills_counts_exactly() {
    let input = "/usr/share/common-licenses/GPL-3";
    assert!(
        std::path::Path::new(input).exists(),
        "{input} is missing; the demo test reads it as real text"
    );

    let output = Command::new(AKKORD)
        .args(["demo", "--nodes", "3", "--input", input])
        .args(["--chunk-lines", "10", "--chunk-cost-ms", "40"])
        .args(["--kill-worker-after", "10", "--kill-master-after", "25"])
        .args(["--timeout-secs", "200"])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed with {}:\n{stdout}\n{stderr}",
        output.status
    );

    assert!(stdout.contains("killed worker node"), "{stdout}");
    assert!(stdout.contains("killed the master's node"), "{stdout}");
    assert!(stdout.contains("new master accepts work"), "{stdout}");
    assert!(
        stdout.contains("result: identical to the single-process count"),
        "{stdout}"
    );
    // The master ran on two different nodes.
    let masters: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter_map(|line| line.split("work master runs on ").nth(1))
        .collect();
    assert!(masters.len() >= 2, "the master never moved:\n{stdout}");
}

#[test]
fn worker_kill_redispatches_its_chunks() {
    let output = Command::new(AKKORD)
        .args([
            "demo",
            "--nodes",
            "3",
            "--input",
            "/usr/share/common-licenses/GPL-3",
        ])
        .args(["--chunk-lines", "10", "--chunk-cost-ms", "40"])
        .args(["--kill-worker-after", "10", "--timeout-secs", "120"])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed with {}:\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("killed worker node"), "{stdout}");
    assert!(stdout.contains("re-dispatched"), "{stdout}");
    assert!(
        stdout.contains("result: identical to the single-process count"),
        "{stdout}"
    );
}
