//! `dialer plan` end to end (SPEC §5.1, §5.4): the output shapes, and the decisions of
//! `src/schedule/` seen through stored campaigns and contacts (zones, excluded days and dates,
//! start/end, pause, `24:00`, DST, and stored contact states).

use serde_json::Value;

use crate::harness::{Test, campaign, default_config};

/// A sandbox with one campaign (extra JSON fields) and contacts from `csv`.
fn setup(extra: &str, csv: &str) -> Test {
    let t = Test::new();
    t.import_campaign("c.json", &campaign("Plan", extra));
    t.import_contacts("Plan", "c.csv", csv);
    t
}

fn plan(t: &Test, at: &str) -> Vec<Value> {
    let out = t.cmd(["plan", "--at", at, "--format", "json"]).run();
    match out.json() {
        Value::Array(rows) => rows,
        other => panic!("not an array: {other}"),
    }
}

/// The row of one contact (by CSV id).
fn row<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["contact"] == id)
        .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"))
}

/// (reason, next_eligible_at) of a contact.
fn decision(rows: &[Value], id: &str) -> (String, Option<String>) {
    let r = row(rows, id);
    let reason = r["reason"].as_str().expect("reason").to_owned();
    assert_eq!(r["due"], reason == "due", "due agrees with reason: {r}");
    (reason, r["next_eligible_at"].as_str().map(str::to_owned))
}

fn expect(rows: &[Value], id: &str, reason: &str, next: Option<&str>) {
    assert_eq!(
        decision(rows, id),
        (reason.to_owned(), next.map(str::to_owned)),
        "contact {id}"
    );
}

const NY_LA: &str = "\
id,name,phone,timezone
ny,Ann,+12125550101,America/New_York
la,Bo,+14155550102,America/Los_Angeles
";

const KEYS: [&str; 9] = [
    "campaign",
    "contact",
    "phone",
    "timezone",
    "local_time",
    "due",
    "reason",
    "next_eligible_at",
    "attempts",
];

#[test]
fn json_rows_have_exactly_the_spec_keys() {
    let t = setup(
        r#""calling_hours_start": "09:00", "calling_hours_end": "18:00""#,
        NY_LA,
    );
    let rows = plan(&t, "2026-01-14T15:00:00Z");
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let obj = r.as_object().expect("object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{r}");
        assert_eq!(r["campaign"], "Plan");
        assert!(r["due"].is_boolean() && r["attempts"].is_u64(), "{r}");
    }
    let ny = row(&rows, "ny");
    assert_eq!(ny["phone"], "+12125550101");
    assert_eq!(ny["timezone"], "America/New_York");
    assert_eq!(ny["attempts"], 0);
}

#[test]
fn two_zones_at_one_instant() {
    let t = setup(
        r#""calling_hours_start": "09:00", "calling_hours_end": "18:00""#,
        NY_LA,
    );
    // Wednesday 10:00 in New York, 07:00 in Los Angeles.
    let rows = plan(&t, "2026-01-14T15:00:00Z");
    expect(&rows, "ny", "due", Some("2026-01-14T15:00:00Z"));
    expect(
        &rows,
        "la",
        "outside_calling_hours",
        Some("2026-01-14T17:00:00Z"),
    );
    assert_eq!(row(&rows, "ny")["local_time"], "2026-01-14T10:00:00-05:00");
    assert_eq!(row(&rows, "la")["local_time"], "2026-01-14T07:00:00-08:00");
}

#[test]
fn friday_in_utc_is_saturday_in_tokyo() {
    let t = setup(
        r#""excluded_days": ["Saturday", "sun"]"#,
        "id,phone,timezone\ntokyo,+81312345678,Asia/Tokyo\nlondon,+442079460958,Europe/London\n",
    );
    // Friday 23:00 UTC: Saturday 08:00 in Tokyo, Friday 23:00 in London.
    let rows = plan(&t, "2026-01-16T23:00:00Z");
    expect(&rows, "tokyo", "excluded_day", Some("2026-01-18T23:00:00Z"));
    expect(
        &rows,
        "london",
        "outside_calling_hours",
        Some("2026-01-19T08:00:00Z"),
    );
    assert_eq!(
        row(&rows, "tokyo")["local_time"],
        "2026-01-17T08:00:00+09:00"
    );
}

#[test]
fn excluded_date_and_next_eligible_across_weekend_and_holiday() {
    let t = setup(
        r#""calling_hours_start": "09:00", "calling_hours_end": "18:00",
  "excluded_days": ["Saturday", "Sunday"], "excluded_dates": ["2026-01-19"]"#,
        NY_LA,
    );
    // Monday 2026-01-19 10:00 in New York: a holiday.
    let rows = plan(&t, "2026-01-19T15:00:00Z");
    expect(&rows, "ny", "excluded_date", Some("2026-01-20T14:00:00Z"));
    // Friday 19:00 in New York: after hours; Saturday, Sunday and Monday are out.
    let rows = plan(&t, "2026-01-17T00:00:00Z");
    expect(
        &rows,
        "ny",
        "outside_calling_hours",
        Some("2026-01-20T14:00:00Z"),
    );
    // Saturday noon.
    let rows = plan(&t, "2026-01-17T17:00:00Z");
    expect(&rows, "ny", "excluded_day", Some("2026-01-20T14:00:00Z"));
    expect(&rows, "la", "excluded_day", Some("2026-01-20T17:00:00Z"));
}

#[test]
fn excluded_date_is_in_the_contacts_local_calendar() {
    let t = setup(
        r#""calling_hours_start": "00:00", "calling_hours_end": "24:00", "excluded_dates": ["2026-01-15"]"#,
        NY_LA,
    );
    // 2026-01-15 in UTC, still 2026-01-14 in New York and Los Angeles.
    let rows = plan(&t, "2026-01-15T04:30:00Z");
    expect(&rows, "ny", "due", Some("2026-01-15T04:30:00Z"));
    // New York has reached the 15th, Los Angeles has not.
    let rows = plan(&t, "2026-01-15T05:00:00Z");
    expect(&rows, "ny", "excluded_date", Some("2026-01-16T05:00:00Z"));
    expect(&rows, "la", "due", Some("2026-01-15T05:00:00Z"));
}

#[test]
fn not_started_and_ended() {
    let t = Test::new();
    t.import_campaign(
        "later.json",
        &campaign(
            "Later",
            r#""calling_hours_start": "09:00", "calling_hours_end": "18:00", "start_at": "2026-02-01T00:00:00Z""#,
        ),
    );
    t.import_campaign(
        "over.json",
        &campaign("Over", r#""end_at": "2026-01-10T00:00:00Z""#),
    );
    t.import_campaign(
        "closing.json",
        &campaign(
            "Closing",
            r#""calling_hours_start": "09:00", "end_at": "2026-01-14T12:00:00Z""#,
        ),
    );
    let csv = "id,phone,timezone\nny,+12125550101,America/New_York\n";
    for c in ["Later", "Over", "Closing"] {
        t.import_contacts(c, "c.csv", csv);
    }
    let by_campaign = |at: &str, name: &str| {
        let out = t
            .cmd(["plan", "--at", at, "--campaign", name, "--format", "json"])
            .run();
        let rows = out.json().as_array().expect("array").clone();
        assert_eq!(rows.len(), 1, "--campaign filters: {rows:?}");
        decision(&rows, "ny")
    };
    // Sunday 2026-02-01 09:00 EST is the first window after start_at.
    assert_eq!(
        by_campaign("2026-01-14T15:00:00Z", "Later"),
        ("not_started".into(), Some("2026-02-01T14:00:00Z".into()))
    );
    assert_eq!(
        by_campaign("2026-02-02T15:00:00Z", "Later"),
        ("due".into(), Some("2026-02-02T15:00:00Z".into()))
    );
    assert_eq!(
        by_campaign("2026-01-14T15:00:00Z", "Over"),
        ("ended".into(), None)
    );
    // 05:00 in New York, and the campaign ends before 09:00: never again.
    assert_eq!(
        by_campaign("2026-01-14T10:00:00Z", "Closing"),
        ("outside_calling_hours".into(), None)
    );
}

#[test]
fn paused_then_resumed() {
    let t = setup(
        r#""calling_hours_start": "09:00", "calling_hours_end": "18:00""#,
        NY_LA,
    );
    t.cmd(["campaign", "pause", "Plan"]).run();
    let rows = plan(&t, "2026-01-14T15:00:00Z");
    expect(&rows, "ny", "paused", None);
    expect(&rows, "la", "paused", None);
    t.cmd(["campaign", "resume", "Plan"]).run();
    let rows = plan(&t, "2026-01-14T15:00:00Z");
    expect(&rows, "ny", "due", Some("2026-01-14T15:00:00Z"));
}

#[test]
fn end_of_day_2400() {
    let t = setup(
        r#""calling_hours_start": "20:00", "calling_hours_end": "24:00""#,
        NY_LA,
    );
    // 23:59:59 in New York.
    let rows = plan(&t, "2026-01-15T04:59:59Z");
    expect(&rows, "ny", "due", Some("2026-01-15T04:59:59Z"));
    // Midnight: closed until 20:00 the same (new) day.
    let rows = plan(&t, "2026-01-15T05:00:00Z");
    expect(
        &rows,
        "ny",
        "outside_calling_hours",
        Some("2026-01-16T01:00:00Z"),
    );
}

#[test]
fn dst_days_in_new_york() {
    // Spring forward 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z; 02:30 does not exist.
    let t = setup(
        r#""calling_hours_start": "02:30", "calling_hours_end": "10:00""#,
        NY_LA,
    );
    let rows = plan(&t, "2026-03-08T06:59:59Z");
    expect(
        &rows,
        "ny",
        "outside_calling_hours",
        Some("2026-03-08T07:00:00Z"),
    );
    let rows = plan(&t, "2026-03-08T07:00:00Z");
    expect(&rows, "ny", "due", Some("2026-03-08T07:00:00Z"));
    assert_eq!(row(&rows, "ny")["local_time"], "2026-03-08T03:00:00-04:00");

    // Fall back 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z; the window closes at the first
    // 01:30 and does not reopen when 01:00-02:00 repeats.
    let t = setup(
        r#""calling_hours_start": "00:00", "calling_hours_end": "01:30""#,
        NY_LA,
    );
    let rows = plan(&t, "2026-11-01T05:29:59Z");
    expect(&rows, "ny", "due", Some("2026-11-01T05:29:59Z"));
    let rows = plan(&t, "2026-11-01T06:15:00Z");
    expect(
        &rows,
        "ny",
        "outside_calling_hours",
        Some("2026-11-02T05:00:00Z"),
    );
    assert_eq!(row(&rows, "ny")["local_time"], "2026-11-01T01:15:00-05:00");
}

#[test]
fn a_contact_without_zone_uses_the_campaign_zone() {
    let t = setup(
        r#""timezone": "Asia/Tokyo", "calling_hours_start": "09:00", "calling_hours_end": "18:00""#,
        "id,phone,timezone\nown,+12125550101,America/New_York\n",
    );
    // No timezone cell and no prefix data for this one: the campaign's zone.
    t.db()
        .execute(
            "INSERT INTO contacts (campaign_id, phone, ext_id, zones, fields, created_at, updated_at)
             SELECT campaign_id, '+12125550199', 'none', NULL, '{}', 0, 0 FROM contacts LIMIT 1",
            [],
        )
        .expect("arrange a zone-less contact");
    // 10:00 in Tokyo, 20:00 in New York.
    let rows = plan(&t, "2026-01-14T01:00:00Z");
    expect(&rows, "none", "due", Some("2026-01-14T01:00:00Z"));
    assert_eq!(row(&rows, "none")["timezone"], "Asia/Tokyo");
    expect(
        &rows,
        "own",
        "outside_calling_hours",
        Some("2026-01-14T14:00:00Z"),
    );
}

#[test]
fn several_zones_must_all_be_open() {
    let t = setup(
        r#""calling_hours_start": "08:00", "calling_hours_end": "21:00""#,
        "id,phone,timezone\nboth,+12125550101,America/New_York\n",
    );
    // What the prefix table gives for a number spanning two zones.
    t.db()
        .execute(
            "UPDATE contacts SET zones = 'America/New_York|America/Chicago'",
            [],
        )
        .expect("arrange two zones");
    // 08:30 in New York, 07:30 in Chicago.
    let rows = plan(&t, "2026-01-14T13:30:00Z");
    expect(
        &rows,
        "both",
        "outside_calling_hours",
        Some("2026-01-14T14:00:00Z"),
    );
    let r = row(&rows, "both");
    assert_eq!(r["timezone"], "America/New_York|America/Chicago");
    assert_eq!(
        r["local_time"],
        "2026-01-14T08:30:00-05:00|2026-01-14T07:30:00-06:00"
    );
}

#[test]
fn stored_states_and_dnc() {
    let t = setup(
        r#""calling_hours_start": "09:00", "calling_hours_end": "18:00", "max_retries": 2"#,
        "\
id,phone,timezone
open,+12125550101,America/New_York
done,+12125550102,America/New_York
tired,+12125550103,America/New_York
out,+12125550104,America/New_York
flying,+12125550105,America/New_York
waiting,+12125550106,America/New_York
used,+12125550107,America/New_York
blocked,+12125550108,America/New_York
",
    );
    // States no command can reach yet, written directly. 1768402800 = 2026-01-14T15:00:00Z.
    t.db()
        .execute_batch(
            "UPDATE contacts SET state = 'completed', attempts = 1 WHERE ext_id = 'done';
             UPDATE contacts SET state = 'exhausted', attempts = 3 WHERE ext_id = 'tired';
             UPDATE contacts SET state = 'opted_out', attempts = 1 WHERE ext_id = 'out';
             UPDATE contacts SET attempts = 1 WHERE ext_id = 'flying';
             INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, started_at)
                 SELECT id, campaign_id, 1, phone, 1768402700 FROM contacts WHERE ext_id = 'flying';
             UPDATE contacts SET attempts = 1, next_attempt_at = 1768404600 WHERE ext_id = 'waiting';
             UPDATE contacts SET attempts = 3 WHERE ext_id = 'used';",
        )
        .expect("arrange states");
    t.cmd(["dnc", "add", "(212) 555-0108"]).run();
    let before = t.dump();
    let rows = plan(&t, "2026-01-14T15:00:00Z");
    assert_eq!(t.dump(), before, "plan changed the database");
    expect(&rows, "open", "due", Some("2026-01-14T15:00:00Z"));
    expect(&rows, "done", "completed", None);
    expect(&rows, "tired", "exhausted", None);
    expect(&rows, "out", "opted_out", None);
    expect(&rows, "flying", "in_flight", None);
    expect(&rows, "waiting", "retry_wait", Some("2026-01-14T15:30:00Z"));
    expect(&rows, "used", "exhausted", None);
    expect(&rows, "blocked", "dnc", None);
    assert_eq!(row(&rows, "waiting")["attempts"], 1);
    // A retry that lands after hours waits for the next window: 23:00Z is 18:00 in New York.
    t.db()
        .execute(
            "UPDATE contacts SET next_attempt_at = 1768431600 WHERE ext_id = 'waiting'",
            [],
        )
        .expect("retry at 23:00Z");
    let rows = plan(&t, "2026-01-14T22:50:00Z");
    expect(&rows, "open", "due", Some("2026-01-14T22:50:00Z"));
    expect(&rows, "waiting", "retry_wait", Some("2026-01-15T14:00:00Z"));
}

#[test]
fn daily_cap_counts_attempts_in_any_campaign() {
    let config = default_config().replace(
        "# max_calls_per_number_per_day = 3",
        "max_calls_per_number_per_day = 1",
    );
    assert!(config.contains("\nmax_calls_per_number_per_day = 1"));
    let t = Test::with_config(&config);
    let csv = "id,phone,timezone\nny,+12125550101,America/New_York\n";
    t.import_campaign("a.json", &campaign("A", ""));
    t.import_campaign("b.json", &campaign("B", ""));
    t.import_contacts("A", "c.csv", csv);
    t.import_contacts("B", "c.csv", csv);
    // Campaign A called the number at 2026-01-14T14:00:00Z and it ended.
    t.db()
        .execute_batch(
            "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, reason, started_at, ended_at)
                 SELECT c.id, c.campaign_id, 1, c.phone, 'busy', 'busy', 1768399200, 1768399230
                 FROM contacts c JOIN campaigns k ON k.id = c.campaign_id WHERE k.name = 'A';",
        )
        .expect("arrange an attempt");
    let out = t
        .cmd([
            "plan",
            "--at",
            "2026-01-14T15:00:00Z",
            "--campaign",
            "B",
            "--format",
            "json",
        ])
        .run();
    let rows = out.json().as_array().expect("array").clone();
    // Free 24 h after the attempt: 2026-01-15T14:00:00Z, 09:00 in New York, inside 08:00-21:00.
    expect(&rows, "ny", "daily_cap", Some("2026-01-15T14:00:00Z"));
}

#[test]
fn csv_and_table_formats() {
    let t = setup(
        r#""calling_hours_start": "09:00", "calling_hours_end": "18:00""#,
        NY_LA,
    );
    let csv = t
        .cmd(["plan", "--at", "2026-01-14T15:00:00Z", "--format", "csv"])
        .run()
        .stdout;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(KEYS.join(",").as_str()));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid CSV");
    assert_eq!(records.len(), 2);
    let ny = records.iter().find(|r| &r[1] == "ny").expect("ny row");
    assert_eq!(&ny[5], "true");
    assert_eq!(&ny[6], "due");
    let la = records.iter().find(|r| &r[1] == "la").expect("la row");
    assert_eq!(
        (&la[5], &la[6], &la[7]),
        ("false", "outside_calling_hours", "2026-01-14T17:00:00Z")
    );

    let table = t.cmd(["plan", "--at", "2026-01-14T15:00:00Z"]).run().stdout;
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header line")
        .split_whitespace()
        .collect();
    assert_eq!(header, KEYS);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("outside_calling_hours"), "{table}");
}

#[test]
fn empty_database_plans_nothing() {
    let t = Test::new();
    let rows = plan(&t, "2026-01-14T15:00:00Z");
    assert!(rows.is_empty());
}

#[test]
fn bad_at_and_unknown_campaign_fail() {
    let t = setup("", NY_LA);
    // a malformed flag value is a usage error (exit 2), reported by clap
    let out = t.cmd(["plan", "--at", "next tuesday"]).status(2).run();
    assert!(
        out.stderr.contains("--at") && out.stderr.contains("RFC 3339"),
        "{}",
        out.stderr
    );
    let out = t.cmd(["plan", "--campaign", "Nope"]).status(1).run();
    crate::harness::assert_one_error(&out, &["`Nope`"]);
}
