//! PURE wake-up arithmetic for the daemon: when a campaign without a `schedule` may next have a
//! contact become due (its start, the earliest retry, each zone set's next window opening), and
//! a cron campaign's next wave.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::window::{in_window, next_window_start};
use crate::campaign::model::{CampaignRules, Schedule};

/// The earliest instant after `now` worth waking for: the campaign's start, the earliest future
/// retry, and each zone set's next window opening (when the window is closed now). `None` when
/// nothing can become due without a change (or the campaign has ended).
pub fn next_wake(
    rules: &CampaignRules,
    zone_sets: &[Vec<Tz>],
    earliest_retry: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
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

/// The next fire time of a cron `schedule`, evaluated in the campaign's time zone; at `now`
/// itself too when `inclusive`. `None` when the expression never fires again.
pub fn next_fire(
    schedule: &Schedule,
    timezone: Tz,
    now: DateTime<Utc>,
    inclusive: bool,
) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&timezone);
    schedule
        .cron
        .find_next_occurrence(&local, inclusive)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::Weekday;

    use super::super::window::tests::{rules, t};
    use super::*;
    use crate::campaign::json::{self, Defaults};

    const NY: Tz = chrono_tz::America::New_York;
    const LA: Tz = chrono_tz::America::Los_Angeles;

    /// One row of the table: rules, zone sets, earliest retry, now, expected wake-up.
    struct Case<'a> {
        rules: &'a CampaignRules,
        zones: &'a [Vec<Tz>],
        retry: Option<&'a str>,
        now: &'a str,
        expected: Option<&'a str>,
    }

    #[test]
    fn next_wake_table() {
        let weekdays = rules("09:00-17:00", &[Weekday::Sat, Weekday::Sun], &[]);
        let mut bounded = rules("09:00-17:00", &[], &[]);
        bounded.start_at = Some(t("2026-01-07T15:00:00Z"));
        bounded.end_at = Some(t("2026-01-08T00:00:00Z"));
        let ny = vec![vec![NY]];
        let both = vec![vec![NY], vec![LA]];
        let case = |rules, zones, retry, now, expected| Case {
            rules,
            zones,
            retry,
            now,
            expected,
        };
        let cases = [
            // Monday 07:00 New York: the window opens at 09:00 local
            case(
                &weekdays,
                &ny,
                None,
                "2026-01-05T12:00:00Z",
                Some("2026-01-05T14:00:00Z"),
            ),
            // inside the window and nothing to retry: nothing to wake for
            case(&weekdays, &ny, None, "2026-01-05T15:00:00Z", None),
            // inside the window: the earliest future retry
            case(
                &weekdays,
                &ny,
                Some("2026-01-05T15:30:00Z"),
                "2026-01-05T15:00:00Z",
                Some("2026-01-05T15:30:00Z"),
            ),
            // a retry already due is not a wake-up
            case(
                &weekdays,
                &ny,
                Some("2026-01-05T14:30:00Z"),
                "2026-01-05T15:00:00Z",
                None,
            ),
            // Friday after hours: Monday 09:00, never the weekend
            case(
                &weekdays,
                &ny,
                None,
                "2026-01-09T22:00:00Z",
                Some("2026-01-12T14:00:00Z"),
            ),
            // two zone sets: the earlier opening (New York opens before Los Angeles)
            case(
                &weekdays,
                &both,
                None,
                "2026-01-05T12:00:00Z",
                Some("2026-01-05T14:00:00Z"),
            ),
            // New York open, Los Angeles not yet: Los Angeles's opening
            case(
                &weekdays,
                &both,
                None,
                "2026-01-05T15:00:00Z",
                Some("2026-01-05T17:00:00Z"),
            ),
            // before the campaign's start: the start
            case(
                &bounded,
                &ny,
                None,
                "2026-01-07T12:00:00Z",
                Some("2026-01-07T15:00:00Z"),
            ),
            // after its end: never
            case(&bounded, &ny, None, "2026-01-08T00:00:00Z", None),
            // a retry after the end is no reason to wake
            case(
                &bounded,
                &ny,
                Some("2026-01-09T00:00:00Z"),
                "2026-01-07T16:00:00Z",
                None,
            ),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            assert_eq!(
                next_wake(c.rules, c.zones, c.retry.map(t), t(c.now)),
                c.expected.map(t),
                "case {i}: now {}",
                c.now
            );
        }
    }

    fn schedule(cron: &str) -> Schedule {
        let text = format!(r#"{{"name": "w", "message": "hi", "schedule": "{cron}"}}"#);
        json::parse(&text, Defaults { timezone: NY })
            .expect("campaign validates")
            .campaign
            .schedule
            .expect("has a schedule")
    }

    #[test]
    fn next_fire_table() {
        // (crontab, zone, now, inclusive, expected)
        let cases = [
            // 10:00 New York = 15:00Z in winter
            (
                "0 10 * * *",
                NY,
                "2026-01-05T14:30:00Z",
                false,
                Some("2026-01-05T15:00:00Z"),
            ),
            // at the fire time: inclusive fires now, exclusive the next day
            (
                "0 10 * * *",
                NY,
                "2026-01-05T15:00:00Z",
                true,
                Some("2026-01-05T15:00:00Z"),
            ),
            (
                "0 10 * * *",
                NY,
                "2026-01-05T15:00:00Z",
                false,
                Some("2026-01-06T15:00:00Z"),
            ),
            // summer time: 10:00 New York = 14:00Z
            (
                "0 10 * * *",
                NY,
                "2026-07-06T12:00:00Z",
                false,
                Some("2026-07-06T14:00:00Z"),
            ),
            // weekdays only (Monday = 1): Saturday → Monday
            (
                "0 10 * * 1-5",
                NY,
                "2026-01-10T12:00:00Z",
                false,
                Some("2026-01-12T15:00:00Z"),
            ),
            // Sunday as 0 and as 7
            (
                "0 10 * * 0",
                NY,
                "2026-01-05T12:00:00Z",
                false,
                Some("2026-01-11T15:00:00Z"),
            ),
            (
                "0 10 * * 7",
                NY,
                "2026-01-05T12:00:00Z",
                false,
                Some("2026-01-11T15:00:00Z"),
            ),
            // 6 fields, seconds first
            (
                "30 0 10 * * *",
                LA,
                "2026-01-05T12:00:00Z",
                false,
                Some("2026-01-05T18:00:30Z"),
            ),
        ];
        for (cron, zone, now, inclusive, expected) in cases {
            assert_eq!(
                next_fire(&schedule(cron), zone, t(now), inclusive),
                expected.map(t),
                "{cron} from {now}"
            );
        }
    }
}
