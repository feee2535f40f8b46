//! The SQLite backend: one database file in WAL mode, written through one connection behind a
//! mutex (every write a `BEGIN IMMEDIATE` transaction, so several processes can share the
//! file) and read through a small pool of connections; the work runs in place on a
//! multi-thread tokio runtime and on its blocking threads under a current-thread one (see
//! `blocking`). The schema lives in `migrations/sqlite/`.

mod checkpoint;
mod codec;
mod counters;
mod ids;
mod maintenance;
mod query;
mod quota;
mod schema;
mod write;

#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use rust_decimal::Decimal;
use tokio::runtime::RuntimeFlavor;
use usage_core::event::{EventId, UsageEvent};
use usage_core::pricing::PriceCatalog;
use usage_core::query::{Dimension, Filter, TimeRange};
use usage_core::quota::Quota;
use usage_core::store::{
    AggregateRequest, AggregateRow, Cursor, DistinctRow, LatencyRow, RepriceReport, RunKind,
    RunOptions, RunOutcome, RunRecord, Store,
};
use usage_core::{Error, Result};

pub use schema::{APPLICATION_ID, OpenError, SCHEMA_VERSION};

use maintenance::{Done, RunInfo};

const BACKEND: &str = "sqlite";

/// How [`SqliteStore::open`] sets up its connections.
///
/// ```
/// use std::time::Duration;
/// use usage_store::sqlite::SqliteOptions;
/// let opts = SqliteOptions { synchronous_full: true, busy_timeout: Duration::from_secs(30), ..Default::default() };
/// assert_eq!(opts.read_connections, 4);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `PRAGMA synchronous = FULL`: every commit is fsynced, so even a power loss keeps it.
    /// The default, `NORMAL`, survives application crashes but may lose the last commits on
    /// power loss, and is much faster.
    pub synchronous_full: bool,
    /// How long a write waits for another connection or process holding the write lock before
    /// failing with "database is locked" (default 10 s).
    pub busy_timeout: Duration,
    /// Read connections in the pool (default 4). With 0, reads share the writer connection.
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: false,
            busy_timeout: Duration::from_secs(10),
            read_connections: 4,
        }
    }
}

/// An internal failure: a SQLite error (wrapped with the operation's name at the boundary) or
/// a usage-core error passed through as it is.
#[derive(Debug)]
enum Fail {
    Sql(rusqlite::Error),
    Core(Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Core(e)
    }
}

impl Fail {
    fn into_error(self, op: &str) -> Error {
        match self {
            Fail::Sql(e) => Error::store(BACKEND, op, e),
            Fail::Core(e) => e,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves it usable: an open transaction was rolled
    // back when its guard dropped.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn closed(op: &str) -> Error {
    Error::store(BACKEND, op, "the store is closed; open it again to use it")
}

struct ReadPool {
    idle: Vec<Connection>,
    closed: bool,
}

struct Inner {
    path: Option<PathBuf>,
    writer: Mutex<Option<Connection>>,
    readers: Mutex<ReadPool>,
    returned: Condvar,
    read_connections: usize,
    closed: AtomicBool,
    /// Runs the file's checkpoints (`None` in memory).
    checkpointer: Option<checkpoint::Checkpointer>,
}

/// A read connection on loan; it goes back to the pool when dropped.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut pool = lock(&self.inner.readers);
            if !pool.closed {
                pool.idle.push(conn);
            }
            drop(pool);
            self.inner.returned.notify_one();
        }
    }
}

impl Inner {
    fn writer<T>(&self, op: &str, f: impl FnOnce(&mut Connection) -> Result<T, Fail>) -> Result<T> {
        let mut guard = lock(&self.writer);
        let conn = guard.as_mut().ok_or_else(|| closed(op))?;
        checkpoint::take_wal_frames();
        let out = f(conn).map_err(|e| e.into_error(op));
        if let Some(c) = &self.checkpointer {
            c.after_commit(conn, checkpoint::take_wal_frames());
        }
        out
    }

    fn reader<T>(&self, op: &str, f: impl FnOnce(&mut Connection) -> Result<T, Fail>) -> Result<T> {
        if self.read_connections == 0 {
            return self.writer(op, f);
        }
        let conn = {
            let mut pool = lock(&self.readers);
            loop {
                if pool.closed {
                    return Err(closed(op));
                }
                if let Some(c) = pool.idle.pop() {
                    break c;
                }
                pool = self
                    .returned
                    .wait(pool)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let mut lease = Lease {
            inner: self,
            conn: Some(conn),
        };
        let conn = lease.conn.as_mut().ok_or_else(|| closed(op))?;
        f(conn).map_err(|e| e.into_error(op))
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        {
            let mut pool = lock(&self.readers);
            pool.closed = true;
            pool.idle.clear();
        }
        self.returned.notify_all();
        if let Some(c) = &self.checkpointer {
            c.stop();
        }
        if let Some(conn) = lock(&self.writer).take() {
            // Best effort: fold the WAL back into the file and leave the planner statistics
            // fresh for the next open.
            let _ = conn.execute_batch("PRAGMA optimize");
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            let _ = conn.close();
        }
    }
}

/// Runs blocking SQLite work without stalling other tasks of the async runtime. On a
/// multi-thread runtime the work runs right here (`block_in_place` hands this worker's other
/// tasks to another thread), which saves two thread wake-ups per call, a large share of a
/// single-event write; on a current-thread runtime it goes to the blocking pool; with no
/// runtime it runs inline.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if needs_pool() {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::store(BACKEND, op, e))?
    } else {
        in_place(f)
    }
}

/// Whether [`blocking`] runs its work on the blocking pool, which needs the work to own its
/// inputs; otherwise it runs here and may borrow them.
fn needs_pool() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() != RuntimeFlavor::MultiThread)
}

/// Runs blocking work on this thread: through `block_in_place` inside a (multi-thread)
/// runtime, directly outside one. Only where [`needs_pool`] is false: `block_in_place`
/// panics on a current-thread runtime.
fn in_place<T>(f: impl FnOnce() -> T) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The embedded SQLite store: zero set-up, one file, safe to share between the threads of a
/// process and between processes.
///
/// Every write is one `BEGIN IMMEDIATE` transaction that updates events and rollups together;
/// reads use a pool of connections that never wait for the writer (WAL mode). A thread of the
/// store's own copies the WAL's pages into the file (a checkpoint) every 10,000 pages of WAL
/// (~20 MB: a new store's pages are 2 KiB), so writes do not wait for that; beside the file,
/// the `-wal` file takes up to ~80 MB under heavy writing, and is removed on close. SQLite
/// work runs in place on a multi-thread tokio runtime (`block_in_place`: the worker's other
/// tasks move to another thread meanwhile), on the blocking pool under a current-thread
/// runtime. Cloning is cheap and shares the connections.
///
/// A new file uses 2 KiB pages rather than SQLite's 4 KiB: a commit rewrites one page of every
/// b-tree it touches, so smaller pages write less (a single record ~13% faster on the bench).
/// A file made by an earlier version keeps its pages; to convert one, with every store on it
/// closed: `PRAGMA journal_mode = DELETE; PRAGMA page_size = 2048; VACUUM; PRAGMA journal_mode
/// = WAL` (the `VACUUM` rewrites the whole file and needs as much free space again).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use usage_core::store::Store;
/// use usage_store::sqlite::{SqliteOptions, SqliteStore};
/// let path = std::env::temp_dir().join(format!("usage-doc-{}.db", std::process::id()));
/// let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
/// assert_eq!(store.backend(), "sqlite");
/// assert!(store.runs(10).await.unwrap().is_empty());
/// store.close().await.unwrap();
/// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("read_connections", &self.inner.read_connections)
            .field("closed", &self.inner.closed.load(Ordering::SeqCst))
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it when absent) the store in the file at `path`, and brings its schema
    /// up to date in one transaction.
    ///
    /// A file that is not SQLite, is corrupt, or is another application's SQLite database is
    /// refused with [`Error::Store`] (operation `open`) before anything is written to it. This
    /// does blocking file I/O; from async code, call it in `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let err = |e: OpenError| Error::store(BACKEND, "open", e);
        let sql_err = |what: &str| {
            let what = format!("cannot open `{label}`: {what}");
            move |e| Error::store(BACKEND, "open", OpenError::sql(what, e))
        };
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            schema::probe(path, &options, &label).map_err(err)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer =
            Connection::open_with_flags(path, flags).map_err(sql_err("open the file"))?;
        schema::configure(&writer, &options, true).map_err(sql_err("configure the connection"))?;
        schema::enable_wal(&writer, &label).map_err(err)?;
        schema::migrate(&mut writer, &label).map_err(err)?;
        let mut idle = Vec::with_capacity(options.read_connections);
        for _ in 0..options.read_connections {
            let reader = Connection::open_with_flags(path, flags)
                .map_err(sql_err("open a read connection"))?;
            schema::configure(&reader, &options, false)
                .map_err(sql_err("configure a read connection"))?;
            idle.push(reader);
        }
        let checkpoints = Connection::open_with_flags(path, flags)
            .map_err(sql_err("open the checkpoint connection"))?;
        schema::configure(&checkpoints, &options, false)
            .map_err(sql_err("configure the checkpoint connection"))?;
        checkpoint::watch(&writer);
        let checkpointer = checkpoint::Checkpointer::start(checkpoints, Default::default())
            .map_err(|e| Error::store(BACKEND, "open", e))?;
        Ok(SqliteStore::from_parts(
            Some(path.to_owned()),
            writer,
            idle,
            Some(checkpointer),
        ))
    }

    /// A private in-memory store (gone when the last clone is dropped), with the same schema
    /// and behaviour as a file; reads share the writer connection.
    pub fn open_in_memory() -> Result<SqliteStore> {
        let err = |e| Error::store(BACKEND, "open", e);
        let mut conn = Connection::open_in_memory().map_err(err)?;
        schema::configure(&conn, &SqliteOptions::default(), true).map_err(err)?;
        schema::migrate(&mut conn, ":memory:").map_err(|e| Error::store(BACKEND, "open", e))?;
        Ok(SqliteStore::from_parts(None, conn, Vec::new(), None))
    }

    fn from_parts(
        path: Option<PathBuf>,
        writer: Connection,
        readers: Vec<Connection>,
        checkpointer: Option<checkpoint::Checkpointer>,
    ) -> SqliteStore {
        SqliteStore {
            inner: Arc::new(Inner {
                path,
                read_connections: readers.len(),
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(ReadPool {
                    idle: readers,
                    closed: false,
                }),
                returned: Condvar::new(),
                closed: AtomicBool::new(false),
                checkpointer,
            }),
        }
    }

    /// The database file, `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(op, move || inner.reader(op, f)).await
    }

    async fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(op, move || inner.writer(op, f)).await
    }

    /// Runs a maintenance job and records it in `runs`, also when it fails.
    async fn maintain<T: Send + 'static>(
        &self,
        op: &'static str,
        info: RunInfo,
        on_reader: bool,
        work: impl FnOnce(&mut Connection) -> Result<Done<T>, Fail> + Send + 'static,
    ) -> Result<(T, RunRecord)> {
        let inner = self.inner.clone();
        blocking(op, move || {
            let done = if on_reader {
                inner.reader(op, work)
            } else {
                inner.writer(op, work)
            };
            match done {
                Ok(d) => {
                    let record = inner.writer(op, |c| {
                        maintenance::record_run(c, info, d.rows, d.outcome, None, d.detail)
                    })?;
                    Ok((d.value, record))
                }
                Err(e) => {
                    // Best effort: the failure itself is what the caller needs to see.
                    let message = e.to_string();
                    let _ = inner.writer(op, |c| {
                        maintenance::record_run(c, info, 0, RunOutcome::Failed, Some(message), None)
                    });
                    Err(e)
                }
            }
        })
        .await
    }
}

fn range_ms(range: &TimeRange) -> (i64, i64) {
    (codec::ceil_ms(range.start), codec::ceil_ms(range.end))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Two batched writes at once: one batch is prepared (checked, its ids hashed, its rollup
    /// cells summed) while the other holds the write lock.
    fn concurrent_inserts(&self) -> usize {
        2
    }

    async fn insert(&self, events: &[UsageEvent]) -> Result<Vec<bool>> {
        Ok(self.insert_and_read(events, &[]).await?.0)
    }

    async fn insert_and_read(
        &self,
        events: &[UsageEvent],
        watch: &[(Quota, TimeRange)],
    ) -> Result<(Vec<bool>, Vec<Decimal>)> {
        if needs_pool() {
            let (events, watch) = (events.to_vec(), watch.to_vec());
            return self
                .write("insert", move |c| {
                    let batch = write::Batch::new(&events)?;
                    write::insert_and_read(c, &batch, &watch)
                })
                .await;
        }
        // In place: no copy of the batch (20,000 events are a few megabytes of allocations),
        // and prepared before the write lock is taken.
        in_place(|| {
            let batch = write::Batch::new(events)?;
            self.inner
                .writer("insert", |c| write::insert_and_read(c, &batch, watch))
        })
    }

    async fn get(&self, id: &EventId) -> Result<Option<UsageEvent>> {
        let id = id.clone();
        self.read("get", move |c| query::get(c, &id)).await
    }

    async fn scan(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<UsageEvent>> {
        let (filter, after) = (filter.clone(), after.cloned());
        self.read("scan", move |c| {
            query::scan(c, &filter, after.as_ref(), limit)
        })
        .await
    }

    async fn aggregate(&self, req: &AggregateRequest) -> Result<Vec<AggregateRow>> {
        let req = req.clone();
        self.read("aggregate", move |c| query::aggregate(c, &req))
            .await
    }

    async fn distinct(
        &self,
        req: &AggregateRequest,
        dimension: &Dimension,
    ) -> Result<Vec<DistinctRow>> {
        let (req, dimension) = (req.clone(), dimension.clone());
        self.read("distinct", move |c| query::distinct(c, &req, &dimension))
            .await
    }

    async fn latencies(&self, req: &AggregateRequest) -> Result<Vec<LatencyRow>> {
        let req = req.clone();
        self.read("latencies", move |c| query::latencies(c, &req))
            .await
    }

    async fn purged_before(&self) -> Result<Option<DateTime<Utc>>> {
        self.read("purged_before", |c| {
            Ok(maintenance::purged_before_ms(c)?
                .map(codec::from_ms)
                .transpose()?)
        })
        .await
    }

    async fn rebuild_rollups(
        &self,
        range: Option<TimeRange>,
        opts: &RunOptions,
    ) -> Result<RunRecord> {
        let bounds = match range {
            None => None,
            Some(r) => Some((
                maintenance::whole_hour("range.start", r.start)?,
                maintenance::whole_hour("range.end", r.end)?,
            )),
        };
        let info = RunInfo {
            kind: RunKind::RebuildRollups,
            range,
            started_at: Utc::now(),
        };
        let opts = opts.clone();
        let ((), record) = self
            .maintain("rebuild_rollups", info, false, move |c| {
                maintenance::rebuild(c, bounds, &opts)
            })
            .await?;
        Ok(record)
    }

    async fn reprice(
        &self,
        range: Option<TimeRange>,
        catalog: &PriceCatalog,
        dry_run: bool,
        opts: &RunOptions,
    ) -> Result<(RepriceReport, RunRecord)> {
        let info = RunInfo {
            kind: RunKind::Reprice,
            range,
            started_at: Utc::now(),
        };
        let (catalog, opts) = (catalog.clone(), opts.clone());
        let bounds = range.as_ref().map(range_ms);
        // A dry run only reads, so it runs on a read connection and never blocks writers.
        self.maintain("reprice", info, dry_run, move |c| {
            maintenance::reprice(c, bounds, &catalog, dry_run, &opts)
        })
        .await
    }

    async fn purge(&self, before: DateTime<Utc>, opts: &RunOptions) -> Result<RunRecord> {
        let before_ms = maintenance::whole_hour("before", before)?;
        let range = Some(TimeRange {
            start: DateTime::<Utc>::MIN_UTC,
            end: before,
        });
        let info = RunInfo {
            kind: RunKind::Purge,
            range,
            started_at: Utc::now(),
        };
        let opts = opts.clone();
        let ((), record) = self
            .maintain("purge", info, false, move |c| {
                maintenance::purge(c, before_ms, &opts)
            })
            .await?;
        Ok(record)
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.read("runs", move |c| maintenance::runs(c, limit))
            .await
    }

    async fn close(&self) -> Result<()> {
        let inner = self.inner.clone();
        blocking("close", move || {
            inner.close();
            Ok(())
        })
        .await
    }
}
