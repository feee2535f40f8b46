//! Writing events and keeping the rollups in step: a batch's rollup changes are summed per
//! cell in memory first (the derived tables' cells from the base cells), then each cell is
//! written once, in primary-key order.

use std::sync::LazyLock;

use rusqlite::{Connection, ToSql, TransactionBehavior};
use rust_decimal::Decimal;
use usage_core::event::UsageEvent;
use usage_core::query::TimeRange;
use usage_core::quota::Quota;

use super::codec::{EVENT_COLS, EventRow, TOTALS_COLS};
use super::{Fail, counters, ids};

use crate::rollups::{BatchCells, DERIVED, Deltas, EVENTS, Sums};
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

/// Writes every cell of `cells`.
pub(super) fn apply(cells: &BatchCells<'_>, conn: &Connection) -> Result<(), Fail> {
    EVENTS_SQL.add_all(conn, cells.events.iter(), |k| {
        vec![&k.0, &k.1, &k.2, &k.3, &k.4]
    })?;
    for (table, sql) in cells.derived.iter().zip(DERIVED_SQL.iter()) {
        sql.add_all(conn, table.iter(), |(t, keys)| {
            std::iter::once(t as &dyn ToSql)
                .chain(keys.iter().map(|k| k as &dyn ToSql))
                .collect()
        })?;
    }
    TAGS_SQL.add_all(conn, cells.tags.iter().map(|(k, s)| (k, s)), |k| {
        vec![&k.0, &k.1, &k.2, &k.3]
    })?;
    Ok(())
}

/// Inserts a batch in one write transaction; per event, true when it was new. (The store
/// itself always goes through [`insert_and_read`].)
#[cfg(test)]
pub(super) fn insert(conn: &mut Connection, events: &[UsageEvent]) -> Result<Vec<bool>, Fail> {
    let batch = Batch::new(events)?;
    Ok(insert_and_read(conn, &batch, &[])?.0)
}

/// Inserts a batch in one write transaction (per event, true when it was new) and reads, in
/// the same transaction, the usage of every quota of `watch` ([`counters::used_for_update`]: a
/// counter missing there is created, so that the next read of it is one row).
pub(super) fn insert_and_read(
    conn: &mut Connection,
    batch: &Batch<'_>,
    watch: &[(Quota, TimeRange)],
) -> Result<(Vec<bool>, Vec<Decimal>), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let inserted = insert_rows(&tx, batch)?;
    let used = counters::used_all_for_update(&tx, watch)?;
    tx.commit()?;
    Ok((inserted, used))
}

/// A batch of events checked and laid out for writing: as much of the work as needs no
/// database, done before the write lock is taken, so that while one batch is written the
/// next is prepared on another thread (the batched writer runs two writes at once).
pub(super) struct Batch<'a> {
    rows: Vec<EventRow<'a>>,
    ids: ids::Lookup<'a>,
    /// The rollup cells of the whole batch: what is written when every event is new.
    cells: BatchCells<'a>,
}

impl<'a> Batch<'a> {
    /// Converts and checks `events`.
    pub(super) fn new(events: &'a [UsageEvent]) -> usage_core::Result<Batch<'a>> {
        let rows: Vec<EventRow<'a>> = events.iter().map(EventRow::new).collect::<Result<_, _>>()?;
        Ok(Batch {
            ids: ids::Lookup::new(events.iter().map(|e| e.id.as_str()).collect()),
            cells: cells_of(&rows),
            rows,
        })
    }
}

/// The rollup cells that `rows` add.
fn cells_of<'a, 'r>(rows: impl IntoIterator<Item = &'r EventRow<'a>>) -> BatchCells<'a>
where
    'a: 'r,
{
    let mut deltas = Deltas::default();
    for r in rows {
        deltas.add(r.e, r.ts_ms, &r.sums, 1);
    }
    deltas.cells()
}

/// Writes a checked batch, its rollup changes and its quota counters inside the caller's
/// write transaction (also used by `commit_reservation`); per event, true when it was new.
pub(super) fn insert_rows(tx: &Connection, batch: &Batch<'_>) -> Result<Vec<bool>, Fail> {
    let stored = batch.ids.stored(tx)?;
    let mut inserted = Vec::with_capacity(batch.rows.len());
    let mut ins = tx.prepare_cached(&INSERT_EVENT)?;
    let mut new_rows = Vec::with_capacity(batch.rows.len());
    let mut pairs = Vec::with_capacity(batch.rows.len());
    for ((r, (h, repeated)), &stored) in batch.rows.iter().zip(batch.ids.iter()).zip(&stored) {
        let new = !stored && !repeated;
        if new {
            r.bind(&mut ins)?;
            ins.raw_execute()?;
            pairs.push((h, tx.last_insert_rowid()));
            new_rows.push(r);
        }
        inserted.push(new);
    }
    ids::add(tx, &mut pairs)?;
    if new_rows.len() == batch.rows.len() {
        apply(&batch.cells, tx)?;
    } else {
        // Some were stored already: only the new ones count.
        apply(&cells_of(new_rows.iter().copied()), tx)?;
    }
    counters::add_events(tx, &new_rows)?;
    let seqs = pairs.iter().map(|&(_, seq)| seq);
    if let (Some(first), Some(last)) = (seqs.clone().min(), seqs.max()) {
        ids::merge_if_due(tx, first, last)?;
    }
    Ok(inserted)
}
