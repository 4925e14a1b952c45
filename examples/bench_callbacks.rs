//! Benchmark of status callbacks (SPEC §9): 16 keep-alive connections post signed status events to
//! the real callback server (signature checked, each event committed before the answer), beside
//! an axum route answering 204 with no work, in the same run. Prints req/s and p50/p99 latency.
//!
//! `cargo run --release --example bench_callbacks [REQUESTS_PER_CONNECTION]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use dialer::clock::{Clock, SystemClock};
use dialer::config::Secret;
use dialer::server;
use dialer::shared::Shared;
use dialer::store::{Db, NewContact, StoreError};
use dialer::twilio::signature;
use tokio_util::sync::CancellationToken;

const CONNECTIONS: usize = 16;
const TOKEN: &str = "bench-token";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let per_conn: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 2_000,
    };
    let dir = tempfile::tempdir()?;
    let now = SystemClock.now();
    let db = Db::open(&dir.path().join("bench.db"))?;
    let attempts = db.write_blocking(move |tx| {
        let (cid, _) = tx.upsert_campaign("b", r#"{"name": "b", "message": "hi"}"#, false, now)?;
        let contacts: Vec<NewContact> = (0..CONNECTIONS)
            .map(|i| NewContact {
                phone: format!("+1212555{:04}", 100 + i),
                ext_id: None,
                name: None,
                zones: None,
                fields: "{}".into(),
            })
            .collect();
        tx.import_contacts(cid, "b.csv", &contacts, now)?;
        let mut attempts = Vec::new();
        for contact in 1..=CONNECTIONS as i64 {
            let a = tx.claim_attempt(contact, 0, now)?.expect("claimable");
            let sid = format!("CA{:032x}", contact);
            tx.bind_call_sid(a.id, &sid)?;
            attempts.push((a.id, sid));
        }
        Ok::<_, StoreError>(attempts)
    })?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let url = url::Url::parse(&base)?;
    let state = Shared::new(
        db,
        &url,
        Secret::new(TOKEN),
        chrono_tz::UTC,
        Arc::new(SystemClock),
    );
    let stop = CancellationToken::new();
    tokio::spawn(server::serve(listener, state, stop.clone()));

    let empty = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let empty_base = format!("http://{}", empty.local_addr()?);
    let app = Router::new().route("/twilio/status", post(|| async { StatusCode::NO_CONTENT }));
    tokio::spawn(async move { axum::serve(empty, app).await });

    let (rps, p50, p99) = run(&empty_base, &attempts, per_conn).await?;
    println!("axum 204, no work:        {rps:>8.0} req/s  p50 {p50:>8.2?}  p99 {p99:>8.2?}");
    let (rps, p50, p99) = run(&base, &attempts, per_conn).await?;
    println!("dialer /twilio/status:    {rps:>8.0} req/s  p50 {p50:>8.2?}  p99 {p99:>8.2?}");
    stop.cancel();
    Ok(())
}

/// Each connection posts `per_conn` progress events (increasing SequenceNumber) for its attempt.
async fn run(
    base: &str,
    attempts: &[(i64, String)],
    per_conn: usize,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let mut bodies = Vec::new();
    for (id, sid) in attempts {
        let path = format!("/twilio/status?attempt={id}");
        let signed_url = format!("{base}{path}");
        let mut reqs = Vec::with_capacity(per_conn);
        for seq in 0..per_conn {
            let params = vec![
                ("CallSid".to_owned(), sid.clone()),
                ("CallStatus".to_owned(), "ringing".to_owned()),
                ("SequenceNumber".to_owned(), seq.to_string()),
            ];
            let sig = signature::sign(TOKEN, &signed_url, &params);
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            reqs.push((body, sig));
        }
        bodies.push((signed_url, reqs));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (url, reqs) in bodies {
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut lat = Vec::with_capacity(reqs.len());
            for (body, sig) in reqs {
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", sig)
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    res.status() == StatusCode::NO_CONTENT,
                    "status {}",
                    res.status()
                );
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let took = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok((all.len() as f64 / took.as_secs_f64(), pct(0.50), pct(0.99)))
}
