use std::time::Duration;

use super::*;

const SPEC_EXAMPLE: &str = r#"{
  "name": "Campaña Optimizada",
  "max_call_duration": 300,
  "calling_hours_start": "09:00",
  "calling_hours_end": "18:00",
  "excluded_days": ["Saturday", "Sunday"],
  "max_retries": 2,
  "retry_delays": { "no-answer": 60, "busy": 30, "failed": 120 }
}"#;

fn defaults() -> Defaults {
    Defaults {
        timezone: chrono_tz::America::New_York,
    }
}

fn err(json: &str) -> String {
    parse(json, defaults())
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn spec_example_imports_as_a_draft() {
    let p = parse(SPEC_EXAMPLE, defaults()).expect("SPEC §3 example is valid");
    let c = p.campaign;
    assert_eq!(c.name, "Campaña Optimizada");
    assert!(c.is_draft());
    assert!(p.warnings[0].contains("draft"), "{:?}", p.warnings);
    assert_eq!(c.max_call_duration, 300);
    assert_eq!(
        c.rules.hours,
        CallingHours {
            start: 540,
            end: 1080
        }
    );
    assert_eq!(c.rules.excluded_days, BTreeSet::from([5, 6]));
    assert_eq!(
        c.rules.retry_delays.delay_for(Reason::NoAnswer),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        c.rules.retry_delays.delay_for(Reason::Busy),
        Some(Duration::from_secs(1800))
    );
    assert_eq!(c.rules.retry_delays.delay_for(Reason::Machine), None);
    assert_eq!(c.rules.timezone, chrono_tz::America::New_York);
    assert_eq!(c.ring_timeout, 30);
}

#[test]
fn shipped_campaigns_validate_without_warnings() {
    for text in [
        include_str!("../../../campaigns/appointment-reminder.json"),
        include_str!("../../../campaigns/satisfaction-survey.json"),
    ] {
        let p = parse(text, defaults()).expect("shipped campaign is valid");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(matches!(p.campaign.content, Content::Script(_)));
    }
}

#[test]
fn spec_script_example_validates() {
    let json = r#"{"name": "s", "script": {
      "start": "intro",
      "steps": {
        "intro": {
          "say": "Hola {{name}}, te llamo de Empresa ABC.",
          "gather": {
            "input": "dtmf speech", "timeout": 5, "num_digits": 1,
            "prompt": "Presiona 1",
            "options": [
              { "digits": "1", "speech": ["interesado", "sí"], "outcome": "interested", "next": "thanks" },
              { "digits": "2", "speech": ["más tarde"], "outcome": "callback", "retry_after": "1d", "next": "bye" },
              { "digits": "9", "outcome": "opted_out", "opt_out": true, "next": "bye" }
            ],
            "no_input": "bye_noinput",
            "no_match": "intro"
          }
        },
        "thanks": { "say": "Gracias. Te paso con un agente.", "dial": "+34600123456" },
        "bye": { "say": "Gracias por tu tiempo.", "hangup": true },
        "bye_noinput": { "say": "No hemos recibido respuesta.", "hangup": true }
      },
      "voicemail": { "say": "Hola {{name}}" }
    }}"#;
    let p = parse(json, defaults()).expect("valid");
    let Content::Script(s) = p.campaign.content else {
        panic!("script expected")
    };
    let g = s.steps["intro"].gather.as_ref().expect("gather");
    assert_eq!(g.input, GatherInput::DtmfSpeech);
    assert_eq!(g.options[1].retry_after, Some(Duration::from_secs(86_400)));
    assert!(g.options[2].opt_out);
    assert_eq!(
        s.steps["thanks"].ending,
        Ending::Dial("+34600123456".into())
    );
    assert_eq!(s.gather_steps(), vec!["intro"]);
}

#[test]
fn each_bad_field_is_named() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"name": "x", "timezone": "Mars/Olympus"}"#,
            "`timezone`: `Mars/Olympus` is not an IANA time zone",
        ),
        (
            r#"{"name": "x", "calling_hours_start": "9am"}"#,
            "`calling_hours_start`: `9am` is not a time",
        ),
        (
            r#"{"name": "x", "calling_hours_start": "18:00", "calling_hours_end": "09:00"}"#,
            "`calling_hours_end`: must be after",
        ),
        (
            r#"{"name": "x", "calling_hours_end": "24:01"}"#,
            "`calling_hours_end`: `24:01` is not a time",
        ),
        (
            r#"{"name": "x", "excluded_days": ["Funday"]}"#,
            "`excluded_days[0]`: `Funday` is not a weekday",
        ),
        (
            r#"{"name": "x", "excluded_dates": ["2026-13-01"]}"#,
            "`excluded_dates[0]`: `2026-13-01` is not a date",
        ),
        (
            r#"{"name": "x", "retry_delays": {"voicemail": 5}}"#,
            "`retry_delays.voicemail`: `voicemail` is not a retry reason",
        ),
        (
            r#"{"name": "x", "retry_delays": {"busy": "soon"}}"#,
            "`retry_delays.busy`: `soon` is not a duration",
        ),
        (
            r#"{"name": "x", "retry_delays": {"busy": -1}}"#,
            "`retry_delays.busy`: `-1` is not a number of minutes",
        ),
        (
            r#"{"name": "x", "schedule": "0 10 * *"}"#,
            "`schedule`: `0 10 * *` has 4 fields",
        ),
        (
            r#"{"name": "x", "schedule": "0 61 * * *"}"#,
            "`schedule`: `0 61 * * *` is not a cron expression",
        ),
        (
            r#"{"name": "x", "machine_detection": "yes"}"#,
            "`machine_detection`: `yes` is not one of",
        ),
        (
            r#"{"name": "x", "start_at": "tomorrow"}"#,
            "`start_at`: `tomorrow` is not an RFC 3339 instant",
        ),
        (
            r#"{"name": "x", "from": "555"}"#,
            "`from`: `555` is not an E.164 number",
        ),
        (
            r#"{"name": "", "message": "hi"}"#,
            "`name`: must not be empty",
        ),
        (
            r#"{"name": "x", "message": "hi", "script": {"start": "a", "steps": {"a": {"hangup": true}}}}"#,
            "either `message` or `script`",
        ),
        (
            r#"{"name": "x", "script": {"start": "a", "steps": {"b": {"hangup": true}}}}"#,
            "`script.start`: names step `a`, which does not exist",
        ),
        (
            r#"{"name": "x", "script": {"start": "a", "steps": {"a": {"say": "hi", "next": "zz"}}}}"#,
            "`script.steps.a.next`: names step `zz`",
        ),
        (
            r#"{"name": "x", "script": {"start": "a", "steps": {"a": {"gather": {"options": [{"digits": "1", "next": "b"}], "no_input": "nope"}}, "b": {"hangup": true}}}}"#,
            "`script.steps.a.no_input`: names step `nope`",
        ),
        (
            r#"{"name": "x", "script": {"start": "a", "steps": {"a": {"gather": {"options": [{"outcome": "x"}]}}}}}"#,
            "needs `digits` or `speech`",
        ),
        (
            r#"{"name": "x", "colour": "red"}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"name": "x", "max_retries": "two"}"#,
            "`max_retries`: invalid type: string \"two\", expected u32 (line 1)",
        ),
    ];
    for (json, expected) in cases {
        let e = err(json);
        assert!(
            e.contains(expected),
            "for {json}\n  got: {e}\n  want: {expected}"
        );
    }
}

#[test]
fn unreachable_step_is_a_warning() {
    let p = parse(
        r#"{"name": "x", "script": {"start": "a", "steps": {"a": {"say": "hi", "hangup": true}, "orphan": {"say": "never"}}}}"#,
        defaults(),
    )
    .expect("valid with a warning");
    assert_eq!(
        p.warnings,
        vec!["script step `orphan` is unreachable from `a`".to_owned()]
    );
}

#[test]
fn times_days_and_delays() {
    assert_eq!(parse_hhmm("24:00"), Some(1440));
    assert_eq!(parse_hhmm("00:00"), Some(0));
    assert_eq!(parse_hhmm("23:59"), Some(1439));
    assert_eq!(parse_hhmm("9:00"), None);
    assert_eq!(parse_weekday("SAT"), Some(Weekday::Sat));
    assert_eq!(parse_weekday("thursday"), Some(Weekday::Thu));
    assert_eq!(parse_weekday("th"), None);
    let p = parse(r#"{"name": "x", "message": "m", "calling_hours_start": "00:00", "calling_hours_end": "24:00", "retry_delays": {"default": "90s", "machine": 0.5}}"#, defaults())
        .expect("valid");
    let d = &p.campaign.rules.retry_delays;
    assert_eq!(d.delay_for(Reason::Busy), Some(Duration::from_secs(90)));
    assert_eq!(d.delay_for(Reason::Machine), Some(Duration::from_secs(30)));
}

#[test]
fn crontab_and_six_field_schedules() {
    for s in [
        "0 10 * * 1-5",
        "*/15 9-17 * * mon-fri",
        "30 0 10 * * 7",
        "0 9 * * 0",
    ] {
        let p = parse(
            &format!(r#"{{"name": "x", "message": "m", "schedule": "{s}"}}"#),
            defaults(),
        )
        .expect(s);
        assert!(p.campaign.schedule.is_some());
    }
}

/// A one-step script campaign with `step` as the body of its only step.
fn with_step(step: &str) -> String {
    format!(r#"{{"name": "x", "script": {{"start": "a", "steps": {{"a": {step}}}}}}}"#)
}

#[test]
fn values_above_their_bound_are_rejected_with_the_bound() {
    let cases: &[(String, &str)] = &[
        (
            r#"{"name": "x", "retry_delays": {"busy": "100000000y"}}"#.into(),
            "`retry_delays.busy`: `100000000y` is longer than the maximum of 365days",
        ),
        (
            r#"{"name": "x", "retry_delays": {"default": "365days 1s"}}"#.into(),
            "`retry_delays.default`: `365days 1s` is longer than the maximum of 365days",
        ),
        (
            r#"{"name": "x", "retry_delays": {"busy": 525601}}"#.into(),
            "`retry_delays.busy`: `525601` is not a number of minutes between 0 and 525600 (365days)",
        ),
        (
            r#"{"name": "x", "retry_delays": {"busy": 1e300}}"#.into(),
            "`retry_delays.busy`: `1e+300` is not a number of minutes",
        ),
        (
            r#"{"name": "x", "max_call_duration": 86401}"#.into(),
            "`max_call_duration`: must be between 1 and 86400 seconds (Twilio's `TimeLimit`)",
        ),
        (
            r#"{"name": "x", "ring_timeout": 601}"#.into(),
            "`ring_timeout`: must be between 5 and 600 seconds (Twilio's `Timeout`)",
        ),
        (
            r#"{"name": "x", "ring_timeout": 4}"#.into(),
            "`ring_timeout`: must be between 5 and 600 seconds",
        ),
        (
            r#"{"name": "x", "max_retries": 101}"#.into(),
            "`max_retries`: must be at most 100",
        ),
        (
            r#"{"name": "x", "max_retries": 99999999999}"#.into(),
            "`max_retries`: invalid value: integer `99999999999`, expected u32",
        ),
        (
            r#"{"name": "x", "calls_per_minute": 300001}"#.into(),
            "`calls_per_minute`: must be between 1 and 300000 (remove it for no cap)",
        ),
        (
            r#"{"name": "x", "max_concurrent_calls": 10001}"#.into(),
            "`max_concurrent_calls`: must be between 1 and 10000 (remove it for no cap)",
        ),
        (
            with_step(r#"{"say": "hi", "pause": 601}"#),
            "`script.steps.a.pause`: must be at most 600 seconds",
        ),
        (
            with_step(r#"{"gather": {"timeout": 61, "options": [{"digits": "1"}]}}"#),
            "`script.steps.a.gather.timeout`: must be between 1 and 60 seconds",
        ),
        (
            with_step(r#"{"gather": {"num_digits": 51, "options": [{"digits": "1"}]}}"#),
            "`script.steps.a.gather.num_digits`: must be between 1 and 50",
        ),
        (
            with_step(r#"{"gather": {"options": [{"digits": "1", "retry_after": "100000000y"}]}}"#),
            "`script.steps.a.gather.options[0].retry_after`: `100000000y` is longer than the maximum of 365days",
        ),
    ];
    for (json, expected) in cases {
        let e = err(json);
        assert!(
            e.contains(expected),
            "for {json}\n  got: {e}\n  want: {expected}"
        );
    }
}

#[test]
fn values_at_their_bound_are_accepted() {
    let json = r#"{"name": "x", "max_call_duration": 86400, "ring_timeout": 600,
      "max_retries": 100, "calls_per_minute": 300000, "max_concurrent_calls": 10000,
      "retry_delays": {"busy": "365days", "no-answer": 525600},
      "script": {"start": "a", "steps": {"a": {"say": "hi", "pause": 600, "gather": {
        "timeout": 60, "num_digits": 50,
        "options": [{"digits": "1", "retry_after": "365d"}]}}}}}"#;
    let c = parse(json, defaults())
        .expect("valid at the bounds")
        .campaign;
    let year = Duration::from_secs(365 * 86_400);
    assert_eq!(c.rules.retry_delays.delay_for(Reason::Busy), Some(year));
    assert_eq!(c.rules.retry_delays.delay_for(Reason::NoAnswer), Some(year));
    assert_eq!(
        (c.max_call_duration, c.ring_timeout, c.rules.max_retries),
        (86_400, 600, 100)
    );
    assert_eq!(c.calls_per_minute, Some(300_000));
    assert_eq!(c.max_concurrent_calls, Some(10_000));
    let Content::Script(s) = c.content else {
        panic!("script expected")
    };
    let step = &s.steps["a"];
    assert_eq!(step.pause, Some(600));
    let g = step.gather.as_ref().expect("gather");
    assert_eq!((g.timeout, g.num_digits), (60, Some(50)));
    assert_eq!(g.options[0].retry_after, Some(year));
}
