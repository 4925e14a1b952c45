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
use crate::shared::{Permit, Reservation, Shared};
use crate::store::{AttemptRow, ContactRow, EndedCall, StoreError};
use crate::twilio::{Call, Client, CreateCall, Error as TwilioError, RetryPolicy};

pub use reconcile::{reconcile_one, reconcile_open};

/// How one placement went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The call was created; the attempt waits for its callbacks.
    Created { attempt: i64 },
    /// The carrier refused for now (429 after retries, or no connection): no attempt counted.
    RateLimited,
    /// The account cannot be used (401/403, Twilio 20003/20005): no attempt counted, and all
    /// placing stops (SPEC §10).
    AccountDown { message: String },
    /// The carrier refused the call: the attempt ended `failed` with this code.
    Refused {
        attempt: i64,
        code: Option<u32>,
        message: String,
    },
    /// No usable answer to the create, and the carrier could not be asked whether the call
    /// exists: the attempt stays open until reconciliation settles it.
    Interrupted { attempt: i64 },
    /// The contact was no longer claimable (another attempt, closed, DNC).
    Skipped,
}

/// A steady rate limiter (`per_second` calls a second, no bursts).
/// The share of `dialer.calls_per_second` calls are paced at: the margin absorbs the jitter
/// between sending a create and the carrier receiving it, so no 1-second window at the carrier
/// holds more creates than the limit (SPEC §9), while the rate stays within 1 % of it.
pub const PACED: f64 = 0.99;

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
    /// The carrier account cannot be used: nothing is placed (SPEC §10).
    AccountDown(String),
    /// The circuit breaker is open after repeated server errors: nothing is placed for this
    /// wait.
    CircuitOpen(Duration),
}

/// Places calls through the carrier, recording everything through the writer.
pub struct Dialer {
    pub shared: Shared,
    pub client: Client,
    pub default_from: String,
    pub max_concurrent: u32,
    /// How a create with an unknown outcome (5xx, lost answer) is looked up and retried on the
    /// same attempt: `max_retries` creates more at most, each after a jittered wait (which also
    /// gives the carrier's record time to show the call).
    pub unknown_retry: RetryPolicy,
    /// Paces the offers: one claim per permit.
    global: DefaultDirectRateLimiter,
    /// Paces the creates themselves, at the same rate: claims bunched by a group commit or a
    /// stall still leave one by one, never in a burst.
    sending: DefaultDirectRateLimiter,
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
            unknown_retry: RetryPolicy {
                max_retries: 3,
                base_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(30),
            },
            global: limiter(calls_per_second * PACED),
            sending: limiter(calls_per_second * PACED),
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
        match self.shared.carrier.permit() {
            Permit::Go { .. } => {}
            Permit::AccountDown(reason) => return Gate::AccountDown(reason),
            Permit::CircuitOpen(wait) => return Gate::CircuitOpen(wait),
        }
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

    /// Waits for the account-wide rate (`dialer.calls_per_second`, paced at [`PACED`]).
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
            .write_durable(move |tx| tx.claim_attempt(id, expected, now))
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
        let mut retry = 0;
        loop {
            self.sending.until_ready().await;
            let result = self.client.create_call(&req).await;
            match result {
                Err(e) if e.outcome_unknown() => {
                    // SPEC §10: not a refusal; look the call up before anything else
                    Metrics::inc(&self.shared.metrics.create_unknown);
                    if self.shared.carrier.server_error() {
                        Metrics::inc(&self.shared.metrics.circuit_opened);
                    }
                    tracing::warn!(attempt = attempt.id, error = %e, "create outcome unknown; looking the call up");
                    // at least half the cap: the carrier's record needs a moment to show the call
                    let cap = self.unknown_retry.backoff_cap(retry);
                    tokio::time::sleep(cap / 2 + self.unknown_retry.backoff(retry) / 2).await;
                    match self.lookup(&attempt).await? {
                        Lookup::Found(call) => return self.created(&attempt, *call).await,
                        Lookup::Settled => {
                            return Ok(Placed::Created {
                                attempt: attempt.id,
                            });
                        }
                        Lookup::Unknown(lookup) => {
                            tracing::warn!(attempt = attempt.id, error = %lookup, "cannot look the call up now; the attempt stays open for reconciliation");
                            return Ok(Placed::Interrupted {
                                attempt: attempt.id,
                            });
                        }
                        Lookup::NotCreated if self.shared.carrier.circuit_open() => {
                            // the carrier confirmed no call and is failing: undo the claim,
                            // the contact stays due for when the breaker closes
                            tracing::warn!(
                                attempt = attempt.id,
                                "no call was created and the carrier circuit is open; the contact stays due and no attempt is counted"
                            );
                            self.unclaim(&attempt).await?;
                            return Ok(Placed::RateLimited);
                        }
                        Lookup::NotCreated if retry < self.unknown_retry.max_retries => {
                            retry += 1;
                            tracing::info!(
                                attempt = attempt.id,
                                retry,
                                "the carrier has no such call; creating it again on the same attempt"
                            );
                        }
                        Lookup::NotCreated => return self.refused(campaign, &attempt, e).await,
                    }
                }
                other => return self.after_create(campaign, &attempt, other).await,
            }
        }
    }

    /// Whether the carrier created the call of an attempt whose create had an unknown outcome:
    /// a callback may have bound (or even ended) it already; else the calls to its number
    /// created since the claim (list by `To` and `StartTime`), the first not bound to another
    /// attempt.
    async fn lookup(&self, attempt: &AttemptRow) -> Result<Lookup, StoreError> {
        let id = attempt.id;
        let row = self.shared.db.read(move |db| db.attempt(id)).await?;
        if row.as_ref().is_none_or(|a| a.call_sid.is_some()) {
            return Ok(Lookup::Settled);
        }
        let calls =
            match reconcile::calls_since(&self.client, &attempt.phone, attempt.started_at).await {
                Ok(calls) => calls,
                Err(e) => return Ok(Lookup::Unknown(e)),
            };
        for call in calls {
            let sid = call.sid.clone();
            if !self
                .shared
                .db
                .read(move |db| db.call_sid_bound(&sid))
                .await?
            {
                return Ok(Lookup::Found(Box::new(call)));
            }
        }
        Ok(Lookup::NotCreated)
    }

    /// Stores the SID and status of a created call.
    async fn created(&self, attempt: &AttemptRow, call: Call) -> Result<Placed, StoreError> {
        let shared = &self.shared;
        let id = attempt.id;
        Metrics::inc(&shared.metrics.calls_placed);
        let status = call.status.clone().unwrap_or_else(|| "queued".into());
        let sid = call.sid.clone();
        let bound = shared
            .db
            .write(move |tx| {
                let bound = tx.bind_call_sid(id, &sid)?;
                if bound {
                    tx.set_created_status(id, &status)?;
                }
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

    /// Ends the attempt `failed` with the carrier's error.
    async fn refused(
        &self,
        campaign: &Campaign,
        attempt: &AttemptRow,
        e: TwilioError,
    ) -> Result<Placed, StoreError> {
        let shared = &self.shared;
        let id = attempt.id;
        let rules = campaign.rules.clone();
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

    /// Undoes the claim of a create that certainly created no call: no attempt is counted.
    async fn unclaim(&self, attempt: &AttemptRow) -> Result<(), StoreError> {
        let id = attempt.id;
        self.shared
            .db
            .write(move |tx| tx.unclaim_attempt(id))
            .await?;
        self.shared.in_flight.ended(id);
        Ok(())
    }

    async fn after_create(
        &self,
        campaign: &Campaign,
        attempt: &AttemptRow,
        result: Result<Call, TwilioError>,
    ) -> Result<Placed, StoreError> {
        let shared = &self.shared;
        let id = attempt.id;
        match result {
            Ok(call) => {
                shared.carrier.success();
                self.created(attempt, call).await
            }
            Err(e) if e.account_unusable() => {
                // SPEC §10: stop all placing for the account; the claim is undone
                Metrics::inc(&shared.metrics.dial_errors);
                let message = account_message(&e);
                self.unclaim(attempt).await?;
                shared.carrier.account_down(message.clone());
                Ok(Placed::AccountDown { message })
            }
            Err(e) if e.never_processed() => {
                if e.status().is_some() {
                    shared.carrier.success();
                }
                Metrics::inc(&shared.metrics.rate_limited);
                tracing::warn!(attempt = id, error = %e, "carrier busy; the contact stays due and no attempt is counted");
                self.unclaim(attempt).await?;
                Ok(Placed::RateLimited)
            }
            Err(e @ TwilioError::Api { .. }) => {
                shared.carrier.success();
                self.refused(campaign, attempt, e).await
            }
            Err(e) => {
                Metrics::inc(&shared.metrics.dial_errors);
                tracing::warn!(attempt = id, error = %e, "no usable answer to the create request; reconciling with the carrier");
                let rules = campaign.rules.clone();
                reconcile::reconcile_one(shared, &self.client, attempt.clone(), &rules).await?;
                Ok(Placed::Interrupted { attempt: id })
            }
        }
    }
}

/// What looking up the call of an attempt found.
enum Lookup {
    /// The carrier has this call, bound to no other attempt.
    Found(Box<Call>),
    /// A callback already bound the attempt's call (or ended it).
    Settled,
    /// The carrier answered: no such call.
    NotCreated,
    /// The carrier could not be asked.
    Unknown(TwilioError),
}

/// The one clear line for an account that cannot be used, with the fix.
pub fn account_message(e: &TwilioError) -> String {
    let what = match e.code() {
        Some(crate::twilio::error::ACCOUNT_NOT_ACTIVE) => {
            "the twilio account is not active (suspended or closed); reactivate it in the Twilio console"
        }
        _ => {
            "twilio rejected the account credentials; check `twilio.account_sid` and `twilio.auth_token` (or TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)"
        }
    };
    format!("{what} — {e}; placing stopped and no attempt was counted")
}
