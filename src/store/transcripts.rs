//! The `bot_sessions` and `bot_turns` tables (SPEC §13): every conversation a call had with a
//! bot, every turn of it in order, how it ended; their export and the summary's bot rates.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::reports::AttemptFilter;
use super::{Cached, Result, SqliteStore, SqliteTx, StoreError, secs};

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The bot said `custom.end`.
    Completed,
    /// The caller used every turn: fallback.
    MaxTurns,
    /// The caller was silent twice in a row: fallback.
    NoInput,
    /// The bot answered an error or something unusable: fallback.
    BotError,
    /// The bot was slower than the step's `timeout`: fallback.
    Timeout,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Completed => "completed",
            SessionEnd::MaxTurns => "max_turns",
            SessionEnd::NoInput => "no_input",
            SessionEnd::BotError => "bot_error",
            SessionEnd::Timeout => "timeout",
        }
    }
}

/// One conversation of a call with a bot step.
#[derive(Debug, Clone, PartialEq)]
pub struct BotSession {
    pub id: i64,
    pub attempt_id: i64,
    pub step: String,
    /// `Some` once it ended (see [`SessionEnd::as_str`]).
    pub ending: Option<String>,
    /// Where the call went when it ended (`None`: it hung up).
    pub next_step: Option<String>,
}

/// One stored turn.
#[derive(Debug, Clone, PartialEq)]
pub struct BotTurn {
    pub turn: i64,
    /// `greeting`, `speech` or `no_input`.
    pub kind: String,
    pub caller_text: Option<String>,
    pub confidence: Option<f64>,
    /// The bot's replies joined by newlines.
    pub bot_text: Option<String>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
}

/// A turn to store.
#[derive(Debug, Clone, Copy)]
pub struct NewTurn<'a> {
    pub kind: &'a str,
    pub caller_text: Option<&'a str>,
    pub confidence: Option<f64>,
    pub bot_text: Option<&'a str>,
    pub latency_ms: Option<i64>,
    pub error: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// One row of `report export csv --transcripts`.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptRecord<'a> {
    pub campaign: &'a str,
    pub contact: &'a str,
    pub phone: &'a str,
    pub attempt_no: i64,
    pub call_sid: Option<&'a str>,
    pub step: &'a str,
    pub session: i64,
    pub turn: i64,
    pub kind: &'a str,
    pub at: i64,
    pub caller_text: Option<&'a str>,
    pub confidence: Option<f64>,
    pub bot_text: Option<&'a str>,
    pub latency_ms: Option<i64>,
    pub error: Option<&'a str>,
    /// The session's ending, on every row of it.
    pub ending: Option<&'a str>,
    pub outcome: Option<&'a str>,
}

/// Conversations of one campaign, for `report summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BotCounts {
    pub sessions: i64,
    pub completed: i64,
    /// Ended in the step's fallback (max_turns, no_input, bot_error, timeout).
    pub fallback: i64,
}

const SESSION_COLUMNS: &str = "id, attempt_id, step, ending, next_step";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BotSession> {
    Ok(BotSession {
        id: r.get(0)?,
        attempt_id: r.get(1)?,
        step: r.get(2)?,
        ending: r.get(3)?,
        next_step: r.get(4)?,
    })
}

impl SqliteTx<'_> {
    /// Starts a conversation of `attempt_id` with the bot of `step`; returns its id.
    pub fn open_bot_session(&self, attempt_id: i64, step: &str, now: DateTime<Utc>) -> Result<i64> {
        self.conn.execute_cached(
            "INSERT INTO bot_sessions (attempt_id, step, started_at) VALUES (?1, ?2, ?3)",
            params![attempt_id, step, secs(now)],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Appends a turn (numbered after the session's last one). `false` when its idempotency
    /// token is stored already (a repeated delivery): nothing stored.
    pub fn record_bot_turn(
        &self,
        session_id: i64,
        t: &NewTurn<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO bot_turns (session_id, turn, kind, caller_text, confidence, bot_text,
                                        latency_ms, error, at, idempotency_token)
                 SELECT ?1, coalesce(max(turn) + 1, CASE WHEN ?2 = 'greeting' THEN 0 ELSE 1 END),
                        ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
                 FROM bot_turns WHERE session_id = ?1
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                session_id,
                t.kind,
                t.caller_text,
                t.confidence,
                t.bot_text,
                t.latency_ms,
                t.error,
                secs(now),
                t.token
            ])?;
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
        let n = self.conn.execute_cached(
            "UPDATE bot_sessions SET ended_at = ?2, ending = ?3, outcome = ?4, next_step = ?5
             WHERE id = ?1 AND ended_at IS NULL",
            params![session_id, secs(now), ending.as_str(), outcome, next_step],
        )?;
        Ok(n == 1)
    }
}

impl SqliteStore {
    pub fn bot_session(&self, id: i64) -> Result<Option<BotSession>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM bot_sessions WHERE id = ?1"
            ))?
            .query_row([id], session_row)
            .optional()?)
    }

    /// The turns of a conversation, in order.
    pub fn bot_turns(&self, session_id: i64) -> Result<Vec<BotTurn>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT turn, kind, caller_text, confidence, bot_text, latency_ms, error
             FROM bot_turns WHERE session_id = ?1 ORDER BY turn",
        )?;
        let rows = stmt
            .query_map([session_id], |r| {
                Ok(BotTurn {
                    turn: r.get(0)?,
                    kind: r.get(1)?,
                    caller_text: r.get(2)?,
                    confidence: r.get(3)?,
                    bot_text: r.get(4)?,
                    latency_ms: r.get(5)?,
                    error: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether a turn with this idempotency token is stored (a repeated delivery).
    pub fn bot_turn_seen(&self, token: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM bot_turns WHERE idempotency_token = ?1")?
            .query_row([token], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The bot conversations of a campaign and how they ended.
    pub fn bot_counts(&self, campaign_id: i64) -> Result<BotCounts> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(s.ending = 'completed'), 0),
                        coalesce(sum(s.ending IN ('max_turns', 'no_input', 'bot_error', 'timeout')), 0)
                 FROM bot_sessions s JOIN attempts a ON a.id = s.attempt_id
                 WHERE a.campaign_id = ?1",
            )?
            .query_row([campaign_id], |r| {
                Ok(BotCounts {
                    sessions: r.get(0)?,
                    completed: r.get(1)?,
                    fallback: r.get(2)?,
                })
            })?)
    }

    /// Every turn of every conversation, streamed in order: campaign, contact, attempt, session,
    /// turn. `filter` selects attempts by campaign and start time like the attempts export.
    pub fn for_each_transcript_record<E: From<StoreError>>(
        &self,
        filter: &AttemptFilter,
        mut f: impl FnMut(&TranscriptRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = |e: rusqlite::Error| E::from(StoreError::Sql(e));
        let (text, values) = filter.sql(TRANSCRIPT_SELECT, TRANSCRIPT_ORDER);
        let mut stmt = self.conn.prepare_cached(&text).map_err(sql)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            f(&transcript_record(r).map_err(sql)?)?;
        }
        Ok(())
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

fn transcript_record<'a>(r: &'a rusqlite::Row<'a>) -> rusqlite::Result<TranscriptRecord<'a>> {
    let t = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str_or_null()?));
    Ok(TranscriptRecord {
        campaign: t(0)?.unwrap_or_default(),
        contact: t(1)?.unwrap_or_default(),
        phone: t(2)?.unwrap_or_default(),
        attempt_no: r.get(3)?,
        call_sid: t(4)?,
        step: t(5)?.unwrap_or_default(),
        session: r.get(6)?,
        turn: r.get(7)?,
        kind: t(8)?.unwrap_or_default(),
        at: r.get(9)?,
        caller_text: t(10)?,
        confidence: r.get(11)?,
        bot_text: t(12)?,
        latency_ms: r.get(13)?,
        error: t(14)?,
        ending: t(15)?,
        outcome: t(16)?,
    })
}
