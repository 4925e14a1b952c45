//! The carrier's health as the placement code sees it (SPEC §10): whether the account can be
//! used at all (bad credentials, suspended account), and a circuit breaker over server errors.
//! Placement asks [`CarrierHealth::permit`] before every claim; `/health` and `/metrics` show it.
//!
//! The breaker: [`BreakerPolicy::threshold`] unknown outcomes (5xx, lost answers) in a row open
//! it for a backoff; when the backoff has passed one placement goes through as a probe
//! (half-open); its success closes the breaker, another server error opens it again for twice
//! the backoff (capped).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use std::time::Instant;

use tokio::sync::Notify;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Server errors in a row that open the breaker.
    pub threshold: u32,
    /// How long it stays open the first time.
    pub base_backoff: Duration,
    /// The longest it stays open.
    pub max_backoff: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            threshold: 5,
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Whether a placement may go to the carrier now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// Yes (`probe`: it is the one call of a half-open breaker).
    Go { probe: bool },
    /// The account cannot be used (the reason, for the one clear error).
    AccountDown(String),
    /// The breaker is open (or its probe is under way): try again after this wait.
    CircuitOpen(Duration),
}

#[derive(Debug, Default)]
struct State {
    /// Why the account cannot be used, while it cannot.
    account_down: Option<String>,
    /// Server errors in a row.
    failures: u32,
    /// Open until this instant.
    open_until: Option<Instant>,
    /// How many times it opened in a row (the backoff doubles each time).
    opened: u32,
    /// A half-open probe is under way.
    probing: bool,
}

/// Shared by the placement tasks, the daemon loop and the health/metrics handlers.
#[derive(Debug, Default)]
pub struct CarrierHealth {
    state: Mutex<State>,
    policy: BreakerPolicy,
    /// Woken whenever the state changes (tests and loops wait on it).
    changed: Notify,
}

impl CarrierHealth {
    pub fn new(policy: BreakerPolicy) -> Self {
        CarrierHealth {
            policy,
            ..CarrierHealth::default()
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a placement may go to the carrier now; a half-open breaker lets exactly one
    /// through.
    pub fn permit(&self) -> Permit {
        self.permit_at(Instant::now())
    }

    fn permit_at(&self, now: Instant) -> Permit {
        let mut s = self.state();
        if let Some(reason) = &s.account_down {
            return Permit::AccountDown(reason.clone());
        }
        match s.open_until {
            None => Permit::Go { probe: false },
            Some(until) => {
                if now < until {
                    Permit::CircuitOpen(until - now)
                } else if s.probing {
                    Permit::CircuitOpen(self.policy.base_backoff.min(Duration::from_secs(1)))
                } else {
                    s.probing = true;
                    tracing::info!("carrier circuit half-open: one call goes through as a probe");
                    Permit::Go { probe: true }
                }
            }
        }
    }

    /// The account cannot be used: every placement stops until [`CarrierHealth::account_up`].
    pub fn account_down(&self, reason: String) {
        let mut s = self.state();
        if s.account_down.is_none() {
            tracing::warn!(reason = %reason, "carrier account unusable: placing stopped");
        }
        s.account_down = Some(reason);
        drop(s);
        self.changed.notify_waiters();
    }

    /// The account answered an authenticated request again.
    pub fn account_up(&self) {
        let was = self.state().account_down.take();
        if was.is_some() {
            tracing::info!("carrier account usable again: placing resumes");
            self.changed.notify_waiters();
        }
    }

    /// Why the account cannot be used, while it cannot.
    pub fn account_error(&self) -> Option<String> {
        self.state().account_down.clone()
    }

    /// The carrier answered (any answer that is not a server error): the breaker closes.
    pub fn success(&self) {
        let mut s = self.state();
        let was_open = s.open_until.is_some();
        *s = State {
            account_down: s.account_down.take(),
            ..State::default()
        };
        drop(s);
        if was_open {
            tracing::info!("carrier circuit closed: placing resumes");
            self.changed.notify_waiters();
        }
    }

    /// A server error or a lost answer; `true` if it opened the breaker.
    pub fn server_error(&self) -> bool {
        self.server_error_at(Instant::now())
    }

    fn server_error_at(&self, now: Instant) -> bool {
        let mut s = self.state();
        s.failures += 1;
        let reopen = s.probing || (s.open_until.is_none() && s.failures >= self.policy.threshold);
        if !reopen {
            return false;
        }
        let factor = 2u32.saturating_pow(s.opened);
        let backoff = self
            .policy
            .base_backoff
            .checked_mul(factor)
            .unwrap_or(self.policy.max_backoff)
            .min(self.policy.max_backoff);
        s.opened = s.opened.saturating_add(1);
        s.probing = false;
        s.open_until = Some(now + backoff);
        let failures = s.failures;
        drop(s);
        tracing::warn!(
            failures,
            backoff = %humantime::format_duration(backoff),
            "carrier circuit open: {failures} server errors in a row; placing paused"
        );
        self.changed.notify_waiters();
        true
    }

    /// Whether the breaker is open (or half-open) now.
    pub fn circuit_open(&self) -> bool {
        self.state().open_until.is_some()
    }

    /// Resolves at the next change of state (register before checking, like `Notify`).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            threshold: 3,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(25),
        }
    }

    #[test]
    fn opens_after_repeated_server_errors_and_resumes_through_one_probe() {
        let h = CarrierHealth::new(policy());
        let mut t = Instant::now();
        assert_eq!(h.permit_at(t), Permit::Go { probe: false });
        assert!(!h.server_error_at(t));
        assert!(!h.server_error_at(t));
        assert!(h.server_error_at(t), "the third in a row opens it");
        assert!(h.circuit_open());
        assert_eq!(h.permit_at(t), Permit::CircuitOpen(Duration::from_secs(10)));

        t += Duration::from_secs(10);
        assert_eq!(h.permit_at(t), Permit::Go { probe: true }, "half-open");
        assert!(
            matches!(h.permit_at(t), Permit::CircuitOpen(_)),
            "only one probe at a time"
        );
        // the probe fails: open again for twice as long
        assert!(h.server_error_at(t));
        assert_eq!(h.permit_at(t), Permit::CircuitOpen(Duration::from_secs(20)));
        t += Duration::from_secs(20);
        assert_eq!(h.permit_at(t), Permit::Go { probe: true });
        assert!(h.server_error_at(t));
        assert_eq!(
            h.permit_at(t),
            Permit::CircuitOpen(Duration::from_secs(25)),
            "capped"
        );
        t += Duration::from_secs(25);
        assert_eq!(h.permit_at(t), Permit::Go { probe: true });
        // the probe succeeds: closed, and the count starts again
        h.success();
        assert!(!h.circuit_open());
        assert_eq!(h.permit_at(t), Permit::Go { probe: false });
        assert!(!h.server_error_at(t));
        assert!(!h.server_error_at(t));
        assert!(h.server_error_at(t));
        assert_eq!(
            h.permit_at(t),
            Permit::CircuitOpen(Duration::from_secs(10)),
            "backoff starts over"
        );
    }

    #[test]
    fn a_success_between_server_errors_keeps_it_closed() {
        let h = CarrierHealth::new(policy());
        for _ in 0..5 {
            assert!(!h.server_error());
            assert!(!h.server_error());
            h.success();
        }
        assert_eq!(h.permit(), Permit::Go { probe: false });
    }

    #[tokio::test]
    async fn account_down_stops_everything_until_it_is_up() {
        let h = CarrierHealth::new(policy());
        let changed = h.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        h.account_down("bad credentials".into());
        changed.await;
        assert_eq!(h.permit(), Permit::AccountDown("bad credentials".into()));
        h.success();
        assert_eq!(
            h.account_error().as_deref(),
            Some("bad credentials"),
            "only a successful account check brings it back"
        );
        h.account_up();
        assert_eq!(h.permit(), Permit::Go { probe: false });
    }
}
