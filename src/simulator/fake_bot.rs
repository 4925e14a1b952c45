//! A scripted bot speaking Rasa's REST channel (`POST /webhooks/rest/webhook`), for rehearsing
//! a bot step without a Rasa server (`dialer simulator --bot FILE`) and for the tests.
//!
//! Each conversation (`sender`) gets the script's replies in turn: the first message (the
//! greeting) the first reply, the next message the second, and so on; past the end, the last
//! reply again. A reply can be slow (`delay_ms`) or fail (`status`, e.g. 500), so the dialer's
//! fallbacks can be rehearsed too. Every request is kept (`GET /fake-bot/requests`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The bot's script: its replies, in conversation order.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BotScript {
    pub replies: Vec<ScriptedReply>,
}

/// One answer of the bot.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptedReply {
    /// Text messages, each one `{"text": ...}`.
    #[serde(default)]
    pub texts: Vec<String>,
    /// Ends the conversation: `{"custom": {"end": true, "outcome": ..., "next": ...}}`.
    pub end: Option<ScriptedEnd>,
    /// Real milliseconds to wait before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer this HTTP status (with an error body) instead of the messages.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptedEnd {
    pub outcome: Option<String>,
    pub next: Option<String>,
}

/// A bot script that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BotScriptError {
    #[error("cannot read bot script `{path}`: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("bot script `{path}`: {message}")]
    Invalid { path: String, message: String },
}

impl BotScript {
    /// Reads and checks a JSON bot script.
    pub fn load(path: &Path) -> Result<BotScript, BotScriptError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| BotScriptError::Read {
            path: shown.clone(),
            cause,
        })?;
        let script: BotScript =
            serde_json::from_str(&text).map_err(|e| BotScriptError::Invalid {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        script.check().map_err(|message| BotScriptError::Invalid {
            path: shown,
            message,
        })?;
        Ok(script)
    }

    fn check(&self) -> Result<(), String> {
        if self.replies.is_empty() {
            return Err("`replies` is empty: give at least one reply".to_owned());
        }
        for (i, r) in self.replies.iter().enumerate() {
            if r.delay_ms > crate::bounds::MAX_SLOW_MS {
                return Err(format!(
                    "`replies[{i}].delay_ms` must be at most {}",
                    crate::bounds::MAX_SLOW_MS
                ));
            }
            if r.status.is_some_and(|s| !(100..=599).contains(&s)) {
                return Err(format!("`replies[{i}].status` is not an HTTP status"));
            }
        }
        Ok(())
    }
}

/// One request the fake bot received, and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BotRequestLog {
    pub sender: String,
    pub message: String,
    pub metadata: Value,
    /// The HTTP status answered (after any delay).
    pub status: u16,
}

struct BotState {
    script: BotScript,
    /// Messages seen per sender.
    seen: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<BotRequestLog>>,
    stop: CancellationToken,
}

#[derive(Deserialize)]
struct Incoming {
    sender: String,
    message: String,
    #[serde(default)]
    metadata: Value,
}

/// The fake bot's routes: `POST /webhooks/rest/webhook`, `GET /fake-bot/requests`.
fn router(state: Arc<BotState>) -> Router {
    Router::new()
        .route("/webhooks/rest/webhook", post(webhook))
        .route("/fake-bot/requests", get(requests))
        .with_state(state)
}

async fn webhook(State(state): State<Arc<BotState>>, Json(m): Json<Incoming>) -> Response {
    let index = {
        let mut seen = state.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let n = seen.entry(m.sender.clone()).or_default();
        *n += 1;
        *n - 1
    };
    let last = state.script.replies.len().saturating_sub(1);
    let reply = state.script.replies[index.min(last)].clone();
    if reply.delay_ms > 0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(reply.delay_ms)) => {}
            () = state.stop.cancelled() => {}
        }
    }
    let status = reply
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    state
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(BotRequestLog {
            sender: m.sender.clone(),
            message: m.message,
            metadata: m.metadata,
            status: status.as_u16(),
        });
    if !status.is_success() {
        return (status, Json(json!({"error": "scripted failure"}))).into_response();
    }
    let mut messages: Vec<Value> = reply
        .texts
        .iter()
        .map(|t| json!({"recipient_id": m.sender, "text": t}))
        .collect();
    if let Some(end) = reply.end {
        messages.push(json!({"recipient_id": m.sender, "custom": {
            "end": true, "outcome": end.outcome, "next": end.next
        }}));
    }
    Json(Value::Array(messages)).into_response()
}

async fn requests(State(state): State<Arc<BotState>>) -> Json<Vec<BotRequestLog>> {
    Json(
        state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )
}

/// Serves the fake bot on `listener` until `shutdown` is cancelled (a reply still waiting out
/// its delay is cut short).
pub async fn serve(
    listener: tokio::net::TcpListener,
    script: BotScript,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = Arc::new(BotState {
        script,
        seen: Mutex::default(),
        log: Mutex::default(),
        stop: shutdown.clone(),
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// A fake bot running on its own thread (for tests and tools without a runtime); stopped on drop.
pub struct FakeBot {
    /// `http://127.0.0.1:PORT/webhooks/rest/webhook`
    pub url: String,
    base: String,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBot {
    /// Starts the bot on `127.0.0.1:0`.
    pub fn start(script: BotScript) -> std::io::Result<FakeBot> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = serve(l, script, token).await {
                            tracing::error!(error = %e, "fake bot stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "fake bot cannot listen"),
                }
            });
        });
        let base = format!("http://{addr}");
        Ok(FakeBot {
            url: format!("{base}/webhooks/rest/webhook"),
            base,
            stop,
            thread: Some(thread),
        })
    }

    /// Every request received so far, in order (read over HTTP, like any client would).
    pub fn requests(&self) -> Vec<BotRequestLog> {
        let url = format!("{}/fake-bot/requests", self.base);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        runtime.block_on(async move {
            reqwest::get(&url)
                .await
                .expect("the fake bot answers")
                .json()
                .await
                .expect("the fake bot's request log is JSON")
        })
    }
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_come_in_turn_per_sender_and_the_log_keeps_every_request() {
        let script: BotScript = serde_json::from_str(
            r#"{"replies": [
                {"texts": ["Hola."]},
                {"status": 500},
                {"texts": ["Listo."], "end": {"outcome": "done", "next": "bye"}}
            ]}"#,
        )
        .expect("script");
        let bot = FakeBot::start(script).expect("start");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let post = |sender: &str, message: &str| {
            let body = json!({"sender": sender, "message": message, "metadata": {"name": "Ana"}});
            rt.block_on(async {
                let r = reqwest::Client::new()
                    .post(&bot.url)
                    .json(&body)
                    .send()
                    .await
                    .expect("post");
                (r.status().as_u16(), r.text().await.expect("body"))
            })
        };
        assert_eq!(post("CA1", "/greet").0, 200);
        assert_eq!(post("CA1", "hola").0, 500);
        let (status, body) = post("CA1", "bloquea");
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v[0]["text"], "Listo.");
        assert_eq!(v[1]["custom"]["outcome"], "done");
        assert_eq!(
            post("CA2", "/greet").1,
            r#"[{"recipient_id":"CA2","text":"Hola."}]"#
        );
        assert_eq!(post("CA1", "again").0, 200, "past the end: the last reply");
        let log = bot.requests();
        let messages: Vec<(&str, &str, u16)> = log
            .iter()
            .map(|r| (r.sender.as_str(), r.message.as_str(), r.status))
            .collect();
        assert_eq!(
            messages,
            vec![
                ("CA1", "/greet", 200),
                ("CA1", "hola", 500),
                ("CA1", "bloquea", 200),
                ("CA2", "/greet", 200),
                ("CA1", "again", 200)
            ]
        );
        assert_eq!(log[0].metadata["name"], "Ana");
    }

    #[test]
    fn a_bad_script_says_which_field() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bot.json");
        std::fs::write(&path, r#"{"replies": []}"#).expect("write");
        let e = BotScript::load(&path).expect_err("empty").to_string();
        assert!(e.contains("`replies` is empty"), "{e}");
        std::fs::write(&path, r#"{"replies": [{"status": 1000}]}"#).expect("write");
        let e = BotScript::load(&path).expect_err("status").to_string();
        assert!(e.contains("`replies[0].status`"), "{e}");
    }
}
