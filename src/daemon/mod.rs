//! `dialer run daemon` (SPEC §5): the engine's [`Session`] serving callbacks, and the scheduler
//! loop offering due contacts until `shutdown` is cancelled, then a graceful drain. [`run`] is a
//! library function: signal handling lives in the command, so tests boot the daemon in-process.

pub mod scheduler;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::dialing::Placed;
use crate::engine::{Offer, Placement, RECONCILE_EVERY, STALE_GRACE, Session, interleave};
use crate::store::{ContactRow, StoreError};

use scheduler::CampaignState;
use status::{Line, Status, mask};

/// Contacts taken per campaign per round (round robin between campaigns).
const ROUND: usize = 16;
/// The longest sleep, whatever the schedule says.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How often CLI changes (pause, resume, imports, DNC) are looked for while idle.
const POLL: Duration = Duration::from_millis(500);
/// How often an account that cannot be used (bad credentials, suspended) is checked again.
pub const ACCOUNT_RETRY: Duration = Duration::from_secs(60);
/// How long a campaign held by its own concurrency cap waits before it is offered again (a
/// freed slot wakes the loop sooner).
const HELD_RETRY: Duration = Duration::from_millis(250);
/// How long placing waits after a write to the database failed (full disk, I/O error) before
/// it tries again.
const WRITE_RETRY: Duration = Duration::from_secs(1);
/// The longest write transaction settling an import takes (callbacks queue behind it).
const SETTLE_BUDGET: Duration = Duration::from_millis(20);

/// While an import is being settled, the idle loop comes back this often.
const SETTLE_PAUSE: Duration = Duration::from_millis(30);

/// After writes failed, how long open attempts with a call are reconciled every [`WRITE_RETRY`]
/// with no grace: callbacks answered 500 while the disk was full are not delivered again.
const CATCH_UP: Duration = Duration::from_secs(60);

/// How the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Draw the live status lines (stderr is a terminal).
    pub progress: bool,
    /// Where to report what the daemon does (tests wait on these instead of sleeping).
    pub events: Option<UnboundedSender<Event>>,
    /// The loop's intervals (tests shorten them).
    pub tuning: Tuning,
}

/// Intervals of the daemon loop that tests shorten.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// How often an unusable carrier account is checked again.
    pub account_retry: Duration,
    /// How often attempts open for too long (lost callbacks) are reconciled
    /// ([`RECONCILE_EVERY`]).
    pub reconcile_every: Duration,
    /// How long past its ring timeout an attempt with a call may go without a final callback
    /// before the carrier is asked about it ([`STALE_GRACE`]).
    pub stale_grace: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            account_retry: ACCOUNT_RETRY,
            reconcile_every: RECONCILE_EVERY,
            stale_grace: STALE_GRACE,
        }
    }
}

/// What the daemon reports on [`Options::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The callback server is serving on this base URL.
    Listening { public_url: String },
    /// The web dashboard is serving on this URL (`[dashboard]`, when credentials are set).
    Dashboard { url: String },
    /// The campaigns were (re)loaded from the database.
    Loaded { campaigns: Vec<String> },
    /// A call was created for this campaign.
    Placed { campaign: String, attempt: i64 },
    /// A round found nothing to offer; the loop sleeps until `until` (or a change).
    Idle { until: Option<DateTime<Utc>> },
    /// The carrier account cannot be used: placing stopped (callbacks are still served).
    AccountDown { reason: String },
    /// The account was checked again; placing resumes if it is `usable`.
    AccountChecked { usable: bool },
    /// The circuit breaker is open: nothing is placed for this long.
    CircuitOpen { wait: Duration },
    /// Follow-up messages were sent (SPEC §12).
    FollowUps { sent: u32, failed: u32 },
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
    /// Follow-up messages sent, and refused by the carrier.
    pub follow_ups_sent: u32,
    pub follow_ups_failed: u32,
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
    let tuning = options.tuning.clone();
    let session = Session::start(config, clock.clone()).await?;
    let events = options.events;
    emit(
        events.as_ref(),
        Event::Listening {
            public_url: session.shared().public_url.to_string(),
        },
    );
    let dashboard = crate::dashboard::start(config, session.shared().db.clone(), clock).await?;
    if let Some(d) = &dashboard {
        emit(events.as_ref(), Event::Dashboard { url: d.url.clone() });
    }
    let mut summary = Summary {
        reconciled: session.reconciled,
        ..Summary::default()
    };
    let mut sched = Scheduler {
        session: &session,
        daily_cap: config.dialer.max_calls_per_number_per_day,
        campaigns: Vec::new(),
        version: None,
        pending: HashSet::new(),
        held: HashMap::new(),
        tasks: JoinSet::new(),
        status: Status::new(options.progress),
        last_status: None,
        last_reconcile: Instant::now(),
        reconcile_every: tuning.reconcile_every,
        stale_grace: tuning.stale_grace,
        summary: &mut summary,
        events,
        account_retry: tuning.account_retry,
        account_down_since: None,
        last_account_check: None,
        paused_until: None,
        writes_failing_since: None,
        write_retry_at: None,
        catch_up_until: None,
        settling: true,
        follow_up_next: None,
    };
    let looped = sched.run_loop(&shutdown).await;
    let drained = sched.drain().await;
    sched.status.clear();
    drop(sched);
    if session.shared().in_flight.total() > 0 {
        tracing::info!(
            open = session.shared().in_flight.total(),
            "waiting for calls in progress to end"
        );
    }
    summary.left_open = session
        .wait_for_calls(None, config.dialer.shutdown_grace)
        .await;
    if let Some(d) = dashboard {
        d.stop().await;
    }
    session.close().await;
    looped?;
    drained?;
    Ok(summary)
}

fn emit(events: Option<&UnboundedSender<Event>>, event: Event) {
    if let Some(tx) = events {
        let _ = tx.send(event);
    }
}

struct Scheduler<'a> {
    session: &'a Session,
    daily_cap: Option<u32>,
    campaigns: Vec<CampaignState>,
    /// The database's change counter when the campaigns were loaded.
    version: Option<i64>,
    /// Contacts whose placement task has not finished.
    pending: HashSet<i64>,
    /// Campaigns held by their own caps, until the instant given.
    held: HashMap<i64, Instant>,
    tasks: JoinSet<Placement>,
    status: Status,
    last_status: Option<Instant>,
    last_reconcile: Instant,
    reconcile_every: Duration,
    stale_grace: Duration,
    summary: &'a mut Summary,
    events: Option<UnboundedSender<Event>>,
    account_retry: Duration,
    /// Since when the carrier account has been unusable (placing stopped).
    account_down_since: Option<Instant>,
    last_account_check: Option<Instant>,
    /// The circuit breaker holds every placement until then.
    paused_until: Option<Instant>,
    /// Since when writes to the database have been failing (full disk, I/O error): placing
    /// waits [`WRITE_RETRY`] between tries; callbacks are served meanwhile.
    writes_failing_since: Option<Instant>,
    write_retry_at: Option<Instant>,
    /// Until then, after writes failed, attempts are reconciled often and without grace.
    catch_up_until: Option<Instant>,
    /// A finished import's rows may still wait to be settled (see [`Scheduler::settle`]).
    settling: bool,
    /// When the next follow-up still pending may be sent (outside calling hours now).
    follow_up_next: Option<DateTime<Utc>>,
}

impl Scheduler<'_> {
    async fn run_loop(&mut self, shutdown: &CancellationToken) -> Result<()> {
        let flight = self.session.shared().in_flight.clone();
        'outer: while !shutdown.is_cancelled() {
            let freed = flight.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();

            self.refresh().await?;
            self.reconcile_stale().await?;
            self.settle().await;
            self.collect_finished()?;
            self.show_status(false).await?;

            if self.carrier_blocked(shutdown).await? {
                if shutdown.is_cancelled() {
                    break 'outer;
                }
                continue;
            }
            if let Some(at) = self.write_retry_at.take().filter(|at| *at > Instant::now()) {
                tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    _ = tokio::time::sleep_until(at.into()) => {}
                    Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                        self.finished(done)?;
                        self.write_retry_at = Some(at);
                    }
                }
                continue;
            }

            let now = self.session.now();
            self.follow_ups(now).await?;
            self.held.retain(|_, until| *until > Instant::now());
            let work = self.pick(now).await?;
            if work.is_empty() {
                let wake = self.wake_at(now).await?;
                tracing::debug!(until = ?wake, "idle: nothing to place");
                emit(self.events.as_ref(), Event::Idle { until: wake });
                let sleep = wake
                    .and_then(|w| (w - now).to_std().ok())
                    .unwrap_or(MAX_SLEEP)
                    .clamp(Duration::from_millis(5), MAX_SLEEP);
                // wake for the next reconciliation too: a lost callback must not wait for a
                // change to be noticed
                let reconcile = (self.last_reconcile + self.reconcile_every).into();
                let mut deadline = (tokio::time::Instant::now() + sleep).min(reconcile);
                if self.settling {
                    deadline = deadline.min(tokio::time::Instant::now() + SETTLE_PAUSE);
                }
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'outer,
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = &mut freed => {
                            self.held.clear();
                            break;
                        }
                        Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                            self.finished(done)?;
                            break;
                        }
                        _ = tokio::time::sleep(POLL) => {
                            if self.changed().await? {
                                break;
                            }
                            self.show_status(false).await?;
                        }
                    }
                }
                continue;
            }

            for (campaign_id, row) in work {
                if self.held.contains_key(&campaign_id) {
                    continue;
                }
                let Some(loaded) = self.campaign(campaign_id).map(|c| c.loaded.clone()) else {
                    continue;
                };
                let contact = row.id;
                match self
                    .session
                    .offer(&loaded, row, &mut self.tasks, shutdown)
                    .await?
                {
                    Offer::Placing => {
                        self.pending.insert(contact);
                    }
                    Offer::Held(wait) => {
                        let until = Instant::now() + wait.unwrap_or(HELD_RETRY);
                        self.held.insert(campaign_id, until);
                    }
                    Offer::NotDue => {}
                    Offer::Stopped => break 'outer,
                    // the loop's top waits for the account or the breaker
                    Offer::AccountDown(_) => break,
                    Offer::CircuitOpen(wait) => {
                        self.paused_until = Some(Instant::now() + wait);
                        break;
                    }
                }
                self.collect_finished()?;
                self.show_status(false).await?;
                if self.write_retry_at.is_some() {
                    break;
                }
            }
            // a CLI change (pause, DNC) is seen before the next round
            self.refresh().await?;
        }
        Ok(())
    }

    /// While the carrier account cannot be used (SPEC §10) or the circuit breaker is open,
    /// places nothing: waits (for the next account check, the breaker's backoff, a finished
    /// placement or shutdown) and returns `true`; callbacks are served meanwhile. The account
    /// is checked again every `account_retry`.
    async fn carrier_blocked(&mut self, shutdown: &CancellationToken) -> Result<bool> {
        let carrier = self.session.shared().carrier.clone();
        if let Some(reason) = carrier.account_error() {
            let since = match self.account_down_since {
                Some(since) => since,
                None => {
                    tracing::error!(reason = %reason, "placing stopped until the carrier account can be used; checking it every {}", humantime::format_duration(self.account_retry));
                    emit(self.events.as_ref(), Event::AccountDown { reason });
                    *self.account_down_since.insert(Instant::now())
                }
            };
            let next = self.last_account_check.unwrap_or(since) + self.account_retry;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep_until(next.into()) => {
                    self.last_account_check = Some(Instant::now());
                    let usable = self.session.check_account().await;
                    emit(self.events.as_ref(), Event::AccountChecked { usable });
                    if usable {
                        self.account_down_since = None;
                        self.last_account_check = None;
                    }
                }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.finished(done)?;
                }
            }
            return Ok(true);
        }
        let Some(until) = self.paused_until.filter(|u| *u > Instant::now()) else {
            self.paused_until = None;
            return Ok(false);
        };
        emit(
            self.events.as_ref(),
            Event::CircuitOpen {
                wait: until.saturating_duration_since(Instant::now()),
            },
        );
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep_until(until.into()) => self.paused_until = None,
            Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                self.finished(done)?;
            }
        }
        Ok(true)
    }

    /// Waits for the placements under way (each stores its SID or settles its attempt).
    async fn drain(&mut self) -> Result<()> {
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done)?;
        }
        self.show_status(true).await
    }

    fn collect_finished(&mut self) -> Result<()> {
        while let Some(done) = self.tasks.try_join_next() {
            self.finished(done)?;
        }
        Ok(())
    }

    /// Counts a finished placement. A write the database could not take (full disk) holds
    /// placing for [`WRITE_RETRY`]; any other store failure stops the daemon.
    fn finished(&mut self, done: Result<Placement, tokio::task::JoinError>) -> Result<()> {
        let done = done?;
        self.pending.remove(&done.contact.id);
        let name = done.campaign.name().to_owned();
        let placed = match done.placed {
            Ok(placed) => placed,
            Err(e) if e.is_write_unavailable() => {
                self.write_failed(&e);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(since) = self.writes_failing_since.take() {
            tracing::info!(
                after = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                "the database takes writes again: placing resumed; reconciling open attempts"
            );
            self.catch_up();
        }
        match placed {
            Placed::Created { attempt } => {
                tracing::info!(campaign = %name, attempt, to = %mask(&done.contact.phone), "call placed");
                emit(
                    self.events.as_ref(),
                    Event::Placed {
                        campaign: name.clone(),
                        attempt,
                    },
                );
                *self.summary.placed.entry(name).or_default() += 1;
            }
            Placed::Interrupted { .. } => *self.summary.placed.entry(name).or_default() += 1,
            Placed::Refused { .. } => self.summary.refused += 1,
            // the loop's top sees the account down and stops placing
            Placed::AccountDown { .. } | Placed::RateLimited | Placed::Skipped => {}
        }
        Ok(())
    }

    /// A write failed: placing waits [`WRITE_RETRY`]; one error line per outage.
    fn write_failed(&mut self, e: &StoreError) {
        if self.writes_failing_since.is_none() {
            tracing::error!(error = %e, "cannot write to the database: placing paused, trying again every {}; callbacks that cannot be stored are answered 500 and their attempts reconciled later", humantime::format_duration(WRITE_RETRY));
            self.writes_failing_since = Some(Instant::now());
        } else {
            tracing::debug!(error = %e, "the database still takes no writes");
        }
        self.write_retry_at = Some(Instant::now() + WRITE_RETRY);
    }

    /// After an outage of writes: reconcile at once, then every [`WRITE_RETRY`] for
    /// [`CATCH_UP`], without grace for attempts with a call (the callbacks lost meanwhile are
    /// not sent again).
    fn catch_up(&mut self) {
        self.catch_up_until = Some(Instant::now() + CATCH_UP);
        self.last_reconcile = Instant::now() - self.reconcile_every;
    }

    fn campaign(&self, id: i64) -> Option<&CampaignState> {
        self.campaigns.iter().find(|c| c.id() == id)
    }

    /// Sends the follow-up messages pending inside calling hours (SPEC §12) and remembers when
    /// the next one may go, for [`Scheduler::wake_at`].
    async fn follow_ups(&mut self, now: DateTime<Utc>) -> Result<()> {
        let campaigns: Vec<_> = self.campaigns.iter().map(|c| c.loaded.clone()).collect();
        match self.session.send_follow_ups(&campaigns, now).await {
            Ok(round) => {
                self.follow_up_next = round.next_at;
                if round.sent + round.failed > 0 {
                    self.summary.follow_ups_sent += round.sent;
                    self.summary.follow_ups_failed += round.failed;
                    emit(
                        self.events.as_ref(),
                        Event::FollowUps {
                            sent: round.sent,
                            failed: round.failed,
                        },
                    );
                }
                Ok(())
            }
            Err(e) if e.is_write_unavailable() => {
                self.write_failed(&e);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Up to [`ROUND`] contacts of every campaign not held, interleaved.
    async fn pick(&mut self, now: DateTime<Utc>) -> Result<Vec<(i64, ContactRow)>> {
        let mut campaigns = std::mem::take(&mut self.campaigns);
        let pending = self.pending.clone();
        let held: HashSet<i64> = self.held.keys().copied().collect();
        let cap = self.daily_cap;
        let (campaigns, work) = self
            .session
            .shared()
            .db
            .read(move |db| {
                let mut lists = Vec::new();
                for c in campaigns.iter_mut().filter(|c| !held.contains(&c.id())) {
                    let rows = c.pick(db, cap, now, &pending, ROUND)?;
                    lists.push((c.id(), rows.into_iter()));
                }
                Ok::<_, StoreError>((campaigns, interleave(lists)))
            })
            .await?;
        self.campaigns = campaigns;
        Ok(work)
    }

    /// The earliest instant worth waking for: any campaign's next wake-up or the release of a
    /// held campaign.
    async fn wake_at(&mut self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let mut campaigns = std::mem::take(&mut self.campaigns);
        let (campaigns, wake) = self
            .session
            .shared()
            .db
            .read(move |db| {
                let mut wake: Option<DateTime<Utc>> = None;
                for c in &mut campaigns {
                    if let Some(t) = c.wake_at(db, now)? {
                        wake = Some(wake.map_or(t, |w| w.min(t)));
                    }
                }
                Ok::<_, StoreError>((campaigns, wake))
            })
            .await?;
        self.campaigns = campaigns;
        let released = self.held.values().min().map(|until| {
            now + chrono::Duration::from_std(until.saturating_duration_since(Instant::now()))
                .unwrap_or_default()
        });
        Ok([wake, released, self.follow_up_next]
            .into_iter()
            .flatten()
            .min())
    }

    /// Whether campaigns, the DNC list or imports changed (in any process) since the last load.
    async fn changed(&mut self) -> Result<bool> {
        let v = self
            .session
            .shared()
            .db
            .read(|db| db.change_version())
            .await?;
        Ok(self.version != Some(v))
    }

    /// Reloads the campaigns when the database changed (or on first use).
    async fn refresh(&mut self) -> Result<()> {
        let version = self
            .session
            .shared()
            .db
            .read(|db| db.change_version())
            .await?;
        if self.version == Some(version) {
            return Ok(());
        }
        let now = self.session.now();
        let loaded = self.session.campaigns(None).await?;
        let mut old: Vec<CampaignState> = std::mem::take(&mut self.campaigns);
        for l in loaded {
            let mut c = CampaignState::new(l, now);
            if let Some(i) = old.iter().position(|o| o.id() == c.id()) {
                c.carry_over(old.swap_remove(i));
            }
            self.campaigns.push(c);
        }
        if self.version.is_some() {
            tracing::debug!("database changed; campaigns reloaded");
        }
        self.version = Some(version);
        // an import may have finished
        self.settling = true;
        emit(
            self.events.as_ref(),
            Event::Loaded {
                campaigns: self.campaigns.iter().map(|c| c.name().to_owned()).collect(),
            },
        );
        Ok(())
    }

    /// Settles one slice of a finished import's rows (upkeep: they are dialable before, only
    /// read through a second index); after a change (an import finished) it looks again.
    async fn settle(&mut self) {
        if !self.settling || self.writes_failing_since.is_some() {
            return;
        }
        match self.session.settle_imports(SETTLE_BUDGET).await {
            Ok(more) => self.settling = more,
            Err(e) => tracing::debug!(error = %e, "cannot settle an import now"),
        }
    }

    /// Every `reconcile_every` ([`RECONCILE_EVERY`]): reconciles attempts whose callbacks were
    /// lost.
    async fn reconcile_stale(&mut self) -> Result<()> {
        let catching_up = self.catch_up_until.is_some_and(|u| u > Instant::now());
        // the grace is waived only for attempts with a call, which the carrier can be asked
        // about; one without may still be placing (a create retried after an unknown outcome)
        let (every, with_call) = if catching_up {
            (WRITE_RETRY.min(self.reconcile_every), Duration::ZERO)
        } else {
            self.catch_up_until = None;
            (self.reconcile_every, self.stale_grace)
        };
        if self.last_reconcile.elapsed() < every {
            return Ok(());
        }
        self.last_reconcile = Instant::now();
        match self
            .session
            .reconcile_stale_with(with_call, self.stale_grace)
            .await
        {
            Ok(n) => self.summary.reconciled += n,
            // the disk is full again: the next round tries again
            Err(e)
                if e.downcast_ref::<StoreError>()
                    .is_some_and(StoreError::is_write_unavailable) =>
            {
                tracing::warn!(error = %e, "cannot reconcile open attempts now");
                if self.writes_failing_since.is_none() {
                    self.writes_failing_since = Some(Instant::now());
                }
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Redraws the status lines (at most once a second unless `force`).
    async fn show_status(&mut self, force: bool) -> Result<()> {
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
        let now = self.session.now();
        let mut campaigns = std::mem::take(&mut self.campaigns);
        let (campaigns, rows) = self
            .session
            .shared()
            .db
            .read(move |db| {
                let mut rows = Vec::new();
                for c in &mut campaigns {
                    let stats = db.campaign_stats(c.id())?;
                    let next = if c.loaded.campaign.schedule.is_some() {
                        c.next_fire.map(|t| ("next wave", t))
                    } else {
                        c.wake_at(db, now)?.map(|t| ("next", t))
                    };
                    rows.push((
                        c.id(),
                        c.name().to_owned(),
                        c.loaded.row.paused,
                        stats,
                        next,
                    ));
                }
                Ok::<_, StoreError>((campaigns, rows))
            })
            .await?;
        self.campaigns = campaigns;
        for (id, name, paused, stats, next) in rows {
            let line = Line {
                placed: self.summary.placed.get(&name).copied().unwrap_or(0),
                in_flight: stats.in_flight,
                completed: stats.completed,
                open: stats.open,
                paused,
                next,
            };
            self.status.show(id, &name, &line);
        }
        Ok(())
    }
}

impl Summary {
    /// The lines printed when the daemon stops.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![crate::engine::placed_line(&self.placed)];
        if self.refused > 0 {
            out.push(format!("{} call(s) refused by the carrier", self.refused));
        }
        if self.reconciled > 0 {
            out.push(format!("reconciled {} attempt(s)", self.reconciled));
        }
        if self.follow_ups_sent > 0 {
            out.push(format!(
                "sent {} follow-up message(s)",
                self.follow_ups_sent
            ));
        }
        if self.follow_ups_failed > 0 {
            out.push(format!(
                "{} follow-up message(s) refused by the carrier (see `dialer report export csv --messages`)",
                self.follow_ups_failed
            ));
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
