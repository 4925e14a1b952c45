//! The carrier behind the Twilio client: Twilio itself, or the built-in simulator started
//! in-process on a free port. Either way calls go through the same `twilio::Client`.

use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::clock::Clock;

use crate::config::{CarrierKind, Config, Secret};
use crate::simulator::{SimConfig, Simulator};
use crate::twilio::{Client, ClientOptions};

/// A ready client plus what keeps the simulator alive.
pub struct Carrier {
    pub client: Client,
    /// The key of callback signatures.
    pub auth_token: Secret,
    pub simulator: Option<Simulator>,
}

/// Parses the `[simulator]` table of dialer.toml.
pub fn sim_config(config: &Config) -> Result<SimConfig> {
    let sim: SimConfig = toml::Value::Table(config.simulator.clone())
        .try_into()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: [simulator]: {}",
                config.path.display(),
                e.to_string().trim()
            )
        })?;
    sim.validate()
        .map_err(|e| anyhow::anyhow!("{}: [simulator]: {e}", config.path.display()))?;
    Ok(sim)
}

/// Starts the configured carrier; the built-in simulator reads time from `clock`.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Carrier> {
    match config.carrier {
        CarrierKind::Simulator => {
            let sim = Simulator::start(sim_config(config)?, clock)
                .await
                .context("cannot start the built-in simulator")?;
            let client = Client::new(
                sim.base_url(),
                sim.account_sid(),
                sim.auth_token(),
                ClientOptions::default(),
            )?;
            tracing::info!(api_base = sim.base_url(), "built-in simulator started");
            Ok(Carrier {
                client,
                auth_token: Secret::new(sim.auth_token()),
                simulator: Some(sim),
            })
        }
        CarrierKind::Twilio => {
            let t = &config.twilio;
            if t.account_sid.is_empty() {
                anyhow::bail!(
                    "{}: `twilio.account_sid` is empty: set TWILIO_ACCOUNT_SID or [twilio] account_sid",
                    config.path.display()
                );
            }
            if t.auth_token.is_empty() {
                anyhow::bail!(
                    "{}: `twilio.auth_token` is empty: set TWILIO_AUTH_TOKEN or [twilio] auth_token",
                    config.path.display()
                );
            }
            let client = Client::new(
                t.api_base.as_str(),
                &t.account_sid,
                t.auth_token.expose(),
                ClientOptions::default(),
            )?;
            Ok(Carrier {
                client,
                auth_token: t.auth_token.clone(),
                simulator: None,
            })
        }
    }
}
