//! PostgreSQL forms of `dashboard.rs`: the operators' page's aggregates.

use chrono::{DateTime, Utc};

use super::store::{PgStore, get};
use crate::store::reports::REACHED;
use crate::store::{
    AnswerLine, AttemptHistory, EventLine, Funnel, HourCount, Result, ZoneCount, instant, secs,
};

impl PgStore {
    /// Attempts (and reached ones) per hour for `hours` hours from `from`, oldest first.
    pub fn hourly_attempts(
        &self,
        campaign_id: i64,
        from: DateTime<Utc>,
        hours: usize,
    ) -> Result<Vec<HourCount>> {
        let mut out = vec![HourCount::default(); hours];
        let from = secs(from);
        let until = from + 3600 * hours as i64;
        for r in self.rows(
            &format!(
                "SELECT (a.started_at - $2) / 3600, count(*), count(*) FILTER (WHERE {REACHED})
                 FROM attempts a
                 WHERE a.campaign_id = $1 AND a.started_at >= $2 AND a.started_at < $3
                 GROUP BY 1"
            ),
            &[&campaign_id, &from, &until],
        )? {
            let hour: i64 = get(&r, 0)?;
            if let Some(slot) = usize::try_from(hour).ok().and_then(|h| out.get_mut(h)) {
                *slot = HourCount {
                    attempts: get(&r, 1)?,
                    reached: get(&r, 2)?,
                };
            }
        }
        Ok(out)
    }

    /// Calls of a campaign in flight at each instant of `at` (see the SQLite form).
    pub fn in_flight_at(
        &self,
        campaign_id: i64,
        at: &[DateTime<Utc>],
        longest: std::time::Duration,
    ) -> Result<Vec<i64>> {
        let longest = i64::try_from(longest.as_secs()).unwrap_or(i64::MAX / 2);
        at.iter()
            .map(|t| {
                get(
                    &self.row(
                        "SELECT count(*) FROM attempts
                         WHERE campaign_id = $1 AND started_at <= $2 AND started_at >= $2 - $3
                           AND (ended_at IS NULL OR ended_at > $2)",
                        &[&campaign_id, &secs(*t), &longest],
                    )?,
                    0,
                )
            })
            .collect()
    }

    /// Attempts of a campaign started at or after `since`.
    pub fn attempts_since(&self, campaign_id: i64, since: DateTime<Utc>) -> Result<i64> {
        get(
            &self.row(
                "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND started_at >= $2",
                &[&campaign_id, &secs(since)],
            )?,
            0,
        )
    }

    /// The outcome funnel of a campaign.
    pub fn funnel(&self, campaign_id: i64) -> Result<Funnel> {
        let r = self.row(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE attempts > 0),
                        count(*) FILTER (WHERE outcome IS NOT NULL),
                        (SELECT count(DISTINCT a.contact_id) FROM attempts a
                         WHERE a.campaign_id = $1 AND {REACHED})
                 FROM contacts WHERE campaign_id = $1"
            ),
            &[&campaign_id],
        )?;
        Ok(Funnel {
            contacts: get(&r, 0)?,
            called: get(&r, 1)?,
            with_outcome: get(&r, 2)?,
            reached: get(&r, 3)?,
        })
    }

    /// Open contacts of a campaign grouped by their zone list.
    pub fn open_by_zones(&self, campaign_id: i64) -> Result<Vec<ZoneCount>> {
        self.rows(
            "SELECT zones, count(*) FROM contacts WHERE campaign_id = $1 AND state = 'open'
             GROUP BY zones ORDER BY count(*) DESC, zones NULLS FIRST",
            &[&campaign_id],
        )?
        .iter()
        .map(|r| {
            Ok(ZoneCount {
                zones: get(r, 0)?,
                open: get(r, 1)?,
            })
        })
        .collect()
    }

    /// Every attempt of a contact, oldest first, with its events and answers.
    pub fn contact_history(&self, contact_id: i64) -> Result<Vec<AttemptHistory>> {
        let mut attempts = self
            .rows(
                "SELECT id, attempt_no, call_sid, status, reason, answered_by, outcome,
                        duration_seconds, started_at, ended_at, error_code, error_message
                 FROM attempts WHERE contact_id = $1 ORDER BY attempt_no, id",
                &[&contact_id],
            )?
            .iter()
            .map(|r| {
                Ok(AttemptHistory {
                    id: get(r, 0)?,
                    attempt_no: get(r, 1)?,
                    call_sid: get(r, 2)?,
                    status: get(r, 3)?,
                    reason: get(r, 4)?,
                    answered_by: get(r, 5)?,
                    outcome: get(r, 6)?,
                    duration_seconds: get(r, 7)?,
                    started_at: instant(get(r, 8)?),
                    ended_at: get::<Option<i64>>(r, 9)?.map(instant),
                    error_code: get(r, 10)?,
                    error_message: get(r, 11)?,
                    events: Vec::new(),
                    answers: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for a in &mut attempts {
            a.events = self
                .rows(
                    "SELECT call_status, sequence_number, received_at FROM call_events
                     WHERE attempt_id = $1 ORDER BY received_at, id",
                    &[&a.id],
                )?
                .iter()
                .map(|r| {
                    Ok(EventLine {
                        call_status: get(r, 0)?,
                        sequence_number: get(r, 1)?,
                        received_at: instant(get(r, 2)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            a.answers = self
                .rows(
                    "SELECT step, digits, speech, confidence, matched, late, received_at FROM answers
                     WHERE attempt_id = $1 ORDER BY received_at, id",
                    &[&a.id],
                )?
                .iter()
                .map(|r| {
                    Ok(AnswerLine {
                        step: get(r, 0)?,
                        digits: get(r, 1)?,
                        speech: get(r, 2)?,
                        confidence: get(r, 3)?,
                        matched: get::<i64>(r, 4)? != 0,
                        late: get::<i64>(r, 5)? != 0,
                        received_at: instant(get(r, 6)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        }
        Ok(attempts)
    }
}
