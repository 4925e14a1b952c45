//! Property tests (fuzzing in CI, SPEC §6.2, §10) of the callback routes: arbitrary bodies and
//! query strings, POSTed to `/twilio/{status,voice,gather,record}` of the real router over the
//! SQLite fixture. Unsigned or wrongly signed: always 403 and the database unchanged. Signed:
//! never a panic, never 5xx.
//!
//! Each request costs a database round trip, so these run [`CI_CASES`] cases unless
//! `PROPTEST_CASES` asks for more; failures are kept in
//! `proptest-regressions/server/tests/fuzz.txt` and replayed first.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

use super::*;

/// Cases per property in CI.
const CI_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_CASES);
    Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    }
}

const ROUTES: &[&str] = &[
    "/twilio/status",
    "/twilio/voice",
    "/twilio/gather",
    "/twilio/record",
];

const KEYS: &[&str] = &[
    "CallSid",
    "CallStatus",
    "SequenceNumber",
    "Timestamp",
    "CallDuration",
    "AnsweredBy",
    "Digits",
    "SpeechResult",
    "Confidence",
    "RecordingUrl",
];

const VALUES: &[&str] = &[
    SID,
    "",
    "completed",
    "in-progress",
    "ringing",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "queued",
    "machine_end_beep",
    "machine_start",
    "human",
    "fax",
    "1",
    "9",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "1e400",
    "NaN",
    "Mon, 23 Nov 2026 15:00:00 +0000",
    "Mon, 31 Feb 2026 25:00:00 +9999",
    "yes",
];

/// What a callback carries: a route, a query string, a body.
#[derive(Debug, Clone)]
struct Callback {
    route: &'static str,
    query: String,
    body: Vec<u8>,
    token: Option<String>,
}

fn query(attempt: i64) -> impl Strategy<Value = String> {
    let step = prop_oneof![
        3 => Just("ask".to_owned()),
        2 => select(&["ask", "bye", "nope", "", "%FF", "a%00b", "ask&step=bye"][..])
            .prop_map(str::to_owned),
        1 => "[A-Za-z0-9%+]{0,8}",
    ];
    prop_oneof![
        6 => (Just(attempt), prop::option::weighted(0.7, step)).prop_map(|(a, s)| match s {
            Some(s) => format!("attempt={a}&step={s}"),
            None => format!("attempt={a}"),
        }),
        1 => "attempt=-?[0-9]{0,22}",
        1 => "[A-Za-z0-9=&%+._~!$'()*,;:@/?-]{0,40}",
    ]
}

fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![4 => select(KEYS).prop_map(str::to_owned), 1 => "\\PC{0,6}"];
    let value = prop_oneof![4 => select(VALUES).prop_map(str::to_owned), 1 => "\\PC{0,12}"];
    // mostly this attempt's CallSid first, so requests get past the attempt check
    let sid = prop::option::weighted(0.85, Just(("CallSid".to_owned(), SID.to_owned())));
    let status = prop::option::weighted(
        0.5,
        select(VALUES).prop_map(|v| ("CallStatus".to_owned(), v.to_owned())),
    );
    (sid, status, prop::collection::vec((key, value), 0..8)).prop_map(|(sid, status, pairs)| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(sid.into_iter().chain(status).chain(pairs))
            .finish()
            .into_bytes()
    })
}

fn callback(attempt: i64) -> impl Strategy<Value = Callback> {
    let body = prop_oneof![
        6 => form_body(),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => "[A-Za-z0-9=&%+]{0,80}".prop_map(String::into_bytes),
    ];
    (
        select(ROUTES),
        query(attempt),
        body,
        prop::option::of("[A-Za-z0-9-]{0,12}"),
    )
        .prop_map(|(route, query, body, token)| Callback {
            route,
            query,
            body,
            token,
        })
}

/// How an unsigned request fails to be signed.
#[derive(Debug, Clone)]
enum Forgery {
    None,
    Garbage(String),
    WrongToken,
    OtherUrl,
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        Just(Forgery::None),
        "[A-Za-z0-9+/=]{0,40}".prop_map(Forgery::Garbage),
        Just(Forgery::WrongToken),
        Just(Forgery::OtherUrl),
    ]
}

/// The request, signed over what the server will see with `token` and `url` (or not at all).
fn request(c: &Callback, sign_with: Option<(&str, &str)>) -> Option<Request<Body>> {
    let path_and_query = format!("{}?{}", c.route, c.query);
    let uri: axum::http::Uri = path_and_query.parse().ok()?;
    let mut req = Request::post(uri).header("content-type", "application/x-www-form-urlencoded");
    if let Some((token, url)) = sign_with {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&c.body).into_owned().collect();
        req = req.header("x-twilio-signature", signature::sign(token, url, &pairs));
    }
    if let Some(t) = &c.token {
        req = req.header("i-twilio-idempotency-token", t.as_str());
    }
    req.body(Body::from(c.body.clone())).ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn unsigned_callbacks_are_403_and_change_nothing() {
    let f = fixture();
    let rt = runtime();
    let before = dump(&f.state);
    let mut runner = TestRunner::new(config());
    let result = runner.run(&(callback(f.attempt), forgery()), |(c, forgery)| {
        let url = format!("https://dialer.example.com{}?{}", c.route, c.query);
        let other = format!("https://dialer.example.com{}?attempt=999", c.route);
        let built = match &forgery {
            Forgery::None => request(&c, None),
            Forgery::Garbage(sig) => request(&c, None).and_then(|mut r| {
                r.headers_mut().insert(
                    "x-twilio-signature",
                    axum::http::HeaderValue::from_str(sig).ok()?,
                );
                Some(r)
            }),
            Forgery::WrongToken => request(&c, Some(("wrong-token", &url))),
            Forgery::OtherUrl => request(&c, Some((TOKEN, &other))),
        };
        let Some(req) = built else {
            return Ok(());
        };
        let (code, _) = rt.block_on(send(&f.state, req));
        prop_assert_eq!(code, StatusCode::FORBIDDEN);
        prop_assert_eq!(dump(&f.state), before.as_str());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn signed_callbacks_with_any_body_never_fail_the_server() {
    let f = fixture();
    let rt = runtime();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&callback(f.attempt), |c| {
        let url = format!("https://dialer.example.com{}?{}", c.route, c.query);
        let Some(req) = request(&c, Some((TOKEN, &url))) else {
            return Ok(());
        };
        let (code, body) = rt.block_on(send(&f.state, req));
        prop_assert!(
            !code.is_server_error() && code != StatusCode::FORBIDDEN,
            "{code}: {body}"
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // the server still answers after all that
    let (code, _) = rt.block_on(send(
        &f.state,
        Request::get("/health")
            .body(Body::empty())
            .expect("request"),
    ));
    assert_eq!(code, StatusCode::OK);
}
