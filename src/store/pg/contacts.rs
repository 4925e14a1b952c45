//! PostgreSQL forms of `contacts.rs`: the idempotent import (new numbers in one `INSERT …
//! SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING phone` per slice, the others row
//! by row), settling, and the reads `plan` and the scheduler do.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::Row;

use super::store::{Params, PgStore, PgTx, get, get_u32};
use crate::schedule::ContactState;
use crate::store::contacts::{Stored, visit_merged};
use crate::store::{
    ChunkOutcome, ContactRow, ImportCounts, ImportRun, NewContact, Result, StoreError, instant,
    secs,
};

/// Rows an import inserts per statement (arrays: one prepared statement for any count).
const INSERT_ROWS: usize = 256;

/// Rows [`PgTx::settle_import`] clears per statement.
const SETTLE_STEP: i64 = 256;

/// SQL: whether contact `c` was created by an import run that has not finished.
macro_rules! incomplete {
    () => {
        "(c.pending_import IS NOT NULL AND coalesce(
            (SELECT i.finished_at IS NULL FROM imports i WHERE i.id = c.pending_import), true))"
    };
}

pub(super) fn stored(store: &PgStore, campaign_id: i64, phone: &str) -> Result<Option<Stored>> {
    let Some(r) = store.optional(
        concat!(
            "SELECT c.id, c.import_id, c.ext_id, c.name, c.zones, c.fields, ",
            incomplete!(),
            " FROM contacts c WHERE c.campaign_id = $1 AND c.phone = $2"
        ),
        &[&campaign_id, &phone],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(Stored {
        id: get(&r, 0)?,
        import_id: get(&r, 1)?,
        ext_id: get(&r, 2)?,
        name: get(&r, 3)?,
        zones: get(&r, 4)?,
        fields: get(&r, 5)?,
        incomplete: get(&r, 6)?,
    }))
}

impl PgTx<'_> {
    /// Starts an import run into a campaign.
    pub fn begin_import(
        &self,
        campaign_id: i64,
        file: &str,
        now: DateTime<Utc>,
    ) -> Result<ImportRun> {
        let r = self.row(
            "INSERT INTO imports (campaign_id, file, started_at) VALUES ($1, $2, $3) RETURNING id",
            &[&campaign_id, &file, &secs(now)],
        )?;
        Ok(ImportRun {
            campaign_id,
            import_id: get(&r, 0)?,
            now,
        })
    }

    /// Inserts or updates the rows of a chunk until `budget` has passed (see the SQLite form).
    pub fn import_chunk(
        &self,
        run: &ImportRun,
        rows: &[NewContact],
        budget: Duration,
    ) -> Result<ChunkOutcome> {
        let started = Instant::now();
        let mut out = ChunkOutcome::default();
        let now = secs(run.now);
        while out.done < rows.len() {
            if out.done > 0 && started.elapsed() >= budget {
                break;
            }
            let from = out.done;
            let batch = &rows[from..(from + INSERT_ROWS).min(rows.len())];
            let mut inserted = self.insert_new(run, batch, now)?;
            for (i, c) in batch.iter().enumerate() {
                if inserted.remove(c.phone.as_str()) {
                    out.counts.imported += 1;
                } else {
                    self.import_stored(run, c, from + i, now, &mut out)?;
                }
            }
            out.done = from + batch.len();
        }
        Ok(out)
    }

    /// Inserts the rows whose number the campaign does not have yet, in one statement; returns
    /// the numbers inserted (a number twice in `rows` is inserted once).
    fn insert_new<'r>(
        &self,
        run: &ImportRun,
        rows: &'r [NewContact],
        now: i64,
    ) -> Result<HashSet<&'r str>> {
        let phones: Vec<&str> = rows.iter().map(|c| c.phone.as_str()).collect();
        let ext_ids: Vec<Option<&str>> = rows.iter().map(|c| c.ext_id.as_deref()).collect();
        let names: Vec<Option<&str>> = rows.iter().map(|c| c.name.as_deref()).collect();
        let zones: Vec<Option<&str>> = rows.iter().map(|c| c.zones.as_deref()).collect();
        let fields: Vec<&str> = rows.iter().map(|c| c.fields.as_str()).collect();
        let returned = self.rows(
            "INSERT INTO contacts (campaign_id, phone, ext_id, name, zones, fields, import_id, pending_import, created_at, updated_at)
             SELECT $1::bigint, r.phone, r.ext_id, r.name, r.zones, r.fields, $2::bigint, $2::bigint, $3::bigint, $3::bigint
             FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                  WITH ORDINALITY AS r (phone, ext_id, name, zones, fields, n)
             ORDER BY r.n
             ON CONFLICT (campaign_id, phone) DO NOTHING RETURNING phone",
            &[&run.campaign_id, &run.import_id, &now, &phones, &ext_ids, &names, &zones, &fields],
        )?;
        let numbers: HashSet<&'r str> = phones.iter().copied().collect();
        let mut inserted = HashSet::with_capacity(rows.len());
        for r in &returned {
            let phone: &str = get(r, 0)?;
            if let Some(number) = numbers.get(phone) {
                inserted.insert(*number);
            }
        }
        Ok(inserted)
    }

    /// One row whose number the campaign already has (see the SQLite form).
    fn import_stored(
        &self,
        run: &ImportRun,
        c: &NewContact,
        i: usize,
        now: i64,
        out: &mut ChunkOutcome,
    ) -> Result<()> {
        match stored(self, run.campaign_id, &c.phone)? {
            None => {
                return Err(StoreError::Postgres(format!(
                    "contact {} vanished during its import",
                    c.phone
                )));
            }
            Some(s) if s.import_id == Some(run.import_id) => {
                out.counts.duplicates += 1;
                out.duplicates.push(i);
            }
            Some(s) if s.incomplete => {
                self.execute(
                    "UPDATE contacts SET ext_id = $1, name = $2, zones = $3, fields = $4, import_id = $5,
                         pending_import = $5, updated_at = $6
                     WHERE id = $7",
                    &[&c.ext_id, &c.name, &c.zones, &c.fields, &run.import_id, &now, &s.id],
                )?;
                out.counts.imported += 1;
            }
            Some(s) if s.same_as(c) => {
                self.execute(
                    "UPDATE contacts SET import_id = $1 WHERE id = $2",
                    &[&run.import_id, &s.id],
                )?;
                out.counts.unchanged += 1;
            }
            Some(s) => {
                self.execute(
                    "UPDATE contacts SET ext_id = $1, name = $2, zones = $3, fields = $4, import_id = $5, updated_at = $6
                     WHERE id = $7",
                    &[&c.ext_id, &c.name, &c.zones, &c.fields, &run.import_id, &now, &s.id],
                )?;
                out.counts.updated += 1;
            }
        }
        Ok(())
    }

    /// A whole (small) import in one job: begin, one chunk, finish, settle.
    pub fn import_contacts(
        &self,
        campaign_id: i64,
        file: &str,
        rows: &[NewContact],
        now: DateTime<Utc>,
    ) -> Result<ImportCounts> {
        let run = self.begin_import(campaign_id, file, now)?;
        let out = self.import_chunk(&run, rows, Duration::MAX)?;
        self.finish_import(&run, now)?;
        self.settle_import(run.import_id, Duration::MAX, now)?;
        Ok(out.counts)
    }

    /// Marks an import run complete: every row it created is dialable from this commit on.
    pub fn finish_import(&self, run: &ImportRun, now: DateTime<Utc>) -> Result<()> {
        self.execute(
            "UPDATE imports SET finished_at = $2 WHERE id = $1",
            &[&run.import_id, &secs(now)],
        )?;
        Ok(())
    }

    /// Clears the pending mark of a finished run's rows in steps (see the SQLite form).
    pub fn settle_import(
        &self,
        import_id: i64,
        budget: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let started = Instant::now();
        let finished = self.optional(
            "SELECT finished_at FROM imports WHERE id = $1",
            &[&import_id],
        )?;
        if let Some(r) = finished
            && get::<Option<i64>>(&r, 0)?.is_none()
        {
            return Ok(true);
        }
        loop {
            let cleared = self.execute(
                "UPDATE contacts SET pending_import = NULL WHERE id IN
                     (SELECT id FROM contacts WHERE pending_import = $1 LIMIT $2)",
                &[&import_id, &SETTLE_STEP],
            )?;
            if cleared < SETTLE_STEP as u64 {
                self.execute(
                    "UPDATE imports SET settled_at = $2 WHERE id = $1 AND settled_at IS NULL",
                    &[&import_id, &secs(now)],
                )?;
                return Ok(true);
            }
            if started.elapsed() >= budget {
                return Ok(false);
            }
        }
    }
}

const CONTACT_SELECT: &str = concat!(
    "SELECT c.id, c.campaign_id, c.phone, c.ext_id, c.name, c.zones, c.fields, c.state,
        c.attempts, c.next_attempt_at, c.last_reason, c.outcome,
        EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.ended_at IS NULL),
        EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone), ",
    incomplete!(),
    " FROM contacts c"
);

/// The due query ($1 campaign, $2 instant, $3 limit): a range of `contacts_due`.
const DUE: &str = "SELECT c.id, c.next_attempt_at FROM contacts c
     WHERE c.campaign_id = $1 AND c.state = 'open' AND c.pending_import IS NULL
     AND c.next_attempt_at <= $2 AND (c.next_attempt_at, c.id) > ($4, $5)
     AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.ended_at IS NULL)
     ORDER BY c.next_attempt_at, c.id LIMIT $3";

/// The due query for the rows of a finished, not yet settled run ($4).
const DUE_SETTLING: &str = "SELECT c.id, c.next_attempt_at FROM contacts c
     WHERE c.pending_import = $4 AND c.campaign_id = $1 AND c.state = 'open'
     AND c.next_attempt_at <= $2
     AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.ended_at IS NULL)
     ORDER BY c.next_attempt_at, c.id LIMIT $3";

/// Due ids read per round trip while visiting.
const DUE_PAGE: u32 = 256;

fn contact_row(r: &Row) -> Result<ContactRow> {
    let state: String = get(r, 7)?;
    let next: i64 = get(r, 9)?;
    Ok(ContactRow {
        id: get(r, 0)?,
        campaign_id: get(r, 1)?,
        phone: get(r, 2)?,
        ext_id: get(r, 3)?,
        name: get(r, 4)?,
        zones: get(r, 5)?,
        fields: get(r, 6)?,
        state: ContactState::parse(&state).unwrap_or(ContactState::Open),
        attempts: get_u32(r, 8)?,
        next_attempt_at: (next > 0).then(|| instant(next)),
        last_reason: get(r, 10)?,
        outcome: get(r, 11)?,
        in_flight: get(r, 12)?,
        on_dnc: get(r, 13)?,
        import_incomplete: get(r, 14)?,
    })
}

impl PgStore {
    /// PostgreSQL has no database-wide write lock for an import to yield to (writers lock rows),
    /// so there is no "another connection committed" counter to watch either: constant.
    pub fn data_version(&self) -> Result<i64> {
        Ok(0)
    }

    /// Calls `f` for every contact of a campaign, in id order, without loading them all.
    pub fn for_each_contact<E: From<StoreError>>(
        &self,
        campaign_id: i64,
        mut f: impl FnMut(ContactRow) -> Result<(), E>,
    ) -> Result<(), E> {
        self.each_row(
            &format!("{CONTACT_SELECT} WHERE c.campaign_id = $1 ORDER BY c.id"),
            &[&campaign_id],
            |r| f(contact_row(r)?),
        )
    }

    /// Visits the ids of the campaign's contacts due at `now`, earliest first, at most `scan`,
    /// until `visit` breaks; read a page at a time (the client cannot run a query while another
    /// one's rows are open), none with an open attempt.
    pub fn visit_due(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
        scan: u32,
        mut visit: impl FnMut(i64) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let unsettled = self.unsettled_imports(campaign_id)?;
        if !unsettled.is_empty() {
            // rare (an import killed between finishing and settling): merge the ranges
            let limit = i64::from(scan);
            let mut due: Vec<(i64, i64)> = Vec::new();
            let mut read = |sql: &str, params: Params<'_>| -> Result<()> {
                for r in self.rows(sql, params)? {
                    due.push((get(&r, 1)?, get(&r, 0)?));
                }
                Ok(())
            };
            read(
                DUE,
                &[&campaign_id, &secs(now), &limit, &i64::MIN, &i64::MIN],
            )?;
            for import_id in unsettled {
                read(
                    DUE_SETTLING,
                    &[&campaign_id, &secs(now), &limit, &import_id],
                )?;
            }
            return visit_merged(due, scan, visit);
        }
        let (mut after, mut left) = ((i64::MIN, i64::MIN), scan);
        while left > 0 {
            let page = i64::from(left.min(DUE_PAGE));
            let rows = self.rows(DUE, &[&campaign_id, &secs(now), &page, &after.0, &after.1])?;
            let n = rows.len();
            for r in &rows {
                let id: i64 = get(r, 0)?;
                after = (get(r, 1)?, id);
                if visit(id)?.is_break() {
                    return Ok(());
                }
            }
            if (n as i64) < page {
                break;
            }
            left -= n as u32;
        }
        Ok(())
    }

    /// Finished import runs of every campaign whose rows are not all settled yet, oldest first.
    pub fn unsettled_import_ids(&self) -> Result<Vec<i64>> {
        self.rows(
            "SELECT id FROM imports WHERE settled_at IS NULL AND finished_at IS NOT NULL ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    /// The campaign's finished import runs whose rows are not all settled yet.
    pub fn unsettled_imports(&self, campaign_id: i64) -> Result<Vec<i64>> {
        self.rows(
            "SELECT id FROM imports
             WHERE campaign_id = $1 AND settled_at IS NULL AND finished_at IS NOT NULL ORDER BY id",
            &[&campaign_id],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    pub fn contact(&self, id: i64) -> Result<Option<ContactRow>> {
        self.optional(&format!("{CONTACT_SELECT} WHERE c.id = $1"), &[&id])?
            .as_ref()
            .map(contact_row)
            .transpose()
    }

    /// Start instants of attempts to a number (any campaign) after `since`.
    pub fn recent_attempts(&self, phone: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        self.rows(
            "SELECT started_at FROM attempts WHERE phone = $1 AND started_at > $2 AND direction = 'outbound'
             ORDER BY started_at",
            &[&phone, &secs(since)],
        )?
        .iter()
        .map(|r| get(r, 0).map(instant))
        .collect()
    }

    /// Template field names that at least one contact of the campaign has.
    pub fn contact_field_names(
        &self,
        campaign_id: i64,
    ) -> Result<std::collections::BTreeSet<String>> {
        let mut names = std::collections::BTreeSet::new();
        for r in self.rows(
            "SELECT DISTINCT k FROM contacts c, jsonb_object_keys(c.fields::jsonb) AS k
             WHERE c.campaign_id = $1",
            &[&campaign_id],
        )? {
            names.insert(get(&r, 0)?);
        }
        let r = self.row(
            "SELECT coalesce(bool_or(name IS NOT NULL AND name <> ''), false),
                    coalesce(bool_or(ext_id IS NOT NULL), false)
             FROM contacts WHERE campaign_id = $1",
            &[&campaign_id],
        )?;
        if get(&r, 0)? {
            names.insert("name".into());
        }
        if get(&r, 1)? {
            names.insert("id".into());
        }
        Ok(names)
    }

    /// The earliest future retry of a campaign's open contacts (the daemon's wake-up).
    pub fn earliest_retry(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut at: Option<i64> = get(
            &self.row(
                "SELECT min(next_attempt_at) FROM contacts
                 WHERE campaign_id = $1 AND state = 'open' AND pending_import IS NULL AND next_attempt_at > $2",
                &[&campaign_id, &secs(now)],
            )?,
            0,
        )?;
        for import_id in self.unsettled_imports(campaign_id)? {
            let more: Option<i64> = get(
                &self.row(
                    "SELECT min(next_attempt_at) FROM contacts
                     WHERE pending_import = $1 AND state = 'open' AND next_attempt_at > $2",
                    &[&import_id, &secs(now)],
                )?,
                0,
            )?;
            at = at.into_iter().chain(more).min();
        }
        Ok(at.map(instant))
    }

    /// The distinct stored zone lists of a campaign's open contacts.
    pub fn open_zone_lists(&self, campaign_id: i64) -> Result<Vec<Option<String>>> {
        self.rows(
            "SELECT DISTINCT zones FROM contacts WHERE campaign_id = $1 AND state = 'open'",
            &[&campaign_id],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    /// Dialable open contacts of a campaign whose next attempt time has come (`/metrics`).
    pub fn ready_contacts(&self, campaign_id: i64, now: DateTime<Utc>) -> Result<i64> {
        let mut count: i64 = get(
            &self.row(
                "SELECT count(*) FROM contacts
                 WHERE campaign_id = $1 AND state = 'open' AND pending_import IS NULL AND next_attempt_at <= $2",
                &[&campaign_id, &secs(now)],
            )?,
            0,
        )?;
        for import_id in self.unsettled_imports(campaign_id)? {
            count += get::<i64>(
                &self.row(
                    "SELECT count(*) FROM contacts
                     WHERE pending_import = $1 AND state = 'open' AND next_attempt_at <= $2",
                    &[&import_id, &secs(now)],
                )?,
                0,
            )?;
        }
        Ok(count)
    }
}
