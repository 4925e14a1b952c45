//! Calling windows: hours, excluded days and dates, evaluated in each of a contact's zones.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaign::model::CampaignRules;

pub fn in_window(_rules: &CampaignRules, _zones: &[Tz], _at: DateTime<Utc>) -> bool {
    unimplemented!("schedule::in_window is being written")
}

pub fn next_window_start(
    _rules: &CampaignRules,
    _zones: &[Tz],
    _from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    unimplemented!("schedule::next_window_start is being written")
}
