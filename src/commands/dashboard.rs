//! `dialer dashboard`: serves the web dashboard (SPEC §11) against the database, beside a
//! running daemon (which takes the process lock; the dashboard only reads, and writes pauses and
//! DNC numbers through its own writer in short transactions, like the CLI does).
//! `dialer dashboard hash-password`: an argon2 hash for `[dashboard] users`.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;

use super::Context;
use super::signals::next_signal;
use crate::cli::DashboardCommand;
use crate::clock::{Clock, SystemClock};
use crate::dashboard::{self, AppState, LIVE_POLL};

pub fn run(ctx: &Context, action: Option<DashboardCommand>) -> Result<()> {
    match action {
        Some(DashboardCommand::HashPassword) => hash_password(),
        None => serve(ctx),
    }
}

fn serve(ctx: &Context) -> Result<()> {
    let config = ctx.config()?;
    if !config.dashboard.has_credentials() {
        anyhow::bail!(
            "{}: no dashboard credentials: set DIALER_DASHBOARD_TOKEN (e.g. `export \
             DIALER_DASHBOARD_TOKEN=$(openssl rand -hex 16)`) or add `[dashboard] users`",
            config.path.display()
        );
    }
    let db = ctx.db(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = dashboard::bind(&config.dashboard).await?;
        let addr = listener.local_addr()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = AppState::new(&config, db, clock, LIVE_POLL);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if next_signal().await.is_ok() {
                stop.cancel();
            }
        });
        eprintln!("dashboard: http://{addr}/ (sign in; Ctrl-C stops)");
        tracing::info!(%addr, "dashboard listening");
        dashboard::serve(listener, state, shutdown)
            .await
            .context("dashboard server failed")
    })
}

/// Reads one password line from stdin and prints its argon2 hash.
fn hash_password() -> Result<()> {
    if std::io::stdin().is_terminal() {
        eprintln!("password (input is shown; pipe it in to keep it off the screen):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        anyhow::bail!("the password is shorter than 8 characters: choose a longer one");
    }
    let hash = dashboard::auth::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    println!("{hash}");
    Ok(())
}
