//! `insert`: a batch of events and their rollup changes as ONE statement (so one round trip,
//! and atomic without an explicit transaction): the events go in through UNNEST, and
//! data-modifying CTEs add the rollups of exactly the rows that were new.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::Row;
use sqlx::postgres::{PgArguments, PgExecutor, Postgres};
use usage_core::Result;
use usage_core::event::UsageEvent;

use super::columns::{Array, bind_arrays, insert_arrays, insert_sql};
use super::db_err;
use super::rollup::{add_events_sql, add_tags_sql};
use crate::rollups::{DERIVED, EVENTS};

/// The CTEs of an insert, `ins AS (…), …`, for a `WITH`: `ins` holds the rows actually
/// inserted (a duplicate id is skipped by ON CONFLICT and so adds nothing anywhere), `tag_rows`
/// one row per (new event, tag), summed into `rollup_tags`. Tags are stored only in the
/// event's JSONB (raw reads filter and group on `tags ->> key`). Events are inserted only where `gate` (a condition on other
/// CTEs, `TRUE` for a plain insert) holds. The statement's parameters start with the event
/// arrays ([`Batch::bind`]).
///
/// Locks are taken in one order by every insert: event ids in the batch's (sorted) order, then
/// rollup cells sorted by key (the GROUP BY … ORDER BY makes each upsert read all of `ins`
/// first). Two inserts racing on overlapping ids or cells therefore wait for each other
/// instead of deadlocking.
pub(super) fn insert_ctes(gate: &str) -> String {
    format!(
        "ins AS ({events} RETURNING *), \
         tag_rows AS (SELECT e.*, t.key AS tag_key, t.value AS tag_value \
                      FROM ins e CROSS JOIN LATERAL jsonb_each_text(e.tags) AS t(key, value)), \
         new_cells AS ({cells}), \
         new_tag_cells AS ({tag_cells}){derived}",
        events = insert_sql(gate),
        cells = add_events_sql(&EVENTS, "ins e", "TRUE"),
        derived = DERIVED
            .iter()
            .map(|t| format!(
                ", new_{} AS ({})",
                t.name,
                add_events_sql(t, "ins e", "TRUE")
            ))
            .collect::<String>(),
        tag_cells = add_tags_sql("tag_rows e", "e.tag_key", "e.tag_value", "TRUE"),
    )
}

static INSERT: LazyLock<String> =
    LazyLock::new(|| format!("WITH {} SELECT id FROM ins", insert_ctes("TRUE")));

/// A batch ready to bind: each id's first event (the first one wins), sorted by id.
pub(super) struct Batch<'a> {
    events: &'a [UsageEvent],
    first: HashMap<&'a str, usize>,
    arrays: Vec<Array>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(events: &'a [UsageEvent]) -> Result<Batch<'a>> {
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            first.entry(e.id.as_str()).or_insert(i);
        }
        let mut unique: Vec<&UsageEvent> = first.values().map(|&i| &events[i]).collect();
        unique.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let arrays = insert_arrays(unique.iter().copied())?;
        Ok(Batch {
            events,
            first,
            arrays,
        })
    }

    /// Binds the event arrays, the first parameters of [`insert_ctes`].
    pub(super) fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        bind_arrays(q, &self.arrays)
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
pub(super) async fn insert<'e>(
    db: impl PgExecutor<'e>,
    events: &[UsageEvent],
) -> Result<Vec<bool>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let batch = Batch::new(events)?;
    let rows = batch
        .bind(sqlx::query(INSERT.as_str()))
        .fetch_all(db)
        .await
        .map_err(db_err("insert"))?;
    let inserted = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<HashSet<_>, _>>()
        .map_err(db_err("insert"))?;
    Ok(batch.stored(&inserted))
}
