//! The campaign JSON format (SPEC §3, §3.1): raw serde shapes and their validation into
//! [`Campaign`]. Every error names the field and says the fix; the caller adds the file name.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use serde::Deserialize;
use serde_json::Value;

use crate::bounds;

use super::follow_up::Messaging;
use super::model::{
    CallingHours, Campaign, CampaignRules, Content, MachineDetection, Reason, RetryDelays, Schedule,
};
use super::script::{Ending, Gather, GatherInput, GatherOption, Script, Step, Voicemail};

/// A campaign document that is not valid, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error("{0}")]
    Syntax(String),
    #[error("`{field}`: {message}")]
    Field { field: String, message: String },
}

fn field_err(field: impl Into<String>, message: impl Into<String>) -> CampaignError {
    CampaignError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// A parsed campaign plus the warnings its import should print.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub campaign: Campaign,
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    name: String,
    timezone: Option<String>,
    from: Option<String>,
    calling_hours_start: Option<String>,
    calling_hours_end: Option<String>,
    #[serde(default)]
    excluded_days: Vec<String>,
    #[serde(default)]
    excluded_dates: Vec<String>,
    start_at: Option<String>,
    end_at: Option<String>,
    max_call_duration: Option<u32>,
    ring_timeout: Option<u32>,
    max_retries: Option<u32>,
    #[serde(default)]
    retry_delays: BTreeMap<String, Value>,
    machine_detection: Option<String>,
    calls_per_minute: Option<u32>,
    max_concurrent_calls: Option<u32>,
    schedule: Option<String>,
    message: Option<String>,
    voice: Option<String>,
    language: Option<String>,
    script: Option<RawScript>,
    // SPEC §12: inbound calls and follow-up messages
    inbound: Option<RawScript>,
    inbound_outcome: Option<String>,
    #[serde(default)]
    opt_out_keywords: Vec<String>,
    #[serde(default)]
    follow_up: Vec<super::follow_up::RawFollowUp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScript {
    start: String,
    steps: BTreeMap<String, RawStep>,
    voicemail: Option<RawVoicemail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVoicemail {
    say: Option<String>,
    play: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    say: Option<String>,
    play: Option<String>,
    pause: Option<u32>,
    gather: Option<RawGather>,
    dial: Option<String>,
    #[serde(default)]
    record: bool,
    #[serde(default)]
    hangup: bool,
    next: Option<String>,
    bot: Option<super::bot::RawBot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGather {
    input: Option<String>,
    timeout: Option<u32>,
    num_digits: Option<u32>,
    prompt: Option<String>,
    #[serde(default)]
    options: Vec<RawOption>,
    no_input: Option<String>,
    no_match: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    digits: Option<String>,
    speech: Option<OneOrMany>,
    outcome: Option<String>,
    #[serde(default)]
    opt_out: bool,
    retry_after: Option<Value>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Defaults the campaign falls back on (from `dialer.toml`).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub timezone: Tz,
}

/// Parses and validates campaign JSON text.
pub fn parse(text: &str, defaults: Defaults) -> Result<Parsed, CampaignError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawCampaign = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        if path == "." || message.starts_with("unknown field") {
            CampaignError::Syntax(format!("line {}: {message}", inner.line()))
        } else {
            CampaignError::Syntax(format!("`{path}`: {message} (line {})", inner.line()))
        }
    })?;
    validate(raw, defaults)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn validate(raw: RawCampaign, defaults: Defaults) -> Result<Parsed, CampaignError> {
    let mut warnings = Vec::new();
    let name = raw.name.trim().to_owned();
    if name.is_empty() {
        return Err(field_err("name", "must not be empty"));
    }
    let timezone = match &raw.timezone {
        Some(z) => parse_zone(z).ok_or_else(|| {
            field_err(
                "timezone",
                format!("`{z}` is not an IANA time zone like `Europe/Madrid`"),
            )
        })?,
        None => defaults.timezone,
    };
    if let Some(from) = &raw.from
        && !crate::config::is_e164(from)
    {
        return Err(field_err(
            "from",
            format!("`{from}` is not an E.164 number like `+34910000000`"),
        ));
    }
    let start = match &raw.calling_hours_start {
        Some(s) => parse_hhmm(s).ok_or_else(|| hhmm_err("calling_hours_start", s))?,
        None => CallingHours::default().start,
    };
    let end = match &raw.calling_hours_end {
        Some(s) => parse_hhmm(s).ok_or_else(|| hhmm_err("calling_hours_end", s))?,
        None => CallingHours::default().end,
    };
    if start == 1440 {
        return Err(field_err(
            "calling_hours_start",
            "`24:00` is only valid as an end",
        ));
    }
    if end <= start {
        return Err(field_err(
            "calling_hours_end",
            format!(
                "must be after `calling_hours_start` ({} is not after {})",
                fmt_hhmm(end),
                fmt_hhmm(start)
            ),
        ));
    }
    let mut excluded_days = BTreeSet::new();
    for (i, d) in raw.excluded_days.iter().enumerate() {
        let day = parse_weekday(d).ok_or_else(|| {
            field_err(
                format!("excluded_days[{i}]"),
                format!("`{d}` is not a weekday: use names like `Saturday` or `sat`"),
            )
        })?;
        excluded_days.insert(day.num_days_from_monday() as u8);
    }
    if excluded_days.len() == 7 {
        return Err(field_err(
            "excluded_days",
            "excludes every day of the week, so nobody could ever be called",
        ));
    }
    let mut excluded_dates = BTreeSet::new();
    for (i, d) in raw.excluded_dates.iter().enumerate() {
        let date = NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
            field_err(
                format!("excluded_dates[{i}]"),
                format!("`{d}` is not a date like `2026-12-25`"),
            )
        })?;
        excluded_dates.insert(date);
    }
    let start_at = raw
        .start_at
        .as_deref()
        .map(|s| parse_instant("start_at", s))
        .transpose()?;
    let end_at = raw
        .end_at
        .as_deref()
        .map(|s| parse_instant("end_at", s))
        .transpose()?;
    if let (Some(s), Some(e)) = (start_at, end_at)
        && e <= s
    {
        return Err(field_err("end_at", "must be after `start_at`"));
    }
    let max_call_duration = raw.max_call_duration.unwrap_or(14_400);
    if !bounds::CALL_DURATION.contains(&max_call_duration) {
        return Err(field_err(
            "max_call_duration",
            format!(
                "must be between {} and {} seconds (Twilio's `TimeLimit`)",
                bounds::CALL_DURATION.start(),
                bounds::CALL_DURATION.end()
            ),
        ));
    }
    let ring_timeout = raw.ring_timeout.unwrap_or(30);
    if !bounds::RING_TIMEOUT.contains(&ring_timeout) {
        return Err(field_err(
            "ring_timeout",
            format!(
                "must be between {} and {} seconds (Twilio's `Timeout`)",
                bounds::RING_TIMEOUT.start(),
                bounds::RING_TIMEOUT.end()
            ),
        ));
    }
    let max_retries = raw.max_retries.unwrap_or(2);
    if max_retries > bounds::MAX_RETRIES {
        return Err(field_err(
            "max_retries",
            format!("must be at most {}", bounds::MAX_RETRIES),
        ));
    }
    let mut retry_delays = RetryDelays::default();
    for (key, value) in &raw.retry_delays {
        let field = format!("retry_delays.{key}");
        let delay = parse_delay(&field, value)?;
        if key == "default" {
            retry_delays.default = Some(delay);
        } else {
            let reason = Reason::parse(key).filter(|r| *r != Reason::Completed).ok_or_else(|| {
                field_err(&field, format!("`{key}` is not a retry reason: use busy, no-answer, failed, canceled, machine or default"))
            })?;
            retry_delays.by_reason.insert(reason, delay);
        }
    }
    let machine_detection = match raw.machine_detection.as_deref() {
        None | Some("off") => MachineDetection::Off,
        Some("enable") => MachineDetection::Enable,
        Some("detect_message_end") => MachineDetection::DetectMessageEnd,
        Some(other) => {
            return Err(field_err(
                "machine_detection",
                format!("`{other}` is not one of `off`, `enable`, `detect_message_end`"),
            ));
        }
    };
    for (field, value, max) in [
        (
            "calls_per_minute",
            raw.calls_per_minute,
            bounds::MAX_CALLS_PER_MINUTE,
        ),
        (
            "max_concurrent_calls",
            raw.max_concurrent_calls,
            bounds::MAX_CONCURRENT_CALLS,
        ),
    ] {
        if value.is_some_and(|v| !(1..=max).contains(&v)) {
            return Err(field_err(
                field,
                format!("must be between 1 and {max} (remove it for no cap)"),
            ));
        }
    }
    let schedule = raw.schedule.as_deref().map(parse_schedule).transpose()?;
    let content = match (raw.message, raw.script) {
        (Some(_), Some(_)) => {
            return Err(field_err(
                "message",
                "give either `message` or `script`, not both",
            ));
        }
        (Some(m), None) if m.trim().is_empty() => {
            return Err(field_err("message", "must not be empty"));
        }
        (Some(m), None) => Content::Message(m),
        (None, Some(s)) => Content::Script(validate_script(s, &mut warnings)?),
        (None, None) => {
            warnings.push(format!(
                "campaign `{name}` has neither `message` nor `script`: it is a draft and dials nothing until `campaign import --replace` gives it one"
            ));
            Content::Draft
        }
    };
    let messaging = validate_messaging(
        raw.inbound,
        raw.inbound_outcome,
        raw.opt_out_keywords,
        raw.follow_up,
        &content,
        &mut warnings,
    )?;
    Ok(Parsed {
        campaign: Campaign {
            name,
            rules: CampaignRules {
                timezone,
                hours: CallingHours { start, end },
                excluded_days,
                excluded_dates,
                start_at,
                end_at,
                max_retries,
                retry_delays,
            },
            from: raw.from,
            max_call_duration,
            ring_timeout,
            machine_detection,
            calls_per_minute: raw.calls_per_minute,
            max_concurrent_calls: raw.max_concurrent_calls,
            schedule,
            voice: raw.voice,
            language: raw.language,
            content,
            messaging,
        },
        warnings,
    })
}

/// The SPEC §12 fields: the `inbound` script (validated like `script`, errors named
/// `inbound.…`), `inbound_outcome`, `opt_out_keywords` and the `follow_up` rules, whose
/// outcomes must be ones the campaign's calls can end with.
fn validate_messaging(
    inbound: Option<RawScript>,
    inbound_outcome: Option<String>,
    opt_out_keywords: Vec<String>,
    follow_up: Vec<super::follow_up::RawFollowUp>,
    content: &Content,
    warnings: &mut Vec<String>,
) -> Result<Messaging, CampaignError> {
    let inbound = match inbound {
        None => None,
        Some(raw) => {
            let mut own = Vec::new();
            let rename = |text: &str| text.replacen("script", "inbound", 1);
            let script = validate_script(raw, &mut own).map_err(|e| match e {
                CampaignError::Field { field, message } => field_err(rename(&field), message),
                other => other,
            })?;
            warnings.extend(own.iter().map(|w| format!("inbound {w}")));
            if let Some((name, _)) = script.steps.iter().find(|(_, s)| s.gather.is_some()) {
                return Err(field_err(
                    format!("inbound.steps.{name}.gather"),
                    "an inbound script cannot gather answers yet: use `say`, `play`, `dial`, `record`, `hangup` or `next`",
                ));
            }
            Some(script)
        }
    };
    let inbound_outcome = match inbound_outcome.map(|o| o.trim().to_owned()) {
        Some(o) if o.is_empty() => return Err(field_err("inbound_outcome", "must not be empty")),
        Some(o) => o,
        None => super::follow_up::DEFAULT_INBOUND_OUTCOME.to_owned(),
    };
    for (i, k) in opt_out_keywords.iter().enumerate() {
        if k.trim().is_empty() || k.trim().contains(char::is_whitespace) {
            return Err(field_err(
                format!("opt_out_keywords[{i}]"),
                format!("`{k}` is not a single word like `BAJA`"),
            ));
        }
    }
    let mut outcomes = vec!["answered".to_owned()];
    if let Content::Script(s) = content {
        for step in s.steps.values() {
            for o in step.gather.iter().flat_map(|g| &g.options) {
                if let Some(out) = &o.outcome
                    && !outcomes.contains(out)
                {
                    outcomes.push(out.clone());
                }
            }
        }
    }
    let follow_ups = super::follow_up::validate_rules(follow_up, &outcomes)
        .map_err(|e| field_err(e.field, e.message))?;
    Ok(Messaging {
        inbound,
        inbound_outcome,
        opt_out_keywords: opt_out_keywords
            .into_iter()
            .map(|k| k.trim().to_owned())
            .collect(),
        follow_ups,
    })
}

fn validate_script(raw: RawScript, warnings: &mut Vec<String>) -> Result<Script, CampaignError> {
    let mut steps = BTreeMap::new();
    for (name, s) in raw.steps {
        let at = |f: &str| format!("script.steps.{name}.{f}");
        let endings = [
            s.dial.is_some(),
            s.record,
            s.hangup,
            s.next.is_some(),
            s.bot.is_some(),
        ];
        if endings.iter().filter(|e| **e).count() > 1 {
            return Err(field_err(
                format!("script.steps.{name}"),
                "has more than one of `dial`, `record`, `hangup`, `next`, `bot`: keep one",
            ));
        }
        if s.bot.is_some() && s.gather.is_some() {
            return Err(field_err(
                format!("script.steps.{name}"),
                "has both `gather` and `bot`: the bot does the listening, move the gather to another step",
            ));
        }
        let ending = if let Some(b) = s.bot {
            Ending::Bot(Box::new(super::bot::validate(&name, b, s.say.is_some())?))
        } else if let Some(d) = s.dial {
            if !crate::config::is_e164(&d) {
                return Err(field_err(
                    at("dial"),
                    format!("`{d}` is not an E.164 number like `+34600123456`"),
                ));
            }
            Ending::Dial(d)
        } else if s.record {
            Ending::Record
        } else if s.hangup {
            Ending::Hangup
        } else if let Some(n) = s.next {
            Ending::Next(n)
        } else {
            Ending::None
        };
        if s.pause.is_some_and(|p| p > bounds::MAX_PAUSE) {
            return Err(field_err(
                at("pause"),
                format!("must be at most {} seconds", bounds::MAX_PAUSE),
            ));
        }
        let gather = s.gather.map(|g| validate_gather(&name, g)).transpose()?;
        if s.say.is_none()
            && s.play.is_none()
            && s.pause.is_none()
            && gather.is_none()
            && ending == Ending::None
        {
            return Err(field_err(
                format!("script.steps.{name}"),
                "is empty: give it `say`, `play`, `gather`, `dial`, `hangup` or `next`",
            ));
        }
        steps.insert(
            name,
            Step {
                say: s.say,
                play: s.play,
                pause: s.pause,
                gather,
                ending,
            },
        );
    }
    let script = Script {
        start: raw.start,
        steps,
        voicemail: raw.voicemail.map(|v| Voicemail {
            say: v.say,
            play: v.play,
        }),
    };
    if !script.steps.contains_key(&script.start) {
        return Err(field_err(
            "script.start",
            format!("names step `{}`, which does not exist", script.start),
        ));
    }
    for (step, what, target) in script.references() {
        if !script.steps.contains_key(target) {
            return Err(field_err(
                format!("script.steps.{step}.{what}"),
                format!("names step `{target}`, which does not exist"),
            ));
        }
    }
    let reachable = reachable_steps(&script);
    for name in script
        .steps
        .keys()
        .filter(|n| !reachable.contains(n.as_str()))
    {
        warnings.push(format!(
            "script step `{name}` is unreachable from `{}`",
            script.start
        ));
    }
    Ok(script)
}

fn reachable_steps(script: &Script) -> BTreeSet<&str> {
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, _, to) in script.references() {
        edges.entry(from).or_default().push(to);
    }
    let mut seen = BTreeSet::from([script.start.as_str()]);
    let mut queue = VecDeque::from([script.start.as_str()]);
    while let Some(s) = queue.pop_front() {
        if script.bot(s).is_some() {
            // the bot's `custom.end` may name any step as `next`
            return script.steps.keys().map(String::as_str).collect();
        }
        for &t in edges.get(s).into_iter().flatten() {
            if seen.insert(t) {
                queue.push_back(t);
            }
        }
    }
    seen
}

fn validate_gather(step: &str, g: RawGather) -> Result<Gather, CampaignError> {
    let at = |f: &str| format!("script.steps.{step}.gather.{f}");
    let input = match g.input.as_deref().map(str::trim) {
        None | Some("dtmf") => GatherInput::Dtmf,
        Some("speech") => GatherInput::Speech,
        Some("dtmf speech") | Some("speech dtmf") => GatherInput::DtmfSpeech,
        Some(other) => {
            return Err(field_err(
                at("input"),
                format!("`{other}` is not one of `dtmf`, `speech`, `dtmf speech`"),
            ));
        }
    };
    let timeout = g.timeout.unwrap_or(5);
    if !bounds::GATHER_TIMEOUT.contains(&timeout) {
        return Err(field_err(
            at("timeout"),
            format!(
                "must be between {} and {} seconds",
                bounds::GATHER_TIMEOUT.start(),
                bounds::GATHER_TIMEOUT.end()
            ),
        ));
    }
    if g.num_digits
        .is_some_and(|n| !(1..=bounds::MAX_GATHER_DIGITS).contains(&n))
    {
        return Err(field_err(
            at("num_digits"),
            format!("must be between 1 and {}", bounds::MAX_GATHER_DIGITS),
        ));
    }
    let mut options = Vec::new();
    for (i, o) in g.options.into_iter().enumerate() {
        let of = |f: &str| format!("script.steps.{step}.gather.options[{i}].{f}");
        if let Some(d) = &o.digits
            && (d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#'))
        {
            return Err(field_err(
                of("digits"),
                format!("`{d}` is not a key sequence like `1` or `9#`"),
            ));
        }
        let speech = match o.speech {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        if o.digits.is_none() && speech.is_empty() {
            return Err(field_err(
                format!("script.steps.{step}.gather.options[{i}]"),
                "needs `digits` or `speech` to match",
            ));
        }
        let retry_after = o
            .retry_after
            .as_ref()
            .map(|v| parse_delay(&of("retry_after"), v))
            .transpose()?;
        options.push(GatherOption {
            digits: o.digits,
            speech,
            outcome: o.outcome,
            opt_out: o.opt_out,
            retry_after,
            next: o.next,
        });
    }
    Ok(Gather {
        input,
        timeout,
        num_digits: g.num_digits,
        prompt: g.prompt,
        options,
        no_input: g.no_input,
        no_match: g.no_match,
    })
}

fn parse_zone(s: &str) -> Option<Tz> {
    s.trim().parse::<Tz>().ok()
}

/// `HH:MM` → minutes after midnight; `24:00` → 1440.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

pub fn fmt_hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn hhmm_err(field: &str, value: &str) -> CampaignError {
    field_err(
        field,
        format!("`{value}` is not a time like `09:00` (24-hour `HH:MM`; `24:00` ends the day)"),
    )
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    DAYS.iter()
        .find(|(name, _)| *name == s || (s.len() == 3 && name.starts_with(&s)))
        .map(|(_, d)| *d)
}

fn parse_instant(field: &str, s: &str) -> Result<DateTime<Utc>, CampaignError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            field_err(
                field,
                format!("`{s}` is not an RFC 3339 instant like `2026-12-01T09:00:00+01:00`"),
            )
        })
}

/// A delay of at most [`bounds::MAX_RETRY_DELAY`]: a JSON number is minutes; a string is
/// humantime (`"90s"`, `"2h"`, `"1d"`).
pub fn parse_delay(field: &str, value: &Value) -> Result<Duration, CampaignError> {
    let max_minutes = bounds::MAX_RETRY_DELAY.as_secs() / 60;
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|m| m.is_finite() && *m >= 0.0 && *m <= max_minutes as f64)
            .map(|m| Duration::from_secs((m * 60.0).round() as u64))
            .ok_or_else(|| {
                field_err(
                    field,
                    format!(
                        "`{n}` is not a number of minutes between 0 and {max_minutes} ({})",
                        bounds::fmt(bounds::MAX_RETRY_DELAY)
                    ),
                )
            }),
        Value::String(s) => bounds::parse_duration(s, bounds::MAX_RETRY_DELAY)
            .map_err(|e| field_err(field, e.to_string())),
        other => Err(field_err(
            field,
            format!("`{other}` is not a delay: give minutes as a number or a string like `2h`"),
        )),
    }
}

fn parse_schedule(s: &str) -> Result<Schedule, CampaignError> {
    let fields = s.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(field_err(
            "schedule",
            format!(
                "`{s}` has {fields} fields: use 5-field crontab like `0 10 * * 1-5`, or 6 with seconds first"
            ),
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(s)
        .map_err(|e| {
            field_err(
                "schedule",
                format!("`{s}` is not a cron expression ({e}): use crontab like `0 10 * * 1-5`"),
            )
        })?;
    Ok(Schedule {
        source: s.to_owned(),
        cron,
    })
}

#[cfg(test)]
mod tests;
