//! PostgreSQL forms of `campaigns.rs`.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::store::{PgStore, PgTx, get};
use crate::store::{CampaignRow, CampaignStats, Result, StoreError, secs};

const COLUMNS: &str = "id, name, config, paused";

fn row(r: &Row) -> Result<CampaignRow> {
    Ok(CampaignRow {
        id: get(r, 0)?,
        name: get(r, 1)?,
        config: get(r, 2)?,
        paused: get::<i64>(r, 3)? != 0,
    })
}

impl PgTx<'_> {
    /// Sets the paused flag; returns whether it changed.
    pub fn set_paused(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<bool> {
        let c = self.require_campaign(name)?;
        let n = self.execute(
            "UPDATE campaigns SET paused = $1, updated_at = $2 WHERE id = $3 AND paused <> $1",
            &[&i64::from(paused), &secs(now), &c.id],
        )?;
        Ok(n == 1)
    }

    /// Inserts a new campaign, or with `replace` updates the config of an existing one.
    pub fn upsert_campaign(
        &self,
        name: &str,
        config: &str,
        replace: bool,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool)> {
        match self.campaign(name)? {
            Some(c) if replace => {
                self.execute(
                    "UPDATE campaigns SET config = $1, updated_at = $2 WHERE id = $3",
                    &[&config, &secs(now), &c.id],
                )?;
                Ok((c.id, true))
            }
            Some(c) => Ok((c.id, true)),
            None => {
                let r = self.row(
                    "INSERT INTO campaigns (name, config, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
                    &[&name, &config, &secs(now)],
                )?;
                Ok((get(&r, 0)?, false))
            }
        }
    }
}

impl PgStore {
    pub fn campaign(&self, name: &str) -> Result<Option<CampaignRow>> {
        self.optional(
            &format!("SELECT {COLUMNS} FROM campaigns WHERE name = $1"),
            &[&name],
        )?
        .as_ref()
        .map(row)
        .transpose()
    }

    pub fn require_campaign(&self, name: &str) -> Result<CampaignRow> {
        self.campaign(name)?
            .ok_or_else(|| StoreError::NoCampaign(name.to_owned()))
    }

    pub fn campaigns(&self) -> Result<Vec<CampaignRow>> {
        self.rows(
            &format!("SELECT {COLUMNS} FROM campaigns ORDER BY name"),
            &[],
        )?
        .iter()
        .map(row)
        .collect()
    }

    pub fn campaign_stats(&self, campaign_id: i64) -> Result<CampaignStats> {
        let r = self.row(
            "SELECT count(*),
                    count(*) FILTER (WHERE state = 'open'), count(*) FILTER (WHERE state = 'completed'),
                    count(*) FILTER (WHERE state = 'exhausted'), count(*) FILTER (WHERE state = 'opted_out'),
                    count(*) FILTER (WHERE state = 'open' AND phone IN (SELECT phone FROM dnc)),
                    coalesce(sum(attempts), 0)::bigint,
                    (SELECT count(*) FROM attempts WHERE campaign_id = $1 AND ended_at IS NULL)
             FROM contacts WHERE campaign_id = $1",
            &[&campaign_id],
        )?;
        Ok(CampaignStats {
            contacts: get(&r, 0)?,
            open: get(&r, 1)?,
            completed: get(&r, 2)?,
            exhausted: get(&r, 3)?,
            opted_out: get(&r, 4)?,
            dnc: get(&r, 5)?,
            attempts: get(&r, 6)?,
            in_flight: get(&r, 7)?,
        })
    }

    pub fn campaign_by_id(&self, id: i64) -> Result<Option<CampaignRow>> {
        self.optional(
            &format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(row)
        .transpose()
    }
}
