//! Handler tests: `router(state).oneshot(request)` against a real SQLite file.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::clock::FixedClock;
use crate::config::Secret;
use crate::shared::Shared;
use crate::store::{Db, NewContact, Store};
use crate::twilio::signature;

const TOKEN: &str = "test-token";
const SID: &str = "CA0123456789abcdef0123456789abcdef";

const CAMPAIGN: &str = r#"{
  "name": "t", "calling_hours_start": "00:00", "calling_hours_end": "24:00",
  "max_retries": 2, "retry_delays": {"busy": "10m"},
  "script": {
    "start": "ask",
    "steps": {
      "ask": {
        "say": "Hi {{name}} <&>",
        "gather": {
          "input": "dtmf speech", "num_digits": 1,
          "options": [
            {"digits": "1", "speech": ["yes"], "outcome": "confirmed", "next": "bye"},
            {"digits": "9", "outcome": "opted_out", "opt_out": true, "next": "bye"}
          ],
          "no_input": "bye", "no_match": "ask"
        }
      },
      "bye": {"say": "Bye", "hangup": true}
    },
    "voicemail": {"say": "Sorry we missed you {{name}}"}
  }
}"#;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T15:00:00Z")
        .expect("instant")
        .with_timezone(&Utc)
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: Shared,
    attempt: i64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("t.db")).expect("store");
    let attempt = db
        .write_blocking(|tx| {
            let (cid, _) = tx.upsert_campaign("t", CAMPAIGN, false, now())?;
            let contact = NewContact {
                phone: "+12125550101".into(),
                ext_id: Some("7".into()),
                name: Some("Ann".into()),
                zones: None,
                fields: "{}".into(),
            };
            tx.import_contacts(cid, "c.csv", &[contact], now())?;
            let attempt = tx.claim_attempt(1, 0, now())?.expect("claimed");
            assert!(tx.bind_call_sid(attempt.id, SID)?);
            Ok::<_, crate::store::StoreError>(attempt)
        })
        .expect("fixture");
    let url = url::Url::parse("https://dialer.example.com").expect("url");
    let state = Shared::new(
        db,
        &url,
        Secret::new(TOKEN),
        chrono_tz::UTC,
        Arc::new(FixedClock(now())),
    );
    state.in_flight.adopt(attempt.id, attempt.campaign_id);
    Fixture {
        _dir: dir,
        state,
        attempt: attempt.id,
    }
}

/// A read connection to the fixture's database (raw SQL: test only).
fn reader(state: &Shared) -> Store {
    Store::open_reader(state.db.path()).expect("reader")
}

fn signed(path_and_query: &str, params: &[(&str, &str)], token: Option<&str>) -> Request<Body> {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let mut req =
        Request::post(path_and_query).header("content-type", "application/x-www-form-urlencoded");
    if let Some(t) = token {
        let sig = signature::sign(
            t,
            &format!("https://dialer.example.com{path_and_query}"),
            &pairs,
        );
        req = req.header("x-twilio-signature", sig);
    }
    req.body(Body::from(body)).expect("request")
}

async fn send(state: &Shared, req: Request<Body>) -> (StatusCode, String) {
    let res = router(state.clone()).oneshot(req).await.expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn dump(state: &Shared) -> String {
    let db = reader(state);
    let mut out = String::new();
    for table in ["attempts", "contacts", "call_events", "answers", "dnc"] {
        let mut stmt = db
            .conn()
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
            .expect("select");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).map(|v| format!("{v:?}"))))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .expect("query");
        for row in rows {
            out.push_str(&format!("{table}: {}\n", row.expect("row")));
        }
    }
    out
}

fn status_params<'a>(status: &'a str, seq: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CallSid", SID),
        ("CallStatus", status),
        ("SequenceNumber", seq),
        ("CallDuration", "42"),
    ]
}

#[tokio::test]
async fn unsigned_and_forged_callbacks_are_refused_and_change_nothing() {
    let f = fixture();
    let before = dump(&f.state);
    let path = format!("/twilio/status?attempt={}", f.attempt);
    let params = status_params("completed", "3");
    assert_eq!(
        send(&f.state, signed(&path, &params, None)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&f.state, signed(&path, &params, Some("wrong-token")))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // signed for another attempt
    let mut forged = signed(
        &format!("/twilio/status?attempt={}", f.attempt + 1),
        &params,
        Some(TOKEN),
    );
    *forged.uri_mut() = path.parse().expect("uri");
    assert_eq!(send(&f.state, forged).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        send(
            &f.state,
            signed(
                &format!("/twilio/voice?attempt={}", f.attempt),
                &[("CallSid", SID)],
                None
            )
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(dump(&f.state), before);
    assert!(
        f.state
            .metrics
            .render(&[])
            .contains("dialer_signatures_rejected_total 4")
    );
}

#[tokio::test]
async fn unknown_attempt_or_mismatched_sid_is_404_and_changes_nothing() {
    let f = fixture();
    let before = dump(&f.state);
    let params = status_params("completed", "3");
    let (code, _) = send(
        &f.state,
        signed("/twilio/status?attempt=999", &params, Some(TOKEN)),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let other = vec![
        ("CallSid", "CAffffffffffffffffffffffffffffffff"),
        ("CallStatus", "completed"),
        ("SequenceNumber", "3"),
    ];
    let (code, _) = send(
        &f.state,
        signed(
            &format!("/twilio/status?attempt={}", f.attempt),
            &other,
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(dump(&f.state), before);
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let f = fixture();
    let big = "x".repeat(BODY_LIMIT + 1);
    let params = vec![("CallSid", SID), ("Junk", big.as_str())];
    let (code, _) = send(
        &f.state,
        signed(
            &format!("/twilio/status?attempt={}", f.attempt),
            &params,
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn status_events_are_ordered_idempotent_and_all_kept() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    for (status, seq) in [
        ("initiated", "0"),
        ("in-progress", "2"),
        ("ringing", "1"),
        ("completed", "3"),
        ("completed", "3"),
        ("ringing", "1"),
    ] {
        let (code, _) = send(
            &f.state,
            signed(&path, &status_params(status, seq), Some(TOKEN)),
        )
        .await;
        assert_eq!(code, StatusCode::NO_CONTENT);
    }
    let db = reader(&f.state);
    let (status, reason, duration, events): (String, String, i64, i64) = db
        .conn()
        .query_row(
            "SELECT status, reason, duration_seconds, (SELECT count(*) FROM call_events) FROM attempts WHERE id = ?1",
            [f.attempt],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("attempt");
    assert_eq!(
        (status.as_str(), reason.as_str(), duration, events),
        ("completed", "completed", 42, 6)
    );
    let (state, outcome): (String, String) = db
        .conn()
        .query_row("SELECT state, outcome FROM contacts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("contact");
    assert_eq!(
        (state.as_str(), outcome.as_str()),
        ("completed", "answered")
    );
}

#[tokio::test]
async fn busy_schedules_the_retry_from_its_delay() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    send(
        &f.state,
        signed(&path, &status_params("busy", "2"), Some(TOKEN)),
    )
    .await;
    let (state, next, reason): (String, i64, String) = reader(&f.state)
        .conn()
        .query_row(
            "SELECT state, next_attempt_at, last_reason FROM contacts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("contact");
    assert_eq!(
        (state.as_str(), next, reason.as_str()),
        ("open", now().timestamp() + 600, "busy")
    );
}

#[tokio::test]
async fn voice_renders_the_start_step_with_escaped_fields() {
    let f = fixture();
    let (code, body) = send(
        &f.state,
        signed(
            &format!("/twilio/voice?attempt={}", f.attempt),
            &[("CallSid", SID), ("CallStatus", "in-progress")],
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("<Say>Hi Ann &lt;&amp;&gt;</Say>"), "{body}");
    assert!(
        body.contains(&format!(
            "action=\"https://dialer.example.com/twilio/gather?attempt={}&amp;step=ask\"",
            f.attempt
        )),
        "{body}"
    );
}

#[tokio::test]
async fn machine_gets_the_voicemail_and_the_reason_machine() {
    let f = fixture();
    let (_, body) = send(
        &f.state,
        signed(
            &format!("/twilio/voice?attempt={}", f.attempt),
            &[("CallSid", SID), ("AnsweredBy", "machine_end_beep")],
            Some(TOKEN),
        ),
    )
    .await;
    assert!(body.contains("Sorry we missed you Ann"), "{body}");
    send(
        &f.state,
        signed(
            &format!("/twilio/status?attempt={}", f.attempt),
            &status_params("completed", "3"),
            Some(TOKEN),
        ),
    )
    .await;
    let reason: String = reader(&f.state)
        .conn()
        .query_row("SELECT reason FROM attempts", [], |r| r.get(0))
        .expect("reason");
    assert_eq!(reason, "machine");
}

#[tokio::test]
async fn opt_out_digit_puts_the_number_on_dnc_at_once() {
    let f = fixture();
    let path = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    let (code, body) = send(
        &f.state,
        signed(&path, &[("CallSid", SID), ("Digits", "9")], Some(TOKEN)),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("<Say>Bye</Say>") && body.contains("<Hangup/>"),
        "{body}"
    );
    let db = reader(&f.state);
    assert!(db.dnc_contains("+12125550101").expect("dnc"));
    let state: String = db
        .conn()
        .query_row("SELECT state FROM contacts", [], |r| r.get(0))
        .expect("state");
    assert_eq!(state, "opted_out");
}

#[tokio::test]
async fn three_unmatched_answers_go_to_no_input() {
    let f = fixture();
    let path = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    for i in 1..=3 {
        let (_, body) = send(
            &f.state,
            signed(&path, &[("CallSid", SID), ("Digits", "5")], Some(TOKEN)),
        )
        .await;
        if i < 3 {
            assert!(
                body.contains("<Gather"),
                "strike {i} repeats the step: {body}"
            );
        } else {
            assert!(
                body.contains("<Say>Bye</Say>") && !body.contains("<Gather"),
                "third strike goes to no_input: {body}"
            );
        }
    }
    let stored: i64 = reader(&f.state)
        .conn()
        .query_row("SELECT count(*) FROM answers WHERE matched = 0", [], |r| {
            r.get(0)
        })
        .expect("answers");
    assert_eq!(stored, 3);
}

#[tokio::test]
async fn speech_answer_sets_outcome_and_last_answer() {
    let f = fixture();
    let path = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    send(
        &f.state,
        signed(
            &path,
            &[
                ("CallSid", SID),
                ("SpeechResult", "Yes please"),
                ("Confidence", "0.92"),
            ],
            Some(TOKEN),
        ),
    )
    .await;
    let (outcome, speech): (String, String) = reader(&f.state)
        .conn()
        .query_row("SELECT outcome, speech FROM attempts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("attempt");
    assert_eq!(
        (outcome.as_str(), speech.as_str()),
        ("confirmed", "Yes please")
    );
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let f = fixture();
    let (code, body) = send(
        &f.state,
        Request::get("/health").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::OK, "{\"status\":\"ok\"}")
    );
    let (code, body) = send(
        &f.state,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("dialer_calls_placed_total 0")
            && body.contains("dialer_open_calls{campaign=\"t\"} 1")
            && body.contains("dialer_ready_contacts{campaign=\"t\"} 1"),
        "{body}"
    );
}
