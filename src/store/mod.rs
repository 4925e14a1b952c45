//! The SQLite store: opening (WAL, foreign keys, busy timeout, mode 0600), migrations, and the
//! queries, one file per table. Instants are INTEGER unix seconds UTC, always bound as parameters.

mod attempts;
mod campaigns;
mod contacts;
mod dnc;
mod lock;
mod reports;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use attempts::{
    Answer, AttemptRow, EndedCall, StatusApplied, StatusEvent, is_final_status, reason_of,
};
pub use campaigns::{CampaignRow, CampaignStats};
pub use contacts::{ContactRow, ImportCounts, ImportSink, NewContact};
pub use lock::{LockError, ProcessLock};
pub use reports::{
    AttemptFilter, AttemptRecord, ContactRecord, REACHED, SummaryCounts, attempt_export_sql,
};

const MIGRATIONS: &[M<'static>] = &[M::up(include_str!("../../migrations/0001_initial.sql"))];

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
    #[error("stored campaign `{name}` no longer validates: {message}")]
    BadStoredCampaign { name: String, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open database.
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
    /// Opens (creating with mode 0600 if missing) and migrates the database.
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
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
