//! `dialer campaign import/list/show/pause/resume`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::{Context, Table, load_campaigns};
use crate::campaign::json::{self, Defaults, fmt_hhmm};
use crate::campaign::model::{Campaign, Content};
use crate::cli::CampaignCommand;
use crate::config::Config;
use crate::decision::Loaded;
use crate::store::Store;

pub fn run(ctx: &Context, cmd: CampaignCommand) -> Result<()> {
    let config = ctx.config()?;
    match cmd {
        CampaignCommand::Import {
            file,
            contacts,
            replace,
        } => import(ctx, &config, &file, contacts.as_deref(), replace, false).map(drop),
        CampaignCommand::List => list(ctx, &config),
        CampaignCommand::Show { name } => show(ctx, &config, &name),
        CampaignCommand::Pause { name } => set_paused(ctx, &config, &name, true),
        CampaignCommand::Resume { name } => set_paused(ctx, &config, &name, false),
    }
}

/// Reads and validates a campaign file; errors name the file.
pub fn read_campaign(config: &Config, file: &Path) -> Result<(String, json::Parsed)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read campaign file `{}`", file.display()))?;
    let parsed = json::parse(
        &text,
        Defaults {
            timezone: config.dialer.default_timezone,
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok((text, parsed))
}

/// Imports (or updates) the `[[campaign]]` entries of dialer.toml (`run batch`, `run daemon`).
pub fn import_declared(ctx: &Context, config: &Config) -> Result<()> {
    for entry in &config.campaigns {
        import(
            ctx,
            config,
            &entry.file,
            entry.contacts.as_deref(),
            true,
            true,
        )?;
    }
    Ok(())
}

/// `campaign import`, also used for the `[[campaign]]` entries of dialer.toml (`idempotent`:
/// an existing campaign is updated instead of refused). Returns the campaign id.
pub fn import(
    ctx: &Context,
    config: &Config,
    file: &Path,
    contacts: Option<&Path>,
    replace: bool,
    idempotent: bool,
) -> Result<i64> {
    let (text, parsed) = read_campaign(config, file)?;
    if let Some(c) = contacts {
        super::contacts::check_header(config, c)?;
    }
    let db = ctx.db(config)?;
    let name = parsed.campaign.name.clone();
    let existing = db.read_blocking(|store| store.campaign(&name))?;
    if existing.is_some() && !replace && !idempotent {
        anyhow::bail!(
            "{}: campaign `{name}` already exists: use `--replace` to update its configuration (contacts and history are kept)",
            file.display()
        );
    }
    let unchanged = existing.as_ref().is_some_and(|row| row.config == text);
    let now = ctx.clock.now();
    let (n, t) = (name.clone(), text.clone());
    let (id, existed) = db.write_blocking(move |tx| tx.upsert_campaign(&n, &t, true, now))?;
    if !(idempotent && unchanged) {
        for w in &parsed.warnings {
            eprintln!("warning: {}: {w}", file.display());
        }
        let verb = if existed { "updated" } else { "imported" };
        let draft = if parsed.campaign.is_draft() {
            " (draft: nothing will be dialed)"
        } else {
            ""
        };
        println!("{verb} campaign `{name}`{draft}");
    }
    if let Some(c) = contacts {
        super::contacts::import(ctx, config, &db, id, c, &Default::default())?;
    }
    db.read_blocking(|store| warn_missing_fields(store, id, &parsed.campaign, file))?;
    Ok(id)
}

/// SPEC §3.1: a template field that no imported contact has is reported.
fn warn_missing_fields(store: &Store, id: i64, campaign: &Campaign, file: &Path) -> Result<()> {
    let used = template_fields(campaign);
    if used.is_empty() || store.campaign_stats(id)?.contacts == 0 {
        return Ok(());
    }
    let mut have = store.contact_field_names(id)?;
    have.insert("phone".into());
    for f in used.difference(&have) {
        eprintln!(
            "warning: {}: template field `{{{{{f}}}}}` is in no imported contact: it will be spoken as nothing",
            file.display()
        );
    }
    Ok(())
}

fn template_fields(campaign: &Campaign) -> BTreeSet<String> {
    let mut texts: Vec<&str> = Vec::new();
    match &campaign.content {
        Content::Draft => {}
        Content::Message(m) => texts.push(m),
        Content::Script(s) => {
            for step in s.steps.values() {
                texts.extend(step.say.as_deref());
                texts.extend(step.gather.as_ref().and_then(|g| g.prompt.as_deref()));
            }
            texts.extend(s.voicemail.as_ref().and_then(|v| v.say.as_deref()));
        }
    }
    texts
        .into_iter()
        .flat_map(crate::campaign::template::fields_used)
        .collect()
}

fn status(paused: bool, campaign: &Campaign) -> &'static str {
    if campaign.is_draft() {
        "draft"
    } else if paused {
        "paused"
    } else {
        "active"
    }
}

fn list(ctx: &Context, config: &Config) -> Result<()> {
    let store = ctx.reader(config)?;
    let mut t = Table::new([
        "campaign",
        "status",
        "contacts",
        "open",
        "completed",
        "exhausted",
        "opted_out",
        "dnc",
        "attempts",
        "in_flight",
    ]);
    for l in load_campaigns(config, &store, None)? {
        let s = store.campaign_stats(l.row.id)?;
        t.row([
            l.row.name.clone(),
            status(l.row.paused, &l.campaign).to_owned(),
            s.contacts.to_string(),
            s.open.to_string(),
            s.completed.to_string(),
            s.exhausted.to_string(),
            s.opted_out.to_string(),
            s.dnc.to_string(),
            s.attempts.to_string(),
            s.in_flight.to_string(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn show(ctx: &Context, config: &Config, name: &str) -> Result<()> {
    let store = ctx.reader(config)?;
    let l = Loaded::load(
        store.require_campaign(name)?,
        config.dialer.default_timezone,
    )?;
    let c = &l.campaign;
    let r = &c.rules;
    let s = store.campaign_stats(l.row.id)?;
    let days: Vec<&str> = r
        .excluded_days
        .iter()
        .map(|d| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][*d as usize])
        .collect();
    let delays: Vec<String> = r
        .retry_delays
        .by_reason
        .iter()
        .map(|(k, v)| format!("{}={}", k.as_str(), humantime::format_duration(*v)))
        .chain(
            r.retry_delays
                .default
                .map(|d| format!("default={}", humantime::format_duration(d))),
        )
        .collect();
    let content = match &c.content {
        Content::Draft => "draft (no message or script)".to_owned(),
        Content::Message(_) => "message".to_owned(),
        Content::Script(s) => format!("script ({} steps, starts at `{}`)", s.steps.len(), s.start),
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("campaign:          {}", c.name);
    println!("status:            {}", status(l.row.paused, c));
    println!("content:           {content}");
    println!("timezone:          {}", r.timezone);
    println!(
        "calling hours:     {}-{}",
        fmt_hhmm(r.hours.start),
        fmt_hhmm(r.hours.end)
    );
    println!(
        "excluded days:     {}",
        if days.is_empty() {
            "-".into()
        } else {
            days.join(", ")
        }
    );
    println!(
        "excluded dates:    {}",
        if r.excluded_dates.is_empty() {
            "-".into()
        } else {
            r.excluded_dates
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "start / end:       {} / {}",
        opt(r.start_at.map(|t| t.to_rfc3339())),
        opt(r.end_at.map(|t| t.to_rfc3339()))
    );
    println!("max retries:       {}", r.max_retries);
    println!(
        "retry delays:      {}",
        if delays.is_empty() {
            "- (no retries)".into()
        } else {
            delays.join(", ")
        }
    );
    println!("ring timeout:      {} s", c.ring_timeout);
    println!("max call duration: {} s", c.max_call_duration);
    println!(
        "caller id:         {}",
        c.from
            .clone()
            .unwrap_or_else(|| format!("{} (from dialer.toml)", config.twilio.from))
    );
    println!(
        "schedule:          {}",
        opt(c.schedule.as_ref().map(|s| s.source.clone()))
    );
    println!(
        "calls per minute:  {}",
        opt(c.calls_per_minute.map(|v| v.to_string()))
    );
    println!(
        "max concurrent:    {}",
        opt(c.max_concurrent_calls.map(|v| v.to_string()))
    );
    println!(
        "contacts:          {} ({} open, {} completed, {} exhausted, {} opted out, {} on DNC)",
        s.contacts, s.open, s.completed, s.exhausted, s.opted_out, s.dnc
    );
    println!(
        "attempts:          {} ({} in flight)",
        s.attempts, s.in_flight
    );
    Ok(())
}

fn set_paused(ctx: &Context, config: &Config, name: &str, paused: bool) -> Result<()> {
    let now = ctx.clock.now();
    let n = name.to_owned();
    let changed = ctx
        .db(config)?
        .write_blocking(move |tx| tx.set_paused(&n, paused, now))?;
    let word = if paused { "paused" } else { "resumed" };
    if changed {
        println!("campaign `{name}` {word}");
    } else {
        println!(
            "campaign `{name}` was already {}",
            if paused { "paused" } else { "active" }
        );
    }
    Ok(())
}
