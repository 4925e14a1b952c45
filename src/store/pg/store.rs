//! [`PgStore`] (reads) and [`PgTx`] (writes): one `postgres::Client` each, with the same
//! methods, names and types as the SQLite store's (`pg/attempts.rs` mirrors `attempts.rs`, and
//! so on); [`super::super::Store`] forwards to them. The writer thread's transaction is plain
//! SQL on the writer's client (`BEGIN`, a `SAVEPOINT` per job, `COMMIT`), as on SQLite.
//!
//! The client sits in a `RefCell`: a store is used by one thread at a time (a reader from the
//! pool, or the writer thread), and every method borrows it for one statement only. Statements
//! are prepared once per connection and kept (SQLite's `prepare_cached`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use postgres::types::{FromSql, ToSql};
use postgres::{Client, Row, Statement};

use super::super::dispatch::Control;
use super::super::{ChunkOutcome, NewContact, Result, StoreError};

/// Parameters of one statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection to a PostgreSQL database: the read queries.
pub struct PgStore {
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, Statement>>,
    /// The `synchronous_commit` level last set (the writer's connection), to set it only when it
    /// changes.
    durable: Cell<Option<bool>>,
    /// Where the server is, for `Debug` (never the password).
    endpoint: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The write queries, inside the writer's transaction; reads through `Deref`.
pub struct PgTx<'a> {
    pub(in crate::store) store: &'a PgStore,
}

impl std::ops::Deref for PgTx<'_> {
    type Target = PgStore;

    fn deref(&self) -> &PgStore {
        self.store
    }
}

impl PgStore {
    /// A store on an open (and migrated) connection.
    pub fn new(client: Client, endpoint: String) -> PgStore {
        PgStore {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            durable: Cell::new(None),
            endpoint,
        }
    }

    /// The statement for `sql`, prepared on this connection once.
    fn prepared(&self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.borrow_mut().prepare(sql)?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(super) fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.client.borrow_mut().query(&statement, params)?)
    }

    pub(super) fn row(&self, sql: &str, params: Params<'_>) -> Result<Row> {
        let statement = self.prepared(sql)?;
        Ok(self.client.borrow_mut().query_one(&statement, params)?)
    }

    pub(super) fn optional(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.client.borrow_mut().query_opt(&statement, params)?)
    }

    /// Runs a statement; the rows it changed.
    pub(super) fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let statement = self.prepared(sql)?;
        Ok(self.client.borrow_mut().execute(&statement, params)?)
    }

    /// Statements without parameters, in one round trip.
    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }

    /// Streams the rows of a query to `f` without collecting them (`f` must not use this
    /// store: the connection is busy until the last row).
    pub(super) fn each_row<E: From<StoreError>>(
        &self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row) -> Result<(), E>,
    ) -> Result<(), E> {
        use postgres::fallible_iterator::FallibleIterator;
        let statement = self.prepared(sql).map_err(E::from)?;
        let mut client = self.client.borrow_mut();
        let mut rows = client
            .query_raw(&statement, params.iter().copied())
            .map_err(|e| E::from(StoreError::from(e)))?;
        while let Some(row) = rows.next().map_err(|e| E::from(StoreError::from(e)))? {
            f(&row)?;
        }
        Ok(())
    }

    /// One step of the writer's transaction. Not durable is `synchronous_commit = off` (a
    /// commit is answered before the server's WAL reaches its disk; a server crash may lose the
    /// last ones, never half of one: SQLite's `synchronous = NORMAL`); durable is `on`.
    pub(crate) fn control(&self, step: Control) -> std::result::Result<(), String> {
        let sql = match step {
            Control::Sync { durable } => {
                if self.durable.get() == Some(durable) {
                    return Ok(());
                }
                self.durable.set(None);
                if durable {
                    "SET synchronous_commit = on"
                } else {
                    "SET synchronous_commit = off"
                }
            }
            Control::Begin => "BEGIN",
            Control::Savepoint => "SAVEPOINT job",
            Control::Release => "RELEASE SAVEPOINT job",
            Control::Undo => "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job",
            Control::Rollback => "ROLLBACK",
            // A COMMIT of a transaction an error has aborted is answered "ROLLBACK", not an
            // error: the SELECT fails first in that case, so the batch is reported not committed.
            Control::Commit => "SELECT 1; COMMIT",
        };
        self.client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(|e| super::describe(&e))?;
        if let Control::Sync { durable } = step {
            self.durable.set(Some(durable));
        }
        Ok(())
    }

    /// Whether the database answers (`/health`).
    pub fn ping(&self) -> Result<()> {
        self.row("SELECT 1", &[])?;
        Ok(())
    }

    /// A counter that grows whenever campaigns, the DNC list or imports change, in any process
    /// (triggers keep it).
    pub fn change_version(&self) -> Result<i64> {
        get(
            &self.row("SELECT version FROM changes WHERE id = 1", &[])?,
            0,
        )
    }

    /// A dry run of an import: numbers seen so far go to a TEMP table of this connection.
    pub fn dry_run(&self, campaign_id: i64) -> Result<PgDryRun<'_>> {
        self.batch(
            "CREATE TEMP TABLE IF NOT EXISTS dry_run_seen (phone TEXT PRIMARY KEY);
             TRUNCATE dry_run_seen;",
        )?;
        Ok(PgDryRun {
            store: self,
            campaign_id,
        })
    }
}

/// A dry run of an import on PostgreSQL (see [`PgStore::dry_run`]).
pub struct PgDryRun<'a> {
    store: &'a PgStore,
    campaign_id: i64,
}

impl PgDryRun<'_> {
    pub fn chunk(&mut self, rows: &[NewContact]) -> Result<ChunkOutcome> {
        let mut out = ChunkOutcome::default();
        for (i, c) in rows.iter().enumerate() {
            let first = self.store.execute(
                "INSERT INTO dry_run_seen (phone) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&c.phone],
            )? == 1;
            if !first {
                out.counts.duplicates += 1;
                out.duplicates.push(i);
                continue;
            }
            match super::contacts::stored(self.store, self.campaign_id, &c.phone)? {
                None => out.counts.imported += 1,
                Some(s) if s.incomplete => out.counts.imported += 1,
                Some(s) if s.same_as(c) => out.counts.unchanged += 1,
                Some(_) => out.counts.updated += 1,
            }
        }
        out.done = rows.len();
        Ok(out)
    }
}

/// Column `i` of a row; a type mismatch is an error, not a panic.
pub(super) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    Ok(r.try_get(i)?)
}

/// A BIGINT count column as the `u32` the SQLite store returns (clamped).
pub(super) fn get_u32(r: &Row, i: usize) -> Result<u32> {
    let v: i64 = get(r, i)?;
    Ok(u32::try_from(v.max(0)).unwrap_or(u32::MAX))
}

/// Runs `f`, which uses a `postgres` client, where that client may block: a client runs its
/// own small runtime, which cannot start on a thread driving async tasks. On such a thread of a
/// multi-threaded runtime (a synchronous read from an async command) `f` runs through
/// `block_in_place`; on the blocking pool, the writer thread or a plain thread, directly.
pub fn outside_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
