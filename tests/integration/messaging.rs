//! SPEC §12 messaging end to end: follow-ups after a missed call (SMS and WhatsApp) sent by
//! `run batch` through a separate `dialer simulator` process, at most once and only inside
//! calling hours; opt-out keywords texted through the simulator to a running daemon; the
//! import errors of bad `follow_up` rules.

use std::time::{Duration, Instant};

use chrono::Datelike;
use serde_json::Value;

use crate::calls::{
    Background, SimProcess, TestDir, config, contacts, count, http_get, placed, rules, runtime,
};
use crate::harness::{Test, assert_one_error, campaign as message_campaign};

/// The simulator's message log.
fn sim_messages(sim: &SimProcess) -> Vec<Value> {
    let (status, body) = http_get(&format!("{}/simulator/messages", sim.base));
    assert_eq!(status, 200, "GET /simulator/messages: {body}");
    serde_json::from_str::<Vec<Value>>(&body).expect("message log is a JSON list")
}

/// `POST /simulator/{path}` with a JSON body; returns the JSON answer.
pub(crate) fn sim_post(sim: &SimProcess, path: &str, body: Value) -> Value {
    runtime().block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{}/simulator/{path}", sim.base))
            .json(&body)
            .send()
            .await
            .expect("POST to the simulator");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).expect("JSON answer")
    })
}

pub(crate) fn stdout_of(dir: &TestDir, args: &[&str]) -> String {
    let out = dir.output(args);
    assert!(
        out.status.success(),
        "dialer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FOLLOW_UPS: &str = r#""message": "Hello {{name}}.", "max_retries": 0,
    "follow_up": [
      {"name": "missed-sms", "reason": "no-answer", "body": "Sorry we missed you, {{name}}."},
      {"name": "missed-wa", "reason": "no-answer", "channel": "whatsapp",
       "from": "whatsapp:+14155238886", "body": "Hola {{name}}, te llamamos."}
    ]"#;

#[test]
fn a_missed_call_is_followed_by_one_sms_and_one_whatsapp_inside_calling_hours() {
    let phone = "+12125550141";
    let dir = TestDir::new();
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 1\ntime_scale = 0.01\n{}",
            rules(&[(phone, "no-answer", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    let all_day = |extra: &str| {
        format!(
            "{{\"name\": \"follow\", \"calling_hours_start\": \"00:00\", \
             \"calling_hours_end\": \"24:00\", {extra}}}"
        )
    };
    dir.write("c.json", &all_day(FOLLOW_UPS));
    dir.write("c.csv", &contacts(&[phone]));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 1, "{out}");
    assert!(out.contains("sent 2 follow-up message(s)"), "{out}");

    let outbound: Vec<Value> = sim_messages(&sim)
        .into_iter()
        .filter(|m| m["direction"] == "outbound-api")
        .collect();
    assert_eq!(outbound.len(), 2, "{outbound:?}");
    let sms: Vec<&Value> = outbound.iter().filter(|m| m["to"] == phone).collect();
    assert_eq!(sms.len(), 1, "exactly one SMS: {outbound:?}");
    assert_eq!(sms[0]["from"], "+15005550006", "the caller ID by default");
    assert_eq!(sms[0]["body"], "Sorry we missed you, Contact 0.");
    let wa: Vec<&Value> = outbound
        .iter()
        .filter(|m| m["to"] == format!("whatsapp:{phone}"))
        .collect();
    assert_eq!(wa.len(), 1, "exactly one WhatsApp message: {outbound:?}");
    assert_eq!(wa[0]["from"], "whatsapp:+14155238886");
    assert_eq!(wa[0]["body"], "Hola Contact 0, te llamamos.");

    // stored with their SIDs, one per rule and contact
    let conn = dir.db();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE direction = 'outbound' AND message_sid LIKE 'SM%'"
        ),
        2
    );

    // a second run sends nothing again
    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 0, "{out}");
    assert!(!out.contains("follow-up message(s)"), "{out}");
    let again = sim_messages(&sim)
        .into_iter()
        .filter(|m| m["direction"] == "outbound-api")
        .count();
    assert_eq!(again, 2, "no message sent twice");

    let csv = stdout_of(&dir, &["report", "export", "csv", "--messages"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "campaign,contact,direction,channel,rule,from,to,body,message_sid,status,keyword,error_code,error_message,created_at,updated_at"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        csv.contains(&format!(
            "follow,{phone},outbound,whatsapp,missed-wa,whatsapp:+14155238886,whatsapp:{phone}"
        )),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "follow,{phone},outbound,sms,missed-sms,+15005550006,{phone}"
        )),
        "{csv}"
    );

    // a new rule while the contact's day is excluded: pending, not sent, until the window
    let today = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .with_timezone(&chrono_tz::America::New_York)
        .weekday();
    let later = FOLLOW_UPS.replace(
        "\"follow_up\": [",
        "\"follow_up\": [\n{\"name\": \"later\", \"reason\": \"no-answer\", \"body\": \"Later.\"},",
    );
    dir.write(
        "c.json",
        &all_day(&format!("\"excluded_days\": [\"{today}\"], {later}")),
    );
    stdout_of(&dir, &["campaign", "import", "--replace", "c.json"]);
    let out = dir.batch(&[]);
    assert!(
        out.contains("follow-up message(s) pending until calling hours"),
        "{out}"
    );
    let sent = sim_messages(&sim)
        .into_iter()
        .filter(|m| m["direction"] == "outbound-api")
        .count();
    assert_eq!(sent, 2, "nothing sent outside calling hours");
    let plan = stdout_of(&dir, &["plan"]);
    assert!(plan.contains("pending follow-up messages"), "{plan}");
    let row = plan
        .lines()
        .find(|l| l.contains("later"))
        .unwrap_or_else(|| panic!("no pending `later` row:\n{plan}"));
    assert!(row.contains(phone) && !row.contains("now"), "{row}");
}

/// Waits until `sql` counts `n` (the daemon writes from another process).
pub(crate) fn wait_count(dir: &TestDir, sql: &str, n: i64, _daemon: &Background) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if count(&dir.db(), sql) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "`{sql}` never reached {n}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn stop_by_sms_blocks_every_campaign_at_once_and_start_lifts_only_its_own() {
    let phone = "+12125550151";
    let listed_by_hand = "+12125550152";
    let dir = TestDir::new();
    let sim = SimProcess::start(&dir, "seed = 1\ntime_scale = 0.01\n");
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    // neither campaign has started: nothing is dialed while the test texts
    let not_yet = r#""message": "hi", "start_at": "2099-01-01T00:00:00Z",
        "opt_out_keywords": ["BAJA"]"#;
    dir.write(
        "c.json",
        &format!(
            "{{\"name\": \"one\", \"calling_hours_start\": \"00:00\", \"calling_hours_end\": \"24:00\", {not_yet}}}"
        ),
    );
    dir.write("c.csv", &contacts(&[phone, listed_by_hand]));
    dir.write(
        "d.json",
        &format!(
            "{{\"name\": \"two\", \"calling_hours_start\": \"00:00\", \"calling_hours_end\": \"24:00\", {not_yet}}}"
        ),
    );
    dir.write("d.csv", &contacts(&[phone]));
    let mut daemon = dir.spawn(&["-v", "run", "daemon"], "daemon");
    let url = daemon.url();
    stdout_of(
        &dir,
        &["campaign", "import", "d.json", "--contacts", "d.csv"],
    );
    stdout_of(&dir, &["dnc", "add", listed_by_hand]);

    let text = |from: &str, body: &str| {
        let answer = sim_post(
            &sim,
            "inbound-sms",
            serde_json::json!({"from": from, "to": "+15005550006", "body": body,
                               "url": format!("{url}/twilio/sms")}),
        );
        assert_eq!(answer["status"], 200, "{answer}");
        assert!(
            answer["reply"]
                .as_str()
                .is_some_and(|r| r.contains("<Response")),
            "{answer}"
        );
    };
    text(phone, "  sToP \n");
    let dnc = stdout_of(&dir, &["dnc", "list"]);
    assert!(dnc.contains(phone), "{dnc}");
    let plan = stdout_of(
        &dir,
        &["plan", "--at", "2099-06-01T15:00:00Z", "--format", "json"],
    );
    let rows: Vec<Value> = serde_json::from_str(&plan).expect("plan JSON");
    let reasons: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["phone"] == phone)
        .map(|r| {
            (
                r["campaign"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(reasons, [("one", "dnc"), ("two", "dnc")], "{plan}");

    // START takes off what STOP put on, not a number listed by hand
    text(phone, "START");
    text(listed_by_hand, "start");
    let dnc = stdout_of(&dir, &["dnc", "list"]);
    assert!(!dnc.contains(phone), "{dnc}");
    assert!(dnc.contains(listed_by_hand), "{dnc}");
    // the campaign's own keyword, any case
    text(phone, "baja");
    assert!(stdout_of(&dir, &["dnc", "list"]).contains(phone));

    wait_count(
        &dir,
        "SELECT count(*) FROM messages WHERE direction = 'inbound'",
        4,
        &daemon,
    );
    let csv = stdout_of(&dir, &["report", "export", "csv", "--messages"]);
    assert!(
        csv.contains(",inbound,sms,,+12125550151,+15005550006,baja,"),
        "{csv}"
    );
    assert_eq!(csv.matches(",opt-out,").count(), 2, "{csv}");
    assert_eq!(csv.matches(",opt-in,").count(), 2, "{csv}");

    // the carrier keeps its own list too: 21610 for a number that texted STOP
    let client = dialer::twilio::Client::new(
        &sim.base,
        "AC00000000000000000000000000000000",
        "simulator-auth-token",
        dialer::twilio::ClientOptions::default(),
    )
    .expect("client");
    text(listed_by_hand, "STOP");
    let refused = runtime()
        .block_on(client.create_message(&dialer::twilio::CreateMessage {
            to: listed_by_hand.into(),
            from: "+15005550006".into(),
            body: "hello".into(),
            status_callback: format!("{url}/twilio/message-status?message=1"),
        }))
        .expect_err("refused");
    assert_eq!(refused.code(), Some(21610), "{refused}");
    let invalid = runtime()
        .block_on(client.create_message(&dialer::twilio::CreateMessage {
            to: "whatsapp:12345".into(),
            from: "whatsapp:+14155238886".into(),
            body: "hello".into(),
            status_callback: format!("{url}/twilio/message-status?message=1"),
        }))
        .expect_err("refused");
    assert_eq!(invalid.code(), Some(21211), "{invalid}");
    drop(daemon);
}

#[test]
fn bad_follow_up_rules_are_import_errors_naming_the_field() {
    let t = Test::new();
    for (extra, parts) in [
        (
            r#""follow_up": [{"name": "x", "outcome": "interested", "body": "hi"}]"#,
            &["follow_up[0].outcome", "`interested`", "`answered`"][..],
        ),
        (
            r#""follow_up": [{"name": "x", "reason": "voicemail", "body": "hi"}]"#,
            &["follow_up[0].reason", "`voicemail`"][..],
        ),
        (
            r#""follow_up": [{"name": "x", "reason": "busy", "channel": "whatsapp", "from": "whatsapp:14155238886", "body": "hi"}]"#,
            &["follow_up[0].from", "whatsapp:+14155238886"][..],
        ),
        (
            r#""inbound": {"start": "a", "steps": {"a": {"say": "hi", "next": "b"}}}"#,
            &["inbound.steps.a.next", "`b`"][..],
        ),
    ] {
        t.write("bad.json", message_campaign("bad", extra));
        let out = t.cmd(["campaign", "import", "bad.json"]).status(1).run();
        assert_one_error(&out, parts);
        assert!(out.stderr.contains("bad.json"), "{}", out.stderr);
    }
}

#[test]
fn the_daemon_sends_the_follow_up_once_and_stores_its_status_callbacks() {
    let phone = "+12125550171";
    let dir = TestDir::new();
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 1\ntime_scale = 0.01\n{}",
            rules(&[(phone, "no-answer", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write(
        "c.json",
        r#"{"name": "follow", "calling_hours_start": "00:00", "calling_hours_end": "24:00",
            "message": "Hello.", "max_retries": 0,
            "follow_up": [{"name": "missed", "reason": "no-answer", "exhausted": true,
                           "body": "We missed you, {{name}}."}]}"#,
    );
    dir.write("c.csv", &contacts(&[phone]));
    let mut daemon = dir.spawn(&["-v", "run", "daemon"], "daemon");
    daemon.url(); // listening: the database is migrated
    // `sent` then `delivered`, each a signed callback stored before it is answered
    wait_count(
        &dir,
        "SELECT count(*) FROM messages WHERE rule = 'missed' AND status = 'delivered'",
        1,
        &daemon,
    );
    let conn = dir.db();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM message_events WHERE status IN ('sent', 'delivered')"
        ),
        2
    );
    let (state, attempts): (String, i64) = conn
        .query_row("SELECT state, attempts FROM contacts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("contact");
    assert_eq!((state.as_str(), attempts), ("exhausted", 1));
    let outbound: Vec<Value> = sim_messages(&sim)
        .into_iter()
        .filter(|m| m["direction"] == "outbound-api")
        .collect();
    assert_eq!(outbound.len(), 1, "{outbound:?}");
    assert_eq!(outbound[0]["body"], "We missed you, Contact 0.");
    let (ok, stdout, stderr) = {
        let pid = daemon.pid();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        daemon.finish(Duration::from_secs(20))
    };
    assert!(ok, "{stderr}");
    assert!(stdout.contains("sent 1 follow-up message(s)"), "{stdout}");
}
