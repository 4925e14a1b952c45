//! Placing calls (SPEC §5.2, §5.3, §5.5): claim the attempt (committed first), create the call,
//! store its SID; pacing by `governor` and by calls not yet in a final state; reconciliation of
//! attempts left open by a previous process.

pub mod carrier;
mod reconcile;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::campaign::model::Campaign;
use crate::metrics::Metrics;
use crate::shared::{Reservation, Shared};
use crate::store::{AttemptRow, ContactRow, EndedCall, StoreError};
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

/// Whether a call of a campaign may be placed now.
#[derive(Debug)]
pub enum Gate {
    /// Yes: a slot is reserved and the campaign's rate allowed it.
    Go(Reservation),
    /// Every slot of the account is taken (`dialer.max_concurrent_calls`): wait for one to free.
    Full,
    /// The campaign's own caps hold it (its concurrency, or its per-minute rate until the given
    /// wait has passed); other campaigns go on.
    Held(Option<Duration>),
}

/// Places calls through the carrier, recording everything through the writer.
pub struct Dialer {
    pub shared: Shared,
    pub client: Client,
    pub default_from: String,
    pub max_concurrent: u32,
    global: DefaultDirectRateLimiter,
    per_campaign: Mutex<HashMap<i64, Arc<DefaultDirectRateLimiter>>>,
}

impl Dialer {
    pub fn new(
        shared: Shared,
        client: Client,
        default_from: String,
        calls_per_second: f64,
        max_concurrent: u32,
    ) -> Self {
        Self {
            shared,
            client,
            default_from,
            max_concurrent,
            global: limiter(calls_per_second),
            per_campaign: Mutex::default(),
        }
    }

    fn campaign_limiter(&self, id: i64, per_minute: u32) -> Arc<DefaultDirectRateLimiter> {
        self.per_campaign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_insert_with(|| Arc::new(limiter(f64::from(per_minute) / 60.0)))
            .clone()
    }

    /// Takes a slot for a call of this campaign, without waiting: the global and the campaign's
    /// concurrency (counted from claims, in memory) and the campaign's rate.
    pub fn gate(&self, campaign_id: i64, campaign: &Campaign) -> Gate {
        let flight = &self.shared.in_flight;
        let Some(slot) = flight.try_reserve(
            campaign_id,
            self.max_concurrent,
            campaign.max_concurrent_calls,
        ) else {
            return if flight.total() >= self.max_concurrent {
                Gate::Full
            } else {
                Gate::Held(None)
            };
        };
        if let Some(cpm) = campaign.calls_per_minute
            && let Err(not_until) = self.campaign_limiter(campaign_id, cpm).check()
        {
            return Gate::Held(Some(
                not_until.wait_time_from(DefaultClock::default().now()),
            ));
        }
        Gate::Go(slot)
    }

    /// Waits for the account-wide rate (`dialer.calls_per_second`).
    pub async fn global_permit(&self) {
        self.global.until_ready().await;
    }

    /// Claims and dials one contact with the slot `gate` gave. The attempt row is committed
    /// before the create request. A store failure is an error, never a skipped contact.
    pub async fn place(
        &self,
        campaign: &Campaign,
        contact: &ContactRow,
        slot: Reservation,
    ) -> Result<Placed, StoreError> {
        let (id, expected) = (contact.id, contact.attempts);
        let now = self.shared.clock.now();
        let claimed = self
            .shared
            .db
            .write(move |tx| tx.claim_attempt(id, expected, now))
            .await?;
        let Some(attempt) = claimed else {
            return Ok(Placed::Skipped);
        };
        slot.bind(attempt.id);
        let req = CreateCall {
            to: attempt.phone.clone(),
            from: campaign
                .from
                .clone()
                .unwrap_or_else(|| self.default_from.clone()),
            url: self.shared.callback_url("/twilio/voice", attempt.id, None),
            status_callback: self.shared.callback_url("/twilio/status", attempt.id, None),
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
    ) -> Result<Placed, StoreError> {
        let shared = &self.shared;
        let id = attempt.id;
        let rules = campaign.rules.clone();
        match result {
            Ok(call) => {
                Metrics::inc(&shared.metrics.calls_placed);
                let status = call.status.clone().unwrap_or_else(|| "queued".into());
                let sid = call.sid.clone();
                let bound = shared
                    .db
                    .write(move |tx| {
                        let bound = tx.bind_call_sid(id, &sid)?;
                        tx.set_created_status(id, &status)?;
                        Ok::<_, StoreError>(bound)
                    })
                    .await;
                match bound {
                    Ok(true) => {}
                    // a callback bound another SID first: the callbacks settle the attempt
                    Ok(false) => {
                        tracing::error!(attempt = id, sid = %call.sid, "call created but the attempt is bound to another call")
                    }
                    // the call exists; reconciliation finds it by number and time
                    Err(e) => {
                        tracing::error!(attempt = id, sid = %call.sid, error = %e, "call created but its SID could not be stored")
                    }
                }
                Ok(Placed::Created { attempt: id })
            }
            Err(e) if e.is_retryable() => {
                Metrics::inc(&shared.metrics.rate_limited);
                tracing::warn!(attempt = id, error = %e, "carrier busy; the contact stays due and no attempt is counted");
                shared.db.write(move |tx| tx.unclaim_attempt(id)).await?;
                shared.in_flight.ended(id);
                Ok(Placed::RateLimited)
            }
            Err(e @ TwilioError::Api { .. }) => {
                Metrics::inc(&shared.metrics.dial_errors);
                let code = e.code();
                let message = e.to_string();
                tracing::warn!(attempt = id, error = %message, "carrier refused the call");
                let msg = message.clone();
                let now = shared.clock.now();
                shared
                    .db
                    .write(move |tx| {
                        let end = EndedCall {
                            status: "failed",
                            error_code: code.map(i64::from),
                            error_message: Some(&msg),
                            ..Default::default()
                        };
                        tx.end_attempt(id, &rules, &end, now)
                    })
                    .await?;
                shared.in_flight.ended(id);
                Ok(Placed::Refused {
                    attempt: id,
                    code,
                    message,
                })
            }
            Err(e) => {
                Metrics::inc(&shared.metrics.dial_errors);
                tracing::warn!(attempt = id, error = %e, "no answer to the create request; reconciling with the carrier");
                reconcile::reconcile_one(shared, &self.client, attempt.clone(), &rules).await?;
                Ok(Placed::Interrupted { attempt: id })
            }
        }
    }
}
