//! The call flow of a campaign (SPEC §3.1): steps, gathers and their options, as validated types.

use std::collections::BTreeMap;
use std::time::Duration;

use super::bot::BotStep;

/// A validated script: `start` and every step reference name an existing step.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub start: String,
    pub steps: BTreeMap<String, Step>,
    pub voicemail: Option<Voicemail>,
}

/// What is played to an answering machine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Voicemail {
    pub say: Option<String>,
    pub play: Option<String>,
}

/// One step. Rendered in order: say/play/pause, gather, then the ending.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    pub say: Option<String>,
    pub play: Option<String>,
    /// Seconds of silence.
    pub pause: Option<u32>,
    pub gather: Option<Gather>,
    pub ending: Ending,
}

/// How a step ends after its prompts and gather.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Ending {
    /// Nothing more: the call ends when the TwiML runs out.
    #[default]
    None,
    /// `<Dial>` to this number.
    Dial(String),
    /// `<Record>`.
    Record,
    /// `<Hangup/>`.
    Hangup,
    /// `<Redirect>` to another step.
    Next(String),
    /// The conversation goes to a bot (SPEC §13).
    Bot(Box<BotStep>),
}

/// Which inputs a gather accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherInput {
    Dtmf,
    Speech,
    DtmfSpeech,
}

impl GatherInput {
    pub fn as_str(self) -> &'static str {
        match self {
            GatherInput::Dtmf => "dtmf",
            GatherInput::Speech => "speech",
            GatherInput::DtmfSpeech => "dtmf speech",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub input: GatherInput,
    /// Seconds to wait for input.
    pub timeout: u32,
    pub num_digits: Option<u32>,
    pub prompt: Option<String>,
    pub options: Vec<GatherOption>,
    /// Step taken when nothing was entered (and after 3 unmatched answers).
    pub no_input: Option<String>,
    /// Step taken when the answer matched no option.
    pub no_match: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatherOption {
    pub digits: Option<String>,
    /// Words or phrases; matched case-insensitively within the speech result.
    pub speech: Vec<String>,
    pub outcome: Option<String>,
    pub opt_out: bool,
    pub retry_after: Option<Duration>,
    pub next: Option<String>,
}

impl Script {
    /// Every step name the script references, with where (for error messages).
    pub fn references(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.steps.iter().flat_map(|(name, step)| {
            let mut refs: Vec<(&str, &str, &str)> = Vec::new();
            if let Ending::Next(n) = &step.ending {
                refs.push((name.as_str(), "next", n.as_str()));
            }
            if let Ending::Bot(b) = &step.ending {
                refs.push((name.as_str(), "bot.fallback", b.fallback.as_str()));
            }
            if let Some(g) = &step.gather {
                for o in &g.options {
                    if let Some(n) = &o.next {
                        refs.push((name.as_str(), "options.next", n.as_str()));
                    }
                }
                if let Some(n) = &g.no_input {
                    refs.push((name.as_str(), "no_input", n.as_str()));
                }
                if let Some(n) = &g.no_match {
                    refs.push((name.as_str(), "no_match", n.as_str()));
                }
            }
            refs
        })
    }

    /// The bot of step `name`, if it is a bot step.
    pub fn bot(&self, name: &str) -> Option<&BotStep> {
        match &self.steps.get(name)?.ending {
            Ending::Bot(b) => Some(b),
            _ => None,
        }
    }

    /// Names of the steps that contain a gather, in script order (for `answer.STEP` columns).
    pub fn gather_steps(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|(_, s)| s.gather.is_some())
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

impl Gather {
    /// The option an answer selects: digits match exactly; otherwise any of an option's speech
    /// phrases found (case-insensitively) in the speech result.
    pub fn match_answer(
        &self,
        digits: Option<&str>,
        speech: Option<&str>,
    ) -> Option<&GatherOption> {
        if let Some(d) = digits.filter(|d| !d.is_empty())
            && let Some(o) = self.options.iter().find(|o| o.digits.as_deref() == Some(d))
        {
            return Some(o);
        }
        let said = speech
            .map(str::to_lowercase)
            .filter(|s| !s.trim().is_empty())?;
        self.options.iter().find(|o| {
            o.speech
                .iter()
                .any(|p| !p.trim().is_empty() && said.contains(&p.to_lowercase()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(digits: &str, speech: &[&str]) -> GatherOption {
        GatherOption {
            digits: Some(digits.into()),
            speech: speech.iter().map(|s| (*s).into()).collect(),
            outcome: None,
            opt_out: false,
            retry_after: None,
            next: None,
        }
    }

    #[test]
    fn answers_match_by_digits_then_speech() {
        let g = Gather {
            input: GatherInput::DtmfSpeech,
            timeout: 5,
            num_digits: Some(1),
            prompt: None,
            options: vec![
                option("1", &["interesado", "sí"]),
                option("2", &["más tarde"]),
            ],
            no_input: None,
            no_match: None,
        };
        assert_eq!(
            g.match_answer(Some("2"), None)
                .and_then(|o| o.digits.as_deref()),
            Some("2")
        );
        assert_eq!(
            g.match_answer(None, Some("Sí, claro"))
                .and_then(|o| o.digits.as_deref()),
            Some("1")
        );
        assert_eq!(
            g.match_answer(Some(""), Some("llámame MÁS TARDE"))
                .and_then(|o| o.digits.as_deref()),
            Some("2")
        );
        assert!(g.match_answer(Some("7"), None).is_none());
        assert!(g.match_answer(None, Some("no sé")).is_none());
        assert!(g.match_answer(None, None).is_none());
    }
}
