//! The PostgreSQL side of the store. (Placeholder of pg1's module until feat/pg-base is merged:
//! only the error mapping, copied from it, and this branch's query files.)

mod attempts;
mod campaigns;
mod contacts;
mod dashboard;
mod dnc;
mod messages;
mod reports;
mod store;
mod transcripts;

pub use store::{PgDryRun, PgStore, PgTx};

use super::StoreError;

/// A PostgreSQL error in one sentence.
pub fn describe(e: &postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
    };
    match db.detail() {
        Some(detail) => format!("{} ({detail})", db.message()),
        None => db.message().to_owned(),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(describe(&e))
    }
}
