//! The validated, typed campaign: what the rest of the code sees once the JSON has been checked.
//! Nothing here holds strings for zones, durations, weekdays or times of day.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;

use super::script::Script;

/// A calling window `[start, end)` in minutes after local midnight; `end` may be 1440 (`24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingHours {
    pub start: u16,
    pub end: u16,
}

impl CallingHours {
    /// Whether a local time (minutes after midnight) lies inside the window.
    pub fn contains(&self, minute_of_day: u16) -> bool {
        self.start <= minute_of_day && minute_of_day < self.end
    }
}

impl Default for CallingHours {
    fn default() -> Self {
        Self {
            start: 8 * 60,
            end: 21 * 60,
        }
    }
}

/// Why an attempt ended, as far as retry policy is concerned (SPEC §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
    Machine,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Completed,
        Reason::Busy,
        Reason::NoAnswer,
        Reason::Failed,
        Reason::Canceled,
        Reason::Machine,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Completed => "completed",
            Reason::Busy => "busy",
            Reason::NoAnswer => "no-answer",
            Reason::Failed => "failed",
            Reason::Canceled => "canceled",
            Reason::Machine => "machine",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Per-reason retry delays; a reason with no delay (and no `default`) is final.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryDelays {
    pub by_reason: BTreeMap<Reason, Duration>,
    pub default: Option<Duration>,
}

impl RetryDelays {
    pub fn delay_for(&self, reason: Reason) -> Option<Duration> {
        self.by_reason.get(&reason).copied().or(self.default)
    }
}

/// Twilio `MachineDetection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineDetection {
    #[default]
    Off,
    Enable,
    DetectMessageEnd,
}

impl MachineDetection {
    /// The value sent to Twilio, or `None` when off.
    pub fn twilio_value(self) -> Option<&'static str> {
        match self {
            MachineDetection::Off => None,
            MachineDetection::Enable => Some("Enable"),
            MachineDetection::DetectMessageEnd => Some("DetectMessageEnd"),
        }
    }
}

/// What a call says: nothing yet (a draft), one message, or a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Draft,
    Message(String),
    Script(Script),
}

/// A cron `schedule` (SPEC §3) with its source text.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub source: String,
    pub cron: croner::Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The rules that decide when a contact of this campaign may be called.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRules {
    pub timezone: Tz,
    pub hours: CallingHours,
    pub excluded_days: BTreeSet<u8>, // Weekday::num_days_from_monday()
    pub excluded_dates: BTreeSet<NaiveDate>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub max_retries: u32,
    pub retry_delays: RetryDelays,
}

impl CampaignRules {
    pub fn is_excluded_day(&self, day: Weekday) -> bool {
        self.excluded_days
            .contains(&(day.num_days_from_monday() as u8))
    }
}

impl Default for CampaignRules {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::America::New_York,
            hours: CallingHours::default(),
            excluded_days: BTreeSet::new(),
            excluded_dates: BTreeSet::new(),
            start_at: None,
            end_at: None,
            max_retries: 2,
            retry_delays: RetryDelays::default(),
        }
    }
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub name: String,
    pub rules: CampaignRules,
    /// Caller ID override (E.164); `twilio.from` when absent.
    pub from: Option<String>,
    pub max_call_duration: u32,
    pub ring_timeout: u32,
    pub machine_detection: MachineDetection,
    pub calls_per_minute: Option<u32>,
    pub max_concurrent_calls: Option<u32>,
    pub schedule: Option<Schedule>,
    pub voice: Option<String>,
    pub language: Option<String>,
    pub content: Content,
    /// Inbound calls and follow-up messages (SPEC §12).
    pub messaging: super::follow_up::Messaging,
}

impl Campaign {
    pub fn is_draft(&self) -> bool {
        matches!(self.content, Content::Draft)
    }
}
