//! The callback server (SPEC §6.2): Twilio's voice, gather and status webhooks, signed and
//! checked, plus `/health` and `/metrics`. `router(state)` is what tests drive with `oneshot`;
//! `serve(listener, state, shutdown)` takes a bound listener so tests can use port 0.

mod bot;
mod calls;
mod inbound;
mod rasa;
mod signed;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;
use crate::store::StoreError;

/// Twilio's webhooks never need more; larger bodies get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Errors answered to Twilio: terse bodies, details in the log.
#[derive(Debug)]
pub enum ApiError {
    NotFound,
    BadRequest(&'static str),
    Forbidden,
    Internal(String),
}

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => {
                (StatusCode::NOT_FOUND, "unknown attempt or call\n").into_response()
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m).into_response(),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "invalid signature\n").into_response(),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "callback failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/twilio/voice", post(calls::voice))
        .route("/twilio/gather", post(calls::gather))
        .route("/twilio/record", post(calls::record))
        .route("/twilio/status", post(calls::status))
        .route("/twilio/inbound", post(inbound::inbound))
        .route("/twilio/inbound/status", post(inbound::inbound_status))
        .route("/twilio/sms", post(inbound::sms))
        .route("/twilio/message-status", post(inbound::message_status))
        .route("/twilio/bot", post(bot::turn))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            in_backlog,
        ))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Counts a carrier callback in [`Shared::callbacks`] while it is answered.
async fn in_backlog(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let _serving = state.callbacks.enter();
    next.run(request).await
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // answers are small: do not hold one back waiting for the peer's acknowledgement
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a callback connection");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// `GET /health`. `200 {"status":"ok"}` when the database answers and the carrier can be used.
/// When the carrier account cannot be used (bad credentials, suspended) or the circuit breaker
/// is open, the process still serves callbacks and records results, so it answers **200**
/// `{"status":"degraded","carrier":"<reason>"}`: a load balancer or orchestrator must keep
/// routing Twilio's callbacks to it and must not restart it (a restart fixes neither), while
/// monitoring alerts on `status != "ok"` or on the `dialer_carrier_up` gauge of `/metrics`.
/// Only a database that does not answer gives 503 `{"status":"error"}`.
async fn health(State(state): State<Shared>) -> Response {
    let ok = state.db.read(|store| store.ping()).await;
    let (code, body) = match ok {
        Ok(()) => {
            let carrier = match state.carrier.account_error() {
                Some(reason) => Some(reason),
                None if state.carrier.circuit_open() => Some(
                    "placing paused: the carrier answered repeated server errors (circuit open)"
                        .to_owned(),
                ),
                None => None,
            };
            let body = match carrier {
                None => serde_json::json!({"status": "ok"}),
                Some(reason) => serde_json::json!({"status": "degraded", "carrier": reason}),
            };
            (StatusCode::OK, body.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"status\":\"error\"}".to_owned(),
            )
        }
    };
    (code, [("content-type", "application/json")], body).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    let now = state.clock.now();
    let in_flight = state.in_flight.clone();
    let carrier = [
        (
            "dialer_carrier_up",
            "1 while the carrier account can be used; 0 after 401/403 (20003/20005) until it answers again.",
            String::new(),
            i64::from(state.carrier.account_error().is_none()),
        ),
        (
            "dialer_carrier_circuit_open",
            "1 while placing is paused by the circuit breaker over carrier server errors.",
            String::new(),
            i64::from(state.carrier.circuit_open()),
        ),
    ];
    let gauges = state
        .db
        .read(move |db| {
            let mut open_calls = Vec::new();
            let mut ready = Vec::new();
            for c in db.campaigns()? {
                let label = format!(
                    "{{campaign=\"{}\"}}",
                    c.name.replace('\\', "\\\\").replace('"', "\\\"")
                );
                open_calls.push((
                    "dialer_open_calls",
                    "Calls in flight (claimed and not yet in a final state).",
                    label.clone(),
                    i64::from(in_flight.of_campaign(c.id)),
                ));
                // an index range count; calling hours, DNC and caps are checked at placement
                ready.push((
                    "dialer_ready_contacts",
                    "Open contacts whose next attempt time has come (before calling-hours checks).",
                    label,
                    db.ready_contacts(c.id, now)?,
                ));
            }
            open_calls.extend(ready);
            Ok::<_, StoreError>(open_calls)
        })
        .await;
    match gauges {
        Ok(mut gauges) => {
            gauges.extend(carrier);
            let body = state.metrics.render(&gauges);
            ([("content-type", "text/plain; version=0.0.4")], body).into_response()
        }
        Err(e) => ApiError::Internal(format!("metrics: {e}")).into_response(),
    }
}

#[cfg(test)]
mod bot_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
