//! REST surface tests: create, auth and validation errors, faults, fetch, list, update, config.

use axum::http::StatusCode;
use serde_json::Value;

use super::*;

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
    let mut c = SimConfig {
        rules: vec![rule("1555*", BehaviorKind::Busy, &[])],
        ..SimConfig::default()
    };
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

#[tokio::test]
async fn shutdown_stops_the_in_process_simulator() {
    let sim = Simulator::start(config(1), Arc::new(crate::clock::SystemClock))
        .await
        .expect("starts");
    let url = format!("{}/simulator/requests", sim.base_url());
    assert!(
        reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
    );
    sim.shutdown().await.expect("clean shutdown");
    assert!(
        reqwest::get(&url).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn the_history_keeps_the_newest_calls_and_forgets_the_oldest() {
    let mut c = config(3);
    c.history = 100;
    c.rules = vec![rule("*", BehaviorKind::Busy, &[])];
    let w = world(c, &[("/voice", THANKS_DOC)]).await;
    let mut sids = Vec::new();
    for i in 0..130 {
        let (_, body) = w.create(&format!("+1415555{i:04}"), &[]).await;
        sids.push(sid_of(&body));
    }
    let records = w.sim.state().records();
    assert_eq!(records.len(), 100, "memory is bounded by `history`");
    assert_eq!(records[0].sid, sids[30], "the oldest 30 are gone");
    assert_eq!(w.sim.state().requests().len(), 100);
    assert!(w.sim.state().call_json(&sids[0]).is_none());
    assert!(w.sim.state().call_json(&sids[129]).is_some());
    // a forgotten call is gone from fetch, like a deleted one
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Calls/{}.json",
        w.sim.base_url(),
        w.sim.account_sid(),
        sids[0]
    );
    let fetched = w
        .http
        .get(url)
        .basic_auth(w.sim.account_sid(), Some(w.sim.auth_token()))
        .send()
        .await
        .expect("fetch");
    assert_eq!(fetched.status(), 404);
}
