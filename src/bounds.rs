//! The upper bounds of every duration, count and rate an operator gives (`dialer.toml`, campaign
//! JSON, command-line flags), in one place, and the humantime parser that enforces a maximum.
//! A value above its bound is rejected where it is parsed, so no later `Instant + Duration`,
//! date arithmetic or rate computation can overflow. The README's configuration section lists
//! them; keep the two in step.

use std::ops::RangeInclusive;
use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `run batch --wait`: how long a cron batch waits for its calls to end.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * DAY);
/// `run batch --limit`: calls placed by one batch.
pub const MAX_BATCH_LIMIT: u32 = 10_000_000;

/// `dialer.shutdown_grace`: callbacks served after SIGTERM.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(DAY);
/// `dialer.calls_per_second`: the account-wide placement rate (Twilio's default is 1; raised
/// accounts and the simulator go to the thousands).
pub const MAX_CALLS_PER_SECOND: f64 = 5_000.0;
/// `dialer.max_concurrent_calls` and a campaign's `max_concurrent_calls`.
pub const MAX_CONCURRENT_CALLS: u32 = 10_000;
/// `dialer.max_calls_per_number_per_day`.
pub const MAX_CALLS_PER_NUMBER_PER_DAY: u32 = 100;

/// A campaign's `calls_per_minute`: the global maximum rate, per minute.
pub const MAX_CALLS_PER_MINUTE: u32 = 300_000;
/// A campaign's `max_call_duration` in seconds (Twilio `TimeLimit`: at most 24 hours).
pub const CALL_DURATION: RangeInclusive<u32> = 1..=86_400;
/// A campaign's `ring_timeout` in seconds (Twilio `Timeout`: 5 to 600).
pub const RING_TIMEOUT: RangeInclusive<u32> = 5..=600;
/// A campaign's `max_retries`.
pub const MAX_RETRIES: u32 = 100;
/// A `retry_delays` entry or a gather option's `retry_after`.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(365 * DAY);
/// A script step's `pause`, in seconds.
pub const MAX_PAUSE: u32 = 600;
/// A gather's `timeout`, in seconds.
pub const GATHER_TIMEOUT: RangeInclusive<u32> = 1..=60;
/// A gather's `num_digits`.
pub const MAX_GATHER_DIGITS: u32 = 50;

/// A bot step's `max_turns`: the caller's turns in one conversation.
pub const BOT_MAX_TURNS: RangeInclusive<u32> = 1..=50;
/// A bot step's `timeout`: how long one bot request may take. Twilio waits at most 15 s for the
/// TwiML of a webhook; 10 s leaves the rest for the database and the network.
pub const BOT_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(10);

/// `simulator.time_scale`: real seconds per simulated second.
pub const MAX_TIME_SCALE: f64 = 100.0;
/// `simulator.faults.slow_ms`.
pub const MAX_SLOW_MS: u64 = 600_000;

/// `simulator.history`: calls (and create requests) the simulator remembers.
pub const SIM_HISTORY: RangeInclusive<usize> = 100..=10_000_000;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{value}` is not a duration like `90s`, `10m` or `2h`")]
    Malformed { value: String },
    #[error("`{value}` is longer than the maximum of {}", fmt(*max))]
    TooLong { value: String, max: Duration },
}

/// Parses a humantime duration (`90s`, `10m`, `2h 30m`, `1day`) of at most `max`.
pub fn parse_duration(value: &str, max: Duration) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| match e {
        // too big for a `Duration` at all: say so, with the bound
        humantime::DurationError::NumberOverflow => DurationError::TooLong {
            value: value.to_owned(),
            max,
        },
        _ => DurationError::Malformed {
            value: value.to_owned(),
        },
    })?;
    if d > max {
        return Err(DurationError::TooLong {
            value: value.to_owned(),
            max,
        });
    }
    Ok(d)
}

/// A bound as people write it, in its largest whole unit: `7days`, `1day`, `365days`, `10m`
/// (each a valid humantime value).
pub fn fmt(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if d.subsec_nanos() != 0 => humantime::format_duration(d).to_string(),
        DAY => "1day".to_owned(),
        _ if s > 0 && s.is_multiple_of(DAY) => format!("{}days", s / DAY),
        _ if s > 0 && s.is_multiple_of(HOUR) => format!("{}h", s / HOUR),
        _ if s > 0 && s.is_multiple_of(MINUTE) => format!("{}m", s / MINUTE),
        _ => format!("{s}s"),
    }
}

/// Carrier callbacks being answered at once above which placing waits: a burst of results is
/// recorded before new calls add to it, so callbacks are not starved by placement and the open
/// connections (and memory) stay bounded.
pub const MAX_CALLBACK_BACKLOG: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_up_to_the_bound_parse() {
        assert_eq!(parse_duration("7d", MAX_WAIT), Ok(MAX_WAIT));
        assert_eq!(
            parse_duration(" 90s ", MAX_WAIT),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(parse_duration("0s", MAX_WAIT), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_over_the_bound_name_it() {
        let e = parse_duration("7days 1s", MAX_WAIT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`7days 1s` is longer than the maximum of 7days"
        );
        // the value from the issue: too big even for a `Duration`
        let e = parse_duration("292277024626y", MAX_WAIT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`292277024626y` is longer than the maximum of 7days"
        );
        let e = parse_duration("99999999999999999999999s", MAX_WAIT).unwrap_err();
        assert!(matches!(e, DurationError::TooLong { .. }), "{e}");
    }

    #[test]
    fn malformed_durations_say_what_is_expected() {
        let e = parse_duration("soon", MAX_WAIT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`soon` is not a duration like `90s`, `10m` or `2h`"
        );
    }

    #[test]
    fn bounds_read_as_written_in_the_readme() {
        assert_eq!(fmt(MAX_WAIT), "7days");
        assert_eq!(fmt(MAX_SHUTDOWN_GRACE), "1day");
        assert_eq!(fmt(MAX_RETRY_DELAY), "365days");
        assert_eq!(fmt(Duration::from_secs(600)), "10m");
        assert_eq!(fmt(Duration::from_secs(90)), "90s");
        for d in [MAX_WAIT, MAX_SHUTDOWN_GRACE, MAX_RETRY_DELAY] {
            assert_eq!(humantime::parse_duration(&fmt(d)), Ok(d));
        }
        assert_eq!(f64::from(MAX_CALLS_PER_MINUTE), MAX_CALLS_PER_SECOND * 60.0);
    }
}
