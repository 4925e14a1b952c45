//! The Twilio REST client for the Calls resource (SPEC §6.1): create, fetch and list calls, with
//! HTTP Basic auth, timeouts and jittered retries of 429/503. The simulator is reached through
//! this same client by pointing `api_base` at it.

use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::Error;

/// Page size asked of `GET /Calls.json` (Twilio's maximum).
const LIST_PAGE_SIZE: u32 = 1000;

/// How requests answered 429/503, or that could not connect, are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try; `0` disables retrying.
    pub max_retries: u32,
    /// The backoff cap of the first retry; doubled for each further retry.
    pub base_backoff: Duration,
    /// Upper bound of any single backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Like twilio-node's `autoRetry`: 3 retries, at most `100 ms · 2^n`, capped at 3 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// The largest wait before retry number `retry` (0-based): `min(max, base · 2^retry)`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.base_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// "Full jitter": a uniformly random wait in `[0, backoff_cap(retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry);
        let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=cap_micros))
    }
}

/// Timeouts and retries of a [`Client`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Whole request, connection included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// The parameters of `POST /Calls.json` that vary per call.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateCall {
    /// E.164.
    pub to: String,
    /// E.164 caller ID.
    pub from: String,
    /// The voice webhook (`{public_url}/twilio/voice?attempt=ID`), requested with POST.
    pub url: String,
    /// `{public_url}/twilio/status?attempt=ID`, sent every progress event with POST.
    pub status_callback: String,
    /// Ring timeout (`Timeout`).
    pub timeout_secs: u32,
    /// Maximum call length (`TimeLimit`).
    pub time_limit_secs: u32,
    /// `MachineDetection` (`Enable` / `DetectMessageEnd`), or `None` for off.
    pub machine_detection: Option<&'static str>,
}

impl CreateCall {
    /// The form body, in this order; `StatusCallbackEvent` is four repeated keys.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", self.to.clone()),
            ("From", self.from.clone()),
            ("Url", self.url.clone()),
            ("Method", "POST".to_string()),
            ("StatusCallback", self.status_callback.clone()),
            ("StatusCallbackMethod", "POST".to_string()),
        ];
        for event in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent", event.to_string()));
        }
        form.push(("Timeout", self.timeout_secs.to_string()));
        form.push(("TimeLimit", self.time_limit_secs.to_string()));
        if let Some(md) = self.machine_detection {
            form.push(("MachineDetection", md.to_string()));
        }
        form
    }
}

/// A Call resource as Twilio returns it. Every field but `sid` may be null or absent; numbers
/// (`duration` in seconds, `price`, `queue_time` in ms) and dates (RFC 2822) are strings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Call {
    pub sid: String,
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub parent_call_sid: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub answered_by: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub date_updated: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default)]
    pub price_unit: Option<String>,
    #[serde(default)]
    pub queue_time: Option<String>,
    #[serde(default)]
    pub uri: Option<String>,
}

/// One page of `GET /Calls.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallPage {
    #[serde(default)]
    pub calls: Vec<Call>,
    /// Path and query of the next page, relative to the API base; `None` on the last page.
    #[serde(default)]
    pub next_page_uri: Option<String>,
}

/// Filters of `GET /Calls.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListCalls {
    pub to: Option<String>,
    /// `StartTime>=YYYY-MM-DD` (a UTC date).
    pub start_time_on_or_after: Option<NaiveDate>,
}

/// The Twilio REST client. Cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api_base: String,
    account_sid: String,
    auth_token: String,
    opts: ClientOptions,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("opts", &self.opts)
            .finish()
    }
}

impl Client {
    /// `api_base` is `https://api.twilio.com` or the simulator's base URL (no trailing path needed).
    pub fn new(
        api_base: &str,
        account_sid: &str,
        auth_token: &str,
        opts: ClientOptions,
    ) -> Result<Client, Error> {
        let parsed = url::Url::parse(api_base).map_err(|e| {
            Error::Config(format!(
                "`twilio.api_base` `{api_base}` is not a URL ({e}); use e.g. `https://api.twilio.com`"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "`twilio.api_base` `{api_base}` must be an http or https URL, e.g. `https://api.twilio.com`"
            )));
        }
        if account_sid.is_empty() || !is_sid(account_sid) {
            return Err(Error::Config(format!(
                "`twilio.account_sid` `{account_sid}` is not an account sid; copy it from the Twilio console (`AC…`)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("could not set up the http client: {e}")))?;
        Ok(Client {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            opts,
        })
    }

    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    fn calls_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Calls.json",
            self.api_base, self.account_sid
        )
    }

    /// `POST /Calls.json`. Only errors that prove the request was never processed (429,
    /// connection failures: [`Error::never_processed`]) are retried per the policy; when the
    /// retries run out that error is returned and no call was created. A 5xx (503 included), a
    /// [`Error::Timeout`] or a [`Error::Transport`] is returned at once: it is unknown whether
    /// the call exists ([`Error::outcome_unknown`]), and only a lookup may tell.
    pub async fn create_call(&self, call: &CreateCall) -> Result<Call, Error> {
        let url = self.calls_url();
        let form = call.form();
        let body = self
            .send(&url, Error::never_processed, || {
                self.http.post(&url).form(&form)
            })
            .await?;
        decode(&url, &body)
    }

    /// A cheap authenticated request (`GET /Calls.json?PageSize=1`, one page): `Ok` when the
    /// account answers, the error otherwise ([`Error::account_unusable`] for bad credentials or
    /// a suspended account).
    pub async fn check_account(&self) -> Result<(), Error> {
        let url = format!("{}?PageSize=1", self.calls_url());
        let body = self
            .send(&url, Error::is_retryable, || self.http.get(&url))
            .await?;
        decode::<CallPage>(&url, &body).map(|_| ())
    }

    /// `GET /Calls/{sid}.json`.
    pub async fn fetch_call(&self, sid: &str) -> Result<Call, Error> {
        if !is_sid(sid) {
            return Err(Error::InvalidSid(sid.to_string()));
        }
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Calls/{sid}.json",
            self.api_base, self.account_sid
        );
        let body = self
            .send(&url, Error::is_retryable, || self.http.get(&url))
            .await?;
        decode(&url, &body)
    }

    /// `GET /Calls.json` with the filters, following `next_page_uri` to the last page.
    pub async fn list_calls(&self, filter: &ListCalls) -> Result<Vec<Call>, Error> {
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(to) = &filter.to {
                query.append_pair("To", to);
            }
            // Twilio's parameter is `StartTime>` (on or after), written `StartTime>=DATE` in
            // its docs: the `=` there is the query's own
            if let Some(day) = filter.start_time_on_or_after {
                query.append_pair("StartTime>", &day.format("%Y-%m-%d").to_string());
            }
            query.append_pair("PageSize", &LIST_PAGE_SIZE.to_string());
            query.finish()
        };
        let mut url = format!("{}?{query}", self.calls_url());
        let mut calls = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let body = self
                .send(&url, Error::is_retryable, || self.http.get(&url))
                .await?;
            let page: CallPage = decode(&url, &body)?;
            calls.extend(page.calls);
            let Some(next) = page.next_page_uri.filter(|n| !n.is_empty()) else {
                return Ok(calls);
            };
            if !next.starts_with('/') || seen.contains(&next) {
                return Err(Error::Unexpected {
                    url,
                    what: format!("a `next_page_uri` that cannot be followed: `{next}`"),
                });
            }
            url = format!("{}{next}", self.api_base);
            seen.push(next);
        }
    }

    /// Sends the request built by `build` (again on each retry, for errors `resend` accepts)
    /// and returns the body of a success answer.
    async fn send(
        &self,
        url: &str,
        resend: fn(&Error) -> bool,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, Error> {
        let policy = &self.opts.retry;
        let mut retry = 0;
        loop {
            match self.send_once(url, build()).await {
                Err(err) if resend(&err) && retry < policy.max_retries => {
                    let wait = policy.backoff(retry);
                    tracing::warn!(url, error = %err, retry = retry + 1, wait = ?wait, "retrying twilio request");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(&self, url: &str, req: reqwest::RequestBuilder) -> Result<Vec<u8>, Error> {
        let timeout = self.opts.request_timeout;
        let resp = req
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| Error::from_reqwest(url, timeout, e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::from_reqwest(url, timeout, e))?;
        if status.is_success() {
            Ok(body.to_vec())
        } else {
            Err(Error::from_response(status.as_u16(), &body))
        }
    }
}

/// The parameters of `POST /Messages.json` (SPEC §12): SMS, or WhatsApp with `whatsapp:`
/// addresses on both `To` and `From`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMessage {
    pub to: String,
    pub from: String,
    pub body: String,
    /// `{public_url}/twilio/message-status?message=ID`, signed like the call callbacks.
    pub status_callback: String,
}

/// A Message resource as Twilio returns it (the fields the dialer keeps).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    pub sid: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// One page of `GET /Messages.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessagePage {
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub next_page_uri: Option<String>,
}

impl Client {
    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        )
    }

    /// `POST /Messages.json`. Like [`Client::create_call`], only errors that prove the request
    /// was never processed are retried.
    pub async fn create_message(&self, m: &CreateMessage) -> Result<Message, Error> {
        let url = self.messages_url();
        let form = [
            ("To", m.to.as_str()),
            ("From", m.from.as_str()),
            ("Body", m.body.as_str()),
            ("StatusCallback", m.status_callback.as_str()),
        ];
        let body = self
            .send(&url, Error::never_processed, || {
                self.http.post(&url).form(&form)
            })
            .await?;
        decode(&url, &body)
    }

    /// `GET /Messages/{sid}.json`.
    pub async fn fetch_message(&self, sid: &str) -> Result<Message, Error> {
        if !is_sid(sid) {
            return Err(Error::InvalidSid(sid.to_string()));
        }
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages/{sid}.json",
            self.api_base, self.account_sid
        );
        let body = self
            .send(&url, Error::is_retryable, || self.http.get(&url))
            .await?;
        decode(&url, &body)
    }

    /// `GET /Messages.json?To=…` (first page).
    pub async fn list_messages(&self, to: Option<&str>) -> Result<Vec<Message>, Error> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(to) = to {
            query.append_pair("To", to);
        }
        query.append_pair("PageSize", &LIST_PAGE_SIZE.to_string());
        let url = format!("{}?{}", self.messages_url(), query.finish());
        let body = self
            .send(&url, Error::is_retryable, || self.http.get(&url))
            .await?;
        decode::<MessagePage>(&url, &body).map(|p| p.messages)
    }
}

/// Twilio SIDs are two letters and 32 hex digits; accept any ASCII alphanumerics so the
/// simulator may use its own, but nothing that could change the URL.
fn is_sid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn decode<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        url: url.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "s3cr3t-token-value";

    #[derive(Debug, Clone)]
    struct Recorded {
        method: String,
        path: String,
        authorization: Option<String>,
        content_type: Option<String>,
        body: String,
    }

    type Reply = Box<dyn Fn(usize, &Recorded) -> (u16, String) + Send + Sync>;

    struct Fake {
        requests: Mutex<Vec<Recorded>>,
        reply: Reply,
        delay: Duration,
    }

    async fn handle(
        State(fake): State<Arc<Fake>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let rec = Recorded {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let index = {
            let mut reqs = fake.requests.lock().expect("lock");
            reqs.push(rec.clone());
            reqs.len() - 1
        };
        if !fake.delay.is_zero() {
            tokio::time::sleep(fake.delay).await;
        }
        let (status, body) = (fake.reply)(index, &rec);
        (
            StatusCode::from_u16(status).expect("valid status"),
            [("content-type", "application/json")],
            body,
        )
            .into_response()
    }

    /// Starts the fake Twilio on 127.0.0.1:0; returns its base URL and shared state.
    async fn fake_twilio(
        delay: Duration,
        reply: impl Fn(usize, &Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> (String, Arc<Fake>) {
        let fake = Arc::new(Fake {
            requests: Mutex::new(Vec::new()),
            reply: Box::new(reply),
            delay,
        });
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        (format!("http://{addr}"), fake)
    }

    fn fast_opts(max_retries: u32) -> ClientOptions {
        ClientOptions {
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy {
                max_retries,
                base_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
            },
        }
    }

    fn call_json(sid: &str, status: &str) -> String {
        serde_json::json!({
            "sid": sid,
            "account_sid": SID,
            "status": status,
            "to": "+34600111222",
            "from": "+34910000000",
            "direction": "outbound-api",
            "answered_by": null,
            "start_time": null,
            "duration": null,
            "price": null,
            "date_created": "Tue, 31 Aug 2010 20:36:28 +0000",
            "subresource_uris": {"events": "/x"}
        })
        .to_string()
    }

    fn create() -> CreateCall {
        CreateCall {
            to: "+34600111222".into(),
            from: "+34910000000".into(),
            url: "https://dialer.example/twilio/voice?attempt=42".into(),
            status_callback: "https://dialer.example/twilio/status?attempt=42".into(),
            timeout_secs: 30,
            time_limit_secs: 300,
            machine_detection: Some("DetectMessageEnd"),
        }
    }

    fn form_pairs(body: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[tokio::test]
    async fn create_call_sends_the_exact_request() {
        let (base, fake) =
            fake_twilio(Duration::ZERO, |_, _| (201, call_json("CA1", "queued"))).await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(2)).expect("client");
        let call = client.create_call(&create()).await.expect("created");
        assert_eq!(call.sid, "CA1");
        assert_eq!(call.status.as_deref(), Some("queued"));
        assert_eq!(call.answered_by, None);

        let reqs = fake.requests.lock().expect("lock").clone();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Calls.json"));
        // base64("AC0123456789abcdef0123456789abcdef:s3cr3t-token-value")
        use base64::Engine;
        let expected_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
        );
        assert_eq!(r.authorization.as_deref(), Some(expected_auth.as_str()));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            r.body,
            "To=%2B34600111222&From=%2B34910000000\
             &Url=https%3A%2F%2Fdialer.example%2Ftwilio%2Fvoice%3Fattempt%3D42&Method=POST\
             &StatusCallback=https%3A%2F%2Fdialer.example%2Ftwilio%2Fstatus%3Fattempt%3D42\
             &StatusCallbackMethod=POST\
             &StatusCallbackEvent=initiated&StatusCallbackEvent=ringing\
             &StatusCallbackEvent=answered&StatusCallbackEvent=completed\
             &Timeout=30&TimeLimit=300&MachineDetection=DetectMessageEnd"
        );
        let events: Vec<String> = form_pairs(&r.body)
            .into_iter()
            .filter(|(k, _)| k == "StatusCallbackEvent")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(events, ["initiated", "ringing", "answered", "completed"]);
    }

    #[tokio::test]
    async fn create_call_omits_machine_detection_when_off() {
        let (base, fake) =
            fake_twilio(Duration::ZERO, |_, _| (201, call_json("CA1", "queued"))).await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(0)).expect("client");
        let req = CreateCall {
            machine_detection: None,
            ..create()
        };
        client.create_call(&req).await.expect("created");
        let body = fake.requests.lock().expect("lock")[0].body.clone();
        let keys: Vec<String> = form_pairs(&body).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "To",
                "From",
                "Url",
                "Method",
                "StatusCallback",
                "StatusCallbackMethod",
                "StatusCallbackEvent",
                "StatusCallbackEvent",
                "StatusCallbackEvent",
                "StatusCallbackEvent",
                "Timeout",
                "TimeLimit"
            ]
        );
    }

    #[tokio::test]
    async fn too_many_requests_twice_then_created() {
        let (base, fake) = fake_twilio(Duration::ZERO, |i, _| {
            if i < 2 {
                (
                    429,
                    r#"{"code":20429,"message":"Too Many Requests","status":429}"#.into(),
                )
            } else {
                (201, call_json("CA9", "queued"))
            }
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(3)).expect("client");
        let call = client
            .create_call(&create())
            .await
            .expect("created after retries");
        assert_eq!(call.sid, "CA9");
        let reqs = fake.requests.lock().expect("lock").clone();
        assert_eq!(reqs.len(), 3);
        assert!(reqs.iter().all(|r| r.body == reqs[0].body));
    }

    #[tokio::test]
    async fn too_many_requests_forever_gives_a_retryable_error() {
        let (base, fake) = fake_twilio(Duration::ZERO, |_, _| {
            (
                429,
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#.into(),
            )
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(3)).expect("client");
        let err = client
            .create_call(&create())
            .await
            .expect_err("429 forever");
        assert!(err.is_retryable());
        assert_eq!(err.code(), Some(20429));
        assert_eq!(fake.requests.lock().expect("lock").len(), 4);
    }

    #[tokio::test]
    async fn service_unavailable_on_create_is_not_resent_but_is_on_fetch() {
        // SPEC §10: after a 503 the call may exist; resending the create could dial twice
        let (base, fake) = fake_twilio(Duration::ZERO, |i, _| {
            if i == 0 {
                (503, "upstream down".into())
            } else {
                (201, call_json("CA2", "queued"))
            }
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(1)).expect("client");
        let err = client.create_call(&create()).await.expect_err("503");
        assert!(err.outcome_unknown(), "{err:?}");
        assert_eq!(fake.requests.lock().expect("lock").len(), 1);

        let (base, fake) = fake_twilio(Duration::ZERO, |i, _| {
            if i == 0 {
                (503, "upstream down".into())
            } else {
                (200, call_json("CA2", "queued"))
            }
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(1)).expect("client");
        assert_eq!(client.fetch_call("CA2").await.expect("ok").sid, "CA2");
        assert_eq!(fake.requests.lock().expect("lock").len(), 2);
    }

    #[tokio::test]
    async fn check_account_asks_for_one_call_and_reports_bad_credentials() {
        let (base, fake) = fake_twilio(Duration::ZERO, |_, _| {
            (
                401,
                r#"{"code":20003,"message":"Authenticate","status":401}"#.into(),
            )
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(3)).expect("client");
        let err = client.check_account().await.expect_err("401");
        assert!(err.account_unusable(), "{err:?}");
        let reqs = fake.requests.lock().expect("lock").clone();
        assert_eq!(reqs.len(), 1, "a 401 is not retried");
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(
            reqs[0].path,
            format!("/2010-04-01/Accounts/{SID}/Calls.json?PageSize=1")
        );
    }

    #[tokio::test]
    async fn invalid_number_is_an_api_error_and_not_retried() {
        let (base, fake) = fake_twilio(Duration::ZERO, |_, _| {
            (
                400,
                r#"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#.into(),
            )
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(3)).expect("client");
        let err = client.create_call(&create()).await.expect_err("400");
        match &err {
            Error::Api {
                status,
                code,
                message,
                more_info,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(*code, Some(21211));
                assert_eq!(message, "Invalid 'To' Phone Number");
                assert_eq!(
                    more_info.as_deref(),
                    Some("https://www.twilio.com/docs/errors/21211")
                );
            }
            other => panic!("expected an api error, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(fake.requests.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn connection_refused_is_retryable_and_retried() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client =
            Client::new(&format!("http://{addr}"), SID, TOKEN, fast_opts(2)).expect("client");
        let err = client.create_call(&create()).await.expect_err("refused");
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn slow_answer_is_a_timeout_and_not_retried() {
        let (base, fake) = fake_twilio(Duration::from_millis(800), |_, _| {
            (201, call_json("CA1", "queued"))
        })
        .await;
        let opts = ClientOptions {
            request_timeout: Duration::from_millis(200),
            ..fast_opts(3)
        };
        let client = Client::new(&base, SID, TOKEN, opts).expect("client");
        let err = client.create_call(&create()).await.expect_err("timeout");
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(fake.requests.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn fetch_call_gets_the_call() {
        let (base, fake) = fake_twilio(Duration::ZERO, |_, _| {
            (200, call_json("CAabc", "completed"))
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(0)).expect("client");
        let call = client.fetch_call("CAabc").await.expect("fetched");
        assert_eq!(call.status.as_deref(), Some("completed"));
        let r = fake.requests.lock().expect("lock")[0].clone();
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.path,
            format!("/2010-04-01/Accounts/{SID}/Calls/CAabc.json")
        );
        assert!(r.authorization.is_some());

        let err = client.fetch_call("../x").await.expect_err("bad sid");
        assert!(matches!(err, Error::InvalidSid(_)));
    }

    #[tokio::test]
    async fn success_with_garbage_body_is_a_decode_error() {
        let (base, _fake) = fake_twilio(Duration::ZERO, |_, _| (201, "not json".into())).await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(3)).expect("client");
        let err = client.create_call(&create()).await.expect_err("garbage");
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn list_calls_follows_pages() {
        let (base, fake) = fake_twilio(Duration::ZERO, |i, _| {
            let page = if i == 0 {
                serde_json::json!({
                    "calls": [serde_json::from_str::<serde_json::Value>(&call_json("CA1", "completed")).expect("json"),
                              serde_json::from_str::<serde_json::Value>(&call_json("CA2", "busy")).expect("json")],
                    "next_page_uri": format!("/2010-04-01/Accounts/{SID}/Calls.json?PageSize=1000&Page=1&PageToken=PAxyz"),
                    "page": 0
                })
            } else {
                serde_json::json!({
                    "calls": [serde_json::from_str::<serde_json::Value>(&call_json("CA3", "no-answer")).expect("json")],
                    "next_page_uri": null,
                    "page": 1
                })
            };
            (200, page.to_string())
        })
        .await;
        let client = Client::new(&format!("{base}/"), SID, TOKEN, fast_opts(0)).expect("client");
        let calls = client
            .list_calls(&ListCalls {
                to: Some("+34600111222".into()),
                start_time_on_or_after: NaiveDate::from_ymd_opt(2026, 3, 1),
            })
            .await
            .expect("listed");
        let sids: Vec<&str> = calls.iter().map(|c| c.sid.as_str()).collect();
        assert_eq!(sids, ["CA1", "CA2", "CA3"]);
        let reqs = fake.requests.lock().expect("lock").clone();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[0].path,
            format!(
                "/2010-04-01/Accounts/{SID}/Calls.json?To=%2B34600111222&StartTime%3E=2026-03-01&PageSize=1000"
            )
        );
        assert_eq!(
            reqs[1].path,
            format!("/2010-04-01/Accounts/{SID}/Calls.json?PageSize=1000&Page=1&PageToken=PAxyz")
        );
        assert!(reqs.iter().all(|r| r.method == "GET"));
    }

    #[tokio::test]
    async fn list_calls_refuses_a_foreign_next_page() {
        let (base, _fake) = fake_twilio(Duration::ZERO, |_, _| {
            (
                200,
                r#"{"calls":[],"next_page_uri":"https://evil.example/steal"}"#.into(),
            )
        })
        .await;
        let client = Client::new(&base, SID, TOKEN, fast_opts(0)).expect("client");
        let err = client
            .list_calls(&ListCalls::default())
            .await
            .expect_err("foreign");
        assert!(matches!(err, Error::Unexpected { .. }), "{err:?}");
    }

    #[test]
    fn token_never_shows_in_debug_or_errors() {
        let client = Client::new("http://127.0.0.1:1", SID, TOKEN, ClientOptions::default())
            .expect("client");
        let debug = format!("{client:?}");
        assert!(!debug.contains(TOKEN));
        assert!(debug.contains("[redacted]"));
        let err = Client::new("ftp://x", SID, TOKEN, ClientOptions::default()).expect_err("scheme");
        assert!(!format!("{err} {err:?}").contains(TOKEN));
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(matches!(
            Client::new("not a url", SID, TOKEN, ClientOptions::default()),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new(
                "https://api.twilio.com",
                "AC/../x",
                TOKEN,
                ClientOptions::default()
            ),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_retries: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        assert_eq!(p.backoff_cap(0), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(2), Duration::from_millis(400));
        assert_eq!(p.backoff_cap(4), Duration::from_millis(1000));
        assert_eq!(p.backoff_cap(40), Duration::from_millis(1000));
        let waits: Vec<Duration> = (0..200).map(|_| p.backoff(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(800)));
        // Full jitter spreads the waits (200 equal draws would be astronomically unlikely).
        assert!(waits.iter().any(|w| *w != waits[0]));
    }
}
