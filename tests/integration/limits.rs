//! Concurrency and pacing limits (SPEC §5.3, §10), with the daemon in-process against a
//! simulator whose record of every call is read afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dialer::clock::{Clock, SystemClock};
use dialer::config::{Config, Env};
use dialer::daemon::{Event, Options, Summary};
use dialer::simulator::{BehaviorKind, Rule, SimConfig, Simulator};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::calls::TestDir as Dir;

/// A simulator where every callee answers, its calls lasting a few real tenths of a second.
async fn simulator() -> Simulator {
    let config = SimConfig {
        seed: 31,
        time_scale: 0.02,
        rules: vec![Rule {
            pattern: "*".into(),
            behavior: BehaviorKind::Human,
            digits: vec![],
            speech: vec![],
            replies: vec![],
        }],
        ..SimConfig::default()
    };
    Simulator::start(config, Arc::new(SystemClock))
        .await
        .expect("simulator")
}

fn dialer_toml(sim: &Simulator, dialer: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[dialer]\n{dialer}\nshutdown_grace = \"20s\"\n\n\
         [carrier]\nkind = \"twilio\"\n\n[twilio]\napi_base = \"{}\"\naccount_sid = \"{}\"\n\
         auth_token = \"{}\"\n",
        sim.base_url(),
        sim.account_sid(),
        sim.auth_token()
    )
}

fn campaign(name: &str, extra: &str) -> String {
    format!(
        "{{\"name\": \"{name}\", \"message\": \"hello\", \"calling_hours_start\": \"00:00\", \
         \"calling_hours_end\": \"24:00\", \"max_retries\": 0{extra}}}"
    )
}

fn contacts(prefix: &str, n: usize) -> String {
    let mut csv = "phone\n".to_owned();
    for i in 0..n {
        csv.push_str(&format!("{prefix}{i:02}\n"));
    }
    csv
}

/// `daemon::run` in a task, with its event stream.
struct InProcess {
    events: UnboundedReceiver<Event>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<Summary>>,
}

fn start_daemon(dir: &Dir) -> InProcess {
    let config = Config::load(&dir.file("dialer.toml"), &Env::default()).expect("config");
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let options = Options {
        progress: false,
        events: Some(tx),
        ..Options::default()
    };
    let task = tokio::spawn(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        dialer::daemon::run(&config, clock, stop, options).await
    });
    InProcess {
        events,
        shutdown,
        task,
    }
}

impl InProcess {
    /// The next `Placed` event: (campaign, attempt).
    async fn next_placed(&mut self) -> (String, i64) {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), self.events.recv())
                .await
                .expect("an event within 30 s")
                .expect("the daemon is running");
            if let Event::Placed { campaign, attempt } = event {
                return (campaign, attempt);
            }
        }
    }

    async fn stop(self) -> Summary {
        self.shutdown.cancel();
        self.task.await.expect("daemon task").expect("daemon run")
    }
}

/// Issue: with `max_concurrent_calls = 1` and a high rate, up to 4 calls were open at once (the
/// slot was counted from the database before the previous claim was visible).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_calls_holds_at_every_instant() {
    let dir = Dir::new();
    let sim = simulator().await;
    dir.write(
        "dialer.toml",
        &dialer_toml(&sim, "calls_per_second = 500.0\nmax_concurrent_calls = 1"),
    );
    dir.write("c.json", &campaign("one-at-a-time", ""));
    dir.write("c.csv", &contacts("+121255501", 6));
    let out = dir.output(&["campaign", "import", "c.json", "--contacts", "c.csv"]);
    assert!(out.status.success(), "{out:?}");

    let mut daemon = start_daemon(&dir);
    for _ in 0..6 {
        daemon.next_placed().await;
    }
    let summary = daemon.stop().await;
    assert_eq!(summary.placed.get("one-at-a-time"), Some(&6));
    assert_eq!(summary.left_open, 0);

    // the carrier's own record: each call was created after the previous one ended
    let mut calls = sim.state().records();
    calls.sort_by_key(|c| c.date_created);
    assert_eq!(calls.len(), 6);
    for pair in calls.windows(2) {
        let ended = pair[0].end_time.expect("the call ended");
        assert!(
            pair[1].date_created >= ended,
            "{} was created at {} while {} was still open (it ended at {ended})",
            pair[1].sid,
            pair[1].date_created,
            pair[0].sid
        );
    }
}

/// Issue: a campaign with `calls_per_minute = 2` held up another campaign's due contact for as
/// long as its own calls waited for their turn (placed at 0, 30, 60, 90 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaigns_own_cap_never_delays_another_campaign() {
    let dir = Dir::new();
    let sim = simulator().await;
    dir.write(
        "dialer.toml",
        &dialer_toml(&sim, "calls_per_second = 50.0\nmax_concurrent_calls = 20"),
    );
    dir.write("a.json", &campaign("a-capped", ", \"calls_per_minute\": 2"));
    dir.write("a.csv", &contacts("+121255501", 4));
    dir.write("b.json", &campaign("b-free", ""));
    dir.write("b.csv", &contacts("+121255502", 1));
    let out = dir.output(&["campaign", "import", "a.json", "--contacts", "a.csv"]);
    assert!(out.status.success(), "{out:?}");

    let mut daemon = start_daemon(&dir);
    let first = daemon.next_placed().await;
    assert_eq!(first.0, "a-capped");
    // the other campaign arrives while the capped one waits for its next permit (30 s away)
    let out = dir.output(&["campaign", "import", "b.json", "--contacts", "b.csv"]);
    assert!(out.status.success(), "{out:?}");
    let mut placed: HashMap<String, u32> = HashMap::new();
    loop {
        let (campaign, _) = daemon.next_placed().await;
        *placed.entry(campaign.clone()).or_default() += 1;
        if campaign == "b-free" {
            break;
        }
    }
    assert_eq!(
        placed.get("a-capped"),
        None,
        "b-free waited behind a-capped's own cap: {placed:?}"
    );
    daemon.stop().await;
}
