//! What follows an attempt: complete, retry at an instant, or exhausted (SPEC §5.2).
//!
//! The retry instant is `ended + delay` and may fall outside calling hours; the contact then
//! simply waits for its next window (`decide` reports `retry_wait`, then the window reason).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{AttemptEnd, Next};
use crate::campaign::model::{CampaignRules, Reason};

/// The contact's fate after an attempt ended at `ended`; `attempts` counts every attempt made,
/// the one that just ended included.
///
/// - `completed` without `retry_after`: complete.
/// - `completed` with `retry_after`: retry after it while attempts remain, else complete.
/// - any other reason: retry after `retry_delays` for that reason (or `default`) while attempts
///   remain, else exhausted; `retry_after` plays no part.
///
/// A delay too large to add to `ended` counts as no retry.
pub fn after_attempt(
    rules: &CampaignRules,
    attempts: u32,
    end: AttemptEnd,
    ended: DateTime<Utc>,
) -> Next {
    // attempts < 1 + max_retries, without the overflow
    let attempts_left = attempts <= rules.max_retries;
    let retry_at = |delay: Option<Duration>| {
        delay
            .filter(|_| attempts_left)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .and_then(|d| ended.checked_add_signed(d))
            .map(Next::Retry)
    };
    match end.reason {
        Reason::Completed => retry_at(end.retry_after).unwrap_or(Next::Complete),
        reason => retry_at(rules.retry_delays.delay_for(reason)).unwrap_or(Next::Exhausted),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::campaign::model::RetryDelays;

    const ENDED: &str = "2026-01-14T15:00:00Z";

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instants are RFC 3339")
            .with_timezone(&Utc)
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    /// `max_retries` 2; busy 30 min, no-answer 60 min, failed 2 h; `default` as given.
    fn rules(default: Option<Duration>) -> CampaignRules {
        CampaignRules {
            max_retries: 2,
            retry_delays: RetryDelays {
                by_reason: BTreeMap::from([
                    (Reason::Busy, mins(30)),
                    (Reason::NoAnswer, mins(60)),
                    (Reason::Failed, mins(120)),
                ]),
                default,
            },
            ..CampaignRules::default()
        }
    }

    #[test]
    fn after_attempt_table() {
        let day = Duration::from_secs(86_400);
        // (name, default delay, attempts, reason, retry_after, expected)
        type Case = (
            &'static str,
            Option<Duration>,
            u32,
            Reason,
            Option<Duration>,
            Next,
        );
        let cases: &[Case] = &[
            (
                "busy",
                None,
                1,
                Reason::Busy,
                None,
                Next::Retry(t("2026-01-14T15:30:00Z")),
            ),
            (
                "no-answer",
                None,
                1,
                Reason::NoAnswer,
                None,
                Next::Retry(t("2026-01-14T16:00:00Z")),
            ),
            (
                "failed",
                None,
                2,
                Reason::Failed,
                None,
                Next::Retry(t("2026-01-14T17:00:00Z")),
            ),
            (
                "canceled has no delay",
                None,
                1,
                Reason::Canceled,
                None,
                Next::Exhausted,
            ),
            (
                "machine has no delay",
                None,
                1,
                Reason::Machine,
                None,
                Next::Exhausted,
            ),
            (
                "canceled takes default",
                Some(mins(10)),
                1,
                Reason::Canceled,
                None,
                Next::Retry(t("2026-01-14T15:10:00Z")),
            ),
            (
                "a reason's own delay beats default",
                Some(mins(10)),
                1,
                Reason::Busy,
                None,
                Next::Retry(t("2026-01-14T15:30:00Z")),
            ),
            (
                "last retry used: 3 = 1 + max_retries",
                None,
                3,
                Reason::Busy,
                None,
                Next::Exhausted,
            ),
            (
                "last retry used, default set",
                Some(mins(10)),
                3,
                Reason::Canceled,
                None,
                Next::Exhausted,
            ),
            (
                "completed",
                None,
                1,
                Reason::Completed,
                None,
                Next::Complete,
            ),
            (
                "completed on the last attempt",
                None,
                3,
                Reason::Completed,
                None,
                Next::Complete,
            ),
            (
                "completed ignores default",
                Some(mins(10)),
                1,
                Reason::Completed,
                None,
                Next::Complete,
            ),
            (
                "completed with retry_after",
                None,
                1,
                Reason::Completed,
                Some(day),
                Next::Retry(t("2026-01-15T15:00:00Z")),
            ),
            (
                "completed with retry_after, attempts left",
                None,
                2,
                Reason::Completed,
                Some(day),
                Next::Retry(t("2026-01-15T15:00:00Z")),
            ),
            (
                "completed with retry_after, none left",
                None,
                3,
                Reason::Completed,
                Some(day),
                Next::Complete,
            ),
            (
                "retry_after ignored for no-answer",
                None,
                1,
                Reason::NoAnswer,
                Some(day),
                Next::Retry(t("2026-01-14T16:00:00Z")),
            ),
            (
                "retry_after does not rescue canceled",
                None,
                1,
                Reason::Canceled,
                Some(day),
                Next::Exhausted,
            ),
            (
                "unrepresentable delay",
                Some(Duration::MAX),
                1,
                Reason::Canceled,
                None,
                Next::Exhausted,
            ),
        ];
        for &(name, default, attempts, reason, retry_after, expected) in cases {
            let end = AttemptEnd {
                reason,
                retry_after,
            };
            assert_eq!(
                after_attempt(&rules(default), attempts, end, t(ENDED)),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn max_retries_zero_never_retries() {
        let rules = CampaignRules {
            max_retries: 0,
            ..rules(Some(mins(5)))
        };
        let end = AttemptEnd {
            reason: Reason::NoAnswer,
            retry_after: None,
        };
        assert_eq!(after_attempt(&rules, 1, end, t(ENDED)), Next::Exhausted);
    }
}
