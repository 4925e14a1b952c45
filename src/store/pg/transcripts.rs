//! PostgreSQL forms of `transcripts.rs`: bot sessions and turns.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::store::{PgStore, PgTx, get};
use crate::store::{
    AttemptFilter, BotCounts, BotSession, BotTurn, NewTurn, Result, SessionEnd, StoreError,
    TranscriptRecord, secs,
};

const SESSION_COLUMNS: &str = "id, attempt_id, step, ending, next_step";

fn session_row(r: &Row) -> Result<BotSession> {
    Ok(BotSession {
        id: get(r, 0)?,
        attempt_id: get(r, 1)?,
        step: get(r, 2)?,
        ending: get(r, 3)?,
        next_step: get(r, 4)?,
    })
}

impl PgTx<'_> {
    /// Starts a conversation of `attempt_id` with the bot of `step`; returns its id.
    pub fn open_bot_session(&self, attempt_id: i64, step: &str, now: DateTime<Utc>) -> Result<i64> {
        get(
            &self.row(
                "INSERT INTO bot_sessions (attempt_id, step, started_at) VALUES ($1, $2, $3) RETURNING id",
                &[&attempt_id, &step, &secs(now)],
            )?,
            0,
        )
    }

    /// Appends a turn; `false` for a repeated delivery (its token is stored already).
    pub fn record_bot_turn(
        &self,
        session_id: i64,
        t: &NewTurn<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self.execute(
            "INSERT INTO bot_turns (session_id, turn, kind, caller_text, confidence, bot_text,
                                    latency_ms, error, at, idempotency_token)
             SELECT $1::bigint, coalesce(max(turn) + 1, CASE WHEN $2::text = 'greeting' THEN 0 ELSE 1 END),
                    $2::text, $3::text, $4::float8, $5::text, $6::bigint, $7::text, $8::bigint, $9::text
             FROM bot_turns WHERE session_id = $1
             ON CONFLICT DO NOTHING",
            &[
                &session_id,
                &t.kind,
                &t.caller_text,
                &t.confidence,
                &t.bot_text,
                &t.latency_ms,
                &t.error,
                &secs(now),
                &t.token,
            ],
        )?;
        Ok(n == 1)
    }

    /// Ends a running conversation; `false` when it had ended already.
    pub fn end_bot_session(
        &self,
        session_id: i64,
        ending: SessionEnd,
        outcome: Option<&str>,
        next_step: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self.execute(
            "UPDATE bot_sessions SET ended_at = $2, ending = $3, outcome = $4, next_step = $5
             WHERE id = $1 AND ended_at IS NULL",
            &[
                &session_id,
                &secs(now),
                &ending.as_str(),
                &outcome,
                &next_step,
            ],
        )?;
        Ok(n == 1)
    }
}

impl PgStore {
    pub fn bot_session(&self, id: i64) -> Result<Option<BotSession>> {
        self.optional(
            &format!("SELECT {SESSION_COLUMNS} FROM bot_sessions WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(session_row)
        .transpose()
    }

    /// The turns of a conversation, in order.
    pub fn bot_turns(&self, session_id: i64) -> Result<Vec<BotTurn>> {
        self.rows(
            "SELECT turn, kind, caller_text, confidence, bot_text, latency_ms, error
             FROM bot_turns WHERE session_id = $1 ORDER BY turn",
            &[&session_id],
        )?
        .iter()
        .map(|r| {
            Ok(BotTurn {
                turn: get(r, 0)?,
                kind: get(r, 1)?,
                caller_text: get(r, 2)?,
                confidence: get(r, 3)?,
                bot_text: get(r, 4)?,
                latency_ms: get(r, 5)?,
                error: get(r, 6)?,
            })
        })
        .collect()
    }

    /// Whether a turn with this idempotency token is stored (a repeated delivery).
    pub fn bot_turn_seen(&self, token: &str) -> Result<bool> {
        Ok(self
            .optional(
                "SELECT 1 FROM bot_turns WHERE idempotency_token = $1",
                &[&token],
            )?
            .is_some())
    }

    /// The bot conversations of a campaign and how they ended.
    pub fn bot_counts(&self, campaign_id: i64) -> Result<BotCounts> {
        let r = self.row(
            "SELECT count(*), count(*) FILTER (WHERE s.ending = 'completed'),
                    count(*) FILTER (WHERE s.ending IN ('max_turns', 'no_input', 'bot_error', 'timeout'))
             FROM bot_sessions s JOIN attempts a ON a.id = s.attempt_id
             WHERE a.campaign_id = $1",
            &[&campaign_id],
        )?;
        Ok(BotCounts {
            sessions: get(&r, 0)?,
            completed: get(&r, 1)?,
            fallback: get(&r, 2)?,
        })
    }

    /// Every turn of every conversation, streamed in order (see the SQLite form).
    pub fn for_each_transcript_record<E: From<StoreError>>(
        &self,
        filter: &AttemptFilter,
        mut f: impl FnMut(&TranscriptRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (text, values) = super::reports::filtered(filter, TRANSCRIPT_SELECT, TRANSCRIPT_ORDER);
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        self.each_row(&text, &params, |r| f(&transcript_record(r)?))
    }
}

const TRANSCRIPT_SELECT: &str =
    "SELECT cp.name, coalesce(c.ext_id, c.phone), a.phone, a.attempt_no, a.call_sid,
        s.step, s.id, t.turn, t.kind, t.at, t.caller_text, t.confidence, t.bot_text, t.latency_ms,
        t.error, s.ending, s.outcome
    FROM bot_turns t
    JOIN bot_sessions s ON s.id = t.session_id
    JOIN attempts a ON a.id = s.attempt_id
    JOIN contacts c ON c.id = a.contact_id
    JOIN campaigns cp ON cp.id = a.campaign_id";

const TRANSCRIPT_ORDER: &str = "ORDER BY cp.name, a.contact_id, a.attempt_no, s.id, t.turn";

fn transcript_record(r: &Row) -> Result<TranscriptRecord<'_>> {
    Ok(TranscriptRecord {
        campaign: get(r, 0)?,
        contact: get(r, 1)?,
        phone: get(r, 2)?,
        attempt_no: get(r, 3)?,
        call_sid: get(r, 4)?,
        step: get(r, 5)?,
        session: get(r, 6)?,
        turn: get(r, 7)?,
        kind: get(r, 8)?,
        at: get(r, 9)?,
        caller_text: get(r, 10)?,
        confidence: get(r, 11)?,
        bot_text: get(r, 12)?,
        latency_ms: get(r, 13)?,
        error: get(r, 14)?,
        ending: get(r, 15)?,
        outcome: get(r, 16)?,
    })
}
