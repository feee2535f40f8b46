//! The PostgreSQL backend: one shared database for several app servers. Owns the connection
//! pool, the embedded migrations and the SQL behind every [`Store`] method; the schema is the
//! SQLite backend's, column for column, so both answer every query identically.

mod columns;
mod insert;
mod maintenance;
mod migrate;
mod query;
mod quota;
#[cfg(test)]
mod quota_tests;
mod rollup;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};
use usage_core::event::{EventId, UsageEvent};
use usage_core::pricing::PriceCatalog;
use usage_core::query::{Dimension, Filter, TimeRange};
use usage_core::store::{
    AggregateRequest, AggregateRow, Cursor, DistinctRow, LatencyRow, RepriceReport, RunOptions,
    RunRecord, Store,
};
use usage_core::{Error, Result};

const BACKEND: &str = "postgres";

/// Wraps a database error as a [`Error::Store`] naming `operation`.
fn db_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::store(BACKEND, operation, e)
}

/// How many batches the batched writer writes at once (see [`PgStore`]'s `concurrent_inserts`).
const CONCURRENT_INSERTS: usize = 2;

/// How to connect. Built with [`PgOptions::default`] and the setters.
///
/// ```
/// use usage_store::postgres::PgOptions;
/// let opts = PgOptions::default().schema("usage").max_connections(4);
/// assert_eq!(opts.max_connections, 4);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// Most connections the pool opens (default 10). A pooled connection that has sat idle
    /// for a second or more is checked before use and replaced if the server dropped it; one
    /// dropped sooner fails the one call that takes it, and is then replaced.
    pub max_connections: u32,
    /// A schema to keep the tables in (created when missing); `public` (the server's
    /// `search_path`) when absent. `?schema=NAME` in the URL does the same. Must match
    /// `[a-z_][a-z0-9_]*`.
    pub schema: Option<String>,
    /// How long to wait for a connection, including the first one (default 30 s): a server
    /// that is still starting up is retried until then.
    pub acquire_timeout: Duration,
    /// Wait for each commit to reach the disk before returning (default true). `false` sets
    /// `synchronous_commit = off` on the pool's connections: a write returns before its WAL is
    /// flushed, so a server crash can lose the last fraction of a second of acknowledged
    /// events (never corrupt or half-write them). Worth it only where fsync is slow and a
    /// single-event insert must be sub-millisecond.
    pub synchronous_commit: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 10,
            schema: None,
            acquire_timeout: Duration::from_secs(30),
            synchronous_commit: true,
        }
    }
}

impl PgOptions {
    /// Sets the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Keeps the tables in this schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets how long to wait for a connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets whether commits wait for the disk (see [`PgOptions::synchronous_commit`]).
    pub fn synchronous_commit(mut self, on: bool) -> Self {
        self.synchronous_commit = on;
        self
    }
}

/// Events, hourly rollups and maintenance runs in PostgreSQL.
///
/// Every write is one transaction. Inserts from many servers at once are safe: rows are
/// locked in a fixed order, so concurrent batches never deadlock. Maintenance runs
/// (`rebuild_rollups`, `reprice`) lock the tables they rewrite, so inserts wait for them.
///
/// ```no_run
/// # async fn demo() -> usage_core::Result<()> {
/// use usage_store::postgres::{PgOptions, PgStore};
/// let store = PgStore::connect("postgres://app@db/usage?schema=llm", PgOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: Option<String>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish()
    }
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes (Postgres truncates longer names).
fn check_schema(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(Error::argument(
            "schema",
            format!(
                "`{}` is not a valid schema name: use [a-z_][a-z0-9_]*, at most 63 bytes",
                name.escape_debug()
            ),
        ))
    }
}

/// Splits `?schema=NAME` off a connection URL, returning the URL sqlx should see.
fn split_schema(url: &str) -> Result<(String, Option<String>)> {
    let mut u = url::Url::parse(url.trim()).map_err(|e| Error::store(BACKEND, "connect", e))?;
    let mut schema = None;
    let mut rest = Vec::new();
    for (k, v) in u.query_pairs() {
        if k == "schema" {
            schema = Some(v.into_owned());
        } else {
            rest.push((k.into_owned(), v.into_owned()));
        }
    }
    if rest.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((u.into(), schema))
}

impl PgStore {
    /// Connects, creates the schema when asked for, and applies the embedded migrations (in one
    /// transaction, under an advisory lock, so servers starting together do not race).
    ///
    /// A malformed URL or an unreachable server is an [`Error::Store`] (operation `connect`,
    /// with the driver's error as its source); an invalid schema name is an
    /// [`Error::InvalidArgument`].
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore> {
        let (url, url_schema) = split_schema(url)?;
        let schema = match (options.schema, url_schema) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::argument(
                    "schema",
                    format!("the URL says `{b}` but the options say `{a}`"),
                ));
            }
            (a, b) => a.or(b),
        };
        if let Some(s) = &schema {
            check_schema(s)?;
        }
        let connect_options = PgConnectOptions::from_str(&url).map_err(db_err("connect"))?;
        // Session settings for every pooled connection. The schema name was checked against
        // [a-z_][a-z0-9_]* and is quoted.
        let mut session: Vec<String> = Vec::new();
        if let Some(s) = &schema {
            session.push(format!("SET search_path TO \"{s}\""));
        }
        if !options.synchronous_commit {
            session.push("SET synchronous_commit TO off".to_owned());
        }
        let session = session.join("; ");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // A pooled connection is checked (a `Sync` round trip) only when it has sat idle
            // long enough for the server or a proxy to have dropped it. sqlx's default checks
            // every acquire: on a busy loopback that cost `quota_status`, which takes a
            // connection per read, a third of its time (benches/README.md, session 10).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                let session = session.clone();
                Box::pin(async move {
                    if !session.is_empty() {
                        sqlx::raw_sql(AssertSqlSafe(session)).execute(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options.clone())
            .await;
        let pool = match pool {
            Ok(p) => p,
            // The pool retries a refused connection until its timeout and then only says it
            // timed out: one direct attempt recovers the reason.
            Err(sqlx::Error::PoolTimedOut) => {
                let reason = match tokio::time::timeout(
                    Duration::from_secs(5),
                    sqlx::PgConnection::connect_with(&connect_options),
                )
                .await
                {
                    Ok(Err(e)) => e,
                    _ => sqlx::Error::PoolTimedOut,
                };
                return Err(Error::store(BACKEND, "connect", reason));
            }
            Err(e) => return Err(Error::store(BACKEND, "connect", e)),
        };
        migrate::run(&pool, schema.as_deref()).await?;
        Ok(PgStore { pool, schema })
    }

    /// The schema the tables live in, when one was asked for.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The pool, or a Store error once the store is closed.
    fn pool(&self, operation: &'static str) -> Result<&PgPool> {
        if self.pool.is_closed() {
            Err(Error::store(BACKEND, operation, "the store is closed"))
        } else {
            Ok(&self.pool)
        }
    }
}

/// How long a pooled connection may sit idle before it is checked again when taken.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

fn ms_to_time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| {
        Error::store(
            BACKEND,
            "read",
            format!("timestamp {ms} ms is out of range"),
        )
    })
}

/// The smallest whole millisecond at or after `t`: stored timestamps are whole milliseconds, so
/// `ts_ms >= ceil_ms(start)` is exactly `timestamp >= start`.
fn ceil_ms(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        floor
    } else {
        floor + 1
    }
}

fn range_ms(range: Option<TimeRange>) -> (i64, i64) {
    range.map_or((i64::MIN, i64::MAX), |r| (ceil_ms(r.start), ceil_ms(r.end)))
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Two batched writes at once, leaving the pool a connection for reads: while one
    /// batch's statement runs on the server, the next is copied in and indexed by another
    /// backend. Their row locks are taken in one order, so they wait rather than deadlock.
    fn concurrent_inserts(&self) -> usize {
        let pool = usize::try_from(self.pool.options().get_max_connections()).unwrap_or(1);
        pool.saturating_sub(1).clamp(1, CONCURRENT_INSERTS)
    }

    async fn insert(&self, events: &[UsageEvent]) -> Result<Vec<bool>> {
        insert::insert(self.pool("insert")?, events).await
    }

    async fn get(&self, id: &EventId) -> Result<Option<UsageEvent>> {
        query::get(self.pool("get")?, id).await
    }

    async fn scan(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<UsageEvent>> {
        query::scan(self.pool("scan")?, filter, after, limit).await
    }

    async fn aggregate(&self, req: &AggregateRequest) -> Result<Vec<AggregateRow>> {
        query::aggregate(self.pool("aggregate")?, req).await
    }

    async fn distinct(
        &self,
        req: &AggregateRequest,
        dimension: &Dimension,
    ) -> Result<Vec<DistinctRow>> {
        query::distinct(self.pool("distinct")?, req, dimension).await
    }

    async fn latencies(&self, req: &AggregateRequest) -> Result<Vec<LatencyRow>> {
        query::latencies(self.pool("latencies")?, req).await
    }

    async fn purged_before(&self) -> Result<Option<DateTime<Utc>>> {
        maintenance::purged_before(self.pool("purged_before")?).await
    }

    async fn rebuild_rollups(
        &self,
        range: Option<TimeRange>,
        opts: &RunOptions,
    ) -> Result<RunRecord> {
        maintenance::rebuild_rollups(self.pool("rebuild_rollups")?, range, opts).await
    }

    async fn reprice(
        &self,
        range: Option<TimeRange>,
        catalog: &PriceCatalog,
        dry_run: bool,
        opts: &RunOptions,
    ) -> Result<(RepriceReport, RunRecord)> {
        maintenance::reprice(self.pool("reprice")?, range, catalog, dry_run, opts).await
    }

    async fn purge(&self, before: DateTime<Utc>, opts: &RunOptions) -> Result<RunRecord> {
        maintenance::purge(self.pool("purge")?, before, opts).await
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        maintenance::runs(self.pool("runs")?, limit).await
    }

    async fn close(&self) -> Result<()> {
        self.pool.close().await;
        Ok(())
    }
}
