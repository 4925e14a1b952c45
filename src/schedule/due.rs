//! The one decision: is a contact due at an instant, and if not, why and when next.
//!
//! Checks run in a fixed order and the first failing one is the reason (SPEC §5.1, §5.4):
//! draft, paused, ended, contact state, import incomplete, DNC, in flight, attempts used up, not started, retry
//! wait, daily cap, then the calling window (excluded date, excluded day, outside hours).

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;

use super::window::{effective_zones, in_window, next_window_start};
use super::{ContactState, ContactView, Decision, PlanReason, Policy};
use crate::campaign::model::CampaignRules;

/// Bound on the rounds of "wait for the cap, then for the window" in [`next_eligible`]; once
/// the cap is free it stays free (attempts only age out), so two or three rounds suffice.
const MAX_ROUNDS: usize = 16;

/// Decide whether `contact` is due at `at` under `policy`, and when it next would be.
pub fn decide(contact: &ContactView, policy: &Policy, at: DateTime<Utc>) -> Decision {
    let rules = policy.rules;
    let never = |reason| Decision {
        reason,
        next_eligible_at: None,
    };

    if policy.draft {
        return never(PlanReason::Draft);
    }
    if policy.paused {
        return never(PlanReason::Paused);
    }
    if rules.end_at.is_some_and(|end| at >= end) {
        return never(PlanReason::Ended);
    }
    match contact.state {
        ContactState::Open => {}
        ContactState::Completed => return never(PlanReason::Completed),
        ContactState::Exhausted => return never(PlanReason::Exhausted),
        ContactState::OptedOut => return never(PlanReason::OptedOut),
    }
    if contact.import_incomplete {
        return never(PlanReason::ImportIncomplete);
    }
    if contact.on_dnc {
        return never(PlanReason::Dnc);
    }
    if contact.in_flight {
        return never(PlanReason::InFlight);
    }
    // attempts >= 1 + max_retries, without the overflow
    if contact.attempts > rules.max_retries {
        return never(PlanReason::Exhausted);
    }

    let reason = if rules.start_at.is_some_and(|start| at < start) {
        PlanReason::NotStarted
    } else if contact.next_attempt_at.is_some_and(|next| at < next) {
        PlanReason::RetryWait
    } else if capped(policy.daily_cap, contact.recent_attempts, at) {
        PlanReason::DailyCap
    } else if !in_window(rules, contact.zones, at) {
        window_reason(rules, contact.zones, at)
    } else {
        return Decision {
            reason: PlanReason::Due,
            next_eligible_at: Some(at),
        };
    };
    Decision {
        reason,
        next_eligible_at: next_eligible(contact, policy, at),
    }
}

/// Whether at least `cap` of `recent` lie in `(at - 24h, at]`.
fn capped(cap: Option<u32>, recent: &[DateTime<Utc>], at: DateTime<Utc>) -> bool {
    let Some(cap) = cap else { return false };
    let count = recent
        .iter()
        .filter(|&&t| t <= at && at.signed_duration_since(t) < Duration::hours(24))
        .count();
    count >= cap as usize
}

/// The first instant `t >= from` at which the cap is not reached, assuming no new attempts: an
/// attempt stops counting at `attempt + 24h`. `None` for a cap of zero.
fn cap_frees_at(
    cap: Option<u32>,
    recent: &[DateTime<Utc>],
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !capped(cap, recent, from) {
        return Some(from);
    }
    let mut ages_out: Vec<DateTime<Utc>> = recent
        .iter()
        .filter_map(|&t| t.checked_add_signed(Duration::hours(24)))
        .filter(|&t| t > from)
        .collect();
    ages_out.sort_unstable();
    ages_out.into_iter().find(|&t| !capped(cap, recent, t))
}

/// Why the window fails at `at`: an excluded local date in any zone, else an excluded local
/// weekday in any zone, else the hours.
fn window_reason(rules: &CampaignRules, zones: &[Tz], at: DateTime<Utc>) -> PlanReason {
    let dates: Vec<_> = effective_zones(rules, zones)
        .iter()
        .map(|tz| at.with_timezone(tz).date_naive())
        .collect();
    if dates.iter().any(|d| rules.excluded_dates.contains(d)) {
        PlanReason::ExcludedDate
    } else if dates.iter().any(|d| rules.is_excluded_day(d.weekday())) {
        PlanReason::ExcludedDay
    } else {
        PlanReason::OutsideCallingHours
    }
}

/// The first instant `t >= at`, before `end_at`, at which start, retry wait, daily cap and
/// window all hold together; `None` when there is none (within the window horizon).
fn next_eligible(
    contact: &ContactView,
    policy: &Policy,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let rules = policy.rules;
    let mut candidate = [rules.start_at, contact.next_attempt_at]
        .into_iter()
        .flatten()
        .fold(at, DateTime::max);
    for _ in 0..MAX_ROUNDS {
        if rules.end_at.is_some_and(|end| candidate >= end) {
            return None;
        }
        let free = cap_frees_at(policy.daily_cap, contact.recent_attempts, candidate)?;
        let open = next_window_start(rules, contact.zones, free)?;
        if open == candidate {
            return Some(open);
        }
        candidate = open;
    }
    None
}

#[cfg(test)]
mod tests {
    use chrono::Weekday;
    use chrono_tz::{America, Asia};

    use super::super::window::tests::{rules, t};
    use super::*;

    const NY: Tz = America::New_York;
    /// Wednesday 2026-01-14 10:00 EST.
    const AT: &str = "2026-01-14T15:00:00Z";

    #[derive(Clone)]
    struct Setup {
        rules: CampaignRules,
        zones: Vec<Tz>,
        state: ContactState,
        attempts: u32,
        next_attempt_at: Option<DateTime<Utc>>,
        in_flight: bool,
        on_dnc: bool,
        import_incomplete: bool,
        recent: Vec<DateTime<Utc>>,
        paused: bool,
        draft: bool,
        daily_cap: Option<u32>,
    }

    /// An open, never-tried New York contact of an active campaign calling 09:00-18:00, changed
    /// by `f`.
    fn with(f: impl FnOnce(&mut Setup)) -> Setup {
        let mut s = Setup {
            rules: rules("09:00-18:00", &[], &[]),
            zones: vec![NY],
            state: ContactState::Open,
            attempts: 0,
            next_attempt_at: None,
            in_flight: false,
            on_dnc: false,
            import_incomplete: false,
            recent: Vec::new(),
            paused: false,
            draft: false,
            daily_cap: None,
        };
        f(&mut s);
        s
    }

    impl Setup {
        fn decide(&self, at: DateTime<Utc>) -> Decision {
            let contact = ContactView {
                state: self.state,
                zones: &self.zones,
                attempts: self.attempts,
                next_attempt_at: self.next_attempt_at,
                in_flight: self.in_flight,
                on_dnc: self.on_dnc,
                import_incomplete: self.import_incomplete,
                recent_attempts: &self.recent,
            };
            let policy = Policy {
                rules: &self.rules,
                paused: self.paused,
                draft: self.draft,
                daily_cap: self.daily_cap,
            };
            decide(&contact, &policy, at)
        }
    }

    #[test]
    fn decide_table() {
        use PlanReason::*;
        use Weekday::*;
        let cases: Vec<(&str, Setup, &str, PlanReason, Option<&str>)> = vec![
            ("due", with(|_| {}), AT, Due, Some(AT)),
            ("draft", with(|s| s.draft = true), AT, Draft, None),
            (
                "draft before paused and dnc",
                with(|s| {
                    s.draft = true;
                    s.paused = true;
                    s.on_dnc = true;
                }),
                AT,
                Draft,
                None,
            ),
            ("paused", with(|s| s.paused = true), AT, Paused, None),
            (
                "row of an unfinished import",
                with(|s| s.import_incomplete = true),
                AT,
                ImportIncomplete,
                None,
            ),
            (
                "unfinished import before dnc and outside hours",
                with(|s| {
                    s.import_incomplete = true;
                    s.on_dnc = true;
                }),
                "2026-01-14T03:00:00Z",
                ImportIncomplete,
                None,
            ),
            (
                "paused before unfinished import",
                with(|s| {
                    s.paused = true;
                    s.import_incomplete = true;
                }),
                AT,
                Paused,
                None,
            ),
            (
                "paused before completed",
                with(|s| {
                    s.paused = true;
                    s.state = ContactState::Completed;
                }),
                AT,
                Paused,
                None,
            ),
            (
                "ended at end_at",
                with(|s| s.rules.end_at = Some(t(AT))),
                AT,
                Ended,
                None,
            ),
            (
                "a second before end_at",
                with(|s| s.rules.end_at = Some(t("2026-01-14T15:00:01Z"))),
                AT,
                Due,
                Some(AT),
            ),
            (
                "ended before contact state",
                with(|s| {
                    s.rules.end_at = Some(t("2026-01-01T00:00:00Z"));
                    s.state = ContactState::OptedOut;
                }),
                AT,
                Ended,
                None,
            ),
            (
                "completed",
                with(|s| s.state = ContactState::Completed),
                AT,
                Completed,
                None,
            ),
            (
                "exhausted state",
                with(|s| s.state = ContactState::Exhausted),
                AT,
                Exhausted,
                None,
            ),
            (
                "opted out before dnc",
                with(|s| {
                    s.state = ContactState::OptedOut;
                    s.on_dnc = true;
                }),
                AT,
                OptedOut,
                None,
            ),
            (
                "dnc before in flight",
                with(|s| {
                    s.on_dnc = true;
                    s.in_flight = true;
                }),
                AT,
                Dnc,
                None,
            ),
            (
                "in flight before attempt count",
                with(|s| {
                    s.in_flight = true;
                    s.attempts = 3;
                }),
                AT,
                InFlight,
                None,
            ),
            (
                "attempts = 1 + max_retries",
                with(|s| s.attempts = 3),
                AT,
                Exhausted,
                None,
            ),
            (
                "attempts = max_retries",
                with(|s| s.attempts = 2),
                AT,
                Due,
                Some(AT),
            ),
            (
                "max_retries 0 after one attempt",
                with(|s| {
                    s.rules.max_retries = 0;
                    s.attempts = 1;
                }),
                AT,
                Exhausted,
                None,
            ),
            (
                "exhausted before not started",
                with(|s| {
                    s.attempts = 3;
                    s.rules.start_at = Some(t("2026-02-01T00:00:00Z"));
                }),
                AT,
                Exhausted,
                None,
            ),
            (
                "a second before start_at",
                with(|s| s.rules.start_at = Some(t("2026-01-14T15:00:01Z"))),
                AT,
                NotStarted,
                Some("2026-01-14T15:00:01Z"),
            ),
            (
                "at start_at",
                with(|s| s.rules.start_at = Some(t(AT))),
                AT,
                Due,
                Some(AT),
            ),
            (
                "start_at after hours waits for the window",
                with(|s| s.rules.start_at = Some(t("2026-01-14T23:30:00Z"))),
                AT,
                NotStarted,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "not started before retry wait; next is the later of both",
                with(|s| {
                    s.rules.start_at = Some(t("2026-01-14T16:00:00Z"));
                    s.next_attempt_at = Some(t("2026-01-14T17:00:00Z"));
                }),
                AT,
                NotStarted,
                Some("2026-01-14T17:00:00Z"),
            ),
            (
                "a second before next_attempt_at",
                with(|s| s.next_attempt_at = Some(t("2026-01-14T15:00:01Z"))),
                AT,
                RetryWait,
                Some("2026-01-14T15:00:01Z"),
            ),
            (
                "at next_attempt_at",
                with(|s| s.next_attempt_at = Some(t(AT))),
                AT,
                Due,
                Some(AT),
            ),
            (
                "retry lands after hours: waits for the next window",
                with(|s| s.next_attempt_at = Some(t("2026-01-14T23:30:00Z"))),
                AT,
                RetryWait,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "next window is exactly end_at: never",
                with(|s| {
                    s.next_attempt_at = Some(t("2026-01-14T23:30:00Z"));
                    s.rules.end_at = Some(t("2026-01-15T14:00:00Z"));
                }),
                AT,
                RetryWait,
                None,
            ),
            (
                "next window a second before end_at",
                with(|s| {
                    s.next_attempt_at = Some(t("2026-01-14T23:30:00Z"));
                    s.rules.end_at = Some(t("2026-01-15T14:00:01Z"));
                }),
                AT,
                RetryWait,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "cap: an attempt exactly 24 h ago no longer counts",
                with(|s| {
                    s.daily_cap = Some(2);
                    s.recent = vec![t("2026-01-13T15:00:00Z"), t("2026-01-14T10:00:00Z")];
                }),
                AT,
                Due,
                Some(AT),
            ),
            (
                "cap: 24 h minus a second still counts, frees a second later",
                with(|s| {
                    s.daily_cap = Some(2);
                    s.recent = vec![t("2026-01-13T15:00:01Z"), t("2026-01-14T10:00:00Z")];
                }),
                AT,
                DailyCap,
                Some("2026-01-14T15:00:01Z"),
            ),
            (
                "cap: an attempt at the instant counts",
                with(|s| {
                    s.daily_cap = Some(1);
                    s.recent = vec![t(AT)];
                }),
                AT,
                DailyCap,
                Some("2026-01-15T15:00:00Z"),
            ),
            (
                "cap before window; the window opens before the cap frees",
                with(|s| {
                    s.daily_cap = Some(1);
                    s.recent = vec![t("2026-01-14T14:30:00Z")];
                }),
                "2026-01-14T23:30:00Z",
                DailyCap,
                Some("2026-01-15T14:30:00Z"),
            ),
            (
                "cap frees after hours: then the next window",
                with(|s| {
                    s.daily_cap = Some(1);
                    s.recent = vec![t("2026-01-14T23:30:00Z")];
                }),
                "2026-01-15T00:00:00Z",
                DailyCap,
                Some("2026-01-16T14:00:00Z"),
            ),
            (
                "cap of zero: never",
                with(|s| s.daily_cap = Some(0)),
                AT,
                DailyCap,
                None,
            ),
            (
                "no cap: recent attempts do not matter",
                with(|s| s.recent = vec![t(AT), t(AT), t(AT)]),
                AT,
                Due,
                Some(AT),
            ),
            (
                "a second before hours",
                with(|_| {}),
                "2026-01-14T13:59:59Z",
                OutsideCallingHours,
                Some("2026-01-14T14:00:00Z"),
            ),
            (
                "end of hours",
                with(|_| {}),
                "2026-01-14T23:00:00Z",
                OutsideCallingHours,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "excluded day",
                with(|s| s.rules = rules("09:00-18:00", &[Wed], &[])),
                AT,
                ExcludedDay,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "excluded day before outside hours",
                with(|s| s.rules = rules("09:00-18:00", &[Wed], &[])),
                "2026-01-14T23:30:00Z",
                ExcludedDay,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "excluded date before excluded day",
                with(|s| s.rules = rules("09:00-18:00", &[Wed], &["2026-01-14"])),
                AT,
                ExcludedDate,
                Some("2026-01-15T14:00:00Z"),
            ),
            (
                "Friday after hours, weekend, Monday holiday: Tuesday 09:00",
                with(|s| s.rules = rules("09:00-18:00", &[Sat, Sun], &["2026-01-19"])),
                "2026-01-17T00:00:00Z",
                OutsideCallingHours,
                Some("2026-01-20T14:00:00Z"),
            ),
            (
                "Saturday: excluded day, Tuesday 09:00",
                with(|s| s.rules = rules("09:00-18:00", &[Sat, Sun], &["2026-01-19"])),
                "2026-01-17T15:00:00Z",
                ExcludedDay,
                Some("2026-01-20T14:00:00Z"),
            ),
            (
                "holiday Monday: excluded date, Tuesday 09:00",
                with(|s| s.rules = rules("09:00-18:00", &[Sat, Sun], &["2026-01-19"])),
                "2026-01-19T15:00:00Z",
                ExcludedDate,
                Some("2026-01-20T14:00:00Z"),
            ),
            (
                "Friday UTC is Saturday in Tokyo: Monday 08:00 JST",
                with(|s| {
                    s.rules = rules("08:00-21:00", &[Sat, Sun], &[]);
                    s.zones = vec![Asia::Tokyo];
                }),
                "2026-01-16T23:00:00Z",
                ExcludedDay,
                Some("2026-01-18T23:00:00Z"),
            ),
            (
                "multi-zone: NY 08:30 in hours, Chicago 07:30 not",
                with(|s| {
                    s.rules = rules("08:00-21:00", &[], &[]);
                    s.zones = vec![NY, America::Chicago];
                }),
                "2026-01-14T13:30:00Z",
                OutsideCallingHours,
                Some("2026-01-14T14:00:00Z"),
            ),
            (
                "multi-zone: Tokyo's Thursday is excluded while NY's Wednesday is not",
                with(|s| {
                    s.rules = rules("00:00-24:00", &[Thu], &[]);
                    s.zones = vec![NY, Asia::Tokyo];
                }),
                AT,
                ExcludedDay,
                Some("2026-01-16T05:00:00Z"),
            ),
            (
                "multi-zone: Tokyo's date is excluded",
                with(|s| {
                    s.rules = rules("00:00-24:00", &[], &["2026-01-15"]);
                    s.zones = vec![NY, Asia::Tokyo];
                }),
                AT,
                ExcludedDate,
                Some("2026-01-16T05:00:00Z"),
            ),
            (
                "windows that never overlap: never",
                with(|s| {
                    s.rules = rules("09:00-10:00", &[], &[]);
                    s.zones = vec![NY, Asia::Tokyo];
                }),
                AT,
                OutsideCallingHours,
                None,
            ),
            (
                "NY spring forward: start 02:30 opens 03:00 EDT",
                with(|s| s.rules = rules("02:30-10:00", &[], &[])),
                "2026-03-08T05:00:00Z",
                OutsideCallingHours,
                Some("2026-03-08T07:00:00Z"),
            ),
            (
                "NY fall back: start 01:30 opens at the first 01:30",
                with(|s| s.rules = rules("01:30-09:00", &[], &[])),
                "2026-11-01T04:00:00Z",
                OutsideCallingHours,
                Some("2026-11-01T05:30:00Z"),
            ),
        ];
        for (name, setup, at, reason, next) in cases {
            let got = setup.decide(t(at));
            assert_eq!(
                got,
                Decision {
                    reason,
                    next_eligible_at: next.map(t)
                },
                "{name}"
            );
            assert_eq!(got.is_due(), reason == Due, "{name}");
        }
    }

    #[test]
    fn two_zones_one_instant() {
        let ny = with(|_| {});
        let la = with(|s| s.zones = vec![America::Los_Angeles]);
        let at = t(AT);
        assert_eq!(
            ny.decide(at),
            Decision {
                reason: PlanReason::Due,
                next_eligible_at: Some(at)
            }
        );
        assert_eq!(
            la.decide(at),
            Decision {
                reason: PlanReason::OutsideCallingHours,
                next_eligible_at: Some(t("2026-01-14T17:00:00Z")),
            }
        );
    }

    #[test]
    fn next_eligible_at_is_due() {
        // Whatever the reason, the promised instant is one at which the same contact is due.
        let setups = [
            with(|s| s.next_attempt_at = Some(t("2026-01-16T23:59:00Z"))),
            with(|s| {
                s.rules = rules(
                    "09:00-18:00",
                    &[Weekday::Sat, Weekday::Sun],
                    &["2026-01-19"],
                );
                s.zones = vec![NY, America::Los_Angeles];
                s.daily_cap = Some(2);
                s.recent = vec![t("2026-01-16T21:00:00Z"), t("2026-01-16T22:00:00Z")];
            }),
        ];
        for setup in setups {
            let mut at = t("2026-01-16T00:00:00Z");
            while at < t("2026-01-21T00:00:00Z") {
                let decision = setup.decide(at);
                let next = decision.next_eligible_at.expect("eligible within the week");
                assert!(next >= at);
                assert!(
                    setup.decide(next).is_due(),
                    "{at}: {decision:?} but not due at {next}"
                );
                at += Duration::minutes(37);
            }
        }
    }
}
