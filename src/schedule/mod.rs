//! PURE scheduling decisions (SPEC §5.1, §5.2, §5.4): whether a contact is due at an instant, why
//! not, when it next will be, and what happens after an attempt ends. No clock, no I/O: the
//! instant is always an argument. `dialer plan` and the scheduler call the same functions.

mod due;
mod retry;
mod wake;
mod window;

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaign::model::{CampaignRules, Reason};

pub use due::decide;
pub use retry::after_attempt;
pub use wake::{next_fire, next_wake};
pub use window::{in_window, next_window_start};

/// The lifecycle state of a contact within its campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    Open,
    Completed,
    Exhausted,
    OptedOut,
}

impl ContactState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactState::Open => "open",
            ContactState::Completed => "completed",
            ContactState::Exhausted => "exhausted",
            ContactState::OptedOut => "opted_out",
        }
    }

    pub fn parse(s: &str) -> Option<ContactState> {
        [
            ContactState::Open,
            ContactState::Completed,
            ContactState::Exhausted,
            ContactState::OptedOut,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// What the decision needs to know about one contact.
#[derive(Debug, Clone)]
pub struct ContactView<'a> {
    pub state: ContactState,
    /// Every zone the contact may be in (SPEC §4); never empty: the caller substitutes the
    /// campaign's zone when the contact has none of its own.
    pub zones: &'a [Tz],
    /// Attempts made so far (including one in flight).
    pub attempts: u32,
    /// Earliest instant of the next attempt; `None` for a contact never tried.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub in_flight: bool,
    pub on_dnc: bool,
    /// Created by an import run that has not finished (running, or killed): never due until an
    /// import that sees it completes (SPEC §10).
    pub import_incomplete: bool,
    /// Start instants of attempts to this number, in any campaign, within the 24 hours before the
    /// decision instant (only consulted when a daily cap is set).
    pub recent_attempts: &'a [DateTime<Utc>],
}

/// The campaign-level facts the decision needs besides its rules.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub rules: &'a CampaignRules,
    pub paused: bool,
    pub draft: bool,
    /// `dialer.max_calls_per_number_per_day`.
    pub daily_cap: Option<u32>,
}

/// Why a contact is or is not due (SPEC §5.4 reasons, plus `import_incomplete`: a documented
/// extension for rows of an import that has not finished, SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanReason {
    Due,
    OutsideCallingHours,
    ExcludedDay,
    ExcludedDate,
    RetryWait,
    InFlight,
    Completed,
    Exhausted,
    Dnc,
    OptedOut,
    DailyCap,
    Paused,
    Draft,
    NotStarted,
    Ended,
    ImportIncomplete,
}

impl PlanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanReason::Due => "due",
            PlanReason::OutsideCallingHours => "outside_calling_hours",
            PlanReason::ExcludedDay => "excluded_day",
            PlanReason::ExcludedDate => "excluded_date",
            PlanReason::RetryWait => "retry_wait",
            PlanReason::InFlight => "in_flight",
            PlanReason::Completed => "completed",
            PlanReason::Exhausted => "exhausted",
            PlanReason::Dnc => "dnc",
            PlanReason::OptedOut => "opted_out",
            PlanReason::DailyCap => "daily_cap",
            PlanReason::Paused => "paused",
            PlanReason::Draft => "draft",
            PlanReason::NotStarted => "not_started",
            PlanReason::Ended => "ended",
            PlanReason::ImportIncomplete => "import_incomplete",
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reason: PlanReason,
    /// First instant at or after the decision instant at which the contact would be due, assuming
    /// nothing else changes; `None` when never (or unknowable, like a call in flight).
    pub next_eligible_at: Option<DateTime<Utc>>,
}

impl Decision {
    pub fn is_due(&self) -> bool {
        self.reason == PlanReason::Due
    }
}

/// How an attempt ended, for [`after_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptEnd {
    pub reason: Reason,
    /// Set by a gather option's `retry_after`.
    pub retry_after: Option<Duration>,
}

/// What happens to the contact after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Complete,
    Retry(DateTime<Utc>),
    Exhausted,
}
