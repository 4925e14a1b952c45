//! `dialer db copy`: an SQLite database into a new PostgreSQL database, verified table by table
//! (row counts and a SHA-256 of every row, read back from PostgreSQL after the commit).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{Context, Table};
use crate::cli::DbCommand;
use crate::config::{Database, DatabaseUrl, Env};
use crate::store::{SqliteStore, pg};

pub fn run(ctx: &Context, cmd: DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Copy { to, from } => copy(ctx, &to, from.as_deref()),
    }
}

fn copy(ctx: &Context, to: &str, from: Option<&Path>) -> Result<()> {
    let env = Env::from_process();
    let target = DatabaseUrl::parse(to, env.database_password.as_ref())
        .map_err(|e| anyhow::anyhow!("`--to` {e}"))?;
    let source_path = source(ctx, from)?;
    if !source_path.is_file() {
        bail!(
            "the SQLite database `{}` does not exist: pass the file to copy with `--from FILE`",
            source_path.display()
        );
    }
    let source = SqliteStore::open(&source_path)?;
    let mut client = pg::connect(&target)?;
    // on a terminal only, like every long command's progress
    let show = ctx.progress();
    let mut progress = |table: &str, done: u64, total: u64| {
        if show && total >= 10_000 {
            eprintln!("{table}: {done} of {total} rows copied");
        }
    };
    let now = crate::store::secs(ctx.clock.now());
    let checks = pg::copy_from_sqlite(&source, &mut client, now, &mut progress)?;

    let mut t = Table::new([
        "table",
        "source rows",
        "target rows",
        "source sha256",
        "target sha256",
        "",
    ]);
    for c in &checks {
        t.row([
            c.table.to_owned(),
            c.source.rows.to_string(),
            c.target.rows.to_string(),
            c.source.sha256.clone(),
            c.target.sha256.clone(),
            if c.matches() { "ok" } else { "MISMATCH" }.to_owned(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(t.render().as_bytes())?;
    let bad: Vec<&str> = checks
        .iter()
        .filter(|c| !c.matches())
        .map(|c| c.table)
        .collect();
    if !bad.is_empty() {
        bail!(
            "the copy in `{}` differs from `{}` in {}: do not use it; drop that database and copy again",
            target.dbname(),
            source_path.display(),
            bad.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rows: u64 = checks.iter().map(|c| c.target.rows).sum();
    writeln!(
        out,
        "copied {rows} rows in {} tables from `{}` to database `{}` at {}; every table's row count and checksum match",
        checks.len(),
        source_path.display(),
        target.dbname(),
        target.endpoint()
    )?;
    Ok(())
}

/// `--from FILE`, else the config's `[database] path`.
fn source(ctx: &Context, from: Option<&Path>) -> Result<PathBuf> {
    if let Some(file) = from {
        return Ok(file.to_owned());
    }
    match ctx.config()?.database {
        Database::Sqlite(path) => Ok(path),
        Database::Postgres(_) => bail!(
            "`db copy` copies an SQLite database and the config's `[database]` names a PostgreSQL url: pass the SQLite file with `--from FILE`"
        ),
    }
}
