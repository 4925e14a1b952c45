//! One file per subcommand. Here: what they share (loading config, opening the store, loading
//! stored campaigns, printing tables).

pub mod campaign;
pub mod contacts;
pub mod dnc;
pub mod init;
pub mod plan;
pub mod report;
pub mod run;
pub mod simulator;
mod table;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::campaign::json::{self, Defaults};
use crate::campaign::model::Campaign;
use crate::cli::Cli;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Env};
use crate::store::{CampaignRow, Store};

pub use table::Table;

/// What every command starts from.
pub struct Context {
    pub config_path: PathBuf,
    pub quiet: bool,
    pub clock: Box<dyn Clock>,
}

impl Context {
    pub fn new(cli: &Cli) -> Self {
        Self {
            config_path: cli.config.clone(),
            quiet: cli.quiet,
            clock: Box::new(SystemClock),
        }
    }

    pub fn config(&self) -> Result<Config> {
        Ok(Config::load(&self.config_path, &Env::from_process())?)
    }

    pub fn store(&self, config: &Config) -> Result<Store> {
        Ok(Store::open(&config.database)?)
    }

    /// Whether to draw progress bars (stderr is a terminal and not `-q`).
    pub fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// A stored campaign, validated again against the current config defaults.
pub struct Loaded {
    pub row: CampaignRow,
    pub campaign: Campaign,
}

pub fn load_campaign(config: &Config, row: CampaignRow) -> Result<Loaded> {
    let parsed = json::parse(&row.config, Defaults { timezone: config.dialer.default_timezone })
        .with_context(|| format!("stored campaign `{}` no longer validates; re-import it with `campaign import --replace`", row.name))?;
    Ok(Loaded {
        row,
        campaign: parsed.campaign,
    })
}

/// The named campaign, or every campaign.
pub fn load_campaigns(config: &Config, store: &Store, name: Option<&str>) -> Result<Vec<Loaded>> {
    let rows = match name {
        Some(n) => vec![store.require_campaign(n)?],
        None => store.campaigns()?,
    };
    rows.into_iter().map(|r| load_campaign(config, r)).collect()
}

/// A command that a later version builds: says so and fails.
pub fn not_built(what: &str) -> Result<()> {
    anyhow::bail!("`dialer {what}` is not built yet in this version")
}
