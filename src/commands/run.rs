//! `dialer run daemon` / `dialer run batch`.

use anyhow::Result;

use super::{Context, not_built};
use crate::cli::RunCommand;

pub fn run(_ctx: &Context, cmd: RunCommand) -> Result<()> {
    match cmd {
        RunCommand::Daemon => not_built("run daemon"),
        RunCommand::Batch { .. } => not_built("run batch"),
    }
}
