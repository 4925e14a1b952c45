//! `dialer contacts import`: streams a CSV into a campaign (SPEC §4).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use crate::campaign::contacts_csv::{ContactReader, CsvError, RawRow, Rejection};
use crate::cli::ContactsCommand;
use crate::config::Config;
use crate::store::{
    ChunkOutcome, Db, DryRun, ImportCounts, ImportRun, NewContact, Store, StoreError, Tx,
};

/// Rows gathered per write job (the job may take fewer: see [`WRITE_BUDGET`]).
const WRITE_CHUNK: usize = 4096;

/// How long one import transaction may run before it commits and hands the rest of its rows to
/// the next one. The daemon is another process: it waits for SQLite's file lock, so every
/// transaction of an import must be short (SPEC §10: a callback never waits more than 100 ms).
/// Shorter costs import speed: each commit rewrites the index pages it touched into the WAL
/// (measured on 200,000 rows, release: 4,096-row transactions of ~90 ms took 5.5 s alone; 30 ms
/// ones, paced, 11–19 s; 10 ms ones 17–23 s).
const WRITE_BUDGET: Duration = Duration::from_millis(30);

/// The least time the import leaves the write lock free between two of its transactions.
const MIN_GAP: Duration = Duration::from_millis(2);

/// How long after another process's last commit the import keeps giving way (see [`Pace`]).
const CONTENDED_FOR: Duration = Duration::from_secs(2);

pub fn run(ctx: &Context, cmd: ContactsCommand) -> Result<()> {
    let ContactsCommand::Import {
        campaign,
        file,
        strict,
        dry_run,
    } = cmd;
    let config = ctx.config()?;
    check_header(&config, &file)?;
    let db = ctx.db(&config)?;
    let row = db.read_blocking(|store| store.require_campaign(&campaign))?;
    import(ctx, &config, &db, row.id, &file, strict, dry_run).map(drop)
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

/// Parsed rows handed from a worker to the writer, with the line each came from.
type Chunk = Vec<(u64, Result<NewContact, Rejection>)>;

/// A chunk with the byte position reached (for the progress bar), or a hard read error.
type Msg<T> = Result<(T, u64), CsvError>;

/// Threads that parse and validate rows (phone validation is the costly part).
const WORKERS: usize = 2;

/// Rows per chunk.
const CHUNK: usize = 1024;

/// Where validated rows go.
enum Sink<'a> {
    /// Nowhere: `--strict`'s first pass, which only looks for a bad row.
    Check,
    /// Counted against the database, nothing written (`--dry-run`).
    Dry(DryRun<'a>),
    /// Through the writer, in short transactions.
    Write {
        db: &'a Db,
        run: ImportRun,
        pace: &'a mut Pace,
    },
}

impl Sink<'_> {
    fn chunk(&mut self, rows: Vec<NewContact>) -> Result<ChunkOutcome> {
        Ok(match self {
            Sink::Check => ChunkOutcome::default(),
            Sink::Dry(dry) => dry.chunk(&rows)?,
            Sink::Write { db, run, pace } => {
                let (run, rows) = (*run, Arc::new(rows));
                let mut out = ChunkOutcome::default();
                while out.done < rows.len() {
                    let (rest, from) = (rows.clone(), out.done);
                    let part = pace.write(db, move |tx| {
                        tx.import_chunk(&run, &rest[from..], WRITE_BUDGET)
                    })?;
                    tracing::trace!(
                        rows = part.done,
                        took_ms = pace.last.as_secs_f64() * 1e3,
                        "import transaction"
                    );
                    out.counts.add(&part.counts);
                    out.duplicates
                        .extend(part.duplicates.iter().map(|i| i + from));
                    out.done += part.done.max(1);
                }
                out
            }
        })
    }
}

/// Paces an import's write transactions so that another process waiting for the write lock
/// (the daemon committing a callback, in SQLite's busy handler, which retries after 1, 2, 5, 10,
/// 15, 20, 25… ms) finds it free within a few retries instead of losing every race to the next
/// chunk. While another process is writing (it committed within [`CONTENDED_FOR`]), the lock is
/// left free after each transaction for at least as long as the transaction held it; otherwise
/// for half that (a waiter's first retries still land in the gap; an import alone goes faster).
#[derive(Debug, Default)]
pub struct Pace {
    free_until: Option<Instant>,
    /// `PRAGMA data_version` seen in the last transaction: it moves when another connection
    /// commits.
    version: Option<i64>,
    contended_until: Option<Instant>,
    /// The last transaction (from sending the job to hearing it committed).
    pub last: Duration,
    /// The longest transaction so far.
    pub longest: Duration,
    pub transactions: u64,
}

impl Pace {
    fn write<R: Send + 'static>(
        &mut self,
        db: &Db,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<R, StoreError> + Send + 'static,
    ) -> Result<R> {
        if let Some(wait) = self
            .free_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
        {
            std::thread::sleep(wait);
        }
        let started = Instant::now();
        let (out, version) = db.write_blocking(move |tx| {
            let version = tx.data_version()?;
            f(tx).map(|out| (out, version))
        })?;
        let now = Instant::now();
        let took = now - started;
        if self.version.is_some_and(|v| v != version) {
            self.contended_until = Some(now + CONTENDED_FOR);
        }
        self.version = Some(version);
        let contended = self.contended_until.is_some_and(|t| now < t);
        self.free_until = Some(
            now + if contended {
                took.max(MIN_GAP)
            } else {
                (took / 2).max(MIN_GAP)
            },
        );
        self.last = took;
        self.longest = self.longest.max(took);
        self.transactions += 1;
        Ok(out)
    }
}

/// Imports a file into the campaign: with `--strict` the whole file is checked first (nothing
/// is written when a row is bad); `--dry-run` counts without writing or taking a write lock.
/// Rows are written in short transactions paced by [`Pace`]; the contacts the run creates become
/// dialable together when it finishes (SPEC §10), so a run that dies half-way dials nothing new
/// and running it again finishes the job.
pub fn import(
    ctx: &Context,
    config: &Config,
    db: &Db,
    campaign_id: i64,
    file: &Path,
    strict: bool,
    dry_run: bool,
) -> Result<ImportCounts> {
    let name = file.display().to_string();
    if strict {
        stream(ctx, config, file, true, &mut Sink::Check)?;
    }
    let counts = if dry_run {
        let reader = Store::open_reader(db.path())?;
        let mut sink = Sink::Dry(reader.dry_run(campaign_id)?);
        stream(ctx, config, file, strict, &mut sink)?
    } else {
        let mut pace = Pace::default();
        let now = ctx.clock.now();
        // an earlier import killed after it finished but before it settled
        for earlier in db.read_blocking(|store| store.unsettled_imports(campaign_id))? {
            settle(db, &mut pace, earlier, now)?;
        }
        let file_name = name.clone();
        let run = pace.write(db, move |tx| tx.begin_import(campaign_id, &file_name, now))?;
        let sink = &mut Sink::Write {
            db,
            run,
            pace: &mut pace,
        };
        let counts = stream(ctx, config, file, strict, sink)?;
        let done = ctx.clock.now();
        // the rows this run created become dialable here, all at once
        pace.write(db, move |tx| tx.finish_import(&run, done))?;
        let settling = Instant::now();
        settle(db, &mut pace, run.import_id, done)?;
        tracing::debug!(
            transactions = pace.transactions,
            longest_ms = pace.longest.as_secs_f64() * 1e3,
            settle_ms = settling.elapsed().as_secs_f64() * 1e3,
            "import written"
        );
        counts
    };
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

/// Clears the pending mark of a finished run's rows, in short transactions.
fn settle(
    db: &Db,
    pace: &mut Pace,
    import_id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    while !pace.write(db, move |tx| tx.settle_import(import_id, WRITE_BUDGET, now))? {}
    Ok(())
}

/// Streams the file into `sink`: one thread reads, `WORKERS` threads parse and validate (the
/// slow part: phone numbers), this one hands chunks to the sink in file order; bounded channels
/// between them keep memory flat.
fn stream(
    ctx: &Context,
    config: &Config,
    file: &Path,
    strict: bool,
    sink: &mut Sink<'_>,
) -> Result<ImportCounts> {
    let reader = open(config, file)?;
    let name = file.display().to_string();
    let bar = progress_bar(ctx, file);
    let mut counts = ImportCounts::default();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let stop = &stop;
        // reader → chunk k to worker k % WORKERS → writer takes results back in the same order
        let parser = reader.parser();
        let (mut raw_txs, mut out_rxs) = (Vec::new(), Vec::new());
        for _ in 0..WORKERS {
            let (raw_tx, raw_rx) = sync_channel::<Msg<Vec<RawRow>>>(4);
            let (out_tx, out_rx) = sync_channel::<Msg<Chunk>>(4);
            let parser = parser.clone();
            scope.spawn(move || {
                for msg in raw_rx {
                    let parsed = msg.map(|(rows, position)| {
                        (
                            rows.into_iter().map(|r| r.parse(&parser)).collect(),
                            position,
                        )
                    });
                    if out_tx.send(parsed).is_err() {
                        return;
                    }
                }
            });
            raw_txs.push(raw_tx);
            out_rxs.push(out_rx);
        }
        scope.spawn(move || read_chunks(reader, raw_txs, stop));
        let result = (|| -> Result<()> {
            let mut pending: Vec<NewContact> = Vec::with_capacity(WRITE_CHUNK);
            let mut lines: Vec<u64> = Vec::with_capacity(WRITE_CHUNK);
            // rejections of the rows around the pending ones, reported with the chunk's
            // duplicates in file order
            let mut notes: Vec<(u64, String)> = Vec::new();
            let mut flush = |pending: &mut Vec<NewContact>,
                             lines: &mut Vec<u64>,
                             notes: &mut Vec<(u64, String)>|
             -> Result<ImportCounts> {
                let rows = std::mem::replace(pending, Vec::with_capacity(WRITE_CHUNK));
                let phones: Vec<(u64, String)> = lines
                    .drain(..)
                    .zip(rows.iter().map(|r| r.phone.clone()))
                    .collect();
                let out = sink.chunk(rows)?;
                for i in out.duplicates {
                    if let Some((line, phone)) = phones.get(i) {
                        notes.push((
                            *line,
                            format!("duplicate of an earlier row ({phone}): kept once"),
                        ));
                    }
                }
                notes.sort_by_key(|(line, _)| *line);
                for (line, note) in notes.drain(..) {
                    eprintln!("{name}:{line}: {note}");
                }
                Ok(out.counts)
            };
            for k in 0.. {
                let Ok(msg) = out_rxs[k % WORKERS].recv() else {
                    break;
                };
                let (chunk, position) = msg?;
                for (line, row) in chunk {
                    match row {
                        Ok(contact) => {
                            pending.push(contact);
                            lines.push(line);
                            if pending.len() >= WRITE_CHUNK {
                                counts.add(&flush(&mut pending, &mut lines, &mut notes)?);
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
                            counts.rejected += 1;
                            notes.push((rej.line, rej.reason));
                        }
                    }
                }
                if let Some(b) = &bar {
                    b.set_position(position);
                }
            }
            counts.add(&flush(&mut pending, &mut lines, &mut notes)?);
            Ok(())
        })();
        // let the reader and workers finish early on an error
        stop.store(true, Ordering::Relaxed);
        drop(out_rxs);
        result
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(counts)
}

/// Reads raw rows in chunks and deals them round-robin to the workers; a hard read error goes
/// to the worker whose turn it is, so the writer meets it in file order.
fn read_chunks(
    mut reader: ContactReader<BufReader<File>>,
    workers: Vec<SyncSender<Msg<Vec<RawRow>>>>,
    stop: &AtomicBool,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    for k in 0.. {
        let to = &workers[k % WORKERS];
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match reader.next_raw() {
                Ok(Some(row)) => {
                    chunk.push(row);
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        if to.send(Ok((full, reader.position()))).is_err() {
                            return;
                        }
                        break;
                    }
                }
                Ok(None) => {
                    let _ = to.send(Ok((std::mem::take(&mut chunk), reader.position())));
                    return;
                }
                Err(e) => {
                    let _ = to.send(Err(e));
                    return;
                }
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
