//! What follows an attempt: complete, retry at an instant, or exhausted (SPEC §5.2).

use chrono::{DateTime, Utc};

use super::{AttemptEnd, Next};
use crate::campaign::model::CampaignRules;

pub fn after_attempt(
    _rules: &CampaignRules,
    _attempts: u32,
    _end: AttemptEnd,
    _ended: DateTime<Utc>,
) -> Next {
    unimplemented!("schedule::after_attempt is being written")
}
