//! `dialer dnc add/import/list/remove`: the global do-not-call list.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::{Context, Table};
use crate::campaign::contacts_csv::PHONE_ALIASES;
use crate::campaign::phone;
use crate::cli::DncCommand;
use crate::config::Config;

pub fn run(ctx: &Context, cmd: DncCommand) -> Result<()> {
    let config = ctx.config()?;
    match cmd {
        DncCommand::Add { numbers } => {
            let normalized = numbers
                .iter()
                .map(|n| normalize(&config, n))
                .collect::<Result<Vec<_>>>()?;
            let count = normalized.len();
            let now = ctx.clock.now();
            let added = ctx
                .db(&config)?
                .write_blocking(move |tx| tx.dnc_add(&normalized, "cli", now))?;
            println!(
                "{added} added to the do-not-call list ({} already on it)",
                count - added
            );
        }
        DncCommand::Import { file } => import(ctx, &config, &file)?,
        DncCommand::List => {
            let mut t = Table::new(["phone", "source", "added_at"]);
            for (phone, source, at) in ctx.reader(&config)?.dnc_list()? {
                t.row([
                    phone,
                    source,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ]);
            }
            print!("{}", t.render());
        }
        DncCommand::Remove { number } => {
            let n = normalize(&config, &number)?;
            let number = n.clone();
            if ctx
                .db(&config)?
                .write_blocking(move |tx| tx.dnc_remove(&number))?
            {
                println!("{n} removed from the do-not-call list");
            } else {
                anyhow::bail!("{n} is not on the do-not-call list (see `dialer dnc list`)");
            }
        }
    }
    Ok(())
}

fn normalize(config: &Config, number: &str) -> Result<String> {
    Ok(phone::normalize(number, &config.dialer.default_region)?)
}

/// A CSV with a phone column (any of the contacts aliases), else the first column. Bad lines are
/// reported and skipped; the good ones are added in one transaction.
fn import(ctx: &Context, config: &Config, file: &Path) -> Result<()> {
    let name = file.display().to_string();
    let f = std::fs::File::open(file).with_context(|| format!("cannot read `{name}`"))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(std::io::BufReader::new(f));
    let headers = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("{name}:1: {e}"))?
        .clone();
    let column = headers
        .iter()
        .position(|h| {
            let h = h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
            PHONE_ALIASES.contains(&h.as_str())
        })
        .unwrap_or(0);
    let mut numbers = Vec::new();
    let mut rejected = 0;
    // a headerless file: the first line is a number too
    if headers.len() == 1 && column == 0 {
        match normalize(config, &headers[0]) {
            Ok(n) => numbers.push(n),
            Err(e) if headers[0].chars().any(|c| c.is_ascii_digit()) => {
                rejected += 1;
                eprintln!("{name}:1: {e}");
            }
            Err(_) => {}
        }
    }
    for record in reader.records() {
        let record = record.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        let raw = record.get(column).unwrap_or("");
        match normalize(config, raw) {
            Ok(n) => numbers.push(n),
            Err(e) => {
                rejected += 1;
                eprintln!("{name}:{line}: {e}");
            }
        }
    }
    let count = numbers.len();
    let now = ctx.clock.now();
    let added = ctx
        .db(config)?
        .write_blocking(move |tx| tx.dnc_add(&numbers, "import", now))?;
    println!(
        "{name}: {added} added, {} already listed, {rejected} rejected",
        count - added
    );
    Ok(())
}
