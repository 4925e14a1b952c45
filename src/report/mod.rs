//! `dialer report` (SPEC §8): the per-attempt and per-contact CSV exports, streamed straight
//! from SQLite into a CSV writer, the per-campaign summary, and atomic output files.

mod atomic;
mod attempts;
mod cell;
mod contacts;
mod messages;
mod summary;
mod transcripts;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

pub use atomic::write_atomically;
pub use attempts::{ATTEMPT_HEADER, write_attempts, write_attempts_as};
pub use cell::Cells;
pub use contacts::{CONTACT_HEADER, ExportCampaign, write_contacts};
pub use messages::{INBOUND_HEADER, MESSAGE_HEADER, write_inbound_calls, write_messages};
pub use summary::{BotSummary, Summary, summarize};
pub use transcripts::{TRANSCRIPT_HEADER, write_transcripts};

/// How often (in rows) an export reports progress.
pub const PROGRESS_EVERY: u64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cause is the `source()` (printed after the message by an error chain), not repeated
    /// in the message.
    #[error("cannot write the export")]
    Csv(#[from] csv::Error),
    #[error("cannot write the export")]
    Io(#[from] std::io::Error),
    /// The I/O error is part of the message, not a `source()`: `{:#}` of an error chain would
    /// print it twice.
    #[error("cannot write `{}`: {cause} (check the folder exists and is writable)", path.display())]
    Output {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("`{flag} {value}` is not an RFC 3339 instant like 2026-11-23T15:00:00Z")]
    BadInstant { flag: &'static str, value: String },
    #[error("`--since {since}` is not before `--until {until}`: the range is empty")]
    EmptyRange { since: String, until: String },
}

/// Parses the value of an instant flag (`--since`, `--until`).
pub fn parse_instant(flag: &'static str, value: &str) -> Result<DateTime<Utc>, ReportError> {
    DateTime::parse_from_rfc3339(value)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| ReportError::BadInstant {
            flag,
            value: value.to_owned(),
        })
}

/// The attempt start range of an export: `[since, until)`, each end optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Parses `--since`/`--until` and checks the range is not empty.
pub fn parse_range(since: Option<&str>, until: Option<&str>) -> Result<TimeRange, ReportError> {
    let lo = since.map(|s| parse_instant("--since", s)).transpose()?;
    let hi = until.map(|s| parse_instant("--until", s)).transpose()?;
    if let (Some(l), Some(h)) = (lo, hi)
        && l >= h
    {
        return Err(ReportError::EmptyRange {
            since: since.unwrap_or_default().to_owned(),
            until: until.unwrap_or_default().to_owned(),
        });
    }
    Ok(TimeRange {
        since: lo,
        until: hi,
    })
}
