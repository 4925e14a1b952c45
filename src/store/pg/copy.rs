//! `dialer db copy`: an SQLite database into a new PostgreSQL one, verifiably. The target is
//! migrated, must hold no product rows, and receives every table in one transaction (binary
//! `COPY`, rows in primary-key order), identities set past the copied ids; then both sides are
//! read again — PostgreSQL after the commit — and each table's row count and SHA-256 over a
//! canonical rendering of its rows are compared.
//!
//! The source is read inside one SQLite read transaction, so a copy (and its checksums) is one
//! consistent snapshot even while another process writes.

use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

// the source is always a SQLite file: its own connection type, `.conn` included
use super::super::{Result, SqliteStore as Store, StoreError};
use super::migrate;

/// Every table the migrations create, parents before children (foreign keys hold at every
/// insert). `changes` (the change counter, one row the migration inserts) comes last: it is
/// replaced by the source's row after the inserts above have moved it through the triggers.
const TABLES: &[&str] = &[
    "campaigns",
    "imports",
    "contacts",
    "attempts",
    "call_events",
    "answers",
    "dnc",
    "inbound_calls",
    "messages",
    "message_events",
    "bot_sessions",
    "bot_turns",
    "changes",
];

/// The table the migration fills itself (see [`TABLES`]).
const COUNTER_TABLE: &str = "changes";

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 50_000;

/// The product tables `db copy` copies, in the order it copies them.
pub fn product_tables() -> &'static [&'static str] {
    TABLES
}

/// A table's rows as counted and hashed on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub rows: u64,
    /// SHA-256 (hex) over the rows in primary-key order, see [`RowHasher`].
    pub sha256: String,
}

/// One table's verification: the source's and the target's sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub table: &'static str,
    pub source: TableSum,
    pub target: TableSum,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// Progress of a copy, for the command to show: `(table, rows copied, rows in the table)`.
pub type CopyProgress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// A column's type, the same on both sides (SQLite's declared type, PostgreSQL's column type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Real,
    Text,
}

impl Kind {
    fn of_sqlite(declared: &str) -> Option<Kind> {
        match declared {
            "INTEGER" => Some(Kind::Integer),
            "REAL" => Some(Kind::Real),
            "TEXT" => Some(Kind::Text),
            _ => None,
        }
    }

    fn pg_type(self) -> Type {
        match self {
            Kind::Integer => Type::INT8,
            Kind::Real => Type::FLOAT8,
            Kind::Text => Type::TEXT,
        }
    }
}

/// A table's shape, read from the SQLite schema.
struct Shape {
    table: &'static str,
    columns: Vec<(String, Kind)>,
    /// Primary-key columns in key order.
    key: Vec<String>,
}

impl Shape {
    fn read(source: &Store, table: &'static str) -> Result<Shape> {
        let mut stmt = source
            .conn
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Err(StoreError::Postgres(format!(
                "the source database has no table `{table}`: is it a dialer database?"
            )));
        }
        let mut columns = Vec::with_capacity(rows.len());
        let mut key: Vec<(i64, String)> = Vec::new();
        for (name, declared, pk) in rows {
            let kind = Kind::of_sqlite(&declared).ok_or_else(|| {
                StoreError::Postgres(format!(
                    "column `{table}.{name}` has type `{declared}`, which `db copy` does not know"
                ))
            })?;
            if pk > 0 {
                key.push((pk, name.clone()));
            }
            columns.push((name, kind));
        }
        key.sort();
        Ok(Shape {
            table,
            columns,
            key: key.into_iter().map(|(_, name)| name).collect(),
        })
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `ORDER BY` the key; text keys in byte order on PostgreSQL too (SQLite's BINARY).
    fn order_by(&self, collate_c: bool) -> String {
        self.key
            .iter()
            .map(|k| {
                let text = self
                    .columns
                    .iter()
                    .any(|(name, kind)| name == k && *kind == Kind::Text);
                if collate_c && text {
                    format!("{k} COLLATE \"C\"")
                } else {
                    k.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn has_identity(&self) -> bool {
        self.key.len() == 1 && self.key[0] == "id" && self.table != COUNTER_TABLE
    }
}

/// One value as both sides read it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// SHA-256 over rows rendered canonically: each cell is `N` (NULL), `I<decimal>`,
/// `R<16 hex digits of the f64's bits>` or `T<byte length>:<bytes>` followed by `;`, each row
/// ends with `\n`. NULL and the empty text differ, and no two row lists render alike.
struct RowHasher {
    hash: Sha256,
    rows: u64,
}

impl RowHasher {
    fn new() -> Self {
        Self {
            hash: Sha256::new(),
            rows: 0,
        }
    }

    fn row(&mut self, cells: &[Cell]) {
        for cell in cells {
            match cell {
                Cell::Null => self.hash.update(b"N"),
                Cell::Integer(i) => self.hash.update(format!("I{i}").as_bytes()),
                Cell::Real(r) => self
                    .hash
                    .update(format!("R{:016x}", r.to_bits()).as_bytes()),
                Cell::Text(t) => {
                    self.hash.update(format!("T{}:", t.len()).as_bytes());
                    self.hash.update(t.as_bytes());
                }
            }
            self.hash.update(b";");
        }
        self.hash.update(b"\n");
        self.rows += 1;
    }

    fn finish(self) -> TableSum {
        let digest = self.hash.finalize();
        TableSum {
            rows: self.rows,
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Reads one SQLite row into cells, refusing a value whose type is not its column's (SQLite
/// would store one; PostgreSQL could not).
fn sqlite_cells(shape: &Shape, row: &rusqlite::Row<'_>) -> Result<Vec<Cell>> {
    let mut cells = Vec::with_capacity(shape.columns.len());
    for (i, (name, kind)) in shape.columns.iter().enumerate() {
        let cell = match (row.get_ref(i)?, kind) {
            (ValueRef::Null, _) => Cell::Null,
            (ValueRef::Integer(v), Kind::Integer) => Cell::Integer(v),
            (ValueRef::Integer(v), Kind::Real) => Cell::Real(v as f64),
            (ValueRef::Real(v), Kind::Real) => Cell::Real(v),
            (ValueRef::Text(v), Kind::Text) => Cell::Text(
                std::str::from_utf8(v)
                    .map_err(|_| {
                        StoreError::Postgres(format!(
                            "`{}.{name}` holds text that is not UTF-8 in a row: nothing was copied",
                            shape.table
                        ))
                    })?
                    .to_owned(),
            ),
            (other, _) => {
                return Err(StoreError::Postgres(format!(
                    "`{}.{name}` holds a {:?} value where its column is {kind:?}: nothing was copied",
                    shape.table,
                    other.data_type()
                )));
            }
        };
        cells.push(cell);
    }
    Ok(cells)
}

fn pg_cells(shape: &Shape, row: &postgres::Row) -> Result<Vec<Cell>> {
    let mut cells = Vec::with_capacity(shape.columns.len());
    for (i, (_, kind)) in shape.columns.iter().enumerate() {
        let cell = match kind {
            Kind::Integer => row.try_get::<_, Option<i64>>(i)?.map(Cell::Integer),
            Kind::Real => row.try_get::<_, Option<f64>>(i)?.map(Cell::Real),
            Kind::Text => row.try_get::<_, Option<String>>(i)?.map(Cell::Text),
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(cells)
}

fn count_sqlite(source: &Store, table: &str) -> Result<u64> {
    let n: i64 = source
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Copies `source` into the PostgreSQL database `target` (migrated first, with `now` as the
/// migrations' `applied_at`), then verifies every table. A target holding any product row is
/// refused before anything is written; a failure leaves the target as it was (one transaction).
pub fn copy_from_sqlite(
    source: &Store,
    target: &mut Client,
    now: i64,
    progress: CopyProgress<'_>,
) -> Result<Vec<TableCheck>> {
    migrate::migrate(target, now)?;
    // one snapshot of the source for the copy and its checksums
    source.conn.execute_batch("BEGIN DEFERRED")?;
    let result = copy_snapshot(source, target, progress);
    let _ = source.conn.execute_batch("COMMIT");
    result
}

fn copy_snapshot(
    source: &Store,
    target: &mut Client,
    progress: CopyProgress<'_>,
) -> Result<Vec<TableCheck>> {
    let shapes = TABLES
        .iter()
        .map(|t| Shape::read(source, t))
        .collect::<Result<Vec<_>>>()?;

    let mut tx = target.transaction()?;
    for shape in shapes.iter().filter(|s| s.table != COUNTER_TABLE) {
        let held: bool = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {})", shape.table),
                &[],
            )?
            .get(0);
        if held {
            return Err(StoreError::Postgres(format!(
                "the target database already holds rows in `{}`: `db copy` only copies into a database with no dialer data (create a new one with `createdb NAME`)",
                shape.table
            )));
        }
    }
    for shape in &shapes {
        if shape.table == COUNTER_TABLE {
            tx.execute(&format!("DELETE FROM {COUNTER_TABLE}"), &[])?;
        }
        let total = count_sqlite(source, shape.table)?;
        let types: Vec<Type> = shape.columns.iter().map(|(_, k)| k.pg_type()).collect();
        let sink = tx.copy_in(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            shape.table,
            shape.column_list()
        ))?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        let mut stmt = source.conn.prepare(&format!(
            "SELECT {} FROM {} ORDER BY {}",
            shape.column_list(),
            shape.table,
            shape.order_by(false)
        ))?;
        let mut rows = stmt.query([])?;
        let mut done = 0u64;
        while let Some(row) = rows.next()? {
            let cells = sqlite_cells(shape, row)?;
            let values: Vec<Box<dyn ToSql + Sync>> = cells
                .into_iter()
                .zip(&shape.columns)
                .map(|(cell, (_, kind))| -> Box<dyn ToSql + Sync> {
                    match (cell, kind) {
                        (Cell::Integer(v), _) => Box::new(v),
                        (Cell::Real(v), _) => Box::new(v),
                        (Cell::Text(v), _) => Box::new(v),
                        (Cell::Null, Kind::Integer) => Box::new(None::<i64>),
                        (Cell::Null, Kind::Real) => Box::new(None::<f64>),
                        (Cell::Null, Kind::Text) => Box::new(None::<String>),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v).collect();
            writer.write(&refs)?;
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(shape.table, done, total);
            }
        }
        writer.finish()?;
        progress(shape.table, done, total);
        if shape.has_identity() {
            // the next id PostgreSQL hands out follows the copied ones
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'), coalesce(max(id), 0) + 1, false) FROM {0}",
                    shape.table
                ),
                &[],
            )?;
        }
    }
    tx.commit()?;

    let mut checks = Vec::with_capacity(shapes.len());
    for shape in &shapes {
        checks.push(TableCheck {
            table: shape.table,
            source: sum_sqlite(source, shape)?,
            target: sum_pg(target, shape)?,
        });
    }
    Ok(checks)
}

fn sum_sqlite(source: &Store, shape: &Shape) -> Result<TableSum> {
    let mut stmt = source.conn.prepare(&format!(
        "SELECT {} FROM {} ORDER BY {}",
        shape.column_list(),
        shape.table,
        shape.order_by(false)
    ))?;
    let mut rows = stmt.query([])?;
    let mut hasher = RowHasher::new();
    while let Some(row) = rows.next()? {
        hasher.row(&sqlite_cells(shape, row)?);
    }
    Ok(hasher.finish())
}

fn sum_pg(target: &mut Client, shape: &Shape) -> Result<TableSum> {
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        shape.column_list(),
        shape.table,
        shape.order_by(true)
    );
    let mut rows = target.query_raw(&sql, std::iter::empty::<i64>())?;
    let mut hasher = RowHasher::new();
    while let Some(row) = rows.next()? {
        hasher.row(&pg_cells(shape, &row)?);
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::super::cluster::PgCluster;
    use super::super::connect;
    use super::*;

    /// A new migration's table is copied too: the list is every table SQLite's schema has.
    #[test]
    fn every_table_of_the_schema_is_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("all.db")).expect("open");
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                 ORDER BY name",
            )
            .expect("prepare");
        let schema: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let mut ours: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        ours.sort();
        assert_eq!(ours, schema);
    }

    #[test]
    fn null_and_empty_text_hash_apart() {
        let sum = |cells: &[Cell]| {
            let mut h = RowHasher::new();
            h.row(cells);
            h.finish().sha256
        };
        assert_ne!(sum(&[Cell::Null]), sum(&[Cell::Text(String::new())]));
        assert_ne!(
            sum(&[Cell::Text("a;".into()), Cell::Text("b".into())]),
            sum(&[Cell::Text("a".into()), Cell::Text(";b".into())])
        );
        assert_ne!(sum(&[Cell::Integer(1)]), sum(&[Cell::Real(1.0)]));
    }

    fn seeded_source(dir: &std::path::Path) -> Store {
        let store = Store::open(&dir.join("source.db")).expect("open");
        store
            .conn()
            .execute_batch(
                "INSERT INTO campaigns (id, name, config, paused, created_at, updated_at)
                     VALUES (7, 'spring', '{\"name\":\"spring\"}', 0, 1, 2);
                 INSERT INTO contacts (id, campaign_id, phone, name, fields, created_at, updated_at)
                     VALUES (40, 7, '+15005550100', 'Ann', '{}', 1, 1),
                            (41, 7, '+15005550101', '', '{\"x\":\"ü\"}', 1, 1);
                 INSERT INTO attempts (id, contact_id, campaign_id, attempt_no, phone, status,
                                       started_at, ended_at, reason)
                     VALUES (90, 40, 7, 1, '+15005550100', 'completed', 10, 20, 'completed');
                 INSERT INTO answers (attempt_id, step, digits, confidence, received_at)
                     VALUES (90, 'q1', '1', 0.25, 15);
                 INSERT INTO dnc (phone, source, added_at) VALUES ('+15005550199', 'cli', 3),
                                                                  ('+15005550102', 'cli', 4);",
            )
            .expect("seed");
        store
    }

    #[test]
    fn a_copy_keeps_ids_and_values_and_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = seeded_source(dir.path());
        let url = PgCluster::shared().database("copy_unit");
        let mut client = connect(&url).expect("connect");
        let mut reports = Vec::new();
        let checks = copy_from_sqlite(&source, &mut client, 5, &mut |t, done, total| {
            reports.push((t.to_owned(), done, total));
        })
        .expect("copy");
        assert!(checks.iter().all(TableCheck::matches), "{checks:#?}");
        let rows = |t: &str| checks.iter().find(|c| c.table == t).expect(t).target.rows;
        assert_eq!(
            (
                rows("campaigns"),
                rows("contacts"),
                rows("dnc"),
                rows("changes")
            ),
            (1, 2, 2, 1)
        );
        assert!(reports.contains(&("contacts".to_owned(), 2, 2)));

        let contact = client
            .query_one("SELECT name, zones FROM contacts WHERE id = 41", &[])
            .expect("contact 41");
        assert_eq!(contact.get::<_, Option<String>>(0), Some(String::new()));
        assert_eq!(contact.get::<_, Option<String>>(1), None);
        let confidence: f64 = client
            .query_one("SELECT confidence FROM answers", &[])
            .expect("answer")
            .get(0);
        assert_eq!(confidence, 0.25);
        // the identity goes on after the copied ids
        let next: i64 = client
            .query_one(
                "INSERT INTO campaigns (name, config, created_at, updated_at)
                 VALUES ('next', '{}', 1, 1) RETURNING id",
                &[],
            )
            .expect("insert")
            .get(0);
        assert_eq!(next, 8);
        // the change counter is the source's (the copy's inserts moved it, then it was replaced)
        let version: i64 = client
            .query_one("SELECT version FROM changes", &[])
            .expect("version")
            .get(0);
        let source_version = source.change_version().expect("source version");
        assert_eq!(version, source_version + 1, "one more: the insert above");
    }

    #[test]
    fn a_target_with_rows_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = seeded_source(dir.path());
        let url = PgCluster::shared().database("copy_twice");
        let mut client = connect(&url).expect("connect");
        copy_from_sqlite(&source, &mut client, 5, &mut |_, _, _| {}).expect("first copy");
        source
            .conn()
            .execute_batch(
                "INSERT INTO dnc (phone, source, added_at) VALUES ('+15005550103', 'cli', 9)",
            )
            .expect("one more row");
        let e = copy_from_sqlite(&source, &mut client, 6, &mut |_, _, _| {})
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "PostgreSQL: the target database already holds rows in `campaigns`: `db copy` only copies into a database with no dialer data (create a new one with `createdb NAME`)"
        );
        let dnc: i64 = client
            .query_one("SELECT count(*) FROM dnc", &[])
            .expect("count")
            .get(0);
        assert_eq!(dnc, 2);
    }

    /// A value PostgreSQL's column cannot hold stops the copy before its commit: nothing stays.
    #[test]
    fn a_bad_value_leaves_the_target_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = seeded_source(dir.path());
        source
            .conn()
            .execute_batch("UPDATE attempts SET duration_seconds = 'long' WHERE id = 90")
            .expect("a text in an INTEGER column");
        let url = PgCluster::shared().database("copy_bad");
        let mut client = connect(&url).expect("connect");
        let e = copy_from_sqlite(&source, &mut client, 5, &mut |_, _, _| {})
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "PostgreSQL: `attempts.duration_seconds` holds a Text value where its column is Integer: nothing was copied"
        );
        let campaigns: i64 = client
            .query_one("SELECT count(*) FROM campaigns", &[])
            .expect("count")
            .get(0);
        assert_eq!(campaigns, 0);
    }
}
