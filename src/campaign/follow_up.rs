//! Inbound calls and follow-up messages of a campaign (SPEC §12): the `follow_up` rules, the
//! `inbound` script's companions (`inbound_outcome`, `opt_out_keywords`), their raw JSON shapes
//! and their validation. Sending lives in `engine/follow_up.rs`; this file only says what a
//! valid rule is.

use serde::Deserialize;

use super::model::Reason;
use super::script::Script;

/// Twilio's largest message body (characters).
pub const MAX_BODY_CHARS: usize = 1600;
/// Most follow-up rules a campaign may have.
pub const MAX_RULES: usize = 16;
/// The outcome a contact who calls back gets when the campaign names none.
pub const DEFAULT_INBOUND_OUTCOME: &str = "called_back";

/// Twilio's standard opt-out keywords (the whole message, any case, spaces trimmed).
pub const STOP_KEYWORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Keywords that undo an opt-out made by message.
pub const START_KEYWORDS: [&str; 2] = ["START", "UNSTOP"];

/// What a campaign does beyond its outbound calls: the script a contact who calls back hears,
/// the outcome they get, its own opt-out keywords and its follow-up rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Messaging {
    /// `None`: a short default message naming the campaign.
    pub inbound: Option<Script>,
    pub inbound_outcome: String,
    pub opt_out_keywords: Vec<String>,
    pub follow_ups: Vec<FollowUp>,
}

impl Default for Messaging {
    fn default() -> Self {
        Messaging {
            inbound: None,
            inbound_outcome: DEFAULT_INBOUND_OUTCOME.to_owned(),
            opt_out_keywords: Vec::new(),
            follow_ups: Vec::new(),
        }
    }
}

/// Which network a follow-up goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    WhatsApp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::WhatsApp => "whatsapp",
        }
    }

    /// The address Twilio wants for a number on this channel (`whatsapp:+…` for WhatsApp).
    pub fn address(self, e164: &str) -> String {
        match self {
            Channel::Sms => e164.to_owned(),
            Channel::WhatsApp => format!("whatsapp:{e164}"),
        }
    }
}

/// What ends an attempt that triggers a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The attempt's reason (`no-answer`, `busy`, `machine`, …).
    Reason(Reason),
    /// The attempt's outcome (a gather option's `outcome`, or `answered`).
    Outcome(String),
}

/// One validated `follow_up` rule: at most one message per rule and contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// Unique within the campaign; the key of "at most once per rule and contact".
    pub name: String,
    pub trigger: Trigger,
    /// Only when the attempt left the contact exhausted (no retry left).
    pub exhausted: bool,
    pub channel: Channel,
    /// The sender number (E.164, without the `whatsapp:` prefix); the campaign's caller ID when
    /// absent.
    pub from: Option<String>,
    /// The text, with `{{field}}` placeholders like `say`.
    pub body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFollowUp {
    name: String,
    reason: Option<String>,
    outcome: Option<String>,
    #[serde(default)]
    exhausted: bool,
    channel: Option<String>,
    from: Option<String>,
    body: String,
}

/// A rule error: the field (relative to `follow_up[i]`) and what is wrong.
pub(super) struct RuleError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> RuleError {
    RuleError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates the rules; `outcomes` are the outcomes the campaign's calls can end with.
pub(super) fn validate_rules(
    raw: Vec<RawFollowUp>,
    outcomes: &[String],
) -> Result<Vec<FollowUp>, RuleError> {
    if raw.len() > MAX_RULES {
        return Err(err(
            "follow_up",
            format!("has {} rules: at most {MAX_RULES}", raw.len()),
        ));
    }
    let mut rules: Vec<FollowUp> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let at = |f: &str| format!("follow_up[{i}].{f}");
        let name = r.name.trim().to_owned();
        if name.is_empty() {
            return Err(err(at("name"), "must not be empty"));
        }
        if rules.iter().any(|x| x.name == name) {
            return Err(err(
                at("name"),
                format!("`{name}` is used by another rule: names must be unique"),
            ));
        }
        let trigger = match (r.reason, r.outcome) {
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("follow_up[{i}]"),
                    "give either `reason` or `outcome`, not both",
                ));
            }
            (None, None) => {
                return Err(err(
                    format!("follow_up[{i}]"),
                    "needs `reason` (e.g. `no-answer`) or `outcome` (e.g. `interested`)",
                ));
            }
            (Some(reason), None) => Trigger::Reason(Reason::parse(reason.trim()).ok_or_else(|| {
                err(
                    at("reason"),
                    format!(
                        "`{reason}` is not a call reason: use completed, busy, no-answer, failed, canceled or machine"
                    ),
                )
            })?),
            (None, Some(outcome)) => {
                let outcome = outcome.trim().to_owned();
                if !outcomes.contains(&outcome) {
                    return Err(err(
                        at("outcome"),
                        format!(
                            "`{outcome}` is not an outcome of this campaign: use one of {}",
                            outcomes
                                .iter()
                                .map(|o| format!("`{o}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                Trigger::Outcome(outcome)
            }
        };
        let channel = match r.channel.as_deref().map(str::trim) {
            None | Some("sms") => Channel::Sms,
            Some("whatsapp") => Channel::WhatsApp,
            Some(other) => {
                return Err(err(
                    at("channel"),
                    format!("`{other}` is not one of `sms`, `whatsapp`"),
                ));
            }
        };
        let from = r
            .from
            .as_deref()
            .map(|f| sender(f, channel).map_err(|m| err(at("from"), m)))
            .transpose()?;
        let body = r.body;
        if body.trim().is_empty() {
            return Err(err(at("body"), "must not be empty"));
        }
        if body.chars().count() > MAX_BODY_CHARS {
            return Err(err(
                at("body"),
                format!("is longer than Twilio's {MAX_BODY_CHARS} characters"),
            ));
        }
        rules.push(FollowUp {
            name,
            trigger,
            exhausted: r.exhausted,
            channel,
            from,
            body,
        });
    }
    Ok(rules)
}

/// A rule's `from`: E.164 for SMS; `whatsapp:+E164` (or plain E.164) for WhatsApp.
fn sender(raw: &str, channel: Channel) -> Result<String, String> {
    let value = raw.trim();
    match (value.strip_prefix("whatsapp:"), channel) {
        (Some(number), Channel::WhatsApp) if crate::config::is_e164(number) => {
            Ok(number.to_owned())
        }
        (Some(_), Channel::WhatsApp) => Err(format!(
            "`{raw}` is not a WhatsApp address like `whatsapp:+14155238886`"
        )),
        (Some(_), Channel::Sms) => Err(format!(
            "`{raw}` is a WhatsApp address: set `\"channel\": \"whatsapp\"` or give an E.164 number"
        )),
        (None, _) if crate::config::is_e164(value) => Ok(value.to_owned()),
        (None, Channel::WhatsApp) => Err(format!(
            "`{raw}` is not a WhatsApp address like `whatsapp:+14155238886`"
        )),
        (None, Channel::Sms) => Err(format!(
            "`{raw}` is not an E.164 number like `+14155238886`"
        )),
    }
}

/// The keyword a message is, if any: `Some(true)` opts out, `Some(false)` opts back in.
/// The whole message counts, any case, surrounding spaces ignored; `own` are a campaign's extra
/// opt-out keywords.
pub fn keyword<'a>(body: &str, own: impl IntoIterator<Item = &'a str>) -> Option<bool> {
    let word = body.trim();
    if STOP_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
        || own
            .into_iter()
            .any(|k| k.trim().to_lowercase() == word.to_lowercase())
    {
        return Some(true);
    }
    START_KEYWORDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
        .then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_the_whole_message_in_any_case() {
        assert_eq!(keyword("STOP", []), Some(true));
        assert_eq!(keyword("  stop \n", []), Some(true));
        assert_eq!(keyword("Unsubscribe", []), Some(true));
        assert_eq!(keyword("please stop calling", []), None);
        assert_eq!(keyword("start", []), Some(false));
        assert_eq!(keyword(" UnStop ", []), Some(false));
        assert_eq!(keyword("baja", ["BAJA"]), Some(true));
        assert_eq!(keyword("hello", ["BAJA"]), None);
    }

    #[test]
    fn rules_and_the_inbound_script_parse_into_the_model() {
        let text = r#"{"name": "x", "message": "hi",
            "opt_out_keywords": [" BAJA "], "inbound_outcome": "returned",
            "inbound": {"start": "a", "steps": {"a": {"say": "hi", "dial": "+34600123456"}}},
            "follow_up": [
              {"name": "m", "reason": "machine", "body": "b"},
              {"name": "w", "outcome": "answered", "exhausted": true, "channel": "whatsapp",
               "from": "whatsapp:+14155238886", "body": "c"}]}"#;
        let parsed = crate::campaign::json::parse(
            text,
            crate::campaign::json::Defaults {
                timezone: chrono_tz::UTC,
            },
        )
        .expect("valid");
        let m = parsed.campaign.messaging;
        assert_eq!(m.inbound_outcome, "returned");
        assert_eq!(m.opt_out_keywords, ["BAJA"]);
        assert_eq!(m.inbound.map(|s| s.start), Some("a".to_owned()));
        assert_eq!(m.follow_ups[0].trigger, Trigger::Reason(Reason::Machine));
        assert_eq!(
            m.follow_ups[1],
            FollowUp {
                name: "w".into(),
                trigger: Trigger::Outcome("answered".into()),
                exhausted: true,
                channel: Channel::WhatsApp,
                from: Some("+14155238886".into()),
                body: "c".into(),
            }
        );
        let gathers = text.replace(
            r#""say": "hi", "dial": "+34600123456""#,
            r#""gather": {"options": [{"digits": "1"}]}"#,
        );
        let err = crate::campaign::json::parse(
            &gathers,
            crate::campaign::json::Defaults {
                timezone: chrono_tz::UTC,
            },
        )
        .expect_err("no gather inbound");
        assert!(err.to_string().contains("inbound.steps.a.gather"), "{err}");
    }

    #[test]
    fn whatsapp_senders_carry_a_valid_number() {
        assert_eq!(
            sender("whatsapp:+14155238886", Channel::WhatsApp).as_deref(),
            Ok("+14155238886")
        );
        assert_eq!(
            sender("+14155238886", Channel::WhatsApp).as_deref(),
            Ok("+14155238886")
        );
        assert!(sender("whatsapp:14155238886", Channel::WhatsApp).is_err());
        assert!(sender("whatsapp:+1415", Channel::Sms).is_err());
        assert_eq!(
            Channel::WhatsApp.address("+14155238886"),
            "whatsapp:+14155238886"
        );
    }
}
