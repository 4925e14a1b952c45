//! The Calls create parameters the simulator honours, validated with Twilio's error codes.

use super::config::is_e164;

/// `MachineDetection` of a create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amd {
    Enable,
    DetectMessageEnd,
}

/// The create parameters the simulator honours.
#[derive(Debug, Clone)]
pub struct CreateParams {
    pub to: String,
    pub from: String,
    pub url: Option<String>,
    pub method: String,
    pub twiml: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    /// Requested events besides `completed`, which is always sent.
    pub on_initiated: bool,
    pub on_ringing: bool,
    pub on_answered: bool,
    /// Seconds to let the phone ring.
    pub timeout: f64,
    /// Longest a call may last once answered, in seconds.
    pub time_limit: f64,
    pub amd: Option<Amd>,
    pub amd_timeout: f64,
}

/// A refused create parameter: Twilio's code and message.
#[derive(Debug)]
pub struct ParamError {
    pub code: u32,
    pub message: String,
}

fn bad(code: u32, message: impl Into<String>) -> ParamError {
    ParamError {
        code,
        message: message.into(),
    }
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

fn method(params: &[(String, String)], key: &str) -> Result<String, ParamError> {
    match get(params, key).map(str::to_ascii_uppercase) {
        None => Ok("POST".to_owned()),
        Some(m) if m == "GET" || m == "POST" => Ok(m),
        Some(m) => Err(bad(
            20001,
            format!("Invalid {key}: {m}, expected GET or POST"),
        )),
    }
}

fn seconds(
    params: &[(String, String)],
    key: &str,
    default: u32,
    range: (u32, u32),
) -> Result<f64, ParamError> {
    match get(params, key) {
        None => Ok(f64::from(default)),
        Some(v) => v
            .parse::<u32>()
            .map(|n| f64::from(n.clamp(range.0, range.1)))
            .map_err(|_| bad(20001, format!("Invalid {key}: {v}, expected whole seconds"))),
    }
}

/// Validates a Calls create body the way Twilio does.
pub fn parse_create(params: &[(String, String)]) -> Result<CreateParams, ParamError> {
    let to = get(params, "To").ok_or_else(|| bad(21201, "No 'To' number is specified"))?;
    let from = get(params, "From").ok_or_else(|| bad(21213, "No 'From' number is specified"))?;
    let url = get(params, "Url");
    let twiml = get(params, "Twiml");
    if url.is_none() && twiml.is_none() {
        return Err(bad(21205, "Url parameter is required."));
    }
    if !is_e164(to) {
        return Err(bad(21211, format!("Invalid 'To' Phone Number: {to}")));
    }
    if !is_e164(from) {
        return Err(bad(
            21212,
            format!("Invalid From Number (caller ID): {from}"),
        ));
    }
    if let Some(u) = url.filter(|u| !is_http_url(u)) {
        return Err(bad(21205, format!("Url is not a valid URL: {u}")));
    }
    if url.is_none() && twiml.is_some_and(|t| t.chars().count() > 4000) {
        return Err(bad(21205, "Twiml exceeds 4000 characters"));
    }
    let status_callback = get(params, "StatusCallback");
    if let Some(u) = status_callback.filter(|u| !is_http_url(u)) {
        return Err(bad(
            21205,
            format!("StatusCallback is not a valid URL: {u}"),
        ));
    }
    let (mut on_initiated, mut on_ringing, mut on_answered) = (false, false, false);
    for (_, value) in params.iter().filter(|(k, _)| k == "StatusCallbackEvent") {
        // Clients send one key per event; a space-separated list is accepted too.
        for event in value.split_whitespace() {
            match event {
                "initiated" => on_initiated = true,
                "ringing" => on_ringing = true,
                "answered" => on_answered = true,
                "completed" => {}
                other => return Err(bad(20001, format!("Invalid StatusCallbackEvent: {other}"))),
            }
        }
    }
    let amd = match get(params, "MachineDetection") {
        _ if get(params, "SendDigits").is_some() => None,
        None => None,
        Some("Enable") => Some(Amd::Enable),
        Some("DetectMessageEnd") => Some(Amd::DetectMessageEnd),
        Some(other) => {
            return Err(bad(
                20001,
                format!("Invalid MachineDetection: {other}, expected Enable or DetectMessageEnd"),
            ));
        }
    };
    Ok(CreateParams {
        to: to.to_owned(),
        from: from.to_owned(),
        url: url.map(str::to_owned),
        method: method(params, "Method")?,
        twiml: twiml.map(str::to_owned),
        status_callback: status_callback.map(str::to_owned),
        status_callback_method: method(params, "StatusCallbackMethod")?,
        on_initiated,
        on_ringing,
        on_answered,
        timeout: seconds(params, "Timeout", 60, (1, 600))?,
        time_limit: seconds(params, "TimeLimit", 14400, (1, 86400))?,
        amd,
        amd_timeout: seconds(params, "MachineDetectionTimeout", 30, (3, 60))?,
    })
}
