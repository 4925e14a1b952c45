//! `dialer run daemon` (SPEC §5): one runtime serving the callbacks and running the scheduler
//! loop until `shutdown` is cancelled, then a graceful drain. [`run`] is a library function:
//! signal handling lives in the command, so tests can boot the daemon in-process.

pub mod scheduler;
pub mod status;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::commands::load_campaigns;
use crate::commands::run::bind_server;
use crate::config::Config;
use crate::dialing::{Dialer, Placed, carrier, reconcile_open};
use crate::server::{self, AppState};
use crate::store::Store;

use scheduler::CampaignState;
use status::{Line, Status, mask};

/// Contacts taken per campaign per round (round robin between campaigns).
const ROUND: usize = 16;
/// The longest sleep, whatever the schedule says.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How often CLI changes (pause, resume, imports, DNC) are looked for while idle.
const POLL: Duration = Duration::from_millis(500);
/// How often attempts open for too long (lost callbacks) are reconciled.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// How the daemon runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Draw the live status lines (stderr is a terminal).
    pub progress: bool,
}

/// What a daemon run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls created, by campaign name.
    pub placed: BTreeMap<String, u32>,
    /// Creates refused by the carrier.
    pub refused: u32,
    /// Attempts settled from the carrier's record (at start and while running).
    pub reconciled: usize,
    /// Attempts still open when the daemon stopped (the next start reconciles them).
    pub left_open: u32,
}

/// Runs the callback server and the scheduler until `shutdown` is cancelled; then stops placing,
/// keeps serving callbacks until open calls end or `dialer.shutdown_grace` passes, and returns.
/// The caller holds the process lock (`ProcessLock`) and has imported declared campaigns.
pub async fn run(
    config: &Config,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    options: Options,
) -> Result<Summary> {
    let store = Store::open(&config.database)?;
    let db = Arc::new(Mutex::new(store));
    let carrier = carrier::start(config).await?;
    let (listener, public_url) = bind_server(config).await?;
    let state = AppState::new(
        db,
        &public_url,
        carrier.auth_token.clone(),
        config.dialer.default_timezone,
        clock.clone(),
    );
    let stop_server = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, state.clone(), stop_server.clone()));
    tracing::info!(%public_url, "callback server listening");

    let mut summary = Summary {
        reconciled: reconcile_open(&state, &carrier.client).await,
        ..Summary::default()
    };
    if summary.reconciled > 0 {
        tracing::info!(
            count = summary.reconciled,
            "reconciled attempts left open by an earlier run"
        );
    }
    let dialer = Arc::new(Dialer::new(
        state.clone(),
        carrier.client.clone(),
        config.twilio.from.clone(),
        config.dialer.calls_per_second,
        config.dialer.max_concurrent_calls,
    ));
    let mut sched = Scheduler {
        config,
        state: state.clone(),
        clock,
        campaigns: Vec::new(),
        data_version: None,
        pending: HashSet::new(),
        tasks: JoinSet::new(),
        status: Status::new(options.progress),
        last_status: None,
        last_reconcile: Instant::now(),
        summary: &mut summary,
    };
    let looped = sched.run_loop(&dialer, &shutdown).await;
    sched.drain().await;
    sched.status.clear();
    drop(sched);

    let grace = Instant::now() + config.dialer.shutdown_grace;
    let open = loop {
        let open = count_open(&state).await;
        if open == 0 || Instant::now() >= grace {
            break open;
        }
        if open > 0 {
            tracing::info!(open, "waiting for calls in progress to end");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), state.call_ended.notified()).await;
    };
    summary.left_open = open;
    stop_server.cancel();
    let _ = server.await;
    if let Some(sim) = carrier.simulator {
        let _ = sim.shutdown().await;
    }
    looped?;
    Ok(summary)
}

async fn count_open(state: &AppState) -> u32 {
    let s = state.clone();
    tokio::task::spawn_blocking(move || s.db().count_open_attempts(None).unwrap_or(0))
        .await
        .unwrap_or(0)
}

type Done = (i64, i64, String, Placed);

struct Scheduler<'a> {
    config: &'a Config,
    state: AppState,
    clock: Arc<dyn Clock>,
    campaigns: Vec<CampaignState>,
    data_version: Option<i64>,
    /// Contacts whose placement task has not finished.
    pending: HashSet<i64>,
    tasks: JoinSet<Done>,
    status: Status,
    last_status: Option<Instant>,
    last_reconcile: Instant,
    summary: &'a mut Summary,
}

impl Scheduler<'_> {
    async fn run_loop(&mut self, dialer: &Arc<Dialer>, shutdown: &CancellationToken) -> Result<()> {
        'outer: while !shutdown.is_cancelled() {
            let ended = self.state.call_ended.clone();
            let notified = ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            self.refresh()?;
            self.reconcile_stale(dialer).await;
            self.collect_finished();
            self.show_status(false)?;

            let now = self.clock.now();
            let work = self.pick(now)?;
            if work.is_empty() {
                let wake = self.wake_at(now)?;
                let sleep = wake
                    .and_then(|w| (w - now).to_std().ok())
                    .unwrap_or(MAX_SLEEP)
                    .clamp(Duration::from_millis(5), MAX_SLEEP);
                let deadline = tokio::time::Instant::now() + sleep;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'outer,
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = &mut notified => break,
                        Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                            self.finished(done);
                            break;
                        }
                        _ = tokio::time::sleep(POLL) => {
                            if self.changed()? {
                                break;
                            }
                            self.show_status(false)?;
                        }
                    }
                }
                continue;
            }

            for (campaign_id, row) in work {
                let Some(campaign) = self
                    .campaign(campaign_id)
                    .map(|c| c.loaded.campaign.clone())
                else {
                    continue;
                };
                tokio::select! {
                    _ = dialer.ready(campaign_id, &campaign) => {}
                    _ = shutdown.cancelled() => break 'outer,
                }
                // a CLI change (pause, DNC) or a callback may have moved the contact meanwhile
                self.refresh()?;
                let now = self.clock.now();
                let fresh =
                    {
                        let db = self.state.db();
                        match (self.campaign(campaign_id), db.contact(row.id)?) {
                            (Some(c), Some(r)) => {
                                scheduler::is_due(&db, self.config, &c.loaded, &r, now)?
                                    .then_some((r, c.loaded.campaign.clone(), c.name().to_owned()))
                            }
                            _ => None,
                        }
                    };
                let Some((row, campaign, name)) = fresh else {
                    continue;
                };
                self.pending.insert(row.id);
                let d = dialer.clone();
                self.tasks.spawn(async move {
                    let placed = d.place(&campaign, &row).await;
                    if let Placed::Created { attempt } = placed {
                        tracing::info!(campaign = %name, attempt, to = %mask(&row.phone), "call placed");
                    }
                    (campaign_id, row.id, name, placed)
                });
                self.collect_finished();
                self.show_status(false)?;
            }
        }
        Ok(())
    }

    /// Waits for the placements under way (each stores its SID or settles its attempt).
    async fn drain(&mut self) {
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done);
        }
        let _ = self.show_status(true);
    }

    fn collect_finished(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            self.finished(done);
        }
    }

    fn finished(&mut self, done: Result<Done, tokio::task::JoinError>) {
        let Ok((_, contact, name, placed)) = done else {
            tracing::error!("a placement task failed");
            return;
        };
        self.pending.remove(&contact);
        match placed {
            Placed::Created { .. } | Placed::Interrupted { .. } => {
                *self.summary.placed.entry(name).or_default() += 1;
            }
            Placed::Refused { .. } => self.summary.refused += 1,
            Placed::RateLimited | Placed::Skipped => {}
        }
    }

    fn campaign(&self, id: i64) -> Option<&CampaignState> {
        self.campaigns.iter().find(|c| c.id() == id)
    }

    /// Up to [`ROUND`] contacts of every campaign, interleaved.
    fn pick(&mut self, now: DateTime<Utc>) -> Result<Vec<(i64, crate::store::ContactRow)>> {
        let db = self.state.db();
        let mut lists = Vec::new();
        for c in &mut self.campaigns {
            let rows = c.pick(&db, self.config, now, &self.pending, ROUND)?;
            lists.push((c.id(), rows.into_iter()));
        }
        let mut out = Vec::new();
        loop {
            let before = out.len();
            for (id, rows) in &mut lists {
                if let Some(r) = rows.next() {
                    out.push((*id, r));
                }
            }
            if out.len() == before {
                return Ok(out);
            }
        }
    }

    fn wake_at(&mut self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let db = self.state.db();
        let mut wake: Option<DateTime<Utc>> = None;
        for c in &mut self.campaigns {
            if let Some(t) = c.wake_at(&db, now)? {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        Ok(wake)
    }

    /// Whether another process changed the database since the last look.
    fn changed(&mut self) -> Result<bool> {
        let v: i64 = self
            .state
            .db()
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(self.data_version != Some(v))
    }

    /// Reloads the campaigns when another process changed the database (or on first use).
    fn refresh(&mut self) -> Result<()> {
        if !self.changed()? {
            return Ok(());
        }
        let now = self.clock.now();
        let db = self.state.db();
        let v: i64 = db
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let loaded = load_campaigns(self.config, &db, None)?;
        drop(db);
        self.state.forget_campaigns();
        let mut old: Vec<CampaignState> = std::mem::take(&mut self.campaigns);
        for l in loaded {
            let mut c = CampaignState::new(l, now);
            if let Some(i) = old.iter().position(|o| o.id() == c.id()) {
                c.carry_over(old.swap_remove(i));
            }
            self.campaigns.push(c);
        }
        if self.data_version.is_some() {
            tracing::debug!("database changed by another process; campaigns reloaded");
        }
        self.data_version = Some(v);
        Ok(())
    }

    /// Reconciles attempts open longer than ring timeout + max duration + 60 s (lost callbacks).
    async fn reconcile_stale(&mut self, dialer: &Dialer) {
        if self.last_reconcile.elapsed() < RECONCILE_EVERY {
            return;
        }
        self.last_reconcile = Instant::now();
        let now = self.clock.now();
        let stale: Vec<_> = {
            let db = self.state.db();
            let Ok(open) = db.open_attempts() else { return };
            open.into_iter()
                .filter_map(|a| {
                    let c = self.state.campaign(&db, a.campaign_id).ok()?;
                    let limit = i64::from(c.ring_timeout) + i64::from(c.max_call_duration) + 60;
                    ((now - a.started_at).num_seconds() > limit).then(|| (a, c.rules.clone()))
                })
                .collect()
        };
        for (a, rules) in stale {
            if crate::dialing::reconcile_one(&self.state, &dialer.client, a, &rules).await {
                self.summary.reconciled += 1;
            }
        }
    }

    /// Redraws the status lines (at most once a second unless `force`).
    fn show_status(&mut self, force: bool) -> Result<()> {
        if !self.status.enabled() {
            return Ok(());
        }
        if !force
            && self
                .last_status
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.last_status = Some(Instant::now());
        let now = self.clock.now();
        let db = self.state.db();
        let mut lines = Vec::new();
        for c in &mut self.campaigns {
            let stats = db.campaign_stats(c.id())?;
            let next = if c.loaded.campaign.schedule.is_some() {
                c.next_fire.map(|t| ("next wave", t))
            } else {
                c.wake_at(&db, now)?.map(|t| ("next", t))
            };
            let line = Line {
                placed: self.summary.placed.get(c.name()).copied().unwrap_or(0),
                in_flight: stats.in_flight,
                completed: stats.completed,
                open: stats.open,
                paused: c.loaded.row.paused,
                next,
            };
            lines.push((c.id(), c.name().to_owned(), line));
        }
        drop(db);
        for (id, name, line) in lines {
            self.status.show(id, &name, &line);
        }
        Ok(())
    }
}

impl Summary {
    /// The lines printed when the daemon stops.
    pub fn lines(&self) -> Vec<String> {
        let total: u32 = self.placed.values().sum();
        let per: Vec<String> = self
            .placed
            .iter()
            .map(|(n, c)| format!("{n}: {c}"))
            .collect();
        let mut out = vec![format!(
            "placed {total} call(s){}",
            if per.is_empty() {
                String::new()
            } else {
                format!(" ({})", per.join(", "))
            }
        )];
        if self.refused > 0 {
            out.push(format!("{} call(s) refused by the carrier", self.refused));
        }
        if self.reconciled > 0 {
            out.push(format!("reconciled {} attempt(s)", self.reconciled));
        }
        if self.left_open > 0 {
            out.push(format!(
                "{} call(s) still in progress after shutdown_grace; the next start reconciles them",
                self.left_open
            ));
        }
        out
    }
}
