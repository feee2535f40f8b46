//! The embedded migrations and their runner. Every server applies them on connect, in one
//! transaction under an advisory lock, so several servers starting at once never race; `meta`
//! remembers the version reached.

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Executor};
use usage_core::{Error, Result};

use super::{BACKEND, db_err};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_quotas.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_coarse_rollups.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_write_path.sql"),
    ),
];

/// The advisory lock held while migrating ("usage-co" in ASCII). It is database-wide, so
/// servers migrating different schemas of one database wait for each other too: harmless.
const MIGRATION_LOCK: i64 = 0x7573_6167_652d_636f;

/// The schema version this build writes.
pub(super) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Creates `schema` if asked for, then applies the migrations not applied yet.
pub(super) async fn run(pool: &PgPool, schema: Option<&str>) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db_err("migrate"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_err("migrate"))?;
    if let Some(s) = schema {
        // Checked against [a-z_][a-z0-9_]* by the caller, and quoted.
        tx.execute(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{s}\""
        )))
        .await
        .map_err(db_err("migrate"))?;
    }
    tx.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .await
        .map_err(db_err("migrate"))?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'schema_version'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("migrate"))?;
    let current = match current {
        None => 0,
        Some(v) => v.parse::<i64>().map_err(|_| {
            Error::store(
                BACKEND,
                "migrate",
                format!("meta.schema_version is `{v}`, not a number"),
            )
        })?,
    };
    if current > latest() {
        return Err(Error::store(
            BACKEND,
            "migrate",
            format!(
                "the database is at schema version {current}, newer than this build's {}: upgrade usage-store",
                latest()
            ),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::store(BACKEND, format!("migrate to version {version}"), e))?;
    }
    if current < latest() {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(latest().to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err("migrate"))?;
    }
    tx.commit().await.map_err(db_err("migrate"))
}
