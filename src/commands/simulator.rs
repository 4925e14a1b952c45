//! `dialer simulator`: the Twilio-compatible simulator on its own, configured by the
//! `[simulator]` table of dialer.toml (defaults when there is no config file).

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::dialing::carrier::sim_config;
use crate::simulator::SimConfig;

pub fn run(ctx: &Context, listen: &str) -> Result<()> {
    let sim = if ctx.config_path.exists() {
        sim_config(&ctx.config()?)?
    } else {
        SimConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // the simulator's own test credentials (never Twilio's): clients need both, or get 401
        println!(
            "simulator listening on http://{addr} (account sid {}, auth token {}; set them as \
             `twilio.account_sid`, `twilio.auth_token` and this URL as `twilio.api_base`)",
            sim.account_sid, sim.auth_token
        );
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = super::signals::next_signal().await;
            stop.cancel();
        });
        crate::simulator::serve(
            listener,
            sim,
            std::sync::Arc::new(crate::clock::SystemClock),
            shutdown,
        )
        .await
        .context("simulator failed")
    })
}
