//! The hourly rollups: the sum columns (one per [`Totals`] field), the SQL that sums raw events
//! or rollup rows into them (small inserts and rebuilds), and [`apply`], which adds changes
//! summed in Rust ([`Deltas`]: large inserts and reprices), cells upserted in key order.

use std::sync::LazyLock;

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use usage_core::query::Totals;
use usage_core::{Error, Result};

use super::{BACKEND, db_err};
use crate::rollups::{DERIVED, Deltas, EVENTS, RollupTable, Sums, derive};

pub(super) const HOUR_MS: i64 = 3_600_000;

/// The sum columns of both rollup tables, in [`Totals`] field order.
pub(super) const SUM_COLUMNS: [&str; 21] = crate::TOTALS_COLUMNS;

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

/// Reads the 21 sums starting at column `first` of an aggregate row.
pub(super) fn totals_from_row(row: &PgRow, first: usize) -> Result<Totals> {
    let mut s = [0i64; 21];
    for (i, v) in s.iter_mut().enumerate() {
        *v = row
            .try_get(first + i)
            .map_err(|e| Error::store(BACKEND, "read", e))?;
    }
    // Counts, tokens and milliseconds are never negative in a consistent store (money may be,
    // after a reprice): say so rather than show a wrong figure.
    let money = 11..=17;
    if let Some(i) = (0..s.len()).find(|i| !money.contains(i) && s[*i] < 0) {
        return Err(Error::store(
            BACKEND,
            "read",
            format!("sum of {} is negative ({})", SUM_COLUMNS[i], s[i]),
        ));
    }
    Ok(Sums(s).to_totals())
}

/// Key arrays then sum arrays of one table's cells, for an [`upsert_sql`] statement: the
/// period start, each key column, then the 21 sums. Cells whose changes cancel out are left
/// out.
struct Cells<'a> {
    periods: Vec<i64>,
    keys: Vec<Vec<&'a str>>,
    sums: Vec<Vec<i64>>,
}

impl<'a> Cells<'a> {
    fn new<'s, K: AsRef<[&'a str]>>(
        key_count: usize,
        cells: impl IntoIterator<Item = (i64, K, &'s Sums)>,
    ) -> Self {
        let mut out = Cells {
            periods: Vec::new(),
            keys: vec![Vec::new(); key_count],
            sums: vec![Vec::new(); SUM_COLUMNS.len()],
        };
        for (period, keys, sums) in cells.into_iter().filter(|c| !c.2.is_zero()) {
            out.periods.push(period);
            for (col, k) in out.keys.iter_mut().zip(keys.as_ref()) {
                col.push(*k);
            }
            for (col, v) in out.sums.iter_mut().zip(sums.0) {
                col.push(v);
            }
        }
        out
    }

    fn bind<'q>(
        self,
        mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        q = q.bind(self.periods);
        for k in self.keys {
            q = q.bind(k);
        }
        for v in self.sums {
            q = q.bind(v);
        }
        q
    }
}

/// `up_TABLE AS (INSERT … SELECT * FROM UNNEST(arrays) ORDER BY keys ON CONFLICT … DO UPDATE)`:
/// adds bound cells (parameters from `$first`: the period, each key, the 21 sums) to `table`.
/// Sorted by the server, in the collation every insert locks cells in, so that these
/// upserts and the statement inserts of other writers wait for each other rather than
/// deadlock.
fn upsert_sql(table: &str, time_col: &str, keys: &[&str], first: usize) -> String {
    let cols: Vec<&str> = std::iter::once(time_col)
        .chain(keys.iter().copied())
        .chain(SUM_COLUMNS)
        .collect();
    let params: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = if i > keys.len() || *c == time_col {
                "bigint"
            } else {
                "text"
            };
            format!("${}::{t}[]", first + i)
        })
        .collect();
    let key_cols = cols[..=keys.len()].join(", ");
    let order = (1..=keys.len() + 1)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "up_{table} AS (INSERT INTO {table} ({cols}) SELECT * FROM UNNEST({params}) AS u({cols}) \
         ORDER BY {order} ON CONFLICT ({key_cols}) DO UPDATE SET {sets})",
        cols = cols.join(", "),
        params = params.join(", "),
        sets = add_sets(table),
    )
}

const TAG_KEYS: [&str; 3] = ["key", "value", "user_id"];

/// One statement adding a batch's [`Deltas`] to `rollup_events` and `rollup_tags`, and with
/// `derived` to the four tables summed from `rollup_events` as well.
fn apply_sql(derived: bool) -> String {
    let mut tables = vec![
        (EVENTS.name, EVENTS.time_col, EVENTS.keys),
        ("rollup_tags", "hour_ms", &TAG_KEYS[..]),
    ];
    if derived {
        tables.extend(DERIVED.iter().map(|t| (t.name, t.time_col, t.keys)));
    }
    // Each table's parameters follow the previous table's: its period, its keys, its sums.
    let mut first = 1;
    let ctes: Vec<String> = tables
        .into_iter()
        .map(|(table, time_col, keys)| {
            let sql = upsert_sql(table, time_col, keys, first);
            first += 1 + keys.len() + SUM_COLUMNS.len();
            sql
        })
        .collect();
    format!("WITH {} SELECT 1", ctes.join(", "))
}

static APPLY_BASE: LazyLock<String> = LazyLock::new(|| apply_sql(false));
static APPLY_ALL: LazyLock<String> = LazyLock::new(|| apply_sql(true));

/// Adds `deltas` to the rollups in one statement: `rollup_events` and `rollup_tags`, and with
/// `derived` the four tables summed from `rollup_events` too (a reprice refreshes those from
/// `rollup_events` afterwards instead).
pub(super) async fn apply(
    conn: &mut PgConnection,
    deltas: &Deltas<'_>,
    derived: bool,
) -> Result<()> {
    let events = deltas.events();
    let base = Cells::new(
        EVENTS.keys.len(),
        events.iter().map(|(k, s)| (k.0, [k.1, k.2, k.3, k.4], s)),
    );
    let tags = deltas.tags();
    let tag_cells = Cells::new(
        TAG_KEYS.len(),
        tags.iter().map(|(k, s)| (k.0, [k.1, k.2, k.3], s)),
    );
    let sql = if derived { &APPLY_ALL } else { &APPLY_BASE };
    let mut q = tag_cells.bind(base.bind(sqlx::query(sql.as_str())));
    if derived {
        for t in &DERIVED {
            let cells = derive(t, &events);
            q = Cells::new(t.keys.len(), cells.iter().map(|((p, k), s)| (*p, k, s))).bind(q);
        }
    }
    q.execute(&mut *conn)
        .await
        .map_err(db_err("update rollups"))?;
    Ok(())
}
