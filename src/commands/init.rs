//! `dialer init [DIR]`: writes the commented defaults, the sample campaigns and their contacts.

use std::path::Path;

use anyhow::{Context as _, Result};

const FILES: [(&str, &str); 5] = [
    ("dialer.toml", crate::config::DEFAULT_TOML),
    (
        "campaigns/appointment-reminder.json",
        include_str!("../../campaigns/appointment-reminder.json"),
    ),
    (
        "examples/contacts.csv",
        include_str!("../../examples/contacts.csv"),
    ),
    (
        "campaigns/satisfaction-survey.json",
        include_str!("../../campaigns/satisfaction-survey.json"),
    ),
    (
        "examples/survey-contacts.csv",
        include_str!("../../examples/survey-contacts.csv"),
    ),
];

pub fn run(dir: &Path) -> Result<()> {
    let existing: Vec<String> = FILES
        .iter()
        .map(|(f, _)| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        anyhow::bail!(
            "{} already exists; `dialer init` never overwrites: move it away or pick another folder",
            existing.join(", ")
        );
    }
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create folder `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "next: `dialer plan` explains who would be called now; `dialer run batch` dials through the simulator"
    );
    Ok(())
}
