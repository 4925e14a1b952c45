//! The SQLite store, sealed: every SQL statement of the product lives under this module.
//! Opening (WAL, foreign keys, busy timeout, mode 0600) and migrations here; the queries one file
//! per table. Reads are methods of [`Store`] (one connection; [`Db`] keeps a pool of them);
//! writes are methods of [`Tx`], which only the one [`Writer`] thread hands out, inside its
//! group-committed transaction. Instants are INTEGER unix seconds UTC, always bound as parameters.

mod attempts;
mod campaigns;
mod contacts;
mod db;
mod dnc;
mod lock;
mod reports;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use attempts::{
    Answer, AttemptEnding, AttemptRow, EndedCall, StatusApplied, StatusEvent, is_final_status,
    reason_of,
};
pub use campaigns::{CampaignRow, CampaignStats};
pub use contacts::{ChunkOutcome, ContactRow, DryRun, ImportCounts, ImportRun, NewContact};
pub use db::Db;
pub use lock::{LockError, ProcessLock};
pub use reports::{
    AttemptFilter, AttemptRecord, ContactRecord, REACHED, SummaryCounts, attempt_export_sql,
};
pub use writer::Writer;

const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../migrations/0001_initial.sql")),
    M::up(include_str!("../../migrations/0002_changes.sql")),
    // 0003_callbacks.sql comes from another branch and goes here, before 0004.
    M::up(include_str!("../../migrations/0004_imports.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database `{}`: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create database `{}`: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate database `{}`: {source} (is it a dialer database from a newer version?)", path.display())]
    Migrate {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    #[error("database error: {0}")]
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
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One open connection to the database: the read queries.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating with mode 0600 if missing) and migrates the database. The connection the
    /// [`Writer`] owns; everything else reads through [`Store::open_reader`].
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            create_private(path).map_err(|source| StoreError::Create {
                path: path.to_owned(),
                source,
            })?;
        }
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let pragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                       PRAGMA busy_timeout = 5000;";
        conn.execute_batch(pragmas)
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    /// A read-only connection to a database the writer has created and migrated.
    pub fn open_reader(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::InvalidPath(path.to_owned()),
            });
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;",
        )
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
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
    pub fn tx(&self) -> Tx<'_> {
        Tx { store: self }
    }
}

/// The write queries, inside the [`Writer`]'s transaction (each job in its own savepoint).
/// Reads are available too, through `Deref`, and see the transaction's own changes.
pub struct Tx<'a> {
    store: &'a Store,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
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
        let mode = std::fs::metadata(store.path())
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
