//! The SQLite store, sealed: every SQL statement of the product lives under this module.
//! Opening (WAL, foreign keys, busy timeout, mode 0600) and migrations here; the queries one file
//! per table. Reads are methods of [`Store`] (one connection; [`Db`] keeps a pool of them);
//! writes are methods of [`Tx`], which only the one [`Writer`] thread hands out, inside its
//! group-committed transaction. Instants are INTEGER unix seconds UTC, always bound as parameters.

mod attempts;
#[cfg(test)]
mod backend_tests;
mod campaigns;
mod contacts;
mod dashboard;
mod db;
mod dispatch;
mod dnc;
mod lock;
mod messages;
pub mod pg;
mod reports;
mod transcripts;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use attempts::{
    Answer, AttemptCall, AttemptEnding, AttemptRow, EndedCall, StatusApplied, StatusEvent,
    is_final_status, reason_of,
};
pub use campaigns::{CampaignRow, CampaignStats};
pub use contacts::{ChunkOutcome, ContactRow, ImportCounts, ImportRun, NewContact, SqliteDryRun};
pub use dashboard::{AnswerLine, AttemptHistory, EventLine, Funnel, HourCount, ZoneCount};
pub use db::Db;
pub use dispatch::{DryRun, Store, Tx};
pub use lock::{DatabaseLock, DatabaseLockError, LockError, ProcessLock, held_by_a_live_process};
pub use messages::{
    ContactMatch, DNC_SOURCE_MESSAGE, FollowUpCandidate, FollowUpQuery, InboundCallRecord,
    MessageRecord, NewFollowUp, NewInboundCall, NewInboundMessage,
};
pub use reports::{
    AttemptFilter, AttemptRecord, ContactRecord, REACHED, SummaryCounts, attempt_export_sql,
};
pub use transcripts::{BotCounts, BotSession, BotTurn, NewTurn, SessionEnd, TranscriptRecord};
pub use writer::Writer;

const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../migrations/0001_initial.sql")),
    M::up(include_str!("../../migrations/0002_changes.sql")),
    M::up(include_str!("../../migrations/0003_callbacks.sql")),
    M::up(include_str!("../../migrations/0004_imports.sql")),
    M::up(include_str!("../../migrations/0005_messaging.sql")),
    M::up(include_str!("../../migrations/0006_bot.sql")),
    M::up(include_str!("../../migrations/0008_import_speed.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // the causes are part of the message, not `source()`: an error chain would print them twice
    #[error("cannot open database `{}`: {}", path.display(), describe(cause))]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("cannot create database `{}`: {cause}", path.display())]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot migrate database `{}`: {cause} (is it a dialer database from a newer version?)", path.display())]
    Migrate {
        path: PathBuf,
        cause: rusqlite_migration::Error,
    },
    #[error("database error: {}", describe(.0))]
    Sql(#[from] rusqlite::Error),
    #[error("campaign `{0}` does not exist (see `dialer campaign list`)")]
    NoCampaign(String),
    #[error(
        "stored campaign `{name}` no longer validates: {message}; re-import it with `campaign import --replace`"
    )]
    BadStoredCampaign { name: String, message: String },
    #[error("the write was not committed: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("a database task failed: {0}")]
    Task(String),
    /// A PostgreSQL failure, already one sentence with the fix (see [`pg::describe`]).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

/// Prepared statements kept per connection: more than the product's distinct statements
/// (rusqlite's default of 16 would re-parse the hot ones on every use).
const STATEMENT_CACHE: usize = 256;

/// `execute` and `query_row` through the connection's statement cache (rusqlite's own parse the
/// SQL on every call): each statement is parsed once per connection.
trait Cached {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    fn query_row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether this is a write the database could not take now (full disk, I/O error,
    /// read-only or busy file): the daemon waits and tries again instead of stopping. Nothing
    /// was committed, so nothing is half-written: an uncommitted claim leaves its contact due,
    /// a claimed attempt left open is settled by its callbacks or by reconciliation.
    pub fn is_write_unavailable(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            StoreError::Commit(_) => true,
            StoreError::Sql(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    ErrorCode::DiskFull
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::ReadOnly
                        | ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::CannotOpen
                )
            ),
            _ => false,
        }
    }
}

/// An SQLite error in one sentence: the faults an operator can fix are named with their fix;
/// anything else is SQLite's own message.
pub fn describe(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            "the disk holding the database is full: free some space and run it again".into()
        }
        Some(ErrorCode::ReadOnly) => {
            "the database is read-only: check the file's permissions and that its file system is mounted read-write".into()
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "the database stayed locked by another process for 5 s: try again".into()
        }
        Some(ErrorCode::CannotOpen) => {
            "the database file cannot be opened: check that its folder exists and is writable".into()
        }
        _ => match e {
            rusqlite::Error::SqliteFailure(f, Some(m)) if m.contains(&f.to_string()) => m.clone(),
            other => other.to_string(),
        },
    }
}

/// One open connection to a SQLite database: the read queries ([`Store`] forwards to them).
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating with mode 0600 if missing) and migrates the database. The connection the
    /// [`Writer`] owns; everything else reads through [`Store::open_reader`]. It opens with
    /// `synchronous = FULL` (migrations, one-off writes); the writer sets the level per batch:
    /// FULL when the batch holds a durable job (a claim), NORMAL otherwise.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            create_private(path).map_err(|source| StoreError::Create {
                path: path.to_owned(),
                cause: source,
            })?;
        }
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            cause: source,
        })?;
        let pragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                       PRAGMA busy_timeout = 5000;";
        conn.execute_batch(pragmas)
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                cause: source,
            })?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                cause: source,
            })?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// A read-only connection to a database the writer has created and migrated.
    pub fn open_reader(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            return Err(StoreError::Open {
                path: path.to_owned(),
                cause: rusqlite::Error::InvalidPath(path.to_owned()),
            });
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            cause: source,
        })?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;",
        )
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            cause: source,
        })?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// The connection the writer's companion thread checkpoints the WAL with.
    pub(crate) fn open_checkpointer(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path).map_err(|cause| StoreError::Open {
            path: path.to_owned(),
            cause,
        })?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|cause| StoreError::Open {
                path: path.to_owned(),
                cause,
            })?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// Copies what the WAL holds back into the database, without waiting for anyone.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database answers (`/health`).
    pub fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// A counter that grows whenever campaigns, the DNC list or imports change, in any process
    /// (triggers keep it): the daemon reloads its campaigns when it moves.
    pub fn change_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT version FROM changes WHERE id = 1")?
            .query_row([], |r| r.get(0))?)
    }

    /// Raw access for unit tests that set up unusual rows.
    #[cfg(test)]
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Writes outside the writer thread, for unit tests (each statement commits on its own).
    #[cfg(test)]
    pub fn tx(&self) -> SqliteTx<'_> {
        SqliteTx { store: self }
    }
}

/// The write queries on SQLite, inside the [`Writer`]'s transaction (each job in its own
/// savepoint; [`Tx`] forwards to them). Reads are available too, through `Deref`, and see the
/// transaction's own changes.
pub struct SqliteTx<'a> {
    store: &'a SqliteStore,
}

impl std::ops::Deref for SqliteTx<'_> {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        self.store
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}

/// Unix seconds of an instant.
pub fn secs(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp()
}

/// The instant of unix seconds (clamped into chrono's range).
pub fn instant(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_faults_read_as_one_sentence_with_the_fix() {
        let failure = |code, message: &str| {
            StoreError::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some(message.to_owned()),
            ))
            .to_string()
        };
        assert_eq!(
            failure(rusqlite::ffi::SQLITE_FULL, "database or disk is full"),
            "database error: the disk holding the database is full: free some space and run it again"
        );
        assert!(
            failure(
                rusqlite::ffi::SQLITE_READONLY,
                "attempt to write a readonly database"
            )
            .contains("read-only: check the file's permissions")
        );
        assert_eq!(
            failure(rusqlite::ffi::SQLITE_ERROR, "no such table: x"),
            "database error: no such table: x"
        );
    }

    #[test]
    fn migrations_are_valid() {
        Migrations::from_slice(MIGRATIONS)
            .validate()
            .expect("migrations apply to an empty database");
    }

    #[cfg(unix)]
    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/dialer.db");
        let store = Store::open(&path).expect("open");
        let mode = std::fs::metadata(store.path().expect("a SQLite file"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let wal: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(wal, "wal");
    }
}
