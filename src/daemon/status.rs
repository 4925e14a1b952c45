//! What the daemon shows an operator: one live status line per campaign on a terminal (quiet
//! otherwise), and phone numbers masked in logs.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One campaign's line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    pub placed: u32,
    pub in_flight: i64,
    pub completed: i64,
    pub open: i64,
    pub paused: bool,
    /// "next wave" or "next window" (or retry) instant.
    pub next: Option<(&'static str, DateTime<Utc>)>,
}

impl Line {
    pub fn render(&self, name: &str) -> String {
        let next = match self.next {
            Some((what, t)) => {
                format!(" · {what} {}", t.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            None => String::new(),
        };
        format!(
            "{name}{}: placed {} · in flight {} · completed {} · open {}{next}",
            if self.paused { " (paused)" } else { "" },
            self.placed,
            self.in_flight,
            self.completed,
            self.open
        )
    }
}

/// The status lines, drawn only when enabled.
pub struct Status {
    multi: Option<MultiProgress>,
    bars: BTreeMap<i64, ProgressBar>,
}

impl Status {
    pub fn new(enabled: bool) -> Self {
        Self {
            multi: enabled.then(|| {
                let multi = MultiProgress::new();
                crate::logging::attach_bars(&multi);
                multi
            }),
            bars: BTreeMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.multi.is_some()
    }

    pub fn show(&mut self, id: i64, name: &str, line: &Line) {
        let Some(multi) = &self.multi else { return };
        let bar = self.bars.entry(id).or_insert_with(|| {
            let b = multi.add(ProgressBar::new_spinner());
            if let Ok(s) = ProgressStyle::with_template("{spinner} {msg}") {
                b.set_style(s);
            }
            b
        });
        bar.set_message(line.render(name));
        bar.tick();
    }

    pub fn clear(&mut self) {
        for (_, b) in std::mem::take(&mut self.bars) {
            b.finish_and_clear();
        }
    }
}

/// A phone number for logs: the 3rd and 4th digits from the end hidden (`+1212555••01`).
pub fn mask(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 6 {
        return "••".into();
    }
    let n = chars.len();
    let mut out: String = chars[..n - 4].iter().collect();
    out.push_str("••");
    out.extend(&chars[n - 2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_two_digits_before_the_last_two() {
        assert_eq!(mask("+12125550101"), "+1212555••01");
        assert_eq!(mask("+33612"), "+3••12");
        assert_eq!(mask("123"), "••");
    }

    #[test]
    fn line_names_the_next_instant() {
        let line = Line {
            placed: 3,
            in_flight: 1,
            completed: 2,
            open: 4,
            paused: false,
            next: Some((
                "next wave",
                DateTime::parse_from_rfc3339("2026-01-05T15:00:00Z")
                    .expect("valid")
                    .with_timezone(&Utc),
            )),
        };
        assert_eq!(
            line.render("survey"),
            "survey: placed 3 · in flight 1 · completed 2 · open 4 · next wave 2026-01-05T15:00:00Z"
        );
    }
}
