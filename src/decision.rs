//! Where stored rows meet the pure decision: a stored campaign validated again ([`Loaded`]),
//! a [`ContactView`] built from a contact row, and [`schedule::decide`]. `dialer plan`, `run
//! batch` and the daemon all come through [`Loaded::decide`].

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::campaign::json::{self, Defaults};
use crate::campaign::model::Campaign;
use crate::schedule::{self, ContactView, Decision, Policy};
use crate::store::{CampaignRow, ContactRow, Store, StoreError};

/// A stored campaign, validated again against the current default time zone.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub row: CampaignRow,
    pub campaign: Campaign,
}

impl Loaded {
    pub fn load(row: CampaignRow, default_timezone: Tz) -> Result<Loaded, StoreError> {
        match json::parse(
            &row.config,
            Defaults {
                timezone: default_timezone,
            },
        ) {
            Ok(parsed) => Ok(Loaded {
                row,
                campaign: parsed.campaign,
            }),
            Err(e) => Err(StoreError::BadStoredCampaign {
                name: row.name,
                message: e.to_string(),
            }),
        }
    }

    pub fn id(&self) -> i64 {
        self.row.id
    }

    pub fn name(&self) -> &str {
        &self.row.name
    }

    /// Neither paused nor a draft.
    pub fn active(&self) -> bool {
        !self.row.paused && !self.campaign.is_draft()
    }

    /// The decision for one of its contacts at `at` (`daily_cap`: `dialer.max_calls_per_number_per_day`).
    pub fn decide(
        &self,
        store: &Store,
        daily_cap: Option<u32>,
        row: &ContactRow,
        at: DateTime<Utc>,
    ) -> Result<Decision, StoreError> {
        let zones = contact_zones(row, &self.campaign);
        evaluate(
            store,
            &self.campaign,
            self.row.paused,
            daily_cap,
            row,
            &zones,
            at,
        )
    }
}

/// The named campaign, or every campaign, loaded.
pub fn load_campaigns(
    store: &Store,
    default_timezone: Tz,
    name: Option<&str>,
) -> Result<Vec<Loaded>, StoreError> {
    let rows = match name {
        Some(n) => vec![store.require_campaign(n)?],
        None => store.campaigns()?,
    };
    rows.into_iter()
        .map(|r| Loaded::load(r, default_timezone))
        .collect()
}

/// One row of a plan (SPEC §5.4): exactly its keys, in order, as `dialer plan` prints them and
/// the dashboard's API serves them; `id` (the contact's row id) is not serialized.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanRow {
    #[serde(skip)]
    pub id: i64,
    pub campaign: String,
    pub contact: String,
    pub phone: String,
    /// Every zone used, `|`-separated.
    pub timezone: String,
    /// The decision instant in each zone, RFC 3339 with its offset, `|`-separated.
    pub local_time: String,
    pub due: bool,
    pub reason: &'static str,
    /// RFC 3339 UTC; `None` when never.
    pub next_eligible_at: Option<String>,
    pub attempts: u32,
}

impl PlanRow {
    /// The row of `decision`, decided for `row` at `at`.
    pub fn new(loaded: &Loaded, row: &ContactRow, decision: &Decision, at: DateTime<Utc>) -> Self {
        let zones = contact_zones(row, &loaded.campaign);
        PlanRow {
            id: row.id,
            campaign: loaded.name().to_owned(),
            contact: row.reference().to_owned(),
            phone: row.phone.clone(),
            timezone: zones.iter().map(|z| z.name()).collect::<Vec<_>>().join("|"),
            local_time: zones
                .iter()
                .map(|z| {
                    at.with_timezone(z)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                })
                .collect::<Vec<_>>()
                .join("|"),
            due: decision.is_due(),
            reason: decision.reason.as_str(),
            next_eligible_at: decision
                .next_eligible_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            attempts: row.attempts,
        }
    }
}

/// The zones a contact is called in: its own (from import), else the campaign's.
pub fn contact_zones(row: &ContactRow, campaign: &Campaign) -> Vec<Tz> {
    let own: Vec<Tz> = row
        .zones
        .as_deref()
        .unwrap_or("")
        .split('|')
        .filter_map(|z| z.parse::<Tz>().ok())
        .collect();
    if own.is_empty() {
        vec![campaign.rules.timezone]
    } else {
        own
    }
}

/// Decides for one stored contact at `at`.
fn evaluate(
    store: &Store,
    campaign: &Campaign,
    paused: bool,
    daily_cap: Option<u32>,
    row: &ContactRow,
    zones: &[Tz],
    at: DateTime<Utc>,
) -> crate::store::Result<Decision> {
    let recent = match daily_cap {
        Some(_) => store.recent_attempts(&row.phone, at - Duration::hours(24))?,
        None => Vec::new(),
    };
    let view = ContactView {
        state: row.state,
        zones,
        attempts: row.attempts,
        next_attempt_at: row.next_attempt_at,
        in_flight: row.in_flight,
        on_dnc: row.on_dnc,
        import_incomplete: row.import_incomplete,
        recent_attempts: &recent,
    };
    let policy = Policy {
        rules: &campaign.rules,
        paused,
        draft: campaign.is_draft(),
        daily_cap,
    };
    Ok(schedule::decide(&view, &policy, at))
}
