//! `dialer simulator`: the Twilio-compatible simulator on its own, configured by the
//! `[simulator]` table of dialer.toml (defaults when there is no config file).

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::dialing::carrier::sim_config;
use crate::simulator::SimConfig;
use crate::simulator::fake_bot::{self, BotScript};
use std::path::Path;

/// Runs the simulator on `listen`; with `bot = (script, address)` also the scripted bot.
pub fn run(ctx: &Context, listen: &str, bot: Option<(&Path, &str)>) -> Result<()> {
    let bot_script = bot
        .map(|(path, addr)| BotScript::load(path).map(|s| (s, addr.to_owned())))
        .transpose()?;
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
        if let Some((script, addr)) = bot_script {
            let bot_listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the bot (--bot-listen)"))?;
            let bot_addr = bot_listener.local_addr()?;
            println!("fake bot listening on http://{bot_addr}/webhooks/rest/webhook");
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = fake_bot::serve(bot_listener, script, stop).await {
                    tracing::error!(error = %e, "fake bot failed");
                }
            });
        }
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
