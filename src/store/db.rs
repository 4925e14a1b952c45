//! [`Db`]: the database as the running product uses it — the one [`Writer`] for every change,
//! and a small pool of read connections (WAL lets them read while the writer writes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Result, Store, StoreError, Writer};

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
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
}

impl Db {
    /// Opens (creating and migrating) the database and starts its writer.
    pub fn open(path: &Path) -> Result<Db> {
        let writer = Writer::start(path)?;
        Ok(Db {
            writer,
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.readers.path
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
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let store = match pooled {
            Some(s) => s,
            None => Store::open_reader(&self.path)?,
        };
        let result = f(&store);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(store);
        }
        result
    }
}
