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
        println!(
            "simulator listening on http://{addr} (account {}; use it as `twilio.api_base`)",
            sim.account_sid
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
