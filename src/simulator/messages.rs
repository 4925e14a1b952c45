//! The simulator's Messages resource and inbound traffic (SPEC §12): `POST /Messages.json`
//! (SMS, or WhatsApp with `whatsapp:` on both addresses) with Twilio's error codes — 21211 for
//! an invalid `To`, 21610 for a number that sent STOP — fetch and list, signed status callbacks
//! (`sent`, then `delivered`); and `POST /simulator/inbound-call` / `/simulator/inbound-sms`,
//! which ring or text the product's webhooks like a person calling or texting its number.
//! Like Twilio, the simulator keeps its own opt-out list: a STOP-type keyword texted through
//! `/simulator/inbound-sms` blocks messages to that number until START/UNSTOP.

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{ApiError, authenticate, new_sid, param};
use super::call::{self, CallPlan};
use super::config::{is_e164, is_sid};
use super::record::{CallRecord, CallStatus, rfc2822};
use super::{SimState, behavior, params, play};
use crate::campaign::follow_up::keyword;

/// Twilio's longest body.
const MAX_BODY: usize = 1600;

/// One message as the simulator knows it (`GET /simulator/messages` lists them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimMessage {
    pub sid: String,
    /// `outbound-api` (created through the API) or `inbound` (sent by `/simulator/inbound-sms`).
    pub direction: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status: String,
    pub status_callback: Option<String>,
    #[serde(skip)]
    pub date_created: DateTime<Utc>,
    #[serde(skip)]
    pub date_updated: DateTime<Utc>,
}

/// Messages and the carrier's own opt-out list.
#[derive(Default)]
pub struct MessageBook {
    messages: Vec<SimMessage>,
    /// Numbers (E.164, without `whatsapp:`) that texted a STOP-type keyword.
    opted_out: HashSet<String>,
}

impl MessageBook {
    /// Records a message, dropping the oldest beyond `history` (`simulator.history`, like calls).
    fn add(&mut self, message: SimMessage, history: usize) {
        if self.messages.len() >= history.max(1) {
            let excess = self.messages.len() + 1 - history.max(1);
            self.messages.drain(..excess);
        }
        self.messages.push(message);
    }
}

impl SimMessage {
    fn to_json(&self, account: &str) -> Value {
        let segments = self.body.chars().count().div_ceil(160).max(1);
        json!({
            "sid": self.sid,
            "account_sid": account,
            "to": self.to,
            "from": self.from,
            "body": self.body,
            "status": self.status,
            "direction": self.direction,
            "num_segments": segments.to_string(),
            "num_media": "0",
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "date_sent": null,
            "error_code": null,
            "error_message": null,
            "price": null,
            "price_unit": "USD",
            "api_version": "2010-04-01",
            "messaging_service_sid": null,
            "uri": format!("/2010-04-01/Accounts/{account}/Messages/{}.json", self.sid),
        })
    }
}

pub fn routes() -> Router<SimState> {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            get(list).post(create),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Messages/{message}",
            get(fetch),
        )
        .route("/simulator/messages", get(log))
        .route("/simulator/inbound-sms", post(inbound_sms))
        .route("/simulator/inbound-call", post(inbound_call))
}

impl SimState {
    /// Every message, oldest first.
    pub fn messages(&self) -> Vec<SimMessage> {
        self.shared.messages().messages.clone()
    }

    fn set_message_status(&self, sid: &str, status: &str) {
        let now = self.shared.clock.now();
        let mut book = self.shared.messages();
        if let Some(m) = book.messages.iter_mut().find(|m| m.sid == sid) {
            m.status = status.to_owned();
            m.date_updated = now;
        }
    }
}

/// The number behind an address, and whether it is a WhatsApp one.
fn split_address(address: &str) -> (&str, bool) {
    match address.strip_prefix("whatsapp:") {
        Some(n) => (n, true),
        None => (address, false),
    }
}

async fn create(
    State(state): State<SimState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    match create_message(&state, &account, &headers, &params) {
        Ok(m) => {
            let json = m.to_json(&account);
            tokio::spawn(deliver(state.clone(), m));
            (StatusCode::CREATED, Json(json)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn create_message(
    state: &SimState,
    account: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<SimMessage, ApiError> {
    authenticate(state, headers, account)?;
    let get = |k: &str| param(params, k).map(str::trim).filter(|v| !v.is_empty());
    let to = get("To").ok_or_else(|| ApiError::bad(21604, "A 'To' phone number is required."))?;
    let from =
        get("From").ok_or_else(|| ApiError::bad(21603, "A 'From' phone number is required."))?;
    let body = param(params, "Body").unwrap_or_default();
    if body.trim().is_empty() {
        return Err(ApiError::bad(21602, "Message body is required."));
    }
    if body.chars().count() > MAX_BODY {
        return Err(ApiError::bad(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    let (to_number, to_whatsapp) = split_address(to);
    let (from_number, from_whatsapp) = split_address(from);
    if !is_e164(to_number) {
        return Err(ApiError::bad(
            21211,
            format!("Invalid 'To' Phone Number: {to}"),
        ));
    }
    if !is_e164(from_number) {
        return Err(ApiError::bad(21212, format!("Invalid From Number: {from}")));
    }
    if to_whatsapp != from_whatsapp {
        return Err(ApiError::bad(
            63007,
            format!("Twilio could not find a Channel with the specified From address: {from}"),
        ));
    }
    let status_callback = get("StatusCallback").map(str::to_owned);
    if status_callback
        .as_deref()
        .is_some_and(|u| url::Url::parse(u).is_err())
    {
        return Err(ApiError::bad(21609, "Invalid StatusCallback URL"));
    }
    let mut book = state.shared.messages();
    if book.opted_out.contains(to_number) {
        return Err(ApiError::bad(
            21610,
            "Attempt to send to unsubscribed recipient",
        ));
    }
    let now = state.shared.clock.now();
    let m = SimMessage {
        sid: new_sid("SM"),
        direction: "outbound-api".to_owned(),
        to: to.to_owned(),
        from: from.to_owned(),
        body: body.to_owned(),
        status: "queued".to_owned(),
        status_callback,
        date_created: now,
        date_updated: now,
    };
    book.add(m.clone(), state.shared.config.history);
    Ok(m)
}

/// Moves a created message to `sent`, then `delivered`, with a signed status callback for each
/// (none for the initial `queued`, like Twilio without a Messaging Service).
async fn deliver(state: SimState, m: SimMessage) {
    let stop = state.shared.stop.clone();
    let scale = state.shared.config.time_scale;
    for status in ["sent", "delivered"] {
        let wait = Duration::from_secs_f64((1.0 * scale).max(0.0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        state.set_message_status(&m.sid, status);
        let Some(url) = &m.status_callback else {
            continue;
        };
        let params: Vec<(String, String)> = [
            ("MessageSid", m.sid.as_str()),
            ("SmsSid", m.sid.as_str()),
            ("AccountSid", state.shared.config.account_sid.as_str()),
            ("From", m.from.as_str()),
            ("To", m.to.as_str()),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Err(e) = play::send(&state.shared, url, "POST", &params).await {
            tracing::debug!(url = %url, error = %e, "simulator: message status callback not delivered");
        }
    }
}

async fn fetch(
    State(state): State<SimState>,
    Path((account, message)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &account)?;
    let uri = format!("/2010-04-01/Accounts/{account}/Messages/{message}");
    let not_found = || ApiError::not_found(&uri);
    let sid = message
        .strip_suffix(".json")
        .filter(|s| is_sid(s, "SM"))
        .ok_or_else(not_found)?;
    let book = state.shared.messages();
    book.messages
        .iter()
        .find(|m| m.sid == sid)
        .map(|m| Json(m.to_json(&account)))
        .ok_or_else(not_found)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(rename = "To")]
    to: Option<String>,
    #[serde(rename = "From")]
    from: Option<String>,
}

async fn list(
    State(state): State<SimState>,
    Path(account): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &account)?;
    let book = state.shared.messages();
    let messages: Vec<Value> = book
        .messages
        .iter()
        .rev()
        .filter(|m| q.to.as_deref().is_none_or(|t| m.to == t))
        .filter(|m| q.from.as_deref().is_none_or(|f| m.from == f))
        .map(|m| m.to_json(&account))
        .collect();
    Ok(Json(json!({
        "messages": messages,
        "next_page_uri": null,
        "page": 0,
        "page_size": messages.len(),
    })))
}

async fn log(State(state): State<SimState>) -> Json<Vec<SimMessage>> {
    Json(state.messages())
}

/// `POST /simulator/inbound-sms`: someone texts `to`.
#[derive(Debug, Deserialize)]
pub struct InboundSms {
    /// The sender: `+E164`, or `whatsapp:+E164`.
    pub from: String,
    /// The product's number (`whatsapp:` for WhatsApp).
    pub to: String,
    pub body: String,
    /// The number's messaging webhook, e.g. `http://127.0.0.1:8080/twilio/sms`.
    pub url: String,
}

/// `POST /simulator/inbound-call`: someone calls `to`.
#[derive(Debug, Deserialize)]
pub struct InboundCall {
    pub from: String,
    pub to: String,
    /// The number's voice webhook, e.g. `http://127.0.0.1:8080/twilio/inbound`.
    pub url: String,
    /// The number's status callback, if configured.
    pub status_callback: Option<String>,
}

/// What the product answered an inbound request with.
#[derive(Debug, Serialize, Deserialize)]
pub struct InboundAnswer {
    pub sid: String,
    /// The webhook's HTTP status (inbound SMS), 0 when it could not be reached.
    pub status: u16,
    /// The webhook's answer body (inbound SMS).
    pub reply: String,
}

async fn inbound_sms(
    State(state): State<SimState>,
    Json(sms): Json<InboundSms>,
) -> Result<Json<InboundAnswer>, ApiError> {
    let (from_number, from_whatsapp) = split_address(sms.from.trim());
    let (to_number, to_whatsapp) = split_address(sms.to.trim());
    if !is_e164(from_number) || !is_e164(to_number) || from_whatsapp != to_whatsapp {
        return Err(ApiError::bad(
            21211,
            "`from` and `to` must be E.164 numbers, both with or both without `whatsapp:`",
        ));
    }
    // the carrier's own opt-out list, as Twilio keeps it for long codes
    {
        let mut book = state.shared.messages();
        match keyword(&sms.body, []) {
            Some(true) => {
                book.opted_out.insert(from_number.to_owned());
            }
            Some(false) => {
                book.opted_out.remove(from_number);
            }
            None => {}
        }
        let now = state.shared.clock.now();
        book.add(
            SimMessage {
                sid: new_sid("SM"),
                direction: "inbound".to_owned(),
                to: sms.to.clone(),
                from: sms.from.clone(),
                body: sms.body.clone(),
                status: "received".to_owned(),
                status_callback: None,
                date_created: now,
                date_updated: now,
            },
            state.shared.config.history,
        );
    }
    let sid = state
        .shared
        .messages()
        .messages
        .last()
        .map(|m| m.sid.clone())
        .unwrap_or_default();
    let mut params: Vec<(String, String)> = [
        ("MessageSid", sid.as_str()),
        ("SmsSid", sid.as_str()),
        ("SmsMessageSid", sid.as_str()),
        ("AccountSid", state.shared.config.account_sid.as_str()),
        ("From", sms.from.trim()),
        ("To", sms.to.trim()),
        ("Body", sms.body.as_str()),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if from_whatsapp {
        params.push((
            "WaId".to_owned(),
            from_number.trim_start_matches('+').to_owned(),
        ));
        params.push(("ProfileName".to_owned(), "Simulated".to_owned()));
    }
    let (status, reply) = match play::send(&state.shared, &sms.url, "POST", &params).await {
        Ok(r) => (r.status.as_u16(), r.body),
        Err(e) => (0, e),
    };
    Ok(Json(InboundAnswer { sid, status, reply }))
}

async fn inbound_call(
    State(state): State<SimState>,
    Json(c): Json<InboundCall>,
) -> Result<Json<InboundAnswer>, ApiError> {
    let mut form = vec![
        ("To".to_owned(), c.to.trim().to_owned()),
        ("From".to_owned(), c.from.trim().to_owned()),
        ("Url".to_owned(), c.url.clone()),
    ];
    if let Some(s) = &c.status_callback {
        form.push(("StatusCallback".to_owned(), s.clone()));
    }
    let p = params::parse_create(&form)?;
    let shared = &state.shared;
    let mut rng = {
        let mut book = shared.book();
        let count = book.per_number.entry(p.from.clone()).or_insert(0);
        let rng = behavior::call_rng(shared.config.seed, &p.from, *count);
        *count += 1;
        rng
    };
    // the caller behaves as the rules say for their number
    let behavior = behavior::choose(&shared.config, &p.from, &mut rng);
    let now = shared.clock.now();
    let sid = new_sid("CA");
    let hangup = tokio_util::sync::CancellationToken::new();
    {
        let record = CallRecord {
            sid: sid.clone(),
            account_sid: shared.config.account_sid.clone(),
            to: p.to.clone(),
            from: p.from.clone(),
            status: CallStatus::Ringing,
            date_created: now,
            date_updated: now,
            start_time: Some(now),
            end_time: None,
            duration: None,
            answered_by: None,
            dropped_callbacks: 0,
            duplicated_callbacks: 0,
            reordered_callbacks: 0,
            slow_answer: false,
        };
        shared
            .book()
            .add(record, hangup.clone(), shared.config.history);
    }
    let plan = CallPlan {
        sid: sid.clone(),
        params: p,
        behavior,
        rng,
        hangup,
    };
    tokio::spawn(call::run_inbound(shared.clone(), plan));
    Ok(Json(InboundAnswer {
        sid,
        status: 0,
        reply: String::new(),
    }))
}
