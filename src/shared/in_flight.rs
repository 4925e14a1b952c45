//! Calls in flight, counted in memory from the moment of their claim (SPEC §10: concurrency
//! limits hold at every instant). A placement first takes a [`Reservation`] — synchronously,
//! under one lock, against the global and the campaign's limit — then binds it to the attempt it
//! claimed; the slot is released when that attempt reaches a final state (or at once, when the
//! claim did not happen). The database stays the record; this is the gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Slots {
    /// Open attempts → their campaign.
    attempts: HashMap<i64, i64>,
    /// Reserved + open, per campaign.
    per_campaign: HashMap<i64, u32>,
    total: u32,
}

/// The in-flight count, shared by the placement code and the callback handlers.
#[derive(Debug, Default)]
pub struct InFlight {
    slots: Mutex<Slots>,
    /// Woken whenever a slot frees (an attempt ended, a reservation was dropped).
    freed: Notify,
}

/// A slot taken for a placement; dropped unbound, it frees the slot.
#[derive(Debug)]
pub struct Reservation {
    flight: Arc<InFlight>,
    campaign_id: i64,
    bound: bool,
}

impl InFlight {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a call of `campaign_id` if one is free under both limits.
    pub fn try_reserve(
        self: &Arc<Self>,
        campaign_id: i64,
        global_limit: u32,
        campaign_limit: Option<u32>,
    ) -> Option<Reservation> {
        let mut s = self.slots();
        let mine = s.per_campaign.get(&campaign_id).copied().unwrap_or(0);
        if s.total >= global_limit || campaign_limit.is_some_and(|l| mine >= l) {
            return None;
        }
        s.total += 1;
        *s.per_campaign.entry(campaign_id).or_default() += 1;
        Some(Reservation {
            flight: self.clone(),
            campaign_id,
            bound: false,
        })
    }

    /// Counts an attempt that was already open (left by an earlier run) until it ends.
    pub fn adopt(&self, attempt_id: i64, campaign_id: i64) {
        let mut s = self.slots();
        if s.attempts.insert(attempt_id, campaign_id).is_none() {
            s.total += 1;
            *s.per_campaign.entry(campaign_id).or_default() += 1;
        }
    }

    /// An attempt reached a final state (or was undone): frees its slot. Idempotent.
    pub fn ended(&self, attempt_id: i64) {
        let mut s = self.slots();
        if let Some(campaign_id) = s.attempts.remove(&attempt_id) {
            release(&mut s, campaign_id);
        }
        drop(s);
        self.freed.notify_waiters();
    }

    /// Keeps only the attempts in `open` (the database's open attempts): a safety net against a
    /// slot whose end was never reported.
    pub fn retain_open(&self, open: &std::collections::HashSet<i64>) {
        let mut s = self.slots();
        let gone: Vec<(i64, i64)> = s
            .attempts
            .iter()
            .filter(|(a, _)| !open.contains(a))
            .map(|(a, c)| (*a, *c))
            .collect();
        for (attempt, campaign) in &gone {
            s.attempts.remove(attempt);
            release(&mut s, *campaign);
        }
        drop(s);
        if !gone.is_empty() {
            tracing::warn!(count = gone.len(), "freed slots of attempts that had ended");
            self.freed.notify_waiters();
        }
    }

    /// Calls in flight (reserved or open), all campaigns.
    pub fn total(&self) -> u32 {
        self.slots().total
    }

    /// Calls in flight of one campaign.
    pub fn of_campaign(&self, campaign_id: i64) -> u32 {
        self.slots()
            .per_campaign
            .get(&campaign_id)
            .copied()
            .unwrap_or(0)
    }

    /// Whether this attempt still holds a slot.
    pub fn is_open(&self, attempt_id: i64) -> bool {
        self.slots().attempts.contains_key(&attempt_id)
    }

    /// Resolves at the next freed slot. Create it before looking at the counts (then
    /// `enable` it) so a slot freed in between is not missed.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }
}

fn release(s: &mut Slots, campaign_id: i64) {
    s.total = s.total.saturating_sub(1);
    if let Some(n) = s.per_campaign.get_mut(&campaign_id) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            s.per_campaign.remove(&campaign_id);
        }
    }
}

impl Reservation {
    /// The claim succeeded: the slot now belongs to `attempt_id` until it ends.
    pub fn bind(mut self, attempt_id: i64) {
        self.flight
            .slots()
            .attempts
            .insert(attempt_id, self.campaign_id);
        self.bound = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bound {
            return;
        }
        release(&mut self.flight.slots(), self.campaign_id);
        self.flight.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_counts_from_the_reservation_until_the_attempt_ends() {
        let f = Arc::new(InFlight::default());
        let r = f.try_reserve(1, 1, None).expect("free");
        assert!(f.try_reserve(2, 1, None).is_none(), "global limit 1 held");
        r.bind(10);
        assert!(f.try_reserve(2, 1, None).is_none(), "still open");
        f.ended(10);
        f.ended(10);
        assert_eq!(f.total(), 0, "ending twice frees once");
        assert!(f.try_reserve(2, 1, None).is_some());
    }

    #[test]
    fn a_dropped_reservation_frees_its_slot() {
        let f = Arc::new(InFlight::default());
        drop(f.try_reserve(1, 5, Some(1)).expect("free"));
        assert_eq!(f.of_campaign(1), 0);
        let _held = f.try_reserve(1, 5, Some(1)).expect("free again");
        assert!(f.try_reserve(1, 5, Some(1)).is_none(), "campaign limit 1");
        assert!(
            f.try_reserve(2, 5, Some(1)).is_some(),
            "another campaign is not held up"
        );
    }

    #[test]
    fn adopted_attempts_count_and_stale_ones_are_dropped() {
        let f = Arc::new(InFlight::default());
        f.adopt(7, 1);
        f.adopt(7, 1);
        f.adopt(8, 1);
        assert_eq!(f.of_campaign(1), 2);
        f.retain_open(&[8].into_iter().collect());
        assert_eq!((f.total(), f.is_open(7), f.is_open(8)), (1, false, true));
    }
}
