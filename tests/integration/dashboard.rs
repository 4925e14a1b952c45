//! The dashboard over plain HTTP against the real binary (SPEC §11): `run daemon` on the
//! shipped `dialer.toml` serves it when a token is set; without credentials no page or API
//! route shows data; `dialer dashboard` refuses to start without credentials. Also the operator
//! comforts: shell completions, the man page, and the Grafana board's metric names checked
//! against what `/metrics` serves.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::calls::TestDir as Dir;

const TOKEN: &str = "dashboard-http-test-token-42";

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    /// `run daemon` on the shipped config (free ports), with the token in the environment.
    fn start(dir: &Dir) -> Daemon {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["campaigns", "examples"] {
            std::fs::create_dir_all(dir.file(sub)).expect("folder");
        }
        for f in [
            "campaigns/appointment-reminder.json",
            "campaigns/satisfaction-survey.json",
            "examples/contacts.csv",
            "examples/survey-contacts.csv",
        ] {
            dir.write(
                f,
                &std::fs::read_to_string(root.join(f)).expect("shipped file"),
            );
        }
        let config = std::fs::read_to_string(root.join("dialer.toml"))
            .expect("dialer.toml")
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
            .replace("listen = \"127.0.0.1:8090\"", "listen = \"127.0.0.1:0\"");
        dir.write("dialer.toml", &config);
        let log = dir.file("daemon.stderr");
        let child = dir
            .dialer(&["run", "daemon"])
            .env("DIALER_DASHBOARD_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log"))
            .spawn()
            .expect("spawn daemon");
        Daemon { child, log }
    }

    async fn line_after(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(rest) = log.lines().find_map(|l| l.split(marker).nth(1)) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
            if let Some(status) = self.child.try_wait().expect("poll") {
                panic!("daemon exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "no `{marker}` in:\n{log}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn without_credentials_no_page_or_api_route_shows_data() {
    let dir = Dir::new();
    let mut daemon = Daemon::start(&dir);
    let url = daemon.line_after("dashboard listening url=").await;
    let http = no_redirects();
    let pages = [
        "/",
        "/events",
        "/static/live.js",
        "/campaigns/Appointment%20reminder",
        "/campaigns/Appointment%20reminder/attempts.csv",
        "/campaigns/Appointment%20reminder/contacts.csv",
        "/contacts/1",
        "/anything",
    ];
    for path in pages {
        for cookie in [None, Some("dialer_session=9999999999.abc.dG9rZW4")] {
            let mut req = http.get(format!("{url}{path}"));
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.expect("GET");
            assert_eq!(res.status(), 303, "{path}");
            assert_eq!(res.headers()["location"], "/login", "{path}");
            let body = res.text().await.expect("body");
            assert!(
                !body.contains("Appointment") && !body.contains("+1"),
                "{path}: {body}"
            );
        }
    }
    for path in ["/campaigns/Appointment%20reminder/pause", "/dnc", "/logout"] {
        let res = http
            .post(format!("{url}{path}"))
            .form(&[("number", "+12125550101"), ("csrf", "x")])
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), 303, "{path}");
    }
    for path in [
        "/api/campaigns",
        "/api/campaigns/Appointment%20reminder/plan",
    ] {
        for auth in [None, Some("Bearer not-the-token-at-all")] {
            let mut req = http.get(format!("{url}{path}"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let res = req.send().await.expect("GET");
            assert_eq!(res.status(), 401, "{path}");
            let body = res.text().await.expect("body");
            assert!(!body.contains("Appointment"), "{body}");
        }
    }
    let login = http.get(format!("{url}/login")).send().await.expect("GET");
    assert_eq!(login.status(), 200);
    assert!(!login.text().await.expect("body").contains("Appointment"));
    // nothing changed: the campaign is not paused, the DNC list is empty
    let db = dir.db();
    let paused: i64 = db
        .query_row("SELECT count(*) FROM campaigns WHERE paused = 1", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(paused, 0);
    let dnc: i64 = db
        .query_row("SELECT count(*) FROM dnc", [], |r| r.get(0))
        .expect("count");
    assert_eq!(dnc, 0);

    // with the token, the API answers the shipped campaigns
    let cards: serde_json::Value = http
        .get(format!("{url}/api/campaigns"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = cards
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"Appointment reminder"), "{names:?}");
}

#[test]
fn dialer_dashboard_refuses_to_start_without_credentials() {
    let dir = Dir::new();
    dir.write("dialer.toml", "");
    let out = dir.output(&["dashboard"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no dashboard credentials") && err.contains("DIALER_DASHBOARD_TOKEN"),
        "{err}"
    );
}

#[test]
fn a_hashed_password_is_accepted_by_the_config_and_a_short_token_is_refused() {
    let dir = Dir::new();
    let mut child = dir
        .dialer(&["dashboard", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse battery\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    dir.write(
        "dialer.toml",
        &format!("[[dashboard.users]]\nname = \"ops\"\npassword_hash = \"{hash}\"\n"),
    );
    let out = dir.output(&["campaign", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    dir.write("dialer.toml", "[dashboard]\ntoken = \"tooshort\"\n");
    let out = dir.output(&["campaign", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("dashboard.token") && !err.contains("tooshort"),
        "{err}"
    );
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    let dir = Dir::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = dir.output(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["campaign", "dnc", "plan", "report", "dashboard"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = dir.output(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH dialer 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    assert!(page.contains("DIALER RUN") && page.contains("DIALER REPORT"));
}

/// The metric names a PromQL expression mentions (`dialer_…`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("dialer_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_metric_the_grafana_board_queries_is_served_on_metrics() {
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana-dashboard.json"),
        )
        .expect("examples/grafana-dashboard.json"),
    )
    .expect("the board is JSON");
    let mut queries = Vec::new();
    exprs(&board, &mut queries);
    assert!(queries.len() >= 5, "{queries:?}");

    let dir = Dir::new();
    let mut daemon = Daemon::start(&dir);
    let url = daemon
        .line_after("callback server listening public_url=")
        .await;
    let url = url.trim_end_matches('/');
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let served: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "a query names no dialer metric: {q}");
        for n in names {
            assert!(
                served.contains(&n),
                "`{n}` (in `{q}`) is not served; /metrics has {served:?}"
            );
        }
    }
    // and the board covers what operators watch
    let all: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    for needed in [
        "dialer_calls_placed_total",
        "dialer_calls_ended_total",
        "dialer_callbacks_total",
        "dialer_dial_errors_total",
        "dialer_open_calls",
    ] {
        assert!(all.contains(needed), "the board has no panel for {needed}");
    }
}

/// `name=value` of every Set-Cookie of a response.
fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("value").to_owned()
}

#[tokio::test]
async fn dialer_dashboard_beside_a_running_daemon_pauses_a_campaign() {
    let dir = Dir::new();
    let mut daemon = Daemon::start(&dir);
    daemon
        .line_after("callback server listening public_url=")
        .await;
    // a second config for the same database, its dashboard on another free port
    let config = std::fs::read_to_string(dir.file("dialer.toml")).expect("config");
    dir.write("dashboard.toml", &config);
    let log = dir.file("dashboard.stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
        .current_dir(dir.path())
        .args(["--config", "dashboard.toml", "dashboard"])
        .env("DIALER_DASHBOARD_TOKEN", TOKEN)
        .env_remove("DIALER_CONFIG")
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log"))
        .spawn()
        .expect("spawn dialer dashboard");
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(u) = text.lines().find_map(|l| l.strip_prefix("dashboard: ")) {
            break u
                .split_whitespace()
                .next()
                .expect("url")
                .trim_end_matches('/')
                .to_owned();
        }
        if let Some(status) = child.try_wait().expect("poll") {
            panic!("dialer dashboard exited ({status}):\n{text}");
        }
        assert!(Instant::now() < deadline, "no address in:\n{text}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    let http = no_redirects();
    let form = http
        .get(format!("{url}/login"))
        .send()
        .await
        .expect("GET /login");
    let login_cookie = set_cookies(&form).join("; ");
    let csrf = csrf_of(&form.text().await.expect("body"));
    let signed = http
        .post(format!("{url}/login"))
        .header("cookie", login_cookie)
        .form(&[("user", ""), ("password", TOKEN), ("csrf", &csrf)])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(signed.status(), 303);
    let session = set_cookies(&signed)
        .into_iter()
        .find(|c| c.starts_with("dialer_session="))
        .expect("a session cookie");
    let page = http
        .get(format!("{url}/campaigns/Appointment%20reminder"))
        .header("cookie", &session)
        .send()
        .await
        .expect("GET campaign");
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.expect("body"));
    let paused = http
        .post(format!("{url}/campaigns/Appointment%20reminder/pause"))
        .header("cookie", &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .expect("POST pause");
    assert_eq!(paused.status(), 303);
    let flag: i64 = dir
        .db()
        .query_row(
            "SELECT paused FROM campaigns WHERE name = 'Appointment reminder'",
            [],
            |r| r.get(0),
        )
        .expect("paused flag");
    assert_eq!(flag, 1);
    // the daemon, still running, shows the pause on its own dashboard's API
    let own = daemon.line_after("dashboard listening url=").await;
    let cards: serde_json::Value = reqwest::Client::new()
        .get(format!("{own}/api/campaigns"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let state = cards
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == "Appointment reminder")
        .map(|c| c["state"].clone());
    assert_eq!(state, Some(serde_json::json!("paused")));
    let _ = child.kill();
    let _ = child.wait();
}
