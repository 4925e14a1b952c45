//! End-to-end tests of the bot step (SPEC §13): the real `dialer run batch`, its callback server
//! and the built-in simulator (whose human says scripted phrases in turn) talk to an in-repo
//! fake bot speaking Rasa's REST channel, all over loopback. Results are read from `dialer.db`,
//! the reports and the fake bot's request log.

use rusqlite::Connection;
use serde_json::Value;

use dialer::simulator::fake_bot::{BotScript, FakeBot};

use crate::calls::TestDir;

/// A human at this number says `speech` at successive speech gathers and presses `digits` at
/// keypad gathers.
const PHONE: &str = "+12125550161";

fn start_bot(replies: &str) -> FakeBot {
    let script: BotScript =
        serde_json::from_str(&format!("{{\"replies\": [{replies}]}}")).expect("bot script");
    FakeBot::start(script).expect("start the fake bot")
}

/// A folder with a dialer.toml (simulator carrier, the human rule), the card-blocking campaign
/// talking to `bot_url` with `bot_extra` bot fields, and one contact.
fn setup(bot_url: &str, bot_extra: &str, speech: &[&str], digits: &[&str]) -> TestDir {
    let dir = TestDir::new();
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    dir.write(
        "dialer.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\n\
             [dialer]\ncalls_per_second = 50.0\n\n\
             [[campaign]]\nfile = \"c.json\"\ncontacts = \"c.csv\"\n\n\
             [simulator]\nseed = 3\ntime_scale = 0.01\n\n\
             [[simulator.rules]]\npattern = \"{PHONE}\"\nbehavior = \"human\"\n\
             speech = [{}]\ndigits = [{}]\n",
            list(speech),
            list(digits)
        ),
    );
    dir.write(
        "c.json",
        &format!(
            r#"{{"name": "cards", "calling_hours_start": "00:00", "calling_hours_end": "24:00",
              "language": "es-ES",
              "script": {{
                "start": "talk",
                "steps": {{
                  "talk": {{
                    "say": "Hola {{{{name}}}}, le llama su banco.",
                    "bot": {{"url": "{bot_url}", "greeting": "/greet", "language": "es-CL",
                             "fallback": "agent" {bot_extra}}}
                  }},
                  "agent": {{
                    "gather": {{"num_digits": 1, "prompt": "Pulse 1 para hablar con un agente.",
                               "options": [{{"digits": "1", "outcome": "to_agent", "next": "bye"}}]}}
                  }},
                  "bye": {{"say": "Gracias.", "hangup": true}}
                }}
              }}
            }}"#
        ),
    );
    dir.write(
        "c.csv",
        &format!("id,name,phone,card_last4\nC1,Ana <Ruiz>,{PHONE},4321\n"),
    );
    dir
}

fn batch(dir: &TestDir) {
    let out = dir.output(&["run", "batch", "--wait", "30s"]);
    assert!(
        out.status.success(),
        "run batch failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (kind, caller_text, bot_text, error) of every turn, in order.
type Turn = (String, Option<String>, Option<String>, Option<String>);

fn turns(conn: &Connection) -> Vec<Turn> {
    let mut stmt = conn
        .prepare(
            "SELECT kind, caller_text, bot_text, error FROM bot_turns t
             JOIN bot_sessions s ON s.id = t.session_id ORDER BY s.id, t.turn",
        )
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// (ending, outcome, next_step) of the only conversation.
fn session(conn: &Connection) -> (Option<String>, Option<String>, Option<String>) {
    conn.query_row(
        "SELECT ending, outcome, next_step FROM bot_sessions",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("one bot session")
}

/// (outcome, reason) of the only attempt.
fn attempt(conn: &Connection) -> (Option<String>, Option<String>) {
    conn.query_row("SELECT outcome, reason FROM attempts", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .expect("one attempt")
}

fn own<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> Vec<Option<String>> {
    v.into_iter().map(|s| s.map(str::to_owned)).collect()
}

fn summary_bot(dir: &TestDir) -> Value {
    let out = dir.output(&["report", "summary", "--format", "json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("summary json");
    v[0]["bot"].clone()
}

#[test]
fn a_three_turn_conversation_ends_with_the_bots_outcome() {
    let bot = start_bot(
        r#"{"texts": ["Soy el asistente de tarjetas.", "¿En qué le ayudo?"]},
           {"texts": ["¿Cuáles son los últimos cuatro dígitos de la tarjeta?"]},
           {"texts": ["¿Confirma que bloqueamos la tarjeta 4321?"]},
           {"texts": ["Tarjeta bloqueada & <segura>."],
            "end": {"outcome": "card_blocked", "next": "bye"}}"#,
    );
    let said = [
        "quiero bloquear mi tarjeta",
        "cuatro tres dos uno",
        "sí, confirmo",
    ];
    let dir = setup(&bot.url, r#", "max_turns": 3, "timeout": "5s""#, &said, &[]);
    batch(&dir);

    let conn = dir.db();
    assert_eq!(
        attempt(&conn),
        (Some("card_blocked".into()), Some("completed".into()))
    );
    assert_eq!(
        session(&conn),
        (
            Some("completed".into()),
            Some("card_blocked".into()),
            Some("bye".into())
        )
    );
    let turns = turns(&conn);
    let kinds: Vec<&str> = turns.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(kinds, ["greeting", "speech", "speech", "speech"]);
    assert_eq!(
        turns.iter().map(|t| t.1.clone()).collect::<Vec<_>>(),
        own([Some("/greet"), Some(said[0]), Some(said[1]), Some(said[2])])
    );
    assert_eq!(
        turns.iter().map(|t| t.2.clone()).collect::<Vec<_>>(),
        own([
            Some("Soy el asistente de tarjetas.\n¿En qué le ayudo?"),
            Some("¿Cuáles son los últimos cuatro dígitos de la tarjeta?"),
            Some("¿Confirma que bloqueamos la tarjeta 4321?"),
            Some("Tarjeta bloqueada & <segura>."),
        ])
    );
    assert!(turns.iter().all(|t| t.3.is_none()), "{turns:?}");
    let (confidences, latencies): (i64, i64) = conn
        .query_row(
            "SELECT count(confidence), count(latency_ms) FROM bot_turns",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts");
    assert_eq!(
        (confidences, latencies),
        (3, 4),
        "every caller turn has the recognizer's confidence, every bot request its latency"
    );

    // what the bot was sent: the call's SID as sender, the caller's words in order, and the
    // contact's fields as metadata — nothing else, no credential
    let requests = bot.requests();
    let sid: String = conn
        .query_row("SELECT call_sid FROM attempts", [], |r| r.get(0))
        .expect("sid");
    assert!(requests.iter().all(|r| r.sender == sid), "{requests:?}");
    let messages: Vec<&str> = requests.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["/greet", said[0], said[1], said[2]]);
    assert_eq!(
        requests[0].metadata,
        serde_json::json!({"card_last4": "4321", "id": "C1", "name": "Ana <Ruiz>", "phone": PHONE})
    );
    let sent = serde_json::to_string(&requests).expect("json");
    for secret in [
        dialer::simulator::DEFAULT_AUTH_TOKEN,
        dialer::simulator::DEFAULT_ACCOUNT_SID,
    ] {
        assert!(
            !sent.contains(secret),
            "the bot was sent `{secret}`: {sent}"
        );
    }

    // the transcript export lists every turn, in order
    let out = dir.output(&["report", "export", "csv", "--transcripts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header.join(","),
        "campaign,contact,phone,attempt,call_sid,step,session,turn,kind,at,caller_text,confidence,bot_text,latency_ms,error,ending,outcome"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            (&row[0], &row[1], &row[2], &row[4], &row[5]),
            ("cards", "C1", PHONE, sid.as_str(), "talk"),
            "{csv}"
        );
        assert_eq!(row[7], i.to_string(), "turns in order: {csv}");
        assert_eq!((&row[15], &row[16]), ("completed", "card_blocked"), "{csv}");
        assert!(row[9].ends_with('Z') && !row[13].is_empty(), "{csv}");
    }
    assert_eq!(&rows[1][10], said[0]);
    assert_eq!(&rows[3][12], "Tarjeta bloqueada & <segura>.");
    assert!(rows[1][11].parse::<f64>().is_ok(), "confidence: {csv}");

    let bot = summary_bot(&dir);
    assert_eq!(
        (
            bot["sessions"].as_i64(),
            bot["completed"].as_i64(),
            bot["fallback"].as_i64(),
            bot["completion_rate"].as_f64()
        ),
        (Some(1), Some(1), Some(0), Some(1.0)),
        "{bot}"
    );
}

#[test]
fn a_bot_slower_than_its_timeout_sends_the_call_to_the_fallback() {
    // the second answer would come after a minute: only the dialer's own timeout can end the
    // turn, and the caller then reaches the fallback step (pressing 1 there)
    let bot =
        start_bot(r#"{"texts": ["¿En qué le ayudo?"]}, {"texts": ["tarde"], "delay_ms": 60000}"#);
    let dir = setup(
        &bot.url,
        r#", "timeout": "300ms""#,
        &["bloquear tarjeta"],
        &["1"],
    );
    batch(&dir);

    let conn = dir.db();
    assert_eq!(
        session(&conn),
        (Some("timeout".into()), None, Some("agent".into()))
    );
    let turns = turns(&conn);
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert_eq!(turns[1].1.as_deref(), Some("bloquear tarjeta"));
    assert_eq!(turns[1].2, None);
    assert_eq!(turns[1].3.as_deref(), Some("no answer within 300ms"));
    assert_eq!(
        attempt(&conn),
        (Some("to_agent".into()), Some("completed".into())),
        "the caller heard the fallback step and answered it"
    );
    let bot_summary = summary_bot(&dir);
    assert_eq!(
        (
            bot_summary["fallback"].as_i64(),
            bot_summary["fallback_rate"].as_f64()
        ),
        (Some(1), Some(1.0)),
        "{bot_summary}"
    );
}

#[test]
fn a_bot_answering_500_sends_the_call_to_the_fallback() {
    let bot = start_bot(r#"{"texts": ["¿En qué le ayudo?"]}, {"status": 500}"#);
    let dir = setup(&bot.url, "", &["bloquear tarjeta"], &["1"]);
    batch(&dir);

    let conn = dir.db();
    assert_eq!(
        session(&conn),
        (Some("bot_error".into()), None, Some("agent".into()))
    );
    let turns = turns(&conn);
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert_eq!(turns[1].3.as_deref(), Some("the bot answered HTTP 500"));
    assert_eq!(attempt(&conn).0.as_deref(), Some("to_agent"));
    assert_eq!(
        bot.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 500]
    );
}

#[test]
fn silence_twice_in_a_row_sends_the_call_to_the_fallback() {
    let bot = start_bot(r#"{"texts": ["¿En qué le ayudo?"]}"#);
    // "" = says nothing at that gather
    let dir = setup(&bot.url, "", &["", ""], &["1"]);
    batch(&dir);

    let conn = dir.db();
    assert_eq!(
        session(&conn),
        (Some("no_input".into()), None, Some("agent".into()))
    );
    let kinds: Vec<String> = turns(&conn).into_iter().map(|t| t.0).collect();
    assert_eq!(kinds, ["greeting", "no_input", "no_input"]);
    assert_eq!(attempt(&conn).0.as_deref(), Some("to_agent"));
    assert_eq!(bot.requests().len(), 1, "silence is not sent to the bot");
}

#[test]
fn a_campaign_whose_bot_fallback_names_a_missing_step_is_refused_with_the_step_and_field() {
    let dir = setup("http://127.0.0.1:5005/webhooks/rest/webhook", "", &[], &[]);
    let text = dir
        .file("c.json")
        .to_str()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .expect("utf-8 path");
    dir.write(
        "bad.json",
        &text.replace("\"fallback\": \"agent\"", "\"fallback\": \"agnet\""),
    );
    let out = dir.output(&["campaign", "import", "bad.json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json")
            && err.contains(
                "`script.steps.talk.bot.fallback`: names step `agnet`, which does not exist"
            ),
        "{err}"
    );
}

#[test]
fn the_shipped_card_blocking_campaign_rehearses_against_the_shipped_fake_bot() {
    let script = BotScript::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/bot-card-block.bot.json"
    )))
    .expect("the shipped bot script loads");
    let bot = FakeBot::start(script).expect("start the fake bot");
    let dir = TestDir::new();
    // the shipped dialer.toml (its simulator rule for the example contact), the callback server
    // on a free port, the example campaign with the fake bot's address and open hours
    let shipped = include_str!("../../dialer.toml");
    let toml = shipped
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("calls_per_second = 1.0", "calls_per_second = 50.0")
        .replace("time_scale = 0.05", "time_scale = 0.01");
    let toml = toml.split("[[campaign]]").next().expect("head").to_owned()
        + "[[campaign]]\nfile = \"c.json\"\ncontacts = \"c.csv\"\n\n"
        + &toml[toml
            .find("# The built-in Twilio-compatible simulator")
            .expect("simulator section")..];
    dir.write("dialer.toml", &toml);
    let campaign = include_str!("../../campaigns/bot-card-block.json")
        .replace("http://127.0.0.1:5005/webhooks/rest/webhook", &bot.url)
        .replace("\"09:00\"", "\"00:00\"")
        .replace("\"21:00\"", "\"24:00\"");
    dir.write("c.json", &campaign);
    dir.write(
        "c.csv",
        include_str!("../../examples/card-block-contacts.csv"),
    );
    batch(&dir);

    let conn = dir.db();
    assert_eq!(
        session(&conn),
        (
            Some("completed".into()),
            Some("card_blocked".into()),
            Some("bloqueada".into())
        )
    );
    let said: Vec<Option<String>> = turns(&conn).into_iter().map(|t| t.1).collect();
    assert_eq!(
        said,
        own([
            Some("/greet"),
            Some("sí, bloquéela por favor"),
            Some("cuatro tres dos uno"),
            Some("sí, confirmo")
        ]),
        "the simulated person answered each question of the bot"
    );
    assert_eq!(
        attempt(&conn),
        (Some("card_blocked".into()), Some("completed".into()))
    );
    assert_eq!(bot.requests()[0].metadata["card_last4"], "4321");
}

#[test]
fn dialer_simulator_serves_the_fake_bot_beside_the_simulator() {
    let dir = TestDir::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
        .current_dir(dir.path())
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--bot-listen",
            "127.0.0.1:0",
            "--bot",
        ])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/bot-card-block.bot.json"
        ))
        .args(["--config", "absent.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn simulator");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut url = None;
    for _ in 0..2 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("banner");
        if let Some(rest) = line.strip_prefix("fake bot listening on ") {
            url = Some(rest.trim().to_owned());
        }
    }
    let url = url.expect("a `fake bot listening on` line");
    let reply: Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            reqwest::Client::new()
                .post(&url)
                .json(&serde_json::json!({"sender": "CA1", "message": "/greet"}))
                .send()
                .await
                .expect("post")
                .json()
                .await
                .expect("json")
        });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        reply[0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Soy el asistente virtual")),
        "{reply}"
    );
}
