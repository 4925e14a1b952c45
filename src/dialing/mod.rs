//! Placing calls (SPEC §5.2, §5.3, §5.5): claim the attempt (committed first), create the call,
//! store its SID; pacing by `governor` and by calls not yet in a final state; reconciliation of
//! attempts left open by a previous process.

pub mod carrier;
mod reconcile;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::campaign::model::Campaign;
use crate::server::{AppState, Metrics};
use crate::store::{AttemptRow, ContactRow, EndedCall};
use crate::twilio::{Client, CreateCall, Error as TwilioError};

pub use reconcile::{reconcile_one, reconcile_open};

/// How one placement went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The call was created; the attempt waits for its callbacks.
    Created { attempt: i64 },
    /// The carrier refused for now (429/503 after retries): no attempt counted.
    RateLimited,
    /// The carrier refused the call: the attempt ended `failed` with this code.
    Refused {
        attempt: i64,
        code: Option<u32>,
        message: String,
    },
    /// No answer to the create: reconciled against the carrier.
    Interrupted { attempt: i64 },
    /// The contact was no longer claimable (another attempt, closed, DNC).
    Skipped,
}

/// A steady rate limiter (`per_second` calls a second, no bursts).
pub fn limiter(per_second: f64) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

/// Places calls through the carrier, recording everything through the shared store.
pub struct Dialer {
    pub state: AppState,
    pub client: Client,
    pub default_from: String,
    pub max_concurrent: u32,
    global: DefaultDirectRateLimiter,
    per_campaign: std::sync::Mutex<HashMap<i64, Arc<DefaultDirectRateLimiter>>>,
}

impl Dialer {
    pub fn new(
        state: AppState,
        client: Client,
        default_from: String,
        calls_per_second: f64,
        max_concurrent: u32,
    ) -> Self {
        Self {
            state,
            client,
            default_from,
            max_concurrent,
            global: limiter(calls_per_second),
            per_campaign: Default::default(),
        }
    }

    fn campaign_limiter(&self, id: i64, per_minute: u32) -> Arc<DefaultDirectRateLimiter> {
        let mut map = self
            .per_campaign
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(id)
            .or_insert_with(|| Arc::new(limiter(f64::from(per_minute) / 60.0)))
            .clone()
    }

    /// Waits until a call may be placed for this campaign: a free slot (global and per campaign,
    /// counted from attempts not in a final state) and a rate-limit permit.
    pub async fn ready(&self, campaign_id: i64, campaign: &Campaign) {
        loop {
            let state = self.state.clone();
            let cap = campaign.max_concurrent_calls;
            let (all, mine) = tokio::task::spawn_blocking(move || {
                let db = state.db();
                let all = db.count_open_attempts(None).unwrap_or(u32::MAX);
                let mine = if cap.is_some() {
                    db.count_open_attempts(Some(campaign_id))
                        .unwrap_or(u32::MAX)
                } else {
                    0
                };
                (all, mine)
            })
            .await
            .unwrap_or((u32::MAX, u32::MAX));
            if all < self.max_concurrent && cap.is_none_or(|c| mine < c) {
                break;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(250), self.state.call_ended.notified())
                    .await;
        }
        if let Some(cpm) = campaign.calls_per_minute {
            self.campaign_limiter(campaign_id, cpm).until_ready().await;
        }
        self.global.until_ready().await;
    }

    /// Claims and dials one contact. The attempt row is committed before the create request.
    pub async fn place(&self, campaign: &Campaign, contact: &ContactRow) -> Placed {
        let state = self.state.clone();
        let (id, expected) = (contact.id, contact.attempts);
        let claimed = tokio::task::spawn_blocking(move || {
            let now = state.clock.now();
            state.db().claim_attempt(id, expected, now)
        })
        .await;
        let attempt = match claimed {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => return Placed::Skipped,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot claim contact");
                return Placed::Skipped;
            }
            Err(e) => {
                tracing::error!(error = %e, "claim task failed");
                return Placed::Skipped;
            }
        };
        let req = CreateCall {
            to: attempt.phone.clone(),
            from: campaign
                .from
                .clone()
                .unwrap_or_else(|| self.default_from.clone()),
            url: self.state.callback_url("/twilio/voice", attempt.id, None),
            status_callback: self.state.callback_url("/twilio/status", attempt.id, None),
            timeout_secs: campaign.ring_timeout,
            time_limit_secs: campaign.max_call_duration,
            machine_detection: campaign.machine_detection.twilio_value(),
        };
        let result = self.client.create_call(&req).await;
        self.after_create(campaign, &attempt, result).await
    }

    async fn after_create(
        &self,
        campaign: &Campaign,
        attempt: &AttemptRow,
        result: Result<crate::twilio::Call, TwilioError>,
    ) -> Placed {
        let state = self.state.clone();
        let id = attempt.id;
        let rules = campaign.rules.clone();
        match result {
            Ok(call) => {
                Metrics::inc(&self.state.metrics.calls_placed);
                let status = call.status.clone().unwrap_or_else(|| "queued".into());
                let sid = call.sid.clone();
                let bound = tokio::task::spawn_blocking(move || {
                    let db = state.db();
                    let bound = db.bind_call_sid(id, &sid)?;
                    db.set_created_status(id, &status)?;
                    Ok::<_, crate::store::StoreError>(bound)
                })
                .await;
                if !matches!(bound, Ok(Ok(true))) {
                    tracing::error!(attempt = id, sid = %call.sid, "call created but its SID could not be stored: {bound:?}");
                }
                Placed::Created { attempt: id }
            }
            Err(e) if e.is_retryable() => {
                Metrics::inc(&self.state.metrics.rate_limited);
                tracing::warn!(attempt = id, error = %e, "carrier busy; the contact stays due and no attempt is counted");
                let _ = tokio::task::spawn_blocking(move || state.db().unclaim_attempt(id)).await;
                Placed::RateLimited
            }
            Err(e @ TwilioError::Api { .. }) => {
                Metrics::inc(&self.state.metrics.dial_errors);
                let code = e.code();
                let message = e.to_string();
                tracing::warn!(attempt = id, error = %message, "carrier refused the call");
                let msg = message.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = state.clock.now();
                    let end = EndedCall {
                        status: "failed",
                        error_code: code.map(i64::from),
                        error_message: Some(&msg),
                        ..Default::default()
                    };
                    state.db().end_attempt(id, &rules, &end, now)
                })
                .await;
                Placed::Refused {
                    attempt: id,
                    code,
                    message,
                }
            }
            Err(e) => {
                Metrics::inc(&self.state.metrics.dial_errors);
                tracing::warn!(attempt = id, error = %e, "no answer to the create request; reconciling with the carrier");
                reconcile::reconcile_one(&self.state, &self.client, attempt.clone(), &rules).await;
                Placed::Interrupted { attempt: id }
            }
        }
    }
}
