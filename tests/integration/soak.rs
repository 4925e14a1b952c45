//! Soak (SPEC §10 "long ones documented"): `dialer run daemon` runs as a child process for
//! `DIALER_SOAK_SECS` (default 1800) at a steady `calls_per_second` against a `dialer
//! simulator` process (so the daemon's /proc figures are its own, without the simulator's
//! request log) with faults on (dropped, duplicated and reordered callbacks, some 429 and 500
//! answers), while the test samples every few seconds the daemon's resident memory
//! (`/proc/PID/status` VmRSS), its open file descriptors (`/proc/PID/fd`) and the size of the
//! SQLite WAL file. It prints the samples and asserts they stay flat after a warm-up: no leak of
//! memory, sockets or files, and the WAL is checkpointed rather than growing without bound.
//!
//! `DIALER_SOAK_SECS=240 cargo test --test integration soak -- --ignored --nocapture`

use std::fs::File;
use std::time::{Duration, Instant};

use crate::disk::Simulator;
use crate::harness::Test as Dir;

/// Calls placed per second, steady.
const RATE: f64 = 4.0;
/// How often a sample is taken.
const EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kb: u64,
    fds: usize,
    wal_bytes: u64,
}

fn sample(pid: u32, dir: &Dir, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let wal_bytes = std::fs::metadata(dir.join("dialer.db-wal")).map_or(0, |m| m.len());
    Some(Sample {
        at,
        rss_kb,
        fds,
        wal_bytes,
    })
}

/// `end` stays within `start` × 1.5 + `slack` (after the warm-up).
fn flat(what: &str, start: u64, end: u64, slack: u64) {
    assert!(
        end <= start + start / 2 + slack,
        "{what} grew from {start} to {end} over the soak"
    );
}

#[test]
#[ignore = "long: DIALER_SOAK_SECS=240 cargo test --test integration soak -- --ignored --nocapture"]
fn the_daemon_stays_flat_in_memory_fds_and_wal_over_a_long_run_with_faults() {
    let secs: u64 = std::env::var("DIALER_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("DIALER_SOAK_SECS is a number of seconds"))
        .unwrap_or(1800);
    let duration = Duration::from_secs(secs);
    let warm_up = Duration::from_secs((secs / 10).clamp(10, 120));
    let dir = Dir::without_config();
    let sim = Simulator::start(
        &dir,
        "seed = 41\ntime_scale = 0.01\n\n\
         [[simulator.rules]]\npattern = \"+121250*\"\nbehavior = \"human\"\n\n\
         [[simulator.rules]]\npattern = \"+121251*\"\nbehavior = \"busy\"\n\n\
         [simulator.faults]\nrate_429 = 0.03\nrate_500 = 0.02\nrate_500_created = 0.01\n\
         drop_callback_rate = 0.05\nduplicate_callback_rate = 0.1\n\
         reorder_callback_rate = 0.1\n",
    );
    // more contacts than the run can dial, so it dials the whole time
    let contacts = (secs as f64 * RATE * 1.2) as usize + 100;
    let mut csv = String::from("phone,name\n");
    for i in 0..contacts {
        csv.push_str(&format!("+1212{:07},Contact {i}\n", 5_000_000 + i));
    }
    dir.write("c.csv", csv);
    dir.write(
        "c.json",
        r#"{"name": "soak", "message": "hello", "calling_hours_start": "00:00",
            "calling_hours_end": "24:00", "max_retries": 1, "retry_delays": {"default": "5s"}}"#,
    );
    dir.write(
        "dialer.toml",
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n\
             [dialer]\ncalls_per_second = {RATE:.1}\nmax_concurrent_calls = 50\n\
             shutdown_grace = \"10s\"\n\n\
             [[campaign]]\nfile = \"c.json\"\ncontacts = \"c.csv\"\n\n\
             [carrier]\nkind = \"twilio\"\n\n[twilio]\napi_base = \"{}\"\n\
             account_sid = \"AC00000000000000000000000000000000\"\n\
             auth_token = \"simulator-auth-token\"\n",
            sim.base
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
        .current_dir(dir.path())
        .args(["-v", "run", "daemon"])
        .env_remove("DIALER_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(File::create(dir.join("daemon.stdout")).expect("stdout file"))
        .stderr(File::create(dir.join("daemon.stderr")).expect("stderr file"))
        .spawn()
        .expect("spawn dialer run daemon");
    let pid = child.id();
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let log = |dir: &Dir| std::fs::read_to_string(dir.join("daemon.stderr")).unwrap_or_default();
    while started.elapsed() < duration {
        std::thread::sleep(EVERY);
        if let Some(status) = child.try_wait().expect("poll daemon") {
            panic!("daemon exited during the soak ({status}):\n{}", log(&dir));
        }
        if let Some(s) = sample(pid, &dir, started.elapsed()) {
            samples.push(s);
        }
    }
    let placed_log = log(&dir).matches("call placed").count();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("wait for the daemon");
    let stdout = std::fs::read_to_string(dir.join("daemon.stdout")).unwrap_or_default();

    let after: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at >= warm_up)
        .collect();
    assert!(after.len() >= 2, "too few samples after the warm-up");
    let (start, end) = (after[0], *after.last().unwrap());
    let max = |f: fn(&Sample) -> u64| after.iter().map(f).max().unwrap_or(0);
    let (max_rss, max_fds, max_wal) = (
        max(|s| s.rss_kb),
        max(|s| s.fds as u64),
        max(|s| s.wal_bytes),
    );
    eprintln!("soak: {secs} s, warm-up {warm_up:?}, {placed_log} calls placed");
    eprintln!("   at_s   rss_kb  fds  wal_bytes");
    for s in &samples {
        eprintln!(
            "{:7.0} {:8} {:4} {:10}",
            s.at.as_secs_f64(),
            s.rss_kb,
            s.fds,
            s.wal_bytes
        );
    }
    eprintln!(
        "after warm-up: rss_kb start {} end {} max {max_rss}; fds start {} end {} max {max_fds}; \
         wal_bytes start {} end {} max {max_wal}",
        start.rss_kb, end.rss_kb, start.fds, end.fds, start.wal_bytes, end.wal_bytes
    );
    eprintln!("daemon stdout:\n{stdout}");

    assert_eq!(status.code(), Some(0), "{stdout}\n{}", log(&dir));
    // it dialed the whole time, near its steady rate
    assert!(
        placed_log as f64 >= secs as f64 * RATE * 0.5,
        "only {placed_log} calls placed in {secs} s"
    );
    flat("VmRSS (kB)", start.rss_kb, end.rss_kb, 16 * 1024);
    flat("open fds", start.fds as u64, end.fds as u64, 16);
    flat("WAL (bytes)", start.wal_bytes, end.wal_bytes, 8 << 20);
    assert!(max_wal <= 64 << 20, "the WAL reached {max_wal} bytes");
}
