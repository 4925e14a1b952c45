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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::campaign::json::{self, Defaults};
    use crate::clock::{Clock, FixedClock};
    use crate::commands::load_campaign;
    use crate::config::Env;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    /// A store in `dir` holding one campaign (extra JSON fields) and `phones` as open contacts.
    fn setup(dir: &Path, extra: &str, phones: &[&str]) -> (Store, Config, Loaded) {
        let config = Config::parse(&dir.join("dialer.toml"), "", &Env::default()).expect("config");
        let store = Store::open(&dir.join("dialer.db")).expect("store");
        let text =
            format!(r#"{{"name": "w", "message": "hi", "timezone": "America/New_York", {extra}}}"#);
        json::parse(
            &text,
            Defaults {
                timezone: config.dialer.default_timezone,
            },
        )
        .expect("campaign validates");
        let (id, _) = store
            .upsert_campaign("w", &text, false, t("2026-01-01T00:00:00Z"))
            .expect("campaign");
        for p in phones {
            store
                .conn()
                .execute(
                    "INSERT INTO contacts (campaign_id, phone, created_at, updated_at) VALUES (?1, ?2, 0, 0)",
                    rusqlite::params![id, p],
                )
                .expect("contact");
        }
        let row = store.require_campaign("w").expect("stored");
        let loaded = load_campaign(&config, row).expect("loads");
        (store, config, loaded)
    }

    #[test]
    fn wakes_exactly_when_the_window_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hours = r#""calling_hours_start": "09:00", "calling_hours_end": "17:00""#;
        let (store, config, loaded) = setup(dir.path(), hours, &["+12125550101"]);
        // Monday 07:00 in New York: the window opens at 09:00 local = 14:00Z
        let clock = FixedClock(t("2026-01-05T12:00:00Z"));
        let mut c = CampaignState::new(loaded, clock.now());
        let none = HashSet::new();
        assert!(
            c.pick(&store, &config, clock.now(), &none, 10)
                .expect("pick")
                .is_empty()
        );
        let wake = c.wake_at(&store, clock.now()).expect("wake");
        assert_eq!(wake, Some(t("2026-01-05T14:00:00Z")));
        let at_wake = FixedClock(t("2026-01-05T14:00:00Z"));
        let due = c
            .pick(&store, &config, at_wake.now(), &none, 10)
            .expect("pick");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].phone, "+12125550101");
        // a contact in the window and already placed (pending) is not picked again
        let pending: HashSet<i64> = due.iter().map(|r| r.id).collect();
        assert!(
            c.pick(&store, &config, at_wake.now(), &pending, 10)
                .expect("pick")
                .is_empty()
        );
    }

    #[test]
    fn wakes_for_the_earliest_retry_inside_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hours = r#""calling_hours_start": "00:00", "calling_hours_end": "24:00""#;
        let (store, _config, loaded) = setup(dir.path(), hours, &["+12125550101", "+12125550102"]);
        let now = t("2026-01-05T12:00:00Z");
        for (phone, at) in [
            ("+12125550101", 1_767_618_000),
            ("+12125550102", 1_767_617_000),
        ] {
            store
                .conn()
                .execute(
                    "UPDATE contacts SET attempts = 1, next_attempt_at = ?2 WHERE phone = ?1",
                    rusqlite::params![phone, at],
                )
                .expect("update");
        }
        let mut c = CampaignState::new(loaded, now);
        let wake = c.wake_at(&store, now).expect("wake");
        assert_eq!(wake, Some(crate::store::instant(1_767_617_000)));
        assert!(wake.is_some_and(|w| w > now));
    }

    #[test]
    fn a_cron_campaign_places_only_at_its_fire_time_and_once_per_wave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = r#""calling_hours_start": "00:00", "calling_hours_end": "24:00", "schedule": "0 10 * * *""#;
        let (store, config, loaded) = setup(dir.path(), extra, &["+12125550101", "+12125550102"]);
        // 09:30 New York: the next wave is 10:00 local = 15:00Z
        let now = t("2026-01-05T14:30:00Z");
        let mut c = CampaignState::new(loaded, now);
        let none = HashSet::new();
        assert!(
            c.pick(&store, &config, now, &none, 10)
                .expect("pick")
                .is_empty()
        );
        assert_eq!(
            c.wake_at(&store, now).expect("wake"),
            Some(t("2026-01-05T15:00:00Z"))
        );
        let fire = t("2026-01-05T15:00:00Z");
        assert_eq!(
            c.pick(&store, &config, fire, &none, 1).expect("pick").len(),
            1
        );
        assert_eq!(
            c.pick(&store, &config, fire, &none, 10)
                .expect("pick")
                .len(),
            1
        );
        // the wave is spent: nothing more until the next fire time
        assert!(
            c.pick(&store, &config, fire, &none, 10)
                .expect("pick")
                .is_empty()
        );
        assert_eq!(
            c.wake_at(&store, fire).expect("wake"),
            Some(t("2026-01-06T15:00:00Z"))
        );
    }

    #[test]
    fn nothing_to_wake_for_after_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = r#""end_at": "2026-01-01T00:00:00Z""#;
        let (store, _config, loaded) = setup(dir.path(), extra, &["+12125550101"]);
        let now = t("2026-01-05T12:00:00Z");
        let mut c = CampaignState::new(loaded, now);
        assert_eq!(c.wake_at(&store, now).expect("wake"), None);
    }

    #[test]
    fn honours_hours_across_a_day_boundary_and_an_excluded_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = r#""calling_hours_start": "09:00", "calling_hours_end": "17:00", "excluded_days": ["Saturday", "Sunday"]"#;
        let (store, config, loaded) = setup(dir.path(), extra, &["+12125550101"]);
        // Friday 16:59:59 in New York: due; one second later it is not, and the next window is
        // Monday 09:00 local (the weekend is excluded), never Saturday.
        let friday = t("2026-01-09T21:59:59Z");
        let mut c = CampaignState::new(loaded, friday);
        let none = HashSet::new();
        assert_eq!(
            c.pick(&store, &config, friday, &none, 10)
                .expect("pick")
                .len(),
            1
        );
        let closed = t("2026-01-09T22:00:00Z");
        assert!(
            c.pick(&store, &config, closed, &none, 10)
                .expect("pick")
                .is_empty()
        );
        assert_eq!(
            c.wake_at(&store, closed).expect("wake"),
            Some(t("2026-01-12T14:00:00Z"))
        );
        for hour in [
            "2026-01-10T14:00:00Z",
            "2026-01-11T15:30:00Z",
            "2026-01-12T13:59:59Z",
        ] {
            assert!(
                c.pick(&store, &config, t(hour), &none, 10)
                    .expect("pick")
                    .is_empty(),
                "{hour}"
            );
        }
        assert_eq!(
            c.pick(&store, &config, t("2026-01-12T14:00:00Z"), &none, 10)
                .expect("pick")
                .len(),
            1
        );
    }
}
