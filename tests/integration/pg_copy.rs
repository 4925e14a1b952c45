//! `dialer db copy` end to end: a database built through the product (the shipped campaigns and
//! contacts, a `run batch` through a separate simulator process leaving attempts, call events,
//! answers and a follow-up SMS, a DNC number) copied by the real binary into a fresh database of
//! the throwaway PostgreSQL cluster, its printed counts and checksums checked against SQLite, and
//! rows compared through the `postgres` crate. Plus what `db copy` and a `[database] url` refuse.

use std::collections::BTreeMap;

use dialer::store::pg::cluster::PgCluster;
use rusqlite::Connection;

use crate::calls::{SimProcess, TestDir, config, contacts, count, placed, rules};

const ANSWERING: &str = "+12125550171";
const MISSING: &str = "+12125550172";
const ON_DNC: &str = "+12125550199";

const CAMPAIGN: &str = r#"{"name": "pg copy", "calling_hours_start": "00:00",
  "calling_hours_end": "24:00", "max_retries": 0,
  "follow_up": [{"name": "missed-sms", "reason": "no-answer", "body": "Sorry we missed you, {{name}}."}],
  "script": {
    "start": "ask",
    "steps": {
      "ask": {
        "say": "Hello {{name}}.",
        "gather": {
          "input": "dtmf", "timeout": 5, "num_digits": 1, "prompt": "Press 1 to confirm.",
          "options": [{ "digits": "1", "outcome": "confirmed", "next": "bye" }],
          "no_input": "bye", "no_match": "bye"
        }
      },
      "bye": { "say": "Goodbye.", "hangup": true }
    }
  }}"#;

/// A database with rows in the product's tables, made by the product; the simulator is returned
/// so it outlives the batch.
fn populated() -> (TestDir, SimProcess) {
    let dir = TestDir::new();
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 5\ntime_scale = 0.01\n{}",
            rules(&[(ANSWERING, "human", &["1"]), (MISSING, "no-answer", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write("c.json", CAMPAIGN);
    dir.write("c.csv", &contacts(&[ANSWERING, MISSING]));
    let root = env!("CARGO_MANIFEST_DIR");
    for (campaign, csv) in [
        ("appointment-reminder.json", "contacts.csv"),
        ("satisfaction-survey.json", "survey-contacts.csv"),
    ] {
        let out = dir.output(&[
            "campaign",
            "import",
            &format!("{root}/campaigns/{campaign}"),
            "--contacts",
            &format!("{root}/examples/{csv}"),
        ]);
        assert!(
            out.status.success(),
            "import {campaign}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = dir.output(&["dnc", "add", ON_DNC]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dir.batch(&["--campaign", "pg copy"]);
    assert_eq!(placed(&out), 2, "{out}");
    (dir, sim)
}

/// The table `db copy` printed: table → (source rows, target rows, source sha, target sha, mark).
fn printed(stdout: &str) -> BTreeMap<String, (u64, u64, String, String, String)> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let [table, source, target, source_sha, target_sha, mark] = cells[..] else {
                return None;
            };
            Some((
                table.to_owned(),
                (
                    source.parse().ok()?,
                    target.parse().ok()?,
                    source_sha.to_owned(),
                    target_sha.to_owned(),
                    mark.to_owned(),
                ),
            ))
        })
        .collect()
}

fn sqlite_count(conn: &Connection, table: &str) -> u64 {
    u64::try_from(count(conn, &format!("SELECT count(*) FROM {table}"))).expect("a count")
}

#[test]
fn db_copy_moves_a_real_database_to_postgres_verifiably() {
    let (dir, _sim) = populated();
    let url = PgCluster::shared().database("db_copy_it");
    let out = dir.output(&["db", "copy", "--to", &url.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "db copy failed:\n{stdout}\n{stderr}");

    // every product table is listed, source and target agree, and the counts are SQLite's own
    let tables = printed(&stdout);
    assert_eq!(
        tables.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut all = dialer::store::pg::product_tables().to_vec();
            all.sort_unstable();
            all
        },
        "{stdout}"
    );
    let conn = dir.db();
    for (table, (source, target, source_sha, target_sha, mark)) in &tables {
        assert_eq!(*source, sqlite_count(&conn, table), "{table}: {stdout}");
        assert_eq!(source, target, "{table}: {stdout}");
        assert_eq!(source_sha, target_sha, "{table}: {stdout}");
        assert_eq!(source_sha.len(), 64, "{table}: {stdout}");
        assert_eq!(mark, "ok", "{table}: {stdout}");
    }
    // the run left rows in the tables that matter
    let rows = |t: &str| tables[t].1;
    assert_eq!(rows("campaigns"), 3, "{stdout}");
    assert!(rows("contacts") > 2, "{stdout}");
    assert_eq!(rows("attempts"), 2, "{stdout}");
    assert!(rows("call_events") >= 2, "{stdout}");
    assert_eq!(rows("answers"), 1, "{stdout}");
    assert_eq!(rows("messages"), 1, "{stdout}");
    assert_eq!(rows("dnc"), 1, "{stdout}");
    assert!(rows("imports") >= 3, "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("copied ") && last.ends_with("every table's row count and checksum match"),
        "{stdout}"
    );

    // spot checks, read through the driver
    let mut pg = dialer::store::pg::connect(&url).expect("connect");
    let attempt_rows = |sql: &str| -> Vec<(i64, String, Option<String>, Option<String>)> {
        let mut stmt = conn.prepare(sql).expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let sql = "SELECT id, phone, call_sid, outcome FROM attempts ORDER BY id";
    let in_pg: Vec<(i64, String, Option<String>, Option<String>)> = pg
        .query(sql, &[])
        .expect("attempts")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(in_pg, attempt_rows(sql));
    assert!(
        in_pg
            .iter()
            .any(|a| a.1 == ANSWERING && a.3.as_deref() == Some("confirmed")),
        "{in_pg:?}"
    );
    let body: String = pg
        .query_one(
            "SELECT body FROM messages WHERE to_address = $1",
            &[&MISSING],
        )
        .expect("the follow-up")
        .get(0);
    assert_eq!(body, "Sorry we missed you, Contact 1.");
    let dnc: String = pg
        .query_one("SELECT phone FROM dnc", &[])
        .expect("dnc")
        .get(0);
    assert_eq!(dnc, ON_DNC);
    let survey: String = pg
        .query_one(
            "SELECT config FROM campaigns WHERE name = 'Customer satisfaction survey'",
            &[],
        )
        .expect("the shipped survey campaign")
        .get(0);
    let stored: String = conn
        .query_row(
            "SELECT config FROM campaigns WHERE name = 'Customer satisfaction survey'",
            [],
            |r| r.get(0),
        )
        .expect("survey in SQLite");
    assert_eq!(survey, stored);

    // a second copy into the same database is refused and changes nothing
    let again = dir.output(&["db", "copy", "--to", &url.to_string()]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        err.trim_end(),
        "error: PostgreSQL: the target database already holds rows in `campaigns`: `db copy` only copies into a database with no dialer data (create a new one with `createdb NAME`)"
    );
    let attempts: i64 = pg
        .query_one("SELECT count(*) FROM attempts", &[])
        .expect("count")
        .get(0);
    assert_eq!(attempts, 2);
}

#[test]
fn db_copy_refuses_a_password_in_the_url_and_a_missing_source() {
    let dir = TestDir::new();
    dir.write("dialer.toml", "[database]\npath = \"nothing-here.db\"\n");
    let out = dir.output(&[
        "db",
        "copy",
        "--to",
        "postgres://dialer:hunter2@db.example.com/dialer",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "error: `--to` must not hold a password: remove it from the url and set the environment variable `DIALER_DATABASE_PASSWORD` instead"
    );

    let url = PgCluster::shared().url("never_created");
    let out = dir.output(&["db", "copy", "--to", &url.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: the SQLite database `")
            && err.trim_end().ends_with(
                "nothing-here.db` does not exist: pass the file to copy with `--from FILE`"
            ),
        "{err}"
    );
    assert!(!dir.file("nothing-here.db").exists(), "no file was created");
}

#[test]
fn db_copy_takes_its_source_from_from_while_the_config_holds_a_url() {
    let dir = TestDir::new();
    let url = PgCluster::shared().database("url_commands");
    dir.write("dialer.toml", &format!("[database]\nurl = \"{url}\"\n"));
    // the url's database is the source of nothing: `db copy` asks for the SQLite file
    let out = dir.output(&["db", "copy", "--to", &url.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass the SQLite file with `--from FILE`")
    );

    // …which `--from` names: the SQLite database of another folder
    let sqlite = TestDir::new();
    sqlite.write("dialer.toml", "[database]\npath = \"dialer.db\"\n");
    let added = sqlite.output(&["dnc", "add", ON_DNC]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let from = sqlite.file("dialer.db");
    let out = dir.output(&[
        "db",
        "copy",
        "--from",
        from.to_str().expect("a UTF-8 path"),
        "--to",
        &url.to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = printed(&stdout);
    assert_eq!(tables["dnc"].1, 1, "{stdout}");
    assert_eq!(tables["campaigns"].1, 0, "{stdout}");
    let mut pg = dialer::store::pg::connect(&url).expect("connect");
    let phone: String = pg
        .query_one("SELECT phone FROM dnc", &[])
        .expect("the copied number")
        .get(0);
    assert_eq!(phone, ON_DNC);
}
