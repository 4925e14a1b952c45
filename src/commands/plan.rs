//! `dialer plan`: for every contact, whether it is due at an instant, and if not why and when
//! next (SPEC §5.4). Read-only; JSON and CSV rows are streamed, not collected.

use std::io::Write;

use anyhow::Result;
use chrono::SecondsFormat;

use super::{Context, Table, load_campaigns};
use crate::cli::{PlanArgs, PlanFormat};
use crate::decision::PlanRow;
use crate::engine::pending_follow_ups;

const HEADER: [&str; 9] = [
    "campaign",
    "contact",
    "phone",
    "timezone",
    "local_time",
    "due",
    "reason",
    "next_eligible_at",
    "attempts",
];

/// Where rows go.
enum Sink<W: Write> {
    Table(Table, W),
    Csv(Box<csv::Writer<W>>),
    Json { out: W, first: bool },
}

impl<W: Write> Sink<W> {
    fn new(format: PlanFormat, mut out: W) -> Result<Self> {
        Ok(match format {
            PlanFormat::Table => Sink::Table(Table::new(HEADER), out),
            PlanFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                w.write_record(HEADER)?;
                Sink::Csv(Box::new(w))
            }
            PlanFormat::Json => {
                out.write_all(b"[")?;
                Sink::Json { out, first: true }
            }
        })
    }

    fn push(&mut self, p: &PlanRow) -> Result<()> {
        match self {
            Sink::Table(t, _) => t.row([
                p.campaign.clone(),
                p.contact.clone(),
                p.phone.clone(),
                p.timezone.clone(),
                p.local_time.clone(),
                p.due.to_string(),
                p.reason.to_owned(),
                p.next_eligible_at.clone().unwrap_or_else(|| "-".into()),
                p.attempts.to_string(),
            ]),
            Sink::Csv(w) => w.serialize(p)?,
            Sink::Json { out, first } => {
                if !std::mem::take(first) {
                    out.write_all(b",")?;
                }
                out.write_all(b"\n")?;
                serde_json::to_writer(&mut *out, p)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Table(t, mut out) => {
                out.write_all(t.render().as_bytes())?;
                out.flush()?;
            }
            Sink::Csv(mut w) => w.flush()?,
            Sink::Json { mut out, .. } => {
                out.write_all(b"\n]\n")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

pub fn run(ctx: &Context, args: PlanArgs) -> Result<()> {
    let at = args.at.unwrap_or_else(|| ctx.clock.now());
    let config = ctx.config()?;
    let store = ctx.reader(&config)?;
    let campaigns = load_campaigns(&config, &store, args.campaign.as_deref())?;
    let stdout = std::io::stdout();
    let mut sink = Sink::new(args.format, std::io::BufWriter::new(stdout.lock()))?;
    let cap = config.dialer.max_calls_per_number_per_day;
    for l in &campaigns {
        store.for_each_contact(l.row.id, |row| {
            let d = l.decide(&store, cap, &row, at)?;
            sink.push(&PlanRow::new(l, &row, &d, at))
        })?;
    }
    let table = matches!(sink, Sink::Table(..));
    sink.finish()?;
    follow_ups(&store, &campaigns, at, table)
}

/// Pending follow-up messages (SPEC §12) and when each may be sent: a table after the plan's,
/// or, for JSON and CSV (whose rows keep exactly the SPEC §5.4 keys), lines on stderr.
fn follow_ups(
    store: &crate::store::Store,
    campaigns: &[crate::decision::Loaded],
    at: chrono::DateTime<chrono::Utc>,
    table: bool,
) -> Result<()> {
    let mut rows = Vec::new();
    for l in campaigns {
        for p in pending_follow_ups(store, l, at, usize::MAX >> 1)? {
            let rule = &l.campaign.messaging.follow_ups[p.rule];
            let when = match p.sends_at {
                Some(t) if t <= at => "now".to_owned(),
                Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
                None => "never (no calling window)".to_owned(),
            };
            rows.push([
                l.row.name.clone(),
                p.candidate
                    .ext_id
                    .clone()
                    .unwrap_or_else(|| p.candidate.phone.clone()),
                p.candidate.phone.clone(),
                rule.name.clone(),
                rule.channel.as_str().to_owned(),
                when,
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    if table {
        let mut t = Table::new([
            "campaign",
            "contact",
            "phone",
            "follow_up",
            "channel",
            "sends_at",
        ]);
        for r in rows {
            t.row(r);
        }
        println!("\npending follow-up messages:\n{}", t.render());
    } else {
        for [campaign, contact, _, rule, channel, when] in rows {
            eprintln!(
                "follow-up `{rule}` ({channel}) pending for {contact} of `{campaign}`: sends at {when}"
            );
        }
    }
    Ok(())
}
