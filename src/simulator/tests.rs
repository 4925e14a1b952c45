//! Simulator tests over real loopback HTTP: a small product stub records every webhook, serves
//! fixed TwiML and checks each `X-Twilio-Signature` with `twilio::signature::sign`.

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
    let sim = Simulator::start(config).await.expect("simulator starts");
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

#[tokio::test]
async fn create_answers_201_with_twilios_call_json() {
    let w = world(config(1), &[("/voice", THANKS_DOC)]).await;
    let (status, body) = w.create("+14155550100", &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sid = sid_of(&body);
    assert!(
        sid.len() == 34 && sid.starts_with("CA") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{sid}"
    );
    assert_eq!(body["status"], "queued");
    assert_eq!(body["direction"], "outbound-api");
    assert_eq!(body["api_version"], "2010-04-01");
    assert_eq!(body["account_sid"], w.sim.account_sid());
    assert_eq!(body["to"], "+14155550100");
    assert_eq!(body["to_formatted"], "(415) 555-0100");
    assert_eq!(body["from"], "+15005550006");
    assert_eq!(body["duration"], Value::Null);
    assert_eq!(body["queue_time"], "0");
    assert_eq!(
        body["uri"],
        format!(
            "/2010-04-01/Accounts/{}/Calls/{sid}.json",
            w.sim.account_sid()
        )
    );
    let created = body["date_created"].as_str().expect("date_created");
    assert!(
        chrono::DateTime::parse_from_rfc2822(created).is_ok() && created.ends_with("+0000"),
        "{created}"
    );
    assert!(
        body["subresource_uris"]["recordings"]
            .as_str()
            .is_some_and(|u| u.ends_with("/Recordings.json"))
    );
    let log = w.sim.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status, log[0].sid.as_deref()),
        (201, Some(sid.as_str()))
    );
    let events: Vec<&str> = log[0]
        .params
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        events,
        ["initiated", "ringing", "answered", "completed"],
        "repeated keys are kept in the log"
    );
    // The inspection endpoint tells the same story over HTTP.
    let (code, listed) = w.get("/simulator/requests").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(listed[0]["sid"], sid.as_str());
}

#[tokio::test]
async fn wrong_credentials_get_401_and_create_nothing() {
    let w = world(config(1), &[]).await;
    let form = vec![
        ("To".to_owned(), "+14155550100".to_owned()),
        ("From".to_owned(), "+15005550006".to_owned()),
    ];
    let (status, body) = w.post(&form, w.sim.account_sid(), "wrong-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (body["code"].as_u64(), body["status"].as_u64()),
        (Some(20003), Some(401))
    );
    assert_eq!(
        body["more_info"],
        "https://www.twilio.com/docs/errors/20003"
    );
    let other = "AC11111111111111111111111111111111";
    let (status, _) = w.post(&form, other, w.sim.auth_token()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the account in the path must be the authenticated one"
    );
    let log = w.sim.requests();
    assert!(
        log.iter().all(|r| r.status == 401 && r.sid.is_none()),
        "{log:?}"
    );
}

#[tokio::test]
async fn invalid_creates_get_400_with_twilios_codes() {
    let w = world(config(1), &[]).await;
    let cases: [(&[(&str, &str)], u64); 5] = [
        (
            &[("From", "+15005550006"), ("Url", "http://x.test/v")],
            21201,
        ),
        (&[("To", "+14155550100"), ("Url", "http://x.test/v")], 21213),
        (&[("To", "+14155550100"), ("From", "+15005550006")], 21205),
        (
            &[
                ("To", "not a number"),
                ("From", "+15005550006"),
                ("Url", "http://x.test/v"),
            ],
            21211,
        ),
        (
            &[
                ("To", "+14155550100"),
                ("From", "+15005550006"),
                ("Url", "ftp://x.test/v"),
            ],
            21205,
        ),
    ];
    for (params, code) in cases {
        let form: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (status, body) = w.post(&form, w.sim.account_sid(), w.sim.auth_token()).await;
        assert_eq!(
            (status, body["code"].as_u64()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{params:?}: {body}"
        );
        assert_eq!(body["status"], 400);
    }
    let (_, list) = w
        .get(&format!(
            "/2010-04-01/Accounts/{}/Calls.json",
            w.sim.account_sid()
        ))
        .await;
    assert_eq!(list["calls"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn busy_number_sends_initiated_ringing_busy_in_sequence() {
    let mut c = config(1);
    c.rules = vec![rule("+1415555*", BehaviorKind::Busy, &[])];
    let w = world(c, &[]).await;
    let (_, body) = w.create("+14155550123", &[]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    let statuses: Vec<_> = hits
        .iter()
        .map(|h| h.get("CallStatus").unwrap_or(""))
        .collect();
    let sequence: Vec<_> = hits
        .iter()
        .map(|h| h.get("SequenceNumber").unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["initiated", "ringing", "busy"]);
    assert_eq!(sequence, ["0", "1", "2"]);
    assert!(
        hits.iter().all(|h| h.signature_ok),
        "every callback is signed over its exact url: {hits:?}"
    );
    assert!(
        hits.iter()
            .all(|h| h.query == "attempt=1"
                && h.get("CallbackSource") == Some("call-progress-events"))
    );
    assert!(hits.iter().all(|h| {
        h.get("Timestamp")
            .is_some_and(|t| chrono::DateTime::parse_from_rfc2822(t).is_ok())
    }));
    let last = &hits[2];
    assert_eq!(
        (last.get("CallDuration"), last.get("SipResponseCode")),
        (Some("0"), Some("486"))
    );
    assert_eq!(
        last.get("Duration"),
        None,
        "Duration is only sent on completed"
    );
    assert_eq!(w.until_final(&sid).await["status"], "busy");
    assert!(
        w.hits(&sid, "/voice").is_empty(),
        "a busy call never fetches its Url"
    );
}

#[tokio::test]
async fn human_pressing_one_reaches_the_gather_action() {
    let mut c = config(1);
    c.rules = vec![rule("+14155550100", BehaviorKind::Human, &["1"])];
    let w = world(c, &[("/voice", GATHER_DOC), ("/gather", THANKS_DOC)]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    let statuses: Vec<_> = hits
        .iter()
        .map(|h| h.get("CallStatus").unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let voice = w.hits(&sid, "/voice");
    assert_eq!(voice.len(), 1);
    assert!(voice[0].signature_ok);
    assert_eq!(
        (voice[0].get("CallStatus"), voice[0].get("AnsweredBy")),
        (Some("in-progress"), None)
    );
    assert_eq!(voice[0].get("Direction"), Some("outbound-api"));
    let gather = w.hits(&sid, "/gather");
    assert_eq!(gather.len(), 1);
    assert_eq!(
        (gather[0].query.as_str(), gather[0].get("Digits")),
        ("step=confirm", Some("1"))
    );
    assert!(gather[0].signature_ok);
    let completed = &hits[3];
    let seconds: u64 = completed
        .get("CallDuration")
        .and_then(|d| d.parse().ok())
        .expect("CallDuration");
    // "Press one to confirm" (2 s) + pressing (1.3 s) + "Thank you, goodbye" (1.2 s).
    assert!((4..=6).contains(&seconds), "{seconds}");
    assert_eq!(completed.get("Duration"), Some("1"));
    let call = w.until_final(&sid).await;
    assert_eq!(call["status"], "completed");
    assert_eq!(call["duration"], seconds.to_string());
    assert!(call["end_time"].is_string() && call["start_time"].is_string());
}

#[tokio::test]
async fn machine_with_detect_message_end_is_announced_on_the_voice_request() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Machine, &[])];
    let w = world(c, &[("/voice", GATHER_DOC)]).await;
    let (_, body) = w
        .create(
            "+14155550100",
            &[("MachineDetection", "DetectMessageEnd"), ("Timeout", "60")],
        )
        .await;
    let sid = sid_of(&body);
    let voice = w.until_hit(&sid, "/voice", |_| true).await;
    assert_eq!(voice[0].get("AnsweredBy"), Some("machine_end_beep"));
    assert!(voice[0].signature_ok);
    let call = w.until_final(&sid).await;
    assert_eq!(
        (call["status"].as_str(), call["answered_by"].as_str()),
        (Some("completed"), Some("machine_end_beep"))
    );
    assert!(
        w.hits(&sid, "/gather").is_empty(),
        "a machine never answers a gather"
    );
}

#[tokio::test]
async fn a_short_timeout_turns_a_slow_human_into_no_answer() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Human, &["1"])];
    let w = world(c, &[("/voice", THANKS_DOC)]).await;
    // Humans pick up after 3 s at the earliest.
    let (_, body) = w.create("+14155550100", &[("Timeout", "2")]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    let last = hits.last().expect("final callback");
    assert_eq!(
        (last.get("CallStatus"), last.get("SipResponseCode")),
        (Some("no-answer"), Some("487"))
    );
    assert_eq!(w.until_final(&sid).await["duration"], Value::Null);
}

#[tokio::test]
async fn time_limit_cuts_the_call() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Human, &[])];
    let w = world(
        c,
        &[("/voice", r#"<Response><Pause length="600"/></Response>"#)],
    )
    .await;
    let (_, body) = w.create("+14155550100", &[("TimeLimit", "7")]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    assert_eq!(hits.last().and_then(|h| h.get("CallDuration")), Some("7"));
}

#[tokio::test]
async fn dropped_callbacks_are_not_sent_but_the_call_still_ends() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Busy, &[])];
    c.faults.drop_callback_rate = 1.0;
    let w = world(c, &[]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    assert_eq!(w.until_final(&sid).await["status"], "busy");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(w.hits(&sid, "/status").is_empty());
}

#[tokio::test]
async fn rate_429_refuses_every_create_with_code_20429() {
    let mut c = config(1);
    c.faults.rate_429 = 1.0;
    let w = world(c, &[]).await;
    let (status, body) = w.create("+14155550100", &[]).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(20429))
    );
    let (_, list) = w
        .get(&format!(
            "/2010-04-01/Accounts/{}/Calls.json",
            w.sim.account_sid()
        ))
        .await;
    assert_eq!(list["calls"].as_array().map(Vec::len), Some(0));
    let log = w.sim.requests();
    assert_eq!(
        (log.len(), log[0].status, log[0].error_code),
        (1, 429, Some(20429))
    );
}

#[tokio::test]
async fn fetch_and_list_filter_and_page() {
    let mut c = config(1);
    c.rules = vec![
        rule("+1415*", BehaviorKind::Failed, &[]),
        rule("+1212*", BehaviorKind::Busy, &[]),
    ];
    let w = world(c, &[]).await;
    let mut sids = Vec::new();
    for to in [
        "+14155550001",
        "+14155550002",
        "+12125550003",
        "+14155550001",
        "+12125550004",
    ] {
        let (_, body) = w.create(to, &[]).await;
        sids.push(sid_of(&body));
    }
    for sid in &sids {
        w.until_final(sid).await;
    }
    let base = format!("/2010-04-01/Accounts/{}/Calls.json", w.sim.account_sid());
    let count = |v: &Value| v["calls"].as_array().map_or(0, Vec::len);
    let (_, by_to) = w.get(&format!("{base}?To=%2B14155550001")).await;
    assert_eq!(count(&by_to), 2);
    assert_eq!(by_to["calls"][0]["sid"], sids[3].as_str(), "newest first");
    let (_, busy) = w.get(&format!("{base}?Status=busy")).await;
    assert_eq!(count(&busy), 2);
    let today = crate::clock::Clock::now(&crate::clock::SystemClock).date_naive();
    let tomorrow = today.succ_opt().expect("a tomorrow");
    let (_, since) = w.get(&format!("{base}?StartTime%3E={today}")).await;
    assert_eq!(count(&since), 5);
    let (_, before) = w.get(&format!("{base}?StartTime%3C={today}")).await;
    assert_eq!(count(&before), 0);
    let (_, later) = w.get(&format!("{base}?StartTime%3E={tomorrow}")).await;
    assert_eq!(count(&later), 0);
    // Paging: 2 + 2 + 1, following next_page_uri.
    let (_, mut page) = w.get(&format!("{base}?PageSize=2")).await;
    let mut seen = Vec::new();
    loop {
        assert_eq!(page["page_size"], 2);
        seen.extend(
            page["calls"]
                .as_array()
                .expect("calls")
                .iter()
                .map(|c| c["sid"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_page_uri"].as_str() {
            Some(next) => page = w.get(next).await.1,
            None => break,
        }
    }
    let expected: Vec<String> = sids.iter().rev().cloned().collect();
    assert_eq!(seen, expected);
    let (status, missing) = w
        .get(&format!(
            "/2010-04-01/Accounts/{}/Calls/CA{}.json",
            w.sim.account_sid(),
            "0".repeat(32)
        ))
        .await;
    assert_eq!(
        (status, missing["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(20404))
    );
    let fetched = w.fetch(&sids[0]).await;
    assert_eq!(
        (fetched["status"].as_str(), fetched["duration"].as_str()),
        (Some("failed"), None)
    );
}

/// Creates the same calls on a fresh simulator and returns each call's final status.
async fn outcomes(seed: u64) -> Vec<String> {
    let mut c = config(seed);
    c.mix.busy = 20.0;
    c.mix.no_answer = 20.0;
    c.mix.failed = 20.0;
    c.mix.machine = 20.0;
    c.mix.silent = 0.0;
    let w = world(c, &[("/voice", THANKS_DOC)]).await;
    let numbers = [
        "+14155550001",
        "+14155550002",
        "+14155550003",
        "+14155550004",
        "+14155550005",
        "+14155550006",
    ];
    let mut sids = Vec::new();
    for to in numbers.iter().chain(numbers.iter()) {
        let (_, body) = w.create(to, &[("MachineDetection", "Enable")]).await;
        sids.push(sid_of(&body));
    }
    let mut result = Vec::new();
    for sid in &sids {
        let call = w.until_final(sid).await;
        result.push(format!(
            "{}/{}",
            call["status"].as_str().unwrap_or(""),
            call["answered_by"].as_str().unwrap_or("")
        ));
    }
    result
}

#[tokio::test]
async fn the_same_seed_gives_the_same_outcomes() {
    let first = outcomes(7).await;
    assert_eq!(first, outcomes(7).await);
    let distinct: std::collections::HashSet<_> = first.iter().collect();
    assert!(
        distinct.len() >= 3,
        "the mix should vary outcomes: {first:?}"
    );
    assert_ne!(
        first,
        outcomes(8).await,
        "another seed draws other outcomes"
    );
}

#[test]
fn an_empty_simulator_table_is_valid_and_redacts_its_token() {
    let config: SimConfig = toml::from_str("").expect("empty table");
    assert_eq!(config.account_sid, DEFAULT_ACCOUNT_SID);
    assert!(config.validate().is_ok());
    assert!(!format!("{config:?}").contains(DEFAULT_AUTH_TOKEN));
    let full: SimConfig = toml::from_str(
        r#"
        seed = 42
        time_scale = 1.0
        [[rules]]
        pattern = "+1555*"
        behavior = "no-answer"
        [[rules]]
        pattern = "+15551230001"
        behavior = "human"
        digits = ["2", "1"]
        speech = ["yes"]
        [mix]
        busy = 5
        human_digits = ["1"]
        [faults]
        rate_429 = 0.1
        slow_ms = 500
        "#,
    )
    .expect("full table");
    assert!(full.validate().is_ok());
    assert_eq!(full.rules[0].behavior(), Behavior::NoAnswer);
    assert!(full.rules[1].matches("+15551230001") && !full.rules[1].matches("+155512300011"));
    assert!(full.rules[0].matches("+15559999999"));
    let unknown = toml::from_str::<SimConfig>("sead = 1").expect_err("unknown key");
    assert!(unknown.to_string().contains("sead"), "{unknown}");
}

#[test]
fn invalid_settings_are_named() {
    let mut c = SimConfig::default();
    c.rules = vec![rule("1555*", BehaviorKind::Busy, &[])];
    assert_eq!(
        c.validate().map_err(|e| e.to_string()),
        Err("`simulator.rules[0].pattern` `1555*` is neither an E.164 number nor a prefix ending in `*`; \
             write e.g. `+15551234567` or `+1555*`"
            .to_owned())
    );
    c.rules = vec![rule("+1555*", BehaviorKind::Busy, &["1"])];
    assert!(matches!(
        c.validate(),
        Err(SimConfigError::AnswersWithoutHuman { index: 0, .. })
    ));
    c.rules.clear();
    c.mix.busy = 90.0;
    assert_eq!(c.validate(), Err(SimConfigError::MixTotal(125.0)));
    c.mix.busy = 0.0;
    c.faults.rate_500 = 2.0;
    assert_eq!(c.validate(), Err(SimConfigError::Fraction("rate_500")));
    c.faults.rate_500 = 0.0;
    c.time_scale = 0.0;
    assert!(c.validate().is_err());
}

#[tokio::test]
async fn a_status_update_cancels_a_ringing_call() {
    let mut c = config(1);
    c.time_scale = 0.05;
    c.rules = vec![rule("*", BehaviorKind::Human, &[])];
    let w = world(c, &[("/voice", THANKS_DOC)]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    w.until_hit(&sid, "/status", |h| h.get("CallStatus") == Some("ringing"))
        .await;
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Calls/{sid}.json",
        w.sim.base_url(),
        w.sim.account_sid()
    );
    let response = w
        .http
        .post(url)
        .basic_auth(w.sim.account_sid(), Some(w.sim.auth_token()))
        .form(&[("Status", "canceled")])
        .send()
        .await
        .expect("update request");
    assert_eq!(response.status().as_u16(), 200);
    let call: Value = response.json().await.expect("call json");
    assert_eq!(call["status"], "canceled");
    let hits = w.callbacks_until(&sid, "canceled").await;
    assert_eq!(hits.last().and_then(|h| h.get("CallDuration")), Some("0"));
    assert!(w.hits(&sid, "/voice").is_empty());
}
