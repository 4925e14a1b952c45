//! SPEC §12 inbound calls end to end: a contact calls the campaign's number back (through the
//! simulator's `/simulator/inbound-call`), hears the campaign's inbound script and counts as
//! reached; unknown callers and numbers no campaign uses get valid, polite TwiML; all of it is
//! recorded and exported.

use serde_json::Value;

use crate::calls::{SimProcess, TestDir, config, contacts, count, runtime};
use crate::messaging::{sim_post, stdout_of, wait_count};

const TOKEN: &str = "simulator-auth-token";

/// A signed `POST {url}` like Twilio's voice webhook; returns (status, body).
fn signed_post(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let form: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = dialer::twilio::signature::sign(TOKEN, url, &form);
    runtime().block_on(async {
        let resp = reqwest::Client::new()
            .post(url)
            .header("X-Twilio-Signature", signature)
            .form(&form)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    })
}

#[test]
fn a_contact_calling_back_hears_the_inbound_script_and_is_reached() {
    let phone = "+12125550161";
    let number = "+12025550100";
    let dir = TestDir::new();
    let sim = SimProcess::start(&dir, "seed = 1\ntime_scale = 0.01\n");
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write(
        "c.json",
        &format!(
            r#"{{"name": "callback", "from": "{number}", "message": "hi", "max_retries": 2,
               "retry_delays": {{"default": "1m"}}, "start_at": "2099-01-01T00:00:00Z",
               "inbound": {{"start": "hello", "steps": {{
                  "hello": {{"say": "Thanks for calling back, {{{{name}}}}.", "next": "bye"}},
                  "bye": {{"say": "Goodbye.", "hangup": true}}}}}}}}"#
        ),
    );
    dir.write("c.csv", &contacts(&[phone]));
    let mut daemon = dir.spawn(&["-v", "run", "daemon"], "daemon");
    let url = daemon.url();

    let answer = sim_post(
        &sim,
        "inbound-call",
        serde_json::json!({"from": phone, "to": number, "url": format!("{url}/twilio/inbound"),
                           "status_callback": format!("{url}/twilio/inbound/status")}),
    );
    let sid = answer["sid"].as_str().expect("a call sid").to_owned();
    // the call played to its end (the redirect to `bye` included) and its status came back
    wait_count(
        &dir,
        "SELECT count(*) FROM inbound_calls WHERE status = 'completed' AND matched = 'contact'",
        1,
        &daemon,
    );
    let conn = dir.db();
    let (direction, outcome, attempt_sid): (String, String, String) = conn
        .query_row(
            "SELECT direction, outcome, call_sid FROM attempts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("one attempt");
    assert_eq!(
        (direction.as_str(), outcome.as_str()),
        ("inbound", "called_back")
    );
    assert_eq!(attempt_sid, sid);
    let (state, contact_outcome, attempts): (String, String, i64) = conn
        .query_row("SELECT state, outcome, attempts FROM contacts", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("the contact");
    assert_eq!(
        (state.as_str(), contact_outcome.as_str(), attempts),
        ("completed", "called_back", 0),
        "reached, no retry left to make, no dial attempt counted"
    );

    // the TwiML each kind of caller gets, through the real signed webhook
    let inbound = format!("{url}/twilio/inbound");
    let (status, twiml) = signed_post(
        &inbound,
        &[
            ("CallSid", "CA00000000000000000000000000000001"),
            ("From", phone),
            ("To", number),
        ],
    );
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say>Thanks for calling back, Contact 0.</Say>"),
        "{twiml}"
    );
    assert!(twiml.contains("/twilio/inbound?step=bye"), "{twiml}");
    let (status, twiml) = signed_post(
        &inbound,
        &[
            ("CallSid", "CA00000000000000000000000000000002"),
            ("From", "+447700900123"),
            ("To", number),
        ],
    );
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say>Thanks for calling back, .</Say>"),
        "unknown caller: {twiml}"
    );
    let (status, twiml) = signed_post(
        &inbound,
        &[
            ("CallSid", "CA00000000000000000000000000000003"),
            ("From", phone),
            ("To", "+13105550199"),
        ],
    );
    assert_eq!(status, 200);
    assert!(
        twiml.starts_with("<?xml")
            && twiml.contains("does not take calls")
            && twiml.contains("<Hangup/>"),
        "unowned number: {twiml}"
    );
    let (status, _) = signed_post(
        &format!("{url}/twilio/inbound?step=bye"),
        &[("CallSid", "x")],
    );
    assert_eq!(status, 200);
    let forged = runtime().block_on(async {
        reqwest::Client::new()
            .post(&inbound)
            .form(&[("CallSid", "CA9"), ("From", phone), ("To", number)])
            .send()
            .await
            .expect("POST")
            .status()
            .as_u16()
    });
    assert_eq!(forged, 403, "unsigned requests are refused");

    let attempts_csv = stdout_of(&dir, &["report", "export", "csv"]);
    assert!(
        attempts_csv
            .lines()
            .next()
            .is_some_and(|h| h.ends_with(",direction"))
    );
    assert_eq!(
        attempts_csv.matches(",inbound\n").count(),
        2,
        "{attempts_csv}"
    );
    let calls_csv = stdout_of(&dir, &["report", "export", "csv", "--inbound"]);
    for matched in [",contact,", ",caller,", ",unowned,"] {
        assert!(calls_csv.contains(matched), "{matched}: {calls_csv}");
    }
    let summary = stdout_of(&dir, &["report", "summary", "--format", "json"]);
    let summary: Value = serde_json::from_str(&summary).expect("summary JSON");
    assert!(summary.to_string().contains("called_back"), "{summary}");
    // the simulated call, the three posted above and the bare step request: one row per CallSid
    assert_eq!(count(&conn, "SELECT count(*) FROM inbound_calls"), 5);
    drop(daemon);
}
