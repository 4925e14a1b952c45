//! The call webhooks: `/twilio/voice` (a step's TwiML, or voicemail for a machine),
//! `/twilio/gather` (store the answer, follow the script), `/twilio/record` and `/twilio/status`
//! (the attempt lifecycle). Every change goes through the writer, in one job per request; the
//! TwiML is rendered after the commit, off the writer's thread.
//!
//! Twilio's retried deliveries (SPEC §10) change nothing and are answered like the first: a
//! status event is stored once (by `I-Twilio-Idempotency-Token`, or CallSid + SequenceNumber) and
//! answered 204; a gather answer is stored once with the step it led to, and a replay renders
//! that step again (from the current script); a voice request stores nothing but AnsweredBy, so a
//! replay sets the same value and gets the same TwiML.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use std::sync::Arc;

use super::ApiError;
use super::signed::SignedForm;
use crate::campaign::model::{Campaign, Content};
use crate::campaign::script::Script;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::store::{Answer, AttemptCall, AttemptRow, StatusApplied, StatusEvent, Tx};
use crate::twilio::twiml::{self, RenderContext, StepUrls};

#[derive(Debug, Deserialize)]
pub struct Target {
    attempt: i64,
    step: Option<String>,
}

pub(super) fn xml(body: String) -> Response {
    ([("content-type", "text/xml")], body).into_response()
}

/// The attempt named in the query, if the request's CallSid is its call. The first request that
/// carries a SID binds it when the create response has not yet been stored.
pub(super) fn checked_attempt(
    store: &Tx<'_>,
    id: i64,
    form: &SignedForm,
) -> Result<AttemptRow, ApiError> {
    let attempt = store.attempt(id)?.ok_or(ApiError::NotFound)?;
    check_call_sid(store, id, attempt.call_sid.as_deref(), form)?;
    Ok(attempt)
}

/// [`checked_attempt`] for the status callback, which needs only the attempt's campaign and SID.
fn checked_call(store: &Tx<'_>, id: i64, form: &SignedForm) -> Result<AttemptCall, ApiError> {
    let call = store.attempt_call(id)?.ok_or(ApiError::NotFound)?;
    check_call_sid(store, id, call.call_sid.as_deref(), form)?;
    Ok(call)
}

/// Whether the request's CallSid is the attempt's call (`bound`), binding it when none is yet.
fn check_call_sid(
    store: &Tx<'_>,
    id: i64,
    bound: Option<&str>,
    form: &SignedForm,
) -> Result<(), ApiError> {
    let sid = form
        .get("CallSid")
        .ok_or(ApiError::BadRequest("missing CallSid\n"))?;
    match bound {
        Some(s) if s == sid => Ok(()),
        Some(_) => Err(ApiError::NotFound),
        None if store.bind_call_sid(id, sid)? => Ok(()),
        None => Err(ApiError::NotFound),
    }
}

/// `{{field}}` values: the contact's CSV fields plus `name`, `id` and `phone`.
pub(super) fn fields(attempt: &AttemptRow) -> BTreeMap<String, String> {
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
    state: &'a Shared,
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
pub(super) fn with_context<T>(
    state: &Shared,
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
fn render(state: &Shared, campaign: &Campaign, attempt: &AttemptRow, step: Option<&str>) -> String {
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
fn voicemail(state: &Shared, campaign: &Campaign, attempt: &AttemptRow) -> String {
    with_context(state, campaign, attempt, |ctx| match &campaign.content {
        Content::Script(Script {
            voicemail: Some(vm),
            ..
        }) => twiml::render_voicemail(vm, ctx),
        Content::Message(m) => twiml::render_message(m, ctx),
        _ => twiml::hangup(),
    })
}

/// What a voice or gather request leads to, decided in the writer, rendered after the commit.
enum Reply {
    Step(Option<String>),
    Voicemail,
    Hangup,
}

/// Renders a decided reply for the attempt.
fn answer(state: &Shared, campaign: &Campaign, attempt: &AttemptRow, reply: Reply) -> Response {
    xml(match reply {
        Reply::Step(step) => render(state, campaign, attempt, step.as_deref()),
        Reply::Voicemail => voicemail(state, campaign, attempt),
        Reply::Hangup => twiml::hangup(),
    })
}

pub async fn voice(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let t: Target = form.query()?;
    let call_sid = form.get("CallSid").map(str::to_owned);
    let s = state.clone();
    let (attempt, campaign, reply) = state
        .db
        .write(move |tx| {
            let now = s.clock.now();
            let attempt = checked_attempt(tx, t.attempt, &form)?;
            let campaign = s.campaign(tx, attempt.campaign_id)?;
            if let Some(by) = form.get("AnsweredBy") {
                tx.set_answered_by(attempt.id, by, now)?;
                if by.starts_with("machine_end") {
                    return Ok((attempt, campaign, Reply::Voicemail));
                }
                if by.starts_with("machine") || by == "fax" {
                    return Ok((attempt, campaign, Reply::Hangup));
                }
            }
            let step = match (&campaign.content, t.step) {
                (Content::Script(sc), None) => Some(sc.start.clone()),
                (_, step) => step,
            };
            Ok::<_, ApiError>((attempt, campaign, Reply::Step(step)))
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    if let (Reply::Step(Some(step)), Content::Script(script)) = (&reply, &campaign.content)
        && let Some(bot) = script.bot(step)
    {
        // a bot step opens its conversation (SPEC §13): the bot is asked for the first prompt
        let call_sid = attempt.call_sid.clone().or(call_sid).unwrap_or_default();
        let opening = super::bot::Opening {
            step: step.clone(),
            bot: bot.clone(),
            call_sid,
        };
        return super::bot::open(&state, &campaign, &attempt, opening).await;
    }
    Ok(answer(&state, &campaign, &attempt, reply))
}

pub async fn gather(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let t: Target = form.query()?;
    let s = state.clone();
    let (attempt, campaign, reply) = state
        .db
        .write(move |tx| {
            let now = s.clock.now();
            let attempt = checked_attempt(tx, t.attempt, &form)?;
            let campaign = s.campaign(tx, attempt.campaign_id)?;
            let reply = gather_answer(tx, &campaign, &attempt, t.step, &form, now)?;
            Ok::<_, ApiError>((attempt, campaign, reply))
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    Ok(answer(&state, &campaign, &attempt, reply))
}

/// Stores a gather answer and follows the script: the option's effects and next step, the
/// `no_match` step (three strikes, then `no_input`), or `no_input` when nothing was said. A
/// repeated delivery is answered with the step its first delivery led to and stores nothing; an
/// answer after the attempt ended is kept for audit, changes nothing and hangs up.
fn gather_answer(
    tx: &Tx<'_>,
    campaign: &Arc<Campaign>,
    attempt: &AttemptRow,
    step: Option<String>,
    form: &SignedForm,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Reply, ApiError> {
    if let Some(token) = form.token()
        && let Some(next) = tx.answered_step(attempt.id, token)?
    {
        return Ok(next.map_or(Reply::Hangup, |s| Reply::Step(Some(s))));
    }
    let step_name = step.ok_or(ApiError::BadRequest("missing step\n"))?;
    let Content::Script(script) = &campaign.content else {
        return Ok(Reply::Hangup);
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
    let late = attempt.ended_at.is_some();
    if digits.is_none() && speech.is_none() {
        return Ok(if late {
            Reply::Hangup
        } else {
            Reply::Step(gather.no_input.clone())
        });
    }
    let option = gather.match_answer(digits, speech);
    let next = match option {
        _ if late => None,
        Some(o) => o.next.clone(),
        None if tx.unmatched_answers(attempt.id, &step_name)? + 1 >= 3 => gather.no_input.clone(),
        None => Some(gather.no_match.clone().unwrap_or(step_name.clone())),
    };
    let answer = Answer {
        step: &step_name,
        digits,
        speech,
        confidence,
        matched: option.is_some(),
        next_step: next.as_deref(),
        token: form.token(),
    };
    let stored = tx.record_answer(attempt.id, &answer, now)?;
    if late || !stored {
        return Ok(Reply::Hangup);
    }
    if let Some(o) = option {
        tx.apply_option(
            attempt.id,
            o.outcome.as_deref(),
            o.retry_after,
            o.opt_out,
            now,
        )?;
    }
    Ok(Reply::Step(next))
}

pub async fn record(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let t: Target = form.query()?;
    state
        .db
        .write(move |tx| checked_attempt(tx, t.attempt, &form).map(drop))
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    Ok(xml(twiml::hangup()))
}

pub async fn status(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let t: Target = form.query()?;
    let s = state.clone();
    let (attempt_id, applied) = state
        .db
        .write(move |tx| {
            let now = s.clock.now();
            let attempt = checked_call(tx, t.attempt, &form)?;
            let campaign = s.campaign(tx, attempt.campaign_id)?;
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
                timestamp: form
                    .get("Timestamp")
                    .and_then(|t| chrono::DateTime::parse_from_rfc2822(t.trim()).ok())
                    .map(|t| t.to_utc()),
                token: form.token(),
            };
            let applied =
                tx.apply_status(attempt.id, &campaign.rules, &form.to_json(), &ev, now)?;
            Ok::<_, ApiError>((attempt.id, applied))
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    if let StatusApplied::Final(reason) = applied {
        state.metrics.final_status(reason);
        state.in_flight.ended(attempt_id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
