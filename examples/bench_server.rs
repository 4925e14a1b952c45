//! Server side of the status-callback benchmark (SPEC §9), for a load generator in another
//! process (`wrk`, driven by `bench/run`): prepares a database with K open attempts bound to call
//! SIDs, serves the real callback server (signature checked, each event committed before the
//! answer) on 127.0.0.1:0 and, on a second port, an axum route answering 204 with no work.
//!
//! Signatures depend on the URL and the body, so it pre-signs a pool of distinct status events
//! (attempt × increasing `SequenceNumber`, progress statuses so attempts stay open), split into
//! one file per wrk thread (`DIR/pool.T`, lines `path TAB signature TAB body`), and writes the
//! static `DIR/callbacks.lua` that replays them in order. Each thread owns its own attempts and
//! walks them sequence by sequence, so every request is a new event for its attempt.
//!
//! ```text
//! cargo run --release --example bench_server -- DIR [ATTEMPTS] [POOL] [THREADS]
//! ```
//!
//! Prints `dialer_url=…`, `baseline_url=…`, `pool=…` and `ready`, then serves until SIGINT or
//! SIGTERM, and prints `RESULT callback_events=N` (call events committed) on the way out.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use dialer::clock::{Clock, SystemClock};
use dialer::config::Secret;
use dialer::server;
use dialer::shared::Shared;
use dialer::store::{Db, NewContact, StoreError};
use dialer::twilio::signature;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-token";
const ACCOUNT: &str = "AC00000000000000000000000000000000";

struct Args {
    dir: PathBuf,
    attempts: usize,
    pool: usize,
    threads: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: bench_server DIR [ATTEMPTS] [POOL] [THREADS]";
    let dir = PathBuf::from(it.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let mut num = |default: usize| -> anyhow::Result<usize> {
        match it.next() {
            Some(a) => Ok(a.replace('_', "").parse()?),
            None => Ok(default),
        }
    };
    let attempts = num(1_000)?.max(1);
    let pool = num(300_000)?.max(attempts);
    let threads = num(2)?.clamp(1, attempts);
    Ok(Args {
        dir,
        attempts,
        pool,
        threads,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    std::fs::create_dir_all(&args.dir)?;
    let db_path = args.dir.join("callbacks.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let attempts = prepare(&db_path, args.attempts)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let empty = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let empty_base = format!("http://{}", empty.local_addr()?);
    write_pool(&args, &base, &attempts)?;
    write_script(&args.dir)?;

    let state = Shared::new(
        Db::open(&db_path)?,
        &url::Url::parse(&base)?,
        Secret::new(TOKEN),
        chrono_tz::UTC,
        Arc::new(SystemClock),
    );
    let stop = CancellationToken::new();
    let served = tokio::spawn(server::serve(listener, state, stop.clone()));
    let app = Router::new().route("/twilio/status", post(|| async { StatusCode::NO_CONTENT }));
    let until = stop.clone().cancelled_owned();
    let baseline =
        tokio::spawn(async move { axum::serve(empty, app).with_graceful_shutdown(until).await });

    println!("dialer_url={base}");
    println!("baseline_url={empty_base}");
    println!("pool={}", args.pool);
    println!("ready");
    std::io::stdout().flush()?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    stop.cancel();
    served.await??;
    baseline.await??;
    let raw = rusqlite::Connection::open(&db_path)?;
    let events: i64 = raw.query_row("SELECT count(*) FROM call_events", [], |r| r.get(0))?;
    println!("RESULT callback_events={events}");
    Ok(())
}

/// One campaign, `k` contacts, one open attempt each with its call SID bound.
fn prepare(path: &Path, k: usize) -> anyhow::Result<Vec<(i64, String)>> {
    let db = Db::open(path)?;
    let now = SystemClock.now();
    let attempts = db.write_blocking(move |tx| {
        let (cid, _) = tx.upsert_campaign("b", r#"{"name": "b", "message": "hi"}"#, false, now)?;
        let contacts: Vec<NewContact> = (0..k)
            .map(|i| NewContact {
                phone: format!("+1{}", 2_000_000_000 + i),
                ext_id: None,
                name: None,
                zones: None,
                fields: "{}".into(),
            })
            .collect();
        tx.import_contacts(cid, "b.csv", &contacts, now)?;
        let mut attempts = Vec::with_capacity(k);
        for contact in 1..=k as i64 {
            let a = tx.claim_attempt(contact, 0, now)?.expect("claimable");
            let sid = format!("CA{contact:032x}");
            tx.bind_call_sid(a.id, &sid)?;
            attempts.push((a.id, sid));
        }
        Ok::<_, StoreError>(attempts)
    })?;
    Ok(attempts)
}

/// `DIR/pool.T` for each thread T: its attempts (index % threads == T), sequence by sequence.
fn write_pool(args: &Args, base: &str, attempts: &[(i64, String)]) -> anyhow::Result<()> {
    let rounds = args.pool.div_ceil(attempts.len());
    for t in 0..args.threads {
        let file = std::fs::File::create(args.dir.join(format!("pool.{t}")))?;
        let mut out = BufWriter::new(file);
        let mine: Vec<&(i64, String)> = attempts.iter().skip(t).step_by(args.threads).collect();
        for seq in 1..=rounds {
            let status = if seq == 1 { "ringing" } else { "in-progress" };
            for (id, sid) in &mine {
                let path = format!("/twilio/status?attempt={id}");
                let params: Vec<(String, String)> = [
                    ("AccountSid", ACCOUNT),
                    ("ApiVersion", "2010-04-01"),
                    ("CallSid", sid.as_str()),
                    ("CallStatus", status),
                    ("CallbackSource", "call-progress-events"),
                    ("Direction", "outbound-api"),
                    ("From", "+15005550006"),
                    ("SequenceNumber", &seq.to_string()),
                    ("To", &format!("+1{}", 2_000_000_000 + id)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
                let sig = signature::sign(TOKEN, &format!("{base}{path}"), &params);
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&params)
                    .finish();
                writeln!(out, "{path}\t{sig}\t{body}")?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// The static wrk script: thread T replays `pool.T` in order.
fn write_script(dir: &Path) -> anyhow::Result<()> {
    let pool = dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let script = format!(
        r#"-- written by examples/bench_server.rs: replays pre-signed status callbacks
local pool_dir = "{pool}"
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  paths, sigs, bodies = {{}}, {{}}, {{}}
  local f = io.open(pool_dir .. "/pool." .. id, "r")
  if not f then f = io.open(pool_dir .. "/pool.0", "r") end
  for line in f:lines() do
    local p, s, b = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    paths[#paths + 1] = p
    sigs[#sigs + 1] = s
    bodies[#bodies + 1] = b
  end
  f:close()
  n, i = #paths, 0
end

function request()
  i = i % n + 1
  return wrk.format("POST", paths[i], {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = sigs[i],
  }}, bodies[i])
end
"#
    );
    std::fs::write(dir.join("callbacks.lua"), script)?;
    Ok(())
}
