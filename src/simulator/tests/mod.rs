//! Simulator tests over real loopback HTTP: a small product stub records every webhook, serves
//! fixed TwiML and checks each `X-Twilio-Signature` with `twilio::signature::sign`.

mod calls;
mod rest;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::twilio::signature::sign;

/// One request the product stub received.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    query: String,
    params: Vec<(String, String)>,
    signature_ok: bool,
}

impl Hit {
    fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Stub {
    base: String,
    token: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    twiml: Arc<HashMap<String, String>>,
}

async fn stub_handler(
    State(stub): State<Stub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or("").to_owned();
    let url = format!(
        "{}{}",
        stub.base,
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).expect("form body");
    let (params, signed) = if method == Method::GET {
        (
            serde_urlencoded::from_str(&query).expect("query"),
            Vec::new(),
        )
    } else {
        (form.clone(), form)
    };
    let expected = sign(&stub.token, &url, &signed);
    let got = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hit = Hit {
        path: uri.path().to_owned(),
        query,
        params,
        signature_ok: got == expected,
    };
    stub.hits.lock().expect("hits lock").push(hit);
    if uri.path() == "/status" {
        return StatusCode::NO_CONTENT.into_response();
    }
    match stub.twiml.get(uri.path()) {
        Some(doc) => ([("content-type", "text/xml")], doc.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

struct World {
    sim: Simulator,
    stub: Stub,
    http: reqwest::Client,
    _stop: CancellationToken,
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        time_scale: 0.001,
        ..SimConfig::default()
    }
}

fn rule(pattern: &str, behavior: BehaviorKind, digits: &[&str]) -> Rule {
    Rule {
        pattern: pattern.to_owned(),
        behavior,
        digits: digits.iter().map(|d| (*d).to_owned()).collect(),
        speech: Vec::new(),
        replies: Vec::new(),
    }
}

async fn world(config: SimConfig, twiml: &[(&str, &str)]) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let base = format!("http://{}", listener.local_addr().expect("stub addr"));
    let stub = Stub {
        base,
        token: config.auth_token.clone(),
        hits: Arc::default(),
        twiml: Arc::new(
            twiml
                .iter()
                .map(|(p, d)| ((*p).to_owned(), (*d).to_owned()))
                .collect(),
        ),
    };
    let app = Router::new()
        .fallback(stub_handler)
        .with_state(stub.clone());
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
            .expect("stub serves");
    });
    let sim = Simulator::start(config, Arc::new(crate::clock::SystemClock))
        .await
        .expect("simulator starts");
    World {
        sim,
        stub,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl World {
    fn calls_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Calls.json",
            self.sim.base_url(),
            self.sim.account_sid()
        )
    }

    /// A create with the product's usual parameters plus `extra`.
    async fn create(&self, to: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(String, String)> = vec![
            ("To".into(), to.into()),
            ("From".into(), "+15005550006".into()),
            ("Url".into(), format!("{}/voice?attempt=1", self.stub.base)),
            (
                "StatusCallback".into(),
                format!("{}/status?attempt=1", self.stub.base),
            ),
        ];
        for event in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent".into(), event.into()));
        }
        // An extra parameter replaces the default of the same name.
        form.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        form.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.post(&form, self.sim.account_sid(), self.sim.auth_token())
            .await
    }

    async fn post(
        &self,
        form: &[(String, String)],
        user: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.calls_url())
            .basic_auth(user, Some(password))
            .form(form)
            .send()
            .await
            .expect("create request");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        (status, response.json().await.expect("json body"))
    }

    async fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        let url = if path_and_query.starts_with('/') {
            format!("{}{path_and_query}", self.sim.base_url())
        } else {
            path_and_query.to_owned()
        };
        let response = self
            .http
            .get(url)
            .basic_auth(self.sim.account_sid(), Some(self.sim.auth_token()))
            .send()
            .await
            .expect("get request");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        (status, response.json().await.expect("json body"))
    }

    async fn fetch(&self, sid: &str) -> Value {
        let path = format!(
            "/2010-04-01/Accounts/{}/Calls/{sid}.json",
            self.sim.account_sid()
        );
        self.get(&path).await.1
    }

    /// Waits until the call is final in the REST resource, and returns its JSON.
    async fn until_final(&self, sid: &str) -> Value {
        for _ in 0..500 {
            let call = self.fetch(sid).await;
            let status = call["status"].as_str().unwrap_or("");
            if !matches!(status, "queued" | "ringing" | "in-progress") {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("call {sid} never ended");
    }

    /// Waits until `path` received a request with `CallSid=sid` matching `pred`.
    async fn until_hit(&self, sid: &str, path: &str, pred: impl Fn(&Hit) -> bool) -> Vec<Hit> {
        for _ in 0..500 {
            let hits = self.hits(sid, path);
            if hits.iter().any(&pred) {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no matching request to {path} for {sid}: {:?}",
            self.hits(sid, path)
        );
    }

    fn hits(&self, sid: &str, path: &str) -> Vec<Hit> {
        let hits = self.stub.hits.lock().expect("hits lock");
        hits.iter()
            .filter(|h| h.path == path && h.get("CallSid") == Some(sid))
            .cloned()
            .collect()
    }

    /// The status callbacks of a call once its final one arrived, in sequence order.
    async fn callbacks(&self, sid: &str) -> Vec<Hit> {
        let terminal = |h: &Hit| {
            matches!(
                h.get("CallStatus"),
                Some("completed" | "busy" | "failed" | "no-answer")
            )
        };
        self.sorted(self.until_hit(sid, "/status", terminal).await)
    }

    async fn callbacks_until(&self, sid: &str, status: &str) -> Vec<Hit> {
        self.sorted(
            self.until_hit(sid, "/status", |h| h.get("CallStatus") == Some(status))
                .await,
        )
    }

    fn sorted(&self, mut hits: Vec<Hit>) -> Vec<Hit> {
        hits.sort_by_key(|h| h.get("SequenceNumber").and_then(|s| s.parse::<u32>().ok()));
        hits
    }
}

fn sid_of(body: &Value) -> String {
    body["sid"].as_str().expect("sid").to_owned()
}

const GATHER_DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response>
    <Gather numDigits="1" action="/gather?step=confirm"><Say>Press one to confirm</Say></Gather>
    <Say>We did not get that</Say></Response>"#;

const THANKS_DOC: &str = "<Response><Say>Thank you, goodbye</Say><Hangup/></Response>";
