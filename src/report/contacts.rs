//! `report export csv --contacts`: one row per contact with its state and one `answer.STEP`
//! column per gather step (the latest answer for that step across the contact's attempts).

use std::io::Write;

use chrono::{DateTime, Utc};

use super::cell::{Cells, push_int, push_rfc3339, write_number, write_text};
use super::{PROGRESS_EVERY, ReportError};
use crate::store::{ContactRecord, Store};

/// The export's fixed columns, in order (SPEC §8); `answer.STEP` columns follow.
pub const CONTACT_HEADER: [&str; 10] = [
    "campaign",
    "contact",
    "name",
    "phone",
    "timezone",
    "state",
    "attempts",
    "last_reason",
    "outcome",
    "next_attempt_at",
];

/// What the contact export needs to know about one campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCampaign {
    pub id: i64,
    pub name: String,
    /// The campaign's zone name, shown for contacts without zones of their own.
    pub timezone: String,
    /// The script's gather steps (empty for a message or a draft).
    pub gather_steps: Vec<String>,
}

/// Writes the header and the contacts of `campaigns` (in that order, each in import order) to
/// `out` as CSV. The answer columns are the union of the campaigns' gather steps in first-seen
/// order. With `since`/`until` only contacts having an attempt started in `[since, until)`.
/// Formula-like cells (and step names in the header) are written as `cells` says.
/// `progress` is called with the rows written since its last call. Returns the number of rows.
pub fn write_contacts<W: Write>(
    store: &Store,
    campaigns: &[ExportCampaign],
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cells: Cells,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReportError> {
    let mut steps: Vec<&str> = Vec::new();
    for s in campaigns.iter().flat_map(|c| &c.gather_steps) {
        if !steps.contains(&s.as_str()) {
            steps.push(s);
        }
    }
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(1 << 16)
        .from_writer(out);
    for h in CONTACT_HEADER {
        w.write_field(h)?;
    }
    let mut scratch = Vec::with_capacity(32);
    for s in &steps {
        write_text(&mut w, &mut scratch, cells, &format!("answer.{s}"))?;
    }
    w.write_record(None::<&[u8]>)?;
    let mut rows = 0u64;
    for c in campaigns {
        store.for_each_contact_record(c.id, since, until, |r| {
            write_row(&mut w, &mut scratch, cells, c, &steps, r)?;
            rows += 1;
            if rows.is_multiple_of(PROGRESS_EVERY) {
                progress(PROGRESS_EVERY);
            }
            Ok::<_, ReportError>(())
        })?;
    }
    progress(rows % PROGRESS_EVERY);
    w.flush()?;
    Ok(rows)
}

fn write_row<W: Write>(
    w: &mut csv::Writer<W>,
    scratch: &mut Vec<u8>,
    cells: Cells,
    campaign: &ExportCampaign,
    steps: &[&str],
    r: &ContactRecord<'_>,
) -> Result<(), csv::Error> {
    write_text(w, scratch, cells, &campaign.name)?;
    write_text(w, scratch, cells, r.contact)?;
    write_text(w, scratch, cells, r.name.unwrap_or_default())?;
    write_text(w, scratch, cells, r.phone)?;
    write_text(w, scratch, cells, r.zones.unwrap_or(&campaign.timezone))?;
    write_text(w, scratch, cells, r.state)?;
    write_number(w, scratch, cells, Some(r.attempts), push_int)?;
    write_text(w, scratch, cells, r.last_reason.unwrap_or_default())?;
    write_text(w, scratch, cells, r.outcome.unwrap_or_default())?;
    let next = (r.state == "open" && r.next_attempt_at > 0).then_some(r.next_attempt_at);
    write_number(w, scratch, cells, next, push_rfc3339)?;
    for step in steps {
        let answer = r.answers.iter().find(|(s, _)| s == step);
        write_text(w, scratch, cells, answer.map_or("", |(_, v)| v.as_str()))?;
    }
    w.write_record(None::<&[u8]>)
}
