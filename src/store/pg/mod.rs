//! The PostgreSQL side of the store (preview): connecting, the schema's migrations
//! (`migrations/postgres/`, numbered and named like the SQLite ones) and `dialer db copy`.
//!
//! The driver is the `postgres` crate, the synchronous client of `tokio-postgres` by the same
//! maintainers: the store's interface is synchronous (reads on the blocking pool, writes on the
//! one writer thread). A `postgres::Client` runs its own small runtime, so it is never used from
//! inside an async task — only from `spawn_blocking`, the writer thread or plain threads.
//! TLS to the database is not built yet: connections use `NoTls`.

mod attempts;
mod campaigns;
#[doc(hidden)]
pub mod cluster;
mod contacts;
mod copy;
mod dashboard;
mod dnc;
mod lock;
mod messages;
mod migrate;
mod reports;
mod store;
mod transcripts;

use std::time::Duration;

use postgres::{Client, NoTls};

use super::{Result, StoreError};
use crate::config::{DatabaseUrl, PASSWORD_VAR};

pub use copy::{CopyProgress, TableCheck, TableSum, copy_from_sqlite, product_tables};
pub use lock::PgProcessLock;
pub use migrate::{MIGRATIONS, Migrated, Migration, migrate};
pub use store::{PgDryRun, PgStore, PgTx, outside_runtime};

/// How long a connection attempt may take before it is reported as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens one connection (no TLS). An unreachable server, a refused login or a missing database
/// is one sentence naming the server and the fix.
pub fn connect(url: &DatabaseUrl) -> Result<Client> {
    let mut config = url.config().clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .connect(NoTls)
        .map_err(|e| StoreError::Postgres(connect_failure(url, &e)))
}

fn connect_failure(url: &DatabaseUrl, e: &postgres::Error) -> String {
    let at = url.endpoint();
    if e.as_db_error().is_some() {
        return format!("cannot connect to {at}: {}", describe(e));
    }
    match std::error::Error::source(e) {
        Some(cause) if cause.is::<std::io::Error>() => format!(
            "cannot connect to the server at {at}: {cause}: check that PostgreSQL runs there and that the url names its host and port"
        ),
        Some(cause) if cause.to_string().contains("password missing") => format!(
            "the server at {at} asks for a password: set the environment variable `{PASSWORD_VAR}`"
        ),
        Some(cause) => format!("cannot connect to the server at {at}: {e}: {cause}"),
        None => format!("cannot connect to the server at {at}: {e}"),
    }
}

/// A PostgreSQL error in one sentence: the faults an operator can fix are named with their fix;
/// anything else is the server's own message.
pub fn describe(e: &postgres::Error) -> String {
    use postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
    };
    let message = db.message();
    match db.code() {
        c if *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            format!(
                "the server refused the login ({message}): check the url's user and `{PASSWORD_VAR}`"
            )
        }
        c if *c == SqlState::INVALID_CATALOG_NAME => format!(
            "{message}: create it first (`createdb NAME` or `CREATE DATABASE`), or fix the url's database name"
        ),
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "{message}: the url's user needs to own the dialer's tables (or be allowed to create them)"
        ),
        c if *c == SqlState::DISK_FULL => {
            format!("{message}: the server's disk is full: free some space and run it again")
        }
        _ => match db.detail() {
            Some(detail) => format!("{message} ({detail})"),
            None => message.to_owned(),
        },
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_named_with_the_fix() {
        // a Unix socket folder with no server in it: refused at once, nothing to wait for
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "postgresql:///dialer?host={}&user=dialer",
            dir.path().display()
        );
        let url = DatabaseUrl::parse(&text, None).expect("url");
        let e = connect(&url).map(drop).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "PostgreSQL: cannot connect to the server at the Unix socket in `{}` (port 5432): ",
                dir.path().display()
            )),
            "{e}"
        );
        assert!(
            e.ends_with(
                "check that PostgreSQL runs there and that the url names its host and port"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_missing_database_says_to_create_it() {
        let url = cluster::PgCluster::shared().url("no_such_database");
        let e = connect(&url).map(drop).unwrap_err().to_string();
        assert!(e.contains("\"no_such_database\" does not exist"), "{e}");
        assert!(e.contains("create it first"), "{e}");
    }
}
