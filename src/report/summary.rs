//! `report summary`: per-campaign counts and rates, computed from the store's aggregates.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ReportError;
use crate::store::{Store, SummaryCounts};

/// One campaign's summary. Serialized as JSON (`report summary --format json`) with these
/// snake_case keys, in this order:
///
/// - `campaign` (string): the campaign name
/// - `contacts`, `completed`, `exhausted`, `opted_out`, `open` (integers): contacts in total and
///   by state
/// - `dnc` (integer): open contacts whose number is on the do-not-call list
/// - `attempts` (integer): call attempts; `in_flight`: those not ended yet; `ended`: the rest
/// - `reached` (integer): ended attempts a person answered (completed, and answering machine
///   detection off or saying `human`)
/// - `answer_rate` (number, 0 to 1): `reached / ended`, 0 when nothing ended
/// - `outcomes` (object): attempt outcome name → number of attempts, sorted by name
/// - `average_talk_seconds` (number): mean duration of reached calls with a known duration, 0
///   when none
/// - `billed_minutes` (integer): sum over attempts with a positive duration of the duration
///   rounded up to the whole minute
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub campaign: String,
    pub contacts: i64,
    pub completed: i64,
    pub exhausted: i64,
    pub opted_out: i64,
    pub open: i64,
    pub dnc: i64,
    pub attempts: i64,
    pub in_flight: i64,
    pub ended: i64,
    pub reached: i64,
    pub answer_rate: f64,
    pub outcomes: BTreeMap<String, i64>,
    pub average_talk_seconds: f64,
    pub billed_minutes: i64,
}

impl Summary {
    /// Derives the rates from raw aggregates.
    pub fn from_counts(campaign: &str, c: SummaryCounts) -> Summary {
        let ratio = |num: i64, den: i64| {
            if den > 0 {
                num as f64 / den as f64
            } else {
                0.0
            }
        };
        Summary {
            campaign: campaign.to_owned(),
            contacts: c.contacts,
            completed: c.completed,
            exhausted: c.exhausted,
            opted_out: c.opted_out,
            open: c.open,
            dnc: c.dnc,
            attempts: c.attempts,
            in_flight: c.in_flight,
            ended: c.ended,
            reached: c.reached,
            answer_rate: ratio(c.reached, c.ended),
            average_talk_seconds: ratio(c.reached_talk_seconds, c.reached_timed),
            billed_minutes: c.billed_minutes,
            outcomes: c.outcomes,
        }
    }
}

/// The summary of one stored campaign.
pub fn summarize(store: &Store, campaign_id: i64, name: &str) -> Result<Summary, ReportError> {
    Ok(Summary::from_counts(
        name,
        store.summary_counts(campaign_id)?,
    ))
}
