//! `dialer contacts import`: streams a CSV into a campaign (SPEC §4).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use super::import_notes::Notes;
use crate::campaign::contacts_csv::{ContactReader, CsvError, RawRow, Rejection};
use crate::campaign::phone_order::{LineContact, PhoneOrder};
use crate::cli::ContactsCommand;
use crate::config::Config;
use crate::store::{ChunkOutcome, Db, DryRun, ImportCounts, ImportRun, NewContact, StoreError, Tx};

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

/// The transaction budget while no dialer process has the database open: no callback can be
/// waiting, so transactions are longer and no gap is left between them.
const ALONE_BUDGET: Duration = Duration::from_millis(250);

/// How often the import looks again whether a dialer process has the database open.
const ALONE_CHECK: Duration = Duration::from_secs(1);

pub fn run(ctx: &Context, cmd: ContactsCommand) -> Result<()> {
    let ContactsCommand::Import {
        campaign,
        file,
        strict,
        dry_run,
        rejects,
    } = cmd;
    let config = ctx.config()?;
    check_header(&config, &file)?;
    let db = ctx.db(&config)?;
    let row = db.read_blocking(|store| store.require_campaign(&campaign))?;
    let options = ImportOptions {
        strict,
        dry_run,
        rejects,
    };
    import(ctx, &config, &db, row.id, &file, &options).map(drop)
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
    fn chunk(&mut self, rows: Arc<Vec<NewContact>>) -> Result<ChunkOutcome> {
        Ok(match self {
            Sink::Check => ChunkOutcome::default(),
            Sink::Dry(dry) => dry.chunk(&rows)?,
            Sink::Write { db, run, pace } => {
                let run = *run;
                let mut out = ChunkOutcome::default();
                while out.done < rows.len() {
                    let (rest, from) = (rows.clone(), out.done);
                    let budget = pace.budget(db);
                    let part =
                        pace.write(db, move |tx| tx.import_chunk(&run, &rest[from..], budget))?;
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
/// for half that (a waiter's first retries still land in the gap). While no dialer process has
/// the database open, nobody can be waiting: no gap, and longer transactions ([`ALONE_BUDGET`]).
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
    /// Whether no dialer process had the database open, and when that was looked at.
    alone: Option<(bool, Instant)>,
}

impl Pace {
    /// True while no `run` process (daemon or batch: whatever serves callbacks) holds the
    /// database's lock; looked at again every [`ALONE_CHECK`].
    fn alone(&mut self, db: &Db) -> bool {
        match self.alone {
            Some((alone, at)) if at.elapsed() < ALONE_CHECK => alone,
            _ => {
                // PostgreSQL has no database-wide write lock to leave free for a dialer
                let alone = db
                    .path()
                    .is_none_or(|p| !crate::store::held_by_a_live_process(p));
                self.alone = Some((alone, Instant::now()));
                alone
            }
        }
    }

    /// How long the next import transaction may run.
    fn budget(&mut self, db: &Db) -> Duration {
        if self.alone(db) {
            ALONE_BUDGET
        } else {
            WRITE_BUDGET
        }
    }

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
        self.free_until = if contended {
            Some(now + took.max(MIN_GAP))
        } else if self.alone(db) {
            None
        } else {
            Some(now + (took / 2).max(MIN_GAP))
        };
        self.last = took;
        self.longest = self.longest.max(took);
        self.transactions += 1;
        Ok(out)
    }
}

/// How `contacts import` treats bad rows and whether it writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Abort on the first bad row; nothing is written.
    pub strict: bool,
    /// Check and count; write nothing.
    pub dry_run: bool,
    /// Write every rejected row here (`line,reason,raw`).
    pub rejects: Option<PathBuf>,
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
    options: &ImportOptions,
) -> Result<ImportCounts> {
    let ImportOptions {
        strict,
        dry_run,
        ref rejects,
    } = *options;
    let name = file.display().to_string();
    let mut notes = Notes::new(file, rejects.as_deref())?;
    if strict {
        stream(ctx, config, file, true, &mut Sink::Check, &mut notes)?;
    }
    let counts = if dry_run {
        let reader = db.open_reader()?;
        let mut sink = Sink::Dry(reader.dry_run(campaign_id)?);
        stream(ctx, config, file, strict, &mut sink, &mut notes)?
    } else {
        let mut pace = Pace::default();
        let now = ctx.clock.now();
        let file_name = name.clone();
        let run = pace.write(db, move |tx| tx.begin_import(campaign_id, &file_name, now))?;
        let sink = &mut Sink::Write {
            db,
            run,
            pace: &mut pace,
        };
        let counts = stream(ctx, config, file, strict, sink, &mut notes)?;
        let done = ctx.clock.now();
        // the rows this run created become dialable here, all at once; moving them into the
        // due index ("settling") is the daemon's upkeep (`Session::settle_imports`)
        pace.write(db, move |tx| tx.finish_import(&run, done))?;
        tracing::debug!(
            transactions = pace.transactions,
            longest_ms = pace.longest.as_secs_f64() * 1e3,
            "import written"
        );
        counts
    };
    notes.finish()?;
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

/// Rows an import holds in memory before it sorts them and spills them to a temporary file
/// (about 250 bytes each: ~12 MB).
const SORT_RUN: usize = 50_000;

/// Streams the file into `sink`: one thread reads, `WORKERS` threads parse and validate (the
/// slow part: phone numbers), this one takes their results back in file order; bounded channels
/// between them keep memory flat. Rows to write are first put in phone order
/// ([`PhoneOrder`]: B-tree inserts then append instead of landing on random pages); a check or a
/// dry run takes them in file order.
fn stream(
    ctx: &Context,
    config: &Config,
    file: &Path,
    strict: bool,
    sink: &mut Sink<'_>,
    notes: &mut Notes,
) -> Result<ImportCounts> {
    let reader = open(config, file)?;
    let name = file.display().to_string();
    let bar = progress_bar(ctx, file);
    let mut counts = ImportCounts::default();
    let mut order = match sink {
        Sink::Write { db, .. } => Some(PhoneOrder::new(
            &db.path()
                .and_then(Path::parent)
                .map_or_else(std::env::temp_dir, Path::to_path_buf),
            SORT_RUN,
        )),
        Sink::Check | Sink::Dry(_) => None,
    };
    let mut batch = Batch::default();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let stop = &stop;
        // reader → chunk k to worker k % WORKERS → this thread takes results back in order
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
            for k in 0.. {
                let Ok(msg) = out_rxs[k % WORKERS].recv() else {
                    break;
                };
                let (chunk, position) = msg?;
                for (line, row) in chunk {
                    match row {
                        Ok(contact) => match &mut order {
                            Some(order) => order
                                .push(LineContact { line, contact })
                                .context("cannot sort the import")?,
                            None => {
                                if batch.push(line, contact) {
                                    counts.add(&batch.flush(sink, notes)?);
                                }
                            }
                        },
                        Err(rej) if strict => {
                            anyhow::bail!(
                                "{name}:{}: {} (--strict: nothing was imported)",
                                rej.line,
                                rej.reason
                            );
                        }
                        Err(rej) => {
                            counts.rejected += 1;
                            notes.rejected(&rej)?;
                        }
                    }
                }
                if let Some(b) = &bar {
                    b.set_position(position);
                }
            }
            Ok(())
        })();
        // let the reader and workers finish early on an error
        stop.store(true, Ordering::Relaxed);
        drop(out_rxs);
        result
    })?;
    if let Some(order) = order {
        // a number repeated in the file follows its first row here: kept once, the first
        let mut last_phone: Option<String> = None;
        for row in order.finish().context("cannot sort the import")? {
            let LineContact { line, contact } = row.context("cannot sort the import")?;
            if last_phone.as_deref() == Some(contact.phone.as_str()) {
                counts.duplicates += 1;
                notes.duplicate(line, &contact.phone);
                continue;
            }
            last_phone = Some(contact.phone.clone());
            if batch.push(line, contact) {
                counts.add(&batch.flush(sink, notes)?);
            }
        }
    }
    counts.add(&batch.flush(sink, notes)?);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(counts)
}

/// Valid rows gathered for one write job, with their lines.
#[derive(Debug, Default)]
struct Batch {
    rows: Vec<NewContact>,
    lines: Vec<u64>,
}

impl Batch {
    /// Adds a row; true when the batch is full.
    fn push(&mut self, line: u64, contact: NewContact) -> bool {
        self.rows.push(contact);
        self.lines.push(line);
        self.rows.len() >= WRITE_CHUNK
    }

    /// Hands the rows to the sink; a number the sink found already imported by this run is noted.
    fn flush(&mut self, sink: &mut Sink<'_>, notes: &mut Notes) -> Result<ImportCounts> {
        if self.rows.is_empty() {
            return Ok(ImportCounts::default());
        }
        let rows = Arc::new(std::mem::replace(
            &mut self.rows,
            Vec::with_capacity(WRITE_CHUNK),
        ));
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(WRITE_CHUNK));
        let out = sink.chunk(rows.clone())?;
        for i in out.duplicates {
            if let (Some(line), Some(row)) = (lines.get(i), rows.get(i)) {
                notes.duplicate(*line, &row.phone);
            }
        }
        Ok(out.counts)
    }
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
