//! Benchmark of `report export csv` (SPEC §9): fills a temp database with N attempts (default
//! 1,000,000, 4 per contact, interleaved like real retries), times the export into a file, and
//! times the same SQL through `sqlite3 -csv` when that binary is installed.
//!
//! `cargo run --release --example bench_export [N]`
//!
//! The last line, `RESULT export_s=… sqlite3_s=… rows=… hwm_kb=…`, is for `bench/run`
//! (`sqlite3_s=none` without the sqlite3 binary).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use dialer::report::write_attempts;
use dialer::store::{AttemptFilter, Db, Store, attempt_export_sql};

const ATTEMPTS_PER_CONTACT: i64 = 4;

fn main() -> anyhow::Result<()> {
    let n: i64 = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let started = Instant::now();
    drop(Db::open(&db)?);
    fill(&rusqlite::Connection::open(&db)?, n)?;
    let store = Store::open_reader(&db)?;
    println!("filled {n} attempts in {:.2?}", started.elapsed());

    let out = dir.path().join("export.csv");
    let started = Instant::now();
    let file = std::fs::File::create(&out)?;
    let rows = write_attempts(&store, &AttemptFilter::default(), file, |_| {})?;
    let ours = started.elapsed();
    println!(
        "dialer export:  {rows} rows, {} bytes in {:.3?}",
        std::fs::metadata(&out)?.len(),
        ours
    );
    drop(store);

    let baseline = sqlite3(&db, &dir.path().join("sqlite3.csv"))?;
    match baseline {
        Some((bytes, took)) => println!(
            "sqlite3 -csv:   {bytes} bytes in {took:.3?}  (ratio {:.2}x)",
            ours.as_secs_f64() / took.as_secs_f64()
        ),
        None => println!("sqlite3 -csv:   not installed, no baseline"),
    }
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM"))?.to_owned();
            line.split_whitespace().nth(1).map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("peak RSS (fill + export): {hwm} kB");
    println!(
        "RESULT export_s={:.3} sqlite3_s={} rows={rows} hwm_kb={hwm}",
        ours.as_secs_f64(),
        baseline.map_or("none".into(), |(_, t)| format!("{:.3}", t.as_secs_f64()))
    );
    Ok(())
}

/// One campaign, n / 4 contacts, n ended attempts with a realistic mix of reasons and NULLs,
/// inserted round by round (every contact's attempt 1, then every attempt 2, ...).
fn fill(conn: &rusqlite::Connection, n: i64) -> anyhow::Result<()> {
    let contacts = (n + ATTEMPTS_PER_CONTACT - 1) / ATTEMPTS_PER_CONTACT;
    conn.execute_batch(
        "BEGIN; INSERT INTO campaigns (name, config, created_at, updated_at) VALUES ('bench', '{}', 0, 0);",
    )?;
    conn.execute(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1)
         INSERT INTO contacts (campaign_id, phone, ext_id, name, created_at, updated_at)
         SELECT 1, printf('+1415%07d', i), 'C-' || i, 'Contact ' || i, 0, 0 FROM s",
        [contacts],
    )?;
    conn.execute(
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?1 - 1)
         INSERT INTO attempts (contact_id, campaign_id, attempt_no, phone, call_sid, status,
             reason, answered_by, outcome, digits, speech, duration_seconds, started_at,
             answered_at, ended_at, error_code, error_message)
         SELECT i % ?2 + 1, 1, i / ?2 + 1, printf('+1415%07d', i % ?2 + 1),
             printf('CA%032x', i),
             CASE i % 5 WHEN 0 THEN 'completed' WHEN 1 THEN 'busy' WHEN 2 THEN 'no-answer'
                 WHEN 3 THEN 'completed' ELSE 'failed' END,
             CASE i % 5 WHEN 0 THEN 'completed' WHEN 1 THEN 'busy' WHEN 2 THEN 'no-answer'
                 WHEN 3 THEN 'machine' ELSE 'failed' END,
             CASE i % 5 WHEN 0 THEN 'human' WHEN 3 THEN 'machine_end_beep' END,
             CASE i % 5 WHEN 0 THEN 'confirmed' END,
             CASE i % 5 WHEN 0 THEN '1' END,
             CASE WHEN i % 10 = 0 THEN 'yes, see you then' END,
             CASE i % 5 WHEN 0 THEN 30 + i % 200 WHEN 3 THEN 25 ELSE 0 END,
             1795446000 + i * 3,
             CASE WHEN i % 5 IN (0, 3) THEN 1795446007 + i * 3 END,
             1795446060 + i * 3,
             CASE i % 5 WHEN 4 THEN 32005 END,
             CASE i % 5 WHEN 4 THEN 'SIP: Temporarily unavailable' END
         FROM s",
        rusqlite::params![n, contacts],
    )?;
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// Runs the export's SQL through `sqlite3 -csv` into `out`; `None` when sqlite3 is missing.
fn sqlite3(db: &Path, out: &Path) -> anyhow::Result<Option<(u64, std::time::Duration)>> {
    let sql = attempt_export_sql();
    let started = Instant::now();
    let result = Command::new("sqlite3")
        .arg("-csv")
        .arg("-header")
        .arg(db)
        .arg(sql)
        .stdout(std::fs::File::create(out)?)
        .status();
    let took = started.elapsed();
    match result {
        Ok(s) if s.success() => Ok(Some((std::fs::metadata(out)?.len(), took))),
        Ok(s) => anyhow::bail!("sqlite3 failed: {s}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
