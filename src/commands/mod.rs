//! One file per subcommand. Here: what they share (loading config, opening the store, loading
//! stored campaigns, printing tables).

mod batch;
pub mod campaign;
pub mod contacts;
pub mod dashboard;
pub mod db;
pub mod dnc;
pub mod docs;
mod import_notes;
pub mod init;
pub mod plan;
pub mod report;
pub mod run;
mod signals;
pub mod simulator;
mod table;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::Cli;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Database, Env};
use crate::decision::{self, Loaded};
use crate::store::{Db, Store};

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

    /// The database for a command that changes it: the writer (which creates and migrates
    /// the file) and readers.
    pub fn db(&self, config: &Config) -> Result<Db> {
        let now = self.clock.now().timestamp();
        Ok(Db::open_database(&config.database, now)?)
    }

    /// A read connection, for commands that only read (the database is created and migrated
    /// first when missing, so a new user's `plan` or `report` finds empty tables).
    pub fn reader(&self, config: &Config) -> Result<Store> {
        let path = match &config.database {
            Database::Sqlite(path) => path,
            // migrated (when new) by the writer it starts first
            Database::Postgres(_) => return Ok(self.db(config)?.open_reader()?),
        };
        if !path.exists() {
            drop(Db::open(path)?);
        }
        Ok(Store::open_reader(path)?)
    }

    /// Whether to draw progress bars (stderr is a terminal and not `-q`).
    pub fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// The named campaign, or every campaign, validated again against the config's defaults.
pub fn load_campaigns(config: &Config, store: &Store, name: Option<&str>) -> Result<Vec<Loaded>> {
    Ok(decision::load_campaigns(
        store,
        config.dialer.default_timezone,
        name,
    )?)
}

/// A command that a later version builds: says so and fails.
pub fn not_built(what: &str) -> Result<()> {
    anyhow::bail!("`dialer {what}` is not built yet in this version")
}
