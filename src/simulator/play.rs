//! Playing an answered call: signed webhook requests to the product (Twilio's signature, one
//! retry on a failed connect) and the TwiML executor (Say, Play, Pause, Gather, Redirect, Dial,
//! Record, Hangup), with the callee's answers.

use rand::Rng;

use super::Shared;
use super::api::new_sid;
use super::behavior::GatherAnswer;
use super::call::{Call, Stop};
use super::config::Behavior;
use super::twiml::{self, Gather, Verb};
use crate::twilio::signature::sign;

/// An answer from the product.
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub body: String,
}

/// Sends a webhook like Twilio: `POST` a form (or `GET` with the parameters in the query),
/// `X-Twilio-Signature` over the exact URL (without fragment) and the parameters, and an
/// `I-Twilio-Idempotency-Token`; retried once, only when the connection could not be made.
pub async fn send(
    shared: &Shared,
    url: &str,
    method: &str,
    params: &[(String, String)],
) -> Result<Reply, String> {
    send_with_token(shared, url, method, params, &new_sid("")).await
}

/// [`send`] with a given `I-Twilio-Idempotency-Token` (a redelivery repeats its token).
pub async fn send_with_token(
    shared: &Shared,
    url: &str,
    method: &str,
    params: &[(String, String)],
    token: &str,
) -> Result<Reply, String> {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let (target, signed_params): (String, &[(String, String)]) = if method == "GET" {
        let query = serde_urlencoded::to_string(params).map_err(|e| e.to_string())?;
        let separator = if url.contains('?') { '&' } else { '?' };
        (format!("{url}{separator}{query}"), &[])
    } else {
        (url.to_owned(), params)
    };
    let signature = sign(&shared.config.auth_token, &target, signed_params);
    let mut last_error = String::new();
    for _attempt in 0..2 {
        let request = if method == "GET" {
            shared.http.get(&target)
        } else {
            shared.http.post(&target).form(params)
        };
        let result = request
            .header("X-Twilio-Signature", &signature)
            .header("I-Twilio-Idempotency-Token", token)
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status();
                let body = response
                    .text()
                    .await
                    .map_err(|e| format!("reading the answer of {target}: {e}"))?;
                return Ok(Reply { status, body });
            }
            Err(e) if e.is_connect() => last_error = format!("cannot connect to {target}: {e}"),
            Err(e) => return Err(format!("request to {target} failed: {e}")),
        }
    }
    Err(last_error)
}

/// A TwiML document and the URL it came from (the default `action` of its verbs).
struct Doc {
    verbs: Vec<Verb>,
    url: Option<String>,
}

/// Plays the call's TwiML until a hang-up, the end of a document, `TimeLimit` or a failure.
pub async fn play(call: &mut Call, answered_by: Option<String>) -> Result<(), Stop> {
    let mut doc = match call.p.url.clone() {
        Some(url) => {
            let extra: Vec<(String, String)> = answered_by
                .map(|a| ("AnsweredBy".to_owned(), a))
                .into_iter()
                .collect();
            let method = call.p.method.clone();
            let slow = call.shared.config.faults.slow_twiml_ms;
            if slow > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(slow)).await;
            }
            fetch(call, None, &url, &method, extra).await?
        }
        None => {
            let text = call.p.twiml.clone().unwrap_or_default();
            let verbs = twiml::parse(&text).map_err(|e| Stop::Webhook(e.to_string()))?;
            Doc { verbs, url: None }
        }
    };
    'document: loop {
        let Doc { verbs, url } = doc;
        for verb in &verbs {
            if let Some(next) = step(call, verb, url.as_deref()).await? {
                doc = next;
                continue 'document;
            }
        }
        // The end of a document hangs up.
        return Ok(());
    }
}

/// Requests a document from the product and parses it; any failure ends the call.
async fn fetch(
    call: &mut Call,
    base: Option<&str>,
    target: &str,
    method: &str,
    extra: Vec<(String, String)>,
) -> Result<Doc, Stop> {
    let url = resolve(base, target)
        .ok_or_else(|| Stop::Webhook(format!("cannot resolve url `{target}`")))?;
    let mut params = call.base_params("in-progress");
    params.extend(extra);
    let reply = send(&call.shared, &url, method, &params)
        .await
        .map_err(Stop::Webhook)?;
    if !reply.status.is_success() {
        return Err(Stop::Webhook(format!("{url} answered {}", reply.status)));
    }
    let verbs = twiml::parse(&reply.body).map_err(|e| Stop::Webhook(format!("{url}: {e}")))?;
    Ok(Doc {
        verbs,
        url: Some(url),
    })
}

/// Resolves `target` against the current document's URL; absolute URLs stand alone.
fn resolve(base: Option<&str>, target: &str) -> Option<String> {
    let parsed = match base {
        Some(b) => url::Url::parse(b).ok()?.join(target).ok()?,
        None => url::Url::parse(target).ok()?,
    };
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

/// Simulated seconds to speak `text` at about 2.5 words a second.
fn speaking_time(text: &str) -> f64 {
    (text.split_whitespace().count() as f64 / 2.5).max(1.0)
}

/// Plays one verb; `Some(doc)` replaces the current document.
async fn step(call: &mut Call, verb: &Verb, doc_url: Option<&str>) -> Result<Option<Doc>, Stop> {
    match verb {
        Verb::Say { text, loops } => call.pass(speaking_time(text) * f64::from(*loops)).await?,
        Verb::Play { loops, digits } => match digits {
            Some(d) => call.pass(0.5 * d.len() as f64).await?,
            None => call.pass(3.0 * f64::from(*loops)).await?,
        },
        Verb::Pause { length } => call.pass(*length).await?,
        Verb::Gather(g) => return gather(call, g, doc_url).await,
        Verb::Redirect { url, method } => {
            return fetch(call, doc_url, url, method, Vec::new())
                .await
                .map(Some);
        }
        Verb::Dial {
            action,
            method,
            time_limit,
        } => {
            let talk = call
                .rng
                .random_range(5.0..20.0_f64)
                .min(*time_limit)
                .round();
            call.pass(talk).await?;
            if let Some(action) = action {
                let extra = vec![
                    ("DialCallStatus".to_owned(), "completed".to_owned()),
                    ("DialCallSid".to_owned(), new_sid("CA")),
                    ("DialCallDuration".to_owned(), format!("{talk:.0}")),
                    ("DialBridged".to_owned(), "true".to_owned()),
                ];
                return fetch(call, doc_url, action, method, extra).await.map(Some);
            }
        }
        Verb::Record {
            action,
            method,
            max_length,
            timeout,
        } => {
            call.pass(0.5).await?; // the beep
            if !matches!(call.behavior, Behavior::Human { .. }) {
                // Nothing but silence: no recording, so no action request.
                call.pass(*timeout).await?;
                return Ok(None);
            }
            let spoken = call.rng.random_range(3.0..8.0_f64).min(*max_length).round();
            call.pass(spoken + timeout).await?;
            let recording = new_sid("RE");
            let account = call.shared.config.account_sid.clone();
            let extra = vec![
                (
                    "RecordingUrl".to_owned(),
                    format!(
                        "https://api.twilio.com/2010-04-01/Accounts/{account}/Recordings/{recording}"
                    ),
                ),
                ("RecordingSid".to_owned(), recording),
                ("RecordingDuration".to_owned(), format!("{spoken:.0}")),
            ];
            let target = action.clone().or_else(|| doc_url.map(str::to_owned));
            if let Some(target) = target {
                return fetch(call, doc_url, &target, method, extra).await.map(Some);
            }
        }
        Verb::Hangup | Verb::Reject => return Err(Stop::Hangup),
        Verb::Other(name) => {
            tracing::debug!(verb = %name, "simulator: skipping a verb it does not play")
        }
    }
    Ok(None)
}

/// `<Gather>`: the nested verbs play, then the callee answers (or stays silent for `timeout`).
async fn gather(call: &mut Call, g: &Gather, doc_url: Option<&str>) -> Result<Option<Doc>, Stop> {
    for nested in &g.nested {
        // Nested verbs are only Say, Play and Pause, which never replace the document.
        Box::pin(step(call, nested, doc_url)).await?;
    }
    let heard: Vec<&str> = g
        .nested
        .iter()
        .filter_map(|v| match v {
            Verb::Say { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let answer = call
        .callee
        .answer(g.dtmf, g.speech, &heard.join(" "), &mut call.rng);
    let extra = match answer {
        GatherAnswer::Digits(pressed) => {
            let mut digits: String = match g.finish_on_key.chars().next() {
                Some(key) => pressed.split(key).next().unwrap_or("").to_owned(),
                None => pressed,
            };
            if let Some(n) = g.num_digits {
                digits.truncate(n);
            }
            call.pass(1.0 + 0.3 * digits.len() as f64).await?;
            (!digits.is_empty()).then(|| vec![("Digits".to_owned(), digits)])
        }
        GatherAnswer::Speech { text, confidence } => {
            call.pass(speaking_time(&text) + 1.0).await?;
            Some(vec![
                ("SpeechResult".to_owned(), text),
                ("Confidence".to_owned(), confidence.to_string()),
            ])
        }
        GatherAnswer::Nothing => None,
    };
    let extra = match extra {
        Some(extra) => extra,
        None => {
            call.pass(g.timeout).await?;
            if !g.action_on_empty_result {
                return Ok(None);
            }
            Vec::new()
        }
    };
    let target = match g.action.clone().or_else(|| doc_url.map(str::to_owned)) {
        Some(target) => target,
        None => {
            return Err(Stop::Webhook(
                "a <Gather> without action in inline Twiml".to_owned(),
            ));
        }
    };
    fetch(call, doc_url, &target, &g.method, extra)
        .await
        .map(Some)
}
