//! Property tests (fuzzing in CI, SPEC §10) of a campaign's `schedule` crontab, through
//! validation and then [`next_fire`] over many instants and zones, and of the duration parsers
//! ([`bounds::parse_duration`], [`json::parse_delay`]): never a panic, a fire time never before
//! `now`, an accepted duration never over its bound.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); failures proptest finds are
//! kept in `proptest-regressions/campaign/schedule_fuzz_tests.txt` and replayed first.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use super::fuzz_tests::{arb_json, defaults, edge_number, edge_strings};
use super::json;
use crate::bounds;
use crate::schedule::next_fire;

/// Crontab-like text: fields built from cron's own vocabulary, 4 to 7 of them.
fn cron_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_owned()),
        Just("?".to_owned()),
        Just("L".to_owned()),
        (0u32..70).prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        select(
            &[
                "MON", "sun", "JAN", "dec", "5L", "15W", "LW", "1#3", "7#5", "0#1"
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    let field = prop_oneof![
        3 => atom.clone(),
        1 => (atom.clone(), atom.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => (atom.clone(), 0u32..100).prop_map(|(a, n)| format!("{a}/{n}")),
        1 => prop::collection::vec(atom, 1..4).prop_map(|v| v.join(",")),
    ];
    prop::collection::vec(field, 4..=7).prop_map(|v| v.join(" "))
}

const ZONES: &[Tz] = &[
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::America::Santiago,
    chrono_tz::America::St_Johns,
    chrono_tz::Europe::London,
    chrono_tz::Europe::Madrid,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Apia,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Pacific::Kiritimati,
    chrono_tz::Asia::Tehran,
    chrono_tz::Asia::Kathmandu,
];

/// An instant between 1900 and 2200 (UTC seconds), to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-2_208_988_800i64..7_258_118_400)
        .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range"))
}

fn schedule_of(text: &str) -> Option<super::model::Schedule> {
    let doc = json!({"name": "w", "message": "hi", "schedule": text});
    json::parse(&doc.to_string(), defaults())
        .ok()
        .and_then(|p| p.campaign.schedule)
}

const DURATION_MAXIMA: &[Duration] = &[
    Duration::ZERO,
    Duration::from_secs(1),
    bounds::MAX_SHUTDOWN_GRACE,
    bounds::MAX_WAIT,
    bounds::MAX_RETRY_DELAY,
    Duration::MAX,
];

fn duration_text() -> impl Strategy<Value = String> {
    let unit = select(
        &[
            "", "ns", "us", "ms", "s", "sec", "m", "min", "h", "hr", "d", "day", "days", "w",
            "week", "M", "month", "y", "year", "years", "µs", "x",
        ][..],
    );
    let number = prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{10,25}",
        "[0-9]{1,4}\\.[0-9]{1,4}",
        "-[0-9]{1,3}",
    ];
    let part = (number, " ?", unit).prop_map(|(n, s, u)| format!("{n}{s}{u}"));
    prop_oneof![
        4 => prop::collection::vec(part, 1..4).prop_map(|v| v.join(" ")),
        1 => edge_strings(),
    ]
}

proptest! {
    #[test]
    fn any_schedule_text_never_panics(text in prop_oneof![cron_text(), ".{0,40}"]) {
        let _ = schedule_of(&text);
    }

    #[test]
    fn next_fire_of_a_valid_schedule_never_panics_and_moves_forward(
        text in cron_text(),
        zone in select(ZONES),
        nows in prop::collection::vec(instant(), 1..4),
        inclusive in any::<bool>(),
    ) {
        let Some(schedule) = schedule_of(&text) else {
            return Ok(());
        };
        for now in nows {
            if let Some(t) = next_fire(&schedule, zone, now, inclusive) {
                prop_assert!(t > now || (inclusive && t == now), "{text} in {zone} at {now}: {t}");
            }
        }
    }

    #[test]
    fn parse_duration_never_panics_and_keeps_its_bound(
        text in duration_text(),
        max in select(DURATION_MAXIMA),
    ) {
        match bounds::parse_duration(&text, max) {
            Ok(d) => prop_assert!(d <= max, "`{text}` → {d:?} over {max:?}"),
            Err(e) => prop_assert!(e.to_string().contains(&text)),
        }
    }

    #[test]
    fn retry_delays_never_panic_and_keep_their_bound(
        value in prop_oneof![edge_number(), duration_text().prop_map(Value::String), arb_json()],
    ) {
        if let Ok(d) = json::parse_delay("retry_delays.busy", &value) {
            prop_assert!(d <= bounds::MAX_RETRY_DELAY, "{value} → {d:?}");
        }
    }
}

/// Hand-picked schedules and durations kept as seeds.
#[test]
fn seed_schedules_and_durations() {
    for text in [
        "0 0 31 2 *",
        "0 0 30 2 *",
        "59 23 31 12 *",
        "0 0 1 1 0#5",
        "* * * * * *",
    ] {
        let schedule = schedule_of(text).unwrap_or_else(|| panic!("`{text}` is valid cron"));
        for zone in ZONES {
            for now in [
                "1900-01-01T00:00:00Z",
                "2026-03-08T07:00:00Z",
                "2199-12-31T23:59:59Z",
            ] {
                let now = now.parse().expect("instant");
                if let Some(t) = next_fire(&schedule, *zone, now, false) {
                    assert!(t > now, "`{text}` in {zone} at {now}: {t}");
                }
            }
        }
    }
    for (text, ok) in [
        ("365days", true),
        ("365days 1ns", false),
        ("18446744073709551616s", false),
    ] {
        let got = bounds::parse_duration(text, bounds::MAX_RETRY_DELAY);
        assert_eq!(got.is_ok(), ok, "`{text}`: {got:?}");
    }
}
