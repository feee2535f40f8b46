//! Reads: `get`, `scan`, and the three primitive aggregates (`aggregate`, `distinct`,
//! `latencies`) over raw events or the rollups. The SQL reproduces `Filter::matches` and
//! `Totals::of` exactly; every value (tag keys included) is a bind parameter.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use rust_decimal::Decimal;
use sqlx::postgres::{PgArguments, PgExecutor, PgPool, PgRow, Postgres};
use sqlx::{AssertSqlSafe, Row};
use usage_core::event::{EventId, UsageEvent};
use usage_core::query::{Dimension, Filter, TimeRange};
use usage_core::quota::Quota;
use usage_core::store::{
    AggregateRequest, AggregateRow, Cursor, DistinctRow, LatencyRow, Source, quota_usage_requests,
    rollup_can_serve,
};
use usage_core::{Error, Result};

use super::columns::{event_from_row, select_list};
use super::rollup::{
    RAW_SUM_EXPRS, RAW_SUMS, ROLLUP_SUM_EXPRS, ROLLUP_SUMS, floor_to, only_sums, totals_from_row,
};
use super::{BACKEND, ceil_ms, db_err, ms_to_time};
use crate::rollups::table_for;

enum Bind {
    Text(String),
    Int(i64),
}

/// A statement being built: its clauses and its bind values, numbered as they are added.
#[derive(Default)]
struct Sql {
    binds: Vec<Bind>,
    from: String,
    wheres: Vec<String>,
    /// Group-by expressions in `group_by` order (then the grain, when asked for).
    group: Vec<String>,
    grain: Option<String>,
    /// Tag key → its bind parameter (raw events only).
    tag_keys: BTreeMap<String, String>,
    rollup: bool,
    /// The rollup_tags key, when reading that rollup.
    tag_key: Option<String>,
}

impl Sql {
    fn text(&mut self, s: &str) -> String {
        self.binds.push(Bind::Text(s.to_owned()));
        format!("${}", self.binds.len())
    }

    fn int(&mut self, v: i64) -> String {
        self.binds.push(Bind::Int(v));
        format!("${}", self.binds.len())
    }

    /// The expression for a dimension's value (NULL when the event has none).
    fn dim(&mut self, d: &Dimension) -> Result<String> {
        if self.rollup {
            return match d {
                Dimension::User => Ok("NULLIF(r.user_id, '')".to_owned()),
                Dimension::Tag(k) if self.tag_key.as_ref() == Some(k) => Ok("r.value".to_owned()),
                Dimension::Provider if self.tag_key.is_none() => Ok("r.provider".to_owned()),
                Dimension::Model if self.tag_key.is_none() => Ok("r.model_key".to_owned()),
                Dimension::Status if self.tag_key.is_none() => Ok("r.status".to_owned()),
                _ => Err(not_servable()),
            };
        }
        Ok(match d {
            Dimension::User => "e.user_id".to_owned(),
            Dimension::Provider => "e.provider".to_owned(),
            Dimension::Model => "e.model_key".to_owned(),
            Dimension::Status => "e.status".to_owned(),
            Dimension::Tag(k) => {
                let key = match self.tag_keys.get(k) {
                    Some(p) => p.clone(),
                    None => {
                        let p = self.text(k);
                        self.tag_keys.insert(k.clone(), p.clone());
                        p
                    }
                };
                // Tag values are strings: `->>` gives the value itself, NULL without the key.
                format!("(e.tags ->> {key}::text)")
            }
        })
    }

    fn where_clause(&self) -> String {
        if self.wheres.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.wheres.join(" AND "))
        }
    }

    fn group_list(&self) -> Vec<String> {
        self.group.iter().chain(&self.grain).cloned().collect()
    }

    fn into_query(self, sql: String) -> sqlx::query::Query<'static, Postgres, PgArguments> {
        // Every value is a bind parameter; the text holds only column names and aliases.
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(v) => q.bind(v),
            };
        }
        q
    }
}

fn not_servable() -> Error {
    Error::argument(
        "source",
        "the rollups cannot serve these dimensions: use Source::Raw (see usage_core::store::rollup_can_serve)",
    )
}

/// The FROM, JOINs and WHERE for `filter` over raw events (aliased `e`) or the rollups
/// (aliased `r`), plus the group-by expressions. `extra` is the dimension `distinct` counts.
fn plan(
    filter: &Filter,
    source: Source,
    group_by: &[Dimension],
    grain_secs: Option<i64>,
    extra: Option<&Dimension>,
) -> Result<Sql> {
    plan_after(Vec::new(), filter, source, group_by, grain_secs, extra)
}

/// [`plan`] for a statement that already binds `binds` (the parts of a UNION before this one):
/// this part's parameters are numbered after them.
fn plan_after(
    binds: Vec<Bind>,
    filter: &Filter,
    source: Source,
    group_by: &[Dimension],
    grain_secs: Option<i64>,
    extra: Option<&Dimension>,
) -> Result<Sql> {
    let mut s = Sql {
        binds,
        ..Sql::default()
    };
    let grain_ms = grain_secs
        .map(|g| {
            g.checked_mul(1000).filter(|_| g > 0).ok_or_else(|| {
                Error::argument(
                    "grain_secs",
                    format!("{g} is not a positive number of seconds"),
                )
            })
        })
        .transpose()?;
    let (start, end) = match filter.range {
        Some(r) => (Some(ceil_ms(r.start)), Some(ceil_ms(r.end))),
        None => (None, None),
    };
    match source {
        Source::Raw => {
            s.from = "events e".to_owned();
            for (k, v) in &filter.tags {
                let (k, v) = (s.text(k), s.text(v));
                s.wheres.push(format!("e.tags ->> {k}::text = {v}"));
            }
            if let Some(v) = start {
                let p = s.int(v);
                s.wheres.push(format!("e.ts_ms >= {p}"));
            }
            if let Some(v) = end {
                let p = s.int(v);
                s.wheres.push(format!("e.ts_ms < {p}"));
            }
            for (col, val) in [
                ("e.user_id", &filter.user_id),
                ("e.model_key", &filter.model),
                ("e.provider", &filter.provider),
            ] {
                if let Some(v) = val {
                    let p = s.text(v);
                    s.wheres.push(format!("{col} = {p}"));
                }
            }
            if let Some(st) = filter.status {
                let p = s.text(st.as_str());
                s.wheres.push(format!("e.status = {p}"));
            }
            if let Some(g) = grain_ms {
                let p = s.int(g);
                s.grain = Some(floor_to("e.ts_ms", &p));
            }
        }
        Source::Rollup => {
            let mut dims = filter.dimensions();
            dims.extend(group_by.iter().cloned());
            dims.extend(extra.cloned());
            if !rollup_can_serve(&dims) {
                return Err(not_servable());
            }
            s.rollup = true;
            s.tag_key = dims.iter().find_map(|d| match d {
                Dimension::Tag(k) => Some(k.clone()),
                _ => None,
            });
            let mut time_col = "hour_ms";
            match s.tag_key.clone() {
                None => {
                    let uses: Vec<Dimension> = group_by.iter().chain(extra).cloned().collect();
                    let range = start.zip(end);
                    let t = table_for(filter, &uses, range, grain_ms);
                    s.from = format!("{} r", t.name);
                    time_col = t.time_col;
                    for (col, val) in [
                        ("r.model_key", &filter.model),
                        ("r.provider", &filter.provider),
                    ] {
                        if let Some(v) = val {
                            let p = s.text(v);
                            s.wheres.push(format!("{col} = {p}"));
                        }
                    }
                    if let Some(st) = filter.status {
                        let p = s.text(st.as_str());
                        s.wheres.push(format!("r.status = {p}"));
                    }
                }
                Some(k) => {
                    s.from = "rollup_tags r".to_owned();
                    let p = s.text(&k);
                    s.wheres.push(format!("r.key = {p}"));
                    if let Some(v) = filter.tags.get(&k) {
                        let p = s.text(v);
                        s.wheres.push(format!("r.value = {p}"));
                    }
                }
            }
            if let Some(u) = &filter.user_id {
                let p = s.text(u);
                s.wheres.push(format!("r.user_id = {p}"));
            }
            if let Some(v) = start {
                let p = s.int(v);
                s.wheres.push(format!("r.{time_col} >= {p}"));
            }
            if let Some(v) = end {
                let p = s.int(v);
                s.wheres.push(format!("r.{time_col} < {p}"));
            }
            if let Some(g) = grain_ms {
                let p = s.int(g);
                s.grain = Some(floor_to(&format!("r.{time_col}"), &p));
            }
        }
    }
    for d in group_by {
        let e = s.dim(d)?;
        s.group.push(e);
    }
    Ok(s)
}

/// A row's group values and grain start.
type GroupKey = (Vec<Option<String>>, Option<chrono::DateTime<chrono::Utc>>);

/// Reads the group values and grain start that lead each aggregate row.
fn group_of(row: &PgRow, n: usize, grain: bool) -> Result<GroupKey> {
    let read = |e: sqlx::Error| Error::store(BACKEND, "read", e);
    let group = (0..n)
        .map(|i| row.try_get::<Option<String>, _>(i).map_err(read))
        .collect::<Result<_>>()?;
    let grain_start = if grain {
        Some(ms_to_time(row.try_get::<i64, _>(n).map_err(read)?)?)
    } else {
        None
    };
    Ok((group, grain_start))
}

/// Outstanding holds on some quotas at an instant: the quota ids and the time in ms (see
/// `quota::held_by_quota` for the rounding).
pub(super) struct HeldAt<'a> {
    pub(super) ids: &'a [String],
    pub(super) now_ms: i64,
}

/// Zeros in place of every sum [`totals_from_row`] reads, for the rows of a [`used_and_held`]
/// statement that carry no usage.
static ZERO_SUMS: LazyLock<String> = LazyLock::new(|| only_sums(&ROLLUP_SUM_EXPRS, &[]));

/// A reservation to store in the statement that reads what it is checked against: its id,
/// when it was made and expires (ms), and one amount per quota (exact decimal text).
pub(super) struct NewReservation<'a> {
    pub(super) id: &'a str,
    pub(super) created_ms: i64,
    pub(super) expires_ms: i64,
    pub(super) holds: &'a [(String, String)],
}

/// What [`used_and_held`] read: each quota's usage, the outstanding holds per quota id, and
/// whether the reservation asked for was stored (false when its id was already taken).
pub(super) struct UsedAndHeld {
    pub(super) used: Vec<Decimal>,
    pub(super) held: HashMap<String, Decimal>,
    pub(super) stored: bool,
}

/// The recorded usage of each quota over its range, summing only the columns its metric
/// needs, and (when asked) the outstanding holds on quotas, in ONE statement: a UNION ALL of
/// every quota's requests, each row tagged with its quota's index, and of the holds' sums
/// (tagged -1, with their quota id). One round trip and one snapshot, so a commit landing in
/// between can never be counted twice or missed. Runs on a pool, or inside a reservation's
/// transaction, where `insert` stores the reservation and its holds in the same statement
/// (a row tagged -2 says it was stored): the reads do not see them (one snapshot), and the
/// caller rolls the transaction back when a quota refuses it.
pub(super) async fn used_and_held<'e>(
    db: impl PgExecutor<'e>,
    quotas: &[(&Quota, TimeRange)],
    held: Option<HeldAt<'_>>,
    insert: Option<NewReservation<'_>>,
) -> Result<UsedAndHeld> {
    let mut binds = Vec::new();
    let mut parts = Vec::new();
    for (i, (quota, range)) in quotas.iter().enumerate() {
        let cols = crate::metric_columns(quota.metric);
        for req in quota_usage_requests(quota, *range) {
            let s = plan_after(
                binds,
                &req.filter,
                req.source,
                &req.group_by,
                req.grain_secs,
                None,
            )?;
            let (exprs, having) = match req.source {
                Source::Raw => (&*RAW_SUM_EXPRS, "COUNT(*) > 0"),
                Source::Rollup => (&*ROLLUP_SUM_EXPRS, "SUM(r.requests) > 0"),
            };
            // `i` is an index, not a value: the text stays the same for the same quotas.
            parts.push(format!(
                "SELECT {i}, NULL::text, NULL::text, {} FROM {}{} HAVING {having}",
                only_sums(exprs, cols),
                s.from,
                s.where_clause()
            ));
            binds = s.binds;
        }
    }
    let mut q = Sql {
        binds,
        ..Sql::default()
    };
    if let Some(h) = held.filter(|h| !h.ids.is_empty()) {
        // `Sql` binds scalars: one parameter per id.
        let ids = h
            .ids
            .iter()
            .map(|id| q.text(id))
            .collect::<Vec<_>>()
            .join(", ");
        let now = q.int(h.now_ms);
        parts.push(format!(
            "SELECT -1, quota_id, SUM(amount)::text, {} FROM holds \
             WHERE quota_id IN ({ids}) AND active AND expires_at_ms > {now} GROUP BY quota_id",
            *ZERO_SUMS
        ));
    }
    let mut with = String::new();
    if let Some(r) = insert {
        let (id, created, expires) = (q.text(r.id), q.int(r.created_ms), q.int(r.expires_ms));
        with = format!(
            "WITH r AS (INSERT INTO reservations (id, state, created_at_ms, expires_at_ms) \
             VALUES ({id}, 'held', {created}, {expires}) ON CONFLICT (id) DO NOTHING RETURNING id)"
        );
        if !r.holds.is_empty() {
            let values = r
                .holds
                .iter()
                .map(|(quota, amount)| format!("({}, {})", q.text(quota), q.text(amount)))
                .collect::<Vec<_>>()
                .join(", ");
            with.push_str(&format!(
                ", h AS (INSERT INTO holds (reservation_id, quota_id, amount, expires_at_ms, active) \
                 SELECT r.id, v.quota_id, v.amount::numeric, {expires}, TRUE \
                 FROM r CROSS JOIN (VALUES {values}) AS v(quota_id, amount))"
            ));
        }
        with.push(' ');
        parts.push(format!(
            "SELECT -2, NULL::text, NULL::text, {} FROM r",
            *ZERO_SUMS
        ));
    }
    let mut out = UsedAndHeld {
        used: vec![Decimal::ZERO; quotas.len()],
        held: HashMap::new(),
        stored: false,
    };
    if parts.is_empty() {
        return Ok(out);
    }
    let rows = q
        .into_query(format!("{with}{}", parts.join(" UNION ALL ")))
        .fetch_all(db)
        .await
        .map_err(db_err("used"))?;
    let read = |e| Error::store(BACKEND, "read", e);
    let (used, held) = (&mut out.used, &mut out.held);
    for row in &rows {
        let i: i32 = row.try_get(0).map_err(read)?;
        if i == -2 {
            out.stored = true;
            continue;
        }
        if i < 0 {
            let id: String = row.try_get(1).map_err(read)?;
            let sum: String = row.try_get(2).map_err(read)?;
            let sum = Decimal::from_str_exact(&sum).map_err(|e| {
                Error::store(
                    BACKEND,
                    "read",
                    format!("holds.amount is `{sum}`, which a Decimal cannot hold exactly: {e}"),
                )
            })?;
            held.insert(id, sum);
            continue;
        }
        let (slot, (quota, _)) = usize::try_from(i)
            .ok()
            .and_then(|i| used.get_mut(i).zip(quotas.get(i)))
            .ok_or_else(|| Error::store(BACKEND, "used", format!("no quota at index {i}")))?;
        *slot = slot
            .checked_add(quota.metric.amount(&totals_from_row(row, 3)?))
            .ok_or_else(|| {
                Error::argument(
                    "quota",
                    format!(
                        "usage of quota `{}` is beyond what a Decimal can hold",
                        quota.id
                    ),
                )
            })?;
    }
    Ok(out)
}

pub(super) async fn aggregate(pool: &PgPool, req: &AggregateRequest) -> Result<Vec<AggregateRow>> {
    let s = plan(&req.filter, req.source, &req.group_by, req.grain_secs, None)?;
    let keys = s.group_list();
    let (sums, having) = match req.source {
        Source::Raw => (RAW_SUMS.as_str(), "COUNT(*) > 0"),
        Source::Rollup => (ROLLUP_SUMS.as_str(), "SUM(r.requests) > 0"),
    };
    let select: Vec<&str> = keys.iter().map(String::as_str).chain([sums]).collect();
    let group_by = if keys.is_empty() {
        String::new()
    } else {
        format!(
            " GROUP BY {}",
            (1..=keys.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let sql = format!(
        "SELECT {} FROM {}{}{group_by} HAVING {having}",
        select.join(", "),
        s.from,
        s.where_clause()
    );
    let (n, grain) = (req.group_by.len(), req.grain_secs.is_some());
    let rows = s
        .into_query(sql)
        .fetch_all(pool)
        .await
        .map_err(db_err("aggregate"))?;
    rows.iter()
        .map(|row| {
            let (group, grain_start) = group_of(row, n, grain)?;
            let totals = totals_from_row(row, n + usize::from(grain))?;
            Ok(AggregateRow {
                group,
                grain_start,
                totals,
            })
        })
        .collect()
}

pub(super) async fn distinct(
    pool: &PgPool,
    req: &AggregateRequest,
    dimension: &Dimension,
) -> Result<Vec<DistinctRow>> {
    let mut s = plan(
        &req.filter,
        req.source,
        &req.group_by,
        req.grain_secs,
        Some(dimension),
    )?;
    let value = s.dim(dimension)?;
    s.wheres.push(format!("{value} IS NOT NULL"));
    if req.source == Source::Rollup {
        s.wheres.push("r.requests > 0".to_owned());
    }
    let mut select = s.group_list();
    select.push(value);
    let sql = format!(
        "SELECT DISTINCT {} FROM {}{}",
        select.join(", "),
        s.from,
        s.where_clause()
    );
    let (n, grain) = (req.group_by.len(), req.grain_secs.is_some());
    let rows = s
        .into_query(sql)
        .fetch_all(pool)
        .await
        .map_err(db_err("distinct"))?;
    rows.iter()
        .map(|row| {
            let (group, grain_start) = group_of(row, n, grain)?;
            let value = row
                .try_get(n + usize::from(grain))
                .map_err(|e| Error::store(BACKEND, "read", e))?;
            Ok(DistinctRow {
                group,
                grain_start,
                value,
            })
        })
        .collect()
}

pub(super) async fn latencies(pool: &PgPool, req: &AggregateRequest) -> Result<Vec<LatencyRow>> {
    // Latencies are per event: always raw.
    let mut s = plan(
        &req.filter,
        Source::Raw,
        &req.group_by,
        req.grain_secs,
        None,
    )?;
    s.wheres.push("e.latency_ms IS NOT NULL".to_owned());
    let mut select = s.group_list();
    select.push("e.latency_ms".to_owned());
    let sql = format!(
        "SELECT {} FROM {}{}",
        select.join(", "),
        s.from,
        s.where_clause()
    );
    let (n, grain) = (req.group_by.len(), req.grain_secs.is_some());
    let rows = s
        .into_query(sql)
        .fetch_all(pool)
        .await
        .map_err(db_err("latencies"))?;
    rows.iter()
        .map(|row| {
            let (group, grain_start) = group_of(row, n, grain)?;
            let ms: i64 = row
                .try_get(n + usize::from(grain))
                .map_err(|e| Error::store(BACKEND, "read", e))?;
            let latency_ms = u64::try_from(ms).map_err(|_| {
                Error::store(
                    BACKEND,
                    "read",
                    format!("events.latency_ms: {ms} is negative"),
                )
            })?;
            Ok(LatencyRow {
                group,
                grain_start,
                latency_ms,
            })
        })
        .collect()
}

pub(super) async fn get(pool: &PgPool, id: &EventId) -> Result<Option<UsageEvent>> {
    let sql = format!("SELECT {} FROM events e WHERE e.id = $1", select_list());
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err("get"))?;
    row.as_ref().map(event_from_row).transpose()
}

pub(super) async fn scan(
    pool: &PgPool,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<UsageEvent>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut s = plan(filter, Source::Raw, &[], None, None)?;
    if let Some(c) = after {
        // `id` is COLLATE "C": bytewise, like Rust's String order.
        let (ts, id) = (s.int(c.timestamp.timestamp_millis()), s.text(c.id.as_str()));
        s.wheres.push(format!("(e.ts_ms, e.id) > ({ts}, {id})"));
    }
    let lim = s.int(i64::try_from(limit).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY e.ts_ms, e.id LIMIT {lim}",
        select_list(),
        s.from,
        s.where_clause()
    );
    let rows = s
        .into_query(sql)
        .fetch_all(pool)
        .await
        .map_err(db_err("scan"))?;
    rows.iter().map(event_from_row).collect()
}
