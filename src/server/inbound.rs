//! Inbound traffic (SPEC §12): `/twilio/inbound` answers calls to a campaign's number (the
//! campaign's `inbound` script, or a short default message), `/twilio/inbound/status` records
//! how they ended, `/twilio/sms` takes messages (opt-out and opt-in keywords change the DNC list
//! at once) and `/twilio/message-status` stores the status callbacks of our follow-ups. Every
//! request is signed; every inbound call and message is recorded, matched or not.
//!
//! A number is a campaign's when it is the campaign's `from` (or `twilio.from` for a campaign
//! without one). A caller is matched to a contact of those campaigns by phone number, the one
//! attempted most recently first.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use super::signed::SignedForm;
use crate::campaign::follow_up::keyword;
use crate::campaign::model::Campaign;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::store::{DNC_SOURCE_MESSAGE, NewInboundCall, NewInboundMessage, Tx};
use crate::twilio::twiml::{self, RenderContext, StepUrls};

/// What a caller to a number no campaign uses hears.
const UNOWNED: &str =
    "Thank you for calling. This number does not take calls at the moment. Goodbye.";

fn xml(body: String) -> Response {
    ([("content-type", "text/xml")], body).into_response()
}

/// The campaigns that use `number` as their caller ID, with their ids.
fn owners(
    state: &Shared,
    tx: &Tx<'_>,
    number: &str,
) -> Result<Vec<(i64, Arc<Campaign>)>, ApiError> {
    let mut found = Vec::new();
    for row in tx.campaigns()? {
        let c = state.campaign(tx, row.id)?;
        let from = c.from.as_deref().or(state.default_from.as_deref());
        if from == Some(number) {
            found.push((row.id, c));
        }
    }
    Ok(found)
}

#[derive(Debug, Deserialize)]
pub struct InboundTarget {
    /// A step of the inbound script (a `next` redirect).
    step: Option<String>,
    /// The end of a `<Record>`.
    #[serde(default)]
    done: Option<u8>,
}

struct InboundUrls<'a> {
    state: &'a Shared,
}

impl StepUrls for InboundUrls<'_> {
    fn gather_action(&self, step: &str) -> String {
        // inbound scripts cannot gather (refused at import); a hang-up if one ever did
        self.record_action(step)
    }
    fn step_url(&self, step: &str) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("step", step)
            .finish();
        format!("{}/twilio/inbound?{q}", self.state.public_url)
    }
    fn record_action(&self, _step: &str) -> String {
        format!("{}/twilio/inbound?done=1", self.state.public_url)
    }
}

/// Who called, as decided in the writer.
enum Caller {
    /// A contact of this campaign (its template fields).
    Contact(Arc<Campaign>, BTreeMap<String, String>),
    /// Someone unknown, calling this campaign's number.
    Unknown(Arc<Campaign>, BTreeMap<String, String>),
    /// Nobody's number.
    Unowned,
}

/// `POST /twilio/inbound`: records the call (once per CallSid) and answers with the campaign's
/// inbound script, its default message, or a polite message for a number no campaign uses.
pub async fn inbound(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let t: InboundTarget = form.query()?;
    if t.done.is_some() {
        return Ok(xml(twiml::hangup()));
    }
    let s = state.clone();
    let caller = state
        .db
        .write(move |tx| {
            let now = s.clock.now();
            let sid = form
                .get("CallSid")
                .ok_or(ApiError::BadRequest("missing CallSid\n"))?;
            let from = form.get("From").unwrap_or_default();
            let to = form.get("To").unwrap_or_default();
            let owned = owners(&s, tx, to)?;
            let contact = tx
                .contacts_with_phone(from)?
                .into_iter()
                .find(|m| owned.iter().any(|(id, _)| *id == m.campaign_id));
            let mut fields = BTreeMap::from([("phone".to_owned(), from.to_owned())]);
            let (matched, campaign_id, contact_id, campaign) = match (&contact, owned.first()) {
                (Some(m), _) => {
                    let c = owned
                        .iter()
                        .find(|(id, _)| *id == m.campaign_id)
                        .map(|(_, c)| c.clone());
                    if let Some(row) = tx.contact(m.contact_id)? {
                        fields = contact_fields(&row.fields, &row.phone, row.name, row.ext_id);
                    }
                    ("contact", Some(m.campaign_id), Some(m.contact_id), c)
                }
                (None, Some((id, c))) => ("caller", Some(*id), None, Some(c.clone())),
                (None, None) => ("unowned", None, None, None),
            };
            let outcome = campaign
                .as_ref()
                .map(|c| c.messaging.inbound_outcome.clone())
                .unwrap_or_default();
            tx.record_inbound_call(
                &NewInboundCall {
                    call_sid: sid,
                    from,
                    to,
                    matched,
                    campaign_id,
                    contact_id,
                    outcome: &outcome,
                    params: &form.to_json(),
                },
                now,
            )?;
            Ok::<_, ApiError>(match (campaign, matched) {
                (Some(c), "contact") => Caller::Contact(c, fields),
                (Some(c), _) => Caller::Unknown(c, fields),
                (None, _) => Caller::Unowned,
            })
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    let urls = InboundUrls { state: &state };
    let render = |campaign: &Campaign, fields: &BTreeMap<String, String>| {
        let ctx = RenderContext {
            fields,
            voice: campaign.voice.as_deref(),
            language: campaign.language.as_deref(),
            urls: &urls,
        };
        match &campaign.messaging.inbound {
            Some(script) => {
                let name = t.step.as_deref().unwrap_or(&script.start);
                match script.steps.get(name) {
                    Some(step) => twiml::render_step(name, step, &ctx),
                    None => twiml::hangup(),
                }
            }
            None => twiml::render_message(
                &format!(
                    "Thank you for calling {}. We have noted your call. Goodbye.",
                    campaign.name
                ),
                &ctx,
            ),
        }
    };
    Ok(xml(match caller {
        Caller::Contact(c, fields) | Caller::Unknown(c, fields) => render(&c, &fields),
        Caller::Unowned => twiml::render_message(
            UNOWNED,
            &RenderContext {
                fields: &BTreeMap::new(),
                voice: None,
                language: None,
                urls: &urls,
            },
        ),
    }))
}

/// `{{field}}` values of a contact: its CSV fields plus `name`, `id` and `phone`.
fn contact_fields(
    json: &str,
    phone: &str,
    name: Option<String>,
    ext_id: Option<String>,
) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> =
        serde_json::from_str::<BTreeMap<String, serde_json::Value>>(json)
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
    f.insert("phone".into(), phone.to_owned());
    if let Some(n) = name {
        f.insert("name".into(), n);
    }
    if let Some(i) = ext_id {
        f.insert("id".into(), i);
    }
    f
}

/// `POST /twilio/inbound/status`: the status callback of an inbound call (set it as the
/// number's "call status changes" URL). 204; 404 for a call never answered here.
pub async fn inbound_status(
    State(state): State<Shared>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    let s = state.clone();
    let known = state
        .db
        .write(move |tx| {
            let sid = form
                .get("CallSid")
                .ok_or(ApiError::BadRequest("missing CallSid\n"))?;
            let status = form
                .get("CallStatus")
                .ok_or(ApiError::BadRequest("missing CallStatus\n"))?;
            let duration = form
                .get("CallDuration")
                .and_then(|d| d.trim().parse::<i64>().ok());
            Ok::<_, ApiError>(tx.inbound_call_status(sid, status, duration, s.clock.now())?)
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    if known {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `POST /twilio/sms`: a message to a campaign's number. The whole body an opt-out keyword
/// (Twilio's standard ones, or any campaign's own `opt_out_keywords`; any case, spaces
/// trimmed) puts the sender on the DNC list at once — every campaign stops calling and
/// messaging it; START/UNSTOP takes it off only when a message put it there. Every message is
/// stored against the sender's contact, when there is one. Answered with an empty `<Response>`
/// (Twilio itself confirms its standard keywords).
pub async fn sms(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let s = state.clone();
    state
        .db
        .write(move |tx| {
            let now = s.clock.now();
            let from = form.get("From").unwrap_or_default().trim();
            let to = form.get("To").unwrap_or_default().trim();
            let body = form.get("Body").unwrap_or_default();
            let (phone, channel) = match from.strip_prefix("whatsapp:") {
                Some(n) => (n, "whatsapp"),
                None => (from, "sms"),
            };
            let number_called = to.strip_prefix("whatsapp:").unwrap_or(to);
            let owned = owners(&s, tx, number_called)?;
            let mut own_keywords: Vec<String> = Vec::new();
            for row in tx.campaigns()? {
                let c = s.campaign(tx, row.id)?;
                own_keywords.extend(c.messaging.opt_out_keywords.iter().cloned());
            }
            let action = match keyword(body, own_keywords.iter().map(String::as_str)) {
                Some(true) => {
                    tx.dnc_add(&[phone.to_owned()], DNC_SOURCE_MESSAGE, now)?;
                    tracing::info!(
                        channel,
                        "opt-out keyword received: number added to the DNC list"
                    );
                    Some("opt-out")
                }
                Some(false) => {
                    let removed = tx.dnc_remove_opted_in(phone)?;
                    tracing::info!(channel, removed, "opt-in keyword received");
                    Some("opt-in")
                }
                None => None,
            };
            let contacts = tx.contacts_with_phone(phone)?;
            let contact = contacts
                .iter()
                .find(|m| owned.iter().any(|(id, _)| *id == m.campaign_id))
                .or(contacts.first());
            tx.record_inbound_message(
                &NewInboundMessage {
                    message_sid: form.get("MessageSid"),
                    campaign_id: contact
                        .map(|m| m.campaign_id)
                        .or(owned.first().map(|(id, _)| *id)),
                    contact_id: contact.map(|m| m.contact_id),
                    channel,
                    from,
                    to,
                    body,
                    keyword: action,
                },
                now,
            )?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    Ok(xml(twiml::empty()))
}

#[derive(Debug, Deserialize)]
pub struct MessageTarget {
    message: i64,
}

/// `POST /twilio/message-status?message=ID`: a follow-up's status callback, stored once; the
/// message's status only moves forward. 204; 404 for an unknown message or another's SID.
pub async fn message_status(
    State(state): State<Shared>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    let t: MessageTarget = form.query()?;
    let s = state.clone();
    let known = state
        .db
        .write(move |tx| {
            let sid = form
                .get("MessageSid")
                .or(form.get("SmsSid"))
                .ok_or(ApiError::BadRequest("missing MessageSid\n"))?;
            let status = form
                .get("MessageStatus")
                .or(form.get("SmsStatus"))
                .ok_or(ApiError::BadRequest("missing MessageStatus\n"))?;
            let code = form
                .get("ErrorCode")
                .and_then(|c| c.trim().parse::<i64>().ok());
            Ok::<_, ApiError>(tx.apply_message_status(
                t.message,
                sid,
                status,
                code,
                form.token(),
                &form.to_json(),
                s.clock.now(),
            )?)
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    if known {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}
