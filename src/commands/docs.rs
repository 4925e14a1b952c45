//! `dialer completions bash|zsh|fish|…` (clap_complete) and `dialer man` (clap_mangen): both are
//! generated from the same clap definition as `--help`, so they never drift from the CLI.

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "dialer", &mut std::io::stdout());
    Ok(())
}

/// The man page of `dialer` with a section per subcommand.
pub fn man() -> Result<()> {
    render_man(&mut std::io::stdout()).context("cannot write the man page")
}

pub fn render_man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("dialer {}", sub.get_name());
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        let sub_man = clap_mangen::Man::new(sub.clone().bin_name(name));
        sub_man.render_synopsis_section(out)?;
        sub_man.render_description_section(out)?;
        sub_man.render_options_section(out)?;
    }
    man.render_version_section(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn man_page_names_every_subcommand() {
        let mut out = Vec::new();
        super::render_man(&mut out).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with(".ie") || text.contains(".TH dialer"),
            "{}",
            &text[..200.min(text.len())]
        );
        for sub in [
            "campaign",
            "contacts",
            "dnc",
            "plan",
            "run",
            "report",
            "simulator",
            "dashboard",
            "completions",
        ] {
            assert!(
                text.contains(&format!("DIALER {}", sub.to_uppercase())),
                "{sub}"
            );
        }
    }
}
