//! The one writer (group commit). A thread owns the database's only write connection; callers
//! send it jobs over a channel. The thread takes every job waiting, runs them in one transaction
//! (`BEGIN IMMEDIATE`), each inside its own savepoint so a failing job undoes only itself,
//! commits once, and only then answers each caller. Many callbacks arriving together therefore
//! cost one commit, and no caller hears "done" before its write is committed.
//!
//! Checkpoints run off the commit path: the writer's connection has `wal_autocheckpoint = 0`, and
//! a companion thread copies the WAL back into the database (`PRAGMA wal_checkpoint(PASSIVE)`,
//! which never waits for readers or the writer) every [`CHECKPOINT_EVERY`], so no caller waits
//! while a checkpoint copies and syncs pages. It stops when the writer does.
//!
//! Durability: commits run with `synchronous = NORMAL` (in WAL mode a commit survives a crash of
//! the process; a power loss may lose the last ones). A *durable* job — the claim of an attempt,
//! which must never be lost once the call may be placed (SPEC §10) — makes its whole batch commit
//! with `synchronous = FULL`: the WAL is synced before anyone in the batch is answered.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use super::dispatch::Control;
use super::pg::{self, PgStore};
use super::{Result, SqliteStore, Store, StoreError, Tx};
use crate::config::DatabaseUrl;

/// Jobs committed together at most (bounds the time a commit keeps callers waiting).
const MAX_BATCH: usize = 512;

/// How often the companion thread checkpoints the WAL.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What a job hands back once the transaction it ran in has committed (or failed to).
type Reply = Box<dyn FnOnce(std::result::Result<(), &str>) + Send>;

/// A unit of work: runs inside the writer's transaction, says whether it succeeded (so its
/// savepoint is kept or undone) and how to answer its caller after the commit. Given no
/// transaction (none could be started), it does not run and only makes its reply.
type Run = Box<dyn FnOnce(Option<&Tx<'_>>) -> (bool, Reply) + Send>;

/// A job and whether its commit must reach the disk before it is answered.
struct Job {
    run: Run,
    durable: bool,
}

/// A handle to the writer thread; cheap to clone. The thread ends when the last handle drops.
#[derive(Clone)]
pub struct Writer {
    jobs: Sender<Job>,
    /// The database, for `Debug`: the SQLite file, or the PostgreSQL server and database.
    label: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("database", &self.label)
            .finish()
    }
}

impl Writer {
    /// Opens (creating and migrating) the database and starts its writer thread.
    pub fn start(path: &Path) -> Result<Writer> {
        let store = SqliteStore::open(path)?;
        // savepoints' journals (one per job) in memory: a file write per first touch of a page
        // was an eighth of an import's time
        store
            .conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY")?;
        let checkpoints = SqliteStore::open_checkpointer(path)?;
        let store = Store::from(store);
        let (jobs, rx) = channel::<Job>();
        let alive = std::sync::Arc::new(());
        let watch = std::sync::Arc::downgrade(&alive);
        let spawn_err = |source| StoreError::Create {
            path: path.to_owned(),
            cause: source,
        };
        std::thread::Builder::new()
            .name("dialer-writer".into())
            .spawn(move || {
                run(&store, &rx);
                drop(alive);
            })
            .map_err(spawn_err)?;
        std::thread::Builder::new()
            .name("dialer-checkpoint".into())
            .spawn(move || {
                while watch.upgrade().is_some() {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = checkpoints.checkpoint() {
                        tracing::debug!(error = %e, "checkpoint failed; the next one retries");
                    }
                }
            })
            .map_err(spawn_err)?;
        Ok(Writer {
            jobs,
            label: path.display().to_string(),
        })
    }

    /// Connects to a PostgreSQL database, migrates it and starts the writer thread on that
    /// connection. The thread connects (the `postgres` client runs its own small runtime, so it
    /// never connects from inside an async task); this waits for it to be ready.
    pub fn start_postgres(url: &DatabaseUrl, now: i64) -> Result<Writer> {
        let (jobs, rx) = channel::<Job>();
        let (ready_tx, ready) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let target = url.clone();
        std::thread::Builder::new()
            .name("dialer-writer".into())
            .spawn(move || {
                let opened = pg::connect(&target).and_then(|mut client| {
                    pg::migrate(&mut client, now)?;
                    Ok(PgStore::new(client, target.endpoint()))
                });
                match opened {
                    Ok(store) => {
                        let _ = ready_tx.send(Ok(()));
                        run(&Store::from(store), &rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StoreError::Postgres(format!("cannot start the writer thread: {e}")))?;
        ready.recv().map_err(|_| StoreError::WriterGone)??;
        Ok(Writer {
            jobs,
            label: format!("{} at {}", url.dbname(), url.endpoint()),
        })
    }

    /// Runs `f` in the writer's next transaction; resolves after that transaction committed.
    pub async fn write<R, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<R, E> + Send + 'static,
    ) -> std::result::Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_with(false, f).await
    }

    /// [`Writer::write`], and the commit is synced to disk before the answer (`synchronous =
    /// FULL` for its batch): for writes that must survive a power loss, such as a claim.
    pub async fn write_durable<R, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<R, E> + Send + 'static,
    ) -> std::result::Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_with(true, f).await
    }

    async fn write_with<R, E>(
        &self,
        durable: bool,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<R, E> + Send + 'static,
    ) -> std::result::Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(durable, f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await.map_err(|_| E::from(StoreError::WriterGone))?
    }

    /// [`Writer::write`] for synchronous callers (CLI commands, blocking threads).
    pub fn write_blocking<R, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<R, E> + Send + 'static,
    ) -> std::result::Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(false, f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().map_err(|_| E::from(StoreError::WriterGone))?
    }

    fn submit<R, E>(
        &self,
        durable: bool,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<R, E> + Send + 'static,
        answer: impl FnOnce(std::result::Result<R, E>) + Send + 'static,
    ) -> std::result::Result<(), E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let failed = |e: &str| E::from(StoreError::Commit(e.to_owned()));
        let run: Run = Box::new(move |tx| match tx.map(f) {
            None => (
                false,
                Box::new(move |r: std::result::Result<(), &str>| {
                    answer(Err(failed(r.err().unwrap_or("no transaction"))));
                }),
            ),
            Some(Ok(value)) => (
                true,
                Box::new(
                    move |committed: std::result::Result<(), &str>| match committed {
                        Ok(()) => answer(Ok(value)),
                        Err(e) => answer(Err(failed(e))),
                    },
                ),
            ),
            Some(Err(e)) => (false, Box::new(move |_| answer(Err(e)))),
        });
        self.jobs
            .send(Job { run, durable })
            .map_err(|_| E::from(StoreError::WriterGone))
    }
}

impl SqliteStore {
    /// One step of the writer's transaction on SQLite; an error is one sentence ([`describe`]).
    ///
    /// [`describe`]: super::describe
    pub(crate) fn control(&self, step: Control) -> std::result::Result<(), String> {
        let sql = match step {
            Control::Sync { durable: true } => "PRAGMA synchronous = FULL",
            Control::Sync { durable: false } => "PRAGMA synchronous = NORMAL",
            Control::Begin => "BEGIN IMMEDIATE",
            Control::Savepoint => "SAVEPOINT job",
            Control::Release => "RELEASE job",
            Control::Undo => "ROLLBACK TO job; RELEASE job",
            Control::Rollback => "ROLLBACK",
            Control::Commit => "COMMIT",
        };
        let done = if sql.contains(';') || sql.starts_with("PRAGMA") {
            self.conn.execute_batch(sql)
        } else {
            // parsed once per connection (`execute_batch` parses it again every batch and job)
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map(drop)
        };
        done.map_err(|e| super::describe(&e))
    }
}

/// The writer thread: batch, run, commit, answer; until every handle is gone.
fn run(store: &Store, jobs: &Receiver<Job>) {
    let mut level = None;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_batch(store, batch, &mut level);
    }
}

/// `level`: the sync level the connection was last set to (`Some(true)`: FULL), so a batch sets
/// it only when it changes.
fn commit_batch(store: &Store, batch: Vec<Job>, level: &mut Option<bool>) {
    let durable = batch.iter().any(|j| j.durable);
    if *level != Some(durable) {
        match store.control(Control::Sync { durable }) {
            Ok(()) => *level = Some(durable),
            Err(e) => {
                *level = None;
                tracing::error!(error = %e, "cannot set the sync level");
            }
        }
    }
    if let Err(message) = store.control(Control::Begin) {
        tracing::debug!(error = %message, "cannot start a write transaction");
        for job in batch {
            let (_, reply) = (job.run)(None);
            reply(Err(&message));
        }
        return;
    }
    let tx = Tx::new(store);
    // A job alone in its batch needs no savepoint: if it fails, the whole transaction is undone.
    let solo = batch.len() == 1;
    let mut replies = Vec::with_capacity(batch.len());
    let mut undone = false;
    for job in batch {
        if !solo && let Err(e) = store.control(Control::Savepoint) {
            tracing::error!(error = %e, "cannot open a savepoint");
        }
        let undo = |store: &Store| {
            if !solo {
                let _ = store.control(Control::Undo);
            }
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| (job.run)(Some(&tx)))) {
            Ok((true, reply)) => {
                if !solo {
                    let _ = store.control(Control::Release);
                }
                replies.push(reply);
            }
            Ok((false, reply)) => {
                undo(store);
                undone = solo;
                replies.push(reply);
            }
            Err(_) => {
                // the caller sees its channel close: `WriterGone`
                tracing::error!("a write job panicked; its changes were undone");
                undo(store);
                undone = solo;
            }
        }
    }
    if undone {
        // the only job failed: nothing to commit (its reply carries its own error)
        let _ = store.control(Control::Rollback);
        for reply in replies {
            reply(Ok(()));
        }
        return;
    }
    match store.control(Control::Commit) {
        Ok(()) => {
            for reply in replies {
                reply(Ok(()));
            }
        }
        Err(message) => {
            tracing::debug!(error = %message, "commit failed; the batch was rolled back");
            let _ = store.control(Control::Rollback);
            for reply in replies {
                reply(Err(&message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(store: &Store) -> i64 {
        store
            .conn()
            .query_row("SELECT count(*) FROM dnc", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_write_is_visible_to_other_connections_once_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let writer = Writer::start(&path).expect("writer");
        let reader = Store::open_reader(&path).expect("reader");
        let added = writer
            .write_blocking(|tx| tx.dnc_add(&["+12125550101".to_owned()], "cli", instant(0)))
            .expect("write");
        assert_eq!(added, 1);
        assert_eq!(count(&reader), 1);
    }

    #[test]
    fn a_failing_job_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let writer = Writer::start(&path).expect("writer");
        let failing = writer.write_blocking(|tx| {
            tx.dnc_add(&["+12125550101".to_owned()], "cli", instant(0))?;
            Err::<(), _>(StoreError::NoCampaign("x".into()))
        });
        assert!(matches!(failing, Err(StoreError::NoCampaign(_))));
        writer
            .write_blocking(|tx| tx.dnc_add(&["+12125550102".to_owned()], "cli", instant(0)))
            .expect("write");
        let reader = Store::open_reader(&path).expect("reader");
        assert_eq!(count(&reader), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_grouped_and_all_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let writer = Writer::start(&path).expect("writer");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let w = writer.clone();
            tasks.spawn(async move {
                w.write(move |tx| tx.dnc_add(&[format!("+1212555{i:04}")], "cli", instant(0)))
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.expect("task").expect("write"), 1);
        }
        let reader = Store::open_reader(&path).expect("reader");
        assert_eq!(count(&reader), 200);
    }

    use super::super::instant;

    fn sync_level(tx: &Tx<'_>) -> Result<i64> {
        Ok(tx
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// Issue: with `synchronous = NORMAL` a committed claim could vanish on power loss, and a
    /// retry would then dial twice (SPEC §10 durable claim). A durable job's batch commits FULL.
    #[tokio::test]
    async fn a_durable_write_commits_with_synchronous_full_and_others_normal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Writer::start(&dir.path().join("w.db")).expect("writer");
        let durable = writer.write_durable(sync_level).await;
        assert_eq!(durable.expect("durable"), 2, "FULL");
        let plain = writer.write(sync_level).await;
        assert_eq!(plain.expect("plain"), 1, "NORMAL");
    }
}
