//! Where stored rows meet the pure decision: builds a [`ContactView`] from a contact row and its
//! campaign, and asks [`schedule::decide`]. `dialer plan` and the scheduler both come through here.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::campaign::model::Campaign;
use crate::schedule::{self, ContactView, Decision, Policy};
use crate::store::{ContactRow, Store};

/// The zones a contact is called in: its own (from import), else the campaign's.
pub fn contact_zones(row: &ContactRow, campaign: &Campaign) -> Vec<Tz> {
    let own: Vec<Tz> = row
        .zones
        .as_deref()
        .unwrap_or("")
        .split('|')
        .filter_map(|z| z.parse::<Tz>().ok())
        .collect();
    if own.is_empty() {
        vec![campaign.rules.timezone]
    } else {
        own
    }
}

/// Decides for one stored contact at `at`.
pub fn evaluate(
    store: &Store,
    campaign: &Campaign,
    paused: bool,
    daily_cap: Option<u32>,
    row: &ContactRow,
    zones: &[Tz],
    at: DateTime<Utc>,
) -> crate::store::Result<Decision> {
    let recent = match daily_cap {
        Some(_) => store.recent_attempts(&row.phone, at - Duration::hours(24))?,
        None => Vec::new(),
    };
    let view = ContactView {
        state: row.state,
        zones,
        attempts: row.attempts,
        next_attempt_at: row.next_attempt_at,
        in_flight: row.in_flight,
        on_dnc: row.on_dnc,
        recent_attempts: &recent,
    };
    let policy = Policy {
        rules: &campaign.rules,
        paused,
        draft: campaign.is_draft(),
        daily_cap,
    };
    Ok(schedule::decide(&view, &policy, at))
}
