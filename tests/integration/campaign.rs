//! `campaign import/list/show/pause/resume` end to end (SPEC §3): the SPEC example imports as a
//! draft, every kind of bad document fails with one line naming file and field and writes
//! nothing, and `--replace` keeps contacts, history and the paused flag.

use crate::harness::{OPTIMIZADA, OPTIMIZADA_NAME, Test, assert_one_error, campaign, table_rows};

#[test]
fn spec_example_imports_verbatim_as_a_draft() {
    let t = Test::new();
    t.write("optimizada.json", OPTIMIZADA);
    t.cmd(["campaign", "import", "optimizada.json"])
        .stdout_contains(OPTIMIZADA_NAME)
        .stderr_contains("warning: ")
        .stderr_contains("draft")
        .stderr_contains("optimizada.json")
        .run();
    let list = t.cmd(["campaign", "list"]).run();
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(OPTIMIZADA_NAME))
        .unwrap_or_else(|| panic!("campaign missing from list:\n{}", list.stdout));
    assert_eq!(row.split_whitespace().nth(2), Some("draft"), "{row}");

    t.write(
        "c.csv",
        "id,name,phone,timezone\n1,Ann,+12125550101,America/New_York\n2,Bo,+34612345678,Europe/Madrid\n",
    );
    t.cmd(["contacts", "import", "--campaign", OPTIMIZADA_NAME, "c.csv"])
        .run();
    // A Wednesday, inside 09:00-18:00 in New York: still nothing is due, it is a draft.
    let plan = t
        .cmd(["plan", "--at", "2026-01-14T15:00:00Z", "--format", "json"])
        .run()
        .json();
    let rows = plan.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["reason"], "draft", "{r}");
        assert_eq!(r["due"], false, "{r}");
        assert!(r["next_eligible_at"].is_null(), "{r}");
    }
}

#[test]
fn show_prints_the_configuration() {
    let t = Test::new();
    t.import_campaign("optimizada.json", OPTIMIZADA);
    t.cmd(["campaign", "show", OPTIMIZADA_NAME])
        .stdout_contains("09:00-18:00")
        .stdout_contains("Sat, Sun")
        .stdout_contains("America/New_York")
        .stdout_contains("+15005550006")
        .run();
    t.cmd(["campaign", "show", "nope"])
        .status(1)
        .stderr_contains("`nope`")
        .run();
}

/// Each bad document: (what it guards, JSON, text the error must name).
fn bad_campaigns() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "bad JSON syntax",
            "{\"name\": \"bad\", \"message\": \"hi\",\n}".to_owned(),
            "line 2",
        ),
        (
            // serde names no field for a type error; the line (the field's own) stands in
            "wrong type",
            campaign("bad", r#""max_retries": "two""#),
            "line 4",
        ),
        (
            "unknown field",
            campaign("bad", r#""colour": "red""#),
            "`colour`",
        ),
        (
            "bad timezone",
            campaign("bad", r#""timezone": "Mars/Olympus""#),
            "`timezone`",
        ),
        (
            "bad HH:MM",
            campaign("bad", r#""calling_hours_start": "9am""#),
            "`calling_hours_start`",
        ),
        (
            "HH:MM out of range",
            campaign("bad", r#""calling_hours_end": "25:00""#),
            "`calling_hours_end`",
        ),
        (
            "end before start",
            campaign(
                "bad",
                r#""calling_hours_start": "18:00", "calling_hours_end": "09:00""#,
            ),
            "`calling_hours_end`",
        ),
        (
            "bad weekday",
            campaign("bad", r#""excluded_days": ["Saturday", "Caturday"]"#),
            "`excluded_days[1]`",
        ),
        (
            "bad date",
            campaign("bad", r#""excluded_dates": ["2026-02-30"]"#),
            "`excluded_dates[0]`",
        ),
        (
            "bad start_at",
            campaign("bad", r#""start_at": "tomorrow""#),
            "`start_at`",
        ),
        (
            "bad retry reason",
            campaign("bad", r#""retry_delays": {"angry": 5}"#),
            "`retry_delays.angry`",
        ),
        (
            "bad delay",
            campaign("bad", r#""retry_delays": {"busy": "soonish"}"#),
            "`retry_delays.busy`",
        ),
        (
            "negative delay",
            campaign("bad", r#""retry_delays": {"busy": -5}"#),
            "`retry_delays.busy`",
        ),
        (
            "bad cron",
            campaign("bad", r#""schedule": "61 * * * *""#),
            "`schedule`",
        ),
        (
            "cron with too many fields",
            campaign("bad", r#""schedule": "0 0 10 * * 1-5 2026""#),
            "`schedule`",
        ),
        (
            "missing script step",
            r#"{"name": "bad", "script": {"start": "intro", "steps": {"intro": {"say": "hi", "next": "gone"}}}}"#
                .to_owned(),
            "`gone`",
        ),
        (
            "missing start step",
            r#"{"name": "bad", "script": {"start": "nowhere", "steps": {"intro": {"say": "hi"}}}}"#
                .to_owned(),
            "`script.start`",
        ),
        (
            "bad machine_detection",
            campaign("bad", r#""machine_detection": "sometimes""#),
            "`machine_detection`",
        ),
        (
            "bad caller id",
            campaign("bad", r#""from": "555-0100""#),
            "`from`",
        ),
        (
            "both message and script",
            r#"{"name": "bad", "message": "hi", "script": {"start": "a", "steps": {"a": {"say": "hi"}}}}"#
                .to_owned(),
            "`message`",
        ),
        (
            "duplicate name without --replace",
            campaign("Existing", r#""timezone": "Europe/Madrid""#),
            "--replace",
        ),
    ]
}

#[test]
fn each_bad_campaign_fails_with_one_line_naming_file_and_field_and_writes_nothing() {
    let t = Test::new();
    t.import_campaign("existing.json", &campaign("Existing", ""));
    t.import_contacts(
        "Existing",
        "c.csv",
        "phone,timezone\n+12125550101,America/New_York\n",
    );
    let before = t.dump();
    for (i, (what, json, field)) in bad_campaigns().into_iter().enumerate() {
        let file = format!("bad-{i}.json");
        t.write(&file, &json);
        let out = t.cmd(["campaign", "import", file.as_str()]).status(1).run();
        assert_one_error(&out, &[file.as_str(), field]);
        assert_eq!(t.dump(), before, "{what}: the database changed");
    }
}

#[test]
fn a_bad_campaign_creates_no_database() {
    let t = Test::new();
    t.write("bad.json", campaign("bad", r#""timezone": "Nowhere/Else""#));
    let out = t.cmd(["campaign", "import", "bad.json"]).status(1).run();
    assert_one_error(&out, &["bad.json", "`timezone`"]);
    assert_eq!(t.dump(), "<no database>");
}

#[test]
fn a_missing_campaign_file_names_it() {
    let t = Test::new();
    let out = t.cmd(["campaign", "import", "absent.json"]).status(1).run();
    assert_one_error(&out, &["absent.json"]);
}

#[test]
fn import_with_bad_contacts_header_writes_nothing() {
    let t = Test::new();
    t.write("good.json", campaign("Good", ""));
    t.write("c.csv", "name,email\nAnn,ann@example.com\n");
    let out = t
        .cmd(["campaign", "import", "good.json", "--contacts", "c.csv"])
        .status(1)
        .run();
    assert_one_error(&out, &["c.csv", "phone"]);
    assert_eq!(t.dump(), "<no database>");
}

#[test]
fn import_with_contacts_imports_both() {
    let t = Test::new();
    t.write("good.json", campaign("Good", ""));
    t.write(
        "c.csv",
        "phone,name,timezone\n+12125550101,Ann,America/New_York\n+13125550102,Bo,America/Chicago\n",
    );
    t.cmd(["campaign", "import", "good.json", "--contacts", "c.csv"])
        .stdout_contains("2 imported")
        .run();
    assert_eq!(table_rows(&t.dump(), "contacts").len(), 2);
}

#[test]
fn replace_updates_config_but_keeps_contacts_attempts_and_paused() {
    let t = Test::new();
    t.import_campaign(
        "c.json",
        &campaign("Keep", r#""timezone": "Europe/Madrid""#),
    );
    t.import_contacts(
        "Keep",
        "c.csv",
        "id,phone,name,timezone\nk1,+12125550101,Ann,America/New_York\nk2,+34612345678,Bo,Europe/Madrid\n",
    );
    // History no command can write yet: one finished attempt for the first contact.
    let db = t.db();
    db.execute_batch(
        "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, reason, started_at, ended_at)
             SELECT id, campaign_id, 1, phone, 'busy', 'busy', 1760000000, 1760000030 FROM contacts WHERE ext_id = 'k1';
         UPDATE contacts SET attempts = 1, last_reason = 'busy', next_attempt_at = 1760000630 WHERE ext_id = 'k1';",
    )
    .expect("arrange an attempt");
    drop(db);
    t.cmd(["campaign", "pause", "Keep"])
        .stdout_contains("paused")
        .run();
    let before = t.dump();

    t.write(
        "c2.json",
        campaign(
            "Keep",
            r#""timezone": "Asia/Tokyo", "calling_hours_start": "10:00", "max_retries": 5"#,
        ),
    );
    t.cmd(["campaign", "import", "c2.json", "--replace"])
        .stdout_contains("updated")
        .run();
    let after = t.dump();
    for table in ["contacts", "attempts", "imports", "dnc"] {
        assert_eq!(
            table_rows(&after, table),
            table_rows(&before, table),
            "{table} changed on --replace"
        );
    }
    let campaigns = table_rows(&after, "campaigns");
    assert_eq!(campaigns.len(), 1, "{campaigns:?}");
    assert!(campaigns[0].contains("Asia/Tokyo"), "{campaigns:?}");
    t.cmd(["campaign", "show", "Keep"])
        .stdout_contains("Asia/Tokyo")
        .stdout_contains("10:00-21:00")
        .stdout_contains("max retries:       5")
        .stdout_contains("paused")
        .run();
    let list = t.cmd(["campaign", "list"]).run();
    let row: Vec<&str> = list
        .stdout
        .lines()
        .find(|l| l.starts_with("Keep"))
        .expect("listed")
        .split_whitespace()
        .collect();
    // campaign status contacts open completed exhausted opted_out dnc attempts in_flight
    assert_eq!(row[1], "paused", "{row:?}");
    assert_eq!(row[2], "2", "{row:?}");
    assert_eq!(row[8], "1", "{row:?}");
}

#[test]
fn replace_gives_a_draft_its_message() {
    let t = Test::new();
    t.import_campaign("optimizada.json", OPTIMIZADA);
    t.import_contacts(
        OPTIMIZADA_NAME,
        "c.csv",
        "phone,timezone\n+12125550101,America/New_York\n",
    );
    let with_message = OPTIMIZADA.replacen('{', "{\n  \"message\": \"Hola {{name}}.\",", 1);
    t.write("optimizada2.json", with_message);
    t.cmd(["campaign", "import", "optimizada2.json", "--replace"])
        .stderr_lacks("draft")
        .run();
    // Wednesday 10:00 in New York, inside 09:00-18:00.
    let plan = t
        .cmd(["plan", "--at", "2026-01-14T15:00:00Z", "--format", "json"])
        .run()
        .json();
    assert_eq!(plan[0]["reason"], "due", "{plan}");
}

#[test]
fn pause_and_resume() {
    let t = Test::new();
    t.import_campaign("c.json", &campaign("P", ""));
    t.cmd(["campaign", "pause", "P"])
        .stdout("campaign `P` paused\n")
        .run();
    t.cmd(["campaign", "pause", "P"])
        .stdout_contains("already paused")
        .run();
    t.cmd(["campaign", "resume", "P"])
        .stdout("campaign `P` resumed\n")
        .run();
    let out = t.cmd(["campaign", "pause", "missing"]).status(1).run();
    assert_one_error(&out, &["`missing`"]);
}
