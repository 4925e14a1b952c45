//! The `messages`, `message_events` and `inbound_calls` tables (SPEC §12): follow-ups claimed
//! before they are sent (one per rule and contact, by a unique index), their status callbacks,
//! messages people send us, and calls people make to a campaign's number.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Cached, Result, SqliteStore, SqliteTx, secs};

/// DNC `source` of a number added by an opt-out keyword sent by message: only these are taken
/// off again by START/UNSTOP.
pub const DNC_SOURCE_MESSAGE: &str = "message";

/// A follow-up about to be sent.
#[derive(Debug, Clone)]
pub struct NewFollowUp {
    pub campaign_id: i64,
    pub contact_id: i64,
    pub rule: String,
    pub attempt_id: i64,
    pub channel: &'static str,
    /// Addresses as sent (`whatsapp:+…` for WhatsApp).
    pub from: String,
    pub to: String,
    pub body: String,
}

/// A contact whose attempt ended the way a follow-up rule asks, and who has not had it yet.
#[derive(Debug, Clone)]
pub struct FollowUpCandidate {
    pub contact_id: i64,
    pub attempt_id: i64,
    pub phone: String,
    pub name: Option<String>,
    pub ext_id: Option<String>,
    pub zones: Option<String>,
    pub fields: String,
}

/// What a follow-up rule matches, as stored values.
#[derive(Debug, Clone, Copy)]
pub struct FollowUpQuery<'a> {
    pub campaign_id: i64,
    pub rule: &'a str,
    pub reason: Option<&'a str>,
    pub outcome: Option<&'a str>,
    /// Only contacts left exhausted.
    pub exhausted: bool,
}

/// An inbound call to record.
#[derive(Debug, Clone)]
pub struct NewInboundCall<'a> {
    pub call_sid: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    /// `contact`, `caller` or `unowned`.
    pub matched: &'a str,
    pub campaign_id: Option<i64>,
    pub contact_id: Option<i64>,
    /// The outcome a contact who called back gets (`inbound_outcome`).
    pub outcome: &'a str,
    pub params: &'a str,
}

/// An inbound message to record.
#[derive(Debug, Clone)]
pub struct NewInboundMessage<'a> {
    pub message_sid: Option<&'a str>,
    pub campaign_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub channel: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub keyword: Option<&'a str>,
}

/// A contact with a number, wherever it is (matching callers and senders).
#[derive(Debug, Clone)]
pub struct ContactMatch {
    pub contact_id: i64,
    pub campaign_id: i64,
    pub state: String,
}

/// One message as exported (`report export csv --messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub campaign: Option<String>,
    pub contact: Option<String>,
    pub direction: String,
    pub channel: String,
    pub rule: Option<String>,
    pub from: String,
    pub to: String,
    pub body: String,
    pub message_sid: Option<String>,
    pub status: String,
    pub keyword: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One inbound call as exported (`report export csv --inbound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCallRecord {
    pub campaign: Option<String>,
    pub contact: Option<String>,
    pub call_sid: String,
    pub from: String,
    pub to: String,
    pub matched: String,
    pub status: String,
    pub duration_seconds: Option<i64>,
    pub received_at: i64,
    pub ended_at: Option<i64>,
}

/// Order of message statuses: a callback never moves a message backwards.
pub(super) fn rank(status: &str) -> i64 {
    match status {
        "claimed" => 0,
        "accepted" | "scheduled" | "queued" => 1,
        "sending" => 2,
        "sent" => 3,
        "delivered" | "undelivered" | "failed" | "canceled" => 4,
        "read" => 5,
        _ => -1,
    }
}

impl SqliteTx<'_> {
    /// Claims a follow-up: one row per rule and contact, ever (unique index), never for a number
    /// on the DNC list. Committed before the Messages create is sent. `None`: not claimable.
    pub fn claim_follow_up(&self, f: &NewFollowUp, now: DateTime<Utc>) -> Result<Option<i64>> {
        let n = self.conn.prepare_cached(
            "INSERT INTO messages (direction, campaign_id, contact_id, rule, attempt_id, channel,
                 from_address, to_address, body, status, created_at, updated_at)
             SELECT 'outbound', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'claimed', ?9, ?9
             WHERE NOT EXISTS (SELECT 1 FROM dnc d JOIN contacts c ON c.phone = d.phone WHERE c.id = ?2)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            f.campaign_id, f.contact_id, f.rule, f.attempt_id, f.channel, f.from, f.to, f.body, secs(now)
        ])?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// Takes back a claim whose create was never processed (429, no connection): it is
    /// pending again.
    pub fn unclaim_follow_up(&self, id: i64) -> Result<bool> {
        Ok(self.conn.execute_cached(
            "DELETE FROM messages WHERE id = ?1 AND status = 'claimed' AND message_sid IS NULL",
            [id],
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
        self.conn.execute_cached(
            "UPDATE messages SET message_sid = ?2,
                 status = CASE WHEN status = 'claimed' THEN ?3 ELSE status END, updated_at = ?4
             WHERE id = ?1 AND (message_sid IS NULL OR message_sid = ?2)",
            params![id, sid, status, secs(now)],
        )?;
        Ok(())
    }

    /// The carrier refused the message (or its outcome is unknown): it stays sent-once, failed.
    pub fn follow_up_failed(
        &self,
        id: i64,
        code: Option<u32>,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute_cached(
            "UPDATE messages SET status = 'failed', error_code = ?2, error_message = ?3, updated_at = ?4
             WHERE id = ?1 AND status = 'claimed'",
            params![id, code, message, secs(now)],
        )?;
        Ok(())
    }

    /// Applies a message status callback: kept once (by idempotency token), and the message
    /// moves forward only. `false` when the message is unknown or the SID is another's.
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
        let tx = &self.conn;
        let current: Option<(Option<String>, String)> = tx
            .query_row_cached(
                "SELECT message_sid, status FROM messages WHERE id = ?1 AND direction = 'outbound'",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((stored_sid, current)) = current else {
            return Ok(false);
        };
        if stored_sid.as_deref().is_some_and(|s| s != sid) {
            return Ok(false);
        }
        let inserted = tx.execute_cached(
            "INSERT INTO message_events (message_id, message_sid, status, idempotency_token, received_at, params)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![id, sid, status, token, secs(now), params_json],
        )?;
        if inserted == 0 {
            return Ok(true);
        }
        if rank(status) > rank(&current) {
            tx.execute_cached(
                "UPDATE messages SET message_sid = coalesce(message_sid, ?2), status = ?3,
                     error_code = coalesce(?4, error_code), updated_at = ?5
                 WHERE id = ?1",
                params![id, sid, status, error_code, secs(now)],
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
        self.conn.execute_cached(
            "INSERT INTO messages (direction, campaign_id, contact_id, channel, from_address, to_address,
                 body, message_sid, status, keyword, created_at, updated_at)
             VALUES ('inbound', ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9, ?9)
             ON CONFLICT DO NOTHING",
            params![m.campaign_id, m.contact_id, m.channel, m.from, m.to, m.body, m.message_sid, m.keyword, secs(now)],
        )?;
        Ok(())
    }

    /// START/UNSTOP: takes a number off the DNC list only if an opt-out message put it there.
    pub fn dnc_remove_opted_in(&self, number: &str) -> Result<bool> {
        Ok(self.conn.execute_cached(
            "DELETE FROM dnc WHERE phone = ?1 AND source = ?2",
            params![number, DNC_SOURCE_MESSAGE],
        )? == 1)
    }

    /// Records an inbound call (once per CallSid). A contact who called back gets an attempt
    /// with direction `inbound` (answered, reason `completed`) and, unless it had already ended
    /// another way (completed, opted out), is completed with `outcome`: reached, no more
    /// retries. Returns the attempt, if any (the first delivery's on a repeat).
    pub fn record_inbound_call(
        &self,
        c: &NewInboundCall<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let tx = &self.conn;
        let inserted = tx.execute_cached(
            "INSERT INTO inbound_calls (call_sid, from_number, to_number, matched, campaign_id, contact_id,
                 status, received_at, params)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'in-progress', ?7, ?8) ON CONFLICT (call_sid) DO NOTHING",
            params![c.call_sid, c.from, c.to, c.matched, c.campaign_id, c.contact_id, secs(now), c.params],
        )?;
        if inserted == 0 {
            return Ok(tx
                .query_row_cached(
                    "SELECT attempt_id FROM inbound_calls WHERE call_sid = ?1",
                    [c.call_sid],
                    |r| r.get(0),
                )
                .optional()?
                .flatten());
        }
        let (Some(contact), Some(campaign)) = (c.contact_id, c.campaign_id) else {
            return Ok(None);
        };
        tx.execute_cached(
            "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, call_sid, status, reason,
                 outcome, started_at, answered_at, ended_at, direction)
             VALUES (?1, ?2, 0, ?3, ?4, 'in-progress', 'completed', ?5, ?6, ?6, ?6, 'inbound')",
            params![contact, campaign, c.from, c.call_sid, c.outcome, secs(now)],
        )?;
        let attempt = tx.last_insert_rowid();
        tx.execute_cached(
            "UPDATE inbound_calls SET attempt_id = ?2 WHERE call_sid = ?1",
            params![c.call_sid, attempt],
        )?;
        tx.execute_cached(
            "UPDATE contacts SET state = 'completed', outcome = ?2, last_reason = 'completed', updated_at = ?3
             WHERE id = ?1 AND state IN ('open', 'exhausted')",
            params![contact, c.outcome, secs(now)],
        )?;
        Ok(Some(attempt))
    }

    /// A status callback of an inbound call: its final status and duration. `false` when the
    /// call is unknown.
    pub fn inbound_call_status(
        &self,
        call_sid: &str,
        status: &str,
        duration: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let tx = &self.conn;
        let final_status = super::is_final_status(status);
        let n = tx.execute_cached(
            "UPDATE inbound_calls SET status = ?2, duration_seconds = coalesce(?3, duration_seconds),
                 ended_at = CASE WHEN ?4 THEN coalesce(ended_at, ?5) ELSE ended_at END
             WHERE call_sid = ?1",
            params![call_sid, status, duration, final_status, secs(now)],
        )?;
        if final_status {
            tx.execute_cached(
                "UPDATE attempts SET status = ?2, duration_seconds = coalesce(?3, duration_seconds), ended_at = ?4
                 WHERE call_sid = ?1 AND direction = 'inbound'",
                params![call_sid, status, duration, secs(now)],
            )?;
        }
        Ok(n == 1)
    }
}

impl SqliteStore {
    /// Contacts whose attempt ended as `q` asks and who have had no message of this rule; the
    /// latest such attempt each. A completed attempt without an option's outcome counts as
    /// `answered`, the outcome its contact gets. Contacts on the DNC list or opted out are left out.
    pub fn follow_up_candidates(
        &self,
        q: &FollowUpQuery<'_>,
        limit: usize,
    ) -> Result<Vec<FollowUpCandidate>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, max(a.id), c.phone, c.name, c.ext_id, c.zones, c.fields
             FROM attempts a JOIN contacts c ON c.id = a.contact_id
             WHERE a.campaign_id = ?1 AND a.direction = 'outbound' AND a.ended_at IS NOT NULL
               AND (?2 IS NULL OR a.reason = ?2)
               AND (?3 IS NULL OR coalesce(a.outcome,
                    CASE WHEN a.reason = 'completed' THEN 'answered' END) = ?3)
               AND (NOT ?4 OR c.state = 'exhausted') AND c.state != 'opted_out'
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id AND m.rule = ?5)
               AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone)
             GROUP BY c.id ORDER BY c.id LIMIT ?6",
        )?;
        let rows = stmt
            .query_map(
                params![
                    q.campaign_id,
                    q.reason,
                    q.outcome,
                    q.exhausted,
                    q.rule,
                    limit as i64
                ],
                |r| {
                    Ok(FollowUpCandidate {
                        contact_id: r.get(0)?,
                        attempt_id: r.get(1)?,
                        phone: r.get(2)?,
                        name: r.get(3)?,
                        ext_id: r.get(4)?,
                        zones: r.get(5)?,
                        fields: r.get(6)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// How many of these outbound messages the carrier has not yet reported sent or final.
    pub fn messages_on_their_way(&self, ids: &[i64]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*) FROM messages WHERE id = ?1
             AND status IN ('claimed', 'queued', 'accepted', 'scheduled', 'sending')",
        )?;
        let mut n = 0u64;
        for id in ids {
            let c: i64 = stmt.query_row([id], |r| r.get(0))?;
            n += c as u64;
        }
        Ok(n)
    }

    /// Every contact with this number, most recently attempted first.
    pub fn contacts_with_phone(&self, phone: &str) -> Result<Vec<ContactMatch>> {
        let mut stmt = self.conn.prepare_cached(
            // one probe of UNIQUE (campaign_id, phone) per campaign: there is no index on the
            // phone alone (migration 0008)
            "SELECT c.id, c.campaign_id, c.state FROM contacts c
             WHERE c.campaign_id IN (SELECT id FROM campaigns) AND c.phone = ?1
             ORDER BY (SELECT max(a.started_at) FROM attempts a WHERE a.contact_id = c.id) DESC, c.id",
        )?;
        let rows = stmt
            .query_map([phone], |r| {
                Ok(ContactMatch {
                    contact_id: r.get(0)?,
                    campaign_id: r.get(1)?,
                    state: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The source a number was added to the DNC list with, if it is listed.
    pub fn dnc_source(&self, number: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT source FROM dnc WHERE phone = ?1")?
            .query_row([number], |r| r.get(0))
            .optional()?)
    }

    /// Every message (one campaign's, or all), oldest first.
    pub fn message_records(
        &self,
        campaign_id: Option<i64>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<MessageRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cp.name, coalesce(c.ext_id, c.phone), m.direction, m.channel, m.rule, m.from_address,
                 m.to_address, m.body, m.message_sid, m.status, m.keyword, m.error_code, m.error_message,
                 m.created_at, m.updated_at
             FROM messages m
             LEFT JOIN campaigns cp ON cp.id = m.campaign_id
             LEFT JOIN contacts c ON c.id = m.contact_id
             WHERE (?1 IS NULL OR m.campaign_id = ?1) AND (?2 IS NULL OR m.created_at >= ?2)
               AND (?3 IS NULL OR m.created_at < ?3)
             ORDER BY m.created_at, m.id",
        )?;
        let rows = stmt
            .query_map(
                params![campaign_id, since.map(secs), until.map(secs)],
                |r| {
                    Ok(MessageRecord {
                        campaign: r.get(0)?,
                        contact: r.get(1)?,
                        direction: r.get(2)?,
                        channel: r.get(3)?,
                        rule: r.get(4)?,
                        from: r.get(5)?,
                        to: r.get(6)?,
                        body: r.get(7)?,
                        message_sid: r.get(8)?,
                        status: r.get(9)?,
                        keyword: r.get(10)?,
                        error_code: r.get(11)?,
                        error_message: r.get(12)?,
                        created_at: r.get(13)?,
                        updated_at: r.get(14)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every inbound call (one campaign's, or all), oldest first.
    pub fn inbound_call_records(
        &self,
        campaign_id: Option<i64>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<InboundCallRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cp.name, coalesce(c.ext_id, c.phone), i.call_sid, i.from_number, i.to_number, i.matched,
                 i.status, i.duration_seconds, i.received_at, i.ended_at
             FROM inbound_calls i
             LEFT JOIN campaigns cp ON cp.id = i.campaign_id
             LEFT JOIN contacts c ON c.id = i.contact_id
             WHERE (?1 IS NULL OR i.campaign_id = ?1) AND (?2 IS NULL OR i.received_at >= ?2)
               AND (?3 IS NULL OR i.received_at < ?3)
             ORDER BY i.received_at, i.id",
        )?;
        let rows = stmt
            .query_map(
                params![campaign_id, since.map(secs), until.map(secs)],
                |r| {
                    Ok(InboundCallRecord {
                        campaign: r.get(0)?,
                        contact: r.get(1)?,
                        call_sid: r.get(2)?,
                        from: r.get(3)?,
                        to: r.get(4)?,
                        matched: r.get(5)?,
                        status: r.get(6)?,
                        duration_seconds: r.get(7)?,
                        received_at: r.get(8)?,
                        ended_at: r.get(9)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::instant;

    fn store_with_contact() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("m.db")).expect("open");
        store
            .conn()
            .execute_batch(
                "INSERT INTO campaigns VALUES (1, 't', '{}', 0, 0, 0);
                 INSERT INTO contacts (id, campaign_id, phone, state, attempts, created_at, updated_at)
                     VALUES (1, 1, '+12125550101', 'exhausted', 1, 0, 0);
                 INSERT INTO attempts (id, contact_id, campaign_id, attempt_no, phone, status, reason,
                         started_at, ended_at)
                     VALUES (1, 1, 1, 1, '+12125550101', 'no-answer', 'no-answer', 0, 30);",
            )
            .expect("rows");
        (dir, store)
    }

    fn follow_up(rule: &str) -> NewFollowUp {
        NewFollowUp {
            campaign_id: 1,
            contact_id: 1,
            rule: rule.into(),
            attempt_id: 1,
            channel: "sms",
            from: "+15005550006".into(),
            to: "+12125550101".into(),
            body: "hi".into(),
        }
    }

    #[test]
    fn a_follow_up_is_claimed_once_per_rule_and_contact_and_never_for_a_dnc_number() {
        let (_dir, store) = store_with_contact();
        let tx = store.tx();
        let q = FollowUpQuery {
            campaign_id: 1,
            rule: "missed",
            reason: Some("no-answer"),
            outcome: None,
            exhausted: true,
        };
        assert_eq!(store.follow_up_candidates(&q, 10).expect("read").len(), 1);
        let first = tx
            .claim_follow_up(&follow_up("missed"), instant(40))
            .expect("claim");
        assert!(first.is_some());
        assert_eq!(
            tx.claim_follow_up(&follow_up("missed"), instant(41))
                .expect("claim"),
            None
        );
        assert!(store.follow_up_candidates(&q, 10).expect("read").is_empty());
        // another rule is another message; a DNC number gets none
        tx.dnc_add(&["+12125550101".into()], DNC_SOURCE_MESSAGE, instant(42))
            .expect("dnc");
        assert_eq!(
            tx.claim_follow_up(&follow_up("other"), instant(43))
                .expect("claim"),
            None
        );
        let other = FollowUpQuery { rule: "other", ..q };
        assert!(
            store
                .follow_up_candidates(&other, 10)
                .expect("read")
                .is_empty()
        );
        // a completed call without an option's outcome is `answered`
        store
            .conn()
            .execute_batch(
                "INSERT INTO contacts (id, campaign_id, phone, state, attempts, created_at, updated_at)
                     VALUES (2, 1, '+12125550102', 'completed', 1, 0, 0);
                 INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, reason,
                         started_at, ended_at)
                     VALUES (2, 1, 1, '+12125550102', 'completed', 'completed', 0, 30);",
            )
            .expect("rows");
        let answered = FollowUpQuery {
            rule: "thanks",
            reason: None,
            outcome: Some("answered"),
            exhausted: false,
            ..q
        };
        let found = store.follow_up_candidates(&answered, 10).expect("read");
        assert_eq!(found.iter().map(|c| c.contact_id).collect::<Vec<_>>(), [2]);
        // START takes off only what a message put on
        assert!(tx.dnc_remove_opted_in("+12125550101").expect("remove"));
        tx.dnc_add(&["+12125550101".into()], "cli", instant(44))
            .expect("dnc");
        assert!(!tx.dnc_remove_opted_in("+12125550101").expect("remove"));
    }

    #[test]
    fn message_status_moves_forward_only_and_is_stored_once() {
        let (_dir, store) = store_with_contact();
        let tx = store.tx();
        let id = tx
            .claim_follow_up(&follow_up("missed"), instant(40))
            .expect("claim")
            .expect("claimed");
        tx.follow_up_created(id, "SM1", "queued", instant(41))
            .expect("created");
        let apply = |status: &str, token: &str| {
            tx.apply_message_status(id, "SM1", status, None, Some(token), "{}", instant(42))
                .expect("apply")
        };
        assert!(apply("delivered", "t1"));
        assert!(apply("sent", "t2"), "an older status is kept, not applied");
        assert!(apply("delivered", "t1"), "a repeat");
        let (status, events): (String, i64) = store
            .conn()
            .query_row(
                "SELECT status, (SELECT count(*) FROM message_events) FROM messages WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("row");
        assert_eq!((status.as_str(), events), ("delivered", 2));
        assert!(
            !tx.apply_message_status(id, "SM2", "read", None, None, "{}", instant(43))
                .expect("apply"),
            "another message's SID"
        );
    }

    #[test]
    fn a_callback_completes_the_contact_once_without_counting_a_dial_attempt() {
        let (_dir, store) = store_with_contact();
        let tx = store.tx();
        let call = NewInboundCall {
            call_sid: "CA1",
            from: "+12125550101",
            to: "+15005550006",
            matched: "contact",
            campaign_id: Some(1),
            contact_id: Some(1),
            outcome: "called_back",
            params: "{}",
        };
        let first = tx.record_inbound_call(&call, instant(50)).expect("record");
        assert!(first.is_some());
        assert_eq!(
            tx.record_inbound_call(&call, instant(51)).expect("repeat"),
            first
        );
        let (state, outcome, attempts): (String, String, i64) = store
            .conn()
            .query_row(
                "SELECT state, outcome, attempts FROM contacts WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("contact");
        assert_eq!(
            (state.as_str(), outcome.as_str(), attempts),
            ("completed", "called_back", 1)
        );
        assert!(
            tx.inbound_call_status("CA1", "completed", Some(12), instant(62))
                .expect("status")
        );
        let (status, duration, direction): (String, i64, String) = store
            .conn()
            .query_row(
                "SELECT status, duration_seconds, direction FROM attempts WHERE call_sid = 'CA1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("attempt");
        assert_eq!(
            (status.as_str(), duration, direction.as_str()),
            ("completed", 12, "inbound")
        );
        // not a dial attempt: the daily cap does not count it
        assert!(
            store
                .recent_attempts("+12125550101", instant(40))
                .expect("recent")
                .is_empty()
        );
    }
}
