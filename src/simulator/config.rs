//! The `[simulator]` configuration: credentials, seed, time scale, behavior rules, the mix for
//! numbers no rule names, and fault injection; plus its validation.

use serde::Deserialize;

use crate::bounds;

/// The account SID the simulator answers to unless configured otherwise.
pub const DEFAULT_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// The auth token the simulator signs with unless configured otherwise.
pub const DEFAULT_AUTH_TOKEN: &str = "simulator-auth-token";

/// The simulator's settings. An empty `[simulator]` table is valid: every key has a default.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The account SID accepted in paths and HTTP Basic auth (`AC` + 32 hex digits).
    #[serde(default = "default_account_sid")]
    pub account_sid: String,
    /// The auth token: the Basic auth password and the key of every `X-Twilio-Signature`.
    #[serde(
        default = "default_auth_token",
        deserialize_with = "crate::config::auth_token"
    )]
    pub auth_token: String,
    /// Seed of every random outcome; the same seed and creates give the same calls.
    #[serde(default)]
    pub seed: u64,
    /// Real seconds per simulated second (`1.0` = real time, `0.05` = twenty times faster).
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    /// Behaviors by number pattern, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Percentages for numbers that no rule matches.
    #[serde(default)]
    pub mix: Mix,
    /// Fault injection.
    #[serde(default)]
    pub faults: Faults,
    /// How many calls (and create requests) the simulator remembers, newest first; older ones
    /// are gone from fetch and list. Bounds the memory of a simulator that runs for days.
    #[serde(default = "default_history")]
    pub history: usize,
}

fn default_history() -> usize {
    DEFAULT_HISTORY
}

/// Calls the simulator remembers unless `simulator.history` says otherwise.
pub const DEFAULT_HISTORY: usize = 10_000;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            account_sid: default_account_sid(),
            auth_token: default_auth_token(),
            seed: 0,
            time_scale: default_time_scale(),
            rules: Vec::new(),
            mix: Mix::default(),
            faults: Faults::default(),
            history: default_history(),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("seed", &self.seed)
            .field("time_scale", &self.time_scale)
            .field("rules", &self.rules)
            .field("mix", &self.mix)
            .field("faults", &self.faults)
            .finish()
    }
}

fn default_account_sid() -> String {
    DEFAULT_ACCOUNT_SID.to_owned()
}
fn default_auth_token() -> String {
    DEFAULT_AUTH_TOKEN.to_owned()
}
fn default_time_scale() -> f64 {
    0.05
}

/// One behavior rule: numbers matching `pattern` behave as `behavior`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// An exact E.164 number (`+15551234567`) or a prefix ending in `*` (`+1555*`, `*`).
    pub pattern: String,
    pub behavior: BehaviorKind,
    /// For `human`: the keys pressed at successive `<Gather>`s (`""` = no input that time).
    #[serde(default)]
    pub digits: Vec<String>,
    /// For `human`: the words said at successive speech `<Gather>`s.
    #[serde(default)]
    pub speech: Vec<String>,
    /// For `human`: what to say when a speech `<Gather>`'s prompt mentions something (a bot's
    /// question); each reply is said once, and a prompt none matches gets the next `speech`.
    #[serde(default)]
    pub replies: Vec<Reply>,
}

/// One scripted reply of a simulated person: `say` when the prompt contains `heard` (any case).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub heard: String,
    /// `""`: stays silent that time.
    pub say: String,
}

impl Rule {
    /// Whether this rule's pattern names `to`.
    pub fn matches(&self, to: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => to.starts_with(prefix),
            None => self.pattern == to,
        }
    }

    /// The behavior this rule gives.
    pub fn behavior(&self) -> Behavior {
        match self.behavior {
            BehaviorKind::Busy => Behavior::Busy,
            BehaviorKind::NoAnswer => Behavior::NoAnswer,
            BehaviorKind::Failed => Behavior::Failed,
            BehaviorKind::Machine => Behavior::Machine,
            BehaviorKind::Silent => Behavior::Silent,
            BehaviorKind::Human => Behavior::Human {
                digits: self.digits.clone(),
                speech: self.speech.clone(),
                replies: self.replies.clone(),
            },
        }
    }
}

/// The name of a behavior as written in the configuration.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BehaviorKind {
    Busy,
    NoAnswer,
    Failed,
    Machine,
    Human,
    Silent,
}

/// How the callee of one call behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// The line is busy (SIP 486).
    Busy,
    /// It rings until `Timeout` (SIP 487).
    NoAnswer,
    /// The number cannot be reached (SIP 404).
    Failed,
    /// A voicemail greeting answers; it never presses keys or speaks to a `<Gather>`.
    Machine,
    /// A person answers and gives these answers to successive `<Gather>`s (or `replies` to the
    /// prompts that mention their `heard`), then stays silent.
    Human {
        digits: Vec<String>,
        speech: Vec<String>,
        replies: Vec<Reply>,
    },
    /// Someone picks up and says nothing (AMD reports `unknown`).
    Silent,
}

/// Percentages of each outcome for numbers that no rule matches; the rest are humans.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    pub busy: f64,
    pub no_answer: f64,
    pub failed: f64,
    pub machine: f64,
    pub silent: f64,
    /// What a mix human presses at successive `<Gather>`s.
    pub human_digits: Vec<String>,
    /// What a mix human says at successive speech-only `<Gather>`s.
    pub human_speech: Vec<String>,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            busy: 10.0,
            no_answer: 10.0,
            failed: 5.0,
            machine: 15.0,
            silent: 5.0,
            human_digits: vec!["1".to_owned()],
            human_speech: vec!["yes".to_owned()],
        }
    }
}

/// Fault injection: fractions in `0.0..=1.0` of create requests or callbacks.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Creates answered 429 with code 20429 (no call is created).
    pub rate_429: f64,
    /// Creates answered 500 with code 20500 (no call is created).
    pub rate_500: f64,
    /// Creates answered 500 with code 20500 *after* the call was created (it goes on, with its
    /// callbacks): the carrier failed while answering, as a real one may.
    pub rate_500_created: f64,
    /// The account is suspended: every request, with the right credentials, is answered 401
    /// with code 20005 ("Account not active"). Can be changed while running
    /// ([`crate::simulator::SimState::set_account_suspended`]).
    pub account_suspended: bool,
    /// Creates answered only after `slow_ms` real milliseconds (the call is created once the
    /// wait is over, if the client still waits for it).
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Creates whose call is created at once but whose answer comes only after
    /// `slow_create_ms` real milliseconds: longer than the client waits (the dialer's Twilio
    /// client gives up after 15 s), so the dialer sees a timeout — an unknown outcome — while
    /// the call goes on, as when Twilio is slow to answer.
    pub slow_create_rate: f64,
    pub slow_create_ms: u64,
    /// Status callbacks that are never delivered (the call still progresses).
    pub drop_callback_rate: f64,
    /// Status callbacks delivered twice, the second time with the same
    /// `I-Twilio-Idempotency-Token`, as Twilio's retries are.
    pub duplicate_callback_rate: f64,
    /// Progress callbacks (`initiated`, `ringing`, `in-progress`) held back and delivered after
    /// the call's next callback (which may be the final one): out of order, as Twilio warns
    /// they may arrive. Their `SequenceNumber` and `Timestamp` stay those of their event.
    pub reorder_callback_rate: f64,
    /// Real milliseconds the simulator waits before fetching a call's voice `Url` once it is
    /// answered (a slow network path to the product's TwiML).
    pub slow_twiml_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rate_429: 0.0,
            rate_500: 0.0,
            rate_500_created: 0.0,
            account_suspended: false,
            slow_rate: 0.0,
            slow_ms: 2000,
            slow_create_rate: 0.0,
            slow_create_ms: 20_000,
            drop_callback_rate: 0.0,
            duplicate_callback_rate: 0.0,
            reorder_callback_rate: 0.0,
            slow_twiml_ms: 0,
        }
    }
}

/// A `[simulator]` setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimConfigError {
    #[error("`simulator.account_sid` `{0}` is not `AC` followed by 32 hex digits")]
    AccountSid(String),
    #[error("`simulator.auth_token` is empty; set a token or remove the key to use the default")]
    AuthToken,
    #[error(
        "`simulator.time_scale` {0} must be a number above 0 and at most {max}, e.g. `0.05` or `1.0`",
        max = bounds::MAX_TIME_SCALE
    )]
    TimeScale(f64),
    #[error(
        "`simulator.history` {0} must be from {min} to {max} (calls remembered)",
        min = bounds::SIM_HISTORY.start(),
        max = bounds::SIM_HISTORY.end()
    )]
    History(usize),
    #[error(
        "`simulator.faults.slow_ms` {0} must be at most {max} (10 minutes)",
        max = bounds::MAX_SLOW_MS
    )]
    SlowMs(u64),
    #[error(
        "`simulator.faults.{key}` {value} must be at most {max} (10 minutes)",
        max = bounds::MAX_SLOW_MS
    )]
    Millis { key: &'static str, value: u64 },
    #[error(
        "`simulator.rules[{index}].pattern` `{pattern}` is neither an E.164 number nor a prefix \
         ending in `*`; write e.g. `+15551234567` or `+1555*`"
    )]
    Pattern { index: usize, pattern: String },
    #[error(
        "`simulator.rules[{index}]` gives `digits`, `speech` or `replies` to a `{behavior}` \
         behavior; only `human` answers gathers"
    )]
    AnswersWithoutHuman { index: usize, behavior: String },
    #[error(
        "`simulator.rules[{index}].replies[{reply}].heard` is empty; give words of the prompt \
         this reply answers, e.g. `heard = \"card number\"`"
    )]
    EmptyHeard { index: usize, reply: usize },
    #[error("`simulator.{key}` answer `{value}` may only hold 0-9, `*` and `#`")]
    Digits { key: String, value: String },
    #[error("`simulator.mix.{0}` must be a percentage between 0 and 100")]
    Percent(&'static str),
    #[error("`simulator.mix` percentages add up to {0}, over 100; lower some of them")]
    MixTotal(f64),
    #[error("`simulator.faults.{0}` must be a fraction between 0.0 and 1.0")]
    Fraction(&'static str),
}

impl SimConfig {
    /// Checks every setting; the simulator refuses to start with an invalid configuration.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if !is_sid(&self.account_sid, "AC") {
            return Err(SimConfigError::AccountSid(self.account_sid.clone()));
        }
        if self.auth_token.is_empty() {
            return Err(SimConfigError::AuthToken);
        }
        if !(self.time_scale.is_finite()
            && self.time_scale > 0.0
            && self.time_scale <= bounds::MAX_TIME_SCALE)
        {
            return Err(SimConfigError::TimeScale(self.time_scale));
        }
        if !bounds::SIM_HISTORY.contains(&self.history) {
            return Err(SimConfigError::History(self.history));
        }
        if self.faults.slow_ms > bounds::MAX_SLOW_MS {
            return Err(SimConfigError::SlowMs(self.faults.slow_ms));
        }
        for (key, value) in [
            ("slow_create_ms", self.faults.slow_create_ms),
            ("slow_twiml_ms", self.faults.slow_twiml_ms),
        ] {
            if value > bounds::MAX_SLOW_MS {
                return Err(SimConfigError::Millis { key, value });
            }
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let exact = rule.pattern.strip_suffix('*').is_none();
            let body = rule.pattern.trim_end_matches('*');
            let well_formed = if exact {
                is_e164(body)
            } else {
                body.is_empty()
                    || (body.starts_with('+') && body[1..].bytes().all(|b| b.is_ascii_digit()))
            };
            if !well_formed || body.contains('*') {
                return Err(SimConfigError::Pattern {
                    index,
                    pattern: rule.pattern.clone(),
                });
            }
            let answers =
                !rule.digits.is_empty() || !rule.speech.is_empty() || !rule.replies.is_empty();
            if answers && rule.behavior != BehaviorKind::Human {
                let behavior = format!("{:?}", rule.behavior).to_lowercase();
                return Err(SimConfigError::AnswersWithoutHuman { index, behavior });
            }
            check_digits(&format!("rules[{index}].digits"), &rule.digits)?;
            if let Some(reply) = rule.replies.iter().position(|r| r.heard.trim().is_empty()) {
                return Err(SimConfigError::EmptyHeard { index, reply });
            }
        }
        check_digits("mix.human_digits", &self.mix.human_digits)?;
        let m = &self.mix;
        let parts = [
            ("busy", m.busy),
            ("no_answer", m.no_answer),
            ("failed", m.failed),
            ("machine", m.machine),
            ("silent", m.silent),
        ];
        for (name, value) in parts {
            if !(0.0..=100.0).contains(&value) {
                return Err(SimConfigError::Percent(name));
            }
        }
        let total: f64 = parts.iter().map(|(_, v)| v).sum();
        if total > 100.0 + 1e-9 {
            return Err(SimConfigError::MixTotal(total));
        }
        let f = &self.faults;
        let fractions = [
            ("rate_429", f.rate_429),
            ("rate_500", f.rate_500),
            ("rate_500_created", f.rate_500_created),
            ("slow_rate", f.slow_rate),
            ("slow_create_rate", f.slow_create_rate),
            ("drop_callback_rate", f.drop_callback_rate),
            ("duplicate_callback_rate", f.duplicate_callback_rate),
            ("reorder_callback_rate", f.reorder_callback_rate),
        ];
        for (name, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimConfigError::Fraction(name));
            }
        }
        Ok(())
    }
}

fn check_digits(key: &str, answers: &[String]) -> Result<(), SimConfigError> {
    match answers.iter().find(|a| {
        !a.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    }) {
        Some(bad) => Err(SimConfigError::Digits {
            key: key.to_owned(),
            value: bad.clone(),
        }),
        None => Ok(()),
    }
}

/// Whether `s` is `prefix` followed by 32 hex digits.
pub(crate) fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is an E.164 number: `+`, a non-zero digit, at most 15 digits in all.
pub(crate) fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_token_of_the_wrong_type_is_not_echoed() {
        // as `dialing::carrier::sim_config` reads the `[simulator]` table of dialer.toml
        let sim = |text: &str| {
            let table: toml::Table = toml::from_str(text).expect("valid TOML");
            toml::Value::Table(table).try_into::<SimConfig>()
        };
        for text in ["auth_token = 12345", "auth_token = [\"12345abc\"]"] {
            let e = sim(text).unwrap_err().to_string();
            assert!(!e.contains("12345"), "{text}: {e}");
            assert!(e.contains("`auth_token` must be a quoted string"), "{e}");
        }
        let c = sim("auth_token = \"t0k\"").expect("a string is fine");
        assert_eq!(c.auth_token, "t0k");
        let c = sim("seed = 1").expect("the default");
        assert_eq!(c.auth_token, DEFAULT_AUTH_TOKEN);
    }

    #[test]
    fn replies_are_for_humans_and_need_words_to_hear() {
        let sim = |text: &str| {
            let table: toml::Table = toml::from_str(text).expect("valid TOML");
            toml::Value::Table(table)
                .try_into::<SimConfig>()
                .expect("shape")
                .validate()
        };
        let ok = "[[rules]]\npattern = \"+1555*\"\nbehavior = \"human\"\n\
                  replies = [{ heard = \"card\", say = \"4321\" }]";
        assert_eq!(sim(ok), Ok(()));
        let e = sim(&ok.replace("\"card\"", "\" \"")).unwrap_err();
        assert_eq!(e, SimConfigError::EmptyHeard { index: 0, reply: 0 });
        assert!(
            e.to_string()
                .starts_with("`simulator.rules[0].replies[0].heard` is empty")
        );
        let e = sim(&ok.replace("human", "busy")).unwrap_err();
        assert!(
            e.to_string().contains("`digits`, `speech` or `replies`"),
            "{e}"
        );
    }

    #[test]
    fn time_scale_and_slow_ms_above_their_bound_are_rejected() {
        let mut c = SimConfig {
            time_scale: 100.0,
            ..SimConfig::default()
        };
        c.faults.slow_ms = 600_000;
        assert_eq!(c.validate(), Ok(()), "the bounds themselves are valid");
        c.time_scale = 1e300;
        assert_eq!(c.validate(), Err(SimConfigError::TimeScale(1e300)));
        assert_eq!(
            SimConfigError::TimeScale(101.0).to_string(),
            "`simulator.time_scale` 101 must be a number above 0 and at most 100, e.g. `0.05` or `1.0`"
        );
        c.time_scale = 1.0;
        c.faults.slow_ms = u64::MAX;
        assert_eq!(c.validate(), Err(SimConfigError::SlowMs(u64::MAX)));
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("must be at most 600000"),
        );
    }
}
