//! The Twilio-compatible simulator (SPEC §7): Calls create/fetch/list with Twilio's JSON and
//! errors, and a task per call that plays it like the phone network would — signed status
//! callbacks, the voice webhook, TwiML — with deterministic, configurable callee behavior.

mod api;
mod behavior;
mod call;
mod config;
pub mod fake_bot;
mod list;
mod messages;
mod params;
mod play;
mod record;
#[cfg(test)]
mod tests;
mod twiml;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

pub use config::{
    Behavior, BehaviorKind, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Faults, Mix, Reply, Rule,
    SimConfig, SimConfigError,
};
pub use messages::{InboundAnswer, InboundCall, InboundSms, SimMessage};
pub use record::CallRecord;

/// One Calls create request as the simulator received and answered it (`GET /simulator/requests`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRequestLog {
    /// When it arrived (RFC 3339, UTC).
    pub received_at: String,
    /// The form parameters in the order sent (repeated keys kept).
    pub params: Vec<(String, String)>,
    /// The HTTP status answered.
    pub status: u16,
    /// The created Call SID, when a call was created (even if the answer was an error).
    pub sid: Option<String>,
    /// Twilio's error code, when the create was refused.
    pub error_code: Option<u32>,
    /// Real milliseconds the answer was held back (`faults.slow_create_rate`): the client may
    /// have given up before it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_delayed_ms: Option<u64>,
}

/// The simulator's shared state: configuration, calls, the request log.
#[derive(Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: SimConfig,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    book: Mutex<Book>,
    /// The newest `history` create requests.
    requests: Mutex<VecDeque<CreateRequestLog>>,
    /// The Messages resource and the carrier's opt-out list (SPEC §12).
    messages: Mutex<messages::MessageBook>,
    /// Cancelled when the simulator stops: call tasks end without further callbacks.
    stop: CancellationToken,
    /// `faults.account_suspended`, changeable while running.
    suspended: std::sync::atomic::AtomicBool,
}

/// The calls the simulator remembers: the newest `history` of them (SimConfig::history), so a
/// simulator that runs for days (the built-in one, inside a daemon) does not grow with every
/// call. A call dropped from the history is gone from fetch and list, like a deleted call.
#[derive(Default)]
struct Book {
    calls: VecDeque<CallRecord>,
    /// The creation number of `calls[0]`: how many calls were dropped from the history.
    first: u64,
    /// SID → creation number.
    index: HashMap<String, u64>,
    /// Create requests seen per `To` (raw parameter), the per-number part of each call's seed.
    per_number: HashMap<String, u64>,
    /// Per call in the history: cancelled by a `Status` update to hang the call up.
    hangups: HashMap<String, CancellationToken>,
}

impl Book {
    fn get(&self, sid: &str) -> Option<&CallRecord> {
        let n = *self.index.get(sid)?;
        self.calls.get(usize::try_from(n - self.first).ok()?)
    }

    fn get_mut(&mut self, sid: &str) -> Option<&mut CallRecord> {
        let n = *self.index.get(sid)?;
        self.calls.get_mut(usize::try_from(n - self.first).ok()?)
    }

    /// Records a new call, dropping the oldest ones beyond `history`.
    fn add(&mut self, record: CallRecord, hangup: CancellationToken, history: usize) {
        while self.calls.len() >= history.max(1) {
            let Some(old) = self.calls.pop_front() else {
                break;
            };
            self.index.remove(&old.sid);
            self.hangups.remove(&old.sid);
            self.first += 1;
        }
        let n = self.first + self.calls.len() as u64;
        self.index.insert(record.sid.clone(), n);
        self.hangups.insert(record.sid.clone(), hangup);
        self.calls.push_back(record);
    }
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] SimConfigError),
    #[error("cannot listen on `{addr}` for the simulator: {source}; choose another address")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot build the simulator's http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Idle connections to one callback host kept for reuse between callbacks.
const CALLBACK_IDLE_CONNECTIONS: usize = 32;

impl SimState {
    /// Validates `config` and builds an empty simulator reading time from `clock`.
    pub fn new(config: SimConfig, clock: Arc<dyn Clock>) -> Result<SimState, SimError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent("TwilioProxy/1.1")
            // a burst of callbacks opens as many connections as it needs; afterwards only a
            // few stay open for reuse, so neither side keeps thousands of idle connections
            .pool_max_idle_per_host(CALLBACK_IDLE_CONNECTIONS)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()?;
        let shared = Shared {
            clock,
            http,
            book: Mutex::new(Book::default()),
            requests: Mutex::new(VecDeque::new()),
            messages: Mutex::default(),
            stop: CancellationToken::new(),
            suspended: std::sync::atomic::AtomicBool::new(config.faults.account_suspended),
            config,
        };
        Ok(SimState {
            shared: Arc::new(shared),
        })
    }

    /// The Calls create requests received (the newest `history` of them), oldest first.
    pub fn requests(&self) -> Vec<CreateRequestLog> {
        self.shared.requests().iter().cloned().collect()
    }

    /// The current JSON of a call, as `GET /Calls/{Sid}.json` shows it.
    pub fn call_json(&self, sid: &str) -> Option<serde_json::Value> {
        self.shared.book().get(sid).map(CallRecord::to_json)
    }

    /// Every call's record in the history, in creation order (tests check what the carrier saw).
    pub fn records(&self) -> Vec<CallRecord> {
        self.shared.book().calls.iter().cloned().collect()
    }

    /// How many status callbacks of a call the fault injection dropped.
    pub fn dropped_callbacks(&self, sid: &str) -> Option<u32> {
        self.shared.book().get(sid).map(|c| c.dropped_callbacks)
    }

    /// Suspends the account (every request answered 401, code 20005) or reactivates it.
    pub fn set_account_suspended(&self, suspended: bool) {
        self.shared
            .suspended
            .store(suspended, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ends every call task (no further callbacks are sent).
    pub fn stop_calls(&self) {
        self.shared.stop.cancel();
    }
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn messages(&self) -> MutexGuard<'_, messages::MessageBook> {
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn requests(&self) -> MutexGuard<'_, VecDeque<CreateRequestLog>> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    /// Logs a create request, dropping the oldest beyond `history`.
    fn log_request(&self, request: CreateRequestLog) {
        let mut log = self.requests();
        while log.len() >= self.config.history.max(1) {
            log.pop_front();
        }
        log.push_back(request);
    }

    /// Changes a call's record; `date_updated` moves to now.
    fn update(&self, sid: &str, change: impl FnOnce(&mut CallRecord)) {
        let now = self.clock.now();
        if let Some(record) = self.book().get_mut(sid) {
            change(record);
            record.date_updated = now;
        }
    }
}

/// The simulator's HTTP surface: Twilio's Calls resource plus `GET /simulator/requests`.
pub fn router(state: SimState) -> Router {
    api::routes().merge(messages::routes()).with_state(state)
}

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SimConfig,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = SimState::new(config, clock).map_err(std::io::Error::other)?;
    serve_state(listener, state, shutdown).await
}

async fn serve_state(
    listener: tokio::net::TcpListener,
    state: SimState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let stop = state.shared.stop.clone();
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    stop.cancel();
    result
}

/// A simulator running in-process on a free loopback port.
pub struct Simulator {
    addr: SocketAddr,
    base_url: String,
    state: SimState,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:0`, reading time from `clock`.
    pub async fn start(config: SimConfig, clock: Arc<dyn Clock>) -> Result<Simulator, SimError> {
        Simulator::start_on("127.0.0.1:0", config, clock).await
    }

    /// Starts a simulator listening on `addr` (e.g. `127.0.0.1:0`).
    pub async fn start_on(
        addr: &str,
        config: SimConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Simulator, SimError> {
        let state = SimState::new(config, clock)?;
        let bind_err = |source| SimError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_state(listener, state.clone(), shutdown.clone()));
        Ok(Simulator {
            addr: local,
            base_url: format!("http://{local}"),
            state,
            shutdown,
            task: Some(task),
        })
    }

    /// The `api_base` to give the Twilio client, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn account_sid(&self) -> &str {
        &self.state.shared.config.account_sid
    }

    pub fn auth_token(&self) -> &str {
        &self.state.shared.config.auth_token
    }

    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Every Calls create request received so far, oldest first.
    pub fn requests(&self) -> Vec<CreateRequestLog> {
        self.state.requests()
    }

    /// Stops serving and ends every call task.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.state.stop_calls();
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join))),
            None => Ok(()),
        }
    }
}

/// Dropping the handle stops the server too (without waiting for it).
impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.state.stop_calls();
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}
