//! End-to-end tests of calls: the real `dialer` binary runs `run batch` against the simulator
//! (built in, or a separate `dialer simulator` process) over loopback, and the results are read
//! from `dialer.db` and from the simulator's request log.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// helpers

/// A temporary test folder holding dialer.toml, campaigns, contacts and dialer.db.
pub(crate) struct TestDir {
    tmp: tempfile::TempDir,
}

impl TestDir {
    pub(crate) fn new() -> TestDir {
        TestDir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).expect("write test file");
    }

    /// `dialer --config <dir>/dialer.toml ARGS…`, run in the folder, without environment overrides.
    pub(crate) fn dialer(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialer"));
        cmd.current_dir(self.path())
            .arg("--config")
            .arg(self.file("dialer.toml"))
            .args(args)
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("TWILIO_AUTH_TOKEN")
            .env_remove("DIALER_DASHBOARD_TOKEN")
            .env_remove("DIALER_CONFIG")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs a command to its end and returns its output (whatever the exit code).
    pub(crate) fn output(&self, args: &[&str]) -> Output {
        self.dialer(args).output().expect("run dialer")
    }

    /// `run batch --wait 30s` (plus `extra`), which must succeed; returns its stdout.
    pub(crate) fn batch(&self, extra: &[&str]) -> String {
        let mut args = vec!["run", "batch", "--wait", "30s"];
        args.extend_from_slice(extra);
        let out = self.output(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "run batch failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Starts `dialer ARGS…` in the background, its output going to files in the folder.
    pub(crate) fn spawn(&self, args: &[&str], label: &str) -> Background {
        let stdout = File::create(self.file(&format!("{label}.stdout"))).expect("stdout file");
        let stderr = File::create(self.file(&format!("{label}.stderr"))).expect("stderr file");
        let child = self
            .dialer(args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn dialer");
        Background {
            child,
            stdout: self.file(&format!("{label}.stdout")),
            stderr: self.file(&format!("{label}.stderr")),
        }
    }

    pub(crate) fn db(&self) -> Connection {
        let conn = Connection::open(self.file("dialer.db")).expect("open dialer.db");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }
}

/// A `dialer` process started in the background; killed if the test ends before it does.
pub(crate) struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The callback server's base URL, from the `callback server listening` log line (the
    /// server binds port 0).
    pub(crate) fn url(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if let Some(url) = log
                .lines()
                .find(|l| l.contains("callback server listening"))
                .and_then(|l| l.split("public_url=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
            {
                return url.trim_end_matches('/').to_owned();
            }
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("dialer exited ({status}) before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "never listening:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to end (at most `limit`) and returns (success, stdout, stderr).
    pub(crate) fn finish(mut self, limit: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "background dialer still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (status.success(), read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A separate `dialer simulator --listen 127.0.0.1:0` process; killed on drop.
pub(crate) struct SimProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    _stdout: BufReader<ChildStdout>,
}

impl SimProcess {
    /// Starts the simulator with `sim_table` (the body of a `[simulator]` table).
    pub(crate) fn start(dir: &TestDir, sim_table: &str) -> SimProcess {
        dir.write("sim.toml", &format!("[simulator]\n{sim_table}\n"));
        let stderr = File::create(dir.file("sim.stderr")).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dialer"))
            .current_dir(dir.path())
            .args(["simulator", "--listen", "127.0.0.1:0", "--config"])
            .arg(dir.file("sim.toml"))
            .env_remove("DIALER_CONFIG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn simulator");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read simulator banner");
        let mut guard = SimProcess {
            child,
            base: String::new(),
            _stdout: stdout,
        };
        guard.base = line
            .strip_prefix("simulator listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected simulator banner: {line:?}"))
            .to_owned();
        assert!(
            guard.base.starts_with("http://127.0.0.1:"),
            "banner: {line:?}"
        );
        guard
    }

    /// The simulator's log of every Calls create request.
    pub(crate) fn requests(&self) -> Vec<Value> {
        let (status, body) = http_get(&format!("{}/simulator/requests", self.base));
        assert_eq!(status, 200, "GET /simulator/requests: {body}");
        match serde_json::from_str(&body).expect("request log is JSON") {
            Value::Array(items) => items,
            other => panic!("request log is not a list: {other}"),
        }
    }

    /// The dialer.toml lines that send calls to this simulator.
    pub(crate) fn carrier_toml(&self) -> String {
        format!(
            "[carrier]\nkind = \"twilio\"\n\n[twilio]\napi_base = \"{}\"\n\
             account_sid = \"AC00000000000000000000000000000000\"\n\
             auth_token = \"simulator-auth-token\"\n",
            self.base
        )
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub(crate) fn http_get(url: &str) -> (u16, String) {
    runtime().block_on(async {
        let resp = reqwest::get(url).await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    })
}

fn http_post_form(url: &str, form: &[(String, String)], signature: Option<&str>) -> u16 {
    runtime().block_on(async {
        let mut req = reqwest::Client::new().post(url).form(form);
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Signature", sig);
        }
        req.send().await.expect("POST").status().as_u16()
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// A dialer.toml: callback server on `listen`, one campaign `c.json` with contacts `c.csv`,
/// `calls_per_second`, and `tail` appended (a `[simulator]` table or a carrier section).
pub(crate) fn config(listen: &str, calls_per_second: f64, tail: &str) -> String {
    let public = if listen.ends_with(":0") {
        "http://127.0.0.1:1".to_owned()
    } else {
        format!("http://{listen}")
    };
    format!(
        "[server]\nlisten = \"{listen}\"\npublic_url = \"{public}\"\n\n\
         [dialer]\ncalls_per_second = {calls_per_second:.1}\nmax_concurrent_calls = 50\n\n\
         [[campaign]]\nfile = \"c.json\"\ncontacts = \"c.csv\"\n\n{tail}\n"
    )
}

/// A campaign JSON due at any hour, with `extra` fields (e.g. `"max_retries": 2`).
fn campaign(name: &str, extra: &str) -> String {
    format!(
        "{{\"name\": \"{name}\", \"calling_hours_start\": \"00:00\", \
         \"calling_hours_end\": \"24:00\", {extra}}}"
    )
}

/// Contacts CSV with one row per number.
pub(crate) fn contacts(numbers: &[&str]) -> String {
    let mut csv = "phone,name\n".to_owned();
    for (i, n) in numbers.iter().enumerate() {
        csv.push_str(&format!("{n},Contact {i}\n"));
    }
    csv
}

/// `[[simulator.rules]]` entries: (pattern, behavior, digits).
pub(crate) fn rules(list: &[(&str, &str, &[&str])]) -> String {
    let mut out = String::new();
    for (pattern, behavior, digits) in list {
        out.push_str(&format!(
            "\n[[simulator.rules]]\npattern = \"{pattern}\"\nbehavior = \"{behavior}\"\n"
        ));
        if !digits.is_empty() {
            let d: Vec<String> = digits.iter().map(|d| format!("\"{d}\"")).collect();
            out.push_str(&format!("digits = [{}]\n", d.join(", ")));
        }
    }
    out
}

/// N from the summary line `placed N call(s)…`.
pub(crate) fn placed(stdout: &str) -> u32 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("placed "))
        .unwrap_or_else(|| panic!("no `placed N call(s)` line in:\n{stdout}"));
    let rest = line.strip_prefix("placed ").expect("prefix checked");
    let (n, tail) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("malformed summary line {line:?}"));
    assert!(
        tail.starts_with("call(s)"),
        "malformed summary line {line:?}"
    );
    n.parse()
        .unwrap_or_else(|_| panic!("malformed count in {line:?}"))
}

pub(crate) fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// The contact with this phone: (state, attempts, next_attempt_at).
fn contact(conn: &Connection, phone: &str) -> (String, i64, i64) {
    conn.query_row(
        "SELECT state, attempts, next_attempt_at FROM contacts WHERE phone = ?1",
        [phone],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("contact row")
}

/// Every attempt: (attempt_no, phone, call_sid, reason, ended_at).
type AttemptSummary = (i64, String, Option<String>, Option<String>, Option<i64>);

fn attempts(conn: &Connection) -> Vec<AttemptSummary> {
    let mut stmt = conn
        .prepare("SELECT attempt_no, phone, call_sid, reason, ended_at FROM attempts ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The successful creates of a simulator log: SID → `To`.
fn created_sids(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter(|r| r["status"] == 201)
        .map(|r| {
            let sid = r["sid"].as_str().expect("a 201 has a sid").to_owned();
            (sid, to_of(r))
        })
        .collect()
}

/// The `To` parameter of a logged create request.
fn to_of(request: &Value) -> String {
    request["params"]
        .as_array()
        .expect("params list")
        .iter()
        .find(|p| p[0] == "To")
        .and_then(|p| p[1].as_str())
        .expect("create has To")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// tests

#[test]
fn busy_is_retried_after_its_delay() {
    let phone = "+12125550101";
    let dir = TestDir::new();
    let sim = format!(
        "[simulator]\nseed = 1\ntime_scale = 0.01\n{}",
        rules(&[(phone, "busy", &[])])
    );
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &sim));
    // 3 s rather than 2 s: instants are whole seconds, so the wait before the retry is due is
    // between delay - 1 and delay seconds after the end; 3 s leaves room for the batch below.
    dir.write(
        "c.json",
        &campaign(
            "busy",
            r#""message": "hello", "max_retries": 2, "retry_delays": {"busy": "3s"}"#,
        ),
    );
    dir.write("c.csv", &contacts(&[phone]));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 1, "{out}");
    let conn = dir.db();
    let a = attempts(&conn);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].3.as_deref(), Some("busy"));
    let ended = a[0].4.expect("attempt ended");
    let (state, n, next) = contact(&conn, phone);
    assert_eq!((state.as_str(), n), ("open", 1));
    assert_eq!(next, ended + 3, "next_attempt_at = end + the busy delay");

    // right away: the retry is not due yet
    assert!(
        unix_now() < next as f64,
        "the first batch took too long to test the wait"
    );
    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 0, "{out}");
    assert!(out.contains("retry_wait"), "{out}");
    assert_eq!(attempts(&conn).len(), 1);

    // after the delay: attempt 2
    let wait = next as f64 + 0.05 - unix_now();
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 1, "{out}");
    let a = attempts(&conn);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[1].0, 2, "attempt_no");
    assert_eq!(a[1].3.as_deref(), Some("busy"));
    let (state, n, next2) = contact(&conn, phone);
    assert_eq!((state.as_str(), n), ("open", 2));
    assert_eq!(next2, a[1].4.expect("ended") + 3);
}

#[test]
fn no_answer_without_delay_is_exhausted() {
    let phone = "+12125550102";
    let dir = TestDir::new();
    let sim = format!(
        "[simulator]\nseed = 2\ntime_scale = 0.01\n{}",
        rules(&[(phone, "no-answer", &[])])
    );
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &sim));
    dir.write(
        "c.json",
        &campaign(
            "no answer",
            r#""message": "hello", "max_retries": 2, "retry_delays": {"busy": "1s", "failed": "1s"}"#,
        ),
    );
    dir.write("c.csv", &contacts(&[phone]));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 1, "{out}");
    let conn = dir.db();
    let a = attempts(&conn);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].3.as_deref(), Some("no-answer"));
    let (state, n, _) = contact(&conn, phone);
    assert_eq!((state.as_str(), n), ("exhausted", 1));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 0, "{out}");
    assert_eq!(attempts(&conn).len(), 1);
}

#[test]
fn opt_out_goes_on_dnc_and_is_never_dialed_again() {
    let phone = "+12125550103";
    let dir = TestDir::new();
    let sim = format!(
        "[simulator]\nseed = 3\ntime_scale = 0.01\n{}",
        rules(&[(phone, "human", &["9"])])
    );
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &sim));
    let script = r#""max_retries": 2, "retry_delays": {"default": "1s"}, "script": {
        "start": "ask",
        "steps": {
          "ask": {
            "say": "Hello {{name}}.",
            "gather": {
              "input": "dtmf", "timeout": 5, "num_digits": 1,
              "prompt": "Press 1 to confirm, 9 to stop these calls.",
              "options": [
                { "digits": "1", "outcome": "confirmed", "next": "bye" },
                { "digits": "9", "outcome": "opted_out", "opt_out": true, "next": "bye" }
              ],
              "no_input": "bye",
              "no_match": "ask"
            }
          },
          "bye": { "say": "Goodbye.", "hangup": true }
        }
    }"#;
    dir.write("c.json", &campaign("first", script));
    dir.write("c.csv", &contacts(&[phone]));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 1, "{out}");
    let conn = dir.db();
    assert_eq!(
        count(
            &conn,
            &format!("SELECT count(*) FROM dnc WHERE phone = '{phone}'")
        ),
        1,
        "the number is on the DNC list"
    );
    let (state, _, _) = contact(&conn, phone);
    assert_eq!(state, "opted_out");
    let before = attempts(&conn);
    assert_eq!(before.len(), 1);

    // the same number in another campaign
    dir.write(
        "other.json",
        &campaign("second", r#""message": "hello again", "max_retries": 2"#),
    );
    dir.write("other.csv", &contacts(&[phone]));
    let out = dir.output(&[
        "campaign",
        "import",
        "other.json",
        "--contacts",
        "other.csv",
    ]);
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dir.batch(&["--campaign", "second"]);
    assert_eq!(placed(&out), 0, "{out}");
    assert!(out.contains("1 dnc"), "the summary names the DNC: {out}");
    assert_eq!(attempts(&conn), before, "attempts table unchanged");
}

#[test]
fn forged_and_unsigned_callbacks_are_refused() {
    const TOKEN: &str = "e2e-secret-token";
    let phone = "+12125550104";
    let dir = TestDir::new();
    let listen = "127.0.0.1:0";
    // a call of a few real seconds: rings until the 5 s timeout at 0.4 real s per second
    let sim = format!(
        "[simulator]\nseed = 4\ntime_scale = 0.4\nauth_token = \"{TOKEN}\"\n{}",
        rules(&[(phone, "no-answer", &[])])
    );
    dir.write("dialer.toml", &config(listen, 50.0, &sim));
    dir.write(
        "c.json",
        &campaign("slow", r#""message": "hello", "ring_timeout": 5"#),
    );
    dir.write("c.csv", &contacts(&[phone]));

    let mut batch = dir.spawn(&["run", "batch", "--wait", "20s"], "batch");
    let base = batch.url();
    // wait until the call is placed and its SID stored
    let conn = dir.db();
    let deadline = Instant::now() + Duration::from_secs(10);
    let sid: String = loop {
        let sid: Option<String> = conn
            .query_row("SELECT call_sid FROM attempts WHERE id = 1", [], |r| {
                r.get(0)
            })
            .ok()
            .flatten();
        if let Some(sid) = sid {
            break sid;
        }
        assert!(Instant::now() < deadline, "no call placed within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    };

    let url = format!("{base}/twilio/status?attempt=1");
    let forged = |sid: &str| -> Vec<(String, String)> {
        [
            ("CallSid", sid),
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
            ("SequenceNumber", "99"),
            ("Forged", "yes"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let form = forged(&sid);
    assert_eq!(http_post_form(&url, &form, None), 403, "unsigned");
    let wrong_key = dialer::twilio::signature::sign("not-the-token", &url, &form);
    assert_eq!(
        http_post_form(&url, &form, Some(&wrong_key)),
        403,
        "wrong key"
    );
    let garbage = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(http_post_form(&url, &form, Some(garbage)), 403, "garbage");
    // signed for another URL (replayed from elsewhere)
    let other_url =
        dialer::twilio::signature::sign(TOKEN, &format!("{base}/twilio/status?attempt=2"), &form);
    assert_eq!(
        http_post_form(&url, &form, Some(&other_url)),
        403,
        "other url"
    );
    // control: a correctly signed request gets past the signature check (404: wrong CallSid)
    let control = forged("CA00000000000000000000000000000000");
    let good = dialer::twilio::signature::sign(TOKEN, &url, &control);
    assert_eq!(http_post_form(&url, &control, Some(&good)), 404, "control");

    let (ok, stdout, stderr) = batch.finish(Duration::from_secs(25));
    assert!(ok, "batch failed:\n{stdout}\n{stderr}");
    let a = attempts(&conn);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].3.as_deref(),
        Some("no-answer"),
        "the forged `completed` was ignored"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM call_events WHERE params LIKE '%Forged%' \
             OR call_status = 'completed' OR call_sid = 'CA00000000000000000000000000000000'"
        ),
        0,
        "no event comes from the refused requests"
    );
    assert!(
        count(&conn, "SELECT count(*) FROM call_events") > 0,
        "the real callbacks were recorded"
    );
}

#[test]
fn rate_limited_creates_count_no_attempt() {
    let dir = TestDir::new();
    let sim = SimProcess::start(
        &dir,
        // seed 13: one number is refused four times in a row, more than the client's own three
        // retries, so the dialer's requeue (with its attempt undone) is exercised too
        "seed = 13\ntime_scale = 0.01\n\n[simulator.faults]\nrate_429 = 0.5\n",
    );
    let numbers = [
        "+12125550111",
        "+12125550112",
        "+12125550113",
        "+12125550114",
        "+12125550115",
        "+12125550116",
    ];
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write("c.json", &campaign("rate", r#""message": "hello""#));
    dir.write("c.csv", &contacts(&numbers));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 6, "{out}");
    let conn = dir.db();
    let a = attempts(&conn);
    assert_eq!(a.len(), 6, "one attempt row per contact: {a:?}");
    let phones: HashSet<&str> = a.iter().map(|x| x.1.as_str()).collect();
    assert_eq!(phones.len(), 6, "{a:?}");
    for n in numbers {
        assert_eq!(contact(&conn, n).1, 1, "{n} counts one attempt");
    }

    let log = sim.requests();
    let mut refused: HashMap<String, usize> = HashMap::new();
    for r in log.iter().filter(|r| r["status"] == 429) {
        *refused.entry(to_of(r)).or_default() += 1;
    }
    assert!(
        refused.values().any(|&n| n >= 4),
        "the seed gives one number 4+ refusals: {refused:?}"
    );
    assert!(
        log.iter()
            .filter(|r| r["status"] == 429)
            .all(|r| r["error_code"] == 20429 && r["sid"].is_null())
    );
    let created = created_sids(&log);
    assert_eq!(created.len(), a.len(), "one 201 per attempt row");
    let by_sid: HashMap<&str, &str> = created
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .collect();
    for (_, phone, sid, _, ended) in &a {
        let sid = sid.as_deref().expect("every attempt has its call SID");
        assert_eq!(
            by_sid.get(sid),
            Some(&phone.as_str()),
            "{sid} was created for {phone}"
        );
        assert!(ended.is_some(), "{sid} ended");
    }
}

#[test]
fn one_create_per_attempt() {
    let dir = TestDir::new();
    let numbers = [
        "+12125550121",
        "+12125550122",
        "+12125550123",
        "+12125550124",
        "+12125550125",
    ];
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 6\ntime_scale = 0.01\n{}",
            rules(&[
                (numbers[0], "busy", &[]),
                (numbers[1], "no-answer", &[]),
                (numbers[2], "failed", &[]),
                (numbers[3], "machine", &[]),
                (numbers[4], "human", &["1"]),
            ])
        ),
    );
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write(
        "c.json",
        &campaign(
            "mixed",
            r#""message": "hello", "machine_detection": "enable", "max_retries": 2,
               "retry_delays": {"busy": "1h", "no-answer": "1h", "failed": "1h", "machine": "1h"}"#,
        ),
    );
    dir.write("c.csv", &contacts(&numbers));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 5, "{out}");
    let conn = dir.db();
    let a = attempts(&conn);
    assert_eq!(a.len(), 5, "{a:?}");
    let reasons: HashMap<&str, Option<&str>> =
        a.iter().map(|x| (x.1.as_str(), x.3.as_deref())).collect();
    assert_eq!(reasons[numbers[0]], Some("busy"));
    assert_eq!(reasons[numbers[1]], Some("no-answer"));
    assert_eq!(reasons[numbers[2]], Some("failed"));
    assert_eq!(reasons[numbers[3]], Some("machine"));
    assert_eq!(reasons[numbers[4]], Some("completed"));

    let created = created_sids(&sim.requests());
    assert_eq!(created.len(), a.len(), "201 creates = attempt rows");
    for (_, phone, sid, _, _) in &a {
        let sid = sid.as_deref().expect("attempt has a SID");
        let seen: Vec<&(String, String)> = created.iter().filter(|(s, _)| s == sid).collect();
        assert_eq!(seen.len(), 1, "{sid} created once");
        assert_eq!(&seen[0].1, phone);
    }
}

#[test]
fn pacing_spreads_calls() {
    let dir = TestDir::new();
    let sim = SimProcess::start(&dir, "seed = 7\ntime_scale = 0.01\n");
    let numbers = [
        "+12125550131",
        "+12125550132",
        "+12125550133",
        "+12125550134",
        "+12125550135",
        "+12125550136",
    ];
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 2.0, &sim.carrier_toml()),
    );
    dir.write("c.json", &campaign("paced", r#""message": "hello""#));
    dir.write("c.csv", &contacts(&numbers));

    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 6, "{out}");
    let log = sim.requests();
    assert_eq!(log.len(), 6, "one create per contact");
    let mut times: Vec<f64> = log
        .iter()
        .map(|r| {
            let at = r["received_at"].as_str().expect("received_at");
            assert!(
                at.contains('.'),
                "received_at {at} has fractions of a second"
            );
            let t = chrono::DateTime::parse_from_rfc3339(at)
                .unwrap_or_else(|e| panic!("received_at {at} is not RFC 3339: {e}"));
            t.timestamp_micros() as f64 / 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    // 2 calls a second: the creates leave the dialer 0.5 s apart, but these are the simulator's
    // receipt times, which a loaded machine delays by up to a few hundred milliseconds each. So
    // the check is what pacing guarantees whatever that delay: the six are not sent together
    // (five intervals of 0.5 s: over 2 s apart end to end) and no second holds more than the
    // limit's two plus one late arrival. Without pacing all six arrive within a few ms.
    let span = times[5] - times[0];
    assert!(
        span >= 2.0,
        "6 creates at 2/s spread over {span:.3} s: {times:?}"
    );
    for (i, start) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|t| **t < start + 1.0).count();
        assert!(
            within <= 3,
            "{within} creates within 1 s of {start:.3} at 2/s: {times:?}"
        );
    }
}

#[test]
fn second_batch_on_same_database_refuses() {
    let phone = "+12125550141";
    let dir = TestDir::new();
    let sim = format!(
        "[simulator]\nseed = 8\ntime_scale = 0.4\n{}",
        rules(&[(phone, "no-answer", &[])])
    );
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &sim));
    dir.write(
        "c.json",
        &campaign("locked", r#""message": "hello", "ring_timeout": 5"#),
    );
    dir.write("c.csv", &contacts(&[phone]));

    let first = dir.spawn(&["run", "batch", "--wait", "20s"], "first");
    let pid = first.child.id().to_string();
    // the lock file names its holder once the lock is taken
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(dir.file("dialer.db.lock")).unwrap_or_default() != pid {
        assert!(
            Instant::now() < deadline,
            "the first batch never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let second = dir.output(&["run", "batch", "--wait", "20s"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("another dialer process (pid {pid})"))
            && stderr.contains("is using"),
        "stderr: {stderr}"
    );

    let (ok, stdout, stderr) = first.finish(Duration::from_secs(25));
    assert!(ok, "first batch failed:\n{stdout}\n{stderr}");
    assert_eq!(placed(&stdout), 1, "{stdout}");
    assert_eq!(
        attempts(&dir.db()).len(),
        1,
        "the refused batch placed nothing"
    );
}

#[test]
fn shipped_defaults_run_batch() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TestDir::new();
    let shipped = std::fs::read_to_string(repo.join("dialer.toml")).expect("shipped dialer.toml");
    let mut toml = String::new();
    for line in shipped.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let line = match key {
            "listen" => "listen = \"127.0.0.1:0\"".to_owned(),
            "time_scale" => "time_scale = 0.01".to_owned(),
            // pacing has its own test; up to 12 calls at the shipped 1/s would take 11 s
            "calls_per_second" => "calls_per_second = 20.0".to_owned(),
            _ => line.to_owned(),
        };
        toml.push_str(&line);
        toml.push('\n');
    }
    assert!(toml.contains("listen = \"127.0.0.1:0\"") && toml.contains("time_scale = 0.01"));
    dir.write("dialer.toml", &toml);
    std::fs::create_dir(dir.file("campaigns")).expect("mkdir");
    std::fs::create_dir(dir.file("examples")).expect("mkdir");
    for f in [
        "campaigns/appointment-reminder.json",
        "examples/contacts.csv",
        "campaigns/satisfaction-survey.json",
        "examples/survey-contacts.csv",
    ] {
        std::fs::copy(repo.join(f), dir.file(f)).expect("copy shipped file");
    }

    let out = dir.batch(&[]);
    let n = placed(&out);
    let conn = dir.db();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM attempts"),
        i64::from(n),
        "{out}"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM attempts WHERE ended_at IS NULL"
        ),
        0,
        "all ended: {out}"
    );
    let rows: usize = ["examples/contacts.csv", "examples/survey-contacts.csv"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(repo.join(f))
                .expect("sample contacts")
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .sum();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM contacts"),
        rows as i64,
        "every sample contact imported: {out}"
    );
    // SPEC §12: the reminder's missed calls are followed by one SMS each (the call and its
    // follow-up fall in the same calling window)
    let missed = count(
        &conn,
        "SELECT count(DISTINCT a.contact_id) FROM attempts a JOIN campaigns c ON c.id = a.campaign_id
         WHERE c.name = 'Appointment reminder' AND a.reason = 'no-answer'",
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE rule = 'missed-call-sms'"
        ),
        missed,
        "{out}"
    );
    if missed > 0 {
        assert!(
            out.contains(&format!("sent {missed} follow-up message(s)")),
            "{out}"
        );
    }
}

#[test]
fn reports_show_attempts_and_survey_answers_after_a_batch() {
    let dir = TestDir::new();
    let sim = format!(
        "[simulator]\nseed = 5\ntime_scale = 0.01\n{}",
        rules(&[
            ("+12125550141", "human", &["1", "4"]),
            ("+12125550142", "busy", &[]),
            ("+12125550143", "human", &["1", "2"]),
        ])
    );
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &sim));
    let script = r#""max_retries": 1, "retry_delays": {"busy": "1h"}, "script": {
        "start": "intro",
        "steps": {
          "intro": {
            "say": "Hi {{name}}.",
            "gather": {
              "num_digits": 1, "prompt": "Press 1 to start.",
              "options": [{ "digits": "1", "outcome": "started", "next": "rating" }],
              "no_input": "bye"
            }
          },
          "rating": {
            "gather": {
              "num_digits": 1, "prompt": "Rate us from 1 to 5.",
              "options": [
                { "digits": "2", "outcome": "low", "next": "bye" },
                { "digits": "4", "outcome": "high", "next": "bye" }
              ],
              "no_input": "bye"
            }
          },
          "bye": { "say": "Thanks.", "hangup": true }
        }
    }"#;
    dir.write("c.json", &campaign("survey", script));
    dir.write(
        "c.csv",
        "id,name,phone\nA,Ann,+12125550141\nB,Bo,+12125550142\nC,Cy,+12125550143\n",
    );
    let out = dir.batch(&[]);
    assert_eq!(placed(&out), 3, "{out}");

    let out = dir.output(&["report", "export", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "campaign,contact,name,phone,attempt,call_sid,status,reason,answered_by,outcome,digits,speech,duration_seconds,started_at,answered_at,ended_at,error_code,error_message,direction"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let by_contact: HashMap<&str, &Vec<&str>> = rows.iter().map(|r| (r[1], r)).collect();
    let ann = by_contact["A"];
    assert_eq!(
        (ann[6], ann[7], ann[9], ann[10]),
        ("completed", "completed", "high", "4"),
        "{csv}"
    );
    assert!(
        ann[5].starts_with("CA") && ann[13].ends_with('Z') && ann[15].ends_with('Z'),
        "{csv}"
    );
    let bo = by_contact["B"];
    assert_eq!((bo[6], bo[7], bo[10]), ("busy", "busy", ""), "{csv}");
    assert_eq!(by_contact["C"][9], "low", "{csv}");

    let out = dir.output(&["report", "export", "csv", "--contacts"]);
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "campaign,contact,name,phone,timezone,state,attempts,last_reason,outcome,next_attempt_at,answer.intro,answer.rating"
        )
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter()
            .any(|r| r.starts_with("survey,A,Ann,+12125550141,")
                && r.ends_with(",completed,1,completed,high,,1,4")),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("survey,B,Bo,") && r.contains(",open,1,busy,,")),
        "{csv}"
    );

    let out = dir.output(&["report", "summary", "--format", "json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json");
    let s = &summary[0];
    assert_eq!(
        (
            s["campaign"].as_str(),
            s["attempts"].as_i64(),
            s["reached"].as_i64()
        ),
        (Some("survey"), Some(3), Some(2)),
        "{summary}"
    );
    assert_eq!(s["outcomes"]["high"].as_i64(), Some(1), "{summary}");
}

// ---------------------------------------------------------------------------------------------
// carrier faults (SPEC §10: carrier faults never burn attempts wrongly)

#[test]
fn wrong_auth_token_stops_the_batch_with_one_error_and_consumes_no_attempt() {
    let dir = TestDir::new();
    let sim = SimProcess::start(&dir, "seed = 21\ntime_scale = 0.01\n");
    let numbers = ["+12125550141", "+12125550142", "+12125550143"];
    let carrier = sim
        .carrier_toml()
        .replace("simulator-auth-token", "not-the-right-token");
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &carrier));
    dir.write(
        "c.json",
        &campaign("creds", r#""message": "hello", "max_retries": 0"#),
    );
    dir.write("c.csv", &contacts(&numbers));

    let out = dir.output(&["-q", "run", "batch", "--wait", "5s"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one clear error line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for part in ["twilio.auth_token", "error 20003", "no attempt was counted"] {
        assert!(lines[0].contains(part), "lacks `{part}`: {stderr}");
    }
    assert!(!stderr.contains("not-the-right-token"), "secret echoed");

    let conn = dir.db();
    for n in numbers {
        let (state, attempts, _) = contact(&conn, n);
        assert_eq!((state.as_str(), attempts), ("open", 0), "{n}");
    }
    assert_eq!(count(&conn, "SELECT count(*) FROM attempts"), 0);
    let log = sim.requests();
    assert!(!log.is_empty(), "the carrier was asked");
    assert!(
        log.iter()
            .all(|r| r["status"] == 401 && r["error_code"] == 20003),
        "{log:?}"
    );
}

#[test]
fn server_error_after_the_call_was_created_links_the_call() {
    let dir = TestDir::new();
    let numbers = ["+12125550151", "+12125550152", "+12125550153"];
    // every create creates its call, then answers 500 (fewer than the breaker's threshold)
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 22\ntime_scale = 0.01\n\n[simulator.faults]\nrate_500_created = 1.0\n{}",
            rules(&[("+1212555015*", "busy", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write(
        "c.json",
        &campaign(
            "unknown",
            r#""message": "hello", "max_retries": 1, "retry_delays": {"busy": "1h"}"#,
        ),
    );
    dir.write("c.csv", &contacts(&numbers));

    dir.batch(&[]);
    let conn = dir.db();
    let a = attempts(&conn);
    assert_eq!(a.len(), 3, "{a:?}");
    let log = sim.requests();
    assert_eq!(
        log.len(),
        3,
        "one create per contact, never resent: {log:?}"
    );
    let sid_of: HashMap<String, String> = log
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 500);
            (to_of(r), r["sid"].as_str().expect("created").to_owned())
        })
        .collect();
    for (no, phone, sid, reason, _) in &a {
        assert_eq!(*no, 1);
        assert_eq!(
            sid.as_deref(),
            Some(sid_of[phone].as_str()),
            "{phone}: linked to the call the carrier created"
        );
        assert_eq!(reason.as_deref(), Some("busy"), "{phone}: not `failed`");
    }
    for n in numbers {
        assert_eq!(contact(&conn, n).1, 1, "{n} counts one attempt");
    }
}

#[test]
fn server_error_without_a_call_is_created_again_on_the_same_attempt() {
    let dir = TestDir::new();
    let numbers = [
        "+12125550161",
        "+12125550162",
        "+12125550163",
        "+12125550164",
    ];
    let sim = SimProcess::start(
        &dir,
        &format!(
            "seed = 23\ntime_scale = 0.01\n\n[simulator.faults]\nrate_500 = 0.4\n{}",
            rules(&[("+1212555016*", "busy", &[])])
        ),
    );
    dir.write(
        "dialer.toml",
        &config("127.0.0.1:0", 50.0, &sim.carrier_toml()),
    );
    dir.write(
        "c.json",
        &campaign(
            "retried",
            r#""message": "hello", "max_retries": 1, "retry_delays": {"busy": "1h"}"#,
        ),
    );
    dir.write("c.csv", &contacts(&numbers));

    dir.batch(&[]);
    let log = sim.requests();
    assert!(
        log.iter().any(|r| r["status"] == 500 && r["sid"].is_null()),
        "the seed refuses some creates with 500 and no call: {log:?}"
    );
    let conn = dir.db();
    let a = attempts(&conn);
    assert_eq!(a.len(), 4, "one attempt row per contact: {a:?}");
    let created = created_sids(&log);
    assert_eq!(created.len(), 4, "one call per attempt row: {log:?}");
    for (no, phone, sid, reason, _) in &a {
        assert_eq!(*no, 1);
        let sid = sid.as_deref().expect("every attempt has its call");
        assert!(created.contains(&(sid.to_owned(), phone.clone())));
        assert_eq!(reason.as_deref(), Some("busy"), "{phone}");
    }
    for n in numbers {
        assert_eq!(contact(&conn, n).1, 1, "{n} counts one attempt");
    }
    // every create for a number carried the same attempt (the same callback URL)
    let mut urls: HashMap<String, HashSet<String>> = HashMap::new();
    for r in &log {
        let url = r["params"]
            .as_array()
            .expect("params")
            .iter()
            .find(|p| p[0] == "Url")
            .and_then(|p| p[1].as_str())
            .expect("Url")
            .to_owned();
        urls.entry(to_of(r)).or_default().insert(url);
    }
    assert!(urls.values().all(|u| u.len() == 1), "{urls:?}");
}

/// SPEC §10 "secrets and files": the auth token never appears in any output — trace logs of a
/// whole run, `campaign show`, reports, exports, errors — and the database, its WAL and exports
/// are readable by their owner only.
#[cfg(unix)]
#[test]
fn the_auth_token_never_appears_in_any_output_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    const TOKEN: &str = "sekrit-token-4f9a2c";
    let dir = TestDir::new();
    let sim = SimProcess::start(
        &dir,
        &format!("seed = 41\ntime_scale = 0.01\nauth_token = \"{TOKEN}\"\n"),
    );
    let carrier = sim.carrier_toml().replace("simulator-auth-token", TOKEN);
    dir.write("dialer.toml", &config("127.0.0.1:0", 50.0, &carrier));
    dir.write("c.json", &campaign("secret", r#""message": "hello""#));
    dir.write("c.csv", &contacts(&["+12125550101", "+12125550102"]));

    let mut seen = String::new();
    let run = |args: &[&str], seen: &mut String| {
        let out = dir.output(args);
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    };
    let batch = run(&["-vv", "run", "batch", "--wait", "20s"], &mut seen);
    assert!(batch.status.success(), "{seen}");
    assert!(
        seen.contains("placed 2 call(s)"),
        "the run happened: {seen}"
    );
    // while the database is open its WAL exists; after the run it may be gone
    for f in ["dialer.db", "dialer.db-wal", "dialer.db-shm"] {
        if let Ok(meta) = std::fs::metadata(dir.file(f)) {
            assert_eq!(meta.permissions().mode() & 0o077, 0, "{f} is private");
        }
    }
    run(&["-vv", "campaign", "show", "secret"], &mut seen);
    run(&["-vv", "report", "summary"], &mut seen);
    run(&["-vv", "plan"], &mut seen);
    let export = run(
        &["report", "export", "csv", "--out", "attempts.csv"],
        &mut seen,
    );
    assert!(export.status.success(), "{seen}");
    let mode = std::fs::metadata(dir.file("attempts.csv"))
        .expect("export written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the export is private");
    seen.push_str(&std::fs::read_to_string(dir.file("attempts.csv")).expect("export"));
    // an error about the config (an unknown key next to the token) names the key, not the token
    dir.write(
        "dialer.toml",
        &config(
            "127.0.0.1:0",
            50.0,
            &format!("{carrier}\nauth_tokn = \"{TOKEN}\"\n"),
        ),
    );
    let bad = run(&["-vv", "campaign", "list"], &mut seen);
    assert!(!bad.status.success());
    assert!(!seen.contains(TOKEN), "the token leaked:\n{seen}");
}
