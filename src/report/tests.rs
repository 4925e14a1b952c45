//! Report tests against a real store in a temp dir, rows inserted with plain SQL.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::*;
use crate::store::{AttemptFilter, Store};

/// 2026-11-23T15:00:00Z
const T0: i64 = 1_795_446_000;

struct Db {
    _dir: tempfile::TempDir,
    store: Store,
}

fn db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("dialer.db")).expect("open store");
    Db { _dir: dir, store }
}

impl Db {
    fn campaign(&self, name: &str) -> i64 {
        self.store
            .conn()
            .execute(
                "INSERT INTO campaigns (name, config, created_at, updated_at) VALUES (?1, '{}', 0, 0)",
                [name],
            )
            .unwrap();
        self.store.conn().last_insert_rowid()
    }

    fn contact(&self, campaign: i64, phone: &str, ext_id: Option<&str>) -> i64 {
        self.store
            .conn()
            .execute(
                "INSERT INTO contacts (campaign_id, phone, ext_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 0, 0)",
                params![campaign, phone, ext_id],
            )
            .unwrap();
        self.store.conn().last_insert_rowid()
    }

    fn sql(&self, sql: &str, p: impl rusqlite::Params) {
        self.store.conn().execute(sql, p).unwrap();
    }

    /// An ended attempt with the given reason, AMD verdict and duration.
    fn attempt(
        &self,
        contact: i64,
        no: i64,
        started: i64,
        reason: Option<&str>,
        answered_by: Option<&str>,
        duration: Option<i64>,
    ) -> i64 {
        let ended = reason.map(|_| started + 60);
        self.sql(
            "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, reason,
                answered_by, duration_seconds, started_at, ended_at)
             SELECT id, campaign_id, ?2, phone, coalesce(?3, 'ringing'), ?3, ?4, ?5, ?6, ?7
             FROM contacts WHERE id = ?1",
            params![contact, no, reason, answered_by, duration, started, ended],
        );
        self.store.conn().last_insert_rowid()
    }

    fn answer(
        &self,
        attempt: i64,
        step: &str,
        digits: Option<&str>,
        speech: Option<&str>,
        at: i64,
    ) {
        self.sql(
            "INSERT INTO answers (attempt_id, step, digits, speech, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![attempt, step, digits, speech, at],
        );
    }

    fn export(&self, filter: AttemptFilter) -> String {
        let mut out = Vec::new();
        let n = write_attempts(&self.store, &filter, &mut out, |_| {}).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(n as usize + 1, text.lines().count(), "{text}");
        text
    }

    fn export_contacts(
        &self,
        campaigns: &[ExportCampaign],
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> String {
        let mut out = Vec::new();
        write_contacts(
            &self.store,
            campaigns,
            since,
            until,
            Cells::Neutralised,
            &mut out,
            |_| {},
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

const HEADER_LINE: &str = "campaign,contact,name,phone,attempt,call_sid,status,reason,answered_by,outcome,digits,speech,duration_seconds,started_at,answered_at,ended_at,error_code,error_message,direction";

fn rows(text: &str) -> Vec<&str> {
    text.lines().skip(1).collect()
}

#[test]
fn attempt_export_header_is_exact() {
    let d = db();
    assert_eq!(
        d.export(AttemptFilter::default()),
        format!("{HEADER_LINE}\n")
    );
    assert_eq!(ATTEMPT_HEADER.join(","), HEADER_LINE);
}

#[test]
fn attempt_export_writes_every_column() {
    let d = db();
    let c = d.campaign("spring");
    let p = d.contact(c, "+14155550100", Some("C-7"));
    d.sql(
        "UPDATE contacts SET name = 'Doe, \"Jo\"' WHERE id = ?1",
        [p],
    );
    d.sql(
        "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, call_sid, status, reason,
            answered_by, outcome, digits, speech, duration_seconds, started_at, answered_at,
            ended_at, error_code, error_message)
         VALUES (?1, ?2, 2, '+14155550100', 'CA0123', 'completed', 'completed', 'human',
            'interested', '1', 'yes please', 61, ?3, ?4, ?5, 21211, 'Invalid ''To'' number')",
        params![p, c, T0, T0 + 7, T0 + 68],
    );
    assert_eq!(
        rows(&d.export(AttemptFilter::default())),
        [
            "spring,C-7,\"Doe, \"\"Jo\"\"\",+14155550100,2,CA0123,completed,completed,human,interested,1,yes please,61,2026-11-23T15:00:00Z,2026-11-23T15:00:07Z,2026-11-23T15:01:08Z,21211,Invalid 'To' number,outbound"
        ]
    );
}

#[test]
fn attempt_export_leaves_unknown_cells_empty() {
    let d = db();
    let c = d.campaign("spring");
    let p = d.contact(c, "+14155550100", None);
    d.sql(
        "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, started_at)
         VALUES (?1, ?2, 1, '+14155550100', ?3)",
        params![p, c, T0],
    );
    assert_eq!(
        rows(&d.export(AttemptFilter::default())),
        ["spring,+14155550100,,+14155550100,1,,dialing,,,,,,,2026-11-23T15:00:00Z,,,,,outbound"]
    );
}

#[test]
fn csv_injection_cells_are_neutralised_unless_raw() {
    let d = db();
    let c = d.campaign("=cmd|' /C calc'!A0");
    let p = d.contact(c, "+14155550100", Some("@SUM(1+1)"));
    d.sql(
        "UPDATE contacts SET name = '=HYPERLINK(\"http://evil.example\",\"click\")' WHERE id = ?1",
        [p],
    );
    d.sql(
        "INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, status, outcome,
            speech, duration_seconds, started_at, error_code, error_message)
         VALUES (?1, ?2, 1, '+14155550100', 'completed', '-2+3+cmd|x!A0', char(9) || '=1', -5,
            ?3, -1, char(13) || '=2')",
        params![p, c, T0],
    );
    let neutral = "'=cmd|' /C calc'!A0,'@SUM(1+1),\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",+14155550100,1,,completed,,,'-2+3+cmd|x!A0,,'\t=1,-5,2026-11-23T15:00:00Z,,,-1,\"'\r=2\",outbound";
    assert_eq!(rows(&d.export(AttemptFilter::default())), [neutral]);
    let mut out = Vec::new();
    write_attempts_as(
        &d.store,
        &AttemptFilter::default(),
        Cells::Raw,
        &mut out,
        |_| {},
    )
    .unwrap();
    let raw = "=cmd|' /C calc'!A0,@SUM(1+1),\"=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",+14155550100,1,,completed,,,-2+3+cmd|x!A0,,\t=1,-5,2026-11-23T15:00:00Z,,,-1,\"\r=2\",outbound";
    assert_eq!(rows(&String::from_utf8(out).unwrap()), [raw]);

    // the per-contact export: fields, answers and `answer.STEP` headers alike
    d.answer(1, "q", None, Some("=1+1"), T0 + 5);
    let text = d.export_contacts(&[campaign_info(c, "=x", &["q"])], None, None);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{},answer.q", CONTACT_HEADER.join(",")));
    assert!(
        lines[1].starts_with("'=x,'@SUM(1+1),\"'=HYPERLINK(") && lines[1].ends_with(",'=1+1"),
        "{text}"
    );
}

#[test]
fn attempt_export_orders_by_campaign_contact_attempt() {
    let d = db();
    let b = d.campaign("b-camp");
    let a = d.campaign("a-camp");
    let b1 = d.contact(b, "+14155550101", Some("b1"));
    let a1 = d.contact(a, "+14155550102", Some("a1"));
    let a2 = d.contact(a, "+14155550103", Some("a2"));
    d.attempt(a2, 1, T0, Some("busy"), None, None);
    d.attempt(b1, 1, T0, Some("busy"), None, None);
    d.attempt(a1, 2, T0 + 100, None, None, None);
    d.attempt(a1, 1, T0, Some("no-answer"), None, None);
    let keys: Vec<String> = rows(&d.export(AttemptFilter::default()))
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            format!("{} {} {}", f[0], f[1], f[4])
        })
        .collect();
    assert_eq!(
        keys,
        ["a-camp a1 1", "a-camp a1 2", "a-camp a2 1", "b-camp b1 1"]
    );
    let only_b = d.export(AttemptFilter {
        campaign_id: Some(b),
        ..Default::default()
    });
    assert_eq!(rows(&only_b).len(), 1);
    assert!(rows(&only_b)[0].starts_with("b-camp,b1,"));
}

#[test]
fn since_is_inclusive_and_until_exclusive() {
    let d = db();
    let c = d.campaign("spring");
    let p = d.contact(c, "+14155550100", None);
    for (no, t) in [(1, T0 - 1), (2, T0), (3, T0 + 3599), (4, T0 + 3600)] {
        d.attempt(p, no, t, Some("busy"), None, None);
    }
    let attempts = |since: Option<i64>, until: Option<i64>| -> Vec<String> {
        rows(&d.export(AttemptFilter {
            campaign_id: None,
            since: since.map(at),
            until: until.map(at),
        }))
        .iter()
        .map(|r| r.split(',').nth(4).unwrap().to_owned())
        .collect()
    };
    assert_eq!(attempts(Some(T0), Some(T0 + 3600)), ["2", "3"]);
    assert_eq!(attempts(Some(T0), None), ["2", "3", "4"]);
    assert_eq!(attempts(None, Some(T0)), ["1"]);
    assert_eq!(attempts(None, None), ["1", "2", "3", "4"]);
}

#[test]
fn range_flags_are_parsed_and_checked() {
    let TimeRange {
        since: lo,
        until: hi,
    } = parse_range(
        Some("2026-11-23T15:00:00Z"),
        Some("2026-11-23T18:00:00+02:00"),
    )
    .unwrap();
    assert_eq!(lo, Some(at(T0)));
    assert_eq!(hi, Some(at(T0 + 3600)));
    let err = parse_range(Some("yesterday"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`--since yesterday` is not an RFC 3339 instant like 2026-11-23T15:00:00Z"
    );
    let err = parse_range(None, Some("2026-13-01")).unwrap_err();
    assert!(
        err.to_string().starts_with("`--until 2026-13-01` is not"),
        "{err}"
    );
    let err = parse_range(Some("2026-11-24T00:00:00Z"), Some("2026-11-23T00:00:00Z")).unwrap_err();
    assert!(err.to_string().contains("is not before"), "{err}");
}

fn campaign_info(id: i64, name: &str, steps: &[&str]) -> ExportCampaign {
    ExportCampaign {
        id,
        name: name.to_owned(),
        timezone: "America/New_York".to_owned(),
        gather_steps: steps.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn contact_export_has_answer_columns_latest_answer_wins() {
    let d = db();
    let c = d.campaign("survey");
    let p1 = d.contact(c, "+14155550101", Some("p1"));
    let p2 = d.contact(c, "+14155550102", None);
    d.sql(
        "UPDATE contacts SET name = 'Ann', zones = 'Europe/Paris|Europe/Berlin', attempts = 2,
            last_reason = 'completed', outcome = 'happy', state = 'completed',
            next_attempt_at = ?2 WHERE id = ?1",
        params![p1, T0 + 86_400],
    );
    d.sql(
        "UPDATE contacts SET attempts = 1, last_reason = 'busy', next_attempt_at = ?2 WHERE id = ?1",
        params![p2, T0 + 3600],
    );
    let a1 = d.attempt(p1, 1, T0, Some("completed"), None, Some(30));
    let a2 = d.attempt(p1, 2, T0 + 1000, Some("completed"), None, Some(30));
    // first attempt: rating 3 then changed to 4 later in the same call
    d.answer(a1, "rating", Some("3"), None, T0 + 10);
    d.answer(a1, "rating", Some("4"), None, T0 + 20);
    d.answer(a1, "comment", None, Some("too loud"), T0 + 30);
    // second attempt: a newer rating with both digits and speech (digits win), and an
    // empty-digits answer that falls back to speech
    d.answer(a2, "rating", Some("5"), Some("five"), T0 + 1010);
    d.answer(a2, "comment", Some(""), Some("fine now"), T0 + 1020);
    // an answer from another contact must not leak
    let other = d.attempt(p2, 1, T0 + 5, Some("busy"), None, None);
    d.answer(other, "rating", Some("1"), None, T0 + 6);
    d.answer(other, "unknown-step", Some("9"), None, T0 + 7);

    let text = d.export_contacts(
        &[campaign_info(c, "survey", &["comment", "rating"])],
        None,
        None,
    );
    let expected = [
        "campaign,contact,name,phone,timezone,state,attempts,last_reason,outcome,next_attempt_at,answer.comment,answer.rating",
        "survey,p1,Ann,+14155550101,Europe/Paris|Europe/Berlin,completed,2,completed,happy,,fine now,5",
        "survey,+14155550102,,+14155550102,America/New_York,open,1,busy,,2026-11-23T16:00:00Z,,1",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    assert_eq!(
        CONTACT_HEADER.join(","),
        expected[0].split(",answer").next().unwrap()
    );
}

#[test]
fn contact_export_unions_steps_and_filters_by_range() {
    let d = db();
    let a = d.campaign("a");
    let b = d.campaign("b");
    let never = d.contact(a, "+14155550101", Some("never"));
    let early = d.contact(a, "+14155550102", Some("early"));
    let late = d.contact(b, "+14155550103", Some("late"));
    d.attempt(early, 1, T0, Some("busy"), None, None);
    let t = d.attempt(late, 1, T0 + 7200, Some("completed"), None, Some(5));
    d.answer(t, "zip", Some("94110"), None, T0 + 7210);
    let campaigns = [
        campaign_info(a, "a", &["q1", "zip"]),
        campaign_info(b, "b", &["zip", "q2"]),
    ];

    let all = d.export_contacts(&campaigns, None, None);
    let lines: Vec<&str> = all.lines().collect();
    assert!(
        lines[0].ends_with(",next_attempt_at,answer.q1,answer.zip,answer.q2"),
        "{all}"
    );
    let contacts: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(contacts, ["never", "early", "late"]);
    assert!(lines[3].ends_with(",,94110,"), "{all}");
    let _ = never;

    let ranged = d.export_contacts(&campaigns, Some(at(T0)), Some(at(T0 + 7200)));
    let contacts: Vec<&str> = ranged
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(contacts, ["early"]);
    let ranged = d.export_contacts(&campaigns, Some(at(T0 + 1)), None);
    let contacts: Vec<&str> = ranged
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(contacts, ["late"]);
}

#[test]
fn summary_counts_and_rates() {
    let d = db();
    let c = d.campaign("spring");
    let other = d.campaign("other");
    let p = d.contact(c, "+14155550101", None);
    let q = d.contact(c, "+14155550102", None);
    let r = d.contact(c, "+14155550103", None);
    let s = d.contact(c, "+14155550104", None);
    let x = d.contact(other, "+14155550105", None);
    d.sql("UPDATE contacts SET state = 'completed' WHERE id = ?1", [p]);
    d.sql("UPDATE contacts SET state = 'opted_out' WHERE id = ?1", [q]);
    d.sql("INSERT INTO dnc (phone, source, added_at) VALUES ('+14155550103', 'cli', 0), ('+14155550102', 'cli', 0)", []);
    // reached: completed with AMD off (61 s → 2 billed minutes) and with AMD saying human (60 s → 1)
    let a1 = d.attempt(p, 1, T0, Some("completed"), None, Some(61));
    d.attempt(q, 1, T0, Some("completed"), Some("human"), Some(60));
    // not reached: a machine (completed call whose AMD said machine, and the `machine` reason),
    // a busy line with 0 s, and one still ringing
    d.attempt(
        r,
        1,
        T0,
        Some("completed"),
        Some("machine_end_beep"),
        Some(20),
    );
    d.attempt(
        r,
        2,
        T0 + 10,
        Some("machine"),
        Some("machine_start"),
        Some(1),
    );
    d.attempt(s, 1, T0, Some("busy"), None, Some(0));
    d.attempt(s, 2, T0 + 10, None, None, None);
    d.sql("UPDATE attempts SET outcome = 'yes' WHERE id = ?1", [a1]);
    d.sql(
        "UPDATE attempts SET outcome = 'no' WHERE contact_id = ?1",
        [q],
    );
    d.attempt(x, 1, T0, Some("completed"), None, Some(600));

    let sum = summarize(&d.store, c, "spring").unwrap();
    assert_eq!(
        sum,
        Summary {
            campaign: "spring".into(),
            contacts: 4,
            completed: 1,
            exhausted: 0,
            opted_out: 1,
            open: 2,
            dnc: 1,
            attempts: 6,
            in_flight: 1,
            ended: 5,
            reached: 2,
            answer_rate: 0.4,
            outcomes: [("no".to_owned(), 1), ("yes".to_owned(), 1)].into(),
            average_talk_seconds: 60.5,
            // 61 → 2, 60 → 1, 20 → 1, 1 → 1, 0 → 0, NULL → 0
            billed_minutes: 5,
            bot: None,
        }
    );
    let json = serde_json::to_value(&sum).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "campaign",
        "contacts",
        "completed",
        "exhausted",
        "opted_out",
        "open",
        "dnc",
        "attempts",
        "in_flight",
        "ended",
        "reached",
        "answer_rate",
        "outcomes",
        "average_talk_seconds",
        "billed_minutes",
    ];
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["outcomes"]["yes"], 1);
    assert_eq!(json["answer_rate"], 0.4);

    let empty = d.campaign("empty");
    let none = summarize(&d.store, empty, "empty").unwrap();
    assert_eq!(
        (
            none.answer_rate,
            none.average_talk_seconds,
            none.billed_minutes
        ),
        (0.0, 0.0, 0)
    );
}

#[test]
fn atomic_output_appears_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.csv");
    std::fs::write(&dest, "old").unwrap();
    let err = write_atomically(&dest, |f| {
        use std::io::Write;
        f.write_all(b"half a file")?;
        Err::<(), _>(ReportError::Io(std::io::Error::other("disk full")))
    })
    .unwrap_err();
    // the cause follows the message once in the chain `main` prints
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert_eq!(chain, "cannot write the export: disk full");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
    let names = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(dir.path()), ["out.csv"]);

    let n = write_atomically(&dest, |f| {
        use std::io::Write;
        f.write_all(b"new")?;
        Ok(3)
    })
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
    assert_eq!(names(dir.path()), ["out.csv"]);

    let missing = dir.path().join("no/such/dir/out.csv");
    let err = write_atomically(&missing, |_| Ok(())).unwrap_err();
    assert!(err.to_string().starts_with("cannot write `"), "{err}");
}

#[cfg(unix)]
#[test]
fn export_file_is_private_like_the_database() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dest = dir.path().join("out.csv");
    write_atomically(&dest, |_| Ok(())).unwrap();
    assert_eq!(mode(&dest), 0o600);
    // replacing a world-readable file, or reusing a stale temporary file, gives 0600 too
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stale = dir
        .path()
        .join(format!(".out.csv.{}.tmp", std::process::id()));
    std::fs::write(&stale, "stale").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o666)).unwrap();
    write_atomically(&dest, |_| Ok(())).unwrap();
    assert_eq!(mode(&dest), 0o600);
    assert!(!stale.exists());
}

#[test]
fn output_error_says_its_cause_once_in_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/out.csv");
    let err = write_atomically(&missing, |_| Ok(())).unwrap_err();
    // as `main` prints it: `error: {:#}` of the anyhow chain
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert_eq!(
        chain,
        format!(
            "cannot write `{}`: No such file or directory (os error 2) \
             (check the folder exists and is writable)",
            missing.display()
        )
    );
}

#[test]
fn export_reports_progress_for_every_row() {
    let d = db();
    let c = d.campaign("spring");
    let p = d.contact(c, "+14155550100", None);
    for no in 1..=3 {
        d.attempt(p, no, T0 + no, Some("busy"), None, None);
    }
    let mut seen = 0;
    write_attempts(&d.store, &AttemptFilter::default(), std::io::sink(), |n| {
        seen += n
    })
    .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(
        d.store
            .count_attempt_records(&AttemptFilter::default())
            .unwrap(),
        3
    );
}
