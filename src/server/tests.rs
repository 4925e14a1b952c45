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

pub(super) const TOKEN: &str = "test-token";
pub(super) const SID: &str = "CA0123456789abcdef0123456789abcdef";

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

pub(super) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T15:00:00Z")
        .expect("instant")
        .with_timezone(&Utc)
}

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) state: Shared,
    pub(super) attempt: i64,
}

pub(super) fn fixture() -> Fixture {
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
pub(super) fn reader(state: &Shared) -> Store {
    Store::open_reader(state.db.path().expect("a SQLite database")).expect("reader")
}

pub(super) fn signed(
    path_and_query: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
) -> Request<Body> {
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

pub(super) async fn send(state: &Shared, req: Request<Body>) -> (StatusCode, String) {
    let res = router(state.clone()).oneshot(req).await.expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub(super) fn dump(state: &Shared) -> String {
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

pub(super) fn status_params<'a>(status: &'a str, seq: &'a str) -> Vec<(&'a str, &'a str)> {
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
async fn status_events_are_ordered_idempotent_and_kept_once() {
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
        ("completed", "completed", 42, 4),
        "the repeated deliveries of `completed` 3 and `ringing` 1 are stored once"
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

/// A request with Twilio's retry header (the same token on every delivery of one request).
fn with_token(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut().insert(
        "i-twilio-idempotency-token",
        token.parse().expect("header value"),
    );
    req
}

/// The attempt's `(status, last_sequence, ended)`.
fn progress(state: &Shared, attempt: i64) -> (String, i64, bool) {
    reader(state)
        .conn()
        .query_row(
            "SELECT status, last_sequence, ended_at IS NOT NULL FROM attempts WHERE id = ?1",
            [attempt],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("attempt")
}

pub(super) fn count(state: &Shared, sql: &str) -> i64 {
    reader(state)
        .conn()
        .query_row(sql, [], |r| r.get(0))
        .expect("count")
}

#[tokio::test]
async fn gather_after_the_attempt_ended_is_kept_but_changes_nothing() {
    let f = fixture();
    let (code, _) = send(
        &f.state,
        signed(
            &format!("/twilio/status?attempt={}", f.attempt),
            &status_params("completed", "3"),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let attempt_and_contact = |state: &Shared| {
        dump(state)
            .lines()
            .filter(|l| !l.starts_with("answers:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = attempt_and_contact(&f.state);
    // the opt-out digit, and a matched speech answer with an outcome
    let path = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    for answer in [("Digits", "9"), ("SpeechResult", "yes")] {
        let (code, body) = send(
            &f.state,
            signed(&path, &[("CallSid", SID), answer], Some(TOKEN)),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.contains("<Hangup/>") && !body.contains("<Say>"),
            "a late answer is answered with a hangup: {body}"
        );
    }
    assert_eq!(attempt_and_contact(&f.state), before);
    assert!(!reader(&f.state).dnc_contains("+12125550101").expect("dnc"));
    assert_eq!(
        count(&f.state, "SELECT count(*) FROM answers WHERE late = 1"),
        2,
        "late answers are kept for audit"
    );
}

#[tokio::test]
async fn status_without_sequence_number_never_blocks_later_events() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    let event = |status: &'static str, seq: Option<&'static str>, at: &'static str| {
        let mut p = vec![("CallSid", SID), ("CallStatus", status), ("Timestamp", at)];
        if let Some(s) = seq {
            p.push(("SequenceNumber", s));
        }
        p
    };
    let steps = [
        (
            event("initiated", Some("0"), "Mon, 23 Nov 2026 15:00:01 +0000"),
            ("initiated", 0),
        ),
        (
            event("ringing", None, "Mon, 23 Nov 2026 15:00:02 +0000"),
            ("ringing", 0),
        ),
        (
            event("in-progress", Some("2"), "Mon, 23 Nov 2026 15:00:05 +0000"),
            ("in-progress", 2),
        ),
        // older by its Timestamp: ignored
        (
            event("ringing", None, "Mon, 23 Nov 2026 15:00:03 +0000"),
            ("in-progress", 2),
        ),
        // the same second as the last event, but an earlier status: ignored
        (
            event("ringing", None, "Mon, 23 Nov 2026 15:00:05 +0000"),
            ("in-progress", 2),
        ),
    ];
    for (params, (status, seq)) in steps {
        let (code, _) = send(&f.state, signed(&path, &params, Some(TOKEN))).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(
            progress(&f.state, f.attempt),
            (status.to_owned(), seq, false),
            "after {params:?}"
        );
    }
    let (code, _) = send(
        &f.state,
        signed(
            &path,
            &event("completed", Some("3"), "Mon, 23 Nov 2026 15:00:09 +0000"),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(
        progress(&f.state, f.attempt),
        ("completed".to_owned(), 3, true)
    );
    assert_eq!(count(&f.state, "SELECT count(*) FROM call_events"), 6);
}

#[tokio::test]
async fn final_status_without_sequence_number_ends_the_attempt_once() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    let completed = [
        ("CallSid", SID),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
    ];
    for _ in 0..2 {
        let (code, _) = send(&f.state, signed(&path, &completed, Some(TOKEN))).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
    }
    assert_eq!(
        progress(&f.state, f.attempt),
        ("completed".to_owned(), -1, true)
    );
    assert!(
        f.state
            .metrics
            .render(&[])
            .contains("dialer_calls_ended_total{reason=\"completed\"} 1"),
        "{}",
        f.state.metrics.render(&[])
    );
}

#[tokio::test]
async fn unknown_call_status_is_logged_but_never_becomes_the_status() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    for (status, seq) in [("ringing", "1"), ("foo", "2"), ("FOO", "3")] {
        let (code, _) = send(
            &f.state,
            signed(&path, &status_params(status, seq), Some(TOKEN)),
        )
        .await;
        assert_eq!(code, StatusCode::NO_CONTENT);
    }
    let unknown = [("CallSid", SID), ("CallStatus", "foo")];
    send(&f.state, signed(&path, &unknown, Some(TOKEN))).await;
    assert_eq!(
        progress(&f.state, f.attempt),
        ("ringing".to_owned(), 1, false)
    );
    assert_eq!(
        count(
            &f.state,
            "SELECT count(*) FROM call_events WHERE lower(call_status) = 'foo'"
        ),
        3,
        "unknown statuses are kept in the event log"
    );
    // a later known event still applies
    send(
        &f.state,
        signed(&path, &status_params("in-progress", "4"), Some(TOKEN)),
    )
    .await;
    assert_eq!(
        progress(&f.state, f.attempt),
        ("in-progress".to_owned(), 4, false)
    );
}

#[tokio::test]
async fn signature_is_checked_before_the_query_is_parsed() {
    let f = fixture();
    let before = dump(&f.state);
    for route in ["voice", "gather", "record", "status"] {
        for query in [
            "?attempt=abc",
            "?attempt=",
            "",
            "?attempt=1&step=%ZZ&attempt=x",
        ] {
            let path = format!("/twilio/{route}{query}");
            let params = status_params("completed", "3");
            assert_eq!(
                send(&f.state, signed(&path, &params, None)).await.0,
                StatusCode::FORBIDDEN,
                "unsigned {path}"
            );
            assert_eq!(
                send(&f.state, signed(&path, &params, Some("wrong-token")))
                    .await
                    .0,
                StatusCode::FORBIDDEN,
                "forged {path}"
            );
            let (code, _) = send(&f.state, signed(&path, &params, Some(TOKEN))).await;
            assert!(
                code == StatusCode::BAD_REQUEST || code == StatusCode::NOT_FOUND,
                "signed {path}: {code}"
            );
        }
    }
    assert_eq!(dump(&f.state), before);
}

#[tokio::test]
async fn repeated_status_delivery_is_stored_once() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    let ringing = status_params("ringing", "1");
    for _ in 0..2 {
        let req = with_token(signed(&path, &ringing, Some(TOKEN)), "tok-ringing");
        assert_eq!(send(&f.state, req).await.0, StatusCode::NO_CONTENT);
    }
    // a retry without the header, matched by CallSid + SequenceNumber
    assert_eq!(
        send(&f.state, signed(&path, &ringing, Some(TOKEN))).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(count(&f.state, "SELECT count(*) FROM call_events"), 1);
    // the same token on an event without SequenceNumber
    let unsequenced = [("CallSid", SID), ("CallStatus", "in-progress")];
    for _ in 0..2 {
        let req = with_token(signed(&path, &unsequenced, Some(TOKEN)), "tok-answered");
        assert_eq!(send(&f.state, req).await.0, StatusCode::NO_CONTENT);
    }
    assert_eq!(count(&f.state, "SELECT count(*) FROM call_events"), 2);
    let completed = status_params("completed", "3");
    let req = with_token(signed(&path, &completed, Some(TOKEN)), "tok-completed");
    assert_eq!(send(&f.state, req).await.0, StatusCode::NO_CONTENT);
    let after = dump(&f.state);
    let req = with_token(signed(&path, &completed, Some(TOKEN)), "tok-completed");
    assert_eq!(send(&f.state, req).await.0, StatusCode::NO_CONTENT);
    assert_eq!(dump(&f.state), after, "a replay changes nothing");
    assert_eq!(
        count(
            &f.state,
            "SELECT count(*) FROM call_events WHERE idempotency_token IS NOT NULL"
        ),
        3
    );
}

#[tokio::test]
async fn repeated_gather_delivery_is_stored_once_and_answered_alike() {
    let f = fixture();
    let path = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    let unmatched = [("CallSid", SID), ("Digits", "5")];
    let mut first = Vec::new();
    for i in 1..=3 {
        let token = format!("tok-{i}");
        let (code, body) = send(
            &f.state,
            with_token(signed(&path, &unmatched, Some(TOKEN)), &token),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let after = dump(&f.state);
        // Twilio's retry of the same request: the same answer, nothing stored again
        let (code, again) = send(
            &f.state,
            with_token(signed(&path, &unmatched, Some(TOKEN)), &token),
        )
        .await;
        assert_eq!(
            (code, &again),
            (StatusCode::OK, &body),
            "replay of strike {i}"
        );
        assert_eq!(
            dump(&f.state),
            after,
            "replay of strike {i} changes nothing"
        );
        first.push(body);
    }
    assert!(first[1].contains("<Gather") && !first[2].contains("<Gather"));
    // an early delivery retried after later ones is still answered as it was the first time
    let (_, late_replay) = send(
        &f.state,
        with_token(signed(&path, &unmatched, Some(TOKEN)), "tok-1"),
    )
    .await;
    assert_eq!(late_replay, first[0]);
    assert_eq!(count(&f.state, "SELECT count(*) FROM answers"), 3);
    // an opt-out retried after the call ended is still the same answer, stored once
    let opt_out = [("CallSid", SID), ("Digits", "9")];
    let (_, body) = send(
        &f.state,
        with_token(signed(&path, &opt_out, Some(TOKEN)), "tok-9"),
    )
    .await;
    send(
        &f.state,
        signed(
            &format!("/twilio/status?attempt={}", f.attempt),
            &status_params("completed", "3"),
            Some(TOKEN),
        ),
    )
    .await;
    let after = dump(&f.state);
    let (_, again) = send(
        &f.state,
        with_token(signed(&path, &opt_out, Some(TOKEN)), "tok-9"),
    )
    .await;
    assert_eq!(again, body);
    assert_eq!(dump(&f.state), after);
}

#[tokio::test]
async fn repeated_voice_delivery_changes_nothing_and_gets_the_same_twiml() {
    let f = fixture();
    let path = format!("/twilio/voice?attempt={}", f.attempt);
    let params = [
        ("CallSid", SID),
        ("CallStatus", "in-progress"),
        ("AnsweredBy", "human"),
    ];
    let (code, body) = send(
        &f.state,
        with_token(signed(&path, &params, Some(TOKEN)), "tok-voice"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let after = dump(&f.state);
    let (code, again) = send(
        &f.state,
        with_token(signed(&path, &params, Some(TOKEN)), "tok-voice"),
    )
    .await;
    assert_eq!((code, again), (StatusCode::OK, body));
    assert_eq!(dump(&f.state), after);
}

#[tokio::test]
async fn forged_voice_and_gather_change_nothing() {
    let f = fixture();
    let before = dump(&f.state);
    let gather = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    let voice = format!("/twilio/voice?attempt={}", f.attempt);
    for (path, params) in [
        (&gather, vec![("CallSid", SID), ("Digits", "9")]),
        (
            &voice,
            vec![("CallSid", SID), ("AnsweredBy", "machine_start")],
        ),
    ] {
        for token in [None, Some("wrong-token")] {
            let req = with_token(signed(path, &params, token), "tok-forged");
            assert_eq!(send(&f.state, req).await.0, StatusCode::FORBIDDEN);
        }
    }
    assert_eq!(dump(&f.state), before);
    // the genuine delivery of that token is not shadowed by the forged ones
    let (code, body) = send(
        &f.state,
        with_token(
            signed(&gather, &[("CallSid", SID), ("Digits", "9")], Some(TOKEN)),
            "tok-forged",
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("<Say>Bye</Say>"), "{body}");
    assert!(reader(&f.state).dnc_contains("+12125550101").expect("dnc"));
}

mod fuzz;
