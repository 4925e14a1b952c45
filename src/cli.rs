//! The command line (SPEC §1), as clap derive types. Doc comments are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bounds;

/// An outbound campaign dialer: imports contacts and campaigns, calls people only when law and
/// campaign allow it (their local calling hours, excluded days, retry delays, the do-not-call
/// list), through Twilio or the built-in simulator, and records every attempt in SQLite.
#[derive(Debug, Parser)]
#[command(
    name = "dialer",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "DIALER_CONFIG",
        default_value = "dialer.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less output: only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented dialer.toml, a sample campaign and sample contacts into DIR.
    Init {
        /// Folder to write into (created if missing); existing files are never overwritten.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Import, list, inspect, pause and resume campaigns.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Import contacts into a campaign.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// The global do-not-call list: numbers on it are never dialed, in any campaign.
    #[command(subcommand)]
    Dnc(DncCommand),
    /// Explain, for every contact, whether it is due at an instant and, if not, why and when next.
    /// Changes nothing.
    Plan(PlanArgs),
    /// Place calls: as a long-running daemon, or as one batch for cron.
    #[command(subcommand)]
    Run(RunCommand),
    /// Counts and rates, or every attempt as CSV.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Run the built-in Twilio-compatible simulator on its own.
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
        listen: String,
        /// Also serve a scripted bot on Rasa's REST channel (`POST /webhooks/rest/webhook`),
        /// replying from this JSON file, to rehearse a campaign's `bot` step without Rasa.
        #[arg(long, value_name = "FILE")]
        bot: Option<PathBuf>,
        /// Address the scripted bot listens on (Rasa's default port).
        #[arg(
            long,
            default_value = "127.0.0.1:5005",
            value_name = "ADDR",
            requires = "bot"
        )]
        bot_listen: String,
    },
    /// Serve the operators' web dashboard on `[dashboard] listen`, beside a running daemon
    /// (`run daemon` serves it itself).
    Dashboard {
        #[command(subcommand)]
        action: Option<DashboardCommand>,
    },
    /// Database tools: copy an SQLite database to PostgreSQL (preview).
    #[command(subcommand)]
    Db(DbCommand),
    /// Print a shell completion script (e.g. `dialer completions bash > ~/.local/share/bash-completion/completions/dialer`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout (e.g. `dialer man | man -l -`).
    Man,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy an SQLite database into a new PostgreSQL database (migrated first; it must hold no
    /// dialer data), in one transaction, then compare every table's row count and SHA-256 on
    /// both sides. The password comes from DIALER_DATABASE_PASSWORD, never from the url.
    Copy {
        /// The PostgreSQL database, like postgres://dialer@db.example.com:5432/dialer (a Unix
        /// socket: postgres://dialer@%2Fvar%2Frun%2Fpostgresql/dialer).
        #[arg(long, value_name = "URL")]
        to: String,
        /// The SQLite file to copy (default: the config's `[database] path`).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Read a password from stdin and print its argon2 hash, for `[dashboard] users`.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Validate and store a campaign (keyed by its `name`).
    Import {
        /// The campaign JSON file.
        file: PathBuf,
        /// Also import these contacts into it.
        #[arg(long, value_name = "FILE.csv")]
        contacts: Option<PathBuf>,
        /// Update an existing campaign's configuration; its contacts and history are kept.
        #[arg(long)]
        replace: bool,
    },
    /// Every campaign with its status and progress counts.
    List,
    /// One campaign's configuration and progress.
    Show { name: String },
    /// Stop placing new calls for a campaign (calls in progress finish).
    Pause { name: String },
    /// Let a paused campaign dial again.
    Resume { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Import a contacts CSV (header row; a `phone` column; optional `name`, `timezone`, `id`;
    /// other columns become template fields). Re-importing never resets call history.
    Import {
        /// The campaign to import into.
        #[arg(long)]
        campaign: String,
        /// The CSV file.
        file: PathBuf,
        /// Abort on the first bad row; nothing is written.
        #[arg(long)]
        strict: bool,
        /// Check and count, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write every rejected row to this CSV (`line,reason,raw`); the terminal shows the
        /// first 20 notes and a count.
        #[arg(long, value_name = "FILE.csv")]
        rejects: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DncCommand {
    /// Add numbers to the do-not-call list.
    Add {
        #[arg(required = true, value_name = "NUMBER")]
        numbers: Vec<String>,
    },
    /// Add every number of a CSV file (a `phone` column, or the first column).
    Import { file: PathBuf },
    /// Print the list.
    List,
    /// Remove a number from the list.
    Remove {
        #[arg(value_name = "NUMBER")]
        number: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Only this campaign.
    #[arg(long)]
    pub campaign: Option<String>,
    /// The instant to decide for (RFC 3339, e.g. 2026-11-23T15:00:00Z); default now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Scheduler and callback server until SIGINT/SIGTERM.
    Daemon,
    /// For cron: place the calls due now, wait for them to end, print a summary, exit.
    Batch {
        /// Only this campaign.
        #[arg(long)]
        campaign: Option<String>,
        /// Place at most N calls (at most 10000000).
        #[arg(long, value_name = "N", value_parser = parse_limit)]
        limit: Option<u32>,
        /// How long to wait for calls to end (at most 7 days; calls still open then are
        /// reconciled by the next run).
        #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_wait)]
        wait: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per campaign: contacts, attempts, answer rate, outcomes, talk time, billed minutes.
    Summary {
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
        format: SummaryFormat,
    },
    /// Export as CSV.
    #[command(subcommand)]
    Export(ExportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// One row per attempt (or per contact with --contacts).
    Csv {
        #[arg(long)]
        campaign: Option<String>,
        /// Attempts started at or after this instant (RFC 3339).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Attempts started before this instant (RFC 3339).
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// One row per contact, with one `answer.STEP` column per gather step.
        #[arg(long)]
        contacts: bool,
        /// One row per message: follow-ups sent, messages received (opt-out keywords marked).
        #[arg(long, conflicts_with_all = ["contacts", "inbound", "transcripts"])]
        messages: bool,
        /// One row per inbound call: contacts calling back, unknown callers, unowned numbers.
        #[arg(long, conflicts_with_all = ["contacts", "messages", "transcripts"])]
        inbound: bool,
        /// One row per bot turn (SPEC §13): caller text, confidence, bot text, latency, error,
        /// in conversation order.
        #[arg(long, conflicts_with_all = ["contacts", "messages", "inbound"])]
        transcripts: bool,
        /// Write to FILE (created with mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write every cell as stored. By default a cell a spreadsheet would run as a formula
        /// (one starting with `=`, `+`, `-`, `@`, tab or CR, other than a number such as
        /// `+14155550100`) is prefixed with `'`.
        #[arg(long)]
        raw: bool,
    },
}

/// An RFC 3339 instant (a malformed one is a usage error, exit 2).
fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&chrono::Utc))
        .map_err(|_| format!("`{s}` is not an RFC 3339 instant like 2026-11-23T15:00:00Z"))
}

/// `run batch --wait`: a humantime duration of at most [`bounds::MAX_WAIT`].
fn parse_wait(s: &str) -> Result<Duration, String> {
    bounds::parse_duration(s, bounds::MAX_WAIT).map_err(|e| e.to_string())
}

/// `run batch --limit`: a count of at most [`bounds::MAX_BATCH_LIMIT`].
fn parse_limit(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= bounds::MAX_BATCH_LIMIT)
        .ok_or_else(|| {
            format!(
                "`{s}` is not a number of calls from 0 to {}",
                bounds::MAX_BATCH_LIMIT
            )
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::{CommandFactory, Parser};

    use super::{Cli, Command, RunCommand};

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    fn batch(args: &[&str]) -> Result<(Option<u32>, Duration), String> {
        let cli = Cli::try_parse_from(["dialer", "run", "batch"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(RunCommand::Batch { limit, wait, .. }) => Ok((limit, wait)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn wait_defaults_to_ten_minutes_and_accepts_the_bound() {
        assert_eq!(batch(&[]), Ok((None, Duration::from_secs(600))));
        assert_eq!(
            batch(&["--wait", "7d", "--limit", "10000000"]),
            Ok((Some(10_000_000), Duration::from_secs(7 * 86_400)))
        );
    }

    #[test]
    fn wait_that_overflows_an_instant_is_a_usage_error() {
        let e = batch(&["--wait", "292277024626y"]).unwrap_err();
        assert!(
            e.contains("`292277024626y` is longer than the maximum of 7days"),
            "{e}"
        );
        let e = batch(&["--wait", "7days 1s"]).unwrap_err();
        assert!(e.contains("maximum of 7days"), "{e}");
        let e = batch(&["--wait", "10x"]).unwrap_err();
        assert!(e.contains("`10x` is not a duration"), "{e}");
    }

    #[test]
    fn limit_above_the_bound_is_a_usage_error() {
        let e = batch(&["--limit", "10000001"]).unwrap_err();
        assert!(e.contains("from 0 to 10000000"), "{e}");
        let e = batch(&["--limit=-1"]).unwrap_err();
        assert!(e.contains("--limit"), "{e}");
    }
}
