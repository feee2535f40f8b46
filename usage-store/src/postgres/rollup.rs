//! The hourly rollups: the sum columns (one per [`Totals`] field), the SQL that sums raw events
//! or rollup rows into them (inserts and rebuilds), and [`Delta`], the signed changes a
//! reprice makes, pre-aggregated in Rust and upserted in key order.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use usage_core::event::UsageEvent;
use usage_core::query::Totals;
use usage_core::{Error, Result, Usd};

use super::columns::{int, nanos};
use super::{BACKEND, db_err};
use crate::rollups::RollupTable;

pub(super) const HOUR_MS: i64 = 3_600_000;

/// The sum columns of both rollup tables, in [`Totals`] field order.
pub(super) const SUM_COLUMNS: [&str; 21] = crate::TOTALS_COLUMNS;

/// Signed sums in [`SUM_COLUMNS`] order (signed: a reprice subtracts old costs).
type Sums = [i64; 21];

/// The 21 sum expressions over raw `events` aliased `e`, exactly [`Totals::of`] summed:
/// unpriced counts NULL costs, and NULL costs and latencies add nothing.
pub(super) static RAW_SUM_EXPRS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut parts = vec![
        "COUNT(*)".to_owned(),
        "COUNT(*) FILTER (WHERE e.status = 'error')".to_owned(),
        "COUNT(*) FILTER (WHERE e.cost_total IS NULL)".to_owned(),
    ];
    for c in &SUM_COLUMNS[3..18] {
        parts.push(format!("COALESCE(SUM(e.{c}), 0)::BIGINT"));
    }
    parts.push("COALESCE(SUM(e.latency_ms), 0)::BIGINT".to_owned());
    parts.push("COUNT(e.latency_ms)".to_owned());
    parts.push("COALESCE(SUM(e.duration_ms), 0)::BIGINT".to_owned());
    parts
});

/// The 21 sum expressions over rollup rows aliased `r`.
pub(super) static ROLLUP_SUM_EXPRS: LazyLock<Vec<String>> = LazyLock::new(|| {
    SUM_COLUMNS
        .iter()
        .map(|c| format!("SUM(r.{c})::BIGINT"))
        .collect()
});

/// [`RAW_SUM_EXPRS`] as one select list.
pub(super) static RAW_SUMS: LazyLock<String> = LazyLock::new(|| RAW_SUM_EXPRS.join(", "));

/// [`ROLLUP_SUM_EXPRS`] as one select list.
pub(super) static ROLLUP_SUMS: LazyLock<String> = LazyLock::new(|| ROLLUP_SUM_EXPRS.join(", "));

/// `exprs` with every sum but those at `keep` replaced by a constant 0: the 21 columns
/// [`totals_from_row`] reads, computing only what is needed.
pub(super) fn only_sums(exprs: &[String], keep: &[usize]) -> String {
    exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if keep.contains(&i) {
                e.as_str()
            } else {
                "0::BIGINT"
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `expr` floored to a multiple of `grain` (works for negative values, unlike `/`).
pub(super) fn floor_to(expr: &str, grain: &str) -> String {
    format!("({expr} - (({expr} % {grain}) + {grain}) % {grain})")
}

/// `col = table.col + EXCLUDED.col` for every sum column: what an upsert adds.
fn add_sets(table: &str) -> String {
    SUM_COLUMNS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds the raw events `from` (aliased `e`) passing `filter` into the rollup table `t`
/// (`rollup_events` or one derived from it), with the same sum expressions raw aggregates use
/// ([`RAW_SUMS`]), so rollups equal raw sums by construction. Cells are upserted in key order:
/// concurrent writers lock them in the same order and cannot deadlock.
pub(super) fn add_events_sql(t: &RollupTable, from: &str, filter: &str) -> String {
    sum_into_sql(
        t,
        from,
        filter,
        "e.ts_ms",
        |k| match k {
            "user_id" => "COALESCE(e.user_id, '')".to_owned(),
            k => format!("e.{k}"),
        },
        &RAW_SUMS,
    )
}

/// `SELECT` of the `rollup_events` cells of the raw events `from` (aliased `e`): the key
/// columns and the sum columns under their own names, one row per cell, for
/// [`add_cells_sql`] to add to `rollup_events` and to the tables derived from it.
pub(super) fn cells_sql(from: &str) -> String {
    let sums = RAW_SUM_EXPRS
        .iter()
        .zip(SUM_COLUMNS)
        .map(|(e, c)| format!("{e} AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {hour} AS hour_ms, COALESCE(e.user_id, '') AS user_id, e.provider, e.model_key, \
         e.status, {sums} FROM {from} GROUP BY 1, 2, 3, 4, 5",
        hour = floor_to("e.ts_ms", &HOUR_MS.to_string()),
    )
}

/// Adds `rollup_events` cells `from` (aliased `r`, as [`cells_sql`] selects them) into `t`,
/// `rollup_events` itself or a table derived from it; in key order, as [`add_events_sql`].
/// Summing a batch's cells rather than its events again: a few thousand rows instead of
/// tens of thousands for each derived table.
pub(super) fn add_cells_sql(t: &RollupTable, from: &str) -> String {
    sum_into_sql(
        t,
        from,
        "TRUE",
        "r.hour_ms",
        |k| format!("r.{k}"),
        &ROLLUP_SUMS,
    )
}

/// Upserts into `t` the cells of the rows `from` passing `filter`, grouped by the period of
/// `time` (ms) and each key column as `key` gives it, summed with `sums`, in key order.
fn sum_into_sql(
    t: &RollupTable,
    from: &str,
    filter: &str,
    time: &str,
    key: impl Fn(&str) -> String,
    sums: &str,
) -> String {
    let keys = t.keys.join(", ");
    let exprs = t.keys.iter().map(|k| key(k)).collect::<Vec<_>>().join(", ");
    let n = (1..=t.keys.len() + 1)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} ({time_col}, {keys}, {cols}) \
         SELECT {period}, {exprs}, {sums} \
         FROM {from} WHERE {filter} GROUP BY {n} ORDER BY {n} \
         ON CONFLICT ({time_col}, {keys}) DO UPDATE SET {sets}",
        table = t.name,
        time_col = t.time_col,
        cols = SUM_COLUMNS.join(", "),
        period = floor_to(time, &t.step_ms.to_string()),
        sets = add_sets(t.name),
    )
}

/// Like [`add_events_sql`] for `rollup_tags`: `from` yields one row per (event `e`, tag), the
/// tag's key and value being the expressions `key` and `value`.
pub(super) fn add_tags_sql(from: &str, key: &str, value: &str, filter: &str) -> String {
    format!(
        "INSERT INTO rollup_tags (hour_ms, key, value, user_id, {cols}) \
         SELECT {hour}, {key}, {value}, COALESCE(e.user_id, ''), {sums} \
         FROM {from} WHERE {filter} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 \
         ON CONFLICT (hour_ms, key, value, user_id) DO UPDATE SET {sets}",
        cols = SUM_COLUMNS.join(", "),
        hour = floor_to("e.ts_ms", &HOUR_MS.to_string()),
        sums = RAW_SUMS.as_str(),
        sets = add_sets("rollup_tags"),
    )
}

/// `(hour_ms, user_id, provider, model_key, status)`, with no user stored as `''`.
type EventCell = (i64, String, String, String, &'static str);
/// `(hour_ms, key, value, user_id)`.
type TagCell = (i64, String, String, String);

fn sums_of(t: &Totals) -> Result<Sums> {
    let n = |field: &str, v: u64| int(field, v);
    let usd = |field: &str, v: Usd| nanos(field, v);
    Ok([
        n("requests", t.requests)?,
        n("errors", t.errors)?,
        n("unpriced", t.unpriced)?,
        n("input", t.input)?,
        n("cache_read", t.cache_read)?,
        n("cache_write_5m", t.cache_write_5m)?,
        n("cache_write_1h", t.cache_write_1h)?,
        n("output", t.output)?,
        n("reasoning", t.reasoning)?,
        n("web_search_requests", t.web_search_requests)?,
        n("web_fetch_requests", t.web_fetch_requests)?,
        usd("cost_input", t.cost_input)?,
        usd("cost_cache_read", t.cost_cache_read)?,
        usd("cost_cache_write_5m", t.cost_cache_write_5m)?,
        usd("cost_cache_write_1h", t.cost_cache_write_1h)?,
        usd("cost_output", t.cost_output)?,
        usd("cost_web_search", t.cost_web_search)?,
        usd("cost_total", t.cost_total)?,
        n("latency_sum_ms", t.latency_sum_ms)?,
        n("latency_count", t.latency_count)?,
        n("duration_sum_ms", t.duration_sum_ms)?,
    ])
}

/// Reads the 21 sums starting at column `first` of an aggregate row.
pub(super) fn totals_from_row(row: &PgRow, first: usize) -> Result<Totals> {
    let mut s = [0i64; 21];
    for (i, v) in s.iter_mut().enumerate() {
        *v = row
            .try_get(first + i)
            .map_err(|e| Error::store(BACKEND, "read", e))?;
    }
    let n = |i: usize| {
        u64::try_from(s[i]).map_err(|_| {
            Error::store(
                BACKEND,
                "read",
                format!("sum of {} is negative ({})", SUM_COLUMNS[i], s[i]),
            )
        })
    };
    let usd = |i: usize| Usd::from_nanos(s[i].into());
    Ok(Totals {
        requests: n(0)?,
        errors: n(1)?,
        unpriced: n(2)?,
        input: n(3)?,
        cache_read: n(4)?,
        cache_write_5m: n(5)?,
        cache_write_1h: n(6)?,
        output: n(7)?,
        reasoning: n(8)?,
        web_search_requests: n(9)?,
        web_fetch_requests: n(10)?,
        cost_input: usd(11),
        cost_cache_read: usd(12),
        cost_cache_write_5m: usd(13),
        cost_cache_write_1h: usd(14),
        cost_output: usd(15),
        cost_web_search: usd(16),
        cost_total: usd(17),
        latency_sum_ms: n(18)?,
        latency_count: n(19)?,
        duration_sum_ms: n(20)?,
    })
}

fn add_into(into: &mut Sums, s: &Sums, sign: i64) -> Result<()> {
    for (a, b) in into.iter_mut().zip(s) {
        *a = b
            .checked_mul(sign)
            .and_then(|b| a.checked_add(b))
            .ok_or_else(|| Error::store(BACKEND, "rollup", "a rollup sum overflowed 64 bits"))?;
    }
    Ok(())
}

/// Signed changes to both rollup tables, keyed (and so sorted) by cell. Only reprices use it,
/// under table locks that keep inserts out, so its (bytewise) cell order need not match the
/// (collation) order inserts lock cells in.
#[derive(Debug, Default)]
pub(super) struct Delta {
    events: BTreeMap<EventCell, Sums>,
    tags: BTreeMap<TagCell, Sums>,
}

static UPSERT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    upsert_sql(
        "rollup_events",
        &["hour_ms", "user_id", "provider", "model_key", "status"],
    )
});
static UPSERT_TAGS: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rollup_tags", &["hour_ms", "key", "value", "user_id"]));

fn upsert_sql(table: &str, keys: &[&str]) -> String {
    let types = keys
        .iter()
        .map(|k| if *k == "hour_ms" { "bigint" } else { "text" })
        .chain(SUM_COLUMNS.iter().map(|_| "bigint"));
    let params: Vec<String> = types
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let cols: Vec<&str> = keys.iter().copied().chain(SUM_COLUMNS).collect();
    format!(
        "INSERT INTO {table} ({cols}) SELECT * FROM UNNEST({params}) ON CONFLICT ({keys}) DO UPDATE SET {sets}",
        cols = cols.join(", "),
        params = params.join(", "),
        keys = keys.join(", "),
        sets = add_sets(table),
    )
}

/// Binds the sum arrays of `cells` after the key arrays.
fn bind_sums<'q, K>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    cells: &BTreeMap<K, Sums>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for i in 0..SUM_COLUMNS.len() {
        q = q.bind(cells.values().map(|s| s[i]).collect::<Vec<i64>>());
    }
    q
}

impl Delta {
    /// Adds (`sign` 1) or removes (`sign` -1) one event's totals in its cells.
    pub(super) fn add(&mut self, e: &UsageEvent, sign: i64) -> Result<()> {
        let sums = sums_of(&Totals::of(e))?;
        let hour = e.timestamp.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
        let user = e.user_id.clone().unwrap_or_default();
        let cell = (
            hour,
            user.clone(),
            e.provider.clone(),
            e.model_key().to_owned(),
            e.status.as_str(),
        );
        add_into(self.events.entry(cell).or_default(), &sums, sign)?;
        for (k, v) in &e.tags {
            add_into(
                self.tags
                    .entry((hour, k.clone(), v.clone(), user.clone()))
                    .or_default(),
                &sums,
                sign,
            )?;
        }
        Ok(())
    }

    /// Upserts the changes, cells in key order. Cells whose changes cancel out are skipped.
    pub(super) async fn apply(mut self, conn: &mut PgConnection) -> Result<()> {
        self.events.retain(|_, s| s.iter().any(|v| *v != 0));
        self.tags.retain(|_, s| s.iter().any(|v| *v != 0));
        if !self.events.is_empty() {
            let c = &self.events;
            let q = sqlx::query(UPSERT_EVENTS.as_str())
                .bind(c.keys().map(|k| k.0).collect::<Vec<i64>>())
                .bind(c.keys().map(|k| k.1.as_str()).collect::<Vec<&str>>())
                .bind(c.keys().map(|k| k.2.as_str()).collect::<Vec<&str>>())
                .bind(c.keys().map(|k| k.3.as_str()).collect::<Vec<&str>>())
                .bind(c.keys().map(|k| k.4).collect::<Vec<&str>>());
            bind_sums(q, c)
                .execute(&mut *conn)
                .await
                .map_err(db_err("update rollups"))?;
        }
        if !self.tags.is_empty() {
            let c = &self.tags;
            let q = sqlx::query(UPSERT_TAGS.as_str())
                .bind(c.keys().map(|k| k.0).collect::<Vec<i64>>())
                .bind(c.keys().map(|k| k.1.as_str()).collect::<Vec<&str>>())
                .bind(c.keys().map(|k| k.2.as_str()).collect::<Vec<&str>>())
                .bind(c.keys().map(|k| k.3.as_str()).collect::<Vec<&str>>());
            bind_sums(q, c)
                .execute(&mut *conn)
                .await
                .map_err(db_err("update rollups"))?;
        }
        Ok(())
    }
}
