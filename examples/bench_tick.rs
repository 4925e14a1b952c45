//! Benchmark of one scheduler tick (SPEC §9): a campaign with N contacts (default 1,000,000) of
//! which 1,000 are due; times `CampaignState::pick` (indexed due query + `decide` for each) and
//! `wake_at`, beside the bare indexed SELECT of the same 1,000 rows, in the same run.
//!
//! `cargo run --release --example bench_tick [N] [DIALER_BIN]`
//!
//! With `DIALER_BIN`, it then runs `dialer run daemon` on that database (built-in simulator,
//! 50 calls/s) for [`DAEMON_SECONDS`]: the daemon loads the campaign, dials the 1,000 due
//! contacts and waits for the rest; its RSS is sampled from `/proc/PID/status` all along.
//!
//! The last line, `RESULT fill_s=… bare_ms=… tick_ms=… wake_ms=… hwm_kb=… [daemon_rss_kb=…
//! daemon_hwm_kb=…]`, is for `bench/run`.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialer::clock::{Clock, SystemClock};
use dialer::config::{Config, Env};
use dialer::daemon::scheduler::CampaignState;
use dialer::decision::Loaded;
use dialer::store::{Db, Store};

const DUE: i64 = 1_000;
const ROUNDS: u32 = 50;

/// How long the daemon runs over the filled database.
const DAEMON_SECONDS: u64 = 30;

fn main() -> anyhow::Result<()> {
    let n: i64 = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let config = Config::parse(&dir.path().join("dialer.toml"), "", &Env::default())?;
    let path = dir.path().join("bench.db");
    let db = Db::open(&path)?;
    let now = SystemClock.now();
    let campaign = r#"{"name": "tick", "message": "hi", "calling_hours_start": "00:00", "calling_hours_end": "24:00"}"#;
    let (id, _) = db.write_blocking(move |tx| tx.upsert_campaign("tick", campaign, false, now))?;
    // bench data and the baseline query go straight to SQLite (a second connection)
    let raw = rusqlite::Connection::open(&path)?;
    let fill_started = Instant::now();
    // contacts 1..=DUE are due now; the rest wait for a retry an hour later, spread over zones
    raw.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n})
         INSERT INTO contacts (campaign_id, phone, zones, next_attempt_at, attempts, created_at, updated_at)
         SELECT {id}, '+1' || (2000000000 + i),
                CASE i % 3 WHEN 0 THEN 'America/New_York' WHEN 1 THEN 'America/Chicago' ELSE NULL END,
                CASE WHEN i <= {DUE} THEN {past} ELSE {future} + i % 3600 END,
                CASE WHEN i <= {DUE} THEN 1 ELSE 0 END, 0, 0
         FROM k;
         COMMIT;",
        past = now.timestamp() - 60,
        future = now.timestamp() + 3600,
    ))?;
    let fill = fill_started.elapsed();
    println!("filled {n} contacts ({DUE} due) in {fill:.2?}");

    let store = Store::open_reader(&path)?;
    let row = store.require_campaign("tick")?;
    let loaded = Loaded::load(row, config.dialer.default_timezone)?;
    let mut state = CampaignState::new(Arc::new(loaded), now);
    let cap = config.dialer.max_calls_per_number_per_day;
    let none = HashSet::new();

    let bare = time(|| {
        let mut stmt = raw.prepare_cached(
            "SELECT id FROM contacts WHERE campaign_id = ?1 AND state = 'open' AND pending_import IS NULL AND next_attempt_at <= ?2
             ORDER BY next_attempt_at, id LIMIT ?3",
        )?;
        let ids: Vec<i64> = stmt
            .query_map(rusqlite::params![id, now.timestamp(), DUE], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(ids.len() as i64, DUE);
        Ok(())
    })?;
    let tick = time(|| {
        let due = state.pick(&store, cap, now, &none, usize::MAX)?;
        assert_eq!(due.len() as i64, DUE);
        Ok(())
    })?;
    let wake = time(|| {
        state.wake_at(&store, now)?;
        Ok(())
    })?;
    println!("bare indexed SELECT of {DUE} due ids: {bare:>10.3?} (median of {ROUNDS})");
    println!("tick: pick {DUE} due (+decide):     {tick:>10.3?} (median of {ROUNDS})");
    println!("wake_at (next wake-up):           {wake:>10.3?} (median of {ROUNDS})");
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM"))?.to_owned();
            line.split_whitespace().nth(1).map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("peak RSS: {hwm} kB");
    let daemon = match std::env::args().nth(2) {
        Some(bin) => {
            drop((state, store, raw, db));
            let (rss, peak) = daemon_rss(Path::new(&bin), dir.path())?;
            println!("daemon over {n} contacts: RSS {rss} kB at the end, peak {peak} kB");
            format!(" daemon_rss_kb={rss} daemon_hwm_kb={peak}")
        }
        None => String::new(),
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "RESULT fill_s={:.1} bare_ms={:.3} tick_ms={:.3} wake_ms={:.3} hwm_kb={hwm}{daemon}",
        fill.as_secs_f64(),
        ms(bare),
        ms(tick),
        ms(wake)
    );
    Ok(())
}

/// Runs `dialer run daemon` over `dir/bench.db` for [`DAEMON_SECONDS`]; its RSS at the end and
/// its peak (kB).
fn daemon_rss(dialer: &Path, dir: &Path) -> anyhow::Result<(u64, u64)> {
    std::fs::write(
        dir.join("daemon.toml"),
        "[database]\npath = \"bench.db\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\
         public_url = \"http://127.0.0.1:0\"\n\n[carrier]\nkind = \"simulator\"\n\n\
         [dialer]\ncalls_per_second = 50\nmax_concurrent_calls = 100\n\n\
         [simulator]\ntime_scale = 0.01\n",
    )?;
    let mut child = Command::new(dialer)
        .arg("--config")
        .arg(dir.join("daemon.toml"))
        .args(["-q", "run", "daemon"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log"))?)
        .spawn()?;
    let status = format!("/proc/{}/status", child.id());
    let field = |text: &str, key: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let started = Instant::now();
    let (mut rss, mut peak) = (0, 0);
    while started.elapsed() < Duration::from_secs(DAEMON_SECONDS) {
        if let Some(exit) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            anyhow::bail!("the daemon stopped ({exit}):\n{log}");
        }
        if let Ok(text) = std::fs::read_to_string(&status) {
            rss = field(&text, "VmRSS:").unwrap_or(rss);
            peak = field(&text, "VmHWM:").unwrap_or(peak);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM: a graceful stop (the daemon drains its calls)
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait()?;
    Ok((rss, peak))
}

fn time(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut samples = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}
