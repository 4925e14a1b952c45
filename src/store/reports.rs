//! Read-only queries behind `dialer report`: the attempt export (one streamed join), the contact
//! export (contacts merged with their latest answer per step) and the summary aggregates.
//! Rows are handed to a callback borrowing SQLite's buffers, so a million rows stream without
//! being collected or copied.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;

use super::{Result, SqliteStore, StoreError, secs};

/// Which attempts an export covers: one campaign or all, started in `[since, until)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    pub campaign_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl AttemptFilter {
    /// `select` with only the conditions this filter needs (an unbounded export scans the table
    /// instead of walking the `attempts_started` index), and the values to bind in order.
    pub(super) fn sql(&self, select: &str, order: &str) -> (String, Vec<i64>) {
        let mut conds = Vec::new();
        let mut values = Vec::new();
        let mut cond = |sql: &str, v: i64| {
            values.push(v);
            conds.push(format!("{sql} ?{}", values.len()));
        };
        if let Some(id) = self.campaign_id {
            cond("a.campaign_id =", id);
        }
        if let Some(t) = self.since {
            cond("a.started_at >=", secs(t));
        }
        if let Some(t) = self.until {
            cond("a.started_at <", secs(t));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (format!("{select}{filter} {order}"), values)
    }
}

/// One attempt as exported, borrowed from the current SQLite row. Instants are unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord<'a> {
    pub campaign: &'a str,
    /// The contact's CSV `id`, else its phone.
    pub contact: &'a str,
    pub name: Option<&'a str>,
    pub phone: &'a str,
    pub attempt_no: i64,
    pub call_sid: Option<&'a str>,
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub answered_by: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub digits: Option<&'a str>,
    pub speech: Option<&'a str>,
    pub duration_seconds: Option<i64>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub error_code: Option<i64>,
    pub error_message: Option<&'a str>,
    /// `outbound`, or `inbound` for a call the contact made (SPEC §12).
    pub direction: &'a str,
}

/// One contact as exported, borrowed from the current SQLite row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactRecord<'a> {
    /// The contact's CSV `id`, else its phone.
    pub contact: &'a str,
    pub name: Option<&'a str>,
    pub phone: &'a str,
    /// `|`-separated zones; `None` = the campaign's zone.
    pub zones: Option<&'a str>,
    pub state: &'a str,
    pub attempts: i64,
    pub last_reason: Option<&'a str>,
    pub outcome: Option<&'a str>,
    /// Unix seconds; 0 = none.
    pub next_attempt_at: i64,
    /// `(step, answer)`: the contact's latest answer per gather step across all its attempts
    /// (its digits when it has any, else its speech), steps in first-answered order.
    pub answers: &'a [(String, String)],
}

/// Raw per-campaign aggregates of `report summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryCounts {
    pub contacts: i64,
    pub completed: i64,
    pub exhausted: i64,
    pub opted_out: i64,
    /// Open contacts whose number is on the DNC list.
    pub dnc: i64,
    pub open: i64,
    /// Attempt rows.
    pub attempts: i64,
    pub in_flight: i64,
    pub ended: i64,
    /// Ended attempts a person answered (see [`REACHED`]).
    pub reached: i64,
    /// Sum of `duration_seconds` over reached attempts with a known duration.
    pub reached_talk_seconds: i64,
    /// Reached attempts with a known duration.
    pub reached_timed: i64,
    /// Sum over attempts with a positive duration of the duration rounded up to the minute.
    pub billed_minutes: i64,
    /// Attempt outcomes: name → count.
    pub outcomes: BTreeMap<String, i64>,
}

/// An attempt that reached a person: it completed and answering machine detection, if any,
/// said a human answered.
pub const REACHED: &str =
    "(a.reason = 'completed' AND (a.answered_by IS NULL OR a.answered_by = 'human'))";

pub(super) const ATTEMPT_SELECT: &str =
    "SELECT cp.name, coalesce(c.ext_id, c.phone), c.name, a.phone, a.attempt_no,
        a.call_sid, a.status, a.reason, a.answered_by, a.outcome, a.digits, a.speech,
        a.duration_seconds, a.started_at, a.answered_at, a.ended_at, a.error_code, a.error_message,
        a.direction
    FROM attempts a
    JOIN contacts c ON c.id = a.contact_id
    JOIN campaigns cp ON cp.id = a.campaign_id";

pub(super) const ATTEMPT_ORDER: &str = "ORDER BY cp.name, a.contact_id, a.attempt_no, a.id";

const CONTACT_EXPORT: &str = "SELECT c.id, coalesce(c.ext_id, c.phone), c.name, c.phone, c.zones,
        c.state, c.attempts, c.last_reason, c.outcome, c.next_attempt_at
    FROM contacts c
    WHERE c.campaign_id = ?1 AND (?4 OR EXISTS (SELECT 1 FROM attempts a
        WHERE a.contact_id = c.id AND a.started_at >= ?2 AND a.started_at < ?3))
    ORDER BY c.id";

const CONTACT_ANSWERS: &str = "SELECT a.contact_id, an.step, an.digits, an.speech
    FROM answers an JOIN attempts a ON a.id = an.attempt_id
    WHERE a.campaign_id = ?1 AND an.late = 0
    ORDER BY a.contact_id, an.received_at, an.id";

/// The SQL of the export of every attempt (no parameters), for comparing against `sqlite3 -csv`.
pub fn attempt_export_sql() -> String {
    AttemptFilter::default()
        .sql(ATTEMPT_SELECT, ATTEMPT_ORDER)
        .0
}

fn text(v: ValueRef<'_>) -> rusqlite::Result<Option<&str>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(Some(std::str::from_utf8(b)?)),
        ValueRef::Integer(_) | ValueRef::Real(_) => {
            Err(rusqlite::types::FromSqlError::InvalidType.into())
        }
    }
}

fn int(v: ValueRef<'_>) -> rusqlite::Result<Option<i64>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(i) => Ok(Some(i)),
        // a REAL can only come from hand-edited rows; truncate like SQLite's CAST does
        ValueRef::Real(f) => Ok(Some(f as i64)),
        ValueRef::Text(_) | ValueRef::Blob(_) => {
            Err(rusqlite::types::FromSqlError::InvalidType.into())
        }
    }
}

fn attempt_record<'a>(r: &'a rusqlite::Row<'a>) -> rusqlite::Result<AttemptRecord<'a>> {
    let t = |i: usize| r.get_ref(i).and_then(text);
    let n = |i: usize| r.get_ref(i).and_then(int);
    Ok(AttemptRecord {
        campaign: t(0)?.unwrap_or_default(),
        contact: t(1)?.unwrap_or_default(),
        name: t(2)?,
        phone: t(3)?.unwrap_or_default(),
        attempt_no: n(4)?.unwrap_or_default(),
        call_sid: t(5)?,
        status: t(6)?.unwrap_or_default(),
        reason: t(7)?,
        answered_by: t(8)?,
        outcome: t(9)?,
        digits: t(10)?,
        speech: t(11)?,
        duration_seconds: n(12)?,
        started_at: n(13)?.unwrap_or_default(),
        answered_at: n(14)?,
        ended_at: n(15)?,
        error_code: n(16)?,
        error_message: t(17)?,
        direction: t(18)?.unwrap_or("outbound"),
    })
}

impl SqliteStore {
    /// Streams the attempts `filter` selects, ordered by campaign name, contact (import order)
    /// and attempt number, into `f`.
    pub fn for_each_attempt_record<E: From<StoreError>>(
        &self,
        filter: &AttemptFilter,
        mut f: impl FnMut(&AttemptRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = |e: rusqlite::Error| E::from(StoreError::Sql(e));
        let (text, values) = filter.sql(ATTEMPT_SELECT, ATTEMPT_ORDER);
        let mut stmt = self.conn.prepare_cached(&text).map_err(sql)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            f(&attempt_record(r).map_err(sql)?)?;
        }
        Ok(())
    }

    /// How many attempts `filter` selects (for a progress bar).
    pub fn count_attempt_records(&self, filter: &AttemptFilter) -> Result<u64> {
        let (text, values) = filter.sql("SELECT count(*) FROM attempts a", "");
        let n: i64 = self
            .conn
            .prepare_cached(&text)?
            .query_row(rusqlite::params_from_iter(values), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Streams the contacts of one campaign in import order, each with its latest answer per
    /// step. With `since`/`until` only contacts having an attempt started in that range.
    pub fn for_each_contact_record<E: From<StoreError>>(
        &self,
        campaign_id: i64,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        mut f: impl FnMut(&ContactRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = |e: rusqlite::Error| E::from(StoreError::Sql(e));
        let lo = since.map_or(i64::MIN, secs);
        let hi = until.map_or(i64::MAX, secs);
        let everyone = since.is_none() && until.is_none();
        let mut contacts_stmt = self.conn.prepare_cached(CONTACT_EXPORT).map_err(sql)?;
        let mut answers_stmt = self.conn.prepare_cached(CONTACT_ANSWERS).map_err(sql)?;
        let mut contacts = contacts_stmt
            .query(rusqlite::params![campaign_id, lo, hi, everyone])
            .map_err(sql)?;
        let mut answers = answers_stmt.query([campaign_id]).map_err(sql)?;
        // merge join: both streams are ordered by contact id; `pending` is the first answer row
        // not yet consumed
        let mut pending: Option<(i64, String, String)> = next_answer(&mut answers).map_err(sql)?;
        let mut latest: Vec<(String, String)> = Vec::new();
        while let Some(r) = contacts.next().map_err(sql)? {
            let id: i64 = r.get(0).map_err(sql)?;
            latest.clear();
            while let Some((cid, step, value)) = pending.take() {
                if cid > id {
                    pending = Some((cid, step, value));
                    break;
                }
                if cid == id {
                    match latest.iter_mut().find(|(s, _)| *s == step) {
                        Some(slot) => slot.1 = value,
                        None => latest.push((step, value)),
                    }
                }
                pending = next_answer(&mut answers).map_err(sql)?;
            }
            let t = |i: usize| r.get_ref(i).and_then(text);
            let record = ContactRecord {
                contact: t(1).map_err(sql)?.unwrap_or_default(),
                name: t(2).map_err(sql)?,
                phone: t(3).map_err(sql)?.unwrap_or_default(),
                zones: t(4).map_err(sql)?,
                state: t(5).map_err(sql)?.unwrap_or_default(),
                attempts: r.get(6).map_err(sql)?,
                last_reason: t(7).map_err(sql)?,
                outcome: t(8).map_err(sql)?,
                next_attempt_at: r.get(9).map_err(sql)?,
                answers: &latest,
            };
            f(&record)?;
        }
        Ok(())
    }

    /// The aggregates of one campaign for `report summary`.
    pub fn summary_counts(&self, campaign_id: i64) -> Result<SummaryCounts> {
        let mut s = SummaryCounts::default();
        self.conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(state = 'completed'), 0),
                    coalesce(sum(state = 'exhausted'), 0), coalesce(sum(state = 'opted_out'), 0),
                    coalesce(sum(state = 'open' AND phone IN (SELECT phone FROM dnc)), 0),
                    coalesce(sum(state = 'open'), 0)
                 FROM contacts WHERE campaign_id = ?1",
            )?
            .query_row([campaign_id], |r| {
                s.contacts = r.get(0)?;
                s.completed = r.get(1)?;
                s.exhausted = r.get(2)?;
                s.opted_out = r.get(3)?;
                s.dnc = r.get(4)?;
                s.open = r.get(5)?;
                Ok(())
            })?;
        self.conn
            .prepare_cached(&format!(
                "SELECT count(*), coalesce(sum(a.ended_at IS NULL), 0),
                    coalesce(sum(a.ended_at IS NOT NULL), 0),
                    coalesce(sum(a.ended_at IS NOT NULL AND {REACHED}), 0),
                    coalesce(sum(CASE WHEN a.ended_at IS NOT NULL AND {REACHED} THEN a.duration_seconds END), 0),
                    coalesce(sum(a.ended_at IS NOT NULL AND {REACHED} AND a.duration_seconds IS NOT NULL), 0),
                    coalesce(sum(CASE WHEN a.duration_seconds > 0 THEN (a.duration_seconds + 59) / 60 END), 0)
                 FROM attempts a WHERE a.campaign_id = ?1"
            ))?
            .query_row([campaign_id], |r| {
                s.attempts = r.get(0)?;
                s.in_flight = r.get(1)?;
                s.ended = r.get(2)?;
                s.reached = r.get(3)?;
                s.reached_talk_seconds = r.get(4)?;
                s.reached_timed = r.get(5)?;
                s.billed_minutes = r.get(6)?;
                Ok(())
            })?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT outcome, count(*) FROM attempts
             WHERE campaign_id = ?1 AND outcome IS NOT NULL GROUP BY outcome",
        )?;
        let mut rows = stmt.query([campaign_id])?;
        while let Some(r) = rows.next()? {
            s.outcomes.insert(r.get(0)?, r.get(1)?);
        }
        Ok(s)
    }
}

/// The next `(contact_id, step, answer)` of the answers stream.
fn next_answer(rows: &mut rusqlite::Rows<'_>) -> rusqlite::Result<Option<(i64, String, String)>> {
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let digits = r.get_ref(2).and_then(text)?.filter(|d| !d.is_empty());
    let value = match digits {
        Some(d) => d.to_owned(),
        None => r.get_ref(3).and_then(text)?.unwrap_or_default().to_owned(),
    };
    Ok(Some((r.get(0)?, r.get(1)?, value)))
}
