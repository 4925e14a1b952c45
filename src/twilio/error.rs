//! Errors of the Twilio REST client: Twilio's error JSON, transport failures, timeouts, decoding.
//!
//! No variant carries the auth token: requests authenticate with a header, never with the URL.

use std::time::Duration;

use serde::Deserialize;

/// Twilio error code for "too many concurrent requests" (HTTP 429), always safe to retry.
pub const TOO_MANY_REQUESTS: u32 = 20429;
/// Twilio error code for bad credentials ("Permission Denied" / "Authenticate").
pub const PERMISSION_DENIED: u32 = 20003;
/// Twilio error code for a suspended or closed account ("Account not active").
pub const ACCOUNT_NOT_ACTIVE: u32 = 20005;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Twilio answered with an error status (its error JSON, when it sent one).
    #[error("twilio refused the request (HTTP {status}{}): {message}{}",
        code.map(|c| format!(", error {c}")).unwrap_or_default(),
        more_info.as_deref().map(|m| format!(" (see {m})")).unwrap_or_default())]
    Api {
        status: u16,
        code: Option<u32>,
        message: String,
        more_info: Option<String>,
    },
    /// The connection could not be made, so the request was never sent.
    #[error(
        "could not connect to twilio at `{url}`: {source}; check `twilio.api_base` and the network"
    )]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request may have reached Twilio but no answer came in time.
    #[error("twilio did not answer `{url}` within {}; the request may still have been processed", humantime::format_duration(*timeout))]
    Timeout { url: String, timeout: Duration },
    /// The request failed after it may have been sent.
    #[error("request to twilio `{url}` failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Twilio answered with a success status but a body this client cannot read.
    #[error("could not read twilio's answer from `{url}`: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// Twilio answered with something this client cannot act on (e.g. a foreign `next_page_uri`).
    #[error("twilio answered `{url}` with {what}")]
    Unexpected { url: String, what: String },
    /// A call sid that is not one (it would change the request URL).
    #[error("`{0}` is not a twilio call sid (expected `CA` and 32 hex digits)")]
    InvalidSid(String),
    /// The client could not be built (bad `api_base`, bad account sid, TLS setup).
    #[error("invalid twilio client setting: {0}")]
    Config(String),
}

impl Error {
    /// Whether sending the same *idempotent* request (a GET) again is safe and may succeed: HTTP
    /// 429 (Twilio 20429), HTTP 503, and connection failures. A permanent 4xx such as 21211
    /// (invalid `To`), a timeout or a decode failure is not. A Calls create is resent only after
    /// [`Error::never_processed`] errors: after a 503 the call may exist.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, code, .. } => {
                *status == 429 || *status == 503 || *code == Some(TOO_MANY_REQUESTS)
            }
            Error::Connect { .. } => true,
            Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Unexpected { .. }
            | Error::InvalidSid(_)
            | Error::Config(_) => false,
        }
    }

    /// Whether the request certainly never reached Twilio's processing, so sending it again can
    /// never create a second call: HTTP 429 (Twilio 20429, "never processed and always safe to
    /// retry") and connection failures. The only errors a Calls create is resent after.
    pub fn never_processed(&self) -> bool {
        match self {
            Error::Api { status, code, .. } => *status == 429 || *code == Some(TOO_MANY_REQUESTS),
            Error::Connect { .. } => true,
            _ => false,
        }
    }

    /// Whether the account itself cannot be used (SPEC §10): HTTP 401/403, or Twilio 20003
    /// (bad credentials) / 20005 (suspended account). No request of this account can succeed
    /// until someone fixes the credentials or the account.
    pub fn account_unusable(&self) -> bool {
        match self {
            Error::Api { status, code, .. } => {
                matches!(*status, 401 | 403)
                    || matches!(*code, Some(PERMISSION_DENIED | ACCOUNT_NOT_ACTIVE))
            }
            _ => false,
        }
    }

    /// Whether the request may have been processed although no usable answer came (SPEC §10):
    /// a 5xx (503 included), a timeout or a transport failure after the request may have been
    /// sent, or a success answer that cannot be read. A create with this error may have created
    /// the call: it must be looked up before anything else.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status >= 500 && !self.account_unusable(),
            Error::Timeout { .. } | Error::Transport { .. } | Error::Decode { .. } => true,
            Error::Connect { .. }
            | Error::Unexpected { .. }
            | Error::InvalidSid(_)
            | Error::Config(_) => false,
        }
    }

    /// Twilio's error code (e.g. 21211), when Twilio sent one.
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status Twilio answered with, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Builds the error for a non-success answer from Twilio's error body. Understands Twilio's
    /// JSON (`code`, `message`, `more_info`, `status`), RFC 9457 problem details (`detail`,
    /// `title`) and any other body (kept, shortened, as the message).
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        #[derive(Deserialize)]
        struct Body {
            code: Option<u32>,
            message: Option<String>,
            more_info: Option<String>,
            detail: Option<String>,
            title: Option<String>,
        }
        if let Ok(b) = serde_json::from_slice::<Body>(body) {
            let message = b
                .message
                .or(b.detail)
                .or(b.title)
                .unwrap_or_else(|| default_message(status));
            return Error::Api {
                status,
                code: b.code,
                message,
                more_info: b.more_info,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            default_message(status)
        } else {
            shorten(text, 200)
        };
        Error::Api {
            status,
            code: None,
            message,
            more_info: None,
        }
    }

    pub(crate) fn from_reqwest(url: &str, timeout: Duration, source: reqwest::Error) -> Error {
        let url = url.to_string();
        if source.is_connect() {
            Error::Connect { url, source }
        } else if source.is_timeout() {
            Error::Timeout { url, timeout }
        } else {
            Error::Transport { url, source }
        }
    }
}

fn default_message(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("unexpected status");
    format!("no error details ({})", reason.to_lowercase())
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_twilio_error_json() {
        let body = br#"{"code": 21211, "message": "Invalid 'To' Phone Number: +1555", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let err = Error::from_response(400, body);
        assert_eq!(err.code(), Some(21211));
        assert_eq!(err.status(), Some(400));
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "twilio refused the request (HTTP 400, error 21211): Invalid 'To' Phone Number: +1555 \
             (see https://www.twilio.com/docs/errors/21211)"
        );
    }

    #[test]
    fn too_many_requests_and_unavailable_are_retryable() {
        let e429 = Error::from_response(
            429,
            br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        );
        assert!(e429.is_retryable());
        assert_eq!(e429.code(), Some(20429));
        assert!(Error::from_response(503, b"Service Unavailable").is_retryable());
        assert!(!Error::from_response(500, b"").is_retryable());
        assert!(!Error::from_response(404, br#"{"code":20404,"message":"nf"}"#).is_retryable());
    }

    #[test]
    fn tolerates_non_json_and_empty_bodies() {
        let err = Error::from_response(502, b"<html>Bad Gateway</html>");
        assert_eq!(
            err.to_string(),
            "twilio refused the request (HTTP 502): <html>Bad Gateway</html>"
        );
        assert_eq!(err.code(), None);
        let empty = Error::from_response(503, b"  ");
        assert_eq!(
            empty.to_string(),
            "twilio refused the request (HTTP 503): no error details (service unavailable)"
        );
        let long = "x".repeat(500);
        let Error::Api { message, .. } = Error::from_response(500, long.as_bytes()) else {
            panic!("expected an api error");
        };
        assert_eq!(message.chars().count(), 201);
    }

    #[test]
    fn reads_problem_details() {
        let err = Error::from_response(
            400,
            br#"{"type":"about:blank","title":"Bad Request","detail":"To is required","status":400,"code":21201}"#,
        );
        assert_eq!(err.code(), Some(21201));
        assert!(err.to_string().ends_with(": To is required"));
    }

    #[test]
    fn bad_credentials_and_suspended_accounts_make_the_account_unusable() {
        let e401 = Error::from_response(
            401,
            br#"{"code": 20003, "message": "Authenticate", "status": 401}"#,
        );
        assert!(e401.account_unusable());
        assert!(!e401.is_retryable() && !e401.never_processed() && !e401.outcome_unknown());
        assert!(Error::from_response(403, b"Forbidden").account_unusable());
        let suspended = Error::from_response(
            401,
            br#"{"code": 20005, "message": "Account not active", "status": 401}"#,
        );
        assert!(suspended.account_unusable());
        let invalid_to =
            Error::from_response(400, br#"{"code": 21211, "message": "Invalid 'To'"}"#);
        assert!(!invalid_to.account_unusable());
    }

    #[test]
    fn server_errors_and_lost_answers_are_unknown_outcomes() {
        for status in [500, 502, 503, 504] {
            let e = Error::from_response(status, b"");
            assert!(e.outcome_unknown(), "{status}");
            assert!(!e.never_processed(), "{status}: a create may have happened");
        }
        let timeout = Error::Timeout {
            url: "http://x".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.outcome_unknown());
        let e429 = Error::from_response(429, br#"{"code": 20429, "message": "Too Many"}"#);
        assert!(e429.never_processed() && !e429.outcome_unknown());
        assert!(!Error::from_response(400, b"").outcome_unknown());
    }

    #[test]
    fn timeout_message_names_url_and_duration() {
        let err = Error::Timeout {
            url: "http://127.0.0.1:9/x".into(),
            timeout: Duration::from_secs(15),
        };
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "twilio did not answer `http://127.0.0.1:9/x` within 15s; the request may still have been processed"
        );
    }
}
