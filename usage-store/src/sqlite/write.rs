//! Writing events and keeping the rollups in step: a batch's rollup changes are summed per
//! cell in memory first (the derived tables' cells from the base cells), then each cell is
//! written once, in primary-key order.

use std::collections::HashSet;
use std::sync::LazyLock;

use rusqlite::{Connection, ToSql, TransactionBehavior};
use rust_decimal::Decimal;
use usage_core::event::UsageEvent;
use usage_core::query::TimeRange;
use usage_core::quota::Quota;

use super::codec::{EVENT_COLS, EventRow, TOTALS_COLS};
use super::{Fail, counters, ids};

use crate::rollups::{DERIVED, Deltas, EVENTS, Sums, derive};
pub(super) use crate::rollups::{HOUR_MS, floor_sql, floor_to};

const TAG_KEYS: [&str; 3] = ["key", "value", "user_id"];

/// The statements that maintain one rollup table. They share their numbering: the key
/// columns are `?1…?k`, the sums `?k+1…`.
struct TableSql {
    upsert: String,
    delete_empty: String,
}

impl TableSql {
    fn new(table: &str, time_col: &str, keys: &[&str]) -> TableSql {
        let key_cols: Vec<&str> = std::iter::once(time_col)
            .chain(keys.iter().copied())
            .collect();
        let key_match = key_cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sets = TOTALS_COLS
            .iter()
            .map(|c| format!("{c} = {c} + excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cols: Vec<&str> = key_cols.iter().copied().chain(TOTALS_COLS).collect();
        let marks = (1..=cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        TableSql {
            upsert: format!(
                "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT ({}) DO UPDATE SET {sets}",
                cols.join(", "),
                key_cols.join(", ")
            ),
            delete_empty: format!("DELETE FROM {table} WHERE {key_match} AND requests = 0"),
        }
    }

    /// Adds each of `cells` to its cell: creating it when absent (one b-tree descent either
    /// way) and dropping it when a removal leaves it with no requests. The upsert is prepared
    /// once for all of them.
    fn add_all<'k, K: 'k>(
        &self,
        conn: &Connection,
        cells: impl Iterator<Item = (&'k K, &'k Sums)>,
        keys: impl Fn(&'k K) -> Vec<&'k dyn ToSql>,
    ) -> Result<(), Fail> {
        let mut upsert = conn.prepare_cached(&self.upsert)?;
        for (k, sums) in cells {
            if sums.is_zero() {
                continue;
            }
            let keys = keys(k);
            for (i, k) in keys.iter().enumerate() {
                upsert.raw_bind_parameter(i + 1, k)?;
            }
            for (i, v) in sums.0.iter().enumerate() {
                upsert.raw_bind_parameter(keys.len() + 1 + i, v)?;
            }
            upsert.raw_execute()?;
            if sums.requests() < 0 {
                let mut delete = conn.prepare_cached(&self.delete_empty)?;
                for (i, k) in keys.iter().enumerate() {
                    delete.raw_bind_parameter(i + 1, k)?;
                }
                delete.raw_execute()?;
            }
        }
        Ok(())
    }
}

static EVENTS_SQL: LazyLock<TableSql> =
    LazyLock::new(|| TableSql::new(EVENTS.name, EVENTS.time_col, EVENTS.keys));
static DERIVED_SQL: LazyLock<Vec<TableSql>> = LazyLock::new(|| {
    DERIVED
        .iter()
        .map(|t| TableSql::new(t.name, t.time_col, t.keys))
        .collect()
});
static TAGS_SQL: LazyLock<TableSql> =
    LazyLock::new(|| TableSql::new("rollup_tags", "hour_ms", &TAG_KEYS));

static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| {
    let marks: Vec<String> = (1..=EVENT_COLS.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO events ({}) VALUES ({})",
        EVENT_COLS.join(", "),
        marks.join(", ")
    )
});

/// Writes every change of `deltas`, the derived tables' too.
pub(super) fn apply(deltas: &Deltas<'_>, conn: &Connection) -> Result<(), Fail> {
    let events = deltas.events();
    EVENTS_SQL.add_all(conn, events.iter(), |k| vec![&k.0, &k.1, &k.2, &k.3, &k.4])?;
    for (table, sql) in DERIVED.iter().zip(DERIVED_SQL.iter()) {
        let cells = derive(table, &events);
        sql.add_all(conn, cells.iter(), |(t, keys)| {
            std::iter::once(t as &dyn ToSql)
                .chain(keys.iter().map(|k| k as &dyn ToSql))
                .collect()
        })?;
    }
    let tags = deltas.tags();
    TAGS_SQL.add_all(conn, tags.iter().map(|(k, s)| (k, s)), |k| {
        vec![&k.0, &k.1, &k.2, &k.3]
    })?;
    Ok(())
}

/// Inserts a batch in one write transaction; per event, true when it was new. (The store
/// itself always goes through [`insert_and_read`].)
#[cfg(test)]
pub(super) fn insert(conn: &mut Connection, events: &[UsageEvent]) -> Result<Vec<bool>, Fail> {
    Ok(insert_and_read(conn, events, &[])?.0)
}

/// Inserts a batch in one write transaction (per event, true when it was new) and reads, in
/// the same transaction, the usage of every quota of `watch` ([`counters::used_for_update`]: a
/// counter missing there is created, so that the next read of it is one row).
pub(super) fn insert_and_read(
    conn: &mut Connection,
    events: &[UsageEvent],
    watch: &[(Quota, TimeRange)],
) -> Result<(Vec<bool>, Vec<Decimal>), Fail> {
    let rows = event_rows(events)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let inserted = insert_rows(&tx, &rows)?;
    let used = counters::used_all_for_update(&tx, watch)?;
    tx.commit()?;
    Ok((inserted, used))
}

/// Converts and checks a batch, before any transaction starts.
pub(super) fn event_rows(events: &[UsageEvent]) -> usage_core::Result<Vec<EventRow<'_>>> {
    events.iter().map(EventRow::new).collect()
}

/// Writes checked events, their rollup changes and their quota counters inside the caller's
/// write transaction (also used by `commit_reservation`); per event, true when it was new.
pub(super) fn insert_rows(tx: &Connection, rows: &[EventRow<'_>]) -> Result<Vec<bool>, Fail> {
    let ids: Vec<&str> = rows.iter().map(|r| r.e.id.as_str()).collect();
    let hashes: Vec<i64> = ids.iter().map(|id| ids::hash(id)).collect();
    let stored = ids::stored(tx, &ids, &hashes)?;
    // Ids of this batch seen so far: a repeat is a duplicate (the first one wins).
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
    let mut inserted = Vec::with_capacity(rows.len());
    let mut ins = tx.prepare_cached(&INSERT_EVENT)?;
    let mut deltas = Deltas::default();
    let mut new_rows = Vec::with_capacity(rows.len());
    let mut pairs = Vec::with_capacity(rows.len());
    for (((r, &id), &h), &stored) in rows.iter().zip(&ids).zip(&hashes).zip(&stored) {
        let new = !stored && seen.insert(id);
        if new {
            r.bind(&mut ins)?;
            ins.raw_execute()?;
            pairs.push((h, tx.last_insert_rowid()));
            deltas.add(r.e, r.ts_ms, &r.sums, 1);
            new_rows.push(r);
        }
        inserted.push(new);
    }
    ids::add(tx, &mut pairs)?;
    apply(&deltas, tx)?;
    counters::add_events(tx, &new_rows)?;
    let seqs = pairs.iter().map(|&(_, seq)| seq);
    if let (Some(first), Some(last)) = (seqs.clone().min(), seqs.max()) {
        ids::merge_if_due(tx, first, last)?;
    }
    Ok(inserted)
}
