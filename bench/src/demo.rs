//! Benchmark of `akkord demo`: words per second with 1, 2 and 3 node processes against the
//! single-process count of the same input, and failover times. After a worker node is
//! killed, the time runs to its lost chunks being handed out again. After the master's
//! node is killed, it runs to a new master accepting work.
//!
//! ```text
//! cargo run --release -- demo [--quick] [--input PATH]...
//! ```
//!
//! It builds the `akkord` program of the workspace above this crate in release mode, runs
//! `akkord demo` once per configuration and reads the `summary` line each run prints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// Default input of the throughput runs: every text under /usr/share/doc and the licences.
const DEFAULT_INPUTS: &[&str] = &["/usr/share/common-licenses", "/usr/share/doc"];

/// Runs the demo benchmark with the arguments after `demo`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut quick = false;
    let mut inputs: Vec<String> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--input" => inputs.push(
                rest.next()
                    .context("--input needs a path to a file or folder")?
                    .clone(),
            ),
            other => bail!("unknown demo option {other:?}; expected --quick or --input PATH"),
        }
    }
    if inputs.is_empty() {
        inputs = if quick {
            vec![DEFAULT_INPUTS[0].to_owned()]
        } else {
            DEFAULT_INPUTS.iter().map(|s| (*s).to_owned()).collect()
        };
    }
    let akkord = build_akkord()?;

    println!("| nodes | chunks | words | cluster time | words/s | single-process count | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for nodes in 1..=3 {
        let mut demo = vec![
            "--nodes".to_owned(),
            nodes.to_string(),
            "--kill-worker-after".to_owned(),
            "0".to_owned(),
            "--chunk-cost-ms".to_owned(),
            "0".to_owned(),
            "--chunk-lines".to_owned(),
            "500".to_owned(),
            "--timeout-secs".to_owned(),
            "900".to_owned(),
        ];
        for input in &inputs {
            demo.push("--input".to_owned());
            demo.push(input.clone());
        }
        let summary = run_demo(&akkord, &demo)?;
        let elapsed_ms: f64 = number(&summary, "elapsed_ms")?;
        let reference_ms: f64 = number(&summary, "reference_ms")?;
        let words: f64 = number(&summary, "words")?;
        println!(
            "| {nodes} | {} | {} | {:.2} s | {:.0} | {:.2} s ({:.0} words/s) | {:.2}× |",
            summary["chunks"],
            summary["words"],
            elapsed_ms / 1000.0,
            number(&summary, "words_per_second")?,
            reference_ms / 1000.0,
            words / (reference_ms / 1000.0).max(1e-9),
            reference_ms / elapsed_ms.max(1e-9),
        );
    }

    println!();
    println!("| kill | run | kill → work running again | whole run |");
    println!("|---|---:|---:|---:|");
    let runs = if quick { 1 } else { 3 };
    for (kind, kill_args, key) in [
        (
            "worker node",
            &["--kill-worker-after", "30"][..],
            "worker_failover_ms",
        ),
        (
            "master's node",
            &["--kill-worker-after", "0", "--kill-master-after", "60"][..],
            "master_failover_ms",
        ),
    ] {
        for run in 1..=runs {
            let mut demo: Vec<String> = ["--nodes", "3", "--chunk-cost-ms", "40"]
                .iter()
                .chain(kill_args.iter())
                .map(|s| (*s).to_owned())
                .collect();
            demo.extend(
                [
                    "--chunk-lines",
                    "20",
                    "--timeout-secs",
                    "300",
                    "--input",
                    DEFAULT_INPUTS[0],
                ]
                .map(str::to_owned),
            );
            let summary = run_demo(&akkord, &demo)?;
            let show = |key: &str| {
                summary
                    .get(key)
                    .and_then(|v| v.parse::<f64>().ok())
                    .map_or("-".to_owned(), |ms| format!("{:.1} s", ms / 1000.0))
            };
            println!(
                "| {kind} | {run} | {} | {} |",
                show(key),
                show("elapsed_ms")
            );
        }
    }
    Ok(())
}

fn number(summary: &HashMap<String, String>, key: &str) -> anyhow::Result<f64> {
    summary
        .get(key)
        .with_context(|| format!("the summary line has no {key}"))?
        .parse()
        .with_context(|| format!("the summary value of {key} is not a number"))
}

/// Builds the `akkord` program in release mode and returns its path.
fn build_akkord() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate has no parent folder")?
        .to_owned();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--release", "--locked", "-p", "akkord"])
        .current_dir(&workspace)
        .status()
        .context("cannot run cargo to build the akkord program")?;
    if !status.success() {
        bail!("building the akkord program failed with {status}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    Ok(target.join("release").join("akkord"))
}

/// Runs `akkord demo` with `args` and returns the fields of its summary line.
fn run_demo(akkord: &Path, args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    eprintln!("running akkord demo {}", args.join(" "));
    let output = Command::new(akkord)
        .arg("demo")
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", akkord.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "akkord demo failed with {}:\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .find(|line| line.starts_with("summary "))
        .context("akkord demo printed no summary line")?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}
