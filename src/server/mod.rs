//! The callback server (SPEC §6.2): Twilio's voice, gather and status webhooks, signed and
//! checked, plus `/health` and `/metrics`. `router(state)` is what tests drive with `oneshot`;
//! `serve(listener, state, shutdown)` takes a bound listener so tests can use port 0.

mod calls;
pub mod metrics;
mod signed;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono_tz::Tz;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::campaign::json::{self, Defaults};
use crate::campaign::model::Campaign;
use crate::clock::Clock;
use crate::config::Secret;
use crate::store::Store;

pub use metrics::Metrics;

/// Twilio's webhooks never need more; larger bodies get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Mutex<Store>>,
    /// The base URL Twilio reaches us on (no trailing slash); signatures are checked against it.
    pub public_url: Arc<str>,
    pub auth_token: Secret,
    pub default_timezone: Tz,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Woken whenever an attempt reaches a final state.
    pub call_ended: Arc<Notify>,
    campaigns: Arc<Mutex<HashMap<i64, Arc<Campaign>>>>,
}

impl AppState {
    pub fn new(
        store: Arc<Mutex<Store>>,
        public_url: &Url,
        auth_token: Secret,
        default_timezone: Tz,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db: store,
            public_url: public_url.as_str().trim_end_matches('/').into(),
            auth_token,
            default_timezone,
            clock,
            metrics: Arc::default(),
            call_ended: Arc::default(),
            campaigns: Arc::default(),
        }
    }

    pub fn db(&self) -> MutexGuard<'_, Store> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A campaign by id, parsed once and cached (the cache is dropped by [`AppState::forget_campaigns`]).
    pub fn campaign(&self, store: &Store, id: i64) -> Result<Arc<Campaign>, ApiError> {
        let mut cache = self
            .campaigns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.get(&id) {
            return Ok(c.clone());
        }
        let row = store
            .campaign_by_id(id)
            .map_err(ApiError::internal)?
            .ok_or(ApiError::NotFound)?;
        let parsed = json::parse(
            &row.config,
            Defaults {
                timezone: self.default_timezone,
            },
        )
        .map_err(|e| ApiError::Internal(format!("stored campaign `{}`: {e}", row.name)))?;
        let c = Arc::new(parsed.campaign);
        cache.insert(id, c.clone());
        Ok(c)
    }

    pub fn forget_campaigns(&self) {
        self.campaigns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// `{public_url}{path}?attempt=ID[&step=STEP]`, query-encoded.
    pub fn callback_url(&self, path: &str, attempt: i64, step: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("attempt", &attempt.to_string());
        if let Some(s) = step {
            q.append_pair("step", s);
        }
        format!("{}{path}?{}", self.public_url, q.finish())
    }
}

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

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/twilio/voice", post(calls::voice))
        .route("/twilio/gather", post(calls::gather))
        .route("/twilio/record", post(calls::record))
        .route("/twilio/status", post(calls::status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn health(State(state): State<AppState>) -> Response {
    let ok = tokio::task::spawn_blocking(move || {
        state
            .db()
            .conn()
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    if ok {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"status\":\"ok\"}",
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/json")],
            "{\"status\":\"error\"}",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let s = state.clone();
    let gauges = tokio::task::spawn_blocking(move || {
        let now = crate::store::secs(s.clock.now());
        let db = s.db();
        let (mut open_calls, mut ready) = (Vec::new(), Vec::new());
        if let Ok(campaigns) = db.campaigns() {
            for c in campaigns {
                let open = db.count_open_attempts(Some(c.id)).unwrap_or(0);
                // open contacts whose retry time has come (an index range count; calling hours,
                // DNC and caps are checked when they are placed)
                let waiting: i64 = db
                    .conn()
                    .query_row(
                        "SELECT count(*) FROM contacts WHERE campaign_id = ?1 AND state = 'open' AND next_attempt_at <= ?2",
                        rusqlite::params![c.id, now],
                        |r| r.get(0),
                    )
                    .unwrap_or(0);
                let label = format!("{{campaign=\"{}\"}}", c.name.replace('\\', "\\\\").replace('"', "\\\""));
                open_calls.push(("dialer_open_calls", "Attempts not yet in a final state.", label.clone(), i64::from(open)));
                ready.push((
                    "dialer_ready_contacts",
                    "Open contacts whose next attempt time has come (before calling-hours checks).",
                    label,
                    waiting,
                ));
            }
        }
        open_calls.extend(ready);
        open_calls
    })
    .await
    .unwrap_or_default();
    let body = state.metrics.render(&gauges);
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

#[cfg(test)]
mod tests;
