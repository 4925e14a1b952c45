//! `report export csv --messages` and `--inbound` (SPEC §12): every message (follow-ups sent,
//! messages received, keywords acted on) and every inbound call (contacts calling back, unknown
//! callers, calls to numbers no campaign uses).

use std::io::Write;

use super::ReportError;
use super::cell::{Cells, push_int, push_rfc3339, write_number, write_text};
use crate::store::{AttemptFilter, Store};

/// The `--messages` columns, in order.
pub const MESSAGE_HEADER: [&str; 15] = [
    "campaign",
    "contact",
    "direction",
    "channel",
    "rule",
    "from",
    "to",
    "body",
    "message_sid",
    "status",
    "keyword",
    "error_code",
    "error_message",
    "created_at",
    "updated_at",
];

/// The `--inbound` columns, in order.
pub const INBOUND_HEADER: [&str; 10] = [
    "campaign",
    "contact",
    "call_sid",
    "from",
    "to",
    "matched",
    "status",
    "duration_seconds",
    "received_at",
    "ended_at",
];

/// Writes the header and every message `filter` selects; returns the number of rows.
pub fn write_messages<W: Write>(
    store: &Store,
    filter: &AttemptFilter,
    cells: Cells,
    out: W,
) -> Result<u64, ReportError> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(MESSAGE_HEADER)?;
    let mut s = Vec::new();
    let rows = store.message_records(filter.campaign_id, filter.since, filter.until)?;
    for m in &rows {
        let t = |v: &Option<String>| v.clone().unwrap_or_default();
        write_text(&mut w, &mut s, cells, &t(&m.campaign))?;
        write_text(&mut w, &mut s, cells, &t(&m.contact))?;
        write_text(&mut w, &mut s, cells, &m.direction)?;
        write_text(&mut w, &mut s, cells, &m.channel)?;
        write_text(&mut w, &mut s, cells, &t(&m.rule))?;
        write_text(&mut w, &mut s, cells, &m.from)?;
        write_text(&mut w, &mut s, cells, &m.to)?;
        write_text(&mut w, &mut s, cells, &m.body)?;
        write_text(&mut w, &mut s, cells, &t(&m.message_sid))?;
        write_text(&mut w, &mut s, cells, &m.status)?;
        write_text(&mut w, &mut s, cells, &t(&m.keyword))?;
        write_number(&mut w, &mut s, cells, m.error_code, push_int)?;
        write_text(&mut w, &mut s, cells, &t(&m.error_message))?;
        write_number(&mut w, &mut s, cells, Some(m.created_at), push_rfc3339)?;
        write_number(&mut w, &mut s, cells, Some(m.updated_at), push_rfc3339)?;
        w.write_record(None::<&[u8]>)?;
    }
    w.flush()?;
    Ok(rows.len() as u64)
}

/// Writes the header and every inbound call `filter` selects; returns the number of rows.
pub fn write_inbound_calls<W: Write>(
    store: &Store,
    filter: &AttemptFilter,
    cells: Cells,
    out: W,
) -> Result<u64, ReportError> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(INBOUND_HEADER)?;
    let mut s = Vec::new();
    let rows = store.inbound_call_records(filter.campaign_id, filter.since, filter.until)?;
    for c in &rows {
        let t = |v: &Option<String>| v.clone().unwrap_or_default();
        write_text(&mut w, &mut s, cells, &t(&c.campaign))?;
        write_text(&mut w, &mut s, cells, &t(&c.contact))?;
        write_text(&mut w, &mut s, cells, &c.call_sid)?;
        write_text(&mut w, &mut s, cells, &c.from)?;
        write_text(&mut w, &mut s, cells, &c.to)?;
        write_text(&mut w, &mut s, cells, &c.matched)?;
        write_text(&mut w, &mut s, cells, &c.status)?;
        write_number(&mut w, &mut s, cells, c.duration_seconds, push_int)?;
        write_number(&mut w, &mut s, cells, Some(c.received_at), push_rfc3339)?;
        write_number(&mut w, &mut s, cells, c.ended_at, push_rfc3339)?;
        w.write_record(None::<&[u8]>)?;
    }
    w.flush()?;
    Ok(rows.len() as u64)
}
