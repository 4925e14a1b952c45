//! The `campaigns` table: the imported JSON (validated again on load) and the paused flag.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Cached, Result, SqliteStore, SqliteTx, StoreError, secs};

#[derive(Debug, Clone)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub config: String,
    pub paused: bool,
}

/// Progress counts of one campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CampaignStats {
    pub contacts: i64,
    pub open: i64,
    pub completed: i64,
    pub exhausted: i64,
    pub opted_out: i64,
    pub dnc: i64,
    pub attempts: i64,
    pub in_flight: i64,
}

const COLUMNS: &str = "id, name, config, paused";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignRow> {
    Ok(CampaignRow {
        id: r.get(0)?,
        name: r.get(1)?,
        config: r.get(2)?,
        paused: r.get(3)?,
    })
}

impl SqliteTx<'_> {
    /// Sets the paused flag; returns whether it changed.
    pub fn set_paused(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<bool> {
        let c = self.require_campaign(name)?;
        let n = self.conn.execute_cached(
            "UPDATE campaigns SET paused = ?1, updated_at = ?2 WHERE id = ?3 AND paused <> ?1",
            params![paused, secs(now), c.id],
        )?;
        Ok(n == 1)
    }

    /// Inserts a new campaign, or with `replace` updates the config of an existing one (its
    /// contacts, history and paused flag are kept). Returns the id and whether it existed.
    pub fn upsert_campaign(
        &self,
        name: &str,
        config: &str,
        replace: bool,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool)> {
        let existing = self.campaign(name)?;
        match existing {
            Some(c) if replace => {
                self.conn.execute_cached(
                    "UPDATE campaigns SET config = ?1, updated_at = ?2 WHERE id = ?3",
                    params![config, secs(now), c.id],
                )?;
                Ok((c.id, true))
            }
            Some(c) => Ok((c.id, true)),
            None => {
                self.conn.execute_cached(
                    "INSERT INTO campaigns (name, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                    params![name, config, secs(now)],
                )?;
                Ok((self.conn.last_insert_rowid(), false))
            }
        }
    }
}

impl SqliteStore {
    pub fn campaign(&self, name: &str) -> Result<Option<CampaignRow>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM campaigns WHERE name = ?1"))?
            .query_row([name], row)
            .optional()?)
    }

    pub fn require_campaign(&self, name: &str) -> Result<CampaignRow> {
        self.campaign(name)?
            .ok_or_else(|| StoreError::NoCampaign(name.to_owned()))
    }

    pub fn campaigns(&self) -> Result<Vec<CampaignRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM campaigns ORDER BY name"))?;
        let rows = stmt
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn campaign_stats(&self, campaign_id: i64) -> Result<CampaignStats> {
        let mut s = self.conn.prepare_cached(
            "SELECT count(*),
                    coalesce(sum(state = 'open'), 0), coalesce(sum(state = 'completed'), 0),
                    coalesce(sum(state = 'exhausted'), 0), coalesce(sum(state = 'opted_out'), 0),
                    coalesce(sum(state = 'open' AND phone IN (SELECT phone FROM dnc)), 0),
                    coalesce(sum(attempts), 0)
             FROM contacts WHERE campaign_id = ?1",
        )?;
        let mut stats = s.query_row([campaign_id], |r| {
            Ok(CampaignStats {
                contacts: r.get(0)?,
                open: r.get(1)?,
                completed: r.get(2)?,
                exhausted: r.get(3)?,
                opted_out: r.get(4)?,
                dnc: r.get(5)?,
                attempts: r.get(6)?,
                in_flight: 0,
            })
        })?;
        stats.in_flight = self.conn.query_row_cached(
            "SELECT count(*) FROM attempts WHERE campaign_id = ?1 AND ended_at IS NULL",
            [campaign_id],
            |r| r.get(0),
        )?;
        Ok(stats)
    }
}

impl SqliteStore {
    pub fn campaign_by_id(&self, id: i64) -> Result<Option<CampaignRow>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?)
    }
}
