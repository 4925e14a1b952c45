//! Follow-up messages (SPEC §12), sent by the engine both `run batch` and `run daemon` use. A
//! follow-up is pending once an attempt of its contact ended with the rule's reason or outcome
//! (and, for `exhausted` rules, left the contact exhausted) and no message of the rule exists
//! for the contact. It is sent only inside the contact's calling hours (the same window code as
//! calls), never to a number on the DNC list, and at most once per rule and contact: the message
//! row is claimed — a unique key on (contact, rule), committed durably — before the Messages
//! create is sent, like a call's attempt row.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Session;
use crate::campaign::follow_up::{FollowUp, Trigger};
use crate::campaign::template;
use crate::decision::Loaded;
use crate::schedule::{in_window, next_window_start};
use crate::store::{FollowUpCandidate, FollowUpQuery, NewFollowUp, Store, StoreError};
use crate::twilio::CreateMessage;

/// Contacts looked at per rule and round.
const BATCH: usize = 256;

/// A follow-up waiting to be sent.
#[derive(Debug, Clone)]
pub struct Pending {
    pub campaign_id: i64,
    /// The index of the rule in the campaign's `follow_up`.
    pub rule: usize,
    pub candidate: FollowUpCandidate,
    /// When it may go: `at` itself inside calling hours, else the next window's start (`None`:
    /// no window within the horizon).
    pub sends_at: Option<DateTime<Utc>>,
}

/// What one round of sending did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUpRound {
    pub sent: u32,
    /// Refused by the carrier (e.g. 21610: the number texted STOP to the carrier), or an
    /// unknown outcome: never sent again.
    pub failed: u32,
    /// The earliest instant a follow-up still pending may be sent.
    pub next_at: Option<DateTime<Utc>>,
    /// The messages created this round.
    pub created: Vec<i64>,
}

/// The follow-ups of a campaign pending at `at` (up to `limit` per rule), with when each may be
/// sent. Paused and draft campaigns send nothing.
pub fn pending_follow_ups(
    store: &Store,
    loaded: &Loaded,
    at: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Pending>, StoreError> {
    let mut out = Vec::new();
    if !loaded.active() {
        return Ok(out);
    }
    let campaign = &loaded.campaign;
    for (i, rule) in campaign.messaging.follow_ups.iter().enumerate() {
        let (reason, outcome) = match &rule.trigger {
            Trigger::Reason(r) => (Some(r.as_str()), None),
            Trigger::Outcome(o) => (None, Some(o.as_str())),
        };
        let query = FollowUpQuery {
            campaign_id: loaded.id(),
            rule: &rule.name,
            reason,
            outcome,
            exhausted: rule.exhausted,
        };
        for candidate in store.follow_up_candidates(&query, limit)? {
            let zones = zones(candidate.zones.as_deref());
            let sends_at = if in_window(&campaign.rules, &zones, at) {
                Some(at)
            } else {
                next_window_start(&campaign.rules, &zones, at)
            };
            out.push(Pending {
                campaign_id: loaded.id(),
                rule: i,
                candidate,
                sends_at,
            });
        }
    }
    Ok(out)
}

/// A contact's stored zones (`|`-separated); empty means the campaign's zone.
fn zones(stored: Option<&str>) -> Vec<Tz> {
    stored
        .unwrap_or("")
        .split('|')
        .filter_map(|z| z.parse::<Tz>().ok())
        .collect()
}

/// `{{field}}` values of a contact: its CSV fields plus `name`, `id` and `phone`.
fn fields(c: &FollowUpCandidate) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> =
        serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&c.fields)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let text = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                (k, text)
            })
            .collect();
    f.insert("phone".into(), c.phone.clone());
    if let Some(n) = &c.name {
        f.insert("name".into(), n.clone());
    }
    if let Some(i) = &c.ext_id {
        f.insert("id".into(), i.clone());
    }
    f
}

impl Session {
    /// Sends every follow-up of `campaigns` that is pending and inside its contact's calling
    /// hours at `now`; says when the next one still pending may go.
    pub async fn send_follow_ups(
        &self,
        campaigns: &[Arc<Loaded>],
        now: DateTime<Utc>,
    ) -> Result<FollowUpRound, StoreError> {
        let mut round = FollowUpRound::default();
        for loaded in campaigns {
            if loaded.campaign.messaging.follow_ups.is_empty() {
                continue;
            }
            let l = loaded.clone();
            let pending = self
                .shared
                .db
                .read(move |store| pending_follow_ups(store, &l, now, BATCH))
                .await?;
            for p in pending {
                match p.sends_at {
                    Some(t) if t <= now => {
                        let rule = &loaded.campaign.messaging.follow_ups[p.rule];
                        match self.send_one(loaded, rule, &p.candidate, now).await? {
                            Some(Ok(id)) => {
                                round.sent += 1;
                                round.created.push(id);
                            }
                            Some(Err(())) => round.failed += 1,
                            None => {}
                        }
                    }
                    Some(t) => round.next_at = Some(round.next_at.map_or(t, |n| n.min(t))),
                    None => {}
                }
            }
        }
        Ok(round)
    }

    /// Waits (at most `limit`) until the carrier has reported the messages `ids` sent or
    /// final — their status callbacks arrive while the server still runs; returns how many
    /// are still on their way.
    pub async fn wait_for_messages(
        &self,
        ids: &[i64],
        limit: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ids = ids.to_vec();
            let waiting = self
                .shared
                .db
                .read(move |store| store.messages_on_their_way(&ids))
                .await?;
            if waiting == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(waiting);
            }
            // the status callbacks are written by the server's handlers: look again shortly
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Claims and sends one follow-up. `Some(Ok(message))` sent, `Some(Err(()))` refused (or
    /// outcome unknown), `None` not claimable (sent already, DNC) or not processed (it stays
    /// pending).
    async fn send_one(
        &self,
        loaded: &Loaded,
        rule: &FollowUp,
        c: &FollowUpCandidate,
        now: DateTime<Utc>,
    ) -> Result<Option<Result<i64, ()>>, StoreError> {
        let number = rule
            .from
            .clone()
            .or_else(|| loaded.campaign.from.clone())
            .unwrap_or_else(|| self.dialer.default_from.clone());
        let from = rule.channel.address(&number);
        let to = rule.channel.address(&c.phone);
        let body = template::render(&rule.body, &fields(c));
        let claim = NewFollowUp {
            campaign_id: loaded.id(),
            contact_id: c.contact_id,
            rule: rule.name.clone(),
            attempt_id: c.attempt_id,
            channel: rule.channel.as_str(),
            from: from.clone(),
            to: to.clone(),
            body: body.clone(),
        };
        let claimed = self
            .shared
            .db
            .write_durable(move |tx| tx.claim_follow_up(&claim, now))
            .await?;
        let Some(id) = claimed else {
            return Ok(None);
        };
        let request = CreateMessage {
            to,
            from,
            body,
            status_callback: format!(
                "{}/twilio/message-status?message={id}",
                self.shared.public_url
            ),
        };
        let result = self.dialer.client.create_message(&request).await;
        let at = self.now();
        match result {
            Ok(m) => {
                let status = m.status.unwrap_or_else(|| "queued".to_owned());
                tracing::info!(campaign = %loaded.name(), rule = %rule.name, message = id, "follow-up sent");
                self.shared
                    .db
                    .write(move |tx| tx.follow_up_created(id, &m.sid, &status, at))
                    .await?;
                Ok(Some(Ok(id)))
            }
            Err(e) if e.never_processed() || e.account_unusable() => {
                tracing::warn!(error = %e, message = id, "follow-up not sent now; it stays pending");
                self.shared
                    .db
                    .write(move |tx| tx.unclaim_follow_up(id))
                    .await?;
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, message = id, "follow-up refused by the carrier");
                let (code, text) = (e.code(), e.to_string());
                self.shared
                    .db
                    .write(move |tx| tx.follow_up_failed(id, code, &text, at))
                    .await?;
                Ok(Some(Err(())))
            }
        }
    }
}
