//! Reading: events by id or in `(timestamp, id)` order, and the primitive aggregates of the
//! store contract, from raw events or from the hourly rollups. Every value from a
//! request (tag keys included) is a bound parameter; only fixed column names and integers
//! computed here are ever part of the SQL text.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use usage_core::Error;
use usage_core::event::{EventId, UsageEvent};
use usage_core::query::{Dimension, Filter, TimeRange};
use usage_core::quota::Quota;
use usage_core::store::{
    AggregateRequest, AggregateRow, Cursor, DistinctRow, LatencyRow, Source, quota_usage_requests,
    rollup_can_serve,
};

use super::Fail;
use super::codec::{TOTALS_COLS, ceil_ms, event_from_row, event_select, from_ms, ms};
use super::write::{HOUR_MS, floor_sql};
use crate::rollups::Sums;
use crate::rollups::{ceil_to, table_for};

/// Sums per (group values, grain start in ms).
type Cells = HashMap<(Vec<Option<String>>, Option<i64>), Sums>;

/// What to sum: everything, just the event count (enough for distinct values), or the
/// [`TOTALS_COLS`] at these indices, `requests` (index 0) among them (a quota's metric).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    All,
    Count,
    Columns(&'static [usize]),
}

/// The SQL sums over `events e`, in [`TOTALS_COLS`] order.
const RAW_SUMS: [&str; 21] = [
    "COUNT(*)",
    "SUM(e.status = 'error')",
    "SUM(e.cost_total IS NULL)",
    "SUM(e.input)",
    "SUM(e.cache_read)",
    "SUM(e.cache_write_5m)",
    "SUM(e.cache_write_1h)",
    "SUM(e.output)",
    "SUM(e.reasoning)",
    "SUM(e.web_search_requests)",
    "SUM(e.web_fetch_requests)",
    "SUM(e.cost_input)",
    "SUM(e.cost_cache_read)",
    "SUM(e.cost_cache_write_5m)",
    "SUM(e.cost_cache_write_1h)",
    "SUM(e.cost_output)",
    "SUM(e.cost_web_search)",
    "SUM(e.cost_total)",
    "SUM(e.latency_ms)",
    "COUNT(e.latency_ms)",
    "SUM(e.duration_ms)",
];

fn grain_ms(grain_secs: Option<i64>) -> Result<Option<i64>, Fail> {
    match grain_secs {
        None => Ok(None),
        Some(g) => match g.checked_mul(1000) {
            Some(ms) if g > 0 => Ok(Some(ms)),
            _ => Err(Error::argument(
                "grain_secs",
                format!("{g} is not a positive number of seconds"),
            )
            .into()),
        },
    }
}

/// `FROM`/`WHERE` over `events e` for a filter, with a `LEFT JOIN` per tag key in `dims`. Tags
/// are read from each event's JSON object (`json_each` yields one row per key, so a join on
/// one key yields at most one row per event).
struct RawSql<'a> {
    from: String,
    conds: Vec<String>,
    params: Vec<Value>,
    tag_keys: Vec<&'a str>,
}

impl<'a> RawSql<'a> {
    fn new(filter: &'a Filter, dims: &'a [Dimension]) -> Self {
        let mut from = String::from("events e");
        let mut params: Vec<Value> = Vec::new();
        for (i, (k, v)) in filter.tags.iter().enumerate() {
            from.push_str(&format!(
                " JOIN json_each(e.tags) f{i} ON f{i}.key = ? AND f{i}.value = ?"
            ));
            params.push(Value::Text(k.clone()));
            params.push(Value::Text(v.clone()));
        }
        let mut tag_keys: Vec<&str> = Vec::new();
        for d in dims {
            if let Dimension::Tag(k) = d
                && !tag_keys.contains(&k.as_str())
            {
                let j = tag_keys.len();
                from.push_str(&format!(
                    " LEFT JOIN json_each(e.tags) g{j} ON g{j}.key = ?"
                ));
                params.push(Value::Text(k.clone()));
                tag_keys.push(k);
            }
        }
        let mut sql = RawSql {
            from,
            conds: Vec::new(),
            params,
            tag_keys,
        };
        if let Some(r) = filter.range {
            sql.cond("e.ts_ms >= ?", ceil_ms(r.start));
            sql.cond("e.ts_ms < ?", ceil_ms(r.end));
        }
        if let Some(u) = &filter.user_id {
            sql.cond("e.user_id = ?", u.clone());
        }
        if let Some(m) = &filter.model {
            sql.cond("e.model_key = ?", m.clone());
        }
        if let Some(p) = &filter.provider {
            sql.cond("e.provider = ?", p.clone());
        }
        if let Some(s) = filter.status {
            sql.cond("e.status = ?", s.as_str().to_owned());
        }
        sql
    }

    fn cond(&mut self, sql: &str, v: impl Into<Value>) {
        self.conds.push(sql.to_owned());
        self.params.push(v.into());
    }

    fn expr(&self, d: &Dimension) -> String {
        match d {
            Dimension::User => "e.user_id".into(),
            Dimension::Provider => "e.provider".into(),
            Dimension::Model => "e.model_key".into(),
            Dimension::Status => "e.status".into(),
            Dimension::Tag(k) => {
                let j = self
                    .tag_keys
                    .iter()
                    .position(|t| t == k)
                    .unwrap_or_default();
                format!("g{j}.value")
            }
        }
    }

    fn where_sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
}

fn group_by_sql(n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let cols: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    format!(" GROUP BY {}", cols.join(", "))
}

/// Reads `(group…, grain, sums…)` rows into `cells`.
fn collect(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    n_groups: usize,
    measure: Measure,
    cells: &mut Cells,
) -> Result<(), Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let mut group = Vec::with_capacity(n_groups);
        for i in 0..n_groups {
            group.push(row.get::<_, Option<String>>(i)?);
        }
        let grain: Option<i64> = row.get(n_groups)?;
        let mut s = Sums::default();
        match measure {
            Measure::All => {
                for (i, v) in s.0.iter_mut().enumerate() {
                    *v = row.get::<_, Option<i64>>(n_groups + 1 + i)?.unwrap_or(0);
                }
            }
            Measure::Count => s.0[0] = row.get::<_, Option<i64>>(n_groups + 1)?.unwrap_or(0),
            Measure::Columns(cols) => {
                for (j, &i) in cols.iter().enumerate() {
                    s.0[i] = row.get::<_, Option<i64>>(n_groups + 1 + j)?.unwrap_or(0);
                }
            }
        }
        cells.entry((group, grain)).or_default().add(&s, 1);
    }
    Ok(())
}

fn raw_cells(
    conn: &Connection,
    filter: &Filter,
    group: &[Dimension],
    grain: Option<i64>,
    m: Measure,
) -> Result<Cells, Fail> {
    let sql = RawSql::new(filter, group);
    let mut cols: Vec<String> = group.iter().map(|d| sql.expr(d)).collect();
    cols.push(grain.map_or_else(|| "NULL".to_owned(), |g| floor_sql("e.ts_ms", g)));
    match m {
        Measure::All => cols.extend(RAW_SUMS.iter().map(|s| (*s).to_owned())),
        Measure::Count => cols.push("COUNT(*)".into()),
        Measure::Columns(c) => cols.extend(c.iter().map(|&i| RAW_SUMS[i].to_owned())),
    }
    let n_keys = group.len() + usize::from(grain.is_some());
    let text = format!(
        "SELECT {} FROM {}{}{}",
        cols.join(", "),
        sql.from,
        sql.where_sql(),
        // The grain column is last among the keys; without a grain it is a constant NULL.
        group_by_sql(n_keys)
    );
    let mut cells = Cells::new();
    collect(conn, &text, &sql.params, group.len(), m, &mut cells)?;
    cells.retain(|_, s| s.requests() > 0);
    Ok(cells)
}

/// Which rollup table a rollup request reads.
#[derive(Clone, Copy)]
enum Rollup<'a> {
    Events,
    /// The tag rollup of one key, optionally one value.
    Tags {
        key: &'a str,
        value: Option<&'a str>,
    },
}

fn rollup_cells(
    conn: &Connection,
    filter: &Filter,
    group: &[Dimension],
    grain: Option<i64>,
    m: Measure,
) -> Result<Cells, Fail> {
    let mut dims = filter.dimensions();
    dims.extend(group.iter().cloned());
    if !rollup_can_serve(&dims) {
        let names: Vec<&str> = dims.iter().map(Dimension::name).collect();
        return Err(Error::argument(
            "source",
            format!(
                "the rollups cannot serve dimensions [{}]; ask for raw events",
                names.join(", ")
            ),
        )
        .into());
    }
    if let Some(g) = grain
        && g % HOUR_MS != 0
    {
        return Err(Error::argument(
            "grain_secs",
            format!(
                "{} is not a whole number of hours, which rollups need",
                g / 1000
            ),
        )
        .into());
    }
    // Only events carrying the tag are in the tag rollup; the engine derives the untagged
    // group itself (see `usage_core::store::rollup_can_serve`).
    let table = match dims.iter().find_map(|d| match d {
        Dimension::Tag(k) => Some(k.as_str()),
        _ => None,
    }) {
        None => Rollup::Events,
        Some(key) => Rollup::Tags {
            key,
            value: filter.tags.get(key).map(String::as_str),
        },
    };
    let range_ms = filter.range.map(|r| (ceil_ms(r.start), ceil_ms(r.end)));
    let (name, time_col, step, is_tags, has_user) = match table {
        Rollup::Events => {
            let t = table_for(filter, group, range_ms, grain);
            (t.name, t.time_col, t.step_ms, false, t.has_user())
        }
        Rollup::Tags { .. } => ("rollup_tags", "hour_ms", HOUR_MS, true, true),
    };
    let mut cols: Vec<String> = group
        .iter()
        .map(|d| match d {
            Dimension::User if has_user => "NULLIF(user_id, '')".to_owned(),
            Dimension::Provider if !is_tags => "provider".to_owned(),
            Dimension::Model if !is_tags => "model_key".to_owned(),
            Dimension::Status if !is_tags => "status".to_owned(),
            Dimension::Tag(_) if is_tags => "value".to_owned(),
            _ => "NULL".to_owned(),
        })
        .collect();
    cols.push(grain.map_or_else(|| "NULL".to_owned(), |g| floor_sql(time_col, g)));
    match m {
        Measure::All => cols.extend(TOTALS_COLS.iter().map(|c| format!("SUM({c})"))),
        Measure::Count => cols.push("SUM(requests)".into()),
        Measure::Columns(c) => cols.extend(c.iter().map(|&i| format!("SUM({})", TOTALS_COLS[i]))),
    }
    let mut conds = vec!["requests > 0".to_owned()];
    let mut params: Vec<Value> = Vec::new();
    // A cell is included when its period starts in the range: exact for the ranges the
    // engine asks rollups for, which start and end on the table's periods.
    if filter.user_id.is_some() && !is_tags {
        // Keyed time first, the tables have no per-user index (a batch would write one at
        // every user's place): one user's cells are found with a seek per period instead.
        let Some((start, end)) = user_periods(conn, name, time_col, step, range_ms)? else {
            return Ok(Cells::new());
        };
        conds.push(format!(
            "{time_col} IN (WITH RECURSIVE p(t) AS (VALUES (?) UNION ALL SELECT t + {step} FROM p WHERE t + {step} < ?) SELECT t FROM p)"
        ));
        params.extend([Value::Integer(start), Value::Integer(end)]);
    } else if let Some((start, end)) = range_ms {
        conds.extend([format!("{time_col} >= ?"), format!("{time_col} < ?")]);
        params.extend([Value::Integer(start), Value::Integer(end)]);
    }
    let mut cond = |sql: &str, v: Value| {
        conds.push(sql.to_owned());
        params.push(v);
    };
    if let Rollup::Tags { key, value } = table {
        cond("key = ?", Value::Text(key.to_owned()));
        if let Some(v) = value {
            cond("value = ?", Value::Text(v.to_owned()));
        }
    }
    if let Some(u) = &filter.user_id {
        // A missing user is stored as '': an empty id must match nothing, as in raw events.
        cond("user_id = ? AND user_id <> ''", Value::Text(u.clone()));
    }
    if !is_tags {
        if let Some(v) = &filter.model {
            cond("model_key = ?", Value::Text(v.clone()));
        }
        if let Some(v) = &filter.provider {
            cond("provider = ?", Value::Text(v.clone()));
        }
        if let Some(v) = filter.status {
            cond("status = ?", Value::Text(v.as_str().to_owned()));
        }
    }
    let n_keys = group.len() + usize::from(grain.is_some());
    let text = format!(
        "SELECT {} FROM {name} WHERE {}{}",
        cols.join(", "),
        conds.join(" AND "),
        group_by_sql(n_keys)
    );
    let mut cells = Cells::new();
    collect(conn, &text, &params, group.len(), m, &mut cells)?;
    cells.retain(|_, s| s.requests() > 0);
    Ok(cells)
}

/// The periods of `table` a per-user read must visit: the first and the end of those that
/// start in the range and hold cells at all. `None` when there are none.
fn user_periods(
    conn: &Connection,
    table: &str,
    time_col: &str,
    step: i64,
    range_ms: Option<(i64, i64)>,
) -> Result<Option<(i64, i64)>, Fail> {
    let (lo, hi): (Option<i64>, Option<i64>) = conn
        .prepare_cached(&format!(
            "SELECT (SELECT MIN({time_col}) FROM {table}), (SELECT MAX({time_col}) FROM {table})"
        ))?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(None);
    };
    let (start, end) = range_ms.unwrap_or((i64::MIN, i64::MAX));
    let start = ceil_to(start.max(lo), step);
    let end = end.min(hi.saturating_add(1));
    Ok((start < end).then_some((start, end)))
}

fn cells_for(
    conn: &Connection,
    req: &AggregateRequest,
    group: &[Dimension],
    m: Measure,
) -> Result<Cells, Fail> {
    let grain = grain_ms(req.grain_secs)?;
    match req.source {
        Source::Raw => raw_cells(conn, &req.filter, group, grain, m),
        Source::Rollup => rollup_cells(conn, &req.filter, group, grain, m),
    }
}

pub(super) fn aggregate(
    conn: &Connection,
    req: &AggregateRequest,
) -> Result<Vec<AggregateRow>, Fail> {
    let cells = cells_for(conn, req, &req.group_by, Measure::All)?;
    let mut rows = cells
        .into_iter()
        .map(|((group, grain), s)| {
            Ok(AggregateRow {
                group,
                grain_start: grain.map(from_ms).transpose()?,
                totals: s.to_totals(),
            })
        })
        .collect::<Result<Vec<_>, Fail>>()?;
    rows.sort_by(|a, b| (a.grain_start, &a.group).cmp(&(b.grain_start, &b.group)));
    Ok(rows)
}

/// `quota`'s recorded usage over `range`, summing only the columns its metric needs.
pub(super) fn used(
    conn: &Connection,
    quota: &Quota,
    range: TimeRange,
) -> Result<rust_decimal::Decimal, Fail> {
    let measure = Measure::Columns(crate::metric_columns(quota.metric));
    let mut used = rust_decimal::Decimal::ZERO;
    for req in quota_usage_requests(quota, range) {
        for s in cells_for(conn, &req, &req.group_by, measure)?.values() {
            // Saturates rather than overflowing: an absurd sum refuses hard reservations.
            used = used.saturating_add(quota.metric.amount(&s.to_totals()));
        }
    }
    Ok(used)
}

pub(super) fn distinct(
    conn: &Connection,
    req: &AggregateRequest,
    dim: &Dimension,
) -> Result<Vec<DistinctRow>, Fail> {
    let mut group = req.group_by.clone();
    group.push(dim.clone());
    let cells = cells_for(conn, req, &group, Measure::Count)?;
    let mut rows = Vec::with_capacity(cells.len());
    for ((mut group, grain), _) in cells {
        if let Some(Some(value)) = group.pop() {
            rows.push(DistinctRow {
                group,
                grain_start: grain.map(from_ms).transpose()?,
                value,
            });
        }
    }
    rows.sort_by(|a, b| {
        (a.grain_start, &a.group, &a.value).cmp(&(b.grain_start, &b.group, &b.value))
    });
    Ok(rows)
}

/// Latency samples, always from raw events.
pub(super) fn latencies(
    conn: &Connection,
    req: &AggregateRequest,
) -> Result<Vec<LatencyRow>, Fail> {
    let grain = grain_ms(req.grain_secs)?;
    let group = &req.group_by;
    let mut sql = RawSql::new(&req.filter, group);
    sql.conds.push("e.latency_ms IS NOT NULL".into());
    let mut cols: Vec<String> = group.iter().map(|d| sql.expr(d)).collect();
    cols.push(grain.map_or_else(|| "NULL".to_owned(), |g| floor_sql("e.ts_ms", g)));
    cols.push("e.latency_ms".into());
    let text = format!(
        "SELECT {} FROM {}{}",
        cols.join(", "),
        sql.from,
        sql.where_sql()
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let mut rows = stmt.query(params_from_iter(sql.params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut g = Vec::with_capacity(group.len());
        for i in 0..group.len() {
            g.push(row.get::<_, Option<String>>(i)?);
        }
        let grain: Option<i64> = row.get(group.len())?;
        let v: i64 = row.get(group.len() + 1)?;
        out.push(LatencyRow {
            group: g,
            grain_start: grain.map(from_ms).transpose()?,
            latency_ms: u64::try_from(v).unwrap_or(0),
        });
    }
    Ok(out)
}

pub(super) fn get(conn: &Connection, id: &EventId) -> Result<Option<UsageEvent>, Fail> {
    let mut stmt = conn.prepare_cached(&super::ids::lookup_sql(&event_select()))?;
    Ok(stmt
        .query_row(params![super::ids::hash(id.as_str()), id.as_str()], |r| {
            event_from_row(r, 0)
        })
        .optional()?)
}

pub(super) fn scan(
    conn: &Connection,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<UsageEvent>, Fail> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut sql = RawSql::new(filter, &[]);
    if let Some(c) = after {
        let t = ms(c.timestamp);
        if ceil_ms(c.timestamp) != t {
            // The cursor falls inside a millisecond: every stored event in it is before it.
            sql.cond("e.ts_ms > ?", t);
        } else {
            // Keyset pagination; the first condition lets the ts_ms index bound the scan.
            sql.cond("e.ts_ms >= ?", t);
            sql.conds
                .push("(e.ts_ms > ? OR (e.ts_ms = ? AND e.id > ?))".into());
            sql.params.extend([
                Value::Integer(t),
                Value::Integer(t),
                Value::Text(c.id.as_str().to_owned()),
            ]);
        }
    }
    sql.params
        .push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let text = format!(
        "SELECT {} FROM {}{} ORDER BY e.ts_ms, e.id LIMIT ?",
        event_select(),
        sql.from,
        sql.where_sql()
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let events = stmt
        .query_map(params_from_iter(sql.params.iter()), |r| {
            event_from_row(r, 0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use usage_core::quota::QuotaMetric;

    use crate::rollups::Sums;

    /// Summing only a metric's columns gives the metric exactly what summing all gives it.
    #[test]
    fn metric_columns_cover_each_metric() {
        let full = Sums(std::array::from_fn(|i| (i as i64 + 1) * 1_000_003));
        for metric in QuotaMetric::ALL {
            let cols = crate::metric_columns(metric);
            assert_eq!(cols.first(), Some(&0), "{metric:?} must sum requests first");
            let mut only = Sums([0; 21]);
            for &i in cols {
                only.0[i] = full.0[i];
            }
            assert_eq!(
                metric.amount(&only.to_totals()),
                metric.amount(&full.to_totals()),
                "{metric:?}"
            );
        }
    }
}
