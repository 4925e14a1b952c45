//! The engine `run batch` and `run daemon` share: a [`Session`] owns the database (writer and
//! readers), the carrier (Twilio or the built-in simulator), the callback server, the shared
//! state, reconciliation, pacing and the calls in flight. The commands only decide *what* to
//! offer and *when*; how a due contact becomes a call lives here.

mod follow_up;
mod pick;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{CarrierKind, Config};
use crate::decision::{Loaded, load_campaigns};
use crate::dialing::{Dialer, Gate, Placed, carrier, reconcile_one, reconcile_open};
use crate::server;
use crate::shared::Shared;
use crate::simulator::Simulator;
use crate::store::{ContactRow, Db, StoreError};

pub use follow_up::{FollowUpRound, Pending, pending_follow_ups};
pub use pick::{due_contacts, interleave};

/// How often attempts open for too long (lost callbacks) are reconciled.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How long an attempt may stay open past the time its call could last before the carrier is
/// asked about it.
pub const STALE_GRACE: Duration = Duration::from_secs(60);

/// One finished placement task.
#[derive(Debug)]
pub struct Placement {
    pub campaign: Arc<Loaded>,
    pub contact: ContactRow,
    pub placed: Result<Placed, StoreError>,
}

/// What offering a due contact came to.
#[derive(Debug)]
pub enum Offer {
    /// Its placement task is running (collect it from the `JoinSet`).
    Placing,
    /// The campaign's own caps hold it (until the wait, when known); offer it again later.
    Held(Option<Duration>),
    /// It stopped being due meanwhile (a callback, a pause, the DNC list, the clock).
    NotDue,
    /// Shutdown was requested while waiting for a slot or a rate permit.
    Stopped,
    /// The carrier account cannot be used (SPEC §10): nothing is placed until it can.
    AccountDown(String),
    /// The circuit breaker is open after repeated carrier server errors: nothing is placed for
    /// this wait.
    CircuitOpen(Duration),
}

/// A running engine: the server is serving, the carrier is up, open attempts were reconciled.
pub struct Session {
    shared: Shared,
    dialer: Arc<Dialer>,
    daily_cap: Option<u32>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_server: CancellationToken,
    simulator: Option<Simulator>,
    /// Attempts settled from the carrier's record at start.
    pub reconciled: usize,
}

impl Session {
    /// Opens the database, starts the carrier and the callback server, and reconciles the
    /// attempts an earlier process left open. The caller holds the process lock.
    pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Session> {
        let db = Db::open_database(&config.database, clock.now().timestamp())?;
        let carrier = carrier::start(config, clock.clone()).await?;
        let (listener, public_url) = bind_server(config).await?;
        let shared = Shared::new(
            db,
            &public_url,
            carrier.auth_token.clone(),
            config.dialer.default_timezone,
            clock,
        )
        .with_default_from(&config.twilio.from);
        let stop_server = CancellationToken::new();
        let server = tokio::spawn(server::serve(listener, shared.clone(), stop_server.clone()));
        tracing::info!(%public_url, "callback server listening");
        let dialer = Arc::new(Dialer::new(
            shared.clone(),
            carrier.client,
            config.twilio.from.clone(),
            config.dialer.calls_per_second,
            config.dialer.max_concurrent_calls,
        ));
        let reconciled = reconcile_open(&shared, &dialer.client).await?;
        if reconciled > 0 {
            tracing::info!(
                count = reconciled,
                "reconciled attempts left open by an earlier run"
            );
        }
        Ok(Session {
            shared,
            dialer,
            daily_cap: config.dialer.max_calls_per_number_per_day,
            server,
            stop_server,
            simulator: carrier.simulator,
            reconciled,
        })
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// The stored campaigns (one, or all), validated again.
    pub async fn campaigns(&self, only: Option<&str>) -> Result<Vec<Arc<Loaded>>> {
        let tz = self.shared.default_timezone;
        let only = only.map(str::to_owned);
        let loaded = self
            .shared
            .db
            .read(move |store| load_campaigns(store, tz, only.as_deref()))
            .await?;
        self.shared.forget_campaigns();
        Ok(loaded.into_iter().map(Arc::new).collect())
    }

    /// Up to `limit` contacts of the campaign due at `at`, skipping `skip` (placements under
    /// way): the indexed due query, each confirmed by `decide`.
    pub async fn due(
        &self,
        loaded: &Arc<Loaded>,
        at: DateTime<Utc>,
        skip: Arc<HashSet<i64>>,
        limit: usize,
    ) -> Result<Vec<ContactRow>, StoreError> {
        let (l, cap) = (loaded.clone(), self.daily_cap);
        self.shared
            .db
            .read(move |store| due_contacts(store, &l, cap, at, &skip, limit))
            .await
    }

    /// Whether one contact is due at `at`, with the campaign's paused flag read afresh.
    pub async fn is_due(
        &self,
        loaded: &Arc<Loaded>,
        contact_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactRow>, StoreError> {
        let (l, cap) = (loaded.clone(), self.daily_cap);
        self.shared
            .db
            .read(move |store| {
                let paused = store.campaign_by_id(l.id())?.is_none_or(|c| c.paused);
                let Some(row) = store.contact(contact_id)? else {
                    return Ok(None);
                };
                if paused {
                    return Ok(None);
                }
                Ok(l.decide(store, cap, &row, at)?.is_due().then_some(row))
            })
            .await
    }

    /// Offers one due contact: waits for a free slot of the account and the account-wide rate
    /// (or `shutdown`), checks it is still due, and starts its placement in `tasks`. A campaign
    /// held by its own caps is answered at once, so it never delays another campaign.
    pub async fn offer(
        &self,
        loaded: &Arc<Loaded>,
        contact: ContactRow,
        tasks: &mut JoinSet<Placement>,
        shutdown: &CancellationToken,
    ) -> Result<Offer> {
        // results first: no new call while the callbacks of the current ones wait
        tokio::select! {
            _ = self.shared.callbacks.eased() => {}
            _ = shutdown.cancelled() => return Ok(Offer::Stopped),
        }
        let slot = loop {
            let freed = self.shared.in_flight.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.dialer.gate(loaded.id(), &loaded.campaign) {
                Gate::Go(slot) => break slot,
                Gate::Held(wait) => return Ok(Offer::Held(wait)),
                Gate::AccountDown(reason) => return Ok(Offer::AccountDown(reason)),
                Gate::CircuitOpen(wait) => return Ok(Offer::CircuitOpen(wait)),
                Gate::Full => tokio::select! {
                    _ = &mut freed => {}
                    _ = shutdown.cancelled() => return Ok(Offer::Stopped),
                },
            }
        };
        tokio::select! {
            _ = self.dialer.global_permit() => {}
            _ = shutdown.cancelled() => return Ok(Offer::Stopped),
        }
        let Some(row) = self.is_due(loaded, contact.id, self.now()).await? else {
            return Ok(Offer::NotDue);
        };
        let (dialer, campaign) = (self.dialer.clone(), loaded.clone());
        tasks.spawn(async move {
            let placed = dialer.place(&campaign.campaign, &row, slot).await;
            Placement {
                campaign,
                contact: row,
                placed,
            }
        });
        Ok(Offer::Placing)
    }

    /// Asks the carrier whether the account can be used again (a cheap authenticated request);
    /// `true` if it can, and placing resumes.
    pub async fn check_account(&self) -> bool {
        match self.dialer.client.check_account().await {
            Ok(()) => {
                self.shared.carrier.account_up();
                true
            }
            Err(e) if e.account_unusable() => {
                self.shared
                    .carrier
                    .account_down(crate::dialing::account_message(&e));
                tracing::warn!(error = %e, "carrier account still unusable; placing stays stopped");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the carrier account now; placing stays stopped");
                false
            }
        }
    }

    /// Reconciles attempts whose callbacks were lost — with a call, open longer than its ring
    /// timeout + `grace`; without one, longer than ring timeout + max duration + `grace` — and
    /// frees in-flight slots of attempts that ended unseen.
    pub async fn reconcile_stale(&self, grace: Duration) -> Result<usize> {
        self.reconcile_stale_with(grace, grace).await
    }

    /// [`Session::reconcile_stale`] with its own grace for attempts with a call (`with_call`)
    /// and without one (`without_call`: the placement may still be under way).
    pub async fn reconcile_stale_with(
        &self,
        with_call: Duration,
        without_call: Duration,
    ) -> Result<usize> {
        let now = self.now();
        let grace = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let (with_call, without_call) = (grace(with_call), grace(without_call));
        let s = self.shared.clone();
        let (open, stale) = self
            .shared
            .db
            .read(move |db| {
                let open = db.open_attempts()?;
                let mut stale = Vec::new();
                for a in &open {
                    let c = s.campaign(db, a.campaign_id)?;
                    // A call the carrier created (SID known) is asked about once it should
                    // have been answered or ended: its fetch says whether it is final, and a
                    // call still going on stays open. Waiting for the longest call it could
                    // be (`max_call_duration`, 4 h by default) held a contact whose final
                    // callback was lost — and its concurrency slot — for hours. Without a SID
                    // the placement may still be under way (a create retried after an unknown
                    // outcome): only then the longest call is waited for.
                    let (secs, grace) = match a.call_sid {
                        Some(_) => (i64::from(c.ring_timeout), &with_call),
                        None => (
                            i64::from(c.ring_timeout) + i64::from(c.max_call_duration),
                            &without_call,
                        ),
                    };
                    let limit = chrono::Duration::seconds(secs).checked_add(grace);
                    if limit.is_some_and(|limit| now - a.started_at > limit) {
                        stale.push((a.clone(), c.rules.clone()));
                    }
                }
                Ok::<_, StoreError>((open.iter().map(|a| a.id).collect::<HashSet<_>>(), stale))
            })
            .await?;
        self.shared.in_flight.retain_open(&open);
        let mut ended = 0;
        for (a, rules) in stale {
            if reconcile_one(&self.shared, &self.dialer.client, a, &rules).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Moves one slice of a finished import's rows into the due index (one short write job of at
    /// most `budget`); returns false when no finished import is left to settle. An import ends
    /// as soon as its rows are written and its run marked finished: its rows are dialable from
    /// then on (read through `contacts_pending`), and settling them is upkeep done here, off the
    /// import's path.
    pub async fn settle_imports(&self, budget: Duration) -> Result<bool, StoreError> {
        let unsettled = self.shared.db.read(|db| db.unsettled_import_ids()).await?;
        let Some(&import_id) = unsettled.first() else {
            return Ok(false);
        };
        let now = self.now();
        self.shared
            .db
            .write(move |tx| tx.settle_import(import_id, budget, now))
            .await?;
        Ok(true)
    }

    /// Waits until `attempts` have all ended (`None`: every call in flight) or `limit` passes;
    /// returns how many are still open.
    pub async fn wait_for_calls(&self, attempts: Option<&HashSet<i64>>, limit: Duration) -> u32 {
        let flight = &self.shared.in_flight;
        let open = || match attempts {
            Some(ids) => ids.iter().filter(|id| flight.is_open(**id)).count() as u32,
            None => flight.total(),
        };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let freed = flight.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now_open = open();
            if now_open == 0 {
                return 0;
            }
            tokio::select! {
                _ = &mut freed => {}
                _ = tokio::time::sleep_until(deadline) => return open(),
            }
        }
    }

    /// Stops the server and the built-in simulator (placements must have finished).
    pub async fn close(self) {
        self.stop_server.cancel();
        if let Err(e) = self.server.await {
            tracing::warn!(error = %e, "callback server task failed");
        }
        if let Some(sim) = self.simulator {
            let _ = sim.shutdown().await;
        }
    }
}

/// `placed N call(s) (campaign: n, …)`: the first line of the batch's and the daemon's summary.
pub fn placed_line(by_campaign: &std::collections::BTreeMap<String, u32>) -> String {
    let total: u32 = by_campaign.values().sum();
    let per: Vec<String> = by_campaign
        .iter()
        .map(|(n, c)| format!("{n}: {c}"))
        .collect();
    if per.is_empty() {
        format!("placed {total} call(s)")
    } else {
        format!("placed {total} call(s) ({})", per.join(", "))
    }
}

/// Binds the callback server. Port 0 (tests) binds a free port, and `public_url` becomes the
/// bound address — only where the carrier is local (the built-in simulator, or `twilio.api_base`
/// on a loopback address): Twilio itself must be told a URL that reaches us.
pub async fn bind_server(config: &Config) -> Result<(tokio::net::TcpListener, url::Url)> {
    let listen = config.server.listen;
    let local_carrier = config.carrier == CarrierKind::Simulator
        || match config.twilio.api_base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
    if listen.port() == 0 && !local_carrier {
        anyhow::bail!(
            "{}: `server.listen = \"{listen}\"` (port 0) binds a random port that Twilio cannot be told: give a fixed port and set `server.public_url` to the address Twilio reaches it on",
            config.path.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} (is another program using it? change `server.listen` in {})",
                config.path.display()
            )
        })?;
    let mut public = config.server.public_url.clone();
    if listen.port() == 0 {
        let addr = listener.local_addr()?;
        public = url::Url::parse(&format!("http://{addr}"))?;
    }
    Ok((listener, public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn config(text: &str) -> Config {
        Config::parse(std::path::Path::new("dialer.toml"), text, &Env::default()).expect("config")
    }

    /// Issue: `[server] listen` with port 0 silently replaced `public_url` even with the real
    /// Twilio, which would then call back an address nobody listens on.
    #[tokio::test]
    async fn port_0_is_refused_with_a_remote_carrier_and_allowed_with_a_local_one() {
        let remote = config(
            "[server]\nlisten = \"127.0.0.1:0\"\n[carrier]\nkind = \"twilio\"\n\
             [twilio]\napi_base = \"https://api.twilio.com\"\n",
        );
        let err = bind_server(&remote).await.expect_err("refused").to_string();
        assert!(
            err.contains("port 0") && err.contains("public_url"),
            "{err}"
        );

        let local = config(
            "[server]\nlisten = \"127.0.0.1:0\"\n[carrier]\nkind = \"twilio\"\n\
             [twilio]\napi_base = \"http://127.0.0.1:9\"\n",
        );
        let (listener, url) = bind_server(&local).await.expect("bound");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(url.as_str(), format!("http://127.0.0.1:{port}/"));

        let simulator = config("[server]\nlisten = \"127.0.0.1:0\"\n");
        assert!(bind_server(&simulator).await.is_ok());
    }
}
