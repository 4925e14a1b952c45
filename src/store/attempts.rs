//! The `attempts`, `call_events` and `answers` tables: the attempt lifecycle of SPEC §5.2/§5.5.
//! Every change is one guarded statement (or one transaction) that checks rows affected, so a
//! duplicate or late callback can never move an attempt backwards.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Cached, Result, SqliteStore, SqliteTx, StoreError, instant, secs};
use crate::campaign::model::{CampaignRules, Reason};
use crate::schedule::{self, AttemptEnd, Next};

/// What a status callback needs of its attempt: its campaign and the Call SID bound to it (no
/// join with the contact, whose fields only the TwiML needs).
#[derive(Debug, Clone)]
pub struct AttemptCall {
    pub id: i64,
    pub campaign_id: i64,
    pub call_sid: Option<String>,
}

/// An attempt with what the callback handlers need of its contact.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: i64,
    pub contact_id: i64,
    pub campaign_id: i64,
    pub attempt_no: u32,
    pub phone: String,
    pub call_sid: Option<String>,
    pub status: String,
    pub answered_by: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub last_sequence: i64,
    pub contact_name: Option<String>,
    pub contact_ext_id: Option<String>,
    pub contact_fields: String,
}

/// What applying a status callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    /// A progress event moved the attempt forward.
    Progress,
    /// The final event: the attempt ended with this reason and the contact moved on.
    Final(Reason),
    /// An older event or an unknown CallStatus (kept for audit, changed nothing), or the attempt
    /// had ended.
    Ignored,
    /// A repeated delivery (same `I-Twilio-Idempotency-Token`, or same CallSid + SequenceNumber):
    /// not stored again, changed nothing.
    Repeated,
}

/// A gather answer to store.
#[derive(Debug, Clone, Default)]
pub struct Answer<'a> {
    pub step: &'a str,
    pub digits: Option<&'a str>,
    pub speech: Option<&'a str>,
    pub confidence: Option<f64>,
    pub matched: bool,
    /// The step the answer led to (`None`: hang up), so a repeated delivery is answered alike.
    pub next_step: Option<&'a str>,
    /// `I-Twilio-Idempotency-Token` of the request.
    pub token: Option<&'a str>,
}

const ATTEMPT_SELECT: &str =
    "SELECT a.id, a.contact_id, a.campaign_id, a.attempt_no, a.phone, a.call_sid, a.status,
        a.answered_by, a.started_at, a.ended_at, a.last_sequence, c.name, c.ext_id, c.fields
    FROM attempts a JOIN contacts c ON c.id = a.contact_id";

fn attempt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        id: r.get(0)?,
        contact_id: r.get(1)?,
        campaign_id: r.get(2)?,
        attempt_no: r.get(3)?,
        phone: r.get(4)?,
        call_sid: r.get(5)?,
        status: r.get(6)?,
        answered_by: r.get(7)?,
        started_at: instant(r.get(8)?),
        ended_at: r.get::<_, Option<i64>>(9)?.map(instant),
        last_sequence: r.get(10)?,
        contact_name: r.get(11)?,
        contact_ext_id: r.get(12)?,
        contact_fields: r.get(13)?,
    })
}

/// Whether a Twilio CallStatus is final.
pub fn is_final_status(status: &str) -> bool {
    matches!(
        status,
        "completed" | "busy" | "no-answer" | "failed" | "canceled"
    )
}

/// How far a call has progressed by a non-final CallStatus; `None` for a value Twilio does not
/// send (it is kept in the event log but never becomes the attempt's status). `dialing` is the
/// attempt's own status before the create answered.
pub(super) fn progress_rank(status: &str) -> Option<u8> {
    Some(match status {
        "dialing" => 0,
        "queued" => 1,
        "initiated" => 2,
        "ringing" => 3,
        "in-progress" => 4,
        _ => return None,
    })
}

/// Where a call's status stands: the SequenceNumber and Timestamp (unix seconds) of the events
/// behind it, and its progress rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) sequence: Option<i64>,
    pub(super) at: Option<i64>,
    pub(super) rank: u8,
}

/// Whether a progress event `ev` is newer than the attempt's position `last` (the highest
/// SequenceNumber applied, the Timestamp of the last event applied, the current status). Ordered
/// by SequenceNumber where both have one, by Timestamp where both have one (the same second: by
/// progress rank); an event with neither only moves the status forward. A missing value never
/// blocks a later event.
pub(super) fn is_newer(last: Position, ev: Position) -> bool {
    let by_sequence = match (ev.sequence, last.sequence) {
        (Some(e), Some(l)) => e > l,
        _ => true,
    };
    let by_time = match (ev.at, last.at) {
        (Some(e), Some(l)) => e > l || (e == l && ev.rank > last.rank),
        _ => true,
    };
    let unordered = ev.sequence.is_none() && ev.at.is_none();
    by_sequence && by_time && (!unordered || ev.rank > last.rank)
}

/// The attempt's reason from its final status and AnsweredBy (SPEC §5.2).
pub fn reason_of(status: &str, answered_by: Option<&str>) -> Option<Reason> {
    let reason = Reason::parse(status)?;
    if reason == Reason::Completed && answered_by.is_some_and(|a| a.starts_with("machine")) {
        return Some(Reason::Machine);
    }
    Some(reason)
}

impl SqliteTx<'_> {
    /// Claims a contact for a call: inserts the attempt row and counts it, in one transaction,
    /// only if the contact is open, has made `expected_attempts` attempts and has none open.
    /// Committed before the Calls create is sent (SPEC §5.5). `None` if the claim lost.
    pub fn claim_attempt(
        &self,
        contact_id: i64,
        expected_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<AttemptRow>> {
        let tx = &self.conn;
        let claimed = tx.execute_cached(
            "UPDATE contacts SET attempts = attempts + 1, updated_at = ?3
             WHERE id = ?1 AND state = 'open' AND attempts = ?2
               AND NOT EXISTS (SELECT 1 FROM attempts WHERE contact_id = ?1 AND ended_at IS NULL)
               AND NOT EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = contacts.phone)",
            params![contact_id, expected_attempts, secs(now)],
        )?;
        if claimed != 1 {
            return Ok(None);
        }
        tx.execute_cached(
            "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, started_at)
             SELECT id, campaign_id, attempts, phone, 'dialing', ?2 FROM contacts WHERE id = ?1",
            params![contact_id, secs(now)],
        )?;
        let id = tx.last_insert_rowid();
        self.attempt(id)
    }

    /// Undoes a claim whose create was refused with a retryable error (429/503): no call exists,
    /// so no attempt is counted (SPEC §5.3).
    pub fn unclaim_attempt(&self, attempt_id: i64) -> Result<bool> {
        let tx = &self.conn;
        let contact: Option<i64> = tx
            .query_row_cached(
                "DELETE FROM attempts WHERE id = ?1 AND call_sid IS NULL AND ended_at IS NULL RETURNING contact_id",
                [attempt_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(contact) = contact else {
            return Ok(false);
        };
        tx.execute_cached(
            "UPDATE contacts SET attempts = attempts - 1 WHERE id = ?1 AND attempts > 0",
            [contact],
        )?;
        Ok(true)
    }

    /// Binds a Call SID to an attempt (from the create response or the first callback, whichever
    /// comes first). `false` if the attempt already has a different SID.
    pub fn bind_call_sid(&self, attempt_id: i64, sid: &str) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("UPDATE attempts SET call_sid = ?2 WHERE id = ?1 AND (call_sid IS NULL OR call_sid = ?2)")?
            .execute(params![attempt_id, sid])?;
        Ok(n == 1)
    }

    /// Moves a `dialing` attempt to the status Twilio answered the create with.
    pub fn set_created_status(&self, attempt_id: i64, status: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE attempts SET status = ?2 WHERE id = ?1 AND status = 'dialing'")?
            .execute(params![attempt_id, status])?;
        Ok(())
    }

    /// Records AnsweredBy (from the voice webhook).
    pub fn set_answered_by(
        &self,
        attempt_id: i64,
        answered_by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE attempts SET answered_by = ?2, answered_at = coalesce(answered_at, ?3) WHERE id = ?1 AND ended_at IS NULL",
            )?
            .execute(params![attempt_id, answered_by, secs(now)])?;
        Ok(())
    }

    /// Applies a status callback: keeps the raw event (once: a repeated delivery stores nothing
    /// and changes nothing), moves the attempt forward only if the event is newer ([`is_newer`])
    /// and its CallStatus known, and on a final status ends the attempt (once) and applies the
    /// retry policy to the contact — all in one transaction.
    pub fn apply_status(
        &self,
        attempt_id: i64,
        rules: &CampaignRules,
        params_json: &str,
        ev: &StatusEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<StatusApplied> {
        let tx = &self.conn;
        let at = ev.timestamp.map(secs);
        let stored = tx
            .prepare_cached(
                "INSERT INTO call_events (attempt_id, call_sid, sequence_number, call_status, received_at, params, idempotency_token)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )?
            .execute(params![attempt_id, ev.call_sid, ev.sequence, ev.status, secs(now), params_json, ev.token])?;
        if stored == 0 {
            return Ok(StatusApplied::Repeated);
        }
        let Some((last_sequence, last_at, status)) = tx
            .prepare_cached(
                "SELECT last_sequence, last_event_at, status FROM attempts WHERE id = ?1 AND ended_at IS NULL",
            )?
            .query_row([attempt_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?))
            })
            .optional()?
        else {
            return Ok(StatusApplied::Ignored);
        };
        // never from a missing value: the highest SequenceNumber, the latest Timestamp
        let sequence = ev.sequence.map_or(last_sequence, |s| s.max(last_sequence));
        let event_at = match (at, last_at) {
            (Some(e), Some(l)) => Some(e.max(l)),
            (e, l) => e.or(l),
        };
        if is_final_status(ev.status) {
            let answered_by: Option<String> = tx
                .query_row_cached(
                    "SELECT coalesce(?2, answered_by) FROM attempts WHERE id = ?1",
                    params![attempt_id, ev.answered_by],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let reason = reason_of(ev.status, answered_by.as_deref()).unwrap_or(Reason::Failed);
            let n = tx
                .prepare_cached(
                    "UPDATE attempts SET status = ?2, reason = ?3, answered_by = ?4, duration_seconds = ?5,
                            ended_at = ?6, last_sequence = ?7, last_event_at = ?9,
                            error_code = coalesce(?8, error_code),
                            answered_at = CASE WHEN ?5 > 0 THEN coalesce(answered_at, ?6 - ?5) ELSE answered_at END
                     WHERE id = ?1 AND ended_at IS NULL",
                )?
                .execute(params![attempt_id, ev.status, reason.as_str(), answered_by, ev.duration, secs(now), sequence, ev.sip_code, event_at])?;
            if n != 1 {
                return Ok(StatusApplied::Ignored);
            }
            finish_contact(tx, attempt_id, rules, reason, now)?;
            return Ok(StatusApplied::Final(reason));
        }
        let Some(rank) = progress_rank(ev.status) else {
            return Ok(StatusApplied::Ignored);
        };
        let last = Position {
            sequence: (last_sequence >= 0).then_some(last_sequence),
            at: last_at,
            // an unknown stored status (written before 0003) ranks as not yet dialed
            rank: progress_rank(&status).unwrap_or(0),
        };
        let event = Position {
            sequence: ev.sequence,
            at,
            rank,
        };
        if !is_newer(last, event) {
            return Ok(StatusApplied::Ignored);
        }
        let n = tx
            .prepare_cached(
                "UPDATE attempts SET status = ?2, last_sequence = ?3, last_event_at = ?4,
                        answered_at = CASE WHEN ?2 = 'in-progress' THEN coalesce(answered_at, ?5) ELSE answered_at END
                 WHERE id = ?1 AND ended_at IS NULL AND last_sequence = ?6 AND status = ?7",
            )?
            .execute(params![attempt_id, ev.status, sequence, event_at, secs(now), last_sequence, status])?;
        Ok(if n == 1 {
            StatusApplied::Progress
        } else {
            StatusApplied::Ignored
        })
    }

    /// Ends an attempt without a callback (a refused create, a reconciled or interrupted dial) and
    /// applies the retry policy.
    pub fn end_attempt(
        &self,
        attempt_id: i64,
        rules: &CampaignRules,
        end: &EndedCall<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Reason>> {
        let tx = &self.conn;
        let reason = reason_of(end.status, end.answered_by).unwrap_or(Reason::Failed);
        let n = tx.execute_cached(
            "UPDATE attempts SET status = ?2, reason = ?3, answered_by = coalesce(?4, answered_by), duration_seconds = ?5,
                    ended_at = ?6, error_code = ?7, error_message = ?8
             WHERE id = ?1 AND ended_at IS NULL",
            params![attempt_id, end.status, reason.as_str(), end.answered_by, end.duration, secs(now), end.error_code, end.error_message],
        )?;
        if n != 1 {
            return Ok(None);
        }
        finish_contact(tx, attempt_id, rules, reason, now)?;
        Ok(Some(reason))
    }

    /// Stores a gather answer; while the attempt is open it becomes the attempt's last answer.
    /// One that arrives after the attempt ended is kept (`late`) and changes nothing else. `false`
    /// for a repeated delivery (its token is stored already): nothing stored.
    pub fn record_answer(
        &self,
        attempt_id: i64,
        a: &Answer<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let stored = self
            .conn
            .prepare_cached(
                "INSERT INTO answers (attempt_id, step, digits, speech, confidence, matched, received_at,
                                      next_step, idempotency_token, late)
                 SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ended_at IS NOT NULL FROM attempts WHERE id = ?1
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![attempt_id, a.step, a.digits, a.speech, a.confidence, a.matched, secs(now), a.next_step, a.token])?;
        if stored == 0 {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "UPDATE attempts SET digits = ?2, speech = ?3 WHERE id = ?1 AND ended_at IS NULL",
            )?
            .execute(params![attempt_id, a.digits, a.speech])?;
        Ok(true)
    }

    /// A matched option's effects: outcome, retry_after, and opt-out (DNC at once, contact closed).
    /// Only while the attempt is open: an answer after it ended changes nothing.
    pub fn apply_option(
        &self,
        attempt_id: i64,
        outcome: Option<&str>,
        retry_after: Option<std::time::Duration>,
        opt_out: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = &self.conn;
        let open = tx.execute_cached(
            "UPDATE attempts SET outcome = coalesce(?2, outcome), retry_after = coalesce(?3, retry_after),
                    opted_out = max(opted_out, ?4)
             WHERE id = ?1 AND ended_at IS NULL",
            params![attempt_id, outcome, retry_after.map(|d| d.as_secs() as i64), opt_out],
        )?;
        if open == 1 && opt_out {
            tx.execute_cached(
                "INSERT INTO dnc (phone, source, added_at) SELECT phone, 'opt-out', ?2 FROM attempts WHERE id = ?1
                 ON CONFLICT (phone) DO NOTHING",
                params![attempt_id, secs(now)],
            )?;
            tx.execute_cached(
                "UPDATE contacts SET state = 'opted_out', outcome = coalesce(?2, outcome), updated_at = ?3
                 WHERE id = (SELECT contact_id FROM attempts WHERE id = ?1)",
                params![attempt_id, outcome, secs(now)],
            )?;
        }
        Ok(())
    }
}

impl SqliteStore {
    pub fn attempt(&self, id: i64) -> Result<Option<AttemptRow>> {
        Ok(self
            .conn
            .prepare_cached(&format!("{ATTEMPT_SELECT} WHERE a.id = ?1"))?
            .query_row([id], attempt_row)
            .optional()?)
    }

    /// An attempt's campaign and Call SID (the status callback's lookup).
    pub fn attempt_call(&self, id: i64) -> Result<Option<AttemptCall>> {
        Ok(self
            .conn
            .prepare_cached("SELECT campaign_id, call_sid FROM attempts WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(AttemptCall {
                    id,
                    campaign_id: r.get(0)?,
                    call_sid: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// Attempts not yet in a final state, oldest first.
    pub fn open_attempts(&self) -> Result<Vec<AttemptRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{ATTEMPT_SELECT} WHERE a.ended_at IS NULL ORDER BY a.id"
        ))?;
        let rows = stmt
            .query_map([], attempt_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether some attempt already carries this Call SID.
    pub fn call_sid_bound(&self, sid: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM attempts WHERE call_sid = ?1")?
            .exists([sid])?)
    }

    /// The gather delivery stored with this `I-Twilio-Idempotency-Token` for the attempt, if any:
    /// the step it led to (`None`: hang up).
    pub fn answered_step(&self, attempt_id: i64, token: &str) -> Result<Option<Option<String>>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT next_step FROM answers WHERE attempt_id = ?1 AND idempotency_token = ?2",
            )?
            .query_row(params![attempt_id, token], |r| r.get(0))
            .optional()?)
    }

    /// Unmatched answers so far for one step of one attempt (the 3-strikes rule).
    pub fn unmatched_answers(&self, attempt_id: i64, step: &str) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM answers WHERE attempt_id = ?1 AND step = ?2 AND matched = 0",
            )?
            .query_row(params![attempt_id, step], |r| r.get(0))?)
    }

    /// Number of attempts not in a final state (all campaigns, or one).
    pub fn count_open_attempts(&self, campaign_id: Option<i64>) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM attempts WHERE ended_at IS NULL AND (?1 IS NULL OR campaign_id = ?1)")?
            .query_row([campaign_id], |r| r.get(0))?)
    }

    /// How each of the given attempts stands: still open, or ended with its reason.
    pub fn attempt_ends(&self, ids: &[i64]) -> Result<Vec<AttemptEnding>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ended_at IS NULL, reason FROM attempts WHERE id = ?1")?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row: Option<(bool, Option<String>)> = stmt
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match row {
                Some((true, _)) => out.push(AttemptEnding::Open),
                Some((false, reason)) => out.push(AttemptEnding::Ended(reason)),
                None => {}
            }
        }
        Ok(out)
    }

    pub fn require_attempt(&self, id: i64) -> Result<AttemptRow> {
        self.attempt(id)?
            .ok_or_else(|| StoreError::Sql(rusqlite::Error::QueryReturnedNoRows))
    }
}

/// Where an attempt stands (the batch summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnding {
    Open,
    /// Ended, with its reason (`None` only for rows written by hand).
    Ended(Option<String>),
}

/// The fields of a status callback the lifecycle uses.
#[derive(Debug, Clone, Default)]
pub struct StatusEvent<'a> {
    pub call_sid: &'a str,
    pub status: &'a str,
    pub sequence: Option<i64>,
    pub duration: Option<i64>,
    pub answered_by: Option<&'a str>,
    pub sip_code: Option<i64>,
    /// Twilio's `Timestamp` (orders events without a SequenceNumber).
    pub timestamp: Option<DateTime<Utc>>,
    /// `I-Twilio-Idempotency-Token` of the request.
    pub token: Option<&'a str>,
}

/// How an attempt ended when no callback says so.
#[derive(Debug, Clone, Default)]
pub struct EndedCall<'a> {
    pub status: &'a str,
    pub answered_by: Option<&'a str>,
    pub duration: Option<i64>,
    pub error_code: Option<i64>,
    pub error_message: Option<&'a str>,
}

/// Applies `after_attempt` to the attempt's contact (inside the caller's transaction).
fn finish_contact(
    tx: &rusqlite::Connection,
    attempt_id: i64,
    rules: &CampaignRules,
    reason: Reason,
    now: DateTime<Utc>,
) -> Result<()> {
    let (contact_id, attempts, retry_after, outcome, opted_out, state): (
        i64,
        u32,
        Option<i64>,
        Option<String>,
        bool,
        String,
    ) = tx.query_row_cached(
        "SELECT c.id, c.attempts, a.retry_after, a.outcome, a.opted_out, c.state
         FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.id = ?1",
        [attempt_id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    if opted_out || state != "open" {
        tx.execute_cached(
            "UPDATE contacts SET last_reason = ?2, updated_at = ?3 WHERE id = ?1",
            params![contact_id, reason.as_str(), secs(now)],
        )?;
        return Ok(());
    }
    let end = AttemptEnd {
        reason,
        retry_after: retry_after.map(|s| std::time::Duration::from_secs(s.max(0) as u64)),
    };
    let (state, next, outcome) = match schedule::after_attempt(rules, attempts, end, now) {
        Next::Complete => (
            "completed",
            0,
            Some(outcome.unwrap_or_else(|| "answered".into())),
        ),
        Next::Retry(at) => ("open", secs(at), outcome),
        Next::Exhausted => ("exhausted", 0, outcome),
    };
    tx.execute_cached(
        "UPDATE contacts SET state = ?2, next_attempt_at = ?3, last_reason = ?4, outcome = coalesce(?5, outcome), updated_at = ?6
         WHERE id = ?1",
        params![contact_id, state, next, reason.as_str(), outcome, secs(now)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite_migration::Migrations;

    use super::*;
    use crate::store::Store;

    fn at(sequence: Option<i64>, at: Option<i64>, status: &str) -> Position {
        Position {
            sequence,
            at,
            rank: progress_rank(status).expect("known status"),
        }
    }

    #[test]
    fn progress_events_are_ordered_by_sequence_else_timestamp() {
        let cases = [
            // (last applied, event, newer)
            (
                at(Some(1), None, "ringing"),
                at(Some(2), None, "in-progress"),
                true,
            ),
            (
                at(Some(2), None, "in-progress"),
                at(Some(1), None, "ringing"),
                false,
            ),
            (
                at(Some(1), None, "ringing"),
                at(Some(1), None, "ringing"),
                false,
            ),
            // a missing SequenceNumber neither blocks nor is blocked by one
            (
                at(None, Some(10), "ringing"),
                at(Some(2), Some(12), "in-progress"),
                true,
            ),
            (
                at(Some(0), Some(10), "initiated"),
                at(None, Some(11), "ringing"),
                true,
            ),
            (
                at(Some(2), Some(12), "in-progress"),
                at(None, Some(11), "ringing"),
                false,
            ),
            (
                at(Some(2), Some(12), "in-progress"),
                at(Some(1), Some(13), "ringing"),
                false,
            ),
            // the same second: the later status wins
            (
                at(Some(0), Some(10), "initiated"),
                at(None, Some(10), "ringing"),
                true,
            ),
            (
                at(None, Some(10), "in-progress"),
                at(Some(1), Some(10), "ringing"),
                false,
            ),
            // nothing to order by: only forward
            (at(None, None, "dialing"), at(None, None, "ringing"), true),
            (
                at(Some(3), Some(10), "in-progress"),
                at(None, None, "ringing"),
                false,
            ),
            (
                at(Some(3), Some(10), "ringing"),
                at(None, None, "in-progress"),
                true,
            ),
        ];
        for (last, ev, newer) in cases {
            assert_eq!(is_newer(last, ev), newer, "{ev:?} after {last:?}");
        }
    }

    #[test]
    fn unknown_call_status_has_no_rank() {
        for s in ["foo", "Ringing", "answered", "", "completed"] {
            assert_eq!(progress_rank(s), None, "{s}");
        }
    }

    /// A database written before 0003: duplicated events and an attempt stuck by an event
    /// without SequenceNumber. It loads; the duplicates are kept but marked; the attempt moves.
    #[test]
    fn a_v2_database_with_repeated_events_and_a_stuck_attempt_migrates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v2.db");
        {
            let mut conn = rusqlite::Connection::open(&path).expect("open");
            Migrations::from_slice(&super::super::MIGRATIONS[..2])
                .to_latest(&mut conn)
                .expect("v2");
            conn.execute_batch(
                "INSERT INTO campaigns VALUES (1, 't', '{}', 0, 0, 0);
                 INSERT INTO contacts (id, campaign_id, phone, created_at, updated_at)
                     VALUES (1, 1, '+12125550101', 0, 0);
                 INSERT INTO attempts (id, contact_id, campaign_id, attempt_no, phone, call_sid,
                         status, started_at, last_sequence)
                     VALUES (1, 1, 1, 1, '+12125550101', 'CA1', 'ringing', 0, 9223372036854775806);
                 INSERT INTO call_events (attempt_id, call_sid, sequence_number, call_status, received_at, params)
                     VALUES (1, 'CA1', 0, 'initiated', 0, '{}'), (1, 'CA1', 0, 'initiated', 0, '{}'),
                            (1, 'CA1', NULL, 'ringing', 0, '{}');",
            )
            .expect("v2 rows");
        }
        let store = Store::open(&path).expect("migrates");
        let (events, repeated): (i64, i64) = store
            .conn()
            .query_row("SELECT count(*), sum(repeated) FROM call_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("events");
        assert_eq!((events, repeated), (3, 1));
        let attempt = store.require_attempt(1).expect("attempt");
        assert_eq!(attempt.last_sequence, 0);
        let ev = StatusEvent {
            call_sid: "CA1",
            status: "in-progress",
            sequence: Some(2),
            ..StatusEvent::default()
        };
        let rules = CampaignRules::default();
        let applied = store
            .tx()
            .apply_status(1, &rules, "{}", &ev, instant(5))
            .expect("apply");
        assert_eq!(applied, StatusApplied::Progress);
        // a repeat of a legacy event is recognised too
        let initiated = StatusEvent {
            call_sid: "CA1",
            status: "initiated",
            sequence: Some(0),
            ..StatusEvent::default()
        };
        let applied = store
            .tx()
            .apply_status(1, &rules, "{}", &initiated, instant(6))
            .expect("apply");
        assert_eq!(applied, StatusApplied::Repeated);
    }
}
