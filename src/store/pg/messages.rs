//! PostgreSQL forms of `messages.rs`: follow-ups (claimed once under `messages_once`), message
//! status callbacks, inbound messages and calls.

use chrono::{DateTime, Utc};

use super::store::{PgStore, PgTx, get};
use crate::store::messages::rank;
use crate::store::{
    ContactMatch, DNC_SOURCE_MESSAGE, FollowUpCandidate, FollowUpQuery, InboundCallRecord,
    MessageRecord, NewFollowUp, NewInboundCall, NewInboundMessage, Result, is_final_status, secs,
};

impl PgTx<'_> {
    /// Claims a follow-up: one row per rule and contact, ever, never for a DNC number.
    pub fn claim_follow_up(&self, f: &NewFollowUp, now: DateTime<Utc>) -> Result<Option<i64>> {
        let row = self.optional(
            "INSERT INTO messages (direction, campaign_id, contact_id, rule, attempt_id, channel,
                 from_address, to_address, body, status, created_at, updated_at)
             SELECT 'outbound', $1::bigint, $2::bigint, $3::text, $4::bigint, $5::text, $6::text,
                    $7::text, $8::text, 'claimed', $9::bigint, $9::bigint
             WHERE NOT EXISTS (SELECT 1 FROM dnc d JOIN contacts c ON c.phone = d.phone WHERE c.id = $2)
             ON CONFLICT DO NOTHING RETURNING id",
            &[
                &f.campaign_id,
                &f.contact_id,
                &f.rule,
                &f.attempt_id,
                &f.channel,
                &f.from,
                &f.to,
                &f.body,
                &secs(now),
            ],
        )?;
        row.map(|r| get(&r, 0)).transpose()
    }

    /// Takes back a claim whose create was never processed.
    pub fn unclaim_follow_up(&self, id: i64) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM messages WHERE id = $1 AND status = 'claimed' AND message_sid IS NULL",
            &[&id],
        )? == 1)
    }

    /// Stores the created message's SID and status.
    pub fn follow_up_created(
        &self,
        id: i64,
        sid: &str,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.execute(
            "UPDATE messages SET message_sid = $2,
                 status = CASE WHEN status = 'claimed' THEN $3 ELSE status END, updated_at = $4
             WHERE id = $1 AND (message_sid IS NULL OR message_sid = $2)",
            &[&id, &sid, &status, &secs(now)],
        )?;
        Ok(())
    }

    /// The carrier refused the message (or its outcome is unknown): failed, sent once.
    pub fn follow_up_failed(
        &self,
        id: i64,
        code: Option<u32>,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.execute(
            "UPDATE messages SET status = 'failed', error_code = $2, error_message = $3, updated_at = $4
             WHERE id = $1 AND status = 'claimed'",
            &[&id, &code.map(i64::from), &message, &secs(now)],
        )?;
        Ok(())
    }

    /// Applies a message status callback: kept once, the message moves forward only.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_message_status(
        &self,
        id: i64,
        sid: &str,
        status: &str,
        error_code: Option<i64>,
        token: Option<&str>,
        params_json: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let Some(r) = self.optional(
            "SELECT message_sid, status FROM messages WHERE id = $1 AND direction = 'outbound'",
            &[&id],
        )?
        else {
            return Ok(false);
        };
        let stored_sid: Option<String> = get(&r, 0)?;
        let current: String = get(&r, 1)?;
        if stored_sid.as_deref().is_some_and(|s| s != sid) {
            return Ok(false);
        }
        let inserted = self.execute(
            "INSERT INTO message_events (message_id, message_sid, status, idempotency_token, received_at, params)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&id, &sid, &status, &token, &secs(now), &params_json],
        )?;
        if inserted == 0 {
            return Ok(true);
        }
        if rank(status) > rank(&current) {
            self.execute(
                "UPDATE messages SET message_sid = coalesce(message_sid, $2), status = $3,
                     error_code = coalesce($4, error_code), updated_at = $5
                 WHERE id = $1",
                &[&id, &sid, &status, &error_code, &secs(now)],
            )?;
        }
        Ok(true)
    }

    /// Stores a message someone sent us.
    pub fn record_inbound_message(
        &self,
        m: &NewInboundMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO messages (direction, campaign_id, contact_id, channel, from_address, to_address,
                 body, message_sid, status, keyword, created_at, updated_at)
             VALUES ('inbound', $1, $2, $3, $4, $5, $6, $7, 'received', $8, $9, $9)
             ON CONFLICT DO NOTHING",
            &[
                &m.campaign_id,
                &m.contact_id,
                &m.channel,
                &m.from,
                &m.to,
                &m.body,
                &m.message_sid,
                &m.keyword,
                &secs(now),
            ],
        )?;
        Ok(())
    }

    /// START/UNSTOP: takes a number off the DNC list only if an opt-out message put it there.
    pub fn dnc_remove_opted_in(&self, number: &str) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM dnc WHERE phone = $1 AND source = $2",
            &[&number, &DNC_SOURCE_MESSAGE],
        )? == 1)
    }

    /// Records an inbound call (once per CallSid); see the SQLite form.
    pub fn record_inbound_call(
        &self,
        c: &NewInboundCall<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let inserted = self.execute(
            "INSERT INTO inbound_calls (call_sid, from_number, to_number, matched, campaign_id, contact_id,
                 status, received_at, params)
             VALUES ($1, $2, $3, $4, $5, $6, 'in-progress', $7, $8) ON CONFLICT (call_sid) DO NOTHING",
            &[
                &c.call_sid,
                &c.from,
                &c.to,
                &c.matched,
                &c.campaign_id,
                &c.contact_id,
                &secs(now),
                &c.params,
            ],
        )?;
        if inserted == 0 {
            return match self.optional(
                "SELECT attempt_id FROM inbound_calls WHERE call_sid = $1",
                &[&c.call_sid],
            )? {
                Some(r) => get(&r, 0),
                None => Ok(None),
            };
        }
        let (Some(contact), Some(campaign)) = (c.contact_id, c.campaign_id) else {
            return Ok(None);
        };
        let r = self.row(
            "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, call_sid, status, reason,
                 outcome, started_at, answered_at, ended_at, direction)
             VALUES ($1, $2, 0, $3, $4, 'in-progress', 'completed', $5, $6, $6, $6, 'inbound')
             RETURNING id",
            &[&contact, &campaign, &c.from, &c.call_sid, &c.outcome, &secs(now)],
        )?;
        let attempt: i64 = get(&r, 0)?;
        self.execute(
            "UPDATE inbound_calls SET attempt_id = $2 WHERE call_sid = $1",
            &[&c.call_sid, &attempt],
        )?;
        self.execute(
            "UPDATE contacts SET state = 'completed', outcome = $2, last_reason = 'completed', updated_at = $3
             WHERE id = $1 AND state IN ('open', 'exhausted')",
            &[&contact, &c.outcome, &secs(now)],
        )?;
        Ok(Some(attempt))
    }

    /// A status callback of an inbound call; `false` when the call is unknown.
    pub fn inbound_call_status(
        &self,
        call_sid: &str,
        status: &str,
        duration: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let final_status = is_final_status(status);
        let n = self.execute(
            "UPDATE inbound_calls SET status = $2, duration_seconds = coalesce($3, duration_seconds),
                 ended_at = CASE WHEN $4 THEN coalesce(ended_at, $5) ELSE ended_at END
             WHERE call_sid = $1",
            &[&call_sid, &status, &duration, &final_status, &secs(now)],
        )?;
        if final_status {
            self.execute(
                "UPDATE attempts SET status = $2, duration_seconds = coalesce($3, duration_seconds), ended_at = $4
                 WHERE call_sid = $1 AND direction = 'inbound'",
                &[&call_sid, &status, &duration, &secs(now)],
            )?;
        }
        Ok(n == 1)
    }
}

impl PgStore {
    /// Contacts whose attempt ended as `q` asks and who have had no message of this rule.
    pub fn follow_up_candidates(
        &self,
        q: &FollowUpQuery<'_>,
        limit: usize,
    ) -> Result<Vec<FollowUpCandidate>> {
        self.rows(
            "SELECT c.id, max(a.id), c.phone, c.name, c.ext_id, c.zones, c.fields
             FROM attempts a JOIN contacts c ON c.id = a.contact_id
             WHERE a.campaign_id = $1 AND a.direction = 'outbound' AND a.ended_at IS NOT NULL
               AND ($2::text IS NULL OR a.reason = $2)
               AND ($3::text IS NULL OR coalesce(a.outcome,
                    CASE WHEN a.reason = 'completed' THEN 'answered' END) = $3)
               AND (NOT $4 OR c.state = 'exhausted') AND c.state != 'opted_out'
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id AND m.rule = $5)
               AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone)
             GROUP BY c.id ORDER BY c.id LIMIT $6",
            &[
                &q.campaign_id,
                &q.reason,
                &q.outcome,
                &q.exhausted,
                &q.rule,
                &(limit as i64),
            ],
        )?
        .iter()
        .map(|r| {
            Ok(FollowUpCandidate {
                contact_id: get(r, 0)?,
                attempt_id: get(r, 1)?,
                phone: get(r, 2)?,
                name: get(r, 3)?,
                ext_id: get(r, 4)?,
                zones: get(r, 5)?,
                fields: get(r, 6)?,
            })
        })
        .collect()
    }

    /// How many of these outbound messages the carrier has not yet reported sent or final.
    pub fn messages_on_their_way(&self, ids: &[i64]) -> Result<u64> {
        let r = self.row(
            "SELECT count(*) FROM messages WHERE id = ANY($1)
             AND status IN ('claimed', 'queued', 'accepted', 'scheduled', 'sending')",
            &[&ids],
        )?;
        Ok(u64::try_from(get::<i64>(&r, 0)?).unwrap_or_default())
    }

    /// Every contact with this number, most recently attempted first.
    pub fn contacts_with_phone(&self, phone: &str) -> Result<Vec<ContactMatch>> {
        self.rows(
            "SELECT c.id, c.campaign_id, c.state FROM contacts c
             WHERE c.campaign_id IN (SELECT id FROM campaigns) AND c.phone = $1
             ORDER BY (SELECT max(a.started_at) FROM attempts a WHERE a.contact_id = c.id) DESC NULLS LAST, c.id",
            &[&phone],
        )?
        .iter()
        .map(|r| {
            Ok(ContactMatch {
                contact_id: get(r, 0)?,
                campaign_id: get(r, 1)?,
                state: get(r, 2)?,
            })
        })
        .collect()
    }

    /// The source a number was added to the DNC list with, if it is listed.
    pub fn dnc_source(&self, number: &str) -> Result<Option<String>> {
        self.optional("SELECT source FROM dnc WHERE phone = $1", &[&number])?
            .map(|r| get(&r, 0))
            .transpose()
    }

    /// Every message (one campaign's, or all), oldest first.
    pub fn message_records(
        &self,
        campaign_id: Option<i64>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<MessageRecord>> {
        self.rows(
            "SELECT cp.name, coalesce(c.ext_id, c.phone), m.direction, m.channel, m.rule, m.from_address,
                 m.to_address, m.body, m.message_sid, m.status, m.keyword, m.error_code, m.error_message,
                 m.created_at, m.updated_at
             FROM messages m
             LEFT JOIN campaigns cp ON cp.id = m.campaign_id
             LEFT JOIN contacts c ON c.id = m.contact_id
             WHERE ($1::bigint IS NULL OR m.campaign_id = $1) AND ($2::bigint IS NULL OR m.created_at >= $2)
               AND ($3::bigint IS NULL OR m.created_at < $3)
             ORDER BY m.created_at, m.id",
            &[&campaign_id, &since.map(secs), &until.map(secs)],
        )?
        .iter()
        .map(|r| {
            Ok(MessageRecord {
                campaign: get(r, 0)?,
                contact: get(r, 1)?,
                direction: get(r, 2)?,
                channel: get(r, 3)?,
                rule: get(r, 4)?,
                from: get(r, 5)?,
                to: get(r, 6)?,
                body: get(r, 7)?,
                message_sid: get(r, 8)?,
                status: get(r, 9)?,
                keyword: get(r, 10)?,
                error_code: get(r, 11)?,
                error_message: get(r, 12)?,
                created_at: get(r, 13)?,
                updated_at: get(r, 14)?,
            })
        })
        .collect()
    }

    /// Every inbound call (one campaign's, or all), oldest first.
    pub fn inbound_call_records(
        &self,
        campaign_id: Option<i64>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<InboundCallRecord>> {
        self.rows(
            "SELECT cp.name, coalesce(c.ext_id, c.phone), i.call_sid, i.from_number, i.to_number, i.matched,
                 i.status, i.duration_seconds, i.received_at, i.ended_at
             FROM inbound_calls i
             LEFT JOIN campaigns cp ON cp.id = i.campaign_id
             LEFT JOIN contacts c ON c.id = i.contact_id
             WHERE ($1::bigint IS NULL OR i.campaign_id = $1) AND ($2::bigint IS NULL OR i.received_at >= $2)
               AND ($3::bigint IS NULL OR i.received_at < $3)
             ORDER BY i.received_at, i.id",
            &[&campaign_id, &since.map(secs), &until.map(secs)],
        )?
        .iter()
        .map(|r| {
            Ok(InboundCallRecord {
                campaign: get(r, 0)?,
                contact: get(r, 1)?,
                call_sid: get(r, 2)?,
                from: get(r, 3)?,
                to: get(r, 4)?,
                matched: get(r, 5)?,
                status: get(r, 6)?,
                duration_seconds: get(r, 7)?,
                received_at: get(r, 8)?,
                ended_at: get(r, 9)?,
            })
        })
        .collect()
    }
}
