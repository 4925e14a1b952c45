//! `dialer report summary` / `dialer report export csv`.

use anyhow::Result;

use super::{Context, not_built};
use crate::cli::ReportCommand;

pub fn run(_ctx: &Context, cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Summary { .. } => not_built("report summary"),
        ReportCommand::Export(_) => not_built("report export csv"),
    }
}
