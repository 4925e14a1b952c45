//! End-to-end tests of `dialer run daemon`: the real binary runs as a child process against the
//! simulator (built in, or a separate `dialer simulator` process) over loopback; SIGTERM, pause
//! and resume from the CLI, and `kill -9` then restart, checked from `dialer.db` and the
//! simulator's request log.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The end-to-end test folder of `calls`, with what the daemon tests add to it.
use crate::calls::TestDir as Dir;

impl Dir {
    /// A CLI command that must succeed.
    fn ok(&self, args: &[&str]) {
        let out = self.dialer(args).output().expect("run dialer");
        assert!(
            out.status.success(),
            "dialer {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `run daemon` in the background; output to `LABEL.stdout` / `LABEL.stderr`.
    fn daemon(&self, label: &str) -> Daemon {
        let out = self.file(&format!("{label}.stdout"));
        let err = self.file(&format!("{label}.stderr"));
        let child = self
            .dialer(&["-v", "run", "daemon"])
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn dialer run daemon");
        Daemon {
            child,
            stdout: out,
            stderr: err,
        }
    }

    fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// Waits (at most `limit`) until `sql` counts at least `n`.
    fn wait_for(&self, sql: &str, n: i64, limit: Duration, daemon: &mut Daemon) {
        let deadline = Instant::now() + limit;
        loop {
            // the file may exist before the daemon has created its tables: not yet
            let counted: Option<i64> = self
                .file("dialer.db")
                .exists()
                .then(|| self.db().query_row(sql, [], |r| r.get(0)).ok())
                .flatten();
            if counted.is_some_and(|c| c >= n) {
                return;
            }
            if let Some(status) = daemon.child.try_wait().expect("poll daemon") {
                panic!("daemon exited early ({status}):\n{}", daemon.logs());
            }
            assert!(
                Instant::now() < deadline,
                "`{sql}` still below {n} after {limit:?}:\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `dialer run daemon`; killed if the test ends first.
struct Daemon {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Waits until the daemon's stderr holds `needle` at least `n` times; returns the log.
    fn wait_for_log(&mut self, needle: &str, n: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if log.matches(needle).count() >= n {
                return log;
            }
            if let Some(status) = self.child.try_wait().expect("poll daemon") {
                panic!("daemon exited early ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged {n} time(s) within {limit:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How often `needle` is in the daemon's log so far.
    fn logged(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .matches(needle)
            .count()
    }

    /// The callback server's base URL, from its `callback server listening` log line (the
    /// daemon binds port 0).
    fn url(&mut self) -> String {
        let log = self.wait_for_log("callback server listening", 1, Duration::from_secs(10));
        log.lines()
            .find(|l| l.contains("callback server listening"))
            .and_then(|l| l.split("public_url=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| panic!("no public_url in the log:\n{log}"))
    }

    fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }

    /// SIGTERM, then waits for the exit; returns (exit code, stdout).
    fn terminate(mut self, limit: Duration) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("poll daemon") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running {limit:?} after SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            status.code(),
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
        )
    }

    /// `kill -9`.
    fn kill_hard(mut self) {
        self.child.kill().expect("kill -9 the daemon");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A separate `dialer simulator` process; killed on drop.
struct Sim {
    child: Child,
    base: String,
    _stdout: BufReader<ChildStdout>,
}

impl Sim {
    fn start(dir: &Dir, table: &str) -> Sim {
        dir.write("sim.toml", &format!("[simulator]\n{table}\n"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_dialer"))
            .current_dir(dir.path())
            .args(["simulator", "--listen", "127.0.0.1:0", "--config"])
            .arg(dir.file("sim.toml"))
            .env_remove("DIALER_CONFIG")
            .stdout(Stdio::piped())
            .stderr(File::create(dir.file("sim.stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn simulator");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read simulator banner");
        let base = line
            .strip_prefix("simulator listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected simulator banner: {line:?}"))
            .to_owned();
        Sim {
            child,
            base,
            _stdout: stdout,
        }
    }

    /// SID → `To` of every successful Calls create.
    fn created(&self) -> Vec<(String, String)> {
        let (status, body) = get(&format!("{}/simulator/requests", self.base));
        assert_eq!(status, 200, "{body}");
        let log: Vec<Value> = serde_json::from_str(&body).expect("request log is JSON");
        log.iter()
            .filter(|r| r["status"] == 201)
            .map(|r| {
                let to = r["params"]
                    .as_array()
                    .expect("params")
                    .iter()
                    .find(|p| p[0] == "To")
                    .and_then(|p| p[1].as_str())
                    .expect("To")
                    .to_owned();
                (r["sid"].as_str().expect("sid").to_owned(), to)
            })
            .collect()
    }

    fn carrier_toml(&self) -> String {
        format!(
            "[carrier]\nkind = \"twilio\"\n\n[twilio]\napi_base = \"{}\"\n\
             account_sid = \"AC00000000000000000000000000000000\"\n\
             auth_token = \"simulator-auth-token\"\n",
            self.base
        )
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> (u16, String) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let resp = reqwest::get(url).await.expect("GET");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("body"))
        })
}

/// dialer.toml with the callback server on port 0 (its address is read from the log), one
/// declared campaign `c.json` + `c.csv`, and `tail`.
fn config(calls_per_second: f64, tail: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [dialer]\ncalls_per_second = {calls_per_second:.1}\nmax_concurrent_calls = 50\n\
         shutdown_grace = \"10s\"\n\n[[campaign]]\nfile = \"c.json\"\ncontacts = \"c.csv\"\n\n{tail}\n"
    )
}

fn campaign(extra: &str) -> String {
    format!(
        "{{\"name\": \"d\", \"message\": \"hello\", \"calling_hours_start\": \"00:00\", \
         \"calling_hours_end\": \"24:00\", {extra}}}"
    )
}

fn contacts(numbers: &[String]) -> String {
    let mut csv = "phone,name\n".to_owned();
    for (i, n) in numbers.iter().enumerate() {
        csv.push_str(&format!("{n},Contact {i}\n"));
    }
    csv
}

fn numbers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

const HUMANS: &str = "\n[[simulator.rules]]\npattern = \"+1212555010*\"\nbehavior = \"human\"\n\
                      \n[[simulator.rules]]\npattern = \"+1212555020*\"\nbehavior = \"busy\"\n";

const DONE: &str = "SELECT count(*) FROM contacts WHERE state <> 'open'";
const OPEN_ATTEMPTS: &str = "SELECT count(*) FROM attempts WHERE ended_at IS NULL";
const ATTEMPTS: &str = "SELECT count(*) FROM attempts";

#[test]
fn daemon_dials_serves_health_and_stops_cleanly_on_sigterm() {
    let dir = Dir::new();
    let sim = format!("[simulator]\nseed = 21\ntime_scale = 0.01\n{HUMANS}");
    dir.write("dialer.toml", &config(50.0, &sim));
    let mut all = numbers("+121255501", 3);
    all.extend(numbers("+121255502", 2));
    dir.write(
        "c.json",
        &campaign(r#""max_retries": 1, "retry_delays": {"busy": "1s"}"#),
    );
    dir.write("c.csv", &contacts(&all));

    let mut d = dir.daemon("first");
    let url = d.url();
    // busy contacts are retried once after 1 s: the daemon wakes for the retry by itself
    dir.wait_for(DONE, 5, Duration::from_secs(15), &mut d);
    assert_eq!(dir.count(ATTEMPTS), 3 + 2 * 2);

    let (status, body) = get(&format!("{url}/health"));
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (status, metrics) = get(&format!("{url}/metrics"));
    assert_eq!(status, 200);
    assert!(metrics.contains("dialer_calls_placed_total 7"), "{metrics}");
    assert!(
        metrics.contains("dialer_open_calls{campaign=\"d\"} 0"),
        "{metrics}"
    );

    let (code, stdout) = d.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("placed 7 call(s) (d: 7)"), "{stdout}");
    assert_eq!(dir.count(OPEN_ATTEMPTS), 0);
    let states: HashMap<String, (String, i64)> = dir
        .db()
        .prepare("SELECT phone, state, attempts FROM contacts")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for n in &all {
        let expected = if n.starts_with("+121255501") {
            ("completed".to_owned(), 1)
        } else {
            ("exhausted".to_owned(), 2)
        };
        assert_eq!(states[n], expected, "{n}");
    }

    // a restart calls nobody again: its first round finds nothing to place
    let mut again = dir.daemon("second");
    again.wait_for_log("idle: nothing to place", 1, Duration::from_secs(10));
    let (code, stdout) = again.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("placed 0 call(s)"), "{stdout}");
    assert_eq!(dir.count(ATTEMPTS), 7);
}

#[test]
fn pause_stops_new_calls_and_resume_continues() {
    let dir = Dir::new();
    let sim = format!("[simulator]\nseed = 22\ntime_scale = 0.01\n{HUMANS}");
    dir.write("dialer.toml", &config(4.0, &sim));
    let all = numbers("+121255501", 10);
    dir.write("c.json", &campaign(r#""max_retries": 0"#));
    dir.write("c.csv", &contacts(&all));

    let mut d = dir.daemon("daemon");
    dir.wait_for(ATTEMPTS, 2, Duration::from_secs(10), &mut d);
    const RELOADED: &str = "campaigns reloaded";
    const IDLE: &str = "idle: nothing to place";
    let (reloads, idles) = (d.logged(RELOADED), d.logged(IDLE));
    dir.ok(&["campaign", "pause", "d"]);
    // the daemon sees the pause, and a round after it finds nothing to place (a placement
    // already past its last check may still have gone out)
    d.wait_for_log(RELOADED, reloads + 1, Duration::from_secs(10));
    let log = d.wait_for_log(IDLE, idles + 1, Duration::from_secs(10));
    let paused_at = dir.count(ATTEMPTS);
    assert!(paused_at < 10, "pause came too late to test anything");
    // another change wakes the daemon again: still nothing placed while paused
    let (reloads, idles) = (log.matches(RELOADED).count(), log.matches(IDLE).count());
    dir.ok(&["dnc", "add", "+19175550199"]);
    d.wait_for_log(RELOADED, reloads + 1, Duration::from_secs(10));
    d.wait_for_log(IDLE, idles + 1, Duration::from_secs(10));
    assert_eq!(
        dir.count(ATTEMPTS),
        paused_at,
        "a call was placed while paused"
    );

    dir.ok(&["campaign", "resume", "d"]);
    dir.wait_for(DONE, 10, Duration::from_secs(15), &mut d);
    let (code, _) = d.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert_eq!(dir.count(ATTEMPTS), 10);
    assert_eq!(dir.count(OPEN_ATTEMPTS), 0);
}

#[test]
fn kill_9_mid_campaign_then_restart_dials_each_contact_as_its_policy_allows() {
    let dir = Dir::new();
    // slow calls, so some are in flight when the daemon dies
    let sim = Sim::start(&dir, &format!("seed = 23\ntime_scale = 0.3\n{HUMANS}"));
    dir.write("dialer.toml", &config(10.0, &sim.carrier_toml()));
    let all = numbers("+121255501", 8);
    dir.write(
        "c.json",
        &campaign(r#""max_retries": 1, "retry_delays": {"default": "1s"}"#),
    );
    dir.write("c.csv", &contacts(&all));

    let mut d = dir.daemon("first");
    // the calls in flight call back to this address: the restart must listen on it again
    let url = d.url();
    let addr = url.trim_start_matches("http://");
    dir.write(
        "dialer.toml",
        &config(10.0, &sim.carrier_toml()).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{addr}\"\npublic_url = \"{url}\""),
        ),
    );
    dir.wait_for(ATTEMPTS, 4, Duration::from_secs(10), &mut d);
    assert!(
        dir.count(OPEN_ATTEMPTS) > 0,
        "no call in flight at the kill"
    );
    d.kill_hard();

    let mut again = dir.daemon("second");
    dir.wait_for(DONE, 8, Duration::from_secs(20), &mut again);
    let (code, stdout) = again.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(dir.count(OPEN_ATTEMPTS), 0);

    let conn = dir.db();
    for n in &all {
        let (state, attempts, rows): (String, i64, i64) = conn
            .query_row(
                "SELECT state, attempts, (SELECT count(*) FROM attempts a WHERE a.contact_id = c.id)
                 FROM contacts c WHERE phone = ?1",
                [n],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("contact");
        assert_eq!(attempts, rows, "{n}: attempts counter = attempt rows");
        assert!(
            (1..=2).contains(&rows),
            "{n}: {rows} attempts, policy allows 2"
        );
        assert_eq!(state, "completed", "{n}: a human answers every call");
    }
    // one create per attempt: every created call belongs to exactly one attempt
    let created = sim.created();
    let sids: Vec<Option<String>> = conn
        .prepare("SELECT call_sid FROM attempts")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (sid, to) in &created {
        let owners = sids.iter().filter(|s| s.as_deref() == Some(sid)).count();
        assert_eq!(
            owners, 1,
            "call {sid} to {to} is owned by {owners} attempts"
        );
    }
    let mut per_number: HashMap<&str, usize> = HashMap::new();
    for (_, to) in &created {
        *per_number.entry(to.as_str()).or_default() += 1;
    }
    for n in &all {
        let rows: i64 = conn
            .query_row(
                "SELECT count(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id
                 WHERE c.phone = ?1 AND a.call_sid IS NOT NULL",
                [n],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(
            per_number.get(n.as_str()).copied().unwrap_or(0) as i64,
            rows,
            "{n}: creates = attempts with a call"
        );
    }
}

#[test]
fn a_scheduled_campaign_places_nothing_between_waves() {
    let dir = Dir::new();
    let sim = format!("[simulator]\nseed = 24\ntime_scale = 0.01\n{HUMANS}");
    dir.write("dialer.toml", &config(50.0, &sim));
    // due now by hours, but the only wave is at midnight on January 1st
    dir.write(
        "c.json",
        &campaign(r#""max_retries": 0, "schedule": "0 0 1 1 *""#),
    );
    dir.write("c.csv", &contacts(&numbers("+121255501", 3)));

    let mut d = dir.daemon("daemon");
    // the first round finds nothing to place and sleeps until the wave
    let log = d.wait_for_log("idle: nothing to place", 1, Duration::from_secs(10));
    assert!(
        log.lines()
            .any(|l| l.contains("idle: nothing to place") && l.contains("-01-01T")),
        "the daemon sleeps until the January 1st wave:\n{log}"
    );
    assert_eq!(dir.count(ATTEMPTS), 0, "a call was placed between waves");
    let (code, stdout) = d.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("placed 0 call(s)"), "{stdout}");
}

/// The daemon as a library function (as pueue's tests boot its daemon): events on a channel,
/// shutdown by a token, the summary returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_in_process_and_reports_what_it_does() {
    use dialer::daemon::{Event, Options};
    let dir = Dir::new();
    let sim = format!("[simulator]\nseed = 25\ntime_scale = 0.01\n{HUMANS}");
    dir.write("dialer.toml", &config(50.0, &sim));
    dir.write("c.json", &campaign(r#""max_retries": 0"#));
    let all = numbers("+121255501", 3);
    dir.write("c.csv", &contacts(&all));
    dir.ok(&["campaign", "import", "c.json", "--contacts", "c.csv"]);

    let config =
        dialer::config::Config::load(&dir.file("dialer.toml"), &dialer::config::Env::default())
            .expect("config");
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options = Options {
        progress: false,
        events: Some(tx),
        ..Options::default()
    };
    let stop = shutdown.clone();
    let daemon = tokio::spawn(async move {
        let clock: std::sync::Arc<dyn dialer::clock::Clock> =
            std::sync::Arc::new(dialer::clock::SystemClock);
        dialer::daemon::run(&config, clock, stop, options).await
    });
    let mut placed = Vec::new();
    let mut listening = None;
    while placed.len() < all.len() {
        let event = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .expect("an event within 15 s")
            .expect("the daemon is running");
        match event {
            Event::Listening { public_url } => listening = Some(public_url),
            Event::Placed { campaign, attempt } => {
                assert_eq!(campaign, "d");
                placed.push(attempt);
            }
            _ => {}
        }
    }
    let url = listening.expect("Listening comes first");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // a graceful stop waits for the calls in progress
    shutdown.cancel();
    let summary = daemon.await.expect("daemon task").expect("daemon run");
    assert_eq!(summary.placed.get("d"), Some(&3));
    assert_eq!(summary.left_open, 0);
    assert_eq!(dir.count(DONE), 3);
    assert_eq!(dir.count(OPEN_ATTEMPTS), 0);
}
