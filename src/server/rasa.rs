//! The bot client: Rasa's REST channel (SPEC §13), which LLM webhooks can serve too.
//! `POST {url}` `{"sender": <call sid>, "message": <text>, "metadata": {contact fields}}` →
//! `[{"text": "..."}, {"custom": {"end": true, "outcome": "...", "next": "step"}}]`.
//! One request per turn, bounded by the step's timeout; every failure is a [`BotFailure`].

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use url::Url;

/// What the bot is sent.
#[derive(Debug, Serialize)]
pub struct BotRequest<'a> {
    /// The conversation id: the call's SID.
    pub sender: &'a str,
    pub message: &'a str,
    /// The contact's fields (CSV columns, `name`, `id`, `phone`); nothing else.
    pub metadata: &'a BTreeMap<String, String>,
}

/// A usable answer: what to say, and whether the conversation ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BotAnswer {
    pub texts: Vec<String>,
    pub end: Option<BotEnd>,
}

/// `custom.end`: the bot is done.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BotEnd {
    pub outcome: Option<String>,
    pub next: Option<String>,
}

/// Why the bot's answer cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BotFailure {
    #[error("no answer within {}", crate::bounds::fmt(*.0))]
    Timeout(Duration),
    #[error("the bot answered HTTP {0}")]
    Status(u16),
    #[error("cannot reach the bot: {0}")]
    Unreachable(String),
    #[error("the bot's answer is not Rasa's REST format: {0}")]
    BadReply(String),
}

/// One request and how long it took.
#[derive(Debug)]
pub struct Exchange {
    pub result: Result<BotAnswer, BotFailure>,
    pub latency: Duration,
}

/// Bodies larger than this are refused (a bot reply is a few sentences).
const MAX_REPLY_BYTES: usize = 256 * 1024;

fn client() -> Result<&'static reqwest::Client, BotFailure> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| BotFailure::Unreachable(e.clone()))
}

/// Sends one message to the bot and waits at most `timeout` for all of its answer.
pub async fn ask(url: &Url, timeout: Duration, request: &BotRequest<'_>) -> Exchange {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, send(url, request)).await {
        Ok(result) => result,
        Err(_) => Err(BotFailure::Timeout(timeout)),
    };
    Exchange {
        result,
        latency: started.elapsed(),
    }
}

async fn send(url: &Url, request: &BotRequest<'_>) -> Result<BotAnswer, BotFailure> {
    let response = client()?
        .post(url.clone())
        .json(request)
        .send()
        .await
        .map_err(|e| BotFailure::Unreachable(without_url(e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(BotFailure::Status(status.as_u16()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| BotFailure::Unreachable(without_url(e)))?;
    if body.len() > MAX_REPLY_BYTES {
        return Err(BotFailure::BadReply(format!(
            "{} bytes, over the {MAX_REPLY_BYTES} accepted",
            body.len()
        )));
    }
    parse_reply(&body)
}

/// reqwest's message without the URL (it may carry credentials in its user-info).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[derive(Deserialize)]
struct RawMessage {
    text: Option<String>,
    custom: Option<serde_json::Value>,
}

/// Reads Rasa's answer: a JSON array of messages; `text` is spoken, `custom.end: true` ends the
/// conversation (with `outcome` and `next` when given); images and buttons are ignored.
pub fn parse_reply(body: &[u8]) -> Result<BotAnswer, BotFailure> {
    let messages: Vec<RawMessage> =
        serde_json::from_slice(body).map_err(|e| BotFailure::BadReply(e.to_string()))?;
    let mut answer = BotAnswer::default();
    for m in messages {
        if let Some(t) = m.text.filter(|t| !t.trim().is_empty()) {
            answer.texts.push(t);
        }
        let Some(custom) = m.custom else { continue };
        if custom.get("end").and_then(serde_json::Value::as_bool) == Some(true) {
            let field = |k: &str| -> Result<Option<String>, BotFailure> {
                match custom.get(k) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(BotFailure::BadReply(format!(
                        "`custom.{k}` is {other}, expected a string"
                    ))),
                }
            };
            answer.end = Some(BotEnd {
                outcome: field("outcome")?,
                next: field("next")?,
            });
        }
    }
    Ok(answer)
}

impl Exchange {
    /// Milliseconds, for the transcript.
    pub fn latency_ms(&self) -> i64 {
        i64::try_from(self.latency.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_rasa_writes_them() {
        let a = parse_reply(
            br#"[{"recipient_id": "CA1", "text": "Hola."},
                 {"recipient_id": "CA1", "image": "https://x/y.png"},
                 {"recipient_id": "CA1", "text": "  "},
                 {"recipient_id": "CA1", "text": "Adios.", "buttons": []}]"#,
        )
        .expect("valid");
        assert_eq!(a.texts, vec!["Hola.", "Adios."]);
        assert_eq!(a.end, None);
        let a = parse_reply(
            br#"[{"text": "Listo."}, {"custom": {"end": true, "outcome": "card_blocked", "next": "bye"}}]"#,
        )
        .expect("valid");
        assert_eq!(
            a.end,
            Some(BotEnd {
                outcome: Some("card_blocked".into()),
                next: Some("bye".into())
            })
        );
        let a = parse_reply(br#"[{"custom": {"end": true}}, {"custom": {"other": 1}}]"#)
            .expect("valid");
        assert_eq!(a.end, Some(BotEnd::default()));
        assert_eq!(parse_reply(b"[]").expect("valid"), BotAnswer::default());
    }

    #[test]
    fn unusable_replies_are_failures() {
        for body in [
            &b"{}"[..],
            b"not json",
            b"[{\"text\": 5}]",
            b"[{\"custom\": {\"end\": true, \"next\": 3}}]",
        ] {
            assert!(
                matches!(parse_reply(body), Err(BotFailure::BadReply(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            BotFailure::Timeout(Duration::from_millis(1500)).to_string(),
            "no answer within 1s 500ms"
        );
    }
}
