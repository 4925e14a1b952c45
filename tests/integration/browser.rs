//! The dashboard in a real browser (SPEC §11): headless Chromium from Debian's packages, driven
//! through chromedriver (WebDriver, `fantoccini`), against `dialer run daemon` running the
//! shipped `dialer.toml` (the simulator places the calls) in its own process. The operator
//! signs in, sees the shipped campaigns, watches a counter change while calls are placed (no
//! reload), pauses a campaign and the daemon stops placing it, and downloads the CSV.
//!
//! Chromium missing is a failure naming the install command, never a silent pass. With
//! `DIALER_SCREENSHOTS=docs/` the overview and a campaign page are saved there as PNG (the
//! README's screenshots come from this test).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::calls::TestDir as Dir;

const TOKEN: &str = "browser-test-token-0123456789";
/// How long any one awaited change may take before the test fails (never a sleep).
const PATIENCE: Duration = Duration::from_secs(60);
const LIVE: &str = "Live demo";

/// The command that installs what this test needs (Debian).
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A child process killed on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `marker` and returns what follows it on that line.
    async fn wait_line(&mut self, marker: &str, what: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if let Some(rest) = log.lines().find_map(|l| l.split(marker).nth(1)) {
                return rest.trim().to_owned();
            }
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("{what} exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "no {what} line `{marker}`:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, and a WebDriver session of headless Chromium.
async fn browser(dir: &Dir) -> (Proc, Client) {
    let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
        panic!(
            "the browser tests need Chromium and chromedriver from Debian's packages: run \
             `{INSTALL}` (.ci/run does it when they are missing)"
        );
    };
    let log = dir.file("chromedriver.log");
    let child = Command::new(driver)
        .arg("--port=0")
        .stdout(File::create(&log).expect("log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let mut proc = Proc { child, log };
    let line = proc
        .wait_line("was started successfully on port ", "chromedriver")
        .await;
    let port: u16 = line
        .trim_end_matches('.')
        .parse()
        .unwrap_or_else(|_| panic!("chromedriver port in {line:?}"));
    let profile = dir.file("chromium-profile");
    let downloads = dir.file("downloads");
    std::fs::create_dir_all(&downloads).expect("downloads dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("tls config")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "start headless Chromium through chromedriver: {e}\n{}",
                proc.log()
            )
        });
    (proc, client)
}

/// The shipped `dialer.toml` and campaigns, on free ports, plus an all-day campaign
/// ([`LIVE`], paused) so calls are placed whatever the time of day.
fn sandbox() -> Dir {
    let dir = Dir::new();
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
    let shipped = std::fs::read_to_string(root.join("dialer.toml")).expect("dialer.toml");
    let config = shipped
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:8090\"", "listen = \"127.0.0.1:0\"")
        .replace("calls_per_second = 1.0", "calls_per_second = 4.0");
    assert!(
        config.contains("[dashboard]"),
        "the shipped config has a [dashboard] section"
    );
    dir.write("dialer.toml", &config);
    let live = format!(
        r#"{{"name": "{LIVE}", "message": "Hello {{{{name}}}}, this is a test call.",
            "calling_hours_start": "00:00", "calling_hours_end": "24:00", "timezone": "UTC",
            "max_retries": 0}}"#
    );
    dir.write("live.json", &live);
    let mut csv = String::from("phone,name,timezone\n");
    for i in 0..60 {
        csv.push_str(&format!("+1646555{:04},Person {i},UTC\n", 2000 + i));
    }
    dir.write("live.csv", &csv);
    for args in [
        &["campaign", "import", "live.json", "--contacts", "live.csv"][..],
        &["campaign", "pause", LIVE][..],
    ] {
        let out = dir.output(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

fn daemon(dir: &Dir) -> Proc {
    let log = dir.file("daemon.stderr");
    let child = dir
        .dialer(&["run", "daemon"])
        .env("DIALER_DASHBOARD_TOKEN", TOKEN)
        .stdout(File::create(dir.file("daemon.stdout")).expect("stdout"))
        .stderr(File::create(&log).expect("stderr"))
        .spawn()
        .expect("spawn dialer run daemon");
    Proc { child, log }
}

/// Waits until `probe` gives `Some`, polling the page (the change comes from the page itself).
async fn until<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut probe: F) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for an element; on timeout, fails with the page the browser shows.
async fn wait_for(c: &Client, css: &str, what: &str) {
    if c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .is_err()
    {
        let url = c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let source = c.source().await.unwrap_or_default();
        panic!("{what}: no `{css}` at {url}:\n{source}");
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

fn live_field(field: &str) -> String {
    format!("tr[data-row=\"{LIVE}\"] [data-field=\"{field}\"]")
}

fn attempts_of(dir: &Dir, campaign: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.file("dialer.db")).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("timeout");
    db.query_row(
        "SELECT count(*) FROM attempts a JOIN campaigns c ON c.id = a.campaign_id WHERE c.name = ?1",
        [campaign],
        |r| r.get(0),
    )
    .expect("count")
}

async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("DIALER_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.expect("screenshot");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_watches_calls_live_pauses_a_campaign_and_downloads_the_csv() {
    let dir = sandbox();
    let mut daemon = daemon(&dir);
    let url = daemon
        .wait_line("dashboard listening url=", "the daemon")
        .await;
    let (_driver, c) = browser(&dir).await;

    // signing in: the overview redirects to the form first
    c.goto(&format!("{url}/"))
        .await
        .expect("open the dashboard");
    assert!(c.current_url().await.expect("url").path() == "/login");
    c.find(Locator::Css("#password"))
        .await
        .expect("password field")
        .send_keys(TOKEN)
        .await
        .expect("type the token");
    c.find(Locator::Css("button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("sign in");
    wait_for(&c, "table#campaigns", "the overview after signing in").await;

    // the shipped campaigns are listed
    let table = text(&c, "table#campaigns").await;
    for name in ["Appointment reminder", "Customer satisfaction survey", LIVE] {
        assert!(table.contains(name), "{name} in:\n{table}");
    }

    // a counter changes while the simulator places calls, with no reload
    c.execute("window.__notReloaded = true;", vec![])
        .await
        .expect("mark the page");
    assert_eq!(text(&c, &live_field("placed_today")).await, "0");
    let out = dir.output(&["campaign", "resume", LIVE]);
    assert!(out.status.success());
    let placed = until("the live counter to move", async || {
        let t = text(&c, &live_field("placed_today")).await;
        (t != "0").then_some(t)
    })
    .await;
    assert!(placed.parse::<u32>().expect("a count") > 0);
    let same_page = c
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .expect("script");
    assert_eq!(same_page, json!(true), "the counter moved without a reload");
    screenshot(&c, "dashboard-overview.png").await;

    // the campaign page; pause it there
    c.find(Locator::LinkText(LIVE))
        .await
        .expect("campaign link")
        .click()
        .await
        .expect("open the campaign");
    wait_for(&c, "button#pause", "the pause button").await;
    // its cards are live too: people answer and contacts complete while the page stays open
    c.execute("window.__notReloaded = true;", vec![])
        .await
        .expect("mark the page");
    until("completed contacts on the campaign page", async || {
        let t = text(&c, ".card [data-field=completed]").await;
        (t.parse::<u32>().ok()? >= 2).then_some(())
    })
    .await;
    let same_page = c
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .expect("script");
    assert_eq!(same_page, json!(true), "the cards moved without a reload");
    screenshot(&c, "dashboard-campaign.png").await;
    c.find(Locator::Css("button#pause"))
        .await
        .expect("pause")
        .click()
        .await
        .expect("click pause");
    wait_for(&c, "button#resume", "the page shows the campaign paused").await;
    assert_eq!(text(&c, "h1 [data-field=state]").await, "paused");

    // the daemon stops placing it: once the calls already claimed have been placed, another
    // campaign's calls go on being placed while this one's count stays put
    let marker = r#"{"name": "Marker", "message": "Hi", "calling_hours_start": "00:00",
        "calling_hours_end": "24:00", "timezone": "UTC", "max_retries": 0}"#;
    dir.write("marker.json", marker);
    let mut csv = String::from("phone,timezone\n");
    for i in 0..6 {
        csv.push_str(&format!("+1917555{:04},UTC\n", 3000 + i));
    }
    dir.write("marker.csv", &csv);
    let out = dir.output(&[
        "campaign",
        "import",
        "marker.json",
        "--contacts",
        "marker.csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until("a first Marker call", async || {
        (attempts_of(&dir, "Marker") >= 1).then_some(())
    })
    .await;
    let after_pause = attempts_of(&dir, LIVE);
    until("three more Marker calls", async || {
        (attempts_of(&dir, "Marker") >= 4).then_some(())
    })
    .await;
    assert_eq!(
        attempts_of(&dir, LIVE),
        after_pause,
        "the paused campaign placed a call while another campaign was being dialed"
    );
    assert!(
        after_pause < 60,
        "the campaign was paused before it finished"
    );

    // the CSV download: the browser saves the file the link points to
    c.find(Locator::LinkText("Attempts CSV"))
        .await
        .expect("download link")
        .click()
        .await
        .expect("download");
    let downloaded = until("the downloaded CSV", async || {
        std::fs::read_dir(dir.file("downloads"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "csv"))
    })
    .await;
    let csv = std::fs::read_to_string(&downloaded).expect("read the download");
    assert!(
        csv.starts_with("campaign,contact,name,phone,attempt,call_sid,status"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().skip(1).filter(|l| l.starts_with(LIVE)).count() as i64,
        attempts_of(&dir, LIVE),
        "one row per attempt of the campaign"
    );

    c.close().await.expect("close the browser");
}
