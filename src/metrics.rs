//! Counters for `/metrics`, in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::campaign::model::Reason;

#[derive(Debug, Default)]
pub struct Metrics {
    pub calls_placed: AtomicU64,
    pub dial_errors: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Creates answered 5xx or not at all: the call may exist (SPEC §10).
    pub create_unknown: AtomicU64,
    /// Times the carrier circuit breaker opened.
    pub circuit_opened: AtomicU64,
    pub callbacks: AtomicU64,
    pub signatures_rejected: AtomicU64,
    finals: [AtomicU64; 6],
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn final_status(&self, reason: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        Self::inc(&self.finals[i]);
    }

    /// The text exposition; `gauges` are extra `(name, help, labels, value)` lines.
    pub fn render(&self, gauges: &[(&str, &str, String, i64)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "dialer_calls_placed_total",
            "Calls created at the carrier.",
            &self.calls_placed,
        );
        counter(
            &mut out,
            "dialer_dial_errors_total",
            "Calls create requests refused or failed.",
            &self.dial_errors,
        );
        counter(
            &mut out,
            "dialer_rate_limited_total",
            "Calls create requests answered 429 after retries, or never sent.",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "dialer_create_unknown_total",
            "Calls create requests answered 5xx or not at all (looked up, then retried).",
            &self.create_unknown,
        );
        counter(
            &mut out,
            "dialer_circuit_opened_total",
            "Times placing paused after repeated carrier server errors.",
            &self.circuit_opened,
        );
        counter(
            &mut out,
            "dialer_callbacks_total",
            "Twilio callbacks accepted.",
            &self.callbacks,
        );
        counter(
            &mut out,
            "dialer_signatures_rejected_total",
            "Callbacks refused for a missing or wrong signature.",
            &self.signatures_rejected,
        );
        let _ = writeln!(
            out,
            "# HELP dialer_calls_ended_total Attempts ended, by reason.\n# TYPE dialer_calls_ended_total counter"
        );
        for (r, v) in Reason::ALL.iter().zip(&self.finals) {
            let _ = writeln!(
                out,
                "dialer_calls_ended_total{{reason=\"{}\"}} {}",
                r.as_str(),
                v.load(Ordering::Relaxed)
            );
        }
        let mut last = "";
        for (name, help, labels, value) in gauges {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                last = name;
            }
            let _ = writeln!(out, "{name}{labels} {value}");
        }
        out
    }
}
