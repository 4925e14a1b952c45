//! Hostile callbacks (SPEC §6.2, §10): requests an attacker or a confused proxy could send. Each
//! is refused or harmless, never a 5xx, and what it carries is stored intact, escaped in TwiML
//! and neutralised in CSV exports.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::tests::{SID, TOKEN, count, dump, fixture, reader, send, signed, status_params};
use crate::store::AttemptFilter;
use crate::twilio::signature;

/// A request signed for one URL and sent to another: the signature covers the URL.
#[tokio::test]
async fn a_valid_signature_over_another_url_is_refused() {
    let f = fixture();
    let before = dump(&f.state);
    let params = status_params("completed", "9");
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    for signed_for in [
        format!(
            "https://dialer.example.com/twilio/status?attempt={}",
            f.attempt + 1
        ),
        format!(
            "https://evil.example.com/twilio/status?attempt={}",
            f.attempt
        ),
        format!(
            "http://dialer.example.com/twilio/status?attempt={}",
            f.attempt
        ),
        format!(
            "https://dialer.example.com/twilio/voice?attempt={}",
            f.attempt
        ),
    ] {
        let sig = signature::sign(TOKEN, &signed_for, &pairs);
        let req = Request::post(format!("/twilio/status?attempt={}", f.attempt))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(Body::from(body.clone()))
            .expect("request");
        let (code, _) = send(&f.state, req).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "signed for {signed_for}");
    }
    assert_eq!(dump(&f.state), before);
}

/// A progress event older than the final one arrives last: the attempt stays ended.
#[tokio::test]
async fn an_old_sequence_number_after_the_final_status_changes_nothing() {
    let f = fixture();
    let path = format!("/twilio/status?attempt={}", f.attempt);
    let (code, _) = send(
        &f.state,
        signed(&path, &status_params("completed", "5"), Some(TOKEN)),
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let settled =
        "SELECT count(*) FROM attempts WHERE status = 'completed' AND ended_at IS NOT NULL";
    assert_eq!(count(&f.state, settled), 1);
    for (status, seq) in [("ringing", "2"), ("in-progress", "3"), ("busy", "4")] {
        let (code, _) = send(
            &f.state,
            signed(&path, &status_params(status, seq), Some(TOKEN)),
        )
        .await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{status}");
    }
    assert_eq!(count(&f.state, settled), 1, "still completed");
    assert_eq!(
        count(
            &f.state,
            "SELECT count(*) FROM contacts WHERE state = 'completed'"
        ),
        1
    );
}

/// Bytes that are not UTF-8, signed or not: 403 unsigned, never a 5xx signed.
#[tokio::test]
async fn non_utf8_bodies_never_fail_the_server() {
    let f = fixture();
    let before = dump(&f.state);
    let raw: &[u8] = b"CallSid=\xff\xfe&CallStatus=compl\xe9ted&SequenceNumber=\xc3\x28";
    let path = format!("/twilio/status?attempt={}", f.attempt);
    let unsigned = Request::post(path.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(raw.to_vec()))
        .expect("request");
    assert_eq!(send(&f.state, unsigned).await.0, StatusCode::FORBIDDEN);
    assert_eq!(dump(&f.state), before);

    // signed over what a form decoder reads from those bytes (lossy), as a proxy might
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
    let sig = signature::sign(TOKEN, &format!("https://dialer.example.com{path}"), &pairs);
    let req = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(Body::from(raw.to_vec()))
        .expect("request");
    let (code, body) = send(&f.state, req).await;
    assert!(!code.is_server_error(), "{code}: {body}");
    // the CallSid is not the attempt's call: nothing of the attempt changed
    assert_eq!(
        count(
            &f.state,
            "SELECT count(*) FROM attempts WHERE status = 'dialing' AND ended_at IS NULL"
        ),
        1
    );
}

/// SQL and XML metacharacters in every field: escaped in TwiML, stored intact, neutralised in
/// the CSV export.
#[tokio::test]
async fn metacharacters_are_escaped_in_twiml_intact_in_the_store_and_neutralised_in_csv() {
    let f = fixture();
    let nasty = "=HYPERLINK(\"x\")'); DROP TABLE answers;-- <Say>&amp;</Say>";
    // the caller says it, with every other field hostile too
    let path = format!("/twilio/gather?attempt={}&step=ask", f.attempt);
    let params = [
        ("CallSid", SID),
        ("SpeechResult", nasty),
        ("Confidence", "0.9'; --"),
        ("Digits", "<1>"),
        ("From", nasty),
        ("To", "'); DELETE FROM attempts;--"),
    ];
    let (code, twiml) = send(&f.state, signed(&path, &params, Some(TOKEN))).await;
    assert_eq!(code, StatusCode::OK, "{twiml}");
    assert!(!twiml.contains("<Say>&amp;</Say>DROP"), "{twiml}");
    assert!(
        !twiml.contains(nasty),
        "caller input never reaches TwiML raw: {twiml}"
    );
    // stored exactly as said, and every table still there
    let (speech, digits): (String, String) = reader(&f.state)
        .conn()
        .query_row("SELECT speech, digits FROM answers", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("answer stored");
    assert_eq!((speech.as_str(), digits.as_str()), (nasty, "<1>"));
    assert_eq!(count(&f.state, "SELECT count(*) FROM attempts"), 1);

    // the export: the speech cell starts with `=`, so it is neutralised with a leading quote
    let store = reader(&f.state);
    let mut csv = Vec::new();
    crate::report::write_attempts(&store, &AttemptFilter::default(), &mut csv, |_| {})
        .expect("export");
    let csv = String::from_utf8(csv).expect("utf-8");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let headers = rows.headers().expect("headers").clone();
    let speech_col = headers
        .iter()
        .position(|h| h == "speech")
        .expect("speech column");
    let row = rows.records().next().expect("a row").expect("record");
    assert_eq!(row.get(speech_col), Some(format!("'{nasty}").as_str()));
}
