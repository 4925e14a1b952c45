//! `report export csv`: one row per attempt, streamed from one SQL join into a CSV writer.

use std::io::Write;

use super::cell::{Cells, push_int, push_rfc3339, write_number, write_text};
use super::{PROGRESS_EVERY, ReportError};
use crate::store::{AttemptFilter, AttemptRecord, Store};

/// The export's columns, in order (SPEC §8).
pub const ATTEMPT_HEADER: [&str; 19] = [
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
    // extra columns (SPEC §8 allows them after the 18): `outbound`, or `inbound` for a call a
    // contact made to the campaign's number (SPEC §12)
    "direction",
];

/// Writes the header and every attempt `filter` selects to `out` as CSV, ordered by campaign,
/// contact and attempt, with formula-like cells neutralised ([`Cells::Neutralised`]);
/// `progress` is called with the rows written since its last call. Returns the number of rows.
/// Nothing is collected: each SQLite row goes straight out.
pub fn write_attempts<W: Write>(
    store: &Store,
    filter: &AttemptFilter,
    out: W,
    progress: impl FnMut(u64),
) -> Result<u64, ReportError> {
    write_attempts_as(store, filter, Cells::Neutralised, out, progress)
}

/// [`write_attempts`], with formula-like cells written as `cells` says.
pub fn write_attempts_as<W: Write>(
    store: &Store,
    filter: &AttemptFilter,
    cells: Cells,
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
        write_row(&mut w, &mut scratch, cells, a)?;
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
    cells: Cells,
    a: &AttemptRecord<'_>,
) -> Result<(), csv::Error> {
    fn t(v: Option<&str>) -> &str {
        v.unwrap_or_default()
    }
    write_text(w, scratch, cells, a.campaign)?;
    write_text(w, scratch, cells, a.contact)?;
    write_text(w, scratch, cells, t(a.name))?;
    write_text(w, scratch, cells, a.phone)?;
    write_number(w, scratch, cells, Some(a.attempt_no), push_int)?;
    write_text(w, scratch, cells, t(a.call_sid))?;
    write_text(w, scratch, cells, a.status)?;
    write_text(w, scratch, cells, t(a.reason))?;
    write_text(w, scratch, cells, t(a.answered_by))?;
    write_text(w, scratch, cells, t(a.outcome))?;
    write_text(w, scratch, cells, t(a.digits))?;
    write_text(w, scratch, cells, t(a.speech))?;
    write_number(w, scratch, cells, a.duration_seconds, push_int)?;
    write_number(w, scratch, cells, Some(a.started_at), push_rfc3339)?;
    write_number(w, scratch, cells, a.answered_at, push_rfc3339)?;
    write_number(w, scratch, cells, a.ended_at, push_rfc3339)?;
    write_number(w, scratch, cells, a.error_code, push_int)?;
    write_text(w, scratch, cells, t(a.error_message))?;
    write_text(w, scratch, cells, a.direction)?;
    w.write_record(None::<&[u8]>)
}
