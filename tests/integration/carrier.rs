//! The daemon when the carrier account cannot be used (SPEC §10): `daemon::run` in-process
//! against an in-process simulator whose account is suspended, then reactivated. The test waits
//! on the daemon's events, never on a fixed sleep.

use std::sync::Arc;
use std::time::Duration;

use dialer::clock::SystemClock;
use dialer::config::{Config, Env};
use dialer::daemon::{Event, Options, Tuning, run};
use dialer::simulator::{BehaviorKind, Rule, SimConfig, Simulator};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::calls::TestDir;

/// The next event that `want` accepts (others are skipped); fails after 30 s.
async fn next(
    events: &mut UnboundedReceiver<Event>,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Event {
    let wait = async {
        while let Some(e) = events.recv().await {
            if want(&e) {
                return e;
            }
        }
        panic!("the daemon stopped before {what}");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} within 30 s"))
}

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("GET");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_pauses_while_the_account_is_suspended_and_resumes_when_it_answers() {
    let mut sim_config = SimConfig {
        time_scale: 0.01,
        rules: vec![Rule {
            pattern: "*".into(),
            behavior: BehaviorKind::Busy,
            digits: vec![],
            speech: vec![],
            replies: vec![],
        }],
        ..SimConfig::default()
    };
    sim_config.faults.account_suspended = true;
    let sim = Simulator::start(sim_config, Arc::new(SystemClock))
        .await
        .expect("simulator");

    let dir = TestDir::new();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\n\
         [dialer]\ncalls_per_second = 50.0\nmax_concurrent_calls = 10\n\n\
         [carrier]\nkind = \"twilio\"\n\n[twilio]\napi_base = \"{}\"\n\
         account_sid = \"{}\"\nauth_token = \"{}\"\n",
        sim.base_url(),
        sim.account_sid(),
        sim.auth_token()
    );
    dir.write("dialer.toml", &toml);
    dir.write(
        "c.json",
        r#"{"name": "paused", "message": "hello", "calling_hours_start": "00:00",
            "calling_hours_end": "24:00", "max_retries": 0}"#,
    );
    dir.write("c.csv", "phone,name\n+12125550171,A\n+12125550172,B\n");
    for args in [
        &["campaign", "import", "c.json"][..],
        &["contacts", "import", "--campaign", "paused", "c.csv"][..],
    ] {
        let out = dir.dialer(args).output().expect("run dialer");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = Config::parse(&dir.file("dialer.toml"), &toml, &Env::default()).expect("config");

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let options = Options {
                progress: false,
                events: Some(tx),
                tuning: Tuning {
                    account_retry: Duration::from_millis(100),
                    ..Tuning::default()
                },
            };
            run(&config, Arc::new(SystemClock), shutdown, options).await
        }
    });
    let Event::Listening { public_url } = next(&mut events, "the server", |e| {
        matches!(e, Event::Listening { .. })
    })
    .await
    else {
        unreachable!()
    };
    let Event::AccountDown { reason } = next(&mut events, "the account stop", |e| {
        matches!(e, Event::AccountDown { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("not active"), "{reason}");

    // two checks fail while the account is suspended: nothing is placed meanwhile
    for _ in 0..2 {
        let checked = next(&mut events, "an account check", |e| {
            matches!(e, Event::AccountChecked { .. })
        })
        .await;
        assert_eq!(checked, Event::AccountChecked { usable: false });
    }
    let (code, body) = get(&format!("{public_url}/health")).await;
    assert_eq!(code, 200, "callbacks must keep being routed here: {body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "degraded", "{body}");
    assert!(
        health["carrier"]
            .as_str()
            .is_some_and(|c| c.contains("20005")),
        "{body}"
    );
    let (_, metrics) = get(&format!("{public_url}/metrics")).await;
    assert!(metrics.contains("\ndialer_carrier_up 0\n"), "{metrics}");
    let refused = sim.requests();
    assert!(!refused.is_empty() && refused.len() <= 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.status == 401 && r.error_code == Some(20005))
    );
    {
        let conn = dir.db();
        let open_unattempted: i64 = conn
            .query_row(
                "SELECT count(*) FROM contacts WHERE state = 'open' AND attempts = 0",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(open_unattempted, 2, "no attempt consumed");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 0);
    }

    // the account is reactivated: the next check resumes placing
    sim.state().set_account_suspended(false);
    next(&mut events, "a successful check", |e| {
        *e == Event::AccountChecked { usable: true }
    })
    .await;
    for _ in 0..2 {
        next(&mut events, "a placed call", |e| {
            matches!(e, Event::Placed { .. })
        })
        .await;
    }
    let (code, body) = get(&format!("{public_url}/health")).await;
    assert_eq!((code, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (_, metrics) = get(&format!("{public_url}/metrics")).await;
    assert!(metrics.contains("\ndialer_carrier_up 1\n"), "{metrics}");

    shutdown.cancel();
    let summary = daemon.await.expect("join").expect("daemon");
    assert_eq!(summary.placed.values().sum::<u32>(), 2);
    assert_eq!(
        sim.requests().iter().filter(|r| r.status == 201).count(),
        2,
        "one create per contact once the account answers"
    );
}
