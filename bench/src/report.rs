//! The result table (Markdown, rows = workloads, columns = frameworks, plus akkord's ratio to
//! the best peer) and the machine description printed with it.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Outcome of one framework's run of one workload.
#[derive(Clone, Debug)]
pub enum Cell<T> {
    /// The measured value.
    Value(T),
    /// The run did not finish within the given bound and was abandoned.
    Timeout(Duration),
    /// The run failed or computed a wrong result, as the message describes.
    Failed(String),
}

/// Unit of a row, which also decides whether higher or lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Millions of operations per second; higher is better.
    MillionsPerSecond,
    /// Microseconds; lower is better.
    Micros,
    /// Bytes; lower is better.
    Bytes,
}

impl Unit {
    fn higher_is_better(self) -> bool {
        self == Unit::MillionsPerSecond
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::MillionsPerSecond => format!("{value:.3}"),
            Unit::Micros => format!("{value:.2}"),
            Unit::Bytes => format!("{value:.0}"),
        }
    }
}

/// One row of the table: a workload or one statistic of it, with one cell per column.
#[derive(Clone, Debug)]
pub struct Row {
    /// Workload and unit as printed in the first column.
    pub label: String,
    /// Unit of the values.
    pub unit: Unit,
    /// One cell per column, in the order of [`Table::columns`].
    pub cells: Vec<Cell<f64>>,
}

/// The whole result of a run.
#[derive(Clone, Debug)]
pub struct Table {
    /// Column names; the akkord column, when present, is named `akkord`.
    pub columns: Vec<&'static str>,
    /// Rows in suite order.
    pub rows: Vec<Row>,
}

impl Table {
    /// Renders the table as Markdown, followed by one line per cell that did not produce a
    /// value.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = std::iter::once("workload (unit)".to_string())
            .chain(self.columns.iter().map(|c| c.to_string()))
            .chain(std::iter::once("akkord ÷ best peer".to_string()))
            .collect();
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let rule: Vec<&str> = std::iter::once("---")
            .chain(self.columns.iter().map(|_| "---:"))
            .chain(std::iter::once("---:"))
            .collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in &self.rows {
            let mut line = vec![row.label.clone()];
            line.extend(row.cells.iter().map(|cell| format_cell(cell, row.unit)));
            line.push(self.ratio(row));
            let _ = writeln!(out, "| {} |", line.join(" | "));
        }
        let notes = self.notes();
        if !notes.is_empty() {
            out.push('\n');
            out.push_str(&notes);
        }
        out
    }

    /// Returns akkord's value divided by the best peer's, with that peer's name; `n/a` when
    /// either side has no value.
    fn ratio(&self, row: &Row) -> String {
        let Some(akkord) = self.columns.iter().position(|c| *c == "akkord") else {
            return "n/a".to_string();
        };
        let Cell::Value(own) = row.cells[akkord] else {
            return "n/a".to_string();
        };
        let peers = self
            .columns
            .iter()
            .zip(&row.cells)
            .filter(|(name, _)| **name != "akkord")
            .filter_map(|(name, cell)| match cell {
                Cell::Value(value) => Some((*name, *value)),
                _ => None,
            });
        let best = if row.unit.higher_is_better() {
            peers.max_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            peers.min_by(|a, b| a.1.total_cmp(&b.1))
        };
        match best {
            Some((name, value)) if value > 0.0 => format!("{:.2} ({name})", own / value),
            _ => "n/a".to_string(),
        }
    }

    fn notes(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            for (column, cell) in self.columns.iter().zip(&row.cells) {
                let note = match cell {
                    Cell::Timeout(limit) => format!("did not finish within {limit:?}"),
                    Cell::Failed(message) => format!("failed: {message}"),
                    Cell::Value(_) => continue,
                };
                let _ = writeln!(out, "- {column}, {}: {note}", row.label);
            }
        }
        out
    }
}

fn format_cell(cell: &Cell<f64>, unit: Unit) -> String {
    match cell {
        Cell::Value(value) => unit.format(*value),
        Cell::Timeout(_) => "timeout".to_string(),
        Cell::Failed(_) => "failed".to_string(),
    }
}

/// Describes the machine and the moment of the run: date, cores, CPU model, memory, load.
pub fn machine_info() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = read_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let memory = read_field("/proc/meminfo", "MemTotal").unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "date: {}\ncores (nproc): {cores}\nCPU: {cpu}\nmemory: {memory}\n\
         load average (1, 5, 15 min) at start: {}\n\
         allocator: the system allocator (glibc malloc), no global allocator override",
        utc_now(),
        load.join(" "),
    )
}

/// Returns the 1-minute load average from `/proc/loadavg`, or `unknown`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Returns the value after the first `key :` line of a `/proc` file.
fn read_field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().to_string())
}

/// Formats the current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let minute_of_day = seconds % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), by the
/// era-based algorithm of Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
    }

    fn table(unit: Unit, akkord: f64, actix: f64, tokio: Cell<f64>) -> Table {
        Table {
            columns: vec!["akkord", "actix", "tokio"],
            rows: vec![Row {
                label: "row".into(),
                unit,
                cells: vec![Cell::Value(akkord), Cell::Value(actix), tokio],
            }],
        }
    }

    #[test]
    fn ratio_uses_fastest_peer_for_rates() {
        let t = table(Unit::MillionsPerSecond, 2.0, 4.0, Cell::Value(8.0));
        assert_eq!(t.ratio(&t.rows[0]), "0.25 (tokio)");
    }

    #[test]
    fn ratio_uses_smallest_peer_for_bytes() {
        let t = table(Unit::Bytes, 300.0, 600.0, Cell::Value(150.0));
        assert_eq!(t.ratio(&t.rows[0]), "2.00 (tokio)");
    }

    #[test]
    fn ratio_skips_failed_peers() {
        let t = table(Unit::Micros, 1.0, 2.0, Cell::Failed("x".into()));
        assert_eq!(t.ratio(&t.rows[0]), "0.50 (actix)");
    }

    #[test]
    fn render_lists_failed_cells() {
        let mut t = table(Unit::Bytes, 1.0, 2.0, Cell::Value(3.0));
        t.rows[0].cells[0] = Cell::Failed("wrong count".into());
        let text = t.render();
        assert!(text.contains("| row | failed | 2 | 3 | n/a |"), "{text}");
        assert!(
            text.contains("- akkord, row: failed: wrong count"),
            "{text}"
        );
    }
}
