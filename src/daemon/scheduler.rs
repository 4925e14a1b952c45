//! The scheduler's decisions over the store: which contacts of a campaign to place now (the
//! indexed due query confirmed by `decide`), cron waves, and when to wake up next.

use std::collections::{HashSet, VecDeque};

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaign::model::Campaign;
use crate::commands::Loaded;
use crate::config::Config;
use crate::decision::{contact_zones, evaluate};
use crate::schedule::{in_window, next_window_start};
use crate::store::{ContactRow, Store, secs};

/// Rows read from the due index per look; the due ones among them are kept.
const SCAN: u32 = 10_000;

/// A campaign as the scheduler sees it: the stored row and rules, plus its cron wave state.
pub struct CampaignState {
    pub loaded: Loaded,
    /// The distinct zone sets of its open contacts (a superset is fine); `None` = not read yet.
    zone_sets: Option<Vec<Vec<Tz>>>,
    /// The next cron fire time (campaigns with a `schedule`).
    pub next_fire: Option<DateTime<Utc>>,
    /// Contacts due at the last fire time and not placed yet.
    pub wave: VecDeque<i64>,
}

impl CampaignState {
    pub fn new(loaded: Loaded, now: DateTime<Utc>) -> Self {
        let next_fire = next_fire(&loaded.campaign, now, true);
        Self {
            loaded,
            zone_sets: None,
            next_fire,
            wave: VecDeque::new(),
        }
    }

    /// Keeps the wave state of `old` when the campaign is reloaded with the same schedule.
    pub fn carry_over(&mut self, old: CampaignState) {
        if self.loaded.campaign.schedule == old.loaded.campaign.schedule {
            self.next_fire = old.next_fire;
            self.wave = old.wave;
        }
    }

    pub fn id(&self) -> i64 {
        self.loaded.row.id
    }

    pub fn name(&self) -> &str {
        &self.loaded.row.name
    }

    fn active(&self) -> bool {
        !self.loaded.row.paused && !self.loaded.campaign.is_draft()
    }

    /// Up to `limit` contacts to place now, skipping `pending` ones. A cron campaign first
    /// opens a wave when its fire time has come, then serves only that wave.
    pub fn pick(
        &mut self,
        db: &Store,
        config: &Config,
        now: DateTime<Utc>,
        pending: &HashSet<i64>,
        limit: usize,
    ) -> Result<Vec<ContactRow>> {
        if !self.active() {
            self.wave.clear();
            return Ok(Vec::new());
        }
        if self.loaded.campaign.schedule.is_none() {
            return due_now(db, config, &self.loaded, now, pending, limit);
        }
        if let Some(fire) = self.next_fire
            && now >= fire
        {
            let due = due_now(db, config, &self.loaded, now, pending, usize::MAX)?;
            tracing::info!(campaign = %self.name(), contacts = due.len(), "cron wave");
            let queued: HashSet<i64> = self.wave.iter().copied().collect();
            self.wave
                .extend(due.iter().map(|c| c.id).filter(|id| !queued.contains(id)));
            self.next_fire = next_fire(&self.loaded.campaign, now, false);
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(id) = self.wave.pop_front() else {
                break;
            };
            if pending.contains(&id) {
                continue;
            }
            if let Some(row) = db.contact(id)? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The earliest instant after `now` at which a contact of this campaign may become due.
    pub fn wake_at(&mut self, db: &Store, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        if !self.active() {
            return Ok(None);
        }
        if self.loaded.campaign.schedule.is_some() {
            return Ok(self.next_fire);
        }
        let id = self.id();
        let retry: Option<i64> = db.conn().query_row(
            "SELECT min(next_attempt_at) FROM contacts
             WHERE campaign_id = ?1 AND state = 'open' AND next_attempt_at > ?2",
            rusqlite::params![id, secs(now)],
            |r| r.get(0),
        )?;
        if self.zone_sets.is_none() {
            self.zone_sets = Some(zone_sets(db, id, &self.loaded.campaign)?);
        }
        let sets = self.zone_sets.as_deref().unwrap_or_default();
        Ok(next_wake(
            &self.loaded.campaign,
            sets,
            retry.map(crate::store::instant),
            now,
        ))
    }
}

/// PURE: the earliest instant after `now` worth waking for in a campaign without a schedule:
/// its start, the earliest future retry, and each zone set's next window opening (when the
/// window is closed now). `None` when nothing can become due without a change.
pub fn next_wake(
    campaign: &Campaign,
    zone_sets: &[Vec<Tz>],
    earliest_retry: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let rules = &campaign.rules;
    if rules.end_at.is_some_and(|end| now >= end) {
        return None;
    }
    let from = rules.start_at.map_or(now, |s| s.max(now));
    let mut candidates: Vec<DateTime<Utc>> = Vec::new();
    if from > now {
        candidates.push(from);
    }
    candidates.extend(earliest_retry.filter(|&t| t > now));
    for zones in zone_sets {
        if !in_window(rules, zones, from)
            && let Some(t) = next_window_start(rules, zones, from)
        {
            candidates.push(t);
        }
    }
    candidates
        .into_iter()
        .filter(|&t| rules.end_at.is_none_or(|end| t < end))
        .min()
}

/// The next fire time of a campaign's `schedule`, evaluated in the campaign's time zone.
pub fn next_fire(
    campaign: &Campaign,
    now: DateTime<Utc>,
    inclusive: bool,
) -> Option<DateTime<Utc>> {
    let schedule = campaign.schedule.as_ref()?;
    let local = now.with_timezone(&campaign.rules.timezone);
    match schedule.cron.find_next_occurrence(&local, inclusive) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            tracing::warn!(campaign = %campaign.name, error = %e, "schedule has no next fire time");
            None
        }
    }
}

/// The campaign's contacts due at `now` (not in `pending`), from the indexed query, each
/// confirmed by `decide`; at most `limit`.
pub fn due_now(
    db: &Store,
    config: &Config,
    l: &Loaded,
    now: DateTime<Utc>,
    pending: &HashSet<i64>,
    limit: usize,
) -> Result<Vec<ContactRow>> {
    let mut out = Vec::new();
    let scan = SCAN.saturating_add(u32::try_from(pending.len()).unwrap_or(u32::MAX));
    for row in db.due_contacts(l.row.id, now, scan)? {
        if pending.contains(&row.id) {
            continue;
        }
        if is_due(db, config, l, &row, now)? {
            out.push(row);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Whether one contact is due at `now` under the campaign as loaded.
pub fn is_due(
    db: &Store,
    config: &Config,
    l: &Loaded,
    row: &ContactRow,
    now: DateTime<Utc>,
) -> Result<bool> {
    let zones = contact_zones(row, &l.campaign);
    Ok(evaluate(
        db,
        &l.campaign,
        l.row.paused,
        config.dialer.max_calls_per_number_per_day,
        row,
        &zones,
        now,
    )?
    .is_due())
}

/// The distinct zone sets of a campaign's open contacts.
fn zone_sets(db: &Store, campaign_id: i64, campaign: &Campaign) -> Result<Vec<Vec<Tz>>> {
    let mut stmt = db.conn().prepare_cached(
        "SELECT DISTINCT zones FROM contacts WHERE campaign_id = ?1 AND state = 'open'",
    )?;
    let mut sets: Vec<Vec<Tz>> = Vec::new();
    for z in stmt.query_map([campaign_id], |r| r.get::<_, Option<String>>(0))? {
        let mut zs: Vec<Tz> = z?
            .as_deref()
            .unwrap_or("")
            .split('|')
            .filter_map(|z| z.parse::<Tz>().ok())
            .collect();
        if zs.is_empty() {
            zs.push(campaign.rules.timezone);
        }
        if !sets.contains(&zs) {
            sets.push(zs);
        }
    }
    Ok(sets)
}
