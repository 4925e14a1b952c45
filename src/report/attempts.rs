//! `report export csv`: one row per attempt, streamed from one SQL join into a CSV writer.

use std::io::Write;

use super::cell::{push_int, push_rfc3339};
use super::{PROGRESS_EVERY, ReportError};
use crate::store::{AttemptFilter, AttemptRecord, Store};

/// The export's columns, in order (SPEC §8).
pub const ATTEMPT_HEADER: [&str; 18] = [
    "campaign",
    "contact",
    "name",
    "phone",
    "attempt",
    "call_sid",
    "status",
    "reason",
    "answered_by",
    "outcome",
    "digits",
    "speech",
    "duration_seconds",
    "started_at",
    "answered_at",
    "ended_at",
    "error_code",
    "error_message",
];

/// Writes the header and every attempt `filter` selects to `out` as CSV, ordered by campaign,
/// contact and attempt; `progress` is called with the rows written since its last call.
/// Returns the number of rows. Nothing is collected: each SQLite row goes straight out.
pub fn write_attempts<W: Write>(
    store: &Store,
    filter: &AttemptFilter,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReportError> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(1 << 16)
        .from_writer(out);
    w.write_record(ATTEMPT_HEADER)?;
    let mut rows = 0u64;
    let mut scratch = Vec::with_capacity(32);
    store.for_each_attempt_record(filter, |a| {
        write_row(&mut w, &mut scratch, a)?;
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress(PROGRESS_EVERY);
        }
        Ok::<_, ReportError>(())
    })?;
    progress(rows % PROGRESS_EVERY);
    w.flush()?;
    Ok(rows)
}

fn write_row<W: Write>(
    w: &mut csv::Writer<W>,
    scratch: &mut Vec<u8>,
    a: &AttemptRecord<'_>,
) -> Result<(), csv::Error> {
    w.write_field(a.campaign)?;
    w.write_field(a.contact)?;
    w.write_field(a.name.unwrap_or_default())?;
    w.write_field(a.phone)?;
    cell(w, scratch, Some(a.attempt_no), push_int)?;
    w.write_field(a.call_sid.unwrap_or_default())?;
    w.write_field(a.status)?;
    w.write_field(a.reason.unwrap_or_default())?;
    w.write_field(a.answered_by.unwrap_or_default())?;
    w.write_field(a.outcome.unwrap_or_default())?;
    w.write_field(a.digits.unwrap_or_default())?;
    w.write_field(a.speech.unwrap_or_default())?;
    cell(w, scratch, a.duration_seconds, push_int)?;
    cell(w, scratch, Some(a.started_at), push_rfc3339)?;
    cell(w, scratch, a.answered_at, push_rfc3339)?;
    cell(w, scratch, a.ended_at, push_rfc3339)?;
    cell(w, scratch, a.error_code, push_int)?;
    w.write_field(a.error_message.unwrap_or_default())?;
    w.write_record(None::<&[u8]>)
}

/// Writes one numeric cell formatted by `push` into the reused `scratch`; empty when `None`.
pub(super) fn cell<W: Write>(
    w: &mut csv::Writer<W>,
    scratch: &mut Vec<u8>,
    v: Option<i64>,
    push: fn(&mut Vec<u8>, i64),
) -> Result<(), csv::Error> {
    scratch.clear();
    if let Some(v) = v {
        push(scratch, v);
    }
    w.write_field(&scratch[..])
}
