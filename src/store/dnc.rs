//! The `dnc` table: the global do-not-call list, numbers in E.164.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Cached, Result, SqliteStore, SqliteTx, instant, secs};

impl SqliteTx<'_> {
    /// Adds numbers; returns how many were new.
    pub fn dnc_add(&self, numbers: &[String], source: &str, now: DateTime<Utc>) -> Result<usize> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO dnc (phone, source, added_at) VALUES (?1, ?2, ?3) ON CONFLICT (phone) DO NOTHING",
        )?;
        let mut added = 0;
        for n in numbers {
            added += stmt.execute(params![n, source, secs(now)])?;
        }
        Ok(added)
    }

    /// Removes a number; returns whether it was listed.
    pub fn dnc_remove(&self, number: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute_cached("DELETE FROM dnc WHERE phone = ?1", [number])?
            == 1)
    }
}

impl SqliteStore {
    pub fn dnc_list(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT phone, source, added_at FROM dnc ORDER BY phone")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, instant(r.get(2)?))))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn dnc_contains(&self, number: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM dnc WHERE phone = ?1")?
            .exists([number])?)
    }
}
