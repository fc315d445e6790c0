//! Input text and word counting shared by the demos: reading files and folders (plain or
//! gzip), the reference count, the progress bar and the final report.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// Text that every machine of this kind has.
pub(crate) const DEFAULT_INPUT: &str = "/usr/share/common-licenses";

/// Word frequencies.
pub(crate) type Counts = HashMap<String, u64>;

/// The text a demo counts.
pub(crate) struct Input {
    /// The files and folders read: those given, or [`DEFAULT_INPUT`].
    pub inputs: Vec<PathBuf>,
    /// Their text, file after file.
    pub text: String,
    /// The lines of `text`.
    pub lines: Vec<String>,
}

impl Input {
    /// Reads `inputs`, or [`DEFAULT_INPUT`] when none are given.
    pub(crate) fn read(inputs: &[PathBuf]) -> Result<Self> {
        let inputs = if inputs.is_empty() {
            vec![PathBuf::from(DEFAULT_INPUT)]
        } else {
            inputs.to_vec()
        };
        let text = read_inputs(&inputs)?;
        let lines = text.lines().map(str::to_owned).collect();
        Ok(Self {
            inputs,
            text,
            lines,
        })
    }
}

/// Reads every file under `inputs`, following folders, decompressing `.gz` files.
fn read_inputs(inputs: &[PathBuf]) -> Result<String> {
    let mut files = Vec::new();
    for input in inputs {
        collect_files(input, &mut files)
            .with_context(|| format!("cannot read input {}", input.display()))?;
    }
    files.sort();
    let mut text = String::new();
    for file in &files {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let bytes = if file.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .with_context(|| format!("cannot decompress {}", file.display()))?;
            out
        } else {
            bytes
        };
        text.push_str(&String::from_utf8_lossy(&bytes));
        text.push('\n');
    }
    if files.is_empty() {
        bail!("no input files found under {inputs:?}");
    }
    Ok(text)
}

/// Adds `path`, or every file under it when it is a folder. Inside a folder, an entry that
/// cannot be read, such as a dangling symbolic link, is skipped with a message. A `path`
/// that cannot be read is an error, because the user named it.
fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?.path();
            if let Err(error) = collect_files(&entry, files) {
                eprintln!("skipped unreadable input {}: {error}", entry.display());
            }
        }
    } else if metadata.is_file() {
        files.push(path.to_owned());
    }
    Ok(())
}

/// Splits on anything that is not a letter, digit or apostrophe, and lowercases.
pub(crate) fn count_words(lines: &[String]) -> Counts {
    let mut counts = Counts::new();
    for line in lines {
        add_words(line, &mut counts);
    }
    counts
}

/// Returns true for a character that separates words: anything but a letter, a digit or
/// an apostrophe.
pub(crate) fn is_separator(c: char) -> bool {
    !(c.is_alphanumeric() || c == '\'')
}

/// Adds the lowercased words of `text` to `counts`.
pub(crate) fn add_words(text: &str, counts: &mut Counts) {
    for word in text.split(is_separator).filter(|w| !w.is_empty()) {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
}

/// A progress bar on stderr when it is a terminal, otherwise a line every 10 %.
pub(crate) struct Progress {
    total: usize,
    last_decile: usize,
    terminal: bool,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            total: total.max(1),
            last_decile: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub(crate) fn update(&mut self, done: usize) {
        let percent = done * 100 / self.total;
        if self.terminal {
            let filled = percent / 5;
            eprint!(
                "\r[{}{}] {percent:>3}% ({done}/{})",
                "#".repeat(filled),
                " ".repeat(20 - filled),
                self.total
            );
            let _ = std::io::stderr().flush();
        } else if percent / 10 > self.last_decile {
            self.last_decile = percent / 10;
            eprintln!("progress: {percent}% ({done}/{} chunks)", self.total);
        }
    }

    /// Prints `text` on its own line on stdout, keeping the bar below it on a terminal.
    pub(crate) fn line(&self, text: &str) {
        if self.terminal {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
        }
        println!("{text}");
        let _ = std::io::stdout().flush();
    }

    pub(crate) fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// Prints the ten most frequent words and one line comparing `totals` with `expected`;
/// returns whether they are identical.
pub(crate) fn report(totals: &Counts, expected: &Counts, reference: &str) -> bool {
    println!("\ntop 10 words:");
    let mut top: Vec<(&String, &u64)> = totals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for (word, count) in top.into_iter().take(10) {
        println!("  {count:>8}  {word}");
    }
    if totals == expected {
        println!("result: identical to the {reference} count");
        true
    } else {
        let differing = expected
            .iter()
            .filter(|(word, count)| totals.get(*word) != Some(count))
            .count()
            + totals.keys().filter(|w| !expected.contains_key(*w)).count();
        println!("result: DIFFERENT from the {reference} count: {differing} words differ");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_words_splits_and_lowercases() {
        let counts = count_words(&["The cat, the HAT's".to_owned(), "cat".to_owned()]);
        assert_eq!(counts["the"], 2);
        assert_eq!(counts["cat"], 2);
        assert_eq!(counts["hat's"], 1);
        assert_eq!(counts.len(), 3);
    }
}
