//! The simulator's Call resources: their live state and Twilio's JSON shape for them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// `status` of a Call resource (Twilio's `call_enum_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
        }
    }
}

/// Whether a `CallStatus` of a callback is final.
pub fn is_final(status: &str) -> bool {
    matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    )
}

/// One call as the simulator knows it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    pub from: String,
    pub status: CallStatus,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// Simulated seconds from answer to hang-up; set when the call ends.
    pub duration: Option<u64>,
    pub answered_by: Option<String>,
    /// Status callbacks not sent because of `faults.drop_callback_rate` (not in Twilio's JSON).
    pub dropped_callbacks: u32,
    /// Status callbacks sent twice because of `faults.duplicate_callback_rate`.
    pub duplicated_callbacks: u32,
    /// Status callbacks drawn to be held back by `faults.reorder_callback_rate` (one drawn
    /// while another is already held goes out at once, ahead of it).
    pub reordered_callbacks: u32,
    /// Whether the create's answer was delayed by `faults.slow_create_rate`.
    pub slow_answer: bool,
}

/// Twilio's date format: RFC 2822 in UTC, `Tue, 31 Aug 2010 20:36:28 +0000`.
pub fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// How Twilio formats a number for display: `(415) 867-5309` for NANP, else unchanged.
pub fn formatted(number: &str) -> String {
    match number.strip_prefix("+1") {
        Some(n) if n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..])
        }
        _ => number.to_owned(),
    }
}

/// Billed minutes: every started minute counts, and an answered call at least one.
pub fn billed_minutes(seconds: u64) -> u64 {
    seconds.div_ceil(60).max(1)
}

impl CallRecord {
    pub fn uri(&self) -> String {
        format!(
            "/2010-04-01/Accounts/{}/Calls/{}.json",
            self.account_sid, self.sid
        )
    }

    /// The Call resource JSON (`api.v2010.account.call`).
    pub fn to_json(&self) -> Value {
        let base = format!(
            "/2010-04-01/Accounts/{}/Calls/{}",
            self.account_sid, self.sid
        );
        let sub = |name: &str| format!("{base}/{name}.json");
        let price = match (self.status, self.duration) {
            (CallStatus::Completed, Some(d)) => {
                Some(format!("-{:.5}", 0.014 * billed_minutes(d) as f64))
            }
            _ => None,
        };
        json!({
            "sid": self.sid,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "parent_call_sid": null,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": formatted(&self.to),
            "from": self.from,
            "from_formatted": formatted(&self.from),
            "phone_number_sid": null,
            "status": self.status.as_str(),
            "start_time": self.start_time.map(rfc2822),
            "end_time": self.end_time.map(rfc2822),
            "duration": self.duration.map(|d| d.to_string()),
            "price": price,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": self.answered_by,
            "api_version": "2010-04-01",
            "forwarded_from": null,
            "group_sid": null,
            "caller_name": null,
            "queue_time": "0",
            "trunk_sid": null,
            "uri": self.uri(),
            "subresource_uris": {
                "notifications": sub("Notifications"),
                "recordings": sub("Recordings"),
                "payments": sub("Payments"),
                "events": sub("Events"),
                "siprec": sub("Siprec"),
                "streams": sub("Streams"),
                "transcriptions": sub("Transcriptions"),
                "user_defined_message_subscriptions": sub("UserDefinedMessageSubscriptions"),
                "user_defined_messages": sub("UserDefinedMessages"),
            },
        })
    }
}

/// Twilio's error body: `code`, `message`, `more_info`, `status`.
pub fn error_json(status: u16, code: u32, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_twilio() {
        let t = Utc
            .with_ymd_and_hms(2010, 8, 31, 20, 36, 28)
            .single()
            .expect("valid date");
        assert_eq!(rfc2822(t), "Tue, 31 Aug 2010 20:36:28 +0000");
        assert_eq!(formatted("+14158675309"), "(415) 867-5309");
        assert_eq!(formatted("+442071838750"), "+442071838750");
        assert_eq!(billed_minutes(0), 1);
        assert_eq!(billed_minutes(60), 1);
        assert_eq!(billed_minutes(61), 2);
    }
}
