//! The product on PostgreSQL (`[database] url`): the same campaign run by `run batch` through a
//! separate simulator process once on SQLite and once on a fresh database of the throwaway
//! PostgreSQL cluster; both record the same outcome (contact export, summary), the PostgreSQL
//! rows are checked through the `postgres` crate, and a second `run` on the same PostgreSQL
//! database is refused while the first holds it.

use std::process::Stdio;

use dialer::store::pg::cluster::PgCluster;

use crate::calls::{SimProcess, TestDir, config, contacts, placed, rules};

const ANSWERING: &str = "+12125550181";
const MISSING: &str = "+12125550182";

const CAMPAIGN: &str = r#"{"name": "on pg", "calling_hours_start": "00:00",
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

/// Runs the campaign to its end on the database `database_toml` names (empty: the default
/// SQLite file); returns the folder, the simulator (kept alive) and the contact export.
fn run_campaign(database_toml: &str) -> (TestDir, SimProcess, String) {
    let dir = TestDir::new();
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 7\ntime_scale = 0.01\n{}",
            rules(&[(ANSWERING, "human", &["1"]), (MISSING, "no-answer", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &format!(
            "{}\n{database_toml}",
            config("127.0.0.1:0", 50.0, &sim.carrier_toml())
        ),
    );
    dir.write("c.json", CAMPAIGN);
    dir.write("c.csv", &contacts(&[ANSWERING, MISSING]));
    let out = dir.batch(&["--campaign", "on pg"]);
    assert_eq!(placed(&out), 2, "{out}");
    let export = dir.output(&["report", "export", "csv", "--contacts"]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    (
        dir,
        sim,
        String::from_utf8_lossy(&export.stdout).into_owned(),
    )
}

#[test]
fn a_batch_on_postgres_records_what_it_records_on_sqlite() {
    let (_sqlite_dir, _sqlite_sim, on_sqlite) = run_campaign("");
    let url = PgCluster::shared().database("batch_on_pg");
    let (dir, _sim, on_postgres) = run_campaign(&format!("[database]\nurl = \"{url}\"\n"));
    assert!(
        !dir.file("dialer.db").exists(),
        "no SQLite file on PostgreSQL"
    );
    assert!(on_sqlite.contains("confirmed"), "{on_sqlite}");
    assert_eq!(on_postgres, on_sqlite);
    let summary = |database: &str| {
        let out = if database.is_empty() {
            _sqlite_dir.output(&["report", "summary"])
        } else {
            dir.output(&["report", "summary"])
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(summary("pg"), summary(""));

    let mut client = postgres::Config::clone(url.config())
        .connect(postgres::NoTls)
        .expect("connect");
    let mut one = |sql: &str| -> i64 { client.query_one(sql, &[]).expect(sql).get(0) };
    assert_eq!(one("SELECT count(*) FROM attempts"), 2);
    assert_eq!(
        one("SELECT count(*) FROM attempts WHERE ended_at IS NULL"),
        0
    );
    assert_eq!(
        one("SELECT count(*) FROM answers WHERE digits = '1' AND matched = 1"),
        1
    );
    assert_eq!(
        one("SELECT count(*) FROM contacts WHERE state = 'completed' AND outcome = 'confirmed'"),
        1
    );
    assert_eq!(
        one("SELECT count(*) FROM messages WHERE rule = 'missed-sms'"),
        1
    );
    assert!(one("SELECT count(*) FROM call_events") >= 4);
}

#[test]
fn a_second_run_on_the_same_postgres_database_is_refused() {
    let dir = TestDir::new();
    let url = PgCluster::shared().database("run_lock_pg");
    let sim = SimProcess::start(&dir, "seed = 3\ntime_scale = 0.01\n");
    dir.write(
        "dialer.toml",
        &format!(
            "{}\n[database]\nurl = \"{url}\"\n",
            config("127.0.0.1:0", 5.0, &sim.carrier_toml())
        ),
    );
    dir.write("c.json", CAMPAIGN);
    dir.write("c.csv", &contacts(&[MISSING]));
    let mut daemon = dir
        .dialer(&["run", "daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    // the daemon holds the lock once its database connection is up: wait until the server
    // shows its connection holding the advisory lock
    let mut client = postgres::Config::clone(url.config())
        .connect(postgres::NoTls)
        .expect("connect");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dialer run pid %'",
                &[],
            )
            .expect("activity")
            .get(0);
        if held > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = dir.output(&["run", "batch"]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "another dialer process is using the database `{}`",
            url.dbname()
        )) && err.contains(&format!("(dialer run pid {} on ", daemon.id())),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
