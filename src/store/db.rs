//! [`Db`]: the database as the running product uses it — the one [`Writer`] for every change,
//! and a small pool of read connections (WAL lets them read while the writer writes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::pg::{self, PgStore};
use super::{Result, Store, StoreError, Writer};
use crate::config::{Database, DatabaseUrl};

/// Read connections kept open between uses.
const IDLE_READERS: usize = 8;

/// The writer plus a pool of readers; cheap to clone. Writes are the [`Writer`]'s methods
/// (`db.write(..)`, `db.write_durable(..)`, `db.write_blocking(..)`), reached through `Deref`.
#[derive(Clone, Debug)]
pub struct Db {
    writer: Writer,
    readers: Arc<Readers>,
}

#[derive(Debug)]
struct Readers {
    source: Source,
    idle: Mutex<Vec<Store>>,
}

/// Where read connections come from.
#[derive(Debug)]
enum Source {
    Sqlite(PathBuf),
    Postgres(DatabaseUrl),
}

impl Db {
    /// Opens (creating and migrating) the database and starts its writer.
    pub fn open(path: &Path) -> Result<Db> {
        let writer = Writer::start(path)?;
        Ok(Db {
            writer,
            readers: Arc::new(Readers {
                source: Source::Sqlite(path.to_owned()),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Connects to a PostgreSQL database (migrating it; `now` is recorded with the migrations
    /// applied) and starts its writer; readers connect on demand.
    pub fn open_postgres(url: &DatabaseUrl, now: i64) -> Result<Db> {
        let writer = Writer::start_postgres(url, now)?;
        Ok(Db {
            writer,
            readers: Arc::new(Readers {
                source: Source::Postgres(url.clone()),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The database the config names: an SQLite file or a PostgreSQL url.
    pub fn open_database(database: &Database, now: i64) -> Result<Db> {
        match database {
            Database::Sqlite(path) => Db::open(path),
            Database::Postgres(url) => Db::open_postgres(url, now),
        }
    }

    /// The SQLite file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.readers.source {
            Source::Sqlite(path) => Some(path),
            Source::Postgres(_) => None,
        }
    }

    /// A read connection of its own (not from the pool), for a long read on this thread.
    pub fn open_reader(&self) -> Result<Store> {
        self.readers.connect()
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<R, E>(
        &self,
        f: impl FnOnce(&Store) -> std::result::Result<R, E> + Send + 'static,
    ) -> std::result::Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// [`Db::read`] for synchronous callers (on this thread).
    pub fn read_blocking<R, E>(
        &self,
        f: impl FnOnce(&Store) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E>
    where
        E: From<StoreError>,
    {
        self.readers.with(f)
    }
}

impl std::ops::Deref for Db {
    type Target = Writer;

    fn deref(&self) -> &Writer {
        &self.writer
    }
}

impl Readers {
    fn with<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Store) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        match self.source {
            Source::Sqlite(_) => self.with_reader(f),
            Source::Postgres(_) => pg::outside_runtime(|| self.with_reader(f)),
        }
    }

    fn with_reader<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Store) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let store = match pooled {
            Some(s) => s,
            None => self.connect()?,
        };
        let result = f(&store);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(store);
        }
        result
    }
}

impl Readers {
    fn connect(&self) -> Result<Store> {
        match &self.source {
            Source::Sqlite(path) => Store::open_reader(path),
            Source::Postgres(url) => {
                let client = pg::connect(url)?;
                Ok(Store::from(PgStore::new(client, url.endpoint())))
            }
        }
    }
}

impl Drop for Readers {
    /// Closes idle PostgreSQL connections on a thread of their own: closing one runs the
    /// client's runtime, which must not happen inside an async task (where a `Db` may drop).
    fn drop(&mut self) {
        if matches!(self.source, Source::Postgres(_)) {
            let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
            if !idle.is_empty() {
                let _ = std::thread::Builder::new()
                    .name("dialer-pg-close".into())
                    .spawn(move || drop(idle));
            }
        }
    }
}
