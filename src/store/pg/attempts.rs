//! PostgreSQL forms of `attempts.rs`: the attempt lifecycle, one guarded statement per change.
//! The claim locks the contact's row with `FOR UPDATE SKIP LOCKED`: a contact another node (or
//! transaction) is claiming at this moment is skipped, not waited for, and never claimed twice.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::store::{PgStore, PgTx, get, get_u32};
use crate::campaign::model::{CampaignRules, Reason};
use crate::schedule::{self, AttemptEnd, Next};
use crate::store::attempts::{Position, is_newer, progress_rank};
use crate::store::{
    Answer, AttemptCall, AttemptEnding, AttemptRow, EndedCall, Result, StatusApplied, StatusEvent,
    StoreError, instant, is_final_status, reason_of, secs,
};

const ATTEMPT_SELECT: &str =
    "SELECT a.id, a.contact_id, a.campaign_id, a.attempt_no, a.phone, a.call_sid, a.status,
        a.answered_by, a.started_at, a.ended_at, a.last_sequence, c.name, c.ext_id, c.fields
    FROM attempts a JOIN contacts c ON c.id = a.contact_id";

fn attempt_row(r: &Row) -> Result<AttemptRow> {
    Ok(AttemptRow {
        id: get(r, 0)?,
        contact_id: get(r, 1)?,
        campaign_id: get(r, 2)?,
        attempt_no: get_u32(r, 3)?,
        phone: get(r, 4)?,
        call_sid: get(r, 5)?,
        status: get(r, 6)?,
        answered_by: get(r, 7)?,
        started_at: instant(get(r, 8)?),
        ended_at: get::<Option<i64>>(r, 9)?.map(instant),
        last_sequence: get(r, 10)?,
        contact_name: get(r, 11)?,
        contact_ext_id: get(r, 12)?,
        contact_fields: get(r, 13)?,
    })
}

impl PgTx<'_> {
    /// Claims a contact for a call (see the SQLite form). The contact's row is taken with
    /// `FOR UPDATE SKIP LOCKED`: if another transaction holds it, this claim loses at once.
    pub fn claim_attempt(
        &self,
        contact_id: i64,
        expected_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<AttemptRow>> {
        let row = self.optional(
            "WITH claimable AS (
                 SELECT c.id FROM contacts c
                 WHERE c.id = $1 AND c.state = 'open' AND c.attempts = $2
                   AND NOT EXISTS (SELECT 1 FROM attempts WHERE contact_id = $1 AND ended_at IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = c.phone)
                 FOR UPDATE OF c SKIP LOCKED),
             claimed AS (
                 UPDATE contacts SET attempts = attempts + 1, updated_at = $3
                 FROM claimable WHERE contacts.id = claimable.id
                 RETURNING contacts.id, contacts.campaign_id, contacts.attempts, contacts.phone)
             INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, started_at)
             SELECT id, campaign_id, attempts, phone, 'dialing', $3::bigint FROM claimed
             RETURNING id",
            &[&contact_id, &i64::from(expected_attempts), &secs(now)],
        )?;
        match row {
            Some(r) => self.attempt(get(&r, 0)?),
            None => Ok(None),
        }
    }

    /// Undoes a claim whose create was refused with a retryable error.
    pub fn unclaim_attempt(&self, attempt_id: i64) -> Result<bool> {
        let Some(r) = self.optional(
            "DELETE FROM attempts WHERE id = $1 AND call_sid IS NULL AND ended_at IS NULL RETURNING contact_id",
            &[&attempt_id],
        )?
        else {
            return Ok(false);
        };
        let contact: i64 = get(&r, 0)?;
        self.execute(
            "UPDATE contacts SET attempts = attempts - 1 WHERE id = $1 AND attempts > 0",
            &[&contact],
        )?;
        Ok(true)
    }

    /// Binds a Call SID to an attempt; `false` if it already has a different SID.
    pub fn bind_call_sid(&self, attempt_id: i64, sid: &str) -> Result<bool> {
        let n = self.execute(
            "UPDATE attempts SET call_sid = $2 WHERE id = $1 AND (call_sid IS NULL OR call_sid = $2)",
            &[&attempt_id, &sid],
        )?;
        Ok(n == 1)
    }

    /// Moves a `dialing` attempt to the status Twilio answered the create with.
    pub fn set_created_status(&self, attempt_id: i64, status: &str) -> Result<()> {
        self.execute(
            "UPDATE attempts SET status = $2 WHERE id = $1 AND status = 'dialing'",
            &[&attempt_id, &status],
        )?;
        Ok(())
    }

    /// Records AnsweredBy (from the voice webhook).
    pub fn set_answered_by(
        &self,
        attempt_id: i64,
        answered_by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.execute(
            "UPDATE attempts SET answered_by = $2, answered_at = coalesce(answered_at, $3) WHERE id = $1 AND ended_at IS NULL",
            &[&attempt_id, &answered_by, &secs(now)],
        )?;
        Ok(())
    }

    /// Applies a status callback (see the SQLite form: the same steps, in one transaction).
    pub fn apply_status(
        &self,
        attempt_id: i64,
        rules: &CampaignRules,
        params_json: &str,
        ev: &StatusEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<StatusApplied> {
        let at = ev.timestamp.map(secs);
        let stored = self.execute(
            "INSERT INTO call_events (attempt_id, call_sid, sequence_number, call_status, received_at, params, idempotency_token)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[&attempt_id, &ev.call_sid, &ev.sequence, &ev.status, &secs(now), &params_json, &ev.token],
        )?;
        if stored == 0 {
            return Ok(StatusApplied::Repeated);
        }
        let Some(r) = self.optional(
            "SELECT last_sequence, last_event_at, status FROM attempts WHERE id = $1 AND ended_at IS NULL",
            &[&attempt_id],
        )?
        else {
            return Ok(StatusApplied::Ignored);
        };
        let (last_sequence, last_at, status): (i64, Option<i64>, String) =
            (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?);
        let sequence = ev.sequence.map_or(last_sequence, |s| s.max(last_sequence));
        let event_at = match (at, last_at) {
            (Some(e), Some(l)) => Some(e.max(l)),
            (e, l) => e.or(l),
        };
        if is_final_status(ev.status) {
            let answered_by: Option<String> = match self.optional(
                "SELECT coalesce($2::text, answered_by) FROM attempts WHERE id = $1",
                &[&attempt_id, &ev.answered_by],
            )? {
                Some(r) => get(&r, 0)?,
                None => None,
            };
            let reason = reason_of(ev.status, answered_by.as_deref()).unwrap_or(Reason::Failed);
            let n = self.execute(
                "UPDATE attempts SET status = $2, reason = $3, answered_by = $4, duration_seconds = $5,
                        ended_at = $6, last_sequence = $7, last_event_at = $9,
                        error_code = coalesce($8, error_code),
                        answered_at = CASE WHEN $5::bigint > 0 THEN coalesce(answered_at, $6 - $5) ELSE answered_at END
                 WHERE id = $1 AND ended_at IS NULL",
                &[
                    &attempt_id,
                    &ev.status,
                    &reason.as_str(),
                    &answered_by,
                    &ev.duration,
                    &secs(now),
                    &sequence,
                    &ev.sip_code,
                    &event_at,
                ],
            )?;
            if n != 1 {
                return Ok(StatusApplied::Ignored);
            }
            finish_contact(self, attempt_id, rules, reason, now)?;
            return Ok(StatusApplied::Final(reason));
        }
        let Some(rank) = progress_rank(ev.status) else {
            return Ok(StatusApplied::Ignored);
        };
        let last = Position {
            sequence: (last_sequence >= 0).then_some(last_sequence),
            at: last_at,
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
        let n = self.execute(
            "UPDATE attempts SET status = $2, last_sequence = $3, last_event_at = $4,
                    answered_at = CASE WHEN $2 = 'in-progress' THEN coalesce(answered_at, $5) ELSE answered_at END
             WHERE id = $1 AND ended_at IS NULL AND last_sequence = $6 AND status = $7",
            &[&attempt_id, &ev.status, &sequence, &event_at, &secs(now), &last_sequence, &status],
        )?;
        Ok(if n == 1 {
            StatusApplied::Progress
        } else {
            StatusApplied::Ignored
        })
    }

    /// Ends an attempt without a callback and applies the retry policy.
    pub fn end_attempt(
        &self,
        attempt_id: i64,
        rules: &CampaignRules,
        end: &EndedCall<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Reason>> {
        let reason = reason_of(end.status, end.answered_by).unwrap_or(Reason::Failed);
        let n = self.execute(
            "UPDATE attempts SET status = $2, reason = $3, answered_by = coalesce($4, answered_by), duration_seconds = $5,
                    ended_at = $6, error_code = $7, error_message = $8
             WHERE id = $1 AND ended_at IS NULL",
            &[
                &attempt_id,
                &end.status,
                &reason.as_str(),
                &end.answered_by,
                &end.duration,
                &secs(now),
                &end.error_code,
                &end.error_message,
            ],
        )?;
        if n != 1 {
            return Ok(None);
        }
        finish_contact(self, attempt_id, rules, reason, now)?;
        Ok(Some(reason))
    }

    /// Stores a gather answer (see the SQLite form); `false` for a repeated delivery.
    pub fn record_answer(
        &self,
        attempt_id: i64,
        a: &Answer<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let stored = self.execute(
            "INSERT INTO answers (attempt_id, step, digits, speech, confidence, matched, received_at,
                                  next_step, idempotency_token, late)
             SELECT id, $2::text, $3::text, $4::text, $5::float8, $6::bigint, $7::bigint, $8::text, $9::text,
                    (ended_at IS NOT NULL)::int FROM attempts WHERE id = $1
             ON CONFLICT DO NOTHING",
            &[
                &attempt_id,
                &a.step,
                &a.digits,
                &a.speech,
                &a.confidence,
                &i64::from(a.matched),
                &secs(now),
                &a.next_step,
                &a.token,
            ],
        )?;
        if stored == 0 {
            return Ok(false);
        }
        self.execute(
            "UPDATE attempts SET digits = $2, speech = $3 WHERE id = $1 AND ended_at IS NULL",
            &[&attempt_id, &a.digits, &a.speech],
        )?;
        Ok(true)
    }

    /// A matched option's effects: outcome, retry_after, and opt-out (DNC at once).
    pub fn apply_option(
        &self,
        attempt_id: i64,
        outcome: Option<&str>,
        retry_after: Option<std::time::Duration>,
        opt_out: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let open = self.execute(
            "UPDATE attempts SET outcome = coalesce($2, outcome), retry_after = coalesce($3, retry_after),
                    opted_out = greatest(opted_out, $4)
             WHERE id = $1 AND ended_at IS NULL",
            &[
                &attempt_id,
                &outcome,
                &retry_after.map(|d| d.as_secs() as i64),
                &i64::from(opt_out),
            ],
        )?;
        if open == 1 && opt_out {
            self.execute(
                "INSERT INTO dnc (phone, source, added_at) SELECT phone, 'opt-out', $2::bigint FROM attempts WHERE id = $1
                 ON CONFLICT (phone) DO NOTHING",
                &[&attempt_id, &secs(now)],
            )?;
            self.execute(
                "UPDATE contacts SET state = 'opted_out', outcome = coalesce($2, outcome), updated_at = $3
                 WHERE id = (SELECT contact_id FROM attempts WHERE id = $1)",
                &[&attempt_id, &outcome, &secs(now)],
            )?;
        }
        Ok(())
    }
}

impl PgStore {
    pub fn attempt(&self, id: i64) -> Result<Option<AttemptRow>> {
        self.optional(&format!("{ATTEMPT_SELECT} WHERE a.id = $1"), &[&id])?
            .as_ref()
            .map(attempt_row)
            .transpose()
    }

    /// An attempt's campaign and Call SID (the status callback's lookup).
    pub fn attempt_call(&self, id: i64) -> Result<Option<AttemptCall>> {
        self.optional(
            "SELECT campaign_id, call_sid FROM attempts WHERE id = $1",
            &[&id],
        )?
        .map(|r| {
            Ok(AttemptCall {
                id,
                campaign_id: get(&r, 0)?,
                call_sid: get(&r, 1)?,
            })
        })
        .transpose()
    }

    /// Attempts not yet in a final state, oldest first.
    pub fn open_attempts(&self) -> Result<Vec<AttemptRow>> {
        self.rows(
            &format!("{ATTEMPT_SELECT} WHERE a.ended_at IS NULL ORDER BY a.id"),
            &[],
        )?
        .iter()
        .map(attempt_row)
        .collect()
    }

    /// Whether some attempt already carries this Call SID.
    pub fn call_sid_bound(&self, sid: &str) -> Result<bool> {
        Ok(self
            .optional("SELECT 1 FROM attempts WHERE call_sid = $1", &[&sid])?
            .is_some())
    }

    /// The step a stored gather delivery with this token led to, if any.
    pub fn answered_step(&self, attempt_id: i64, token: &str) -> Result<Option<Option<String>>> {
        self.optional(
            "SELECT next_step FROM answers WHERE attempt_id = $1 AND idempotency_token = $2",
            &[&attempt_id, &token],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    /// Unmatched answers so far for one step of one attempt.
    pub fn unmatched_answers(&self, attempt_id: i64, step: &str) -> Result<u32> {
        get_u32(
            &self.row(
                "SELECT count(*) FROM answers WHERE attempt_id = $1 AND step = $2 AND matched = 0",
                &[&attempt_id, &step],
            )?,
            0,
        )
    }

    /// Number of attempts not in a final state (all campaigns, or one).
    pub fn count_open_attempts(&self, campaign_id: Option<i64>) -> Result<u32> {
        get_u32(
            &self.row(
                "SELECT count(*) FROM attempts WHERE ended_at IS NULL AND ($1::bigint IS NULL OR campaign_id = $1)",
                &[&campaign_id],
            )?,
            0,
        )
    }

    /// How each of the given attempts stands.
    pub fn attempt_ends(&self, ids: &[i64]) -> Result<Vec<AttemptEnding>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(r) = self.optional(
                "SELECT ended_at IS NULL, reason FROM attempts WHERE id = $1",
                &[id],
            )?
            else {
                continue;
            };
            if get::<bool>(&r, 0)? {
                out.push(AttemptEnding::Open);
            } else {
                out.push(AttemptEnding::Ended(get(&r, 1)?));
            }
        }
        Ok(out)
    }

    pub fn require_attempt(&self, id: i64) -> Result<AttemptRow> {
        self.attempt(id)?
            .ok_or_else(|| StoreError::Postgres(format!("attempt {id} does not exist")))
    }
}

/// Applies `after_attempt` to the attempt's contact (inside the caller's transaction).
fn finish_contact(
    tx: &PgStore,
    attempt_id: i64,
    rules: &CampaignRules,
    reason: Reason,
    now: DateTime<Utc>,
) -> Result<()> {
    let r = tx.row(
        "SELECT c.id, c.attempts, a.retry_after, a.outcome, a.opted_out, c.state
         FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.id = $1",
        &[&attempt_id],
    )?;
    let contact_id: i64 = get(&r, 0)?;
    let attempts = get_u32(&r, 1)?;
    let retry_after: Option<i64> = get(&r, 2)?;
    let outcome: Option<String> = get(&r, 3)?;
    let opted_out = get::<i64>(&r, 4)? != 0;
    let state: String = get(&r, 5)?;
    if opted_out || state != "open" {
        tx.execute(
            "UPDATE contacts SET last_reason = $2, updated_at = $3 WHERE id = $1",
            &[&contact_id, &reason.as_str(), &secs(now)],
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
    tx.execute(
        "UPDATE contacts SET state = $2, next_attempt_at = $3, last_reason = $4, outcome = coalesce($5, outcome), updated_at = $6
         WHERE id = $1",
        &[&contact_id, &state, &next, &reason.as_str(), &outcome, &secs(now)],
    )?;
    Ok(())
}
