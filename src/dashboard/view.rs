//! What the pages, the live stream and the JSON API show, read from the store: one campaign's
//! card (state and counters), its charts' series, its plan rows and one contact's history.
//! The decisions are `decision::Loaded::decide` (the scheduler's own), never a copy.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::decision::{Loaded, PlanRow};
use crate::engine::due_contacts;
use crate::report::Summary;
use crate::schedule::{next_fire, next_wake};
use crate::store::{Funnel, HourCount, Store, StoreError};

/// How many due contacts are counted at most (the count shows "1000+" beyond).
pub const DUE_COUNT_LIMIT: usize = 1000;
/// Plan rows shown on a page (the CSV/JSON API gives them all).
pub const PLAN_PAGE_ROWS: usize = 200;

/// One campaign as the overview shows it; also the payload of the live stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignCard {
    pub name: String,
    /// `active`, `paused`, `draft`, `outside window`, `next wave`, `waiting for retries`,
    /// `finished`.
    pub state: &'static str,
    pub contacts: i64,
    pub open: i64,
    pub completed: i64,
    pub exhausted: i64,
    pub opted_out: i64,
    pub dnc: i64,
    pub attempts: i64,
    pub in_flight: i64,
    /// Attempts started since midnight in the campaign's time zone.
    pub placed_today: i64,
    pub reached: i64,
    /// `reached / ended`, 0 to 1.
    pub answer_rate: f64,
    pub outcomes: BTreeMap<String, i64>,
    /// Contacts due now (at most [`DUE_COUNT_LIMIT`]).
    pub due_now: usize,
    /// The next instant a contact may become due (window opening, retry, wave), RFC 3339 UTC.
    pub next: Option<String>,
}

/// A campaign's card at `now`.
pub fn card(
    store: &Store,
    loaded: &Loaded,
    daily_cap: Option<u32>,
    now: DateTime<Utc>,
) -> Result<CampaignCard, StoreError> {
    let id = loaded.id();
    let summary = Summary::from_counts(loaded.name(), store.summary_counts(id)?);
    let tz = loaded.campaign.rules.timezone;
    let placed_today = store.attempts_since(id, local_midnight(tz, now))?;
    let due_now = due_contacts(
        store,
        loaded,
        daily_cap,
        now,
        &HashSet::new(),
        DUE_COUNT_LIMIT,
    )?
    .len();
    let next = next_instant(store, loaded, now)?;
    let state = if loaded.campaign.is_draft() {
        "draft"
    } else if loaded.row.paused {
        "paused"
    } else if due_now > 0 || summary.in_flight > 0 {
        "active"
    } else if summary.open == 0 {
        "finished"
    } else if loaded.campaign.schedule.is_some() {
        "next wave"
    } else if store.ready_contacts(id, now)? > 0 {
        "outside window"
    } else {
        "waiting for retries"
    };
    Ok(CampaignCard {
        name: loaded.name().to_owned(),
        state,
        contacts: summary.contacts,
        open: summary.open,
        completed: summary.completed,
        exhausted: summary.exhausted,
        opted_out: summary.opted_out,
        dnc: summary.dnc,
        attempts: summary.attempts,
        in_flight: summary.in_flight,
        placed_today,
        reached: summary.reached,
        answer_rate: summary.answer_rate,
        outcomes: summary.outcomes,
        due_now,
        next: next.map(rfc3339),
    })
}

/// The next wave (cron campaigns), or the next window opening or retry in the contacts' zones.
fn next_instant(
    store: &Store,
    loaded: &Loaded,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    if !loaded.active() {
        return Ok(None);
    }
    let rules = &loaded.campaign.rules;
    if let Some(schedule) = &loaded.campaign.schedule {
        return Ok(next_fire(schedule, rules.timezone, now, false));
    }
    let sets: Vec<Vec<Tz>> = store
        .open_zone_lists(loaded.id())?
        .iter()
        .map(|z| zones_of(z.as_deref(), rules.timezone))
        .collect();
    let retry = store.earliest_retry(loaded.id(), now)?;
    Ok(next_wake(rules, &sets, retry, now))
}

/// A stored zone list (`|`-separated), or the campaign's zone.
fn zones_of(stored: Option<&str>, campaign: Tz) -> Vec<Tz> {
    let zones: Vec<Tz> = stored
        .unwrap_or("")
        .split('|')
        .filter_map(|z| z.parse().ok())
        .collect();
    if zones.is_empty() {
        vec![campaign]
    } else {
        zones
    }
}

/// Midnight of `now`'s date in `tz` (the first instant of that date, across a DST gap).
pub fn local_midnight(tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let date = now.with_timezone(&tz).date_naive();
    (0..=3)
        .find_map(|h| {
            date.and_hms_opt(h, 0, 0)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
        })
        .map_or(now - Duration::hours(24), |t| t.with_timezone(&Utc))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The series of a campaign's charts.
#[derive(Debug, Clone)]
pub struct Charts {
    /// The start of the first hour bucket.
    pub from: DateTime<Utc>,
    pub hourly: Vec<HourCount>,
    pub funnel: Funnel,
    /// `(instant, calls in flight)`, every 30 minutes over 24 hours.
    pub in_flight: Vec<(DateTime<Utc>, i64)>,
    pub zones: Vec<ZoneRow>,
}

/// Open contacts of one zone list: how many, how many are due now, and when its window opens.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneRow {
    pub zones: String,
    pub open: i64,
    pub due_now: usize,
    pub window_opens: WindowOpens,
}

/// When the calling window of a zone list opens next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowOpens {
    /// It is open now.
    Now,
    /// RFC 3339 UTC.
    At(String),
    /// The campaign has ended.
    Never,
}

impl std::fmt::Display for WindowOpens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowOpens::Now => f.write_str("open now"),
            WindowOpens::At(t) => f.write_str(t),
            WindowOpens::Never => f.write_str("never (the campaign has ended)"),
        }
    }
}

pub fn charts(
    store: &Store,
    loaded: &Loaded,
    daily_cap: Option<u32>,
    now: DateTime<Utc>,
) -> Result<Charts, StoreError> {
    let id = loaded.id();
    let this_hour = now - Duration::seconds(now.timestamp().rem_euclid(3600));
    let from = this_hour - Duration::hours(23);
    let hourly = store.hourly_attempts(id, from, 24)?;
    let instants: Vec<DateTime<Utc>> = (0..=48)
        .map(|i| now - Duration::minutes(30 * (48 - i)))
        .collect();
    let c = &loaded.campaign;
    let longest = std::time::Duration::from_secs(
        u64::from(c.ring_timeout) + u64::from(c.max_call_duration) + 60,
    );
    let flight = store.in_flight_at(id, &instants, longest)?;
    let tz = c.rules.timezone;
    let mut due_by_zone: BTreeMap<String, usize> = BTreeMap::new();
    for row in due_contacts(
        store,
        loaded,
        daily_cap,
        now,
        &HashSet::new(),
        DUE_COUNT_LIMIT,
    )? {
        *due_by_zone
            .entry(zone_label(row.zones.as_deref(), tz))
            .or_default() += 1;
    }
    let zones = store
        .open_by_zones(id)?
        .into_iter()
        .map(|z| {
            let label = zone_label(z.zones.as_deref(), tz);
            let set = zones_of(z.zones.as_deref(), tz);
            // `next_wake` is `None` while the window is open, and when the campaign has ended
            let ended = c.rules.end_at.is_some_and(|end| now >= end);
            ZoneRow {
                due_now: due_by_zone.get(&label).copied().unwrap_or(0),
                window_opens: match next_wake(&c.rules, &[set], None, now) {
                    Some(t) => WindowOpens::At(rfc3339(t)),
                    None if ended => WindowOpens::Never,
                    None => WindowOpens::Now,
                },
                zones: label,
                open: z.open,
            }
        })
        .collect();
    Ok(Charts {
        from,
        hourly,
        funnel: store.funnel(id)?,
        in_flight: instants.into_iter().zip(flight).collect(),
        zones,
    })
}

fn zone_label(stored: Option<&str>, campaign: Tz) -> String {
    zones_of(stored, campaign)
        .iter()
        .map(|z| z.name())
        .collect::<Vec<_>>()
        .join("|")
}

/// A campaign's plan at `at`: rows with `reason` (all when `None`), due soonest first, at most
/// `limit`; and the count of every reason over all contacts.
pub struct Plan {
    pub rows: Vec<PlanRow>,
    pub matching: usize,
    pub reasons: BTreeMap<&'static str, usize>,
}

pub fn plan(
    store: &Store,
    loaded: &Loaded,
    daily_cap: Option<u32>,
    at: DateTime<Utc>,
    reason: Option<&str>,
    limit: usize,
) -> Result<Plan, StoreError> {
    let mut rows: Vec<PlanRow> = Vec::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut matching = 0;
    let key = |r: &PlanRow| {
        (
            !r.due,
            r.next_eligible_at.is_none(),
            r.next_eligible_at.clone(),
        )
    };
    store.for_each_contact(loaded.id(), |row| {
        let d = loaded.decide(store, daily_cap, &row, at)?;
        *reasons.entry(d.reason.as_str()).or_default() += 1;
        if reason.is_some_and(|r| r != d.reason.as_str()) {
            return Ok::<(), StoreError>(());
        }
        matching += 1;
        rows.push(PlanRow::new(loaded, &row, &d, at));
        // keep memory bounded on large campaigns: only the soonest `limit` rows survive
        if rows.len() >= limit.saturating_mul(2).max(64) {
            rows.sort_by_key(key);
            rows.truncate(limit);
        }
        Ok(())
    })?;
    rows.sort_by_key(key);
    rows.truncate(limit);
    Ok(Plan {
        rows,
        matching,
        reasons,
    })
}
