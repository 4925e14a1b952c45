//! The PostgreSQL schema's migrations: `migrations/postgres/NNNN_name.sql`, one per SQLite
//! migration with the same number and name, each the translation of its twin. Applied versions
//! are rows of `dialer_migrations`; each migration runs in its own transaction, and the whole run
//! holds a session advisory lock so two nodes starting together never apply one twice.

use postgres::Client;

use super::super::{Result, StoreError};

/// One migration: its number (the file's), name and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/postgres/", $file)),
        }
    };
}

/// Every migration, in order. Numbers and names match `migrations/*.sql` (there is no 0007).
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "initial", "0001_initial.sql"),
    migration!(2, "changes", "0002_changes.sql"),
    migration!(3, "callbacks", "0003_callbacks.sql"),
    migration!(4, "imports", "0004_imports.sql"),
    migration!(5, "messaging", "0005_messaging.sql"),
    migration!(6, "bot", "0006_bot.sql"),
    migration!(8, "import_speed", "0008_import_speed.sql"),
];

/// The advisory lock key every dialer takes while migrating ("dialer" in ASCII).
const MIGRATION_LOCK: i64 = 0x6469_616c_6572;

/// What a run of [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The versions applied by this run, in order (empty: the schema was up to date).
    pub applied: Vec<i64>,
    /// The schema's version now.
    pub version: i64,
}

/// Brings the database's schema up to date. `now` (unix seconds) is recorded as `applied_at`.
/// A database migrated by a newer dialer (a version above ours) is refused, changing nothing.
pub fn migrate(client: &mut Client, now: i64) -> Result<Migrated> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = migrate_locked(client, now);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let migrated = result?;
    unlocked?;
    Ok(migrated)
}

fn migrate_locked(client: &mut Client, now: i64) -> Result<Migrated> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS dialer_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )?;
    let done: Vec<i64> = client
        .query(
            "SELECT version FROM dialer_migrations ORDER BY version",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let ours = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&theirs) = done.last().filter(|v| **v > ours) {
        return Err(StoreError::Postgres(format!(
            "the database's schema is version {theirs}, newer than this dialer's {ours}: it was migrated by a newer dialer; run that version (or a newer one) against it"
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let mut tx = client.transaction()?;
        tx.batch_execute(m.sql).map_err(|e| {
            StoreError::Postgres(format!(
                "migration {:04}_{} failed: {}",
                m.version,
                m.name,
                super::describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO dialer_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &now],
        )?;
        tx.commit()?;
        applied.push(m.version);
    }
    let version = done.last().copied().unwrap_or(0).max(ours);
    Ok(Migrated { applied, version })
}

#[cfg(test)]
mod tests {
    use super::super::cluster::PgCluster;
    use super::super::connect;
    use super::*;
    use crate::store::Store;

    /// Every migration file of `migrations/` has a PostgreSQL twin of the same number and name.
    #[test]
    fn every_sqlite_migration_has_its_twin() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut sqlite: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        sqlite.sort();
        let ours: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(ours, sqlite);
    }

    #[test]
    fn migrating_twice_applies_each_migration_once() {
        let url = PgCluster::shared().database("migrate_twice");
        let mut client = connect(&url).expect("connect");
        let first = migrate(&mut client, 1_700_000_000).expect("first run");
        assert_eq!(first.applied, vec![1, 2, 3, 4, 5, 6, 8]);
        assert_eq!(first.version, 8);
        let second = migrate(&mut client, 1_700_000_100).expect("second run");
        assert_eq!(
            second,
            Migrated {
                applied: vec![],
                version: 8
            }
        );
        let rows: Vec<(i64, String, i64)> = client
            .query(
                "SELECT version, name, applied_at FROM dialer_migrations ORDER BY version",
                &[],
            )
            .expect("bookkeeping")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[6], (8, "import_speed".to_owned(), 1_700_000_000));
    }

    #[test]
    fn two_nodes_migrating_at_once_apply_each_migration_once() {
        let url = PgCluster::shared().database("migrate_race");
        let runs: Vec<Migrated> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut client = connect(&url).expect("connect");
                        migrate(&mut client, 1).expect("migrate")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let mut applied: Vec<i64> = runs.iter().flat_map(|r| r.applied.clone()).collect();
        applied.sort_unstable();
        assert_eq!(applied, vec![1, 2, 3, 4, 5, 6, 8]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let url = PgCluster::shared().database("migrate_newer");
        let mut client = connect(&url).expect("connect");
        migrate(&mut client, 1).expect("migrate");
        client
            .execute(
                "INSERT INTO dialer_migrations (version, name, applied_at) VALUES (9, 'future', 2)",
                &[],
            )
            .expect("a future version");
        let e = migrate(&mut client, 3).unwrap_err().to_string();
        assert_eq!(
            e,
            "PostgreSQL: the database's schema is version 9, newer than this dialer's 8: it was migrated by a newer dialer; run that version (or a newer one) against it"
        );
    }

    /// One column of a table: name, type, nullability, in the table's order.
    #[derive(Debug, PartialEq, Eq)]
    struct Column {
        table: String,
        name: String,
        kind: String,
        nullable: bool,
    }

    fn sqlite_columns(store: &Store) -> Vec<Column> {
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk
                 FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                 ORDER BY m.name, p.cid",
            )
            .expect("prepare");
        stmt.query_map([], |r| {
            let kind: String = r.get(2)?;
            let not_null: bool = r.get(3)?;
            let pk: i64 = r.get(4)?;
            Ok(Column {
                table: r.get(0)?,
                name: r.get(1)?,
                // SQLite's INTEGER is 64-bit; REAL is a double
                kind: match kind.as_str() {
                    "INTEGER" => "bigint",
                    "REAL" => "double precision",
                    "TEXT" => "text",
                    other => other,
                }
                .to_owned(),
                nullable: !not_null && pk == 0,
            })
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    fn sqlite_names(store: &Store, kind: &str) -> Vec<String> {
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = ?1 AND name NOT LIKE 'sqlite_%'
                 ORDER BY name",
            )
            .expect("prepare");
        stmt.query_map([kind], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn pg_strings(client: &mut Client, sql: &str) -> Vec<String> {
        client
            .query(sql, &[])
            .expect(sql)
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// "Versioned alike": after all migrations both schemas have the same tables with the same
    /// columns (order, type, nullability), the same indexes and the same triggers.
    #[test]
    fn the_schema_matches_sqlite_table_by_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("alike.db")).expect("sqlite");
        let url = PgCluster::shared().database("schema_alike");
        let mut client = connect(&url).expect("connect");
        migrate(&mut client, 1).expect("migrate");

        let pg_columns: Vec<Column> = client
            .query(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'YES'
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name <> 'dialer_migrations'
                 ORDER BY table_name, ordinal_position",
                &[],
            )
            .expect("columns")
            .iter()
            .map(|r| Column {
                table: r.get(0),
                name: r.get(1),
                kind: r.get(2),
                nullable: r.get(3),
            })
            .collect();
        let sqlite = sqlite_columns(&store);
        assert!(sqlite.len() > 100, "{} columns", sqlite.len());
        // column by column, so a difference reads as the one column that differs
        for (pg, lite) in pg_columns.iter().zip(&sqlite) {
            assert_eq!(pg, lite, "PostgreSQL's column, then SQLite's");
        }
        assert_eq!(pg_columns.len(), sqlite.len());

        // indexes written in the migrations (PostgreSQL's constraint indexes are SQLite's
        // automatic ones: both left out)
        let pg_indexes = pg_strings(
            &mut client,
            "SELECT indexname::text FROM pg_indexes i
             WHERE schemaname = current_schema()
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
             ORDER BY indexname",
        );
        assert_eq!(pg_indexes, sqlite_names(&store, "index"));

        let pg_triggers = pg_strings(
            &mut client,
            "SELECT DISTINCT trigger_name::text FROM information_schema.triggers
             WHERE trigger_schema = current_schema() ORDER BY 1",
        );
        assert_eq!(pg_triggers, sqlite_names(&store, "trigger"));
    }

    /// The translated triggers move the change counter like SQLite's.
    #[test]
    fn the_change_counter_moves_with_campaigns_dnc_and_imports() {
        let url = PgCluster::shared().database("change_counter");
        let mut client = connect(&url).expect("connect");
        migrate(&mut client, 1).expect("migrate");
        let version = |client: &mut Client| -> i64 {
            client
                .query_one("SELECT version FROM changes WHERE id = 1", &[])
                .expect("version")
                .get(0)
        };
        assert_eq!(version(&mut client), 0);
        client
            .batch_execute(
                "INSERT INTO campaigns (name, config, created_at, updated_at) VALUES ('a', '{}', 1, 1);
                 INSERT INTO dnc (phone, source, added_at) VALUES ('+15005550100', 'cli', 1);
                 INSERT INTO imports (campaign_id, file, started_at) SELECT id, 'x.csv', 1 FROM campaigns;
                 UPDATE imports SET finished_at = 2;
                 INSERT INTO contacts (campaign_id, phone, created_at, updated_at) SELECT id, '+15005550101', 1, 1 FROM campaigns;",
            )
            .expect("changes");
        // a contact is not a change the daemon reloads for
        assert_eq!(version(&mut client), 4);
    }
}
