//! The conversational step (SPEC §13): a script step that hands the call to a bot speaking
//! Rasa's REST channel. The raw JSON shape and its validation into [`BotStep`]; the step graph
//! check (`fallback` names an existing step) is done with the other references in `json.rs`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::json::CampaignError;
use crate::bounds;

/// `max_turns` when the step does not say.
pub const DEFAULT_MAX_TURNS: u32 = 10;
/// `timeout` when the step does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);

/// A validated bot step.
#[derive(Debug, Clone, PartialEq)]
pub struct BotStep {
    /// The bot's REST webhook, e.g. `http://rasa:5005/webhooks/rest/webhook`.
    pub url: Url,
    /// The first message sent to the bot when the step starts (e.g. `/greet`); its answer is the
    /// first prompt. Without it the step's `say` is the first prompt.
    pub greeting: Option<String>,
    /// The caller's turns before the call goes to `fallback`.
    pub max_turns: u32,
    /// How long one bot request may take before the call goes to `fallback`.
    pub timeout: Duration,
    /// Speech recognition and `<Say>` language (else the campaign's `language`).
    pub language: Option<String>,
    /// The step taken when the bot fails, is slow, the caller is silent twice or `max_turns` runs
    /// out.
    pub fallback: String,
}

/// `"bot": {...}` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBot {
    url: String,
    greeting: Option<String>,
    max_turns: Option<u32>,
    timeout: Option<Value>,
    language: Option<String>,
    fallback: Option<String>,
}

fn err(step: &str, field: &str, message: impl Into<String>) -> CampaignError {
    CampaignError::Field {
        field: format!("script.steps.{step}.bot.{field}"),
        message: message.into(),
    }
}

/// Validates the `bot` of step `step`. `has_say` tells whether the step has a `say`, which can
/// stand in for a greeting.
pub fn validate(step: &str, raw: RawBot, has_say: bool) -> Result<BotStep, CampaignError> {
    let url = Url::parse(raw.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            err(
                step,
                "url",
                format!(
                    "`{}` is not an http(s) URL like `http://localhost:5005/webhooks/rest/webhook`",
                    raw.url
                ),
            )
        })?;
    let max_turns = raw.max_turns.unwrap_or(DEFAULT_MAX_TURNS);
    if !bounds::BOT_MAX_TURNS.contains(&max_turns) {
        return Err(err(
            step,
            "max_turns",
            format!(
                "must be between {} and {}",
                bounds::BOT_MAX_TURNS.start(),
                bounds::BOT_MAX_TURNS.end()
            ),
        ));
    }
    let timeout = match &raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(v) => parse_timeout(v).ok_or_else(|| {
            err(
                step,
                "timeout",
                format!(
                    "`{v}` must be a duration between {} and {} like `4s` or `1500ms` (seconds \
                     as a number also work): Twilio waits at most 15 s for an answer",
                    bounds::fmt(*bounds::BOT_TIMEOUT.start()),
                    bounds::fmt(*bounds::BOT_TIMEOUT.end())
                ),
            )
        })?,
    };
    let fallback = raw
        .fallback
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| {
            err(
                step,
                "fallback",
                "is required: name the step the call goes to when the bot fails or the caller is \
                 silent (e.g. a `dial` to an agent)",
            )
        })?;
    if fallback == step {
        return Err(err(
            step,
            "fallback",
            format!(
                "names this step (`{step}`) itself: a failing bot would call it again and again; \
                 name another step, e.g. a `dial` to an agent"
            ),
        ));
    }
    let greeting = raw.greeting.filter(|g| !g.trim().is_empty());
    if greeting.is_none() && !has_say {
        return Err(err(
            step,
            "greeting",
            "is required when the step has no `say`: the caller must hear something before \
             speaking (e.g. `\"greeting\": \"/greet\"`)",
        ));
    }
    Ok(BotStep {
        url,
        greeting,
        max_turns,
        timeout,
        language: raw.language.filter(|l| !l.trim().is_empty()),
        fallback,
    })
}

fn parse_timeout(v: &Value) -> Option<Duration> {
    let d = match v {
        Value::String(s) => bounds::parse_duration(s, *bounds::BOT_TIMEOUT.end()).ok()?,
        Value::Number(n) => {
            let secs = n.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
            Duration::try_from_secs_f64(secs).ok()?
        }
        _ => return None,
    };
    bounds::BOT_TIMEOUT.contains(&d).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawBot {
        serde_json::from_str(json).expect("raw bot")
    }

    fn check(json: &str) -> Result<BotStep, String> {
        validate("talk", raw(json), false).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_bot_step_validates_with_its_values() {
        let b = check(
            r#"{"url": "http://rasa:5005/webhooks/rest/webhook", "greeting": "/greet",
                "max_turns": 6, "timeout": "1500ms", "language": "es-CL", "fallback": "agent"}"#,
        )
        .expect("valid");
        assert_eq!(b.url.as_str(), "http://rasa:5005/webhooks/rest/webhook");
        assert_eq!(b.greeting.as_deref(), Some("/greet"));
        assert_eq!((b.max_turns, b.timeout), (6, Duration::from_millis(1500)));
        assert_eq!(
            (b.language.as_deref(), b.fallback.as_str()),
            (Some("es-CL"), "agent")
        );
        let b = check(r#"{"url": "https://bot.example/hook", "greeting": "hi", "fallback": "x", "timeout": 2}"#)
            .expect("defaults");
        assert_eq!(
            (b.max_turns, b.timeout),
            (DEFAULT_MAX_TURNS, Duration::from_secs(2))
        );
    }

    #[test]
    fn errors_name_the_step_and_the_field() {
        let cases = [
            (
                r#"{"url": "rasa:5005", "greeting": "/g", "fallback": "a"}"#,
                "`script.steps.talk.bot.url`: `rasa:5005` is not an http(s) URL",
            ),
            (
                r#"{"url": "ftp://x/y", "greeting": "/g", "fallback": "a"}"#,
                "`script.steps.talk.bot.url`",
            ),
            (
                r#"{"url": "http://x/y", "greeting": "/g", "fallback": "a", "max_turns": 0}"#,
                "`script.steps.talk.bot.max_turns`: must be between 1 and 50",
            ),
            (
                r#"{"url": "http://x/y", "greeting": "/g", "fallback": "a", "max_turns": 51}"#,
                "`script.steps.talk.bot.max_turns`",
            ),
            (
                r#"{"url": "http://x/y", "greeting": "/g", "fallback": "a", "timeout": "20s"}"#,
                "`script.steps.talk.bot.timeout`: `\"20s\"` must be a duration between 100ms and 10s",
            ),
            (
                r#"{"url": "http://x/y", "greeting": "/g", "fallback": "a", "timeout": "soon"}"#,
                "`script.steps.talk.bot.timeout`",
            ),
            (
                r#"{"url": "http://x/y", "greeting": "/g", "fallback": "a", "timeout": 0.01}"#,
                "`script.steps.talk.bot.timeout`",
            ),
            (
                r#"{"url": "http://x/y", "greeting": "/g"}"#,
                "`script.steps.talk.bot.fallback`: is required",
            ),
            (
                r#"{"url": "http://x/y", "fallback": "a"}"#,
                "`script.steps.talk.bot.greeting`: is required when the step has no `say`",
            ),
        ];
        for (json, expected) in cases {
            let e = check(json).expect_err(json);
            assert!(e.starts_with(expected), "{json}: {e}");
        }
        let e = check(r#"{"url": "http://x/y", "greeting": "/g", "fallback": "talk"}"#)
            .expect_err("itself");
        assert!(
            e.starts_with("`script.steps.talk.bot.fallback`: names this step (`talk`) itself"),
            "{e}"
        );
        // a `say` stands in for the greeting
        assert!(
            validate(
                "talk",
                raw(r#"{"url": "http://x/y", "fallback": "a"}"#),
                true
            )
            .is_ok()
        );
    }

    fn parse_script(steps: &str) -> Result<crate::campaign::json::Parsed, String> {
        let text =
            format!(r#"{{"name": "c", "script": {{"start": "talk", "steps": {{ {steps} }} }} }}"#);
        crate::campaign::json::parse(
            &text,
            crate::campaign::json::Defaults {
                timezone: chrono_tz::UTC,
            },
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_step_graph_checks_the_fallback_and_the_other_keys() {
        let bot = r#""bot": {"url": "http://x/hook", "greeting": "/g", "fallback": "agent"}"#;
        let agent = r#""agent": {"say": "Agent.", "hangup": true}"#;
        let only_via_bot = r#""done": {"say": "Bye.", "hangup": true}"#;
        let parsed = parse_script(&format!("\"talk\": {{ {bot} }}, {agent}, {only_via_bot}"))
            .expect("valid");
        assert!(
            parsed.warnings.is_empty(),
            "a step the bot may name is not unreachable: {:?}",
            parsed.warnings
        );
        let e = parse_script(&format!("\"talk\": {{ {bot} }}")).expect_err("no agent step");
        assert_eq!(
            e,
            "`script.steps.talk.bot.fallback`: names step `agent`, which does not exist"
        );
        let e = parse_script(&format!(
            "\"talk\": {{ {bot}, \"dial\": \"+34600123456\" }}, {agent}"
        ))
        .expect_err("two endings");
        assert!(
            e.starts_with("`script.steps.talk`: has more than one of"),
            "{e}"
        );
        let e = parse_script(&format!(
            "\"talk\": {{ {bot}, \"gather\": {{\"options\": [{{\"digits\": \"1\"}}]}} }}, {agent}"
        ))
        .expect_err("gather and bot");
        assert!(
            e.starts_with("`script.steps.talk`: has both `gather` and `bot`"),
            "{e}"
        );
        let e = parse_script(&format!(
            "\"talk\": {{ \"bot\": {{\"url\": \"http://x/hook\", \"greeting\": \"/g\", \"fallback\": \"agent\", \"tries\": 3}} }}, {agent}"
        ))
        .expect_err("unknown key");
        assert!(e.contains("unknown field `tries`"), "{e}");
    }
}
