//! `insert`: a batch of events and the rollup changes of exactly the rows that were new, in one
//! transaction. A small batch is ONE statement, the events bound as arrays and UNNESTed, whose
//! data-modifying CTEs sum the new rows into the rollups (one round trip, atomic without an
//! explicit transaction). A large one is copied into a temporary table (`COPY`), inserted from
//! there returning the ids that were new, and its rollup changes are summed here, per cell
//! (the same [`Deltas`] SQLite writes), and added in one more statement: summing thousands of
//! rows per table in SQL (tag rows expanded from JSONB and sorted, the cells grouped again
//! for each derived table) cost the server more than the events themselves.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::postgres::{PgArguments, PgExecutor, PgPool, Postgres};
use sqlx::{Acquire, Row};
use usage_core::Result;
use usage_core::event::UsageEvent;

use super::columns::{
    bind_arrays, copy_rows, copy_staging_sql, create_staging_sql, insert_arrays, insert_sql,
    insert_staged_sql,
};
use super::db_err;
use super::rollup::{self, add_cells_sql, add_tags_sql, cells_sql};
use crate::rollups::{DERIVED, Deltas, EVENTS, Sums};

/// Batches of at least this many (distinct) events are copied into a staging table rather
/// than bound as arrays. The COPY pays a fixed ~40 ms on TCP connections (sqlx sends its end
/// as a separate small packet, which waits for the server's delayed ACK), so it wins only from
/// a few thousand events. On the bench machine (`store-bench`, batched writer, 300k-event
/// store) this path took enqueue from 26.7-30.0k to 33.5-37.4k events/s.
pub(super) const COPY_AT_LEAST: usize = 4_096;

/// The sort memory of a staged insert's transaction. At the server's default (4 MB) a
/// 20,000-event batch spills its sort by id to disk; this keeps it in memory (a batch of that
/// size needs ~15 MB). Set only inside the
/// transaction: a bound insert keeps its cached generic plan, which a changed `work_mem` would
/// trade for a slower custom one. JIT is turned off there too: the planner, seeing a large
/// staging table, costs the statement high enough to compile it, which took ~70 ms of a
/// ~450 ms statement and saved nothing.
const STAGED_WORK_MEM: &str = "64MB";

/// The CTEs of an insert, `ins AS (…), …`, for a `WITH`: `ins` holds the rows actually
/// inserted by `events_insert` ([`insert_sql`] or [`insert_staged_sql`]: a duplicate id is
/// skipped by ON CONFLICT and so adds nothing anywhere), `tag_rows` one row per (new event,
/// tag), summed into `rollup_tags`, and `cells` the new events' `rollup_events` cells, which
/// are added to `rollup_events` and summed again into each derived table (a few thousand cells
/// rather than every event once per table). Tags are stored only in the event's JSONB (raw
/// reads filter and group on `tags ->> key`). With [`insert_sql`], the statement's parameters
/// start with the event arrays ([`Batch::bind`]).
///
/// Locks are taken in one order by every insert: event ids in the batch's (sorted) order, then
/// rollup cells sorted by key (the GROUP BY … ORDER BY makes each upsert read all of `ins`
/// first). Two inserts racing on overlapping ids or cells therefore wait for each other
/// instead of deadlocking.
pub(super) fn insert_ctes(events_insert: &str) -> String {
    format!(
        "ins AS ({events_insert} RETURNING *), \
         tag_rows AS (SELECT e.*, t.key AS tag_key, t.value AS tag_value \
                      FROM ins e CROSS JOIN LATERAL jsonb_each_text(e.tags) AS t(key, value)), \
         cells AS ({cells}), \
         new_cells AS ({add_cells}), \
         new_tag_cells AS ({tag_cells}){derived}",
        cells = cells_sql("ins e"),
        add_cells = add_cells_sql(&EVENTS, "cells r"),
        derived = DERIVED
            .iter()
            .map(|t| format!(", new_{} AS ({})", t.name, add_cells_sql(t, "cells r")))
            .collect::<String>(),
        tag_cells = add_tags_sql("tag_rows e", "e.tag_key", "e.tag_value", "TRUE"),
    )
}

static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {} SELECT id FROM ins",
        insert_ctes(&insert_sql("TRUE"))
    )
});

static INSERT_STAGED: LazyLock<String> =
    LazyLock::new(|| format!("{} RETURNING id", insert_staged_sql("TRUE")));

static BEGIN_STAGED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SET LOCAL work_mem = '{STAGED_WORK_MEM}'; SET LOCAL jit = off; {}",
        create_staging_sql()
    )
});
static COPY_STAGING: LazyLock<String> = LazyLock::new(copy_staging_sql);

/// A batch ready to bind or copy: each id's first event (the first one wins), sorted by id.
pub(super) struct Batch<'a> {
    events: &'a [UsageEvent],
    first: HashMap<&'a str, usize>,
    unique: Vec<&'a UsageEvent>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(events: &'a [UsageEvent]) -> Result<Batch<'a>> {
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            first.entry(e.id.as_str()).or_insert(i);
        }
        let mut unique: Vec<&UsageEvent> = first.values().map(|&i| &events[i]).collect();
        unique.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(Batch {
            events,
            first,
            unique,
        })
    }

    /// Binds the event arrays, the first parameters of [`insert_ctes`] over [`insert_sql`].
    pub(super) fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> Result<sqlx::query::Query<'q, Postgres, PgArguments>> {
        Ok(bind_arrays(q, &insert_arrays(self.unique.iter().copied())?))
    }

    /// The events as COPY text rows, in id order.
    fn copy_rows(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.unique.len() * 512);
        copy_rows(self.unique.iter().copied(), &mut out)?;
        Ok(out)
    }

    /// True for each event stored, given the ids `ins` returned; false for a duplicate id
    /// (already stored, or earlier in the same batch).
    pub(super) fn stored(&self, inserted: &HashSet<String>) -> Vec<bool> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, e)| self.first[e.id.as_str()] == i && inserted.contains(e.id.as_str()))
            .collect()
    }
}

/// Inserts `events`; true for each one stored, false for a duplicate id (already stored, or
/// earlier in the same batch: the first one wins).
pub(super) async fn insert(pool: &PgPool, events: &[UsageEvent]) -> Result<Vec<bool>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let batch = Batch::new(events)?;
    let inserted = if batch.unique.len() < COPY_AT_LEAST {
        insert_bound(pool, &batch).await?
    } else {
        insert_copied(pool, &batch).await?
    };
    Ok(batch.stored(&inserted))
}

/// The ids `ins` returned.
fn ids(rows: &[sqlx::postgres::PgRow]) -> Result<HashSet<String>> {
    rows.iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<HashSet<_>, _>>()
        .map_err(db_err("insert"))
}

/// One statement, the events bound as arrays.
async fn insert_bound<'e>(db: impl PgExecutor<'e>, batch: &Batch<'_>) -> Result<HashSet<String>> {
    let rows = batch
        .bind(sqlx::query(INSERT.as_str()))?
        .fetch_all(db)
        .await
        .map_err(db_err("insert"))?;
    ids(&rows)
}

/// One transaction: its `work_mem` raised and the staging table made sure of, the events
/// copied into it and inserted from there, then the new ones' rollup changes added. The commit
/// empties the staging table; a failure anywhere rolls all of it back.
async fn insert_copied(pool: &PgPool, batch: &Batch<'_>) -> Result<HashSet<String>> {
    let data = batch.copy_rows()?;
    let sums = batch
        .unique
        .iter()
        .map(|e| Sums::of_event(e))
        .collect::<Result<Vec<_>>>()?;
    let mut conn = pool.acquire().await.map_err(db_err("insert"))?;
    let mut tx = conn.begin().await.map_err(db_err("insert"))?;
    sqlx::raw_sql(BEGIN_STAGED.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err("insert"))?;
    let mut copy = tx
        .copy_in_raw(COPY_STAGING.as_str())
        .await
        .map_err(db_err("insert"))?;
    if let Err(e) = copy.send(data).await {
        // Ends the COPY so the connection stays usable; the transaction then rolls back.
        let _ = copy.abort(e.to_string()).await;
        return Err(db_err("insert")(e));
    }
    copy.finish().await.map_err(db_err("insert"))?;
    let rows = sqlx::query(INSERT_STAGED.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("insert"))?;
    let inserted = ids(&rows)?;
    let mut deltas = Deltas::default();
    for (e, s) in batch.unique.iter().zip(&sums) {
        if inserted.contains(e.id.as_str()) {
            deltas.add(e, e.timestamp.timestamp_millis(), s, 1);
        }
    }
    rollup::apply(&mut tx, &deltas, true).await?;
    tx.commit().await.map_err(db_err("insert"))?;
    Ok(inserted)
}
