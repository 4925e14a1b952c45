//! Calling windows: hours, excluded days and dates, evaluated in each of a contact's zones.
//!
//! A zone's window on a local date `D` is the half-open interval of instants
//! `[open(D), close(D))`, where `open(D)` is `D` at `hours.start` and `close(D)` is `D` at
//! `hours.end` (`24:00` = the next local midnight), each resolved to one instant:
//! - a local time in a spring-forward gap resolves to the first real instant after the gap;
//! - a local time in a fall-back overlap resolves to the earlier of its two instants.
//!
//! So a window is one contiguous interval even on DST days: it opens once and, once closed,
//! never reopens when the clock repeats an hour. A date whose weekday or date is excluded has no
//! window. A contact with several zones is in its window only when every zone is.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::campaign::model::CampaignRules;

/// How far [`next_window_start`] looks ahead before it gives up.
const HORIZON_DAYS: i64 = 400;

/// Longest spring-forward gap we step across (Pacific/Apia skipped a whole day in 2011).
const MAX_GAP_MINUTES: i64 = 48 * 60;

/// Safety bound on the multi-zone jumping loop; each round moves strictly forward, and windows
/// that never overlap cost about two rounds per day of the horizon.
const MAX_ROUNDS: usize = 8 * HORIZON_DAYS as usize;

/// Whether, in every zone of `zones`, `at` lies inside that zone's calling window (hours, not an
/// excluded weekday, not an excluded date). An empty `zones` means the campaign's own zone.
pub fn in_window(rules: &CampaignRules, zones: &[Tz], at: DateTime<Utc>) -> bool {
    effective_zones(rules, zones)
        .iter()
        .all(|&tz| zone_in_window(rules, tz, at))
}

/// The first instant `t >= from` with [`in_window`]; `None` when there is none within
/// 400 days (windows in far-apart zones that never overlap, every day excluded).
pub fn next_window_start(
    rules: &CampaignRules,
    zones: &[Tz],
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let zones = effective_zones(rules, zones);
    let limit = from
        .checked_add_signed(Duration::days(HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut candidate = from;
    for _ in 0..MAX_ROUNDS {
        if candidate > limit {
            return None;
        }
        let mut next = candidate;
        let mut all_open = true;
        for &tz in zones {
            if !zone_in_window(rules, tz, candidate) {
                all_open = false;
                next = next.max(next_open_in_zone(rules, tz, candidate, limit)?);
            }
        }
        if all_open {
            return Some(candidate);
        }
        candidate = next;
    }
    None
}

/// The zones to evaluate: the contact's, or the campaign's when the caller passed none.
pub(crate) fn effective_zones<'a>(rules: &'a CampaignRules, zones: &'a [Tz]) -> &'a [Tz] {
    if zones.is_empty() {
        std::slice::from_ref(&rules.timezone)
    } else {
        zones
    }
}

/// Whether a local date may be called at all (weekday and date not excluded).
fn date_allowed(rules: &CampaignRules, date: NaiveDate) -> bool {
    !rules.is_excluded_day(date.weekday()) && !rules.excluded_dates.contains(&date)
}

/// One zone's window on one local date, or `None` when the date is excluded or the window is
/// empty (e.g. it lies wholly inside a DST gap).
fn window_on(
    rules: &CampaignRules,
    tz: Tz,
    date: NaiveDate,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if !date_allowed(rules, date) {
        return None;
    }
    let open = resolve(tz, date, rules.hours.start)?;
    let close = resolve(tz, date, rules.hours.end)?;
    (open < close).then_some((open, close))
}

fn zone_in_window(rules: &CampaignRules, tz: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&tz).date_naive();
    // The window holding `at` is normally that of its local date; the neighbours only matter
    // when a transition near midnight moves the local date back or forward.
    [local.pred_opt(), Some(local), local.succ_opt()]
        .into_iter()
        .flatten()
        .filter_map(|date| window_on(rules, tz, date))
        .any(|(open, close)| open <= at && at < close)
}

/// The opening instant of the first non-empty window of `tz` that opens at or after `t`, if
/// it opens no later than `limit`.
fn next_open_in_zone(
    rules: &CampaignRules,
    tz: Tz,
    t: DateTime<Utc>,
    limit: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut date = t.with_timezone(&tz).date_naive().pred_opt()?;
    let last = limit.with_timezone(&tz).date_naive().succ_opt()?;
    while date <= last {
        if let Some((open, _)) = window_on(rules, tz, date)
            && open >= t
        {
            return (open <= limit).then_some(open);
        }
        date = date.succ_opt()?;
    }
    None
}

/// The instant at which the local clock of `tz` reads `minute` (after midnight; 1440 = the next
/// midnight) on `date`: the earlier instant in an overlap, the first instant after a gap.
fn resolve(tz: Tz, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
    let (date, minute) = if minute >= 24 * 60 {
        (date.succ_opt()?, minute - 24 * 60)
    } else {
        (date, minute)
    };
    let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?;
    let local = NaiveDateTime::new(date, time);
    if let Some(instant) = tz.from_local_datetime(&local).earliest() {
        return Some(instant.with_timezone(&Utc));
    }
    // In a gap: the first local minute that exists again is the first instant after the gap
    // (transitions fall on whole minutes).
    (1..=MAX_GAP_MINUTES).find_map(|step| {
        let later = local.checked_add_signed(Duration::minutes(step))?;
        tz.from_local_datetime(&later)
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::Weekday;
    use chrono_tz::{America, Asia, Europe, Pacific};

    use super::*;
    use crate::campaign::model::CallingHours;

    const NY: Tz = America::New_York;

    pub(in crate::schedule) fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instants are RFC 3339")
            .with_timezone(&Utc)
    }

    fn minutes(hhmm: &str) -> u16 {
        let (h, m) = hhmm.split_once(':').expect("HH:MM");
        h.parse::<u16>().expect("hour") * 60 + m.parse::<u16>().expect("minute")
    }

    /// Rules in New York with `hours` as `"HH:MM-HH:MM"`, excluded weekdays and dates.
    pub(in crate::schedule) fn rules(
        hours: &str,
        days: &[Weekday],
        dates: &[&str],
    ) -> CampaignRules {
        let (start, end) = hours.split_once('-').expect("HH:MM-HH:MM");
        CampaignRules {
            timezone: NY,
            hours: CallingHours {
                start: minutes(start),
                end: minutes(end),
            },
            excluded_days: days
                .iter()
                .map(|d| d.num_days_from_monday() as u8)
                .collect(),
            excluded_dates: dates
                .iter()
                .map(|d| d.parse::<NaiveDate>().expect("YYYY-MM-DD"))
                .collect(),
            ..CampaignRules::default()
        }
    }

    #[test]
    fn in_window_table() {
        use Weekday::*;
        let cases: &[(&str, &[Tz], CampaignRules, &str, bool)] = &[
            (
                "start is inclusive",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T14:00:00Z",
                true,
            ),
            (
                "a second before start",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T13:59:59Z",
                false,
            ),
            (
                "end is exclusive",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T23:00:00Z",
                false,
            ),
            (
                "a second before end",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T22:59:59Z",
                true,
            ),
            (
                "24:00 holds until the last second",
                &[NY],
                rules("20:00-24:00", &[], &[]),
                "2026-01-15T04:59:59Z",
                true,
            ),
            (
                "24:00 ends at local midnight",
                &[NY],
                rules("20:00-24:00", &[], &[]),
                "2026-01-15T05:00:00Z",
                false,
            ),
            (
                "a 24:00 window belongs to its own date, not the next (excluded) one",
                &[NY],
                rules("20:00-24:00", &[], &["2026-01-15"]),
                "2026-01-15T04:59:59Z",
                true,
            ),
            (
                "excluded date is the local date: 2026-01-15 in UTC, 2026-01-14 in New York",
                &[NY],
                rules("00:00-24:00", &[], &["2026-01-15"]),
                "2026-01-15T04:30:00Z",
                true,
            ),
            (
                "excluded date starts at local midnight",
                &[NY],
                rules("00:00-24:00", &[], &["2026-01-15"]),
                "2026-01-15T05:00:00Z",
                false,
            ),
            (
                "Friday in UTC is Saturday in Tokyo (Saturday excluded)",
                &[Asia::Tokyo],
                rules("08:00-21:00", &[Sat], &[]),
                "2026-01-16T23:00:00Z",
                false,
            ),
            (
                "Friday in UTC is Saturday in Tokyo (Friday excluded)",
                &[Asia::Tokyo],
                rules("08:00-21:00", &[Fri], &[]),
                "2026-01-16T23:00:00Z",
                true,
            ),
            (
                "Friday in UTC is Saturday 09:00 in Auckland (Saturday excluded)",
                &[Pacific::Auckland],
                rules("08:00-21:00", &[Sat], &[]),
                "2026-01-16T20:00:00Z",
                false,
            ),
            (
                "New York 08:30 is in hours, Chicago 07:30 is not",
                &[NY, America::Chicago],
                rules("08:00-21:00", &[], &[]),
                "2026-01-14T13:30:00Z",
                false,
            ),
            (
                "New York alone at 08:30",
                &[NY],
                rules("08:00-21:00", &[], &[]),
                "2026-01-14T13:30:00Z",
                true,
            ),
            (
                "both zones open at Chicago 08:00",
                &[NY, America::Chicago],
                rules("08:00-21:00", &[], &[]),
                "2026-01-14T14:00:00Z",
                true,
            ),
            (
                "New York closes at 21:00 while Chicago is still open",
                &[NY, America::Chicago],
                rules("08:00-21:00", &[], &[]),
                "2026-01-15T02:00:00Z",
                false,
            ),
            (
                "no zones means the campaign's zone",
                &[],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T13:59:59Z",
                false,
            ),
            // New York spring forward, 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z.
            (
                "NY gap: start 02:30 not open at 01:59:59 EST",
                &[NY],
                rules("02:30-10:00", &[], &[]),
                "2026-03-08T06:59:59Z",
                false,
            ),
            (
                "NY gap: start 02:30 opens at 03:00 EDT",
                &[NY],
                rules("02:30-10:00", &[], &[]),
                "2026-03-08T07:00:00Z",
                true,
            ),
            (
                "NY gap: end 02:30 still open at 01:59:59 EST",
                &[NY],
                rules("00:00-02:30", &[], &[]),
                "2026-03-08T06:59:59Z",
                true,
            ),
            (
                "NY gap: end 02:30 closes at 03:00 EDT",
                &[NY],
                rules("00:00-02:30", &[], &[]),
                "2026-03-08T07:00:00Z",
                false,
            ),
            // New York fall back, 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z.
            (
                "NY overlap: start 01:30 not open at 01:29:59 EDT",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T05:29:59Z",
                false,
            ),
            (
                "NY overlap: start 01:30 opens at the first 01:30",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T05:30:00Z",
                true,
            ),
            (
                "NY overlap: window stays open at 01:15 EST",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T06:15:00Z",
                true,
            ),
            (
                "NY overlap: end 09:00 EST, last second",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T13:59:59Z",
                true,
            ),
            (
                "NY overlap: end 09:00 EST",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T14:00:00Z",
                false,
            ),
            (
                "NY overlap: end 01:30 open at 01:29:59 EDT",
                &[NY],
                rules("00:00-01:30", &[], &[]),
                "2026-11-01T05:29:59Z",
                true,
            ),
            (
                "NY overlap: end 01:30 closes at the first 01:30",
                &[NY],
                rules("00:00-01:30", &[], &[]),
                "2026-11-01T05:30:00Z",
                false,
            ),
            (
                "NY overlap: end 01:30 does not reopen at 01:15 EST",
                &[NY],
                rules("00:00-01:30", &[], &[]),
                "2026-11-01T06:15:00Z",
                false,
            ),
            // Madrid spring forward, 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z.
            (
                "Madrid gap: 01:59:59 CET",
                &[Europe::Madrid],
                rules("02:15-12:00", &[], &[]),
                "2026-03-29T00:59:59Z",
                false,
            ),
            (
                "Madrid gap: opens at 03:00 CEST",
                &[Europe::Madrid],
                rules("02:15-12:00", &[], &[]),
                "2026-03-29T01:00:00Z",
                true,
            ),
            (
                "Madrid gap: 11:59:59 CEST",
                &[Europe::Madrid],
                rules("02:15-12:00", &[], &[]),
                "2026-03-29T09:59:59Z",
                true,
            ),
            (
                "Madrid gap: closes 12:00 CEST",
                &[Europe::Madrid],
                rules("02:15-12:00", &[], &[]),
                "2026-03-29T10:00:00Z",
                false,
            ),
            // Madrid fall back, 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z.
            (
                "Madrid overlap: 02:29:59 CEST",
                &[Europe::Madrid],
                rules("02:30-12:00", &[], &[]),
                "2026-10-25T00:29:59Z",
                false,
            ),
            (
                "Madrid overlap: opens at the first 02:30",
                &[Europe::Madrid],
                rules("02:30-12:00", &[], &[]),
                "2026-10-25T00:30:00Z",
                true,
            ),
            (
                "Madrid overlap: stays open at 02:15 CET",
                &[Europe::Madrid],
                rules("02:30-12:00", &[], &[]),
                "2026-10-25T01:15:00Z",
                true,
            ),
            (
                "Madrid overlap: 11:59:59 CET",
                &[Europe::Madrid],
                rules("02:30-12:00", &[], &[]),
                "2026-10-25T10:59:59Z",
                true,
            ),
            (
                "Madrid overlap: closes 12:00 CET",
                &[Europe::Madrid],
                rules("02:30-12:00", &[], &[]),
                "2026-10-25T11:00:00Z",
                false,
            ),
        ];
        for (name, zones, rules, at, expected) in cases {
            assert_eq!(in_window(rules, zones, t(at)), *expected, "{name}");
        }
    }

    #[test]
    fn next_window_start_table() {
        use Weekday::*;
        let every_day = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];
        // (name, zones, rules, from, expected)
        type Case = (
            &'static str,
            &'static [Tz],
            CampaignRules,
            &'static str,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                "already open",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T15:00:00Z",
                Some("2026-01-14T15:00:00Z"),
            ),
            (
                "later the same day",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T12:00:00Z",
                Some("2026-01-14T14:00:00Z"),
            ),
            (
                "at the end: next day",
                &[NY],
                rules("09:00-18:00", &[], &[]),
                "2026-01-14T23:00:00Z",
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "multi-zone: waits for the later zone",
                &[NY, America::Chicago],
                rules("08:00-21:00", &[], &[]),
                "2026-01-14T13:30:00Z",
                Some("2026-01-14T14:00:00Z"),
            ),
            (
                "Friday after hours, weekend, Monday holiday: Tuesday 09:00",
                &[NY],
                rules("09:00-18:00", &[Sat, Sun], &["2026-01-19"]),
                "2026-01-17T00:00:00Z",
                Some("2026-01-20T14:00:00Z"),
            ),
            (
                "Tokyo Saturday morning: Monday 08:00 JST",
                &[Asia::Tokyo],
                rules("08:00-21:00", &[Sat, Sun], &[]),
                "2026-01-16T23:00:00Z",
                Some("2026-01-18T23:00:00Z"),
            ),
            (
                "New York and Madrid: overlap 14:00Z-20:00Z, from Madrid's close",
                &[NY, Europe::Madrid],
                rules("09:00-21:00", &[], &[]),
                "2026-01-14T20:00:00Z",
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "New York and Madrid: inside the overlap",
                &[NY, Europe::Madrid],
                rules("09:00-21:00", &[], &[]),
                "2026-01-14T19:59:59Z",
                Some("2026-01-14T19:59:59Z"),
            ),
            (
                "windows that never overlap",
                &[NY, Asia::Tokyo],
                rules("09:00-10:00", &[], &[]),
                "2026-01-14T00:00:00Z",
                None,
            ),
            (
                "every weekday excluded",
                &[NY],
                rules("09:00-18:00", &every_day, &[]),
                "2026-01-14T00:00:00Z",
                None,
            ),
            (
                "whole-day windows: Saturday to Monday midnight",
                &[NY],
                rules("00:00-24:00", &[Sat, Sun], &[]),
                "2026-01-17T12:00:00Z",
                Some("2026-01-19T05:00:00Z"),
            ),
            (
                "whole-day windows are continuous across midnight",
                &[NY],
                rules("00:00-24:00", &[], &[]),
                "2026-01-15T05:00:00Z",
                Some("2026-01-15T05:00:00Z"),
            ),
            (
                "NY gap: start 02:30 opens 03:00 EDT",
                &[NY],
                rules("02:30-10:00", &[], &[]),
                "2026-03-08T05:00:00Z",
                Some("2026-03-08T07:00:00Z"),
            ),
            (
                "NY overlap: opens at the first 01:30",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T04:00:00Z",
                Some("2026-11-01T05:30:00Z"),
            ),
            (
                "NY overlap: open at 01:00 EST, no second opening at 01:30 EST",
                &[NY],
                rules("01:30-09:00", &[], &[]),
                "2026-11-01T06:00:00Z",
                Some("2026-11-01T06:00:00Z"),
            ),
            (
                "NY overlap: end 01:30 closed for the day, next midnight EST",
                &[NY],
                rules("00:00-01:30", &[], &[]),
                "2026-11-01T05:30:00Z",
                Some("2026-11-02T05:00:00Z"),
            ),
            (
                "Madrid gap: start 02:15 opens 03:00 CEST",
                &[Europe::Madrid],
                rules("02:15-12:00", &[], &[]),
                "2026-03-28T23:00:00Z",
                Some("2026-03-29T01:00:00Z"),
            ),
            (
                "Madrid overlap: opens at the first 02:30",
                &[Europe::Madrid],
                rules("02:30-12:00", &[], &[]),
                "2026-10-24T22:00:00Z",
                Some("2026-10-25T00:30:00Z"),
            ),
            (
                "a window wholly inside the gap is skipped",
                &[NY],
                rules("02:00-02:45", &[], &[]),
                "2026-03-08T05:00:00Z",
                Some("2026-03-09T06:00:00Z"),
            ),
        ];
        for (name, zones, rules, from, expected) in cases {
            assert_eq!(
                next_window_start(rules, zones, t(from)),
                expected.map(t),
                "{name}"
            );
        }
    }

    #[test]
    fn next_window_start_is_in_window_and_nothing_earlier_is() {
        // Cross-check the jumping search against a minute scan over a DST week in two zones.
        let rules = rules("01:30-03:00", &[], &[]);
        let zones = [NY, America::Chicago];
        let mut at = t("2026-10-31T00:00:00Z");
        while at < t("2026-11-03T00:00:00Z") {
            let next = next_window_start(&rules, &zones, at).expect("a window every day");
            assert!(
                in_window(&rules, &zones, next),
                "{at}: {next} not in window"
            );
            let mut scan = at;
            while scan < next {
                assert!(
                    !in_window(&rules, &zones, scan),
                    "{at}: {scan} in window before {next}"
                );
                scan += Duration::minutes(1);
            }
            at += Duration::minutes(17);
        }
    }
}
