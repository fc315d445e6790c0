//! The members response as a table for terminals.

use std::fmt::Write;

use crate::model::MembersResponse;

const HEADER: [&str; 7] = [
    "ADDRESS",
    "UID",
    "STATUS",
    "REACHABLE",
    "UP#",
    "ROLES",
    "VERSION",
];

/// Formats `members` for humans: a summary, one row per member, then the unreachable
/// members and the convergence blockers when there are any.
///
/// The leader's row is marked `*` and the responding node's row `>`.
pub fn format_members(members: &MembersResponse) -> String {
    let mut out = String::new();
    let none = || "none".to_owned();
    let _ = writeln!(
        out,
        "node:      {} (uid {})",
        members.self_node, members.self_uid
    );
    let _ = writeln!(
        out,
        "leader:    {}",
        members.leader.clone().unwrap_or_else(none)
    );
    let _ = writeln!(
        out,
        "oldest:    {}",
        members.oldest.clone().unwrap_or_else(none)
    );
    let converged = if members.converged { "yes" } else { "no" };
    let _ = writeln!(out, "converged: {converged}");
    out.push('\n');

    let rows: Vec<[String; 7]> = members
        .members
        .iter()
        .map(|member| {
            let mark = if Some(&member.address) == members.leader.as_ref() {
                "*"
            } else if member.address == members.self_node {
                ">"
            } else {
                " "
            };
            [
                format!("{mark} {}", member.address),
                member.uid.clone(),
                member.status.clone(),
                if member.reachable { "yes" } else { "no" }.to_owned(),
                member
                    .up_number
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                if member.roles.is_empty() {
                    "-".to_owned()
                } else {
                    member.roles.join(",")
                },
                member.app_version.clone(),
            ]
        })
        .collect();
    let mut header = HEADER.map(str::to_owned);
    header[0] = format!("  {}", header[0]);
    write_table(&mut out, &header, &rows);

    if !members.unreachable.is_empty() {
        out.push_str("\nunreachable:\n");
        for entry in &members.unreachable {
            let _ = write!(out, "  {} (uid {})", entry.address, entry.uid);
            if let Some(observers) = &entry.observed_by {
                let _ = write!(out, " observed by {}", observers.join(", "));
            }
            out.push('\n');
        }
    }
    if !members.convergence_blockers.is_empty() {
        out.push_str("\nconvergence blocked by:\n");
        for blocker in &members.convergence_blockers {
            let _ = writeln!(out, "  {}", blocker.message);
        }
    }
    out
}

/// Writes `header` and `rows` as left-aligned columns two spaces apart.
fn write_table(out: &mut String, header: &[String; 7], rows: &[[String; 7]]) {
    let mut widths = header.clone().map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{cell:<width$}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlockerEntry, MemberEntry, UnreachableEntry};

    fn entry(port: u16, status: &str, up_number: Option<u32>, reachable: bool) -> MemberEntry {
        MemberEntry {
            address: format!("akkord://sys@127.0.0.1:{port}"),
            uid: format!("{port}00"),
            status: status.to_owned(),
            roles: if port == 1 {
                vec!["backend".to_owned(), "web".to_owned()]
            } else {
                Vec::new()
            },
            up_number,
            app_version: "1.0".to_owned(),
            reachable,
        }
    }

    #[test]
    fn table_lists_members_aligned() {
        let members = MembersResponse {
            self_node: "akkord://sys@127.0.0.1:2".to_owned(),
            self_uid: "200".to_owned(),
            leader: Some("akkord://sys@127.0.0.1:1".to_owned()),
            oldest: Some("akkord://sys@127.0.0.1:1".to_owned()),
            converged: false,
            members: vec![
                entry(1, "Up", Some(1), true),
                entry(2, "Up", Some(2), true),
                entry(3, "Joining", None, false),
            ],
            unreachable: vec![UnreachableEntry {
                address: "akkord://sys@127.0.0.1:3".to_owned(),
                uid: "300".to_owned(),
                observed_by: None,
            }],
            convergence_blockers: vec![BlockerEntry {
                address: "akkord://sys@127.0.0.1:3".to_owned(),
                uid: "300".to_owned(),
                status: "Joining".to_owned(),
                reason: "unreachable-not-downed".to_owned(),
                message: "akkord://sys@127.0.0.1:3#300 (Joining) is unreachable and not downed"
                    .to_owned(),
            }],
        };
        let table = format_members(&members);
        let lines: Vec<&str> = table.lines().collect();

        assert_eq!(lines[0], "node:      akkord://sys@127.0.0.1:2 (uid 200)");
        assert_eq!(lines[1], "leader:    akkord://sys@127.0.0.1:1");
        assert_eq!(lines[3], "converged: no");
        assert_eq!(
            lines[5],
            "  ADDRESS                   UID  STATUS   REACHABLE  UP#  ROLES        VERSION"
        );
        assert_eq!(
            lines[6],
            "* akkord://sys@127.0.0.1:1  100  Up       yes        1    backend,web  1.0"
        );
        assert_eq!(
            lines[7],
            "> akkord://sys@127.0.0.1:2  200  Up       yes        2    -            1.0"
        );
        assert_eq!(
            lines[8],
            "  akkord://sys@127.0.0.1:3  300  Joining  no         -    -            1.0"
        );
        assert!(table.contains("\nunreachable:\n  akkord://sys@127.0.0.1:3 (uid 300)\n"));
        assert!(table.contains("(Joining) is unreachable and not downed\n"));
    }
}
