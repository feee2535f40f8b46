//! `insert`: a batch of events, their tags and their rollup changes as ONE statement (so one
//! round trip, and atomic without an explicit transaction): the events go in through UNNEST,
//! and data-modifying CTEs add the tags and the rollups of exactly the rows that were new.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::Row;
use sqlx::postgres::PgExecutor;
use usage_core::Result;
use usage_core::event::UsageEvent;

use super::columns::{bind_arrays, insert_arrays, insert_sql};
use super::db_err;
use super::rollup::{add_events_sql, add_tags_sql};
use crate::rollups::{DERIVED, EVENTS};

/// `ins` holds the rows actually inserted (a duplicate id is skipped by ON CONFLICT and so
/// adds nothing anywhere); `tag_rows` one row per (new event, tag).
///
/// Locks are taken in one order by every insert: event ids in the batch's (sorted) order, then
/// rollup cells sorted by key (the GROUP BY … ORDER BY makes each upsert read all of `ins`
/// first). Two inserts racing on overlapping ids or cells therefore wait for each other
/// instead of deadlocking.
static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ins AS ({events} RETURNING *), \
         tag_rows AS (SELECT e.*, t.key AS tag_key, t.value AS tag_value \
                      FROM ins e CROSS JOIN LATERAL jsonb_each_text(e.tags) AS t(key, value)), \
         new_tags AS (INSERT INTO event_tags (seq, key, value, ts_ms, user_id) \
                      SELECT seq, tag_key, tag_value, ts_ms, user_id FROM tag_rows), \
         new_cells AS ({cells}), \
         new_tag_cells AS ({tag_cells}){derived} \
         SELECT id FROM ins",
        events = insert_sql(),
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
});

/// Inserts `events`; true for each one stored, false for a duplicate id (already stored, or
/// earlier in the same batch: the first one wins). Runs on a pool, or on a transaction's
/// connection (a reservation's commit).
pub(super) async fn insert<'e>(
    db: impl PgExecutor<'e>,
    events: &[UsageEvent],
) -> Result<Vec<bool>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        first.entry(e.id.as_str()).or_insert(i);
    }
    let mut unique: Vec<&UsageEvent> = first.values().map(|&i| &events[i]).collect();
    unique.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let arrays = insert_arrays(unique.iter().copied())?;
    let rows = bind_arrays(sqlx::query(INSERT.as_str()), &arrays)
        .fetch_all(db)
        .await
        .map_err(db_err("insert"))?;
    let inserted = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<HashSet<_>, _>>()
        .map_err(db_err("insert"))?;
    Ok(events
        .iter()
        .enumerate()
        .map(|(i, e)| first[e.id.as_str()] == i && inserted.contains(e.id.as_str()))
        .collect())
}
