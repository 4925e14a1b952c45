//! Deterministic outcomes: the per-call random source (seed + `To` + per-number count), the
//! behavior a call gets, and the callee's timings and gather answers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{Behavior, Reply, SimConfig};

/// The random source of one create request: a function of the seed, the `To` number and how many
/// creates that number has seen before, never of timing or of other numbers.
pub fn call_rng(seed: u64, to: &str, count: u64) -> StdRng {
    // FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&seed.to_le_bytes());
    feed(to.as_bytes());
    feed(&[0xff]);
    feed(&count.to_le_bytes());
    StdRng::seed_from_u64(hash)
}

/// The faults drawn for one create request (always three draws, so later draws stay stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFault {
    None,
    Slow,
    TooManyRequests,
    ServerError,
    /// The call is created, then the answer is a 500.
    ServerErrorAfterCreate,
    /// The call is created, then the answer waits `slow_create_ms` (past the client's timeout).
    SlowAnswer,
}

pub fn draw_fault(config: &SimConfig, rng: &mut StdRng) -> CreateFault {
    let (a, b, c): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
    let f = &config.faults;
    if a < f.rate_429 {
        CreateFault::TooManyRequests
    } else if b < f.rate_500 {
        CreateFault::ServerError
    } else if c < f.slow_rate {
        CreateFault::Slow
    } else if f.rate_500_created > 0.0 && rng.random::<f64>() < f.rate_500_created {
        // a fourth draw only when configured, so older seeds keep their outcomes
        CreateFault::ServerErrorAfterCreate
    } else if f.slow_create_rate > 0.0 && rng.random::<f64>() < f.slow_create_rate {
        // likewise drawn only when configured
        CreateFault::SlowAnswer
    } else {
        CreateFault::None
    }
}

/// The behavior of a call to `to`: the first matching rule, else a draw from the mix.
pub fn choose(config: &SimConfig, to: &str, rng: &mut StdRng) -> Behavior {
    let roll: f64 = rng.random::<f64>() * 100.0;
    if let Some(rule) = config.rules.iter().find(|r| r.matches(to)) {
        return rule.behavior();
    }
    let m = &config.mix;
    let mut edge = 0.0;
    let slots = [
        (m.busy, Behavior::Busy),
        (m.no_answer, Behavior::NoAnswer),
        (m.failed, Behavior::Failed),
        (m.machine, Behavior::Machine),
        (m.silent, Behavior::Silent),
    ];
    for (share, behavior) in slots {
        edge += share;
        if roll < edge {
            return behavior;
        }
    }
    Behavior::Human {
        digits: m.human_digits.clone(),
        speech: m.human_speech.clone(),
        replies: Vec::new(),
    }
}

/// Simulated seconds a phone rings before this callee picks up (or the line reports busy).
pub fn ring_seconds(behavior: &Behavior, rng: &mut StdRng) -> f64 {
    match behavior {
        Behavior::Busy => rng.random_range(1.0..3.0),
        Behavior::Failed | Behavior::NoAnswer => 0.0,
        // Voicemail usually takes over after four or five rings.
        Behavior::Machine => rng.random_range(15.0..25.0),
        Behavior::Human { .. } | Behavior::Silent => rng.random_range(3.0..12.0),
    }
}

/// A callee's answer to one `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub enum GatherAnswer {
    Digits(String),
    Speech { text: String, confidence: f64 },
    Nothing,
}

/// The callee's side of the conversation: what is left to answer.
#[derive(Debug)]
pub struct Callee {
    digits: std::vec::IntoIter<String>,
    speech: std::vec::IntoIter<String>,
    /// Replies not said yet.
    replies: Vec<Reply>,
}

impl Callee {
    pub fn new(behavior: &Behavior) -> Callee {
        let (digits, speech, replies) = match behavior {
            Behavior::Human {
                digits,
                speech,
                replies,
            } => (digits.clone(), speech.clone(), replies.clone()),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        Callee {
            digits: digits.into_iter(),
            speech: speech.into_iter(),
            replies,
        }
    }

    /// The answer to the next gather that accepts these inputs, whose prompt said `heard`:
    /// digits win when both are allowed; for speech, the first unsaid reply whose `heard` the
    /// prompt mentions, else the next phrase in turn.
    pub fn answer(
        &mut self,
        dtmf: bool,
        speech: bool,
        heard: &str,
        rng: &mut StdRng,
    ) -> GatherAnswer {
        if dtmf && let Some(d) = self.digits.next() {
            return if d.is_empty() {
                GatherAnswer::Nothing
            } else {
                GatherAnswer::Digits(d)
            };
        }
        let heard = heard.to_lowercase();
        let reply = self
            .replies
            .iter()
            .position(|r| heard.contains(&r.heard.trim().to_lowercase()));
        let said = match reply {
            Some(i) if speech => Some(self.replies.remove(i).say),
            _ if speech => self.speech.next(),
            _ => None,
        };
        if let Some(text) = said {
            if text.is_empty() {
                return GatherAnswer::Nothing;
            }
            let confidence = (rng.random_range(0.80..0.99_f64) * 1e6).round() / 1e6;
            return GatherAnswer::Speech { text, confidence };
        }
        GatherAnswer::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(speech: &[&str], replies: &[(&str, &str)]) -> Callee {
        Callee::new(&Behavior::Human {
            digits: vec!["1".to_owned()],
            speech: speech.iter().map(|s| (*s).to_owned()).collect(),
            replies: replies
                .iter()
                .map(|(heard, say)| Reply {
                    heard: (*heard).to_owned(),
                    say: (*say).to_owned(),
                })
                .collect(),
        })
    }

    fn said(answer: GatherAnswer) -> Option<String> {
        match answer {
            GatherAnswer::Speech { text, confidence } => {
                assert!((0.80..0.99).contains(&confidence));
                Some(text)
            }
            GatherAnswer::Nothing => None,
            GatherAnswer::Digits(d) => panic!("pressed {d} at a speech gather"),
        }
    }

    #[test]
    fn phrases_are_said_in_turn_and_replies_answer_the_prompts_that_mention_them() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut callee = human(
            &["quiero bloquear mi tarjeta", "", "gracias"],
            &[("DÍGITOS", "cuatro tres dos uno"), ("confirma", "sí")],
        );
        let mut ask = |heard: &str| said(callee.answer(false, true, heard, &mut rng));
        assert_eq!(
            ask("¿En qué le ayudo?").as_deref(),
            Some("quiero bloquear mi tarjeta")
        );
        assert_eq!(
            ask("¿Los últimos cuatro dígitos?").as_deref(),
            Some("cuatro tres dos uno"),
            "a reply wins over the next phrase, any case"
        );
        assert_eq!(ask("¿Confirma el bloqueo?").as_deref(), Some("sí"));
        assert_eq!(
            ask("¿Confirma otra vez?"),
            None,
            "each reply once; then `\"\"`: silence"
        );
        assert_eq!(ask("¿Algo más?").as_deref(), Some("gracias"));
        assert_eq!(ask("¿Algo más?"), None, "then silent");
    }

    #[test]
    fn digits_still_win_at_a_gather_that_takes_both() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut callee = human(&["hola"], &[("pulse", "uno")]);
        assert_eq!(
            callee.answer(true, true, "pulse 1", &mut rng),
            GatherAnswer::Digits("1".to_owned())
        );
        assert_eq!(
            said(callee.answer(true, true, "pulse 1", &mut rng)).as_deref(),
            Some("uno")
        );
    }
}
