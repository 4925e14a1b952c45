//! PostgreSQL forms of `reports.rs`: the attempt export (the same join, streamed), the contact
//! export (each contact with its latest answer per step, aggregated by the server in one
//! streamed query instead of SQLite's merge of two cursors) and the summary aggregates.

use chrono::{DateTime, Utc};
use postgres::Row;
use postgres::types::ToSql;

use super::store::{PgStore, get};
use crate::store::reports::{ATTEMPT_ORDER, ATTEMPT_SELECT, REACHED};
use crate::store::{
    AttemptFilter, AttemptRecord, ContactRecord, Result, StoreError, SummaryCounts, secs,
};

/// `select` filtered like the SQLite export, with `$n` placeholders, and the values to bind.
pub(super) fn filtered(filter: &AttemptFilter, select: &str, order: &str) -> (String, Vec<i64>) {
    let (text, values) = filter.sql(select, order);
    // the SQLite placeholders are `?N`; the statements themselves hold no `?`
    (text.replace('?', "$"), values)
}

fn attempt_record(r: &Row) -> Result<AttemptRecord<'_>> {
    Ok(AttemptRecord {
        campaign: get(r, 0)?,
        contact: get(r, 1)?,
        name: get(r, 2)?,
        phone: get(r, 3)?,
        attempt_no: get(r, 4)?,
        call_sid: get(r, 5)?,
        status: get(r, 6)?,
        reason: get(r, 7)?,
        answered_by: get(r, 8)?,
        outcome: get(r, 9)?,
        digits: get(r, 10)?,
        speech: get(r, 11)?,
        duration_seconds: get(r, 12)?,
        started_at: get(r, 13)?,
        answered_at: get(r, 14)?,
        ended_at: get(r, 15)?,
        error_code: get(r, 16)?,
        error_message: get(r, 17)?,
        direction: get(r, 18)?,
    })
}

/// The contact export: each contact with its steps (first-answered order) and the latest
/// answer of each (digits when it has any, else speech), late answers left out.
const CONTACT_EXPORT: &str = "SELECT c.id, coalesce(c.ext_id, c.phone), c.name, c.phone, c.zones,
        c.state, c.attempts, c.last_reason, c.outcome, c.next_attempt_at, x.steps, x.answers
    FROM contacts c
    LEFT JOIN LATERAL (
        SELECT array_agg(s.step ORDER BY s.first_at, s.first_id) AS steps,
               array_agg(s.value ORDER BY s.first_at, s.first_id) AS answers
        FROM (
            SELECT an.step,
                   (array_agg(an.received_at ORDER BY an.received_at, an.id))[1] AS first_at,
                   (array_agg(an.id ORDER BY an.received_at, an.id))[1] AS first_id,
                   (array_agg(CASE WHEN coalesce(an.digits, '') <> '' THEN an.digits
                                   ELSE coalesce(an.speech, '') END
                              ORDER BY an.received_at DESC, an.id DESC))[1] AS value
            FROM answers an JOIN attempts a ON a.id = an.attempt_id
            WHERE a.contact_id = c.id AND an.late = 0
            GROUP BY an.step
        ) s
    ) x ON true
    WHERE c.campaign_id = $1 AND ($4 OR EXISTS (SELECT 1 FROM attempts a
        WHERE a.contact_id = c.id AND a.started_at >= $2 AND a.started_at < $3))
    ORDER BY c.id";

impl PgStore {
    /// Streams the attempts `filter` selects into `f` (the SQLite form's order).
    pub fn for_each_attempt_record<E: From<StoreError>>(
        &self,
        filter: &AttemptFilter,
        mut f: impl FnMut(&AttemptRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (text, values) = filtered(filter, ATTEMPT_SELECT, ATTEMPT_ORDER);
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.each_row(&text, &params, |r| f(&attempt_record(r)?))
    }

    /// How many attempts `filter` selects (for a progress bar).
    pub fn count_attempt_records(&self, filter: &AttemptFilter) -> Result<u64> {
        let (text, values) = filtered(filter, "SELECT count(*) FROM attempts a", "");
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let n: i64 = get(&self.row(&text, &params)?, 0)?;
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
        let lo = since.map_or(i64::MIN, secs);
        let hi = until.map_or(i64::MAX, secs);
        let everyone = since.is_none() && until.is_none();
        let mut latest: Vec<(String, String)> = Vec::new();
        self.each_row(CONTACT_EXPORT, &[&campaign_id, &lo, &hi, &everyone], |r| {
            let steps: Option<Vec<String>> = get(r, 10)?;
            let answers: Option<Vec<String>> = get(r, 11)?;
            latest.clear();
            latest.extend(
                steps
                    .unwrap_or_default()
                    .into_iter()
                    .zip(answers.unwrap_or_default()),
            );
            let record = ContactRecord {
                contact: get(r, 1)?,
                name: get(r, 2)?,
                phone: get(r, 3)?,
                zones: get(r, 4)?,
                state: get(r, 5)?,
                attempts: get(r, 6)?,
                last_reason: get(r, 7)?,
                outcome: get(r, 8)?,
                next_attempt_at: get(r, 9)?,
                answers: &latest,
            };
            f(&record)
        })
    }

    /// The aggregates of one campaign for `report summary`.
    pub fn summary_counts(&self, campaign_id: i64) -> Result<SummaryCounts> {
        let mut s = SummaryCounts::default();
        let r = self.row(
            "SELECT count(*), count(*) FILTER (WHERE state = 'completed'),
                count(*) FILTER (WHERE state = 'exhausted'), count(*) FILTER (WHERE state = 'opted_out'),
                count(*) FILTER (WHERE state = 'open' AND phone IN (SELECT phone FROM dnc)),
                count(*) FILTER (WHERE state = 'open')
             FROM contacts WHERE campaign_id = $1",
            &[&campaign_id],
        )?;
        s.contacts = get(&r, 0)?;
        s.completed = get(&r, 1)?;
        s.exhausted = get(&r, 2)?;
        s.opted_out = get(&r, 3)?;
        s.dnc = get(&r, 4)?;
        s.open = get(&r, 5)?;
        let r = self.row(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE a.ended_at IS NULL),
                    count(*) FILTER (WHERE a.ended_at IS NOT NULL),
                    count(*) FILTER (WHERE a.ended_at IS NOT NULL AND {REACHED}),
                    coalesce(sum(a.duration_seconds) FILTER (WHERE a.ended_at IS NOT NULL AND {REACHED}), 0)::bigint,
                    count(*) FILTER (WHERE a.ended_at IS NOT NULL AND {REACHED} AND a.duration_seconds IS NOT NULL),
                    coalesce(sum((a.duration_seconds + 59) / 60) FILTER (WHERE a.duration_seconds > 0), 0)::bigint
                 FROM attempts a WHERE a.campaign_id = $1"
            ),
            &[&campaign_id],
        )?;
        s.attempts = get(&r, 0)?;
        s.in_flight = get(&r, 1)?;
        s.ended = get(&r, 2)?;
        s.reached = get(&r, 3)?;
        s.reached_talk_seconds = get(&r, 4)?;
        s.reached_timed = get(&r, 5)?;
        s.billed_minutes = get(&r, 6)?;
        for r in self.rows(
            "SELECT outcome, count(*) FROM attempts
             WHERE campaign_id = $1 AND outcome IS NOT NULL GROUP BY outcome",
            &[&campaign_id],
        )? {
            s.outcomes.insert(get(&r, 0)?, get(&r, 1)?);
        }
        Ok(s)
    }
}
