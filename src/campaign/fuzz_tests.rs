//! Property tests (fuzzing in CI, SPEC §10) of the campaign JSON: arbitrary JSON values and
//! mutations of valid campaigns through [`json::parse`]. No input may panic; whatever is
//! accepted is within its bounds. Schedules and durations: `schedule_fuzz_tests`.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); failures proptest finds are
//! kept in `proptest-regressions/campaign/fuzz_tests.txt` and replayed first on every run.

use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value, json};

use super::json::{self, Defaults};
use super::model::{Campaign, Content};
use crate::bounds;

const FIELDS: &[&str] = &[
    "name",
    "timezone",
    "from",
    "calling_hours_start",
    "calling_hours_end",
    "excluded_days",
    "excluded_dates",
    "start_at",
    "end_at",
    "max_call_duration",
    "ring_timeout",
    "max_retries",
    "retry_delays",
    "machine_detection",
    "calls_per_minute",
    "max_concurrent_calls",
    "schedule",
    "message",
    "voice",
    "language",
    "script",
    // inside scripts, steps, gathers and options
    "start",
    "steps",
    "voicemail",
    "say",
    "play",
    "pause",
    "gather",
    "dial",
    "record",
    "hangup",
    "next",
    "input",
    "timeout",
    "num_digits",
    "prompt",
    "options",
    "no_input",
    "no_match",
    "digits",
    "speech",
    "outcome",
    "opt_out",
    "retry_after",
    "busy",
    "no-answer",
    "failed",
    "default",
];

/// Strings that sit on the edges of what the fields accept.
const EDGE_STRINGS: &[&str] = &[
    "",
    " ",
    "24:00",
    "00:00",
    "23:59",
    "24:01",
    "9:00",
    "09:0",
    "sat",
    "Sunday",
    "2026-02-29",
    "2026-12-25",
    "+262143-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00",
    "2026-03-08T02:30:00-05:00",
    "Europe/Madrid",
    "America/New_York",
    "Mars/Base",
    "+15005550006",
    "+0123",
    "365days",
    "365days 1ns",
    "18446744073709551615s",
    "584942417355y",
    "0 10 * * 1-5",
    "*/0 * * * *",
    "0 0 31 2 *",
    "{{name}}",
    "{{",
    "dtmf speech",
    "detect_message_end",
    "intro",
    "bye",
    "\u{feff}",
    "ñ\u{0}\u{7f}",
];

pub(super) fn edge_strings() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(EDGE_STRINGS).prop_map(str::to_owned),
        2 => "\\PC{0,12}",
        1 => ".{0,40}",
    ]
}

pub(super) fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        select(
            &[
                0.0,
                -0.0,
                -1.0,
                0.5,
                1e300,
                -1e300,
                525_600.0,
                525_600.000_001,
                4_294_967_295.0,
                4_294_967_296.0,
            ][..]
        )
        .prop_map(Value::from),
        (0u32..=100_000).prop_map(Value::from),
    ]
}

/// Any JSON value, its keys mostly the campaign format's own field names.
pub(super) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_number(),
        edge_strings().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(FIELDS).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

pub(super) fn defaults() -> Defaults {
    Defaults {
        timezone: chrono_tz::America::New_York,
    }
}

/// What a campaign that validated must hold, whatever the input was.
fn check_accepted(c: &Campaign) -> Result<(), TestCaseError> {
    prop_assert!(!c.name.trim().is_empty());
    let h = c.rules.hours;
    prop_assert!(h.start < h.end && h.start < 1440 && h.end <= 1440, "{h:?}");
    prop_assert!(c.rules.excluded_days.len() < 7);
    prop_assert!(bounds::CALL_DURATION.contains(&c.max_call_duration));
    prop_assert!(bounds::RING_TIMEOUT.contains(&c.ring_timeout));
    prop_assert!(c.rules.max_retries <= bounds::MAX_RETRIES);
    let delays = &c.rules.retry_delays;
    for d in delays.by_reason.values().chain(&delays.default) {
        prop_assert!(*d <= bounds::MAX_RETRY_DELAY, "{d:?}");
    }
    if let (Some(s), Some(e)) = (c.rules.start_at, c.rules.end_at) {
        prop_assert!(s < e);
    }
    if let Some(cap) = c.calls_per_minute {
        prop_assert!((1..=bounds::MAX_CALLS_PER_MINUTE).contains(&cap));
    }
    if let Some(cap) = c.max_concurrent_calls {
        prop_assert!((1..=bounds::MAX_CONCURRENT_CALLS).contains(&cap));
    }
    if let Content::Script(s) = &c.content {
        prop_assert!(s.steps.contains_key(&s.start));
        for (_, _, target) in s.references() {
            prop_assert!(s.steps.contains_key(target), "dangling `{target}`");
        }
        for step in s.steps.values() {
            prop_assert!(step.pause.is_none_or(|p| p <= bounds::MAX_PAUSE));
            if let Some(g) = &step.gather {
                prop_assert!(bounds::GATHER_TIMEOUT.contains(&g.timeout));
                for o in &g.options {
                    prop_assert!(o.retry_after.is_none_or(|d| d <= bounds::MAX_RETRY_DELAY));
                }
            }
        }
    }
    Ok(())
}

fn parse_value(v: &Value) -> Result<(), TestCaseError> {
    match json::parse(&v.to_string(), defaults()) {
        Ok(p) => check_accepted(&p.campaign),
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            Ok(())
        }
    }
}

const SCRIPTED: &str = include_str!("../../campaigns/appointment-reminder.json");
const SURVEY: &str = include_str!("../../campaigns/satisfaction-survey.json");
const DRAFT: &str = r#"{"name": "Campaña Optimizada", "max_call_duration": 300,
  "calling_hours_start": "09:00", "calling_hours_end": "18:00",
  "excluded_days": ["Saturday", "Sunday"], "max_retries": 2,
  "retry_delays": {"no-answer": 60, "busy": 30, "failed": 120},
  "schedule": "0 10 * * 1-5", "start_at": "2026-01-01T00:00:00Z"}"#;

/// Every JSON pointer inside `v` (the root is `""`).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            let k = k.replace('~', "~0").replace('/', "~1");
            pointers(v, format!("{at}/{k}"), out);
        }),
        Value::Array(a) => (0..a.len()).for_each(|i| pointers(&a[i], format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// One edit of a valid document: replace a value, remove it, or add a key next to it.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Value),
    Remove(Index),
    Insert(Index, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        2 => (any::<Index>(), key(), arb_json()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

fn mutate(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match m {
        Mutation::Replace(i, v) => {
            if let Some(slot) = doc.pointer_mut(&pick(i)) {
                *slot = v.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = pick(i);
            let Some((parent, last)) = p.rsplit_once('/') else {
                return;
            };
            let last = last.replace("~1", "/").replace("~0", "~");
            match doc.pointer_mut(parent) {
                Some(Value::Object(m)) => drop(m.remove(&last)),
                Some(Value::Array(a)) => {
                    if let Ok(n) = last.parse::<usize>()
                        && n < a.len()
                    {
                        a.remove(n);
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert(i, k, v) => {
            if let Some(Value::Object(m)) = doc.pointer_mut(&pick(i)) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

proptest! {
    #[test]
    fn campaign_json_of_any_shape_never_panics(v in arb_json()) {
        parse_value(&v)?;
    }

    #[test]
    fn campaign_objects_with_any_field_values_never_panic(
        name in prop_oneof![Just(Value::from("c")), arb_json()],
        fields in prop::collection::btree_map(select(FIELDS), arb_json(), 0..8),
    ) {
        let mut doc = serde_json::Map::from_iter([("name".to_owned(), name)]);
        doc.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
        parse_value(&Value::Object(doc))?;
    }

    #[test]
    fn mutated_valid_campaigns_never_panic(
        base in select(&[SCRIPTED, SURVEY, DRAFT][..]),
        edits in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut doc: Value = serde_json::from_str(base).expect("a valid campaign");
        for m in &edits {
            mutate(&mut doc, m);
        }
        parse_value(&doc)?;
    }

    #[test]
    fn campaign_text_with_edits_never_panics(
        base in select(&[SCRIPTED, DRAFT][..]),
        at in any::<Index>(),
        cut in 0usize..8,
        insert in "\\PC{0,4}",
    ) {
        // a character-level edit: cut some characters at one place, insert others
        let chars: Vec<char> = base.chars().collect();
        let i = at.index(chars.len());
        let text: String = chars[..i]
            .iter()
            .chain(insert.chars().collect::<Vec<_>>().iter())
            .chain(chars[(i + cut).min(chars.len())..].iter())
            .collect();
        if let Ok(p) = json::parse(&text, defaults()) {
            check_accepted(&p.campaign)?;
        }
    }
}

/// Hand-picked campaigns kept as seeds: each is handled without a panic, and what is accepted
/// holds [`check_accepted`].
#[test]
fn seed_campaigns() {
    let docs = [
        json!({"name": " "}),
        json!({"name": "c", "calling_hours_start": "24:00", "calling_hours_end": "24:00"}),
        json!({"name": "c", "retry_delays": {"busy": 1e300, "default": "584942417355y"}}),
        json!({"name": "c", "retry_delays": {"busy": 525_600, "failed": "365days"}}),
        json!({"name": "c", "start_at": "+262143-12-31T23:59:59Z", "schedule": "0 0 29 2 1"}),
        json!({"name": "c", "excluded_days": ["mon", "tue", "wed", "thu", "fri", "sat", "SUN"]}),
        json!({"name": "c", "script": {"start": "a", "steps": {"a": {"next": "a"}}}}),
        json!({"name": "c", "script": {"start": "a", "steps": {"a": {"gather": {
            "options": [{"digits": "1", "retry_after": -1}]}}}}}),
    ];
    for doc in &docs {
        parse_value(doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
    }
}
