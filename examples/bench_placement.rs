//! Placement benchmark (SPEC §9): `dialer run daemon` against `dialer simulator` running as its
//! own process, every contact answering quickly (simulator `time_scale` small, every number a
//! human). Measures calls created per second from the simulator's request log (sub-second
//! `received_at` of each create), the dialer's RSS sampled from `/proc/PID/status` while it runs,
//! and, after a graceful stop, how many attempts have their full lifecycle recorded.
//!
//! ```text
//! cargo run --release --example bench_placement -- DIALER_BIN DIR CONTACTS SECONDS CPS [MAX_SECONDS]
//! ```
//!
//! `CPS` is `dialer.calls_per_second` (5000 lifts the limit). The daemon runs until SECONDS have
//! passed since its first create and at least 100,000 calls (or every contact) are placed, or
//! MAX_SECONDS (default 2 × SECONDS) have passed. Prints `RESULT key=value …` lines:
//! the achieved rate over the run, the slowest whole second, the largest count in any 1-second
//! window `[t, t + 1 s)` starting at a create, and RSS (now, peak, when the 100,000th call was placed).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

const RSS_MARK: i64 = 100_000;

struct Args {
    dialer: PathBuf,
    dir: PathBuf,
    contacts: i64,
    seconds: f64,
    cps: f64,
    max_seconds: f64,
}

fn args() -> anyhow::Result<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        bail!("usage: bench_placement DIALER_BIN DIR CONTACTS SECONDS CPS [MAX_SECONDS]");
    }
    let seconds: f64 = a[3].parse()?;
    Ok(Args {
        dialer: PathBuf::from(&a[0]),
        dir: PathBuf::from(&a[1]),
        contacts: a[2].replace('_', "").parse()?,
        seconds,
        cps: a[4].parse()?,
        max_seconds: match a.get(5) {
            Some(s) => s.parse()?,
            None => seconds * 2.0,
        },
    })
}

/// Kills (SIGTERM) a child we started, when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            signal(&self.0, "TERM");
            let _ = self.0.wait();
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    let _ = std::fs::remove_file(dir.join("dialer.db"));
    let _ = std::fs::remove_file(dir.join("dialer.db-wal"));
    let _ = std::fs::remove_file(dir.join("dialer.db-shm"));

    // every number answers as a human at once; the whole call takes a few milliseconds; the
    // simulator remembers every create of the run (its log is what is measured)
    std::fs::write(
        dir.join("sim.toml"),
        "[simulator]\nseed = 1\ntime_scale = 0.001\nhistory = 2000000\n\n[simulator.mix]\n\
         busy = 0\nno_answer = 0\nfailed = 0\nmachine = 0\nsilent = 0\n",
    )?;
    let mut sim = Guard(
        Command::new(&args.dialer)
            .arg("--config")
            .arg(dir.join("sim.toml"))
            .args(["-q", "simulator", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("sim.log"))?)
            .spawn()
            .context("cannot start the simulator")?,
    );
    let banner = {
        let out = sim.0.stdout.take().context("simulator stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        line
    };
    let sim_url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("no URL in the simulator's banner")?
        .to_owned();
    let after = |key: &str| {
        banner
            .split(key)
            .nth(1)
            .and_then(|s| s.split([',', ';', ')']).next())
            .map(|s| s.trim().to_owned())
    };
    let account = after("account sid").context("no account sid in the banner")?;
    let token = after("auth token").context("no auth token in the banner")?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\npath = \"dialer.db\"\n\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n\
             [carrier]\nkind = \"twilio\"\n\n\
             [twilio]\naccount_sid = \"{account}\"\nauth_token = \"{token}\"\n\
             api_base = \"{sim_url}\"\nfrom = \"+15005550006\"\n\n\
             [dialer]\ncalls_per_second = {cps}\nmax_concurrent_calls = 10000\n\
             default_timezone = \"UTC\"\nshutdown_grace = \"15s\"\n",
            cps = args.cps,
        ),
    )?;
    std::fs::write(
        dir.join("place.json"),
        r#"{"name": "place", "message": "hello", "calling_hours_start": "00:00", "calling_hours_end": "24:00", "max_retries": 0}"#,
    )?;
    write_contacts(&dir.join("contacts.csv"), args.contacts)?;
    let status = Command::new(&args.dialer)
        .arg("--config")
        .arg(&config)
        .args(["-q", "campaign", "import"])
        .arg(dir.join("place.json"))
        .arg("--contacts")
        .arg(dir.join("contacts.csv"))
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "campaign import failed: {status}");

    let mut daemon = Guard(
        Command::new(&args.dialer)
            .arg("--config")
            .arg(&config)
            .args(["-q", "run", "daemon"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log"))?)
            .spawn()
            .context("cannot start the daemon")?,
    );
    let pid = daemon.0.id();
    let db = rusqlite::Connection::open_with_flags(
        dir.join("dialer.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let placed = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
            .unwrap_or(0)
    };

    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut rss_at_mark: Option<u64> = None;
    let (mut rss, mut hwm) = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(s) = daemon.0.try_wait()? {
            bail!(
                "the daemon exited early ({s}); see {}",
                dir.join("daemon.log").display()
            );
        }
        (rss, hwm) = memory(pid).unwrap_or((rss, hwm));
        let n = placed(&db);
        if n > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if n >= RSS_MARK && rss_at_mark.is_none() {
            rss_at_mark = Some(rss);
        }
        let ran = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        let enough = ran >= args.seconds && (n >= RSS_MARK.min(args.contacts) || args.cps < 1000.0);
        if n >= args.contacts || enough || started.elapsed().as_secs_f64() >= args.max_seconds {
            break;
        }
    }
    (rss, hwm) = memory(pid).unwrap_or((rss, hwm));
    // CPU spent per call placed so far: a figure a loaded machine changes far less than the rate
    let calls_so_far = placed(&db).max(1) as f64;
    let cpu_per_call = |pid: u32| cpu_seconds(pid).map_or(f64::NAN, |s| s * 1000.0 / calls_so_far);
    let (dialer_ms, sim_ms) = (cpu_per_call(pid), cpu_per_call(sim.0.id()));
    // graceful stop: no new calls, callbacks served until the calls in progress end
    signal(&daemon.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.0.try_wait()?.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(daemon);

    let log: Vec<serde_json::Value> = reqwest::get(format!("{sim_url}/simulator/requests"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    drop(sim);
    let mut creates: Vec<DateTime<Utc>> = log
        .iter()
        .filter(|r| r["status"] == 201)
        .filter_map(|r| r["received_at"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect();
    let refused = log.len() - creates.len();
    creates.sort();
    let (attempts, ended, events): (i64, i64, i64) = db.query_row(
        "SELECT (SELECT count(*) FROM attempts), (SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL),
                (SELECT count(*) FROM call_events)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (rate, span) = rate(&creates);
    let subsec = creates.iter().any(|t| t.timestamp_subsec_nanos() != 0);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "RESULT calls={} refused={refused} span_s={span:.2} rate={rate:.1} slowest_second={} \
         max_1s_window={} subsecond_timestamps={subsec} attempts={attempts} ended={ended} \
         call_events={events} rss_kb={rss} hwm_kb={hwm} rss_at_100k_kb={} \
         dialer_cpu_ms_per_call={dialer_ms:.3} simulator_cpu_ms_per_call={sim_ms:.3}",
        creates.len(),
        slowest_second(&creates),
        max_window(&creates),
        rss_at_mark.map_or("none".to_owned(), |k| k.to_string()),
    )?;
    Ok(())
}

/// `phone` column only: distinct valid New York numbers.
fn write_contacts(path: &Path, n: i64) -> anyhow::Result<()> {
    anyhow::ensure!(n <= 8_000_000, "at most 8,000,000 contacts");
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "phone")?;
    for i in 0..n {
        writeln!(out, "+1212{:03}{:04}", 200 + i / 10_000, i % 10_000)?;
    }
    out.flush()?;
    Ok(())
}

/// User + system CPU time a process has used, in seconds (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the fields after the command name, which is in parentheses and may hold spaces
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is passed
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// VmRSS and VmHWM in kB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Calls per second from the first create to the last, and that span in seconds.
fn rate(creates: &[DateTime<Utc>]) -> (f64, f64) {
    match (creates.first(), creates.last()) {
        (Some(a), Some(b)) if creates.len() > 1 => {
            let span = (*b - *a).as_seconds_f64();
            ((creates.len() - 1) as f64 / span, span)
        }
        _ => (0.0, 0.0),
    }
}

/// The fewest creates in any whole second between the first create's second and the last's
/// (both partial seconds excluded).
fn slowest_second(creates: &[DateTime<Utc>]) -> i64 {
    let (Some(a), Some(b)) = (creates.first(), creates.last()) else {
        return 0;
    };
    let (lo, hi) = (a.timestamp() + 1, b.timestamp() - 1);
    if hi < lo {
        return 0;
    }
    let mut counts = vec![0i64; (hi - lo + 1) as usize];
    for t in creates {
        let s = t.timestamp();
        if (lo..=hi).contains(&s) {
            counts[(s - lo) as usize] += 1;
        }
    }
    counts.into_iter().min().unwrap_or(0)
}

/// The most creates in any window `[t, t + 1 s)` starting at a create (sorted input).
fn max_window(creates: &[DateTime<Utc>]) -> usize {
    let mut best = 0;
    let mut j = 0;
    for i in 0..creates.len() {
        while j < creates.len() && creates[j] - creates[i] < chrono::TimeDelta::seconds(1) {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}
