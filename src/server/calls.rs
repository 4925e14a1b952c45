//! The call webhooks: `/twilio/voice` (a step's TwiML, or voicemail for a machine),
//! `/twilio/gather` (store the answer, follow the script), `/twilio/record` and `/twilio/status`
//! (the attempt lifecycle). Database work runs on the blocking pool.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::signed::SignedForm;
use super::{ApiError, AppState, Metrics};
use crate::campaign::model::{Campaign, Content};
use crate::campaign::script::Script;
use crate::store::{Answer, AttemptRow, StatusApplied, StatusEvent, Store};
use crate::twilio::twiml::{self, RenderContext, StepUrls};

#[derive(Debug, Deserialize)]
pub struct Target {
    attempt: i64,
    step: Option<String>,
}

/// Runs `f` on the blocking pool and answers its TwiML; counts the callback.
async fn twiml_reply(
    state: AppState,
    f: impl FnOnce(&AppState) -> Result<String, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let s = state.clone();
    let body = blocking(move || f(&s)).await?;
    Metrics::inc(&state.metrics.callbacks);
    Ok(xml(body))
}

fn xml(body: String) -> Response {
    ([("content-type", "text/xml")], body).into_response()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// The attempt named in the query, if the request's CallSid is its call. The first request that
/// carries a SID binds it when the create response has not yet been stored.
fn checked_attempt(store: &Store, id: i64, form: &SignedForm) -> Result<AttemptRow, ApiError> {
    let attempt = store
        .attempt(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let sid = form
        .get("CallSid")
        .ok_or(ApiError::BadRequest("missing CallSid\n"))?;
    match attempt.call_sid.as_deref() {
        Some(s) if s == sid => Ok(attempt),
        Some(_) => Err(ApiError::NotFound),
        None => {
            if store.bind_call_sid(id, sid).map_err(ApiError::internal)? {
                Ok(attempt)
            } else {
                Err(ApiError::NotFound)
            }
        }
    }
}

/// `{{field}}` values: the contact's CSV fields plus `name`, `id` and `phone`.
fn fields(attempt: &AttemptRow) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> =
        serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&attempt.contact_fields)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
    f.insert("phone".into(), attempt.phone.clone());
    if let Some(n) = &attempt.contact_name {
        f.insert("name".into(), n.clone());
    }
    if let Some(i) = &attempt.contact_ext_id {
        f.insert("id".into(), i.clone());
    }
    f
}

struct Urls<'a> {
    state: &'a AppState,
    attempt: i64,
}

impl StepUrls for Urls<'_> {
    fn gather_action(&self, step: &str) -> String {
        self.state
            .callback_url("/twilio/gather", self.attempt, Some(step))
    }
    fn step_url(&self, step: &str) -> String {
        self.state
            .callback_url("/twilio/voice", self.attempt, Some(step))
    }
    fn record_action(&self, step: &str) -> String {
        self.state
            .callback_url("/twilio/record", self.attempt, Some(step))
    }
}

/// Runs `f` with the render context of this attempt: its fields, the campaign's voice, its URLs.
fn with_context<T>(
    state: &AppState,
    campaign: &Campaign,
    attempt: &AttemptRow,
    f: impl FnOnce(&RenderContext<'_>) -> T,
) -> T {
    let fields = fields(attempt);
    let urls = Urls {
        state,
        attempt: attempt.id,
    };
    f(&RenderContext {
        fields: &fields,
        voice: campaign.voice.as_deref(),
        language: campaign.language.as_deref(),
        urls: &urls,
    })
}

/// Renders a step of the script, or hangs up when there is none.
fn render(
    state: &AppState,
    campaign: &Campaign,
    attempt: &AttemptRow,
    step: Option<&str>,
) -> String {
    with_context(state, campaign, attempt, |ctx| {
        match (&campaign.content, step) {
            (Content::Script(s), Some(name)) => match s.steps.get(name) {
                Some(step) => twiml::render_step(name, step, ctx),
                None => twiml::hangup(),
            },
            (Content::Script(_), None) => twiml::hangup(),
            (Content::Message(m), _) => twiml::render_message(m, ctx),
            (Content::Draft, _) => twiml::hangup(),
        }
    })
}

/// What an answering machine hears: the script's voicemail, the message, or nothing.
fn voicemail(state: &AppState, campaign: &Campaign, attempt: &AttemptRow) -> String {
    with_context(state, campaign, attempt, |ctx| match &campaign.content {
        Content::Script(Script {
            voicemail: Some(vm),
            ..
        }) => twiml::render_voicemail(vm, ctx),
        Content::Message(m) => twiml::render_message(m, ctx),
        _ => twiml::hangup(),
    })
}

pub async fn voice(
    State(state): State<AppState>,
    Query(t): Query<Target>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    twiml_reply(state, move |s| {
        let now = s.clock.now();
        let store = s.db();
        let attempt = checked_attempt(&store, t.attempt, &form)?;
        let campaign = s.campaign(&store, attempt.campaign_id)?;
        if let Some(by) = form.get("AnsweredBy") {
            store
                .set_answered_by(attempt.id, by, now)
                .map_err(ApiError::internal)?;
            if by.starts_with("machine_end") {
                return Ok(voicemail(s, &campaign, &attempt));
            }
            if by.starts_with("machine") || by == "fax" {
                return Ok(twiml::hangup());
            }
        }
        let step = match (&campaign.content, t.step) {
            (Content::Script(sc), None) => Some(sc.start.clone()),
            (_, step) => step,
        };
        Ok(render(s, &campaign, &attempt, step.as_deref()))
    })
    .await
}

pub async fn gather(
    State(state): State<AppState>,
    Query(t): Query<Target>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    twiml_reply(state, move |s| {
        let now = s.clock.now();
        let mut store = s.db();
        let attempt = checked_attempt(&store, t.attempt, &form)?;
        let campaign = s.campaign(&store, attempt.campaign_id)?;
        let step_name = t.step.ok_or(ApiError::BadRequest("missing step\n"))?;
        let Content::Script(script) = &campaign.content else {
            return Ok(twiml::hangup());
        };
        let Some(gather) = script
            .steps
            .get(&step_name)
            .and_then(|st| st.gather.as_ref())
        else {
            return Err(ApiError::NotFound);
        };
        let digits = form.get("Digits").filter(|d| !d.is_empty());
        let speech = form.get("SpeechResult").filter(|d| !d.trim().is_empty());
        let confidence = form.get("Confidence").and_then(|c| c.parse::<f64>().ok());
        if digits.is_none() && speech.is_none() {
            return Ok(render(s, &campaign, &attempt, gather.no_input.as_deref()));
        }
        let option = gather.match_answer(digits, speech);
        let answer = Answer {
            step: &step_name,
            digits,
            speech,
            confidence,
            matched: option.is_some(),
        };
        store
            .record_answer(attempt.id, &answer, now)
            .map_err(ApiError::internal)?;
        let next = match option {
            Some(o) => {
                store
                    .apply_option(
                        attempt.id,
                        o.outcome.as_deref(),
                        o.retry_after,
                        o.opt_out,
                        now,
                    )
                    .map_err(ApiError::internal)?;
                o.next.clone()
            }
            None => {
                let strikes = store
                    .unmatched_answers(attempt.id, &step_name)
                    .map_err(ApiError::internal)?;
                if strikes >= 3 {
                    gather.no_input.clone()
                } else {
                    Some(gather.no_match.clone().unwrap_or(step_name.clone()))
                }
            }
        };
        Ok(render(s, &campaign, &attempt, next.as_deref()))
    })
    .await
}

pub async fn record(
    State(state): State<AppState>,
    Query(t): Query<Target>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    let s = state.clone();
    blocking(move || checked_attempt(&s.db(), t.attempt, &form).map(drop)).await?;
    Metrics::inc(&state.metrics.callbacks);
    Ok(xml(twiml::hangup()))
}

pub async fn status(
    State(state): State<AppState>,
    Query(t): Query<Target>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    let s = state.clone();
    let applied = blocking(move || {
        let now = s.clock.now();
        let mut store = s.db();
        let attempt = checked_attempt(&store, t.attempt, &form)?;
        let campaign = s.campaign(&store, attempt.campaign_id)?;
        let int = |k: &str| form.get(k).and_then(|v| v.trim().parse::<i64>().ok());
        let ev = StatusEvent {
            call_sid: form.get("CallSid").unwrap_or_default(),
            status: form
                .get("CallStatus")
                .ok_or(ApiError::BadRequest("missing CallStatus\n"))?,
            sequence: int("SequenceNumber"),
            duration: int("CallDuration"),
            answered_by: form.get("AnsweredBy"),
            sip_code: None,
        };
        store
            .apply_status(attempt.id, &campaign.rules, &form.to_json(), &ev, now)
            .map_err(ApiError::internal)
    })
    .await?;
    Metrics::inc(&state.metrics.callbacks);
    if let StatusApplied::Final(reason) = applied {
        state.metrics.final_status(reason);
        state.call_ended.notify_waiters();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
