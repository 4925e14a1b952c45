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
    // shows its connection holding the advisory lock (on this database: the cluster is shared by
    // the tests running beside this one)
    let mut client = postgres::Config::clone(url.config())
        .connect(postgres::NoTls)
        .expect("connect");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name LIKE 'dialer run pid %' AND datname = $1",
                &[&url.dbname()],
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

/// Counts `sql` answers on the test's PostgreSQL database.
fn pg_count(client: &mut postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).expect(sql).get(0)
}

/// Waits (at most `limit`) until `sql` counts at least `n`, failing early if the daemon exits.
fn wait_for(
    client: &mut postgres::Client,
    sql: &str,
    n: i64,
    limit: std::time::Duration,
    daemon: &mut std::process::Child,
    dir: &TestDir,
) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        // the daemon's first connection migrates: the tables may not exist yet
        let counted = client.query_one(sql, &[]).ok().map(|r| r.get::<_, i64>(0));
        if counted.is_some_and(|c| c >= n) {
            return;
        }
        let log = || std::fs::read_to_string(dir.file("daemon.stderr")).unwrap_or_default();
        if let Some(status) = daemon.try_wait().expect("poll daemon") {
            panic!("daemon exited early ({status}):\n{}", log());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{sql}` still below {n} after {limit:?}:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The callback server's public url, from the daemon's log line saying it listens.
fn callback_url(dir: &TestDir, daemon: &mut std::process::Child) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(dir.file("daemon.stderr")).unwrap_or_default();
        if let Some(url) = log
            .lines()
            .find(|l| l.contains("callback server listening"))
            .and_then(|l| l.split("public_url=").nth(1))
        {
            return url.trim().to_owned();
        }
        if let Some(status) = daemon.try_wait().expect("poll daemon") {
            panic!("daemon exited early ({status}):\n{log}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never said where it listens:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn daemon(dir: &TestDir, label: &str) -> std::process::Child {
    dir.dialer(&["-v", "run", "daemon"])
        .stdout(std::fs::File::create(dir.file(&format!("{label}.stdout"))).expect("stdout"))
        .stderr(std::fs::File::create(dir.file("daemon.stderr")).expect("stderr"))
        .spawn()
        .expect("spawn dialer run daemon")
}

#[test]
fn the_daemon_on_postgres_survives_kill_9_without_dialing_anyone_twice() {
    const DONE: &str = "SELECT count(*) FROM contacts WHERE state <> 'open'";
    let dir = TestDir::new();
    let url = PgCluster::shared().database("daemon_on_pg");
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 11\ntime_scale = 0.05\n{}",
            rules(&[("+1212555030*", "human", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &format!(
            "{}\n[database]\nurl = \"{url}\"\n",
            config("127.0.0.1:0", 4.0, &sim.carrier_toml())
        ),
    );
    dir.write(
        "c.json",
        r#"{"name": "d", "message": "hello", "calling_hours_start": "00:00",
            "calling_hours_end": "24:00", "max_retries": 1}"#,
    );
    let all: Vec<String> = (0..8).map(|i| format!("+121255503{i:02}")).collect();
    let numbers: Vec<&str> = all.iter().map(String::as_str).collect();
    dir.write("c.csv", &contacts(&numbers));
    let mut client = postgres::Config::clone(url.config())
        .connect(postgres::NoTls)
        .expect("connect");

    let config_text = format!(
        "{}\n[database]\nurl = \"{url}\"\n",
        config("127.0.0.1:0", 4.0, &sim.carrier_toml())
    );
    let mut first = daemon(&dir, "first");
    // the calls in flight call back to this address: the restart must listen on it again
    let public = callback_url(&dir, &mut first);
    let addr = public.trim_start_matches("http://").trim_end_matches('/');
    let pinned = config_text
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
        .replace(
            "public_url = \"http://127.0.0.1:1\"",
            &format!("public_url = \"{public}\""),
        );
    assert_ne!(
        pinned, config_text,
        "the config names the port it listens on"
    );
    dir.write("dialer.toml", &pinned);
    wait_for(
        &mut client,
        "SELECT count(*) FROM attempts",
        2,
        std::time::Duration::from_secs(20),
        &mut first,
        &dir,
    );
    first.kill().expect("kill -9 the daemon");
    first.wait().expect("reap");

    let mut second = daemon(&dir, "second");
    wait_for(
        &mut client,
        DONE,
        8,
        std::time::Duration::from_secs(30),
        &mut second,
        &dir,
    );
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    assert!(second.wait().expect("wait").success());
    assert_eq!(
        pg_count(
            &mut client,
            "SELECT count(*) FROM attempts WHERE ended_at IS NULL"
        ),
        0
    );
    for n in &all {
        let row = client
            .query_one(
                "SELECT state, attempts, (SELECT count(*) FROM attempts a WHERE a.contact_id = c.id)
                 FROM contacts c WHERE phone = $1",
                &[n],
            )
            .expect("contact");
        let (state, attempts, rows): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(attempts, rows, "{n}: attempts counter = attempt rows");
        assert!(
            (1..=2).contains(&rows),
            "{n}: {rows} attempts, policy allows 2"
        );
        assert_eq!(state, "completed", "{n}: a human answers every call");
    }
    // one create per attempt: every call the simulator created belongs to one attempt
    let created: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r["status"] == 201)
        .map(|r| r["sid"].as_str().expect("sid").to_owned())
        .collect();
    let sids: Vec<String> = client
        .query(
            "SELECT call_sid FROM attempts WHERE call_sid IS NOT NULL",
            &[],
        )
        .expect("sids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for sid in &created {
        assert_eq!(
            sids.iter().filter(|s| *s == sid).count(),
            1,
            "created call {sid} belongs to exactly one attempt"
        );
    }
    assert!(created.len() >= all.len(), "{created:?}");
}
