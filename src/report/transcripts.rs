//! `report export csv --transcripts` (SPEC §13): one row per bot turn — the greeting, each thing
//! the caller said, each silence — in conversation order, streamed from one SQL join.

use std::io::Write;

use super::cell::{Cells, push_int, push_rfc3339, write_number, write_text};
use super::{PROGRESS_EVERY, ReportError};
use crate::store::{AttemptFilter, Store, TranscriptRecord};

/// The export's columns, in order. `turn` 0 is the greeting (its `caller_text` is the message
/// sent to the bot); `kind` is `greeting`, `speech` or `no_input`; `ending` and `outcome` are
/// the conversation's, repeated on each of its turns.
pub const TRANSCRIPT_HEADER: [&str; 17] = [
    "campaign",
    "contact",
    "phone",
    "attempt",
    "call_sid",
    "step",
    "session",
    "turn",
    "kind",
    "at",
    "caller_text",
    "confidence",
    "bot_text",
    "latency_ms",
    "error",
    "ending",
    "outcome",
];

/// Writes the header and every turn of the conversations of the attempts `filter` selects.
/// Returns the number of rows.
pub fn write_transcripts<W: Write>(
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
    w.write_record(TRANSCRIPT_HEADER)?;
    let mut rows = 0u64;
    let mut scratch = Vec::with_capacity(64);
    store.for_each_transcript_record(filter, |t| {
        write_row(&mut w, &mut scratch, cells, t)?;
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
    t: &TranscriptRecord<'_>,
) -> Result<(), csv::Error> {
    fn s(v: Option<&str>) -> &str {
        v.unwrap_or_default()
    }
    write_text(w, scratch, cells, t.campaign)?;
    write_text(w, scratch, cells, t.contact)?;
    write_text(w, scratch, cells, t.phone)?;
    write_number(w, scratch, cells, Some(t.attempt_no), push_int)?;
    write_text(w, scratch, cells, s(t.call_sid))?;
    write_text(w, scratch, cells, t.step)?;
    write_number(w, scratch, cells, Some(t.session), push_int)?;
    write_number(w, scratch, cells, Some(t.turn), push_int)?;
    write_text(w, scratch, cells, t.kind)?;
    write_number(w, scratch, cells, Some(t.at), push_rfc3339)?;
    write_text(w, scratch, cells, s(t.caller_text))?;
    w.write_field(t.confidence.map(|c| c.to_string()).unwrap_or_default())?;
    write_text(w, scratch, cells, s(t.bot_text))?;
    write_number(w, scratch, cells, t.latency_ms, push_int)?;
    write_text(w, scratch, cells, s(t.error))?;
    write_text(w, scratch, cells, s(t.ending))?;
    write_text(w, scratch, cells, s(t.outcome))?;
    w.write_record(None::<&[u8]>)
}
