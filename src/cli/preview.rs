//! `--dry-run` on the directory commands: the write is made and rolled
//! back, and the difference it would make is printed for a person,
//! summary first, readable at ten thousand affected users.

use std::collections::HashMap;
use std::fmt::Write as _;

use clap::Args;
use uuid::Uuid;

use crate::admin::AdminError;
use crate::admin::preview::{AccessChange, Direction, Preview, Summary, Tally, user_names};
use crate::db::Db;
use crate::names::TenantId;

#[derive(Clone, Copy, Debug, Args)]
pub struct PreviewArgs {
    /// Make the change in a transaction that is rolled back, and print who
    /// would gain and who would lose which capability where.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print every change, not the first 50 (and every
    /// capability and subtree in the summary, not the first 20).
    #[arg(long, requires = "dry_run")]
    pub all: bool,
}

/// Makes the change; with `--dry-run`, previews it instead, prints the
/// difference it would make, and answers `None`.
pub async fn made<T, F, Fut>(
    db: &Db,
    tenant: TenantId,
    preview: PreviewArgs,
    write: F,
) -> anyhow::Result<Option<T>>
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    if !preview.dry_run {
        return Ok(Some(write(db.clone()).await?));
    }
    let previewed = crate::admin::preview::preview(db, tenant.get(), write).await?;
    print(db, tenant.get(), &previewed, preview).await?;
    Ok(None)
}

/// Rows shown of each part unless `--all`.
const SHOWN_CHANGES: usize = 50;
const SHOWN_TALLIES: usize = 20;

/// Prints `preview` of a change in `tenant`.
pub async fn print<T>(
    db: &Db,
    tenant: Uuid,
    preview: &Preview<T>,
    args: PreviewArgs,
) -> anyhow::Result<()> {
    let users = preview.changes[..shown(preview.changes.len(), args.all)]
        .iter()
        .map(|c| c.user_id)
        .collect();
    let names = user_names(db, tenant, users).await?;
    print!("{}", render(preview, &names, args.all));
    Ok(())
}

/// How many of `changes` rows are printed.
fn shown(changes: usize, all: bool) -> usize {
    if all {
        changes
    } else {
        SHOWN_CHANGES.min(changes)
    }
}

fn render<T>(preview: &Preview<T>, names: &HashMap<Uuid, String>, all: bool) -> String {
    let summary = Summary::of(&preview.changes);
    let label = |id: &Uuid| match preview.labels.get(id) {
        Some(label) => format!("{label} ({id})"),
        None => id.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "dry run: nothing was changed");
    if preview.changes.is_empty() {
        let _ = writeln!(out, "no check's answer would change");
        return out;
    }
    let _ = writeln!(
        out,
        "affected users: {}; now: {} gained, {} lost; scheduled: {} gained, {} lost",
        thousands(summary.users),
        thousands(summary.now.gained),
        thousands(summary.now.lost),
        thousands(summary.scheduled.gained),
        thousands(summary.scheduled.lost),
    );
    let tallies = |out: &mut String, title: &str, rows: Vec<(String, Tally)>| {
        let width = rows
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0)
            .max(title.len());
        let _ = writeln!(out, "\n{title:<width$}  {:>10}  {:>10}", "gained", "lost");
        let total = rows.len();
        let limit = if all { total } else { SHOWN_TALLIES.min(total) };
        for (key, tally) in rows.into_iter().take(limit) {
            let _ = writeln!(
                out,
                "{key:<width$}  {:>10}  {:>10}",
                thousands(tally.gained),
                thousands(tally.lost)
            );
        }
        if limit < total {
            let _ = writeln!(out, "… {} more (--all shows every one)", total - limit);
        }
    };
    let by_size = |mut rows: Vec<(String, Tally)>| {
        rows.sort_by_key(|(key, t)| (std::cmp::Reverse(t.gained + t.lost), key.clone()));
        rows
    };
    let capabilities = summary
        .by_capability
        .iter()
        .map(|(k, t)| (k.clone(), *t))
        .collect();
    tallies(&mut out, "capability (now)", by_size(capabilities));
    let subtrees = summary
        .by_subtree
        .iter()
        .map(|(k, t)| (label(k), *t))
        .collect();
    tallies(&mut out, "subtree (now)", by_size(subtrees));

    let shown = shown(preview.changes.len(), all);
    // Rows name nodes by label alone; the subtree summary gives their ids.
    let short = |id: &Uuid| {
        preview
            .labels
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let rows: Vec<[String; 5]> = preview.changes[..shown]
        .iter()
        .map(|c| change_row(c, names, &short))
        .collect();
    let header = ["change", "capability", "user", "subtree", "from"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let _ = writeln!(out);
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if shown < preview.changes.len() {
        let _ = writeln!(
            out,
            "… {} more changes (--all prints every one)",
            thousands((preview.changes.len() - shown) as u64)
        );
    }
    out
}

fn change_row(
    change: &AccessChange,
    names: &HashMap<Uuid, String>,
    label: &impl Fn(&Uuid) -> String,
) -> [String; 5] {
    let mut subtree = label(&change.subtree_root);
    if !change.except.is_empty() {
        let except: Vec<String> = change.except.iter().map(label).collect();
        subtree = format!("{subtree} except {}", except.join(", "));
    }
    [
        match change.direction {
            Direction::Gained => "gains",
            Direction::Lost => "loses",
        }
        .to_owned(),
        change.capability.clone(),
        names
            .get(&change.user_id)
            .cloned()
            .unwrap_or_else(|| change.user_id.to_string()),
        subtree,
        change
            .at
            .map_or_else(|| "now".to_owned(), |t| t.to_rfc3339()),
    ]
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user: u128, direction: Direction) -> AccessChange {
        AccessChange {
            at: None,
            capability: "payment.transfer.approve".into(),
            direction,
            subtree_root: Uuid::from_u128(7),
            user_id: Uuid::from_u128(user),
            except: Vec::new(),
        }
    }

    #[test]
    fn ten_thousand_changes_print_a_summary_and_fifty_rows() {
        let changes: Vec<AccessChange> = (0..10_000).map(|u| change(u, Direction::Lost)).collect();
        let preview = Preview {
            outcome: (),
            changes,
            labels: HashMap::from([(Uuid::from_u128(7), "Europe".to_owned())]),
        };
        let text = render(&preview, &HashMap::new(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "affected users: 10,000; now: 0 gained, 10,000 lost; scheduled: 0 gained, 0 lost"
        );
        assert!(text.contains("… 9,950 more changes (--all prints every one)"));
        assert!(lines.len() < 70, "{} lines", lines.len());
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(300_000), "300,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
