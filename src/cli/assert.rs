//! `portcullis assert`: access expectations checked against the database,
//! read-only, one line per assertion, for a CI job to run after (or,
//! with `--with-changes`, before) every change.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::common::{DatabaseArgs, database};
use crate::assertions::{self, spec};

#[derive(Debug, Args)]
pub struct AssertArgs {
    /// The assertions (YAML): `tenant:` and a list of `assertions:`.
    pub file: PathBuf,
    /// Proposed changes (YAML, a list of `changes:`) to check the
    /// assertions against instead of the state as it is; they are made
    /// and rolled back, never kept.
    #[arg(long)]
    pub with_changes: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

fn read<T: serde::de::DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// Prints a line per assertion and `N passed, N failed`; fails if any did.
pub async fn run(args: AssertArgs) -> anyhow::Result<()> {
    let file: spec::AssertionsFile = read(&args.file)?;
    let changes: Option<spec::ChangesFile> = args.with_changes.as_ref().map(read).transpose()?;
    if let (Some(path), Some(changes)) = (&args.with_changes, &changes) {
        println!(
            "against {} proposed changes from {} (made and rolled back)",
            changes.changes.len(),
            path.display()
        );
    }
    let db = database(&args.database)?;
    let verdicts = assertions::check(&db, &file, changes.as_ref(), chrono::Utc::now()).await?;
    for verdict in &verdicts {
        println!("{}", verdict.line);
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    println!("{} passed, {failed} failed", verdicts.len() - failed);
    if failed > 0 {
        anyhow::bail!("{failed} of {} assertions failed", verdicts.len());
    }
    Ok(())
}
