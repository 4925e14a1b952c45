//! Read queries of the web dashboard (SPEC §11): hourly counts, the outcome funnel, calls in
//! flight over time, open contacts by time zone and one contact's history.

use chrono::{DateTime, Utc};

use super::reports::REACHED;
use super::{Cached, Result, SqliteStore, instant, secs};

/// Attempts started in one hour, and how many of them reached a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HourCount {
    pub attempts: i64,
    pub reached: i64,
}

/// How far a campaign's contacts got: every contact, those called at least once, those a
/// person answered, those that ended with a script outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Funnel {
    pub contacts: i64,
    pub called: i64,
    pub reached: i64,
    pub with_outcome: i64,
}

/// Open contacts sharing one zone list (`None`: the campaign's zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneCount {
    pub zones: Option<String>,
    pub open: i64,
}

/// One attempt of a contact, with its status events and gather answers.
#[derive(Debug, Clone)]
pub struct AttemptHistory {
    pub id: i64,
    pub attempt_no: i64,
    pub call_sid: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub answered_by: Option<String>,
    pub outcome: Option<String>,
    pub duration_seconds: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub events: Vec<EventLine>,
    pub answers: Vec<AnswerLine>,
}

/// A status callback as received.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub call_status: String,
    pub sequence_number: Option<i64>,
    pub received_at: DateTime<Utc>,
}

/// A gather answer as received.
#[derive(Debug, Clone)]
pub struct AnswerLine {
    pub step: String,
    pub digits: Option<String>,
    pub speech: Option<String>,
    pub confidence: Option<f64>,
    pub matched: bool,
    pub late: bool,
    pub received_at: DateTime<Utc>,
}

impl SqliteStore {
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
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT (a.started_at - ?2) / 3600, count(*), coalesce(sum({REACHED}), 0)
             FROM attempts a
             WHERE a.campaign_id = ?1 AND a.started_at >= ?2 AND a.started_at < ?3
             GROUP BY 1"
        ))?;
        let mut rows = stmt.query([campaign_id, from, until])?;
        while let Some(r) = rows.next()? {
            let hour: i64 = r.get(0)?;
            if let Some(slot) = usize::try_from(hour).ok().and_then(|h| out.get_mut(h)) {
                *slot = HourCount {
                    attempts: r.get(1)?,
                    reached: r.get(2)?,
                };
            }
        }
        Ok(out)
    }

    /// Calls of a campaign in flight at each instant of `at`: started at or before it (and not
    /// more than `longest` before, the longest a call of the campaign can last) and not ended.
    pub fn in_flight_at(
        &self,
        campaign_id: i64,
        at: &[DateTime<Utc>],
        longest: std::time::Duration,
    ) -> Result<Vec<i64>> {
        let longest = i64::try_from(longest.as_secs()).unwrap_or(i64::MAX / 2);
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*) FROM attempts
             WHERE campaign_id = ?1 AND started_at <= ?2 AND started_at >= ?2 - ?3
               AND (ended_at IS NULL OR ended_at > ?2)",
        )?;
        at.iter()
            .map(|t| Ok(stmt.query_row([campaign_id, secs(*t), longest], |r| r.get(0))?))
            .collect()
    }

    /// Attempts of a campaign started at or after `since`.
    pub fn attempts_since(&self, campaign_id: i64, since: DateTime<Utc>) -> Result<i64> {
        Ok(self.conn.query_row_cached(
            "SELECT count(*) FROM attempts WHERE campaign_id = ?1 AND started_at >= ?2",
            [campaign_id, secs(since)],
            |r| r.get(0),
        )?)
    }

    /// The outcome funnel of a campaign.
    pub fn funnel(&self, campaign_id: i64) -> Result<Funnel> {
        let (contacts, called, with_outcome) = self.conn.query_row_cached(
            "SELECT count(*), coalesce(sum(attempts > 0), 0), coalesce(sum(outcome IS NOT NULL), 0)
             FROM contacts WHERE campaign_id = ?1",
            [campaign_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let reached = self.conn.query_row_cached(
            &format!(
                "SELECT count(DISTINCT a.contact_id) FROM attempts a
                 WHERE a.campaign_id = ?1 AND {REACHED}"
            ),
            [campaign_id],
            |r| r.get(0),
        )?;
        Ok(Funnel {
            contacts,
            called,
            reached,
            with_outcome,
        })
    }

    /// Open contacts of a campaign grouped by their zone list.
    pub fn open_by_zones(&self, campaign_id: i64) -> Result<Vec<ZoneCount>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT zones, count(*) FROM contacts WHERE campaign_id = ?1 AND state = 'open'
             GROUP BY zones ORDER BY count(*) DESC, zones",
        )?;
        let rows = stmt
            .query_map([campaign_id], |r| {
                Ok(ZoneCount {
                    zones: r.get(0)?,
                    open: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every attempt of a contact, oldest first, with its events and answers.
    pub fn contact_history(&self, contact_id: i64) -> Result<Vec<AttemptHistory>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, attempt_no, call_sid, status, reason, answered_by, outcome,
                    duration_seconds, started_at, ended_at, error_code, error_message
             FROM attempts WHERE contact_id = ?1 ORDER BY attempt_no, id",
        )?;
        let mut attempts = stmt
            .query_map([contact_id], |r| {
                Ok(AttemptHistory {
                    id: r.get(0)?,
                    attempt_no: r.get(1)?,
                    call_sid: r.get(2)?,
                    status: r.get(3)?,
                    reason: r.get(4)?,
                    answered_by: r.get(5)?,
                    outcome: r.get(6)?,
                    duration_seconds: r.get(7)?,
                    started_at: instant(r.get(8)?),
                    ended_at: r.get::<_, Option<i64>>(9)?.map(instant),
                    error_code: r.get(10)?,
                    error_message: r.get(11)?,
                    events: Vec::new(),
                    answers: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut events = self.conn.prepare_cached(
            "SELECT call_status, sequence_number, received_at FROM call_events
             WHERE attempt_id = ?1 ORDER BY received_at, id",
        )?;
        let mut answers = self.conn.prepare_cached(
            "SELECT step, digits, speech, confidence, matched, late, received_at FROM answers
             WHERE attempt_id = ?1 ORDER BY received_at, id",
        )?;
        for a in &mut attempts {
            a.events = events
                .query_map([a.id], |r| {
                    Ok(EventLine {
                        call_status: r.get(0)?,
                        sequence_number: r.get(1)?,
                        received_at: instant(r.get(2)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            a.answers = answers
                .query_map([a.id], |r| {
                    Ok(AnswerLine {
                        step: r.get(0)?,
                        digits: r.get(1)?,
                        speech: r.get(2)?,
                        confidence: r.get(3)?,
                        matched: r.get(4)?,
                        late: r.get(5)?,
                        received_at: instant(r.get(6)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
        }
        Ok(attempts)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("d.db")).expect("open");
        (dir, store)
    }

    fn seed(store: &Store) {
        let c = store.conn();
        c.execute_batch(
            "INSERT INTO campaigns (id, name, config, paused, created_at, updated_at)
                 VALUES (1, 'c', '{}', 0, 0, 0);
             INSERT INTO contacts (id, campaign_id, phone, zones, state, attempts, outcome,
                                   created_at, updated_at)
                 VALUES (1, 1, '+12125550101', 'America/New_York', 'completed', 1, 'confirmed', 0, 0),
                        (2, 1, '+12125550102', 'America/New_York', 'open', 2, NULL, 0, 0),
                        (3, 1, '+442079460958', NULL, 'open', 0, NULL, 0, 0);
             INSERT INTO attempts (id, contact_id, campaign_id, attempt_no, phone, status, reason,
                                   answered_by, started_at, ended_at)
                 VALUES (1, 1, 1, 1, '+12125550101', 'completed', 'completed', 'human', 3600, 3660),
                        (2, 2, 1, 1, '+12125550102', 'busy', 'busy', NULL, 3700, 3710),
                        (3, 2, 1, 2, '+12125550102', 'ringing', NULL, NULL, 7300, NULL);
             INSERT INTO call_events (attempt_id, call_sid, sequence_number, call_status, received_at, params)
                 VALUES (1, 'CA1', 0, 'initiated', 3601, '{}'), (1, 'CA1', 3, 'completed', 3660, '{}');
             INSERT INTO answers (attempt_id, step, digits, matched, received_at)
                 VALUES (1, 'intro', '1', 1, 3630);",
        )
        .expect("seed");
    }

    #[test]
    fn hourly_counts_fall_in_their_hour() {
        let (_d, s) = store();
        seed(&s);
        let from = Utc.timestamp_opt(0, 0).single().expect("instant");
        let h = s.hourly_attempts(1, from, 3).expect("hourly");
        assert_eq!(
            h,
            vec![
                HourCount::default(),
                HourCount {
                    attempts: 2,
                    reached: 1
                },
                HourCount {
                    attempts: 1,
                    reached: 0
                }
            ]
        );
    }

    #[test]
    fn in_flight_counts_calls_open_at_each_instant() {
        let (_d, s) = store();
        seed(&s);
        let at = [3500, 3650, 3705, 7400].map(instant);
        let n = s
            .in_flight_at(1, &at, std::time::Duration::from_secs(3600))
            .expect("in flight");
        assert_eq!(n, vec![0, 1, 1, 1]);
    }

    #[test]
    fn funnel_zones_and_history() {
        let (_d, s) = store();
        seed(&s);
        assert_eq!(
            s.funnel(1).expect("funnel"),
            Funnel {
                contacts: 3,
                called: 2,
                reached: 1,
                with_outcome: 1
            }
        );
        let zones = s.open_by_zones(1).expect("zones");
        assert_eq!(zones.len(), 2);
        assert_eq!(zones.iter().map(|z| z.open).sum::<i64>(), 2);
        let h = s.contact_history(1).expect("history");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].events.len(), 2);
        assert_eq!(h[0].answers[0].digits.as_deref(), Some("1"));
        assert_eq!(s.attempts_since(1, instant(3650)).expect("since"), 2);
    }
}
