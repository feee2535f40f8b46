//! Opening a database file safely: recognise our own files (by `PRAGMA application_id` and the
//! `meta` table), refuse anything else before writing a byte, set the connection pragmas, and
//! apply the embedded migrations in one transaction.

use std::fmt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::SqliteOptions;

/// `PRAGMA application_id` of usage-core databases: "USGC" in ASCII.
pub const APPLICATION_ID: i32 = 0x5553_4743;

/// The embedded migrations, in order; `meta.schema_version` is the last one applied.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_quotas.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_coarse_rollups.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_quota_counters.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_write_path.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_reservation_pages.sql"),
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 6;

/// Why a file could not be opened as a usage-core store.
#[derive(Debug)]
pub struct OpenError {
    message: String,
    source: Option<rusqlite::Error>,
}

impl OpenError {
    fn new(message: impl Into<String>) -> Self {
        OpenError {
            message: message.into(),
            source: None,
        }
    }

    pub(super) fn sql(message: impl Into<String>, e: rusqlite::Error) -> Self {
        OpenError {
            message: message.into(),
            source: Some(e),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// What a database holds, as far as opening it is concerned.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// No tables and no application id: ours to initialise.
    Empty,
    /// A usage-core database at this schema version.
    Ours(i64),
}

/// Reads (never writes) enough of the database to tell whether it is ours.
fn inspect(conn: &Connection, label: &str) -> Result<State, OpenError> {
    let not_db = |e| {
        OpenError::sql(
            format!("`{label}` is not an SQLite database, or it is corrupt"),
            e,
        )
    };
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(not_db)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(not_db)?;
    if app_id != APPLICATION_ID {
        if app_id == 0 && tables.is_empty() {
            return Ok(State::Empty);
        }
        let listed = tables
            .iter()
            .take(5)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(OpenError::new(format!(
            "`{label}` is an SQLite database of another application (application_id {app_id:#x}, {} table(s): {listed}{}), not a usage-core store; it was left untouched",
            tables.len(),
            if tables.len() > 5 { ", …" } else { "" },
        )));
    }
    if !tables.iter().any(|t| t == "meta") {
        if tables.is_empty() {
            return Ok(State::Empty);
        }
        return Err(OpenError::new(format!(
            "`{label}` carries the usage-core application id but has no `meta` table; it is damaged and was left untouched"
        )));
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(not_db)?
        .flatten();
    let version = version.as_deref().unwrap_or("0");
    let version: i64 = version.trim().parse().map_err(|_| {
        OpenError::new(format!(
            "`{label}` has an unreadable schema_version `{version}`"
        ))
    })?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::new(format!(
            "`{label}` has schema version {version}, newer than this build of usage-core supports ({SCHEMA_VERSION}); upgrade usage-core"
        )));
    }
    Ok(State::Ours(version))
}

/// Checks an existing, non-empty file through a read-only connection, so that a file that is
/// not ours is never modified (not even its header).
pub fn probe(path: &Path, options: &SqliteOptions, label: &str) -> Result<(), OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| OpenError::sql(format!("cannot open `{label}`"), e))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| OpenError::sql("cannot set busy_timeout", e))?;
    inspect(&conn, label)?;
    Ok(())
}

/// The page size of a new store's file (SQLite's default is 4096). A write rewrites a whole
/// page of every b-tree it touches (an event, its indexes, ~10 rollup cells and the quota
/// tables: ~15 pages for one event), and the WAL gets each of them, so half-size pages halve
/// the bytes a small commit writes. On the 1M-event bench store, copied at each size:
/// reserve + commit 210 → 182 µs, a single `record` 82 → 71 µs, batched writes and rollup
/// reads unchanged; raw scans of one heavy user's events (index lookups) took ~30% longer,
/// and 1 KiB pages slowed batched writes by a fifth. A store created at another size keeps it
/// (changing it needs a `VACUUM` outside WAL mode).
pub const PAGE_SIZE: u32 = 2048;

/// The pragmas every connection gets.
pub fn configure(conn: &Connection, options: &SqliteOptions, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(
        None,
        "synchronous",
        if options.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    // Negative: KiB. The writer keeps the hot index pages of a large store in memory.
    conn.pragma_update(None, "cache_size", if writer { -65_536 } else { -16_384 })?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if writer {
        // Before anything creates the file's first page; an existing file keeps its own.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        // The id hash (for the migration that creates `event_ids` and for `purge`) and
        // `rarray` (for a batch's id lookup).
        super::ids::register(conn)?;
        // Checkpoints of a file run on a thread of their own (`checkpoint`), every 10,000 WAL
        // frames rather than SQLite's 1,000: pages written again and again (index leaves, rollup
        // cells) reach the main file once per checkpoint. The WAL keeps its file up to
        // `WAL_KEPT_BYTES` when it restarts.
        conn.pragma_update(
            None,
            "journal_size_limit",
            super::checkpoint::WAL_KEPT_BYTES,
        )?;
    }
    conn.set_prepared_statement_cache_capacity(128);
    if !writer {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(())
}

/// Switches a file database to WAL (a no-op when it already is).
pub fn enable_wal(conn: &Connection, label: &str) -> Result<(), OpenError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| OpenError::sql(format!("cannot switch `{label}` to WAL mode"), e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::new(format!(
            "`{label}` cannot use WAL mode (journal_mode stays `{mode}`); is it on a network file system?"
        )));
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`] in one write transaction (re-checking inside
/// it, since another process may be doing the same).
pub fn migrate(conn: &mut Connection, label: &str) -> Result<(), OpenError> {
    if inspect(conn, label)? == State::Ours(SCHEMA_VERSION) {
        return Ok(());
    }
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e| OpenError::sql(format!("cannot initialise `{label}`: {what}"), e)
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("begin"))?;
    let current = match inspect(&tx, label)? {
        State::Empty => 0,
        State::Ours(v) => v,
    };
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)
            .map_err(fail(&format!("migration {version:04}")))?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )
    .map_err(fail("meta"))?;
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))
        .map_err(fail("application_id"))?;
    tx.commit().map_err(fail("commit"))?;
    Ok(())
}
