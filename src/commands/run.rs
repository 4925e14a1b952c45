//! `dialer run daemon` and `dialer run batch`: both are thin shells over the engine
//! (`crate::engine::Session`); the batch lives in `batch.rs`, the daemon's loop in `crate::daemon`.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;

use super::Context;
use super::signals::next_signal;
use crate::cli::RunCommand;
use crate::clock::{Clock, SystemClock};
use crate::store::DatabaseLock;

pub fn run(ctx: &Context, cmd: RunCommand) -> Result<()> {
    match cmd {
        RunCommand::Daemon => daemon(ctx),
        RunCommand::Batch {
            campaign,
            limit,
            wait,
        } => {
            let config = ctx.config()?;
            runtime()?.block_on(super::batch::run(
                ctx,
                &config,
                campaign.as_deref(),
                limit,
                wait,
            ))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `run daemon`: lock, import the declared campaigns, then the daemon until SIGINT/SIGTERM.
fn daemon(ctx: &Context) -> Result<()> {
    let config = ctx.config()?;
    let _lock = DatabaseLock::acquire(&config.database)?;
    super::campaign::import_declared(ctx, &config)?;
    let summary = runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
        let options = crate::daemon::Options {
            progress: ctx.progress(),
            ..crate::daemon::Options::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let summary = crate::daemon::run(&config, clock, shutdown, options).await;
        signals.abort();
        summary
    })?;
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM, then cancels `token`; a second signal exits at once.
async fn cancel_on_signal(token: CancellationToken) -> Result<()> {
    next_signal().await?;
    tracing::info!("stopping: no new calls; serving callbacks until calls in progress end");
    eprintln!("stopping: no new calls; waiting for calls in progress (signal again to exit now)");
    token.cancel();
    // a second signal: exit now; the next start reconciles the calls still open
    next_signal().await?;
    eprintln!("exiting now; calls still open are reconciled on the next start");
    std::process::exit(1);
}
