//! `dialer simulator`: the Twilio-compatible simulator on its own.

use anyhow::Result;

use super::{Context, not_built};

pub fn run(_ctx: &Context, _listen: &str) -> Result<()> {
    not_built("simulator")
}
