//! The single-process lock on PostgreSQL: one dialer `run` process per database, like the file
//! lock on SQLite (SPEC §10). It is a session-level advisory lock held by a connection of its
//! own for the life of the command. The server releases it when that connection ends, however
//! the process ends (`kill -9` included), so a crashed holder never leaves a stale lock. The
//! connection's `application_name` says which process holds it (pid and host), for the message
//! a second process gets.
//!
//! Several nodes on one database (a lease row per node, reconciliation of a dead node's
//! attempts by a survivor) are not built yet: until they are, one process per database.
//!
//! The connection lives on a thread of its own: the `postgres` client runs its own runtime,
//! which must never start (or, when the connection closes, run) inside an async task — and a
//! `run batch` holds the lock inside one.

use std::sync::mpsc;

use super::super::{Result, StoreError};
use crate::config::DatabaseUrl;

/// The advisory lock key of a dialer run ("dialrun" in ASCII); the migration lock is another.
const RUN_LOCK: i64 = 0x0064_6961_6c72_756e;

/// Held while alive; dropping it closes the connection, which releases the lock.
#[derive(Debug)]
pub struct PgProcessLock {
    _release: mpsc::Sender<()>,
}

impl PgProcessLock {
    /// Takes the database's run lock for this process, or says which process holds it.
    pub fn acquire(url: &DatabaseUrl) -> Result<PgProcessLock> {
        let (release, released) = mpsc::channel::<()>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<()>>(1);
        let url = url.clone();
        std::thread::Builder::new()
            .name("dialer-pg-lock".into())
            .spawn(move || {
                let held = take(&url);
                match held {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        // until every sender is gone (the lock dropped, or the process ends)
                        let _ = released.recv();
                        drop(client);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StoreError::Postgres(format!("cannot start the lock thread: {e}")))?;
        ready.recv().map_err(|_| {
            StoreError::Postgres("the lock thread stopped before answering".into())
        })??;
        Ok(PgProcessLock { _release: release })
    }
}

fn take(url: &DatabaseUrl) -> Result<postgres::Client> {
    let mut client = super::connect(url)?;
    let host = hostname();
    let me = format!("dialer run pid {} on {host}", std::process::id());
    client.batch_execute(&format!(
        "SET application_name = '{}'",
        me.replace('\'', "''")
    ))?;
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK])?
        .try_get(0)?;
    if taken {
        return Ok(client);
    }
    let holder: Option<String> = client
        .query_opt(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
             LIMIT 1",
            &[&RUN_LOCK],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    Err(StoreError::Postgres(format!(
        "another dialer process is using the database `{}` at {} ({}): stop it first (one `run` process per database until several nodes are built)",
        url.dbname(),
        url.endpoint(),
        holder.unwrap_or_else(|| "its pid is not visible to this user".into())
    )))
}

/// This machine's name, for the lock holder's description.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
}

#[cfg(test)]
mod tests {
    use super::super::cluster::PgCluster;
    use super::*;

    #[test]
    fn a_second_run_is_refused_naming_the_first_and_the_lock_is_free_once_dropped() {
        let url = PgCluster::shared().database("run_lock");
        let first = PgProcessLock::acquire(&url).expect("first");
        let e = PgProcessLock::acquire(&url)
            .expect_err("second")
            .to_string();
        assert!(
            e.contains(&format!("(dialer run pid {} on ", std::process::id())),
            "{e}"
        );
        assert!(e.contains("stop it first"), "{e}");
        drop(first);
        // the server releases the lock when the connection's end reaches it: wait for that
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match PgProcessLock::acquire(&url) {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("stop it first"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("the lock stayed held after its holder dropped it: {e}"),
            }
        }
    }
}
