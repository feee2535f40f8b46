//! How a [`UsageEvent`] maps to an `events` row and back, with the [`Sums`] it adds to its
//! rollup cells.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Type;
use usage_core::event::{CostSource, EventCost, EventId, Status, UsageEvent};
use usage_core::{Error, PricingContext, TokenUsage, Usd};

use crate::rollups::{Sums, int, nanos};

/// The `Totals` fields, in the order [`Sums`] holds them; also the rollup column names.
pub(super) const TOTALS_COLS: [&str; 21] = crate::TOTALS_COLUMNS;

/// The `events` columns an event is written to and read from, in bind/select order.
pub(super) const EVENT_COLS: [&str; 36] = [
    "id",
    "ts_ms",
    "provider",
    "model",
    "model_key",
    "resolved_model",
    "user_id",
    "input",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning",
    "web_search_requests",
    "web_fetch_requests",
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
    "latency_ms",
    "duration_ms",
    "status",
    "error_type",
    "error_message",
    "service_tier",
    "speed",
    "inference_geo",
    "platform",
    "deployment",
    "tags",
];

/// `e.id, e.ts_ms, …`: the select list for [`event_from_row`].
pub(super) fn event_select() -> String {
    EVENT_COLS
        .iter()
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The timestamp in Unix milliseconds (sub-millisecond precision is dropped, as documented).
pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The smallest whole millisecond at or after `t`. A stored event (whole ms) is at or after
/// `t` exactly when its millisecond is at or after this, which keeps range filters exact.
pub(super) fn ceil_ms(t: DateTime<Utc>) -> i64 {
    let m = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        m
    } else {
        m + 1
    }
}

pub(super) fn from_ms(ms: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, ms))
}

/// Everything written for one event, converted and checked before any transaction starts.
pub(super) struct EventRow<'a> {
    pub e: &'a UsageEvent,
    pub ts_ms: i64,
    pub tokens: [i64; 8],
    /// input, cache_read, cache_write_5m, cache_write_1h, output, web_search, total.
    pub cost: Option<[i64; 7]>,
    pub latency_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sums: Sums,
    /// The tags as a canonical JSON object (a BTreeMap serialises with sorted keys).
    pub tags_json: String,
}

impl<'a> EventRow<'a> {
    pub fn new(e: &'a UsageEvent) -> usage_core::Result<Self> {
        if e.user_id.as_deref() == Some("") {
            // Rollups store a missing user as '', so an empty id would merge with "no user".
            return Err(Error::argument(
                "user_id",
                format!("event `{}` has an empty user_id", e.id),
            ));
        }
        let u = &e.usage;
        let tokens = [
            int("input", u.input)?,
            int("cache_read", u.cache_read)?,
            int("cache_write_5m", u.cache_write_5m)?,
            int("cache_write_1h", u.cache_write_1h)?,
            int("output", u.output)?,
            int("reasoning", u.reasoning)?,
            int("web_search_requests", u.web_search_requests)?,
            int("web_fetch_requests", u.web_fetch_requests)?,
        ];
        let cost = match &e.cost {
            None => None,
            Some(c) => Some([
                nanos("cost.input", c.input)?,
                nanos("cost.cache_read", c.cache_read)?,
                nanos("cost.cache_write_5m", c.cache_write_5m)?,
                nanos("cost.cache_write_1h", c.cache_write_1h)?,
                nanos("cost.output", c.output)?,
                nanos("cost.web_search", c.web_search)?,
                nanos("cost.total", c.total)?,
            ]),
        };
        let latency_ms = e.latency_ms.map(|v| int("latency_ms", v)).transpose()?;
        let duration_ms = e.duration_ms.map(|v| int("duration_ms", v)).transpose()?;
        // Exactly `Totals::of`, in integers (a unit test holds the two together).
        let c = cost.unwrap_or_default();
        let sums = Sums([
            1,
            i64::from(e.status == Status::Error),
            i64::from(cost.is_none()),
            tokens[0],
            tokens[1],
            tokens[2],
            tokens[3],
            tokens[4],
            tokens[5],
            tokens[6],
            tokens[7],
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            latency_ms.unwrap_or(0),
            i64::from(latency_ms.is_some()),
            duration_ms.unwrap_or(0),
        ]);
        Ok(EventRow {
            e,
            ts_ms: ms(e.timestamp),
            tokens,
            cost,
            latency_ms,
            duration_ms,
            sums,
            tags_json: serde_json::to_string(&e.tags).unwrap_or_else(|_| "{}".to_owned()),
        })
    }

    /// The values of [`EVENT_COLS`], in order.
    pub fn bind(&self, stmt: &mut rusqlite::Statement<'_>) -> rusqlite::Result<()> {
        let e = self.e;
        let c = self.cost;
        let cost = |i: usize| c.map(|c| c[i]);
        let ctx = &e.context;
        stmt.raw_bind_parameter(1, e.id.as_str())?;
        stmt.raw_bind_parameter(2, self.ts_ms)?;
        stmt.raw_bind_parameter(3, e.provider.as_str())?;
        stmt.raw_bind_parameter(4, e.model.as_str())?;
        stmt.raw_bind_parameter(5, e.model_key())?;
        stmt.raw_bind_parameter(6, e.resolved_model.as_deref())?;
        stmt.raw_bind_parameter(7, e.user_id.as_deref())?;
        for (i, t) in self.tokens.iter().enumerate() {
            stmt.raw_bind_parameter(8 + i, t)?;
        }
        for i in 0..7 {
            stmt.raw_bind_parameter(16 + i, cost(i))?;
        }
        stmt.raw_bind_parameter(23, e.cost_source.as_str())?;
        stmt.raw_bind_parameter(24, e.unpriced_reason.as_deref())?;
        stmt.raw_bind_parameter(25, e.catalog_version.as_deref())?;
        stmt.raw_bind_parameter(26, self.latency_ms)?;
        stmt.raw_bind_parameter(27, self.duration_ms)?;
        stmt.raw_bind_parameter(28, e.status.as_str())?;
        stmt.raw_bind_parameter(29, e.error_type.as_deref())?;
        stmt.raw_bind_parameter(30, e.error_message.as_deref())?;
        stmt.raw_bind_parameter(31, ctx.service_tier.as_str())?;
        stmt.raw_bind_parameter(32, ctx.speed.as_str())?;
        stmt.raw_bind_parameter(33, ctx.inference_geo.as_deref())?;
        stmt.raw_bind_parameter(34, ctx.platform.map(|p| p.as_str()))?;
        stmt.raw_bind_parameter(35, ctx.deployment.map(|d| d.as_str()))?;
        stmt.raw_bind_parameter(36, self.tags_json.as_str())?;
        Ok(())
    }
}

fn bad(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

fn parse<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr<Err = Error>,
{
    let s: String = row.get(idx)?;
    s.parse().map_err(|e| bad(idx, e))
}

fn parse_opt<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>>
where
    T: std::str::FromStr<Err = Error>,
{
    let s: Option<String> = row.get(idx)?;
    s.map(|s| s.parse().map_err(|e| bad(idx, e))).transpose()
}

fn unsigned(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn unsigned_opt(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)))
        .transpose()
}

/// Rebuilds an event from [`EVENT_COLS`] starting at column `base`.
pub(super) fn event_from_row(row: &Row<'_>, base: usize) -> rusqlite::Result<UsageEvent> {
    let c = |i: usize| base + i;
    let id: String = row.get(c(0))?;
    let id = EventId::new(id).map_err(|e| bad(c(0), e))?;
    let cost_total: Option<i64> = row.get(c(21))?;
    let cost = match cost_total {
        None => None,
        Some(total) => {
            let usd = |i: usize| -> rusqlite::Result<Usd> {
                let v: Option<i64> = row.get(c(i))?;
                Ok(Usd::from_nanos(i128::from(v.unwrap_or(0))))
            };
            Some(EventCost {
                input: usd(15)?,
                cache_read: usd(16)?,
                cache_write_5m: usd(17)?,
                cache_write_1h: usd(18)?,
                output: usd(19)?,
                web_search: usd(20)?,
                total: Usd::from_nanos(i128::from(total)),
            })
        }
    };
    let cost_source = {
        let s: String = row.get(c(22))?;
        match s.as_str() {
            "calculated" => CostSource::Calculated,
            "provided" => CostSource::Provided,
            "unpriced" => CostSource::Unpriced,
            other => {
                return Err(bad(
                    c(22),
                    Error::argument("cost_source", format!("`{other}` is not a cost source")),
                ));
            }
        }
    };
    let tags: BTreeMap<String, String> = {
        let s: String = row.get(c(35))?;
        serde_json::from_str(&s).map_err(|e| bad(c(35), e))?
    };
    Ok(UsageEvent {
        id,
        timestamp: from_ms(row.get(c(1))?)?,
        provider: row.get(c(2))?,
        model: row.get(c(3))?,
        resolved_model: row.get(c(5))?,
        user_id: row.get(c(6))?,
        usage: TokenUsage {
            input: unsigned(row, c(7))?,
            cache_read: unsigned(row, c(8))?,
            cache_write_5m: unsigned(row, c(9))?,
            cache_write_1h: unsigned(row, c(10))?,
            output: unsigned(row, c(11))?,
            reasoning: unsigned(row, c(12))?,
            web_search_requests: unsigned(row, c(13))?,
            web_fetch_requests: unsigned(row, c(14))?,
        },
        cost,
        cost_source,
        unpriced_reason: row.get(c(23))?,
        catalog_version: row.get(c(24))?,
        latency_ms: unsigned_opt(row, c(25))?,
        duration_ms: unsigned_opt(row, c(26))?,
        status: parse::<Status>(row, c(27))?,
        error_type: row.get(c(28))?,
        error_message: row.get(c(29))?,
        context: PricingContext {
            service_tier: parse(row, c(30))?,
            speed: parse(row, c(31))?,
            inference_geo: row.get(c(32))?,
            platform: parse_opt(row, c(33))?,
            deployment: parse_opt(row, c(34))?,
        },
        tags,
    })
}
