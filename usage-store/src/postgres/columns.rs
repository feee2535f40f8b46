//! The columns of `events`, each with how to read it from a [`UsageEvent`]: one table drives
//! the bulk INSERT, the reprice UPDATE and the SELECT list, so binds and columns cannot drift
//! apart. Also decodes a row back into a [`UsageEvent`].

use std::collections::BTreeMap;
use std::str::FromStr;

use sqlx::Row;
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use usage_core::event::{CostSource, EventCost, EventId, Status, UsageEvent};
use usage_core::tokens::TokenUsage;
use usage_core::{Deployment, Error, Platform, PricingContext, Result, ServiceTier, Speed, Usd};

use super::{BACKEND, ms_to_time};
use crate::rollups::{int, nanos};

/// A column's value for one event.
#[derive(Clone, Copy)]
enum Get {
    Text(fn(&UsageEvent) -> Option<String>),
    Int(fn(&UsageEvent) -> Result<Option<i64>>),
}

/// One column of `events` (all but `seq`).
pub(super) struct Column {
    pub(super) name: &'static str,
    get: Get,
}

fn cost(e: &UsageEvent, field: &str, line: fn(&EventCost) -> Usd) -> Result<Option<i64>> {
    e.cost.as_ref().map(|c| nanos(field, line(c))).transpose()
}

fn tags_json(tags: &BTreeMap<String, String>) -> String {
    // A map of strings always serialises.
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".to_owned())
}

/// Every column but `seq`, in INSERT order.
pub(super) const EVENT_COLUMNS: &[Column] = &[
    Column {
        name: "id",
        get: Get::Text(|e| Some(e.id.as_str().to_owned())),
    },
    Column {
        name: "ts_ms",
        get: Get::Int(|e| Ok(Some(e.timestamp.timestamp_millis()))),
    },
    Column {
        name: "provider",
        get: Get::Text(|e| Some(e.provider.clone())),
    },
    Column {
        name: "model",
        get: Get::Text(|e| Some(e.model.clone())),
    },
    Column {
        name: "model_key",
        get: Get::Text(|e| Some(e.model_key().to_owned())),
    },
    Column {
        name: "resolved_model",
        get: Get::Text(|e| e.resolved_model.clone()),
    },
    Column {
        name: "user_id",
        get: Get::Text(|e| e.user_id.clone()),
    },
    Column {
        name: "input",
        get: Get::Int(|e| int("input", e.usage.input).map(Some)),
    },
    Column {
        name: "cache_read",
        get: Get::Int(|e| int("cache_read", e.usage.cache_read).map(Some)),
    },
    Column {
        name: "cache_write_5m",
        get: Get::Int(|e| int("cache_write_5m", e.usage.cache_write_5m).map(Some)),
    },
    Column {
        name: "cache_write_1h",
        get: Get::Int(|e| int("cache_write_1h", e.usage.cache_write_1h).map(Some)),
    },
    Column {
        name: "output",
        get: Get::Int(|e| int("output", e.usage.output).map(Some)),
    },
    Column {
        name: "reasoning",
        get: Get::Int(|e| int("reasoning", e.usage.reasoning).map(Some)),
    },
    Column {
        name: "web_search_requests",
        get: Get::Int(|e| int("web_search_requests", e.usage.web_search_requests).map(Some)),
    },
    Column {
        name: "web_fetch_requests",
        get: Get::Int(|e| int("web_fetch_requests", e.usage.web_fetch_requests).map(Some)),
    },
    Column {
        name: "cost_input",
        get: Get::Int(|e| cost(e, "cost.input", |c| c.input)),
    },
    Column {
        name: "cost_cache_read",
        get: Get::Int(|e| cost(e, "cost.cache_read", |c| c.cache_read)),
    },
    Column {
        name: "cost_cache_write_5m",
        get: Get::Int(|e| cost(e, "cost.cache_write_5m", |c| c.cache_write_5m)),
    },
    Column {
        name: "cost_cache_write_1h",
        get: Get::Int(|e| cost(e, "cost.cache_write_1h", |c| c.cache_write_1h)),
    },
    Column {
        name: "cost_output",
        get: Get::Int(|e| cost(e, "cost.output", |c| c.output)),
    },
    Column {
        name: "cost_web_search",
        get: Get::Int(|e| cost(e, "cost.web_search", |c| c.web_search)),
    },
    Column {
        name: "cost_total",
        get: Get::Int(|e| cost(e, "cost.total", |c| c.total)),
    },
    Column {
        name: "cost_source",
        get: Get::Text(|e| Some(e.cost_source.as_str().to_owned())),
    },
    Column {
        name: "unpriced_reason",
        get: Get::Text(|e| e.unpriced_reason.clone()),
    },
    Column {
        name: "catalog_version",
        get: Get::Text(|e| e.catalog_version.clone()),
    },
    Column {
        name: "latency_ms",
        get: Get::Int(|e| e.latency_ms.map(|v| int("latency_ms", v)).transpose()),
    },
    Column {
        name: "duration_ms",
        get: Get::Int(|e| e.duration_ms.map(|v| int("duration_ms", v)).transpose()),
    },
    Column {
        name: "status",
        get: Get::Text(|e| Some(e.status.as_str().to_owned())),
    },
    Column {
        name: "error_type",
        get: Get::Text(|e| e.error_type.clone()),
    },
    Column {
        name: "error_message",
        get: Get::Text(|e| e.error_message.clone()),
    },
    Column {
        name: "service_tier",
        get: Get::Text(|e| Some(e.context.service_tier.as_str().to_owned())),
    },
    Column {
        name: "speed",
        get: Get::Text(|e| Some(e.context.speed.as_str().to_owned())),
    },
    Column {
        name: "inference_geo",
        get: Get::Text(|e| e.context.inference_geo.clone()),
    },
    Column {
        name: "platform",
        get: Get::Text(|e| e.context.platform.map(|p| p.as_str().to_owned())),
    },
    Column {
        name: "deployment",
        get: Get::Text(|e| e.context.deployment.map(|d| d.as_str().to_owned())),
    },
    // Bound as text and cast to JSONB in SQL (sqlx's `json` feature is not enabled).
    Column {
        name: "tags",
        get: Get::Text(|e| Some(tags_json(&e.tags))),
    },
];

/// The columns a reprice rewrites.
pub(super) const PRICE_COLUMNS: &[&str] = &[
    "model_key",
    "resolved_model",
    "cost_input",
    "cost_cache_read",
    "cost_cache_write_5m",
    "cost_cache_write_1h",
    "cost_output",
    "cost_web_search",
    "cost_total",
    "cost_source",
    "unpriced_reason",
    "catalog_version",
];

fn price_columns() -> Vec<&'static Column> {
    EVENT_COLUMNS
        .iter()
        .filter(|c| PRICE_COLUMNS.contains(&c.name))
        .collect()
}

impl Column {
    fn sql_type(&self) -> &'static str {
        match self.get {
            Get::Text(_) => "text",
            Get::Int(_) => "bigint",
        }
    }

    /// The value in an UNNEST row aliased `u`, cast to the column's type.
    fn unnested(&self) -> String {
        if self.name == "tags" {
            "u.tags::jsonb".to_owned()
        } else {
            format!("u.{}", self.name)
        }
    }
}

/// One array per column, ready to bind to `UNNEST($n::type[], …)`.
pub(super) enum Array {
    /// A text column.
    Text(Vec<Option<String>>),
    /// A BIGINT column.
    Int(Vec<Option<i64>>),
}

/// The column arrays for `columns` of `events` (in that order).
fn arrays<'e>(
    columns: &[&Column],
    events: impl Iterator<Item = &'e UsageEvent> + Clone,
) -> Result<Vec<Array>> {
    columns
        .iter()
        .map(|c| {
            Ok(match c.get {
                Get::Text(f) => Array::Text(events.clone().map(f).collect()),
                Get::Int(f) => Array::Int(events.clone().map(f).collect::<Result<_>>()?),
            })
        })
        .collect()
}

/// Binds arrays in order.
pub(super) fn bind_arrays<'q>(
    mut q: sqlx::query::Query<'q, Postgres, PgArguments>,
    arrays: &[Array],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    for a in arrays {
        q = match a {
            Array::Text(v) => q.bind(v),
            Array::Int(v) => q.bind(v),
        };
    }
    q
}

/// `$first::type[], $first+1::type[], …` for `columns`.
fn unnest_params(columns: &[&Column], first: usize) -> String {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", first + i, c.sql_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every column of `events` but `seq`, comma-separated: [`EVENT_COLUMNS`]' names.
fn event_names() -> String {
    names(&EVENT_COLUMNS.iter().collect::<Vec<_>>())
}

fn names(columns: &[&Column]) -> String {
    columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT … SELECT FROM UNNEST(…) WHERE gate ON CONFLICT (id) DO NOTHING`, binding
/// [`insert_arrays`].
///
/// The `CASE WHEN clock_timestamp() …` around the first array hides the batch size from the
/// planner (which never folds a volatile call), so every batch size is estimated alike and
/// Postgres keeps one cached generic plan. Without it a single-event insert looks cheaper
/// re-planned, and is planned afresh every time: about 0.7 ms, as long as running it.
pub(super) fn insert_sql(gate: &str) -> String {
    let cols: Vec<&Column> = EVENT_COLUMNS.iter().collect();
    let params = unnest_params(&cols, 1);
    let (first, rest) = params.split_once(", ").unwrap_or((&params, ""));
    format!(
        "INSERT INTO events ({names}) SELECT {values} \
         FROM UNNEST(CASE WHEN clock_timestamp() IS NOT NULL THEN {first} END, {rest}) AS u({names}) \
         WHERE {gate} ON CONFLICT (id) DO NOTHING",
        names = names(&cols),
        values = cols
            .iter()
            .map(|c| c.unnested())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The temporary table a large batch is copied into before it is inserted (see
/// [`insert_staged_sql`]): one per connection, emptied by every commit.
pub(super) const STAGING: &str = "usage_events_staging";

/// Creates [`STAGING`] on this connection when it is not there yet (without the notice
/// `IF NOT EXISTS` would send every time): the columns of `events` but `seq`, with their
/// types and collations and no constraints.
pub(super) fn create_staging_sql() -> String {
    format!(
        "DO $$ BEGIN IF to_regclass('pg_temp.{STAGING}') IS NULL THEN \
         CREATE TEMP TABLE {STAGING} ON COMMIT DELETE ROWS AS SELECT {names} FROM events WITH NO DATA; \
         END IF; END $$",
        names = event_names(),
    )
}

/// `COPY` of [`copy_rows`] into [`STAGING`].
pub(super) fn copy_staging_sql() -> String {
    format!("COPY {STAGING} ({}) FROM STDIN", event_names())
}

/// `INSERT … SELECT FROM` [`STAGING`] `WHERE gate ORDER BY id ON CONFLICT (id) DO NOTHING`:
/// [`insert_sql`] for rows already copied in.
pub(super) fn insert_staged_sql(gate: &str) -> String {
    format!(
        "INSERT INTO events ({names}) SELECT {names} FROM {STAGING} \
         WHERE {gate} ORDER BY id ON CONFLICT (id) DO NOTHING",
        names = event_names(),
    )
}

/// Appends `events` to `out` as rows of COPY's text format, columns in [`EVENT_COLUMNS`]
/// order: tab-separated, `\N` for NULL, backslash, tab, newline and carriage return escaped.
pub(super) fn copy_rows<'e>(
    events: impl Iterator<Item = &'e UsageEvent>,
    out: &mut Vec<u8>,
) -> Result<()> {
    use std::io::Write;
    for e in events {
        for (i, c) in EVENT_COLUMNS.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match c.get {
                Get::Text(f) => match f(e) {
                    Some(s) => copy_escape(&s, out),
                    None => out.extend_from_slice(b"\\N"),
                },
                Get::Int(f) => match f(e)? {
                    // Writing to a Vec cannot fail.
                    Some(n) => {
                        write!(out, "{n}").map_err(|e| Error::store(BACKEND, "insert", e))?
                    }
                    None => out.extend_from_slice(b"\\N"),
                },
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

fn copy_escape(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// The arrays [`insert_sql`] binds.
pub(super) fn insert_arrays<'e>(
    events: impl Iterator<Item = &'e UsageEvent> + Clone,
) -> Result<Vec<Array>> {
    arrays(&EVENT_COLUMNS.iter().collect::<Vec<_>>(), events)
}

/// `UPDATE events SET <price columns> FROM UNNEST($1::bigint[] /* seq */, …)`, binding the seqs
/// and then [`reprice_arrays`].
pub(super) fn reprice_sql() -> String {
    let cols = price_columns();
    format!(
        "UPDATE events AS e SET {sets} FROM UNNEST($1::bigint[], {params}) AS u(seq, {names}) WHERE e.seq = u.seq",
        sets = cols
            .iter()
            .map(|c| format!("{} = u.{}", c.name, c.name))
            .collect::<Vec<_>>()
            .join(", "),
        params = unnest_params(&cols, 2),
        names = names(&cols),
    )
}

/// The arrays [`reprice_sql`] binds after the seqs.
pub(super) fn reprice_arrays<'e>(
    events: impl Iterator<Item = &'e UsageEvent> + Clone,
) -> Result<Vec<Array>> {
    arrays(&price_columns(), events)
}

/// The SELECT list that [`event_from_row`] reads, for `events` aliased `e`.
pub(super) fn select_list() -> String {
    EVENT_COLUMNS
        .iter()
        .map(|c| {
            if c.name == "tags" {
                "e.tags::text AS tags".to_owned()
            } else {
                format!("e.{}", c.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad(column: &str, why: impl std::fmt::Display) -> Error {
    Error::store(BACKEND, "read", format!("events.{column}: {why}"))
}

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T> {
    row.try_get(column)
        .map_err(|e| Error::store(BACKEND, "read", e))
}

fn count(row: &PgRow, column: &str) -> Result<u64> {
    let v: i64 = get(row, column)?;
    u64::try_from(v).map_err(|_| bad(column, format!("{v} is negative")))
}

fn opt_count(row: &PgRow, column: &str) -> Result<Option<u64>> {
    let v: Option<i64> = get(row, column)?;
    v.map(|v| u64::try_from(v).map_err(|_| bad(column, format!("{v} is negative"))))
        .transpose()
}

fn usd(row: &PgRow, column: &str) -> Result<Usd> {
    let v: Option<i64> = get(row, column)?;
    Ok(Usd::from_nanos(v.unwrap_or(0).into()))
}

fn parse<T: FromStr<Err = Error>>(row: &PgRow, column: &str) -> Result<Option<T>> {
    let v: Option<String> = get(row, column)?;
    v.map(|s| s.parse::<T>().map_err(|e| bad(column, e)))
        .transpose()
}

/// Reads an event selected with [`select_list`].
pub(super) fn event_from_row(row: &PgRow) -> Result<UsageEvent> {
    let cost_total: Option<i64> = get(row, "cost_total")?;
    let cost = match cost_total {
        None => None,
        Some(total) => Some(EventCost {
            input: usd(row, "cost_input")?,
            cache_read: usd(row, "cost_cache_read")?,
            cache_write_5m: usd(row, "cost_cache_write_5m")?,
            cache_write_1h: usd(row, "cost_cache_write_1h")?,
            output: usd(row, "cost_output")?,
            web_search: usd(row, "cost_web_search")?,
            total: Usd::from_nanos(total.into()),
        }),
    };
    let source: String = get(row, "cost_source")?;
    let cost_source = match source.as_str() {
        "calculated" => CostSource::Calculated,
        "provided" => CostSource::Provided,
        "unpriced" => CostSource::Unpriced,
        other => {
            return Err(bad(
                "cost_source",
                format!("`{other}` is not calculated, provided or unpriced"),
            ));
        }
    };
    let id: String = get(row, "id")?;
    let tags: String = get(row, "tags")?;
    Ok(UsageEvent {
        id: EventId::new(id).map_err(|e| bad("id", e))?,
        timestamp: ms_to_time(get(row, "ts_ms")?)?,
        provider: get(row, "provider")?,
        model: get(row, "model")?,
        resolved_model: get(row, "resolved_model")?,
        usage: TokenUsage {
            input: count(row, "input")?,
            cache_read: count(row, "cache_read")?,
            cache_write_5m: count(row, "cache_write_5m")?,
            cache_write_1h: count(row, "cache_write_1h")?,
            output: count(row, "output")?,
            reasoning: count(row, "reasoning")?,
            web_search_requests: count(row, "web_search_requests")?,
            web_fetch_requests: count(row, "web_fetch_requests")?,
        },
        cost,
        cost_source,
        unpriced_reason: get(row, "unpriced_reason")?,
        catalog_version: get(row, "catalog_version")?,
        latency_ms: opt_count(row, "latency_ms")?,
        duration_ms: opt_count(row, "duration_ms")?,
        status: parse::<Status>(row, "status")?.unwrap_or_default(),
        error_type: get(row, "error_type")?,
        error_message: get(row, "error_message")?,
        context: PricingContext {
            service_tier: parse::<ServiceTier>(row, "service_tier")?.unwrap_or_default(),
            speed: parse::<Speed>(row, "speed")?.unwrap_or_default(),
            inference_geo: get(row, "inference_geo")?,
            platform: parse::<Platform>(row, "platform")?,
            deployment: parse::<Deployment>(row, "deployment")?,
        },
        user_id: get(row, "user_id")?,
        tags: serde_json::from_str(&tags).map_err(|e| bad("tags", e))?,
    })
}
