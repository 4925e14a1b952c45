//! `dialer run batch` (for cron): pick the contacts due now, place them through the engine as
//! the limits allow, wait for the calls to end (or `--wait`), print a summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::SecondsFormat;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::campaign::import_declared;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::decision::Loaded;
use crate::dialing::Placed;
use crate::engine::{FollowUpRound, Offer, Placement, Session, interleave};
use crate::schedule::PlanReason;
use crate::store::{AttemptEnding, DatabaseLock, StoreError};

/// The longest write transaction of the settling a batch does before it ends.
const SETTLE_BUDGET: Duration = Duration::from_millis(50);

/// A contact placed back in the queue this many times (429 after the client's own retries)
/// is left for the next run.
const MAX_REQUEUES: u32 = 8;

/// How long a batch waits for the status callbacks of the follow-ups it sent (at most
/// `--wait`); a message reported later keeps its last known status.
const MESSAGE_WAIT: Duration = Duration::from_secs(10);

/// Contacts taken per campaign per round (round robin between campaigns).
const ROUND: usize = 64;

pub async fn run(
    ctx: &Context,
    config: &Config,
    only: Option<&str>,
    limit: Option<u32>,
    wait: Duration,
) -> Result<()> {
    let _lock = DatabaseLock::acquire(&config.database)?;
    import_declared(ctx, config)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let session = Session::start(config, clock).await?;
    if session.reconciled > 0 {
        println!(
            "reconciled {} attempt(s) left open by an earlier run",
            session.reconciled
        );
    }
    let campaigns = session.campaigns(only).await?;
    let now = session.now();
    let mut idle = BTreeMap::new();
    for l in &campaigns {
        if session.due(l, now, Arc::default(), 1).await?.is_empty() {
            idle.insert(
                l.name().to_owned(),
                explain_idle(&session, l, config).await?,
            );
        }
    }

    let bar = ctx.progress().then(|| bar("placing calls"));
    let mut tally = Tally::default();
    let budget = limit.map_or(usize::MAX, |n| n as usize);
    place_due(&session, &campaigns, budget, &mut tally, bar.as_ref()).await?;

    if let Some(b) = &bar {
        b.set_message("waiting for calls to end");
        b.set_length(tally.attempts.len() as u64);
    }
    let ids: HashSet<i64> = tally.attempts.iter().copied().collect();
    session.wait_for_calls(Some(&ids), wait).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // upkeep a daemon does as it goes: move finished imports' rows into the due index
    while session.settle_imports(SETTLE_BUDGET).await? {}
    // SPEC §12: follow-ups of attempts that ended (in this run or before), inside calling hours
    let follow_ups = session.send_follow_ups(&campaigns, session.now()).await?;
    if !follow_ups.created.is_empty() {
        // their status callbacks (`sent`, `delivered`) come while the server runs
        session
            .wait_for_messages(&follow_ups.created, wait.min(MESSAGE_WAIT))
            .await?;
    }
    let attempts = tally.attempts.clone();
    let endings = session
        .shared()
        .db
        .read(move |db| db.attempt_ends(&attempts))
        .await?;
    session.close().await;
    for line in tally.lines(&endings, wait) {
        println!("{line}");
    }
    for line in follow_up_lines(&follow_ups) {
        println!("{line}");
    }
    for (name, why) in idle {
        println!("{name}: nothing due now — {why}");
    }
    match tally.stopped {
        // SPEC §10: one clear error, exit 1; no attempt was counted for it
        Some(Stop::AccountDown(message)) => Err(anyhow::anyhow!(message)),
        Some(Stop::CircuitOpen) => Err(anyhow::anyhow!(
            "placing stopped: the carrier answered repeated server errors (circuit breaker open); \
             the contacts not placed stay due for the next run"
        )),
        None => Ok(()),
    }
}

/// Why a batch stopped placing before every due contact was offered.
#[derive(Debug)]
enum Stop {
    /// The carrier account cannot be used (401/403, 20003/20005).
    AccountDown(String),
    /// The circuit breaker opened after repeated server errors.
    CircuitOpen,
}

/// Offers every due contact, round robin between campaigns, until none is left (or `budget`
/// calls were placed); a campaign held by its own caps waits while the others go on.
async fn place_due(
    session: &Session,
    campaigns: &[Arc<Loaded>],
    mut budget: usize,
    tally: &mut Tally,
    bar: Option<&ProgressBar>,
) -> Result<()> {
    let never = CancellationToken::new();
    let mut tasks: JoinSet<Placement> = JoinSet::new();
    // offered contacts: not picked again (a rate-limited one is taken out to be retried)
    let mut taken: HashSet<i64> = HashSet::new();
    let mut held: HashMap<i64, Option<Duration>> = HashMap::new();
    loop {
        let now = session.now();
        let skip = Arc::new(taken.clone());
        let mut lists = Vec::new();
        for l in campaigns.iter().filter(|l| !held.contains_key(&l.id())) {
            let due = session.due(l, now, skip.clone(), ROUND.min(budget)).await?;
            lists.push((l.clone(), due.into_iter()));
        }
        let round = interleave(lists);
        let offered = !round.is_empty();
        for (l, row) in round {
            if budget == 0 || held.contains_key(&l.id()) || tally.stopped.is_some() {
                continue;
            }
            taken.insert(row.id);
            match session.offer(&l, row, &mut tasks, &never).await? {
                Offer::Placing => budget -= 1,
                Offer::Held(wait) => {
                    held.insert(l.id(), wait);
                }
                Offer::AccountDown(message) => tally.stop(Stop::AccountDown(message)),
                Offer::CircuitOpen(_) => tally.stop(Stop::CircuitOpen),
                Offer::NotDue | Offer::Stopped => {}
            }
            while let Some(done) = tasks.try_join_next() {
                tally.record(done?, &mut taken)?;
            }
            if let Some(b) = bar {
                b.set_position(tally.attempts.len() as u64);
            }
        }
        if offered && budget > 0 && tally.stopped.is_none() {
            continue;
        }
        if held.is_empty() || budget == 0 || tally.stopped.is_some() {
            // nothing left to offer: collect what is still being placed (a rate-limited
            // contact goes back to the queue)
            let Some(done) = tasks.join_next().await else {
                return Ok(());
            };
            tally.record(done?, &mut taken)?;
            continue;
        }
        // only held campaigns remain: wait for the earliest to be released
        let wait = held.values().flatten().min().copied();
        let freed = session.shared().in_flight.freed();
        tokio::select! {
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(1))) => {}
            _ = freed => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => tally.record(done?, &mut taken)?,
        }
        held.clear();
    }
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
    requeues: HashMap<i64, u32>,
    /// Placing stopped for the whole account (the first reason seen).
    stopped: Option<Stop>,
}

impl Tally {
    fn stop(&mut self, why: Stop) {
        self.stopped.get_or_insert(why);
    }

    /// Counts one finished placement; a rate-limited contact is offered again a few times. A
    /// store failure stops the batch.
    fn record(&mut self, done: Placement, taken: &mut HashSet<i64>) -> Result<(), StoreError> {
        match done.placed? {
            Placed::Created { attempt } => {
                self.attempts.push(attempt);
                *self
                    .by_campaign
                    .entry(done.campaign.name().to_owned())
                    .or_default() += 1;
            }
            Placed::RateLimited => {
                let tries = self.requeues.entry(done.contact.id).or_default();
                *tries += 1;
                if *tries < MAX_REQUEUES {
                    taken.remove(&done.contact.id);
                } else {
                    self.rate_limited += 1;
                }
            }
            Placed::Refused { attempt, .. } => {
                self.attempts.push(attempt);
                self.refused += 1;
            }
            Placed::Interrupted { attempt } => {
                self.attempts.push(attempt);
                self.interrupted += 1;
            }
            Placed::AccountDown { message } => self.stop(Stop::AccountDown(message)),
            Placed::Skipped => {}
        }
        Ok(())
    }

    /// The summary lines, given how each attempt stands now.
    fn lines(&self, endings: &[AttemptEnding], wait: Duration) -> Vec<String> {
        let mut reasons: BTreeMap<&str, u32> = BTreeMap::new();
        let mut still_open = 0;
        for e in endings {
            match e {
                AttemptEnding::Open => still_open += 1,
                AttemptEnding::Ended(reason) => {
                    *reasons
                        .entry(reason.as_deref().unwrap_or("unknown"))
                        .or_default() += 1;
                }
            }
        }
        let mut out = vec![crate::engine::placed_line(&self.by_campaign)];
        if !reasons.is_empty() {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            out.push(format!("ended: {}", parts.join(", ")));
        }
        if still_open > 0 {
            out.push(format!(
                "{still_open} call(s) still in progress after --wait {}; the next run reconciles them",
                humantime::format_duration(wait)
            ));
        }
        if self.refused > 0 {
            out.push(format!(
                "{} call(s) refused by the carrier (see `dialer report export csv` for the error codes)",
                self.refused
            ));
        }
        if self.rate_limited > 0 {
            out.push(format!(
                "{} contact(s) not placed: the carrier kept answering 429 (or could not be reached); they stay due for the next run",
                self.rate_limited
            ));
        }
        if self.interrupted > 0 {
            out.push(format!(
                "{} create request(s) got no answer and were reconciled",
                self.interrupted
            ));
        }
        out
    }
}

/// What the batch says about follow-up messages.
fn follow_up_lines(round: &FollowUpRound) -> Vec<String> {
    let mut out = Vec::new();
    if round.sent > 0 {
        out.push(format!("sent {} follow-up message(s)", round.sent));
    }
    if round.failed > 0 {
        out.push(format!(
            "{} follow-up message(s) refused by the carrier (see `dialer report export csv --messages`)",
            round.failed
        ));
    }
    if let Some(t) = round.next_at {
        out.push(format!(
            "follow-up message(s) pending until calling hours: the next may be sent at {}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    out
}

/// Why a campaign dials nothing now: its reasons, counted, and the earliest next instant.
async fn explain_idle(session: &Session, l: &Arc<Loaded>, config: &Config) -> Result<String> {
    let (l, cap, now) = (
        l.clone(),
        config.dialer.max_calls_per_number_per_day,
        session.now(),
    );
    let name = l.name().to_owned();
    let (counts, next) = session
        .shared()
        .db
        .read(move |db| {
            let mut counts: BTreeMap<&'static str, u32> = BTreeMap::new();
            let mut next: Option<chrono::DateTime<chrono::Utc>> = None;
            db.for_each_contact(l.id(), |row| {
                let d = l.decide(db, cap, &row, now)?;
                *counts.entry(d.reason.as_str()).or_default() += 1;
                if d.reason != PlanReason::Due
                    && let Some(t) = d.next_eligible_at
                {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
                Ok::<_, StoreError>(())
            })?;
            Ok::<_, StoreError>((counts, next))
        })
        .await?;
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
        "{}{when} (see `dialer plan --campaign \"{name}\"`)",
        parts.join(", ")
    ))
}

fn bar(message: &'static str) -> ProgressBar {
    let b = ProgressBar::new(0);
    if let Ok(s) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}") {
        b.set_style(s.progress_chars("=> "));
    }
    b.set_message(message);
    b
}
