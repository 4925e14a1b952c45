//! The simulator's REST surface: Twilio's Calls create, fetch and list (Basic auth, form bodies,
//! Twilio's JSON and error shapes) and the `GET /simulator/requests` inspection log.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::behavior::{self, CreateFault};
use super::call::{self, CallPlan};
use super::config::is_sid;
use super::params::{self, ParamError};
use super::record::{CallRecord, CallStatus, error_json};
use super::{CreateRequestLog, SimState};

pub fn routes() -> Router<SimState> {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            get(super::list::list).post(create),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            get(fetch).post(update),
        )
        .route("/simulator/requests", get(requests))
}

/// A Twilio error answer.
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
    /// A call created before the error was answered (logged, never shown to the client).
    created_sid: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            created_sid: None,
        }
    }
    pub fn bad(code: u32, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(uri: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {uri} was not found"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = error_json(self.status.as_u16(), self.code, &self.message);
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = header::HeaderValue::from_static("Basic realm=\"Twilio API\"");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// HTTP Basic auth must name the configured account with its token, and so must the path.
pub fn authenticate(
    state: &SimState,
    headers: &HeaderMap,
    path_account: &str,
) -> Result<(), ApiError> {
    let config = &state.shared.config;
    let denied = || ApiError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(denied)?;
    let encoded = value.strip_prefix("Basic ").ok_or_else(denied)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| denied())?;
    let decoded = String::from_utf8(decoded).map_err(|_| denied())?;
    let (user, password) = decoded.split_once(':').ok_or_else(denied)?;
    let token_ok: bool =
        subtle::ConstantTimeEq::ct_eq(password.as_bytes(), config.auth_token.as_bytes()).into();
    if user != config.account_sid || !token_ok || path_account != config.account_sid {
        return Err(denied());
    }
    if state
        .shared
        .suspended
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            20005,
            "Account not active",
        ));
    }
    Ok(())
}

pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn create(
    State(state): State<SimState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = state.shared.clock.now();
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let outcome = create_call(&state, &account, &headers, &params, received_at).await;
    let (status, sid, error_code, delay) = match &outcome {
        Ok((record, delay)) => (StatusCode::CREATED, Some(record.sid.clone()), None, *delay),
        Err(e) => (e.status, e.created_sid.clone(), Some(e.code), None),
    };
    // logged before a held-back answer: the client may hang up before it is sent
    state.shared.log_request(CreateRequestLog {
        received_at: received_at.to_rfc3339(),
        params,
        status: status.as_u16(),
        sid,
        error_code,
        answer_delayed_ms: delay.map(|d| d.as_millis() as u64),
    });
    match outcome {
        Ok((record, delay)) => {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            // the answer shows the call as it was created (the JSON Twilio would have sent)
            (StatusCode::CREATED, Json(record.to_json())).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Creates the call (or refuses); `Some(delay)` when the answer must be held back that long.
async fn create_call(
    state: &SimState,
    account: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<(CallRecord, Option<Duration>), ApiError> {
    let shared = &state.shared;
    let config = &shared.config;
    authenticate(state, headers, account)?;
    let to_raw = param(params, "To").unwrap_or("").to_owned();
    let mut rng = {
        let mut book = shared.book();
        let count = book.per_number.entry(to_raw.clone()).or_insert(0);
        let rng = behavior::call_rng(config.seed, &to_raw, *count);
        *count += 1;
        rng
    };
    let fault = behavior::draw_fault(config, &mut rng);
    match fault {
        CreateFault::TooManyRequests => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                20429,
                "Too Many Requests",
            ));
        }
        CreateFault::ServerError => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "Internal Server Error",
            ));
        }
        CreateFault::Slow => tokio::time::sleep(Duration::from_millis(config.faults.slow_ms)).await,
        CreateFault::SlowAnswer | CreateFault::ServerErrorAfterCreate | CreateFault::None => {}
    }
    let plan_params = params::parse_create(params)?;
    let behavior = behavior::choose(config, &plan_params.to, &mut rng);
    let sid = new_sid("CA");
    let hangup = tokio_util::sync::CancellationToken::new();
    let record = CallRecord {
        sid: sid.clone(),
        account_sid: config.account_sid.clone(),
        to: plan_params.to.clone(),
        from: plan_params.from.clone(),
        status: CallStatus::Queued,
        date_created: now,
        date_updated: now,
        start_time: None,
        end_time: None,
        duration: None,
        answered_by: None,
        dropped_callbacks: 0,
        duplicated_callbacks: 0,
        reordered_callbacks: 0,
        slow_answer: fault == CreateFault::SlowAnswer,
    };
    {
        shared
            .book()
            .add(record.clone(), hangup.clone(), config.history);
    }
    let plan = CallPlan {
        sid,
        params: plan_params,
        behavior,
        rng,
        hangup,
    };
    tokio::spawn(call::run(shared.clone(), plan));
    if fault == CreateFault::ServerErrorAfterCreate {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        );
        e.created_sid = Some(record.sid);
        return Err(e);
    }
    let delay = (fault == CreateFault::SlowAnswer)
        .then(|| Duration::from_millis(config.faults.slow_create_ms));
    Ok((record, delay))
}

/// Rejections of create parameters, mapped to Twilio's codes.
impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        ApiError::bad(e.code, e.message)
    }
}

/// A fresh random SID (`CA…`, `RE…`): unique across runs, unlike the seeded outcomes.
pub fn new_sid(prefix: &str) -> String {
    let value: u128 = rand::random();
    format!("{prefix}{value:032x}")
}

async fn fetch(
    State(state): State<SimState>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &account)?;
    let uri = format!("/2010-04-01/Accounts/{account}/Calls/{call}");
    let sid = call
        .strip_suffix(".json")
        .filter(|s| is_sid(s, "CA"))
        .ok_or_else(|| ApiError::not_found(&uri))?;
    state
        .call_json(sid)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(&uri))
}

/// `POST /Calls/{Sid}.json` with `Status`: `canceled` hangs up a queued or ringing call,
/// `completed` any call not yet ended. Other updates (`Url`, `Twiml`) are not simulated.
async fn update(
    State(state): State<SimState>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &account)?;
    let uri = format!("/2010-04-01/Accounts/{account}/Calls/{call}");
    let sid = call
        .strip_suffix(".json")
        .filter(|s| is_sid(s, "CA"))
        .ok_or_else(|| ApiError::not_found(&uri))?;
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let wanted = param(&params, "Status");
    let hangup = {
        let book = state.shared.book();
        let record = book.get(sid).ok_or_else(|| ApiError::not_found(&uri))?;
        let live = matches!(record.status, CallStatus::Queued | CallStatus::Ringing);
        match wanted {
            Some("canceled") if live => book.hangups.get(sid).cloned(),
            Some("completed") if live || record.status == CallStatus::InProgress => {
                book.hangups.get(sid).cloned()
            }
            Some("canceled" | "completed") => None,
            Some(other) => {
                return Err(ApiError::bad(
                    20001,
                    format!("Invalid Status: {other}, expected canceled or completed"),
                ));
            }
            None => {
                return Err(ApiError::bad(
                    20001,
                    "Only Status updates are simulated; pass Status",
                ));
            }
        }
    };
    if let Some(hangup) = hangup {
        hangup.cancel();
        // The call task records the end almost at once; answer with the ended call.
        for _ in 0..200 {
            let ended = state.call_json(sid).is_some_and(|c| {
                !matches!(
                    c["status"].as_str(),
                    Some("queued" | "ringing" | "in-progress")
                )
            });
            if ended {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    state
        .call_json(sid)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(&uri))
}

async fn requests(State(state): State<SimState>) -> Json<Vec<CreateRequestLog>> {
    Json(state.requests())
}
