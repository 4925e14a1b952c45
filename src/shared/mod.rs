//! What the callback server and the placement code share while a session runs: the database,
//! the public URL and signing key, the clock, the metrics, the calls in flight, the carrier's
//! health and a cache of parsed campaigns. A neutral module: `server/` and `dialing/` both depend on it, not on each
//! other.

mod backlog;
mod carrier;
mod in_flight;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono_tz::Tz;
use url::Url;

use crate::campaign::json::{self, Defaults};
use crate::campaign::model::Campaign;
use crate::clock::Clock;
use crate::config::Secret;
use crate::metrics::Metrics;
use crate::store::{Db, Store, StoreError};

pub use backlog::{Backlog, Serving};
pub use carrier::{BreakerPolicy, CarrierHealth, Permit};
pub use in_flight::{InFlight, Reservation};

/// The state of a running session; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pub db: Db,
    /// The base URL Twilio reaches us on (no trailing slash); signatures are checked against it.
    pub public_url: Arc<str>,
    pub auth_token: Secret,
    pub default_timezone: Tz,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<InFlight>,
    /// The carrier callbacks being answered now (placing waits while there are too many).
    pub callbacks: Arc<Backlog>,
    /// Whether the carrier account can be used, and the circuit breaker over its server errors.
    pub carrier: Arc<CarrierHealth>,
    /// `twilio.from`: the number of campaigns without their own `from` (inbound calls and
    /// messages are matched to campaigns by the number called).
    pub default_from: Option<Arc<str>>,
    campaigns: Arc<Mutex<HashMap<i64, Arc<Campaign>>>>,
}

impl Shared {
    pub fn new(
        db: Db,
        public_url: &Url,
        auth_token: Secret,
        default_timezone: Tz,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            public_url: public_url.as_str().trim_end_matches('/').into(),
            auth_token,
            default_timezone,
            clock,
            metrics: Arc::default(),
            in_flight: Arc::default(),
            callbacks: Arc::default(),
            carrier: Arc::default(),
            default_from: None,
            campaigns: Arc::default(),
        }
    }

    /// With `twilio.from` known (see [`Shared::default_from`]).
    pub fn with_default_from(mut self, from: &str) -> Self {
        self.default_from = Some(from.into());
        self
    }

    /// A campaign by id, parsed once and cached (dropped by [`Shared::forget_campaigns`]).
    pub fn campaign(&self, store: &Store, id: i64) -> Result<Arc<Campaign>, StoreError> {
        if let Some(c) = self.cache().get(&id) {
            return Ok(c.clone());
        }
        let row = store
            .campaign_by_id(id)?
            .ok_or_else(|| StoreError::NoCampaign(format!("#{id}")))?;
        let parsed = json::parse(
            &row.config,
            Defaults {
                timezone: self.default_timezone,
            },
        )
        .map_err(|e| StoreError::BadStoredCampaign {
            name: row.name.clone(),
            message: e.to_string(),
        })?;
        let c = Arc::new(parsed.campaign);
        self.cache().insert(id, c.clone());
        Ok(c)
    }

    pub fn forget_campaigns(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Campaign>>> {
        self.campaigns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `{public_url}{path}?attempt=ID[&step=STEP]`, query-encoded.
    pub fn callback_url(&self, path: &str, attempt: i64, step: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("attempt", &attempt.to_string());
        if let Some(s) = step {
            q.append_pair("step", s);
        }
        format!("{}{path}?{}", self.public_url, q.finish())
    }
}
