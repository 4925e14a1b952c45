//! `report summary`: per-campaign counts and rates, computed from the store's aggregates.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ReportError;
use crate::store::{BotCounts, Store, SummaryCounts};

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
/// - `bot` (object, only for campaigns whose calls reached a bot step, SPEC §13): see
///   [`BotSummary`]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotSummary>,
}

/// The campaign's bot conversations: `sessions` (integer), how many `completed` (the bot ended
/// them) and went to the `fallback` step (turns used up, silence, bot error or timeout), and
/// both as rates of `sessions` (0 to 1). Conversations cut short by a hang-up are in neither.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BotSummary {
    pub sessions: i64,
    pub completed: i64,
    pub fallback: i64,
    pub completion_rate: f64,
    pub fallback_rate: f64,
}

impl BotSummary {
    /// `None` when the campaign had no bot conversation.
    pub fn from_counts(c: BotCounts) -> Option<BotSummary> {
        (c.sessions > 0).then(|| BotSummary {
            sessions: c.sessions,
            completed: c.completed,
            fallback: c.fallback,
            completion_rate: c.completed as f64 / c.sessions as f64,
            fallback_rate: c.fallback as f64 / c.sessions as f64,
        })
    }
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
            bot: None,
        }
    }
}

/// The summary of one stored campaign.
pub fn summarize(store: &Store, campaign_id: i64, name: &str) -> Result<Summary, ReportError> {
    let mut summary = Summary::from_counts(name, store.summary_counts(campaign_id)?);
    summary.bot = BotSummary::from_counts(store.bot_counts(campaign_id)?);
    Ok(summary)
}
