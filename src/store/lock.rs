//! The single-process lock: one dialer process per database file, whatever path names it
//! (SPEC §10). It is an exclusive OS file lock (`File::try_lock`), held for the life of a `run`
//! command; a crashed holder never leaves a stale lock behind. The lock files record the
//! holder's pid for the error message only.
//!
//! The database file is identified, not its path as written: the path is canonicalized
//! (symlinks, `..`, a second config spelling it differently all resolve to one path) and, on
//! Unix, the file's device and inode name the lock, so a hard link is the same database too.
//! Two lock files are taken, both in the directory of the canonical path (created with the
//! database, mode 0600, if it does not exist yet):
//!
//! - `.dialer-<dev>-<inode>.lock`, the identity: any name of the file, hard links in the same
//!   directory included, finds it. A hard link in *another* directory does not (nothing but the
//!   inode itself is shared between two directories); that case is not covered.
//! - `<canonical name>.lock`, the file earlier versions lock by the path as written, still taken
//!   so that an older and a newer dialer exclude each other, and still holding the pid for
//!   scripts that read it. Together with the identity it also refuses a second process when the
//!   database file was replaced (same path, new inode) under a running one.
//!
//! Why not lock the database file itself: its inode would cover hard links anywhere, but closing
//! any descriptor of the database drops every POSIX (`fcntl`) lock this process holds on it, and
//! those are SQLite's own locks, so releasing this lock while a connection is open would
//! silently unlock SQLite. And `flock` (what `File::try_lock` uses) is independent of `fcntl`
//! locks on Linux but not on the BSDs and macOS, where it would block SQLite in every other
//! process. Separate lock files never touch the database's descriptors.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another dialer process (pid {pid}) is using {}", db.display())]
    Held { pid: String, db: PathBuf },
    #[error("cannot lock `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while alive; dropping it releases the lock.
#[derive(Debug)]
pub struct ProcessLock {
    _files: Vec<File>,
}

impl ProcessLock {
    /// Locks the database file at `db` (created, mode 0600, if missing) for this process.
    pub fn acquire(db: &Path) -> Result<ProcessLock, LockError> {
        let files = lock_files(db)?;
        let mut held = Vec::with_capacity(files.len());
        for path in files {
            held.push(lock(&path, db)?);
        }
        Ok(ProcessLock { _files: held })
    }
}

/// Whether a live process may hold the lock of the database at `db` (a `run` command: the
/// daemon, or a batch). Read without taking the lock (taking it, even for an instant, could make
/// a dialer starting at that instant fail). It reads the pid the holder wrote; a pid that is
/// no longer running means no holder. Conservative: when unsure (no `/proc`, unreadable file),
/// it answers true.
pub fn held_by_a_live_process(db: &Path) -> bool {
    let Ok(files) = existing_lock_files(db) else {
        return true;
    };
    files
        .iter()
        .any(|path| match std::fs::read_to_string(path) {
            Ok(pid) => match pid.trim().parse::<u32>() {
                Ok(pid) => process_alive(pid),
                Err(_) => !pid.trim().is_empty(),
            },
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        })
}

fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// The lock files of the database at `db` (which exists), without creating anything.
fn existing_lock_files(db: &Path) -> std::io::Result<Vec<PathBuf>> {
    let canonical = std::fs::canonicalize(db)?;
    let (Some(dir), Some(name)) = (canonical.parent(), canonical.file_name()) else {
        return Err(std::io::Error::other("not a file"));
    };
    let mut named = name.to_owned();
    named.push(".lock");
    Ok(vec![dir.join(named)])
}

/// The lock files of the database at `db`: its identity's, then its canonical name's.
fn lock_files(db: &Path) -> Result<Vec<PathBuf>, LockError> {
    let io = |source| LockError::Io {
        path: db.to_owned(),
        source,
    };
    if !db.exists() {
        match super::create_private(db) {
            Ok(()) => {}
            // created by another process meanwhile: the same file
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    let canonical = std::fs::canonicalize(db).map_err(io)?;
    let (Some(dir), Some(name)) = (canonical.parent(), canonical.file_name()) else {
        return Err(io(std::io::Error::other("not a file")));
    };
    let mut named = name.to_owned();
    named.push(".lock");
    let mut files = Vec::with_capacity(2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&canonical).map_err(io)?;
        files.push(dir.join(format!(".dialer-{}-{}.lock", meta.dev(), meta.ino())));
    }
    files.push(dir.join(named));
    Ok(files)
}

/// Takes the exclusive lock on `path` and writes this process's pid into it.
fn lock(path: &Path, db: &Path) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_owned()
                },
                db: db.to_owned(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

/// The process lock of either backend: the lock files of an SQLite database, or the advisory
/// lock of a PostgreSQL one ([`super::pg::PgProcessLock`]). Held while alive.
#[derive(Debug)]
pub enum DatabaseLock {
    File(ProcessLock),
    Postgres(super::pg::PgProcessLock),
}

/// Why the process lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseLockError {
    #[error(transparent)]
    File(#[from] LockError),
    #[error(transparent)]
    Postgres(#[from] super::StoreError),
}

impl DatabaseLock {
    /// Takes the lock of the database the config names, for this process.
    pub fn acquire(database: &crate::config::Database) -> Result<DatabaseLock, DatabaseLockError> {
        Ok(match database {
            crate::config::Database::Sqlite(path) => {
                DatabaseLock::File(ProcessLock::acquire(path)?)
            }
            crate::config::Database::Postgres(url) => {
                DatabaseLock::Postgres(super::pg::PgProcessLock::acquire(url)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by_me(db: &Path) -> String {
        format!(
            "another dialer process (pid {}) is using {}",
            std::process::id(),
            db.display()
        )
    }

    #[test]
    fn a_live_holder_is_seen_and_a_released_lock_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("d.db");
        std::fs::write(&db, b"").expect("db");
        assert!(!held_by_a_live_process(&db), "never locked");
        let lock = ProcessLock::acquire(&db).expect("lock");
        assert!(held_by_a_live_process(&db), "held by this process");
        drop(lock);
        // the pid stays in the file; this process is alive, so it still counts (conservative)
        assert!(held_by_a_live_process(&db));
        let named = dir.path().canonicalize().expect("dir").join("d.db.lock");
        std::fs::write(&named, u32::MAX.to_string()).expect("stale pid");
        assert!(!held_by_a_live_process(&db), "a pid that is not running");
    }

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dialer.db");
        let first = ProcessLock::acquire(&db).expect("first lock");
        let err = ProcessLock::acquire(&db)
            .expect_err("second lock must fail")
            .to_string();
        assert_eq!(err, held_by_me(&db));
        drop(first);
        ProcessLock::acquire(&db).expect("free again after drop");
    }

    /// Issue: the lock was named after the path as written, so another name for the same
    /// database file started a second process.
    #[cfg(unix)]
    #[test]
    fn another_name_for_the_same_database_is_refused() {
        type Alias = fn(&Path) -> PathBuf;
        let aliases: [(&str, Alias); 4] = [
            ("symlink", |dir| {
                let link = dir.join("link.db");
                std::os::unix::fs::symlink(dir.join("dialer.db"), &link).expect("symlink");
                link
            }),
            ("symlinked folder", |dir| {
                let link = dir.join("linked");
                std::os::unix::fs::symlink(dir, &link).expect("symlink");
                link.join("dialer.db")
            }),
            ("hard link", |dir| {
                let link = dir.join("hard.db");
                std::fs::hard_link(dir.join("dialer.db"), &link).expect("hard link");
                link
            }),
            ("`x/../` spelling", |dir| {
                std::fs::create_dir(dir.join("x")).expect("mkdir");
                dir.join("x").join("..").join(".").join("dialer.db")
            }),
        ];
        for (what, alias) in aliases {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = dir.path().join("dialer.db");
            std::fs::write(&db, "").expect("database file");
            let other = alias(dir.path());
            for (first, second) in [(&db, &other), (&other, &db)] {
                let held = ProcessLock::acquire(first).expect("first lock");
                let err = ProcessLock::acquire(second).expect_err(what).to_string();
                assert_eq!(err, held_by_me(second), "{what}");
                drop(held);
                drop(ProcessLock::acquire(second).expect(what));
            }
        }
    }

    /// A lock taken before the database exists covers the file created for it.
    #[cfg(unix)]
    #[test]
    fn lock_creates_a_private_database_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("new").join("dialer.db");
        let held = ProcessLock::acquire(&db).expect("lock");
        let mode = std::fs::metadata(&db)
            .expect("created")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).expect("symlink");
        assert!(ProcessLock::acquire(&link).is_err());
        drop(held);
    }

    #[test]
    fn the_name_lock_holds_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dialer.db");
        let _held = ProcessLock::acquire(&db).expect("lock");
        let pid = std::fs::read_to_string(dir.path().join("dialer.db.lock")).expect("lock file");
        assert_eq!(pid, std::process::id().to_string());
    }
}
