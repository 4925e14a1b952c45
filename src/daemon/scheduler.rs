//! A campaign as the daemon's loop sees it: its loaded rules, its cron wave, and when it may
//! next have a contact to place. The decisions themselves are the engine's (`due_contacts`) and
//! `schedule`'s pure wake-up arithmetic (`next_wake`, `next_fire`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::decision::Loaded;
use crate::engine::due_contacts;
use crate::schedule::{next_fire, next_wake};
use crate::store::{ContactRow, Store, StoreError};

/// A campaign as the scheduler sees it: the stored row and rules, plus its cron wave state.
pub struct CampaignState {
    pub loaded: Arc<Loaded>,
    /// The distinct zone sets of its open contacts (a superset is fine); `None` = not read yet.
    zone_sets: Option<Vec<Vec<Tz>>>,
    /// The next cron fire time (campaigns with a `schedule`).
    pub next_fire: Option<DateTime<Utc>>,
    /// Contacts due at the last fire time and not placed yet.
    pub wave: VecDeque<i64>,
}

impl CampaignState {
    pub fn new(loaded: Arc<Loaded>, now: DateTime<Utc>) -> Self {
        let next_fire = fire_after(&loaded, now, true);
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
        self.loaded.id()
    }

    pub fn name(&self) -> &str {
        self.loaded.name()
    }

    /// Up to `limit` contacts to place now, skipping `pending` ones. A cron campaign first
    /// opens a wave when its fire time has come, then serves only that wave.
    pub fn pick(
        &mut self,
        db: &Store,
        daily_cap: Option<u32>,
        now: DateTime<Utc>,
        pending: &HashSet<i64>,
        limit: usize,
    ) -> Result<Vec<ContactRow>, StoreError> {
        if !self.loaded.active() {
            self.wave.clear();
            return Ok(Vec::new());
        }
        if self.loaded.campaign.schedule.is_none() {
            return due_contacts(db, &self.loaded, daily_cap, now, pending, limit);
        }
        if let Some(fire) = self.next_fire
            && now >= fire
        {
            let due = due_contacts(db, &self.loaded, daily_cap, now, pending, usize::MAX)?;
            tracing::info!(campaign = %self.name(), contacts = due.len(), "cron wave");
            let queued: HashSet<i64> = self.wave.iter().copied().collect();
            self.wave
                .extend(due.iter().map(|c| c.id).filter(|id| !queued.contains(id)));
            self.next_fire = fire_after(&self.loaded, now, false);
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
    pub fn wake_at(
        &mut self,
        db: &Store,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if !self.loaded.active() {
            return Ok(None);
        }
        if self.loaded.campaign.schedule.is_some() {
            return Ok(self.next_fire);
        }
        let retry = db.earliest_retry(self.id(), now)?;
        if self.zone_sets.is_none() {
            self.zone_sets = Some(zone_sets(db, &self.loaded)?);
        }
        let sets = self.zone_sets.as_deref().unwrap_or_default();
        Ok(next_wake(&self.loaded.campaign.rules, sets, retry, now))
    }
}

/// The campaign's next cron fire time after (or at) `now`.
fn fire_after(loaded: &Loaded, now: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
    let schedule = loaded.campaign.schedule.as_ref()?;
    let next = next_fire(schedule, loaded.campaign.rules.timezone, now, inclusive);
    if next.is_none() {
        tracing::warn!(campaign = %loaded.name(), schedule = %schedule.source, "schedule has no next fire time");
    }
    next
}

/// The distinct zone sets of a campaign's open contacts.
fn zone_sets(db: &Store, loaded: &Loaded) -> Result<Vec<Vec<Tz>>, StoreError> {
    let mut sets: Vec<Vec<Tz>> = Vec::new();
    for z in db.open_zone_lists(loaded.id())? {
        let mut zs: Vec<Tz> = z
            .as_deref()
            .unwrap_or("")
            .split('|')
            .filter_map(|z| z.parse::<Tz>().ok())
            .collect();
        if zs.is_empty() {
            zs.push(loaded.campaign.rules.timezone);
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

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    /// A store in `dir` holding one campaign (extra JSON fields) and `phones` as open contacts.
    fn setup(dir: &Path, extra: &str, phones: &[&str]) -> (Store, Option<u32>, Arc<Loaded>) {
        let tz = chrono_tz::America::New_York;
        let store = Store::open(&dir.join("dialer.db")).expect("store");
        let text =
            format!(r#"{{"name": "w", "message": "hi", "timezone": "America/New_York", {extra}}}"#);
        json::parse(&text, Defaults { timezone: tz }).expect("campaign validates");
        let (id, _) = store
            .tx()
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
        let loaded = Loaded::load(row, tz).expect("loads");
        (store, None, Arc::new(loaded))
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
            c.pick(&store, config, clock.now(), &none, 10)
                .expect("pick")
                .is_empty()
        );
        let wake = c.wake_at(&store, clock.now()).expect("wake");
        assert_eq!(wake, Some(t("2026-01-05T14:00:00Z")));
        let at_wake = FixedClock(t("2026-01-05T14:00:00Z"));
        let due = c
            .pick(&store, config, at_wake.now(), &none, 10)
            .expect("pick");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].phone, "+12125550101");
        // a contact in the window and already placed (pending) is not picked again
        let pending: HashSet<i64> = due.iter().map(|r| r.id).collect();
        assert!(
            c.pick(&store, config, at_wake.now(), &pending, 10)
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
            c.pick(&store, config, now, &none, 10)
                .expect("pick")
                .is_empty()
        );
        assert_eq!(
            c.wake_at(&store, now).expect("wake"),
            Some(t("2026-01-05T15:00:00Z"))
        );
        let fire = t("2026-01-05T15:00:00Z");
        assert_eq!(
            c.pick(&store, config, fire, &none, 1).expect("pick").len(),
            1
        );
        assert_eq!(
            c.pick(&store, config, fire, &none, 10).expect("pick").len(),
            1
        );
        // the wave is spent: nothing more until the next fire time
        assert!(
            c.pick(&store, config, fire, &none, 10)
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
            c.pick(&store, config, friday, &none, 10)
                .expect("pick")
                .len(),
            1
        );
        let closed = t("2026-01-09T22:00:00Z");
        assert!(
            c.pick(&store, config, closed, &none, 10)
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
                c.pick(&store, config, t(hour), &none, 10)
                    .expect("pick")
                    .is_empty(),
                "{hour}"
            );
        }
        assert_eq!(
            c.pick(&store, config, t("2026-01-12T14:00:00Z"), &none, 10)
                .expect("pick")
                .len(),
            1
        );
    }
}
