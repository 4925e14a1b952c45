//! `dialer run batch` (for cron) and `dialer run daemon`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::SecondsFormat;
use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::OptionalExtension;
use tokio_util::sync::CancellationToken;

use super::{Context, Loaded, load_campaigns};
use crate::cli::RunCommand;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::decision::{contact_zones, evaluate};
use crate::dialing::{Dialer, Placed, carrier, reconcile_open};
use crate::schedule::PlanReason;
use crate::server::{self, AppState};
use crate::store::{ProcessLock, Store};

/// A contact placed back in the queue this many times (429/503 after the client's own retries)
/// is left for the next run.
const MAX_REQUEUES: u32 = 8;

pub fn run(ctx: &Context, cmd: RunCommand) -> Result<()> {
    match cmd {
        RunCommand::Daemon => daemon(ctx),
        RunCommand::Batch {
            campaign,
            limit,
            wait,
        } => {
            let config = ctx.config()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(batch(ctx, &config, campaign.as_deref(), limit, wait))
        }
    }
}

/// `run daemon`: lock, import the declared campaigns, then the daemon until SIGINT/SIGTERM.
fn daemon(ctx: &Context) -> Result<()> {
    let config = ctx.config()?;
    let _lock = ProcessLock::acquire(&config.database)?;
    import_declared(ctx, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
        let options = crate::daemon::Options {
            progress: ctx.progress(),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let summary = crate::daemon::run(&config, clock, shutdown, options).await;
        signals.abort();
        summary
    })?;
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(())
}

/// Waits for the next SIGINT or SIGTERM.
pub(crate) async fn next_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}

/// Waits for SIGINT or SIGTERM, then cancels `token`; a second signal exits at once.
async fn cancel_on_signal(token: CancellationToken) -> Result<()> {
    next_signal().await?;
    tracing::info!("stopping: no new calls; serving callbacks until calls in progress end");
    eprintln!("stopping: no new calls; waiting for calls in progress (signal again to exit now)");
    token.cancel();
    // a second signal: exit now; the next start reconciles the calls still open
    next_signal().await?;
    eprintln!("exiting now; calls still open are reconciled on the next start");
    std::process::exit(1);
}

/// Imports (or updates) the `[[campaign]]` entries of dialer.toml.
pub fn import_declared(ctx: &Context, config: &Config) -> Result<()> {
    for entry in &config.campaigns {
        super::campaign::import(
            ctx,
            config,
            &entry.file,
            entry.contacts.as_deref(),
            true,
            true,
        )?;
    }
    Ok(())
}

/// Binds the callback server. With port 0 (tests), `public_url` becomes the bound address.
pub(crate) async fn bind_server(config: &Config) -> Result<(tokio::net::TcpListener, url::Url)> {
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another program using it? change `server.listen` in {})",
                config.server.listen,
                config.path.display()
            )
        })?;
    let mut public = config.server.public_url.clone();
    if config.server.listen.port() == 0 {
        let addr = listener.local_addr()?;
        public = url::Url::parse(&format!("http://{addr}"))?;
    }
    Ok((listener, public))
}

async fn batch(
    ctx: &Context,
    config: &Config,
    only: Option<&str>,
    limit: Option<u32>,
    wait: Duration,
) -> Result<()> {
    let _lock = ProcessLock::acquire(&config.database)?;
    import_declared(ctx, config)?;
    let store = Store::open(&config.database)?;
    let loaded = load_campaigns(config, &store, only)?;
    let db = Arc::new(Mutex::new(store));

    let carrier = carrier::start(config).await?;
    let (listener, public_url) = bind_server(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = AppState::new(
        db.clone(),
        &public_url,
        carrier.auth_token.clone(),
        config.dialer.default_timezone,
        clock.clone(),
    );
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, state.clone(), shutdown.clone()));
    tracing::info!(%public_url, "callback server listening");

    let reconciled = reconcile_open(&state, &carrier.client).await;
    if reconciled > 0 {
        println!("reconciled {reconciled} attempt(s) left open by an earlier run");
    }

    let dialer = Dialer::new(
        state.clone(),
        carrier.client.clone(),
        config.twilio.from.clone(),
        config.dialer.calls_per_second,
        config.dialer.max_concurrent_calls,
    );
    let now = clock.now();
    let mut queue = VecDeque::new();
    let mut idle: BTreeMap<String, String> = BTreeMap::new();
    {
        let db = state.db();
        for (i, l) in loaded.iter().enumerate() {
            let due = due_now(&db, config, l, now, limit.unwrap_or(u32::MAX))?;
            if due.is_empty() {
                idle.insert(l.row.name.clone(), explain_idle(&db, config, l, now)?);
            }
            queue.extend(due.into_iter().map(|c| (i, c, 0u32)));
        }
    }
    if let Some(n) = limit {
        queue.truncate(n as usize);
    }
    let total = queue.len();
    let bar = ctx.progress().then(|| {
        let b = ProgressBar::new(total as u64);
        if let Ok(s) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}") {
            b.set_style(s.progress_chars("=> "));
        }
        b.set_message("placing calls");
        b
    });

    let mut tally = Tally::default();
    let mut tasks = tokio::task::JoinSet::new();
    let dialer = Arc::new(dialer);
    let campaigns: Arc<Vec<Loaded>> = Arc::new(loaded);
    while let Some((i, contact, tries)) = queue.pop_front() {
        let l = &campaigns[i];
        dialer.ready(l.row.id, &l.campaign).await;
        // still due now that we are ready? (a callback or the clock may have moved it)
        let fresh = {
            let db = state.db();
            match db.contact(contact.id)? {
                Some(row) => {
                    let zones = contact_zones(&row, &l.campaign);
                    let d = evaluate(
                        &db,
                        &l.campaign,
                        l.row.paused,
                        config.dialer.max_calls_per_number_per_day,
                        &row,
                        &zones,
                        clock.now(),
                    )?;
                    d.is_due().then_some(row)
                }
                None => None,
            }
        };
        let Some(row) = fresh else { continue };
        let (d, c) = (dialer.clone(), campaigns.clone());
        tasks.spawn(async move { (i, row.clone(), tries, d.place(&c[i].campaign, &row).await) });
        // collect finished placements without blocking the pacing
        while let Some(done) = tasks.try_join_next() {
            tally.record(done?, &campaigns, &mut queue);
        }
        if let Some(b) = &bar {
            b.set_position(tally.attempts.len() as u64);
        }
        if queue.is_empty() {
            while let Some(done) = tasks.join_next().await {
                tally.record(done?, &campaigns, &mut queue);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        tally.record(done?, &campaigns, &mut queue);
    }

    // wait for the calls to end
    if let Some(b) = &bar {
        b.set_message("waiting for calls to end");
        b.set_position(0);
        b.set_length(tally.attempts.len() as u64);
    }
    let deadline = Instant::now() + wait;
    let ids: Arc<HashSet<i64>> = Arc::new(tally.attempts.iter().copied().collect());
    loop {
        let open = count_open(&state, &ids).await;
        if let Some(b) = &bar {
            b.set_position((ids.len() - open) as u64);
        }
        if open == 0 || Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), state.call_ended.notified()).await;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    shutdown.cancel();
    let _ = server.await;
    if let Some(sim) = carrier.simulator {
        let _ = sim.shutdown().await;
    }

    // summary
    let store = state.db();
    let (reasons, still_open) = summarize(&store, &tally.attempts)?;
    let placed_total: u32 = tally.by_campaign.values().sum();
    let per: Vec<String> = tally
        .by_campaign
        .iter()
        .map(|(n, c)| format!("{n}: {c}"))
        .collect();
    println!(
        "placed {placed_total} call(s){}",
        if per.is_empty() {
            String::new()
        } else {
            format!(" ({})", per.join(", "))
        }
    );
    if !reasons.is_empty() {
        let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        println!("ended: {}", parts.join(", "));
    }
    if still_open > 0 {
        println!(
            "{still_open} call(s) still in progress after --wait {}; the next run reconciles them",
            humantime::format_duration(wait)
        );
    }
    if tally.refused > 0 {
        println!(
            "{} call(s) refused by the carrier (see `dialer report export csv` for the error codes)",
            tally.refused
        );
    }
    if tally.rate_limited > 0 {
        println!(
            "{} contact(s) not placed: the carrier kept answering 429/503; they stay due for the next run",
            tally.rate_limited
        );
    }
    if tally.interrupted > 0 {
        println!(
            "{} create request(s) got no answer and were reconciled",
            tally.interrupted
        );
    }
    for (name, why) in idle {
        println!("{name}: nothing due now — {why}");
    }
    Ok(())
}

/// What the placements of one batch came to.
#[derive(Debug, Default)]
struct Tally {
    /// Every attempt that exists because of this run (created, refused or reconciled).
    attempts: Vec<i64>,
    by_campaign: BTreeMap<String, u32>,
    refused: u32,
    rate_limited: u32,
    interrupted: u32,
}

impl Tally {
    /// Counts one finished placement; a rate-limited contact goes back in the queue a few times.
    fn record(
        &mut self,
        (i, row, tries, placed): (usize, crate::store::ContactRow, u32, Placed),
        campaigns: &[Loaded],
        queue: &mut VecDeque<(usize, crate::store::ContactRow, u32)>,
    ) {
        match placed {
            Placed::Created { attempt } => {
                self.attempts.push(attempt);
                *self
                    .by_campaign
                    .entry(campaigns[i].row.name.clone())
                    .or_default() += 1;
            }
            Placed::RateLimited if tries < MAX_REQUEUES => queue.push_back((i, row, tries + 1)),
            Placed::RateLimited => self.rate_limited += 1,
            Placed::Refused { attempt, .. } => {
                self.attempts.push(attempt);
                self.refused += 1;
            }
            Placed::Interrupted { attempt } => {
                self.attempts.push(attempt);
                self.interrupted += 1;
            }
            Placed::Skipped => {}
        }
    }
}

async fn count_open(state: &AppState, ids: &Arc<HashSet<i64>>) -> usize {
    let s = state.clone();
    let ids = ids.clone();
    tokio::task::spawn_blocking(move || {
        let db = s.db();
        db.open_attempts()
            .map(|open| open.iter().filter(|a| ids.contains(&a.id)).count())
            .unwrap_or(0)
    })
    .await
    .unwrap_or(0)
}

/// The campaign's contacts due at `now`, from the indexed query, each confirmed by `decide`.
fn due_now(
    db: &Store,
    config: &Config,
    l: &Loaded,
    now: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<Vec<crate::store::ContactRow>> {
    if l.row.paused || l.campaign.is_draft() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for row in db.due_contacts(l.row.id, now, limit.saturating_mul(4).max(limit))? {
        let zones = contact_zones(&row, &l.campaign);
        if evaluate(
            db,
            &l.campaign,
            l.row.paused,
            config.dialer.max_calls_per_number_per_day,
            &row,
            &zones,
            now,
        )?
        .is_due()
        {
            out.push(row);
            if out.len() as u32 >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Why a campaign dials nothing now: its reasons, counted, and the earliest next instant.
fn explain_idle(
    db: &Store,
    config: &Config,
    l: &Loaded,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String> {
    let mut counts: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut next: Option<chrono::DateTime<chrono::Utc>> = None;
    db.for_each_contact(l.row.id, |row| {
        let zones = contact_zones(&row, &l.campaign);
        let d = evaluate(
            db,
            &l.campaign,
            l.row.paused,
            config.dialer.max_calls_per_number_per_day,
            &row,
            &zones,
            now,
        )?;
        *counts.entry(d.reason.as_str()).or_default() += 1;
        if d.reason != PlanReason::Due
            && let Some(t) = d.next_eligible_at
        {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        Ok::<_, anyhow::Error>(())
    })?;
    if counts.is_empty() {
        return Ok("it has no contacts (import some with `dialer contacts import`)".into());
    }
    let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let when = next
        .map(|t| {
            format!(
                "; next contact eligible at {}",
                t.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "{}{when} (see `dialer plan --campaign \"{}\"`)",
        parts.join(", "),
        l.row.name
    ))
}

/// Reason counts of the given attempts, and how many are still open.
fn summarize(store: &Store, ids: &[i64]) -> Result<(BTreeMap<String, u32>, u32)> {
    let mut reasons = BTreeMap::new();
    let mut open = 0;
    let mut stmt = store
        .conn()
        .prepare_cached("SELECT ended_at IS NULL, reason FROM attempts WHERE id = ?1")?;
    for id in ids {
        let row: Option<(bool, Option<String>)> = stmt
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((true, _)) => open += 1,
            Some((false, reason)) => {
                *reasons
                    .entry(reason.unwrap_or_else(|| "unknown".into()))
                    .or_default() += 1;
            }
            None => {}
        }
    }
    Ok((reasons, open))
}
