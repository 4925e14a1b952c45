//! `dialer report summary` / `dialer report export csv` (SPEC §8): parses the flags, picks the
//! campaigns and the output (stdout, or a file written atomically with a progress bar on a
//! terminal), and hands the work to [`crate::report`].

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Context, Table, load_campaigns};
use crate::campaign::model::Content;
use crate::cli::{ExportCommand, ReportCommand, SummaryFormat};
use crate::report::{self, Cells, ExportCampaign, ReportError, Summary};
use crate::store::{AttemptFilter, Store};

pub fn run(ctx: &Context, cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Summary { campaign, format } => summary(ctx, campaign.as_deref(), format),
        ReportCommand::Export(ExportCommand::Csv {
            campaign,
            since,
            until,
            contacts,
            messages,
            inbound,
            transcripts,
            out,
            raw,
        }) => {
            let cells = if raw { Cells::Raw } else { Cells::Neutralised };
            let range = report::parse_range(since.as_deref(), until.as_deref())?;
            let (since, until) = (range.since, range.until);
            let config = ctx.config()?;
            let store = ctx.reader(&config)?;
            let out = out.as_deref();
            // the rows of one campaign (or all) in [since, until): every export but --contacts
            let filter = || -> Result<AttemptFilter> {
                let campaign_id = match campaign.as_deref() {
                    Some(name) => Some(store.require_campaign(name)?.id),
                    None => None,
                };
                Ok(AttemptFilter {
                    campaign_id,
                    since,
                    until,
                })
            };
            if messages || inbound {
                let filter = filter()?;
                emit(out, |w| {
                    if messages {
                        report::write_messages(&store, &filter, cells, w)
                    } else {
                        report::write_inbound_calls(&store, &filter, cells, w)
                    }
                })?;
                return Ok(());
            }
            if transcripts {
                let filter = filter()?;
                let bar = bar(ctx, out, None, "turns");
                emit(out, |w| {
                    report::write_transcripts(&store, &filter, cells, w, |n| {
                        bar.as_ref().inspect(|b| b.inc(n));
                    })
                })?;
                bar.inspect(ProgressBar::finish_and_clear);
            } else if contacts {
                let campaigns = load_campaigns(&config, &store, campaign.as_deref())?
                    .iter()
                    .map(|l| ExportCampaign {
                        id: l.row.id,
                        name: l.row.name.clone(),
                        timezone: l.campaign.rules.timezone.name().to_owned(),
                        gather_steps: match &l.campaign.content {
                            Content::Script(s) => {
                                s.gather_steps().into_iter().map(str::to_owned).collect()
                            }
                            Content::Draft | Content::Message(_) => Vec::new(),
                        },
                    })
                    .collect::<Vec<_>>();
                let bar = bar(ctx, out, None, "contacts");
                emit(out, |w| {
                    report::write_contacts(&store, &campaigns, since, until, cells, w, |n| {
                        bar.as_ref().inspect(|b| b.inc(n));
                    })
                })?;
                bar.inspect(ProgressBar::finish_and_clear);
            } else {
                let filter = filter()?;
                let bar = bar(ctx, out, Some((&store, &filter)), "attempts");
                emit(out, |w| {
                    report::write_attempts_as(&store, &filter, cells, w, |n| {
                        bar.as_ref().inspect(|b| b.inc(n));
                    })
                })?;
                bar.inspect(ProgressBar::finish_and_clear);
            }
            Ok(())
        }
    }
}

/// Runs an export into `--out` (atomically) or stdout.
fn emit(
    out: Option<&Path>,
    export: impl FnOnce(&mut dyn Write) -> Result<u64, ReportError>,
) -> Result<u64, ReportError> {
    match out {
        Some(path) => report::write_atomically(path, |f| export(f)).map_err(|e| match e {
            // name the file the export was going to
            ReportError::Io(cause) => ReportError::Output {
                path: path.to_owned(),
                cause,
            },
            ReportError::Csv(c) if c.is_io_error() => match c.into_kind() {
                csv::ErrorKind::Io(cause) => ReportError::Output {
                    path: path.to_owned(),
                    cause,
                },
                _ => unreachable_io(),
            },
            other => other,
        }),
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match export(&mut lock) {
                // the reader went away (`| head`): not an error of the export
                Err(e) if is_broken_pipe(&e) => Ok(0),
                other => other,
            }
        }
    }
}

/// `is_io_error` said it was an I/O error.
fn unreachable_io() -> ReportError {
    ReportError::Io(std::io::Error::other("csv I/O error"))
}

fn is_broken_pipe(e: &ReportError) -> bool {
    let io = match e {
        ReportError::Io(io) => Some(io),
        ReportError::Csv(c) => match c.kind() {
            csv::ErrorKind::Io(io) => Some(io),
            _ => None,
        },
        _ => None,
    };
    io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// A progress bar, only when writing to a file and stderr is a terminal. With `count` the bar
/// knows its length; otherwise it counts rows.
fn bar(
    ctx: &Context,
    out: Option<&Path>,
    count: Option<(&Store, &AttemptFilter)>,
    what: &str,
) -> Option<ProgressBar> {
    if out.is_none() || !ctx.progress() {
        return None;
    }
    let len = count.and_then(|(s, f)| s.count_attempt_records(f).ok());
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            format!("{{spinner}} exporting {{pos}}/{{len}} {what} [{{bar:30}}] {{eta}}"),
        ),
        None => (
            ProgressBar::new_spinner(),
            format!("{{spinner}} exporting {{pos}} {what}"),
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

fn summary(ctx: &Context, campaign: Option<&str>, format: SummaryFormat) -> Result<()> {
    let config = ctx.config()?;
    let store = ctx.reader(&config)?;
    let rows = match campaign {
        Some(name) => vec![store.require_campaign(name)?],
        None => store.campaigns()?,
    };
    let summaries = rows
        .iter()
        .map(|r| report::summarize(&store, r.id, &r.name))
        .collect::<Result<Vec<_>, _>>()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        SummaryFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &summaries)?;
            out.write_all(b"\n")?;
        }
        SummaryFormat::Table if summaries.is_empty() => {
            writeln!(out, "no campaigns yet (see `dialer campaign import`)")?;
        }
        SummaryFormat::Table => out.write_all(summary_table(&summaries).render().as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// One row per campaign; the answer rate as a percent, talk time to a tenth of a second.
fn summary_table(summaries: &[Summary]) -> Table {
    let mut t = Table::new([
        "campaign",
        "contacts",
        "completed",
        "exhausted",
        "opted_out",
        "dnc",
        "open",
        "attempts",
        "in_flight",
        "reached",
        "answer_rate",
        "avg_talk_s",
        "billed_min",
        "bot_completed",
        "bot_fallback",
        "outcomes",
    ]);
    for s in summaries {
        let outcomes = s
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        t.row([
            s.campaign.clone(),
            s.contacts.to_string(),
            s.completed.to_string(),
            s.exhausted.to_string(),
            s.opted_out.to_string(),
            s.dnc.to_string(),
            s.open.to_string(),
            s.attempts.to_string(),
            s.in_flight.to_string(),
            s.reached.to_string(),
            format!("{:.1}%", s.answer_rate * 100.0),
            format!("{:.1}", s.average_talk_seconds),
            s.billed_minutes.to_string(),
            bot_rate(s, |b| (b.completed, b.completion_rate)),
            bot_rate(s, |b| (b.fallback, b.fallback_rate)),
            if outcomes.is_empty() {
                "-".to_owned()
            } else {
                outcomes
            },
        ]);
    }
    t
}

/// `66.7% (2/3)` of the campaign's bot conversations, or `-` when it had none.
fn bot_rate(s: &Summary, pick: impl Fn(&report::BotSummary) -> (i64, f64)) -> String {
    match &s.bot {
        Some(b) => {
            let (n, rate) = pick(b);
            format!("{:.1}% ({n}/{})", rate * 100.0, b.sessions)
        }
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_table_shows_percent_and_outcomes() {
        let s = Summary::from_counts(
            "spring",
            crate::store::SummaryCounts {
                contacts: 3,
                attempts: 4,
                ended: 3,
                reached: 1,
                reached_talk_seconds: 61,
                reached_timed: 1,
                billed_minutes: 2,
                outcomes: [("yes".to_owned(), 1), ("no".to_owned(), 2)].into(),
                ..Default::default()
            },
        );
        let text = summary_table(&[s]).render();
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("spring"), "{text}");
        assert!(line.contains("33.3%"), "{text}");
        assert!(line.contains("61.0"), "{text}");
        assert!(line.ends_with("no=2, yes=1"), "{text}");
    }
}
