//! `dialer contacts import`: streams a CSV into a campaign (SPEC §4).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use crate::campaign::contacts_csv::{ContactReader, CsvError, Rejection};
use crate::cli::ContactsCommand;
use crate::config::Config;
use crate::store::{ImportCounts, NewContact, Store};

/// Rows per transaction when not `--strict`/`--dry-run` (those use one transaction).
const BATCH: u64 = 50_000;

pub fn run(ctx: &Context, cmd: ContactsCommand) -> Result<()> {
    let ContactsCommand::Import {
        campaign,
        file,
        strict,
        dry_run,
    } = cmd;
    let config = ctx.config()?;
    check_header(&config, &file)?;
    let store = ctx.store(&config)?;
    let row = store.require_campaign(&campaign)?;
    import(ctx, &config, &store, row.id, &file, strict, dry_run).map(drop)
}

fn open(config: &Config, file: &Path) -> Result<ContactReader<BufReader<File>>> {
    let f = File::open(file)
        .with_context(|| format!("cannot read contacts file `{}`", file.display()))?;
    let reader = ContactReader::new(
        &file.display().to_string(),
        BufReader::with_capacity(1 << 16, f),
        config.dialer.default_region,
    )?;
    Ok(reader)
}

/// Fails early (before anything is written) when the file cannot be a contacts CSV.
pub fn check_header(config: &Config, file: &Path) -> Result<()> {
    open(config, file).map(drop)
}

/// Rows handed from the reader thread to the writer, with the line each came from.
type Chunk = Vec<(u64, Result<NewContact, Rejection>)>;

/// Streams the file into the campaign: one thread reads and normalizes (the slow part: phone
/// validation), this one writes; the bounded channel between them keeps memory flat.
pub fn import(
    ctx: &Context,
    config: &Config,
    store: &Store,
    campaign_id: i64,
    file: &Path,
    strict: bool,
    dry_run: bool,
) -> Result<ImportCounts> {
    let reader = open(config, file)?;
    let name = file.display().to_string();
    let bar = progress_bar(ctx, file);
    let batch = if strict || dry_run { None } else { Some(BATCH) };
    let mut sink = store.import_sink(campaign_id, &name, batch, ctx.clock.now())?;
    let mut rejected = 0u64;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(Chunk, u64), CsvError>>(8);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let stop = &stop;
        scope.spawn(move || read_chunks(reader, &tx, stop));
        let result = (|| -> Result<()> {
            for msg in &rx {
                let (chunk, position) = msg?;
                for (line, row) in chunk {
                    match row {
                        Ok(contact) => {
                            let before = sink.counts.duplicates;
                            sink.add(&contact)?;
                            if sink.counts.duplicates > before {
                                eprintln!(
                                    "{name}:{line}: duplicate of an earlier row ({}): kept once",
                                    contact.phone
                                );
                            }
                        }
                        Err(rej) if strict => {
                            anyhow::bail!(
                                "{name}:{}: {} (--strict: nothing was imported)",
                                rej.line,
                                rej.reason
                            );
                        }
                        Err(rej) => {
                            rejected += 1;
                            eprintln!("{name}:{}: {}", rej.line, rej.reason);
                        }
                    }
                }
                if let Some(b) = &bar {
                    b.set_position(position);
                }
            }
            Ok(())
        })();
        // let the reader finish early on an error
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(rx);
        result
    })?;
    let mut counts = sink.finish(!dry_run)?;
    counts.rejected = rejected;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!(
        "{name}: {} imported, {} updated, {} unchanged, {} duplicates, {} rejected{}",
        counts.imported,
        counts.updated,
        counts.unchanged,
        counts.duplicates,
        counts.rejected,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    Ok(counts)
}

fn read_chunks(
    mut reader: ContactReader<BufReader<File>>,
    tx: &std::sync::mpsc::SyncSender<Result<(Chunk, u64), CsvError>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    const CHUNK: usize = 1024;
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        match reader.next_row() {
            Ok(Some(row)) => {
                chunk.push((reader.line(), row));
                if chunk.len() == CHUNK
                    && tx
                        .send(Ok((
                            std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)),
                            reader.position(),
                        )))
                        .is_err()
                {
                    return;
                }
            }
            Ok(None) => {
                let _ = tx.send(Ok((chunk, reader.position())));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

fn progress_bar(ctx: &Context, file: &Path) -> Option<ProgressBar> {
    if !ctx.progress() {
        return None;
    }
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} importing {bytes}/{total_bytes} [{bar:30}] {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
