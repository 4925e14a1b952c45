//! PostgreSQL forms of `dnc.rs`: the global do-not-call list.

use chrono::{DateTime, Utc};

use super::store::{PgStore, PgTx, get};
use crate::store::{Result, instant, secs};

impl PgTx<'_> {
    /// Adds numbers; returns how many were new.
    pub fn dnc_add(&self, numbers: &[String], source: &str, now: DateTime<Utc>) -> Result<usize> {
        let mut added = 0;
        for n in numbers {
            added += self.execute(
                "INSERT INTO dnc (phone, source, added_at) VALUES ($1, $2, $3) ON CONFLICT (phone) DO NOTHING",
                &[n, &source, &secs(now)],
            )? as usize;
        }
        Ok(added)
    }

    /// Removes a number; returns whether it was listed.
    pub fn dnc_remove(&self, number: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM dnc WHERE phone = $1", &[&number])? == 1)
    }
}

impl PgStore {
    pub fn dnc_list(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        self.rows(
            "SELECT phone, source, added_at FROM dnc ORDER BY phone",
            &[],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?, instant(get(r, 2)?))))
        .collect()
    }

    pub fn dnc_contains(&self, number: &str) -> Result<bool> {
        Ok(self
            .optional("SELECT 1 FROM dnc WHERE phone = $1", &[&number])?
            .is_some())
    }
}
