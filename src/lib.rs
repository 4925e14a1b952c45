//! `dialer`: an outbound campaign dialer. The binary in `main.rs` parses the command line and
//! calls [`run`]; everything else lives in the modules below.

pub mod bounds;
pub mod campaign;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod decision;
pub mod dialing;
pub mod engine;
pub mod logging;
pub mod metrics;
pub mod report;
pub mod schedule;
pub mod server;
pub mod shared;
pub mod simulator;
pub mod store;
pub mod twilio;

use cli::{Cli, Command};

/// Runs one command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = commands::Context::new(&cli);
    match cli.command {
        Command::Init { dir } => commands::init::run(&dir),
        Command::Campaign(cmd) => commands::campaign::run(&ctx, cmd),
        Command::Contacts(cmd) => commands::contacts::run(&ctx, cmd),
        Command::Dnc(cmd) => commands::dnc::run(&ctx, cmd),
        Command::Plan(args) => commands::plan::run(&ctx, args),
        Command::Run(cmd) => commands::run::run(&ctx, cmd),
        Command::Report(cmd) => commands::report::run(&ctx, cmd),
        Command::Simulator {
            listen,
            bot,
            bot_listen,
        } => commands::simulator::run(
            &ctx,
            &listen,
            bot.as_deref().map(|b| (b, bot_listen.as_str())),
        ),
        Command::Dashboard { action } => commands::dashboard::run(&ctx, action),
        Command::Db(cmd) => commands::db::run(&ctx, cmd),
        Command::Completions { shell } => commands::docs::completions(shell),
        Command::Man => commands::docs::man(),
    }
}
