//! Queries as data: what to count ([`Query`]), over which events ([`Filter`]), grouped how
//! ([`Dimension`], [`Bucket`]), and the mergeable sums every backend returns ([`Totals`]). The
//! engine that plans a query over raw events and rollups lives in [`engine`]; the dashboard
//! reports built on it in [`reports`].

pub mod engine;
pub mod reports;
pub mod time;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{Status, UsageEvent};
use crate::money::Usd;

pub use time::{Bucket, Period, TimeRange, parse_tz};

/// Something events can be grouped or filtered by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// `user_id`.
    User,
    /// The provider key.
    Provider,
    /// The resolved model id (the reported one when unpriced).
    Model,
    /// `success` / `error`.
    Status,
    /// A tag's value.
    Tag(String),
}

impl Dimension {
    /// Parses `user`, `provider`, `model`, `status`, or any other word as a tag key
    /// (`tag:workflow` also works).
    pub fn parse(s: &str) -> Result<Dimension> {
        let t = s.trim();
        if t.is_empty() {
            return Err(Error::argument("dimension", "is empty"));
        }
        Ok(match t {
            "user" | "user_id" => Dimension::User,
            "provider" => Dimension::Provider,
            "model" => Dimension::Model,
            "status" => Dimension::Status,
            other => Dimension::Tag(other.strip_prefix("tag:").unwrap_or(other).to_owned()),
        })
    }

    /// The name used in results and exports (`user`, `model`, `workflow`).
    pub fn name(&self) -> &str {
        match self {
            Dimension::User => "user",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
            Dimension::Status => "status",
            Dimension::Tag(k) => k,
        }
    }

    /// This dimension's value for an event.
    pub fn value_of<'a>(&self, e: &'a UsageEvent) -> Option<&'a str> {
        match self {
            Dimension::User => e.user_id.as_deref(),
            Dimension::Provider => Some(&e.provider),
            Dimension::Model => Some(e.model_key()),
            Dimension::Status => Some(e.status.as_str()),
            Dimension::Tag(k) => e.tags.get(k).map(String::as_str),
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which events a query counts. Every condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Only events in this range (all time when absent).
    pub range: Option<TimeRange>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only these tag values (`workflow = "summarise"`).
    pub tags: BTreeMap<String, String>,
    /// Only this model (resolved id, or reported id for unpriced events).
    pub model: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
}

impl Filter {
    /// True when the event passes every condition.
    pub fn matches(&self, e: &UsageEvent) -> bool {
        self.range.is_none_or(|r| r.contains(e.timestamp))
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| e.user_id.as_deref() == Some(u))
            && self.model.as_deref().is_none_or(|m| e.model_key() == m)
            && self.provider.as_deref().is_none_or(|p| e.provider == p)
            && self.status.is_none_or(|s| e.status == s)
            && self.tags.iter().all(|(k, v)| e.tags.get(k) == Some(v))
    }

    /// The dimensions this filter constrains.
    pub fn dimensions(&self) -> Vec<Dimension> {
        let mut d = Vec::new();
        if self.user_id.is_some() {
            d.push(Dimension::User);
        }
        if self.model.is_some() {
            d.push(Dimension::Model);
        }
        if self.provider.is_some() {
            d.push(Dimension::Provider);
        }
        if self.status.is_some() {
            d.push(Dimension::Status);
        }
        d.extend(self.tags.keys().map(|k| Dimension::Tag(k.clone())));
        d
    }

    /// Narrows this filter to a scope (a user and/or tags). Fails when the filter already
    /// asks for something outside the scope, so a scoped handle can never widen its view.
    pub fn within(&self, scope: &Filter) -> Result<Filter> {
        let mut f = self.clone();
        if let Some(u) = &scope.user_id {
            match &f.user_id {
                Some(x) if x != u => {
                    return Err(Error::argument(
                        "user_id",
                        format!("`{x}` is outside this handle's scope"),
                    ));
                }
                _ => f.user_id = Some(u.clone()),
            }
        }
        for (k, v) in &scope.tags {
            match f.tags.get(k) {
                Some(x) if x != v => {
                    return Err(Error::argument(
                        format!("tags.{k}"),
                        format!("`{x}` is outside this handle's scope"),
                    ));
                }
                _ => {
                    f.tags.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(f)
    }
}

/// Sums over a set of events. Every field adds up, so partial sums from raw events and from
/// rollups merge exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Events.
    pub requests: u64,
    /// Events with status error.
    pub errors: u64,
    /// Events with no price.
    pub unpriced: u64,
    /// Uncached input tokens.
    pub input: u64,
    /// Cache-read tokens.
    pub cache_read: u64,
    /// 5-minute cache-write tokens.
    pub cache_write_5m: u64,
    /// 1-hour cache-write tokens.
    pub cache_write_1h: u64,
    /// Output tokens.
    pub output: u64,
    /// Reasoning tokens (within output).
    pub reasoning: u64,
    /// Web search requests.
    pub web_search_requests: u64,
    /// Web fetch requests.
    pub web_fetch_requests: u64,
    /// Cost of uncached input.
    pub cost_input: Usd,
    /// Cost of cache reads.
    pub cost_cache_read: Usd,
    /// Cost of 5-minute cache writes.
    pub cost_cache_write_5m: Usd,
    /// Cost of 1-hour cache writes.
    pub cost_cache_write_1h: Usd,
    /// Cost of output.
    pub cost_output: Usd,
    /// Web search fees.
    pub cost_web_search: Usd,
    /// Total cost (provided costs included).
    pub cost_total: Usd,
    /// Sum of recorded latencies, ms.
    pub latency_sum_ms: u64,
    /// Events with a latency.
    pub latency_count: u64,
    /// Sum of recorded durations, ms.
    pub duration_sum_ms: u64,
}

impl Totals {
    /// The totals of one event.
    pub fn of(e: &UsageEvent) -> Totals {
        let c = e.cost.unwrap_or_default();
        Totals {
            requests: 1,
            errors: u64::from(e.status == Status::Error),
            unpriced: u64::from(e.cost.is_none()),
            input: e.usage.input,
            cache_read: e.usage.cache_read,
            cache_write_5m: e.usage.cache_write_5m,
            cache_write_1h: e.usage.cache_write_1h,
            output: e.usage.output,
            reasoning: e.usage.reasoning,
            web_search_requests: e.usage.web_search_requests,
            web_fetch_requests: e.usage.web_fetch_requests,
            cost_input: c.input,
            cost_cache_read: c.cache_read,
            cost_cache_write_5m: c.cache_write_5m,
            cost_cache_write_1h: c.cache_write_1h,
            cost_output: c.output,
            cost_web_search: c.web_search,
            cost_total: c.total,
            latency_sum_ms: e.latency_ms.unwrap_or(0),
            latency_count: u64::from(e.latency_ms.is_some()),
            duration_sum_ms: e.duration_ms.unwrap_or(0),
        }
    }

    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.unpriced += o.unpriced;
        self.input += o.input;
        self.cache_read += o.cache_read;
        self.cache_write_5m += o.cache_write_5m;
        self.cache_write_1h += o.cache_write_1h;
        self.output += o.output;
        self.reasoning += o.reasoning;
        self.web_search_requests += o.web_search_requests;
        self.web_fetch_requests += o.web_fetch_requests;
        self.cost_input += o.cost_input;
        self.cost_cache_read += o.cost_cache_read;
        self.cost_cache_write_5m += o.cost_cache_write_5m;
        self.cost_cache_write_1h += o.cost_cache_write_1h;
        self.cost_output += o.cost_output;
        self.cost_web_search += o.cost_web_search;
        self.cost_total += o.cost_total;
        self.latency_sum_ms += o.latency_sum_ms;
        self.latency_count += o.latency_count;
        self.duration_sum_ms += o.duration_sum_ms;
    }

    /// `self − o`, field by field (counts saturate at zero): the events in `self` that are not
    /// in `o`, when `o` is a subset of `self`.
    pub fn minus(&self, o: &Totals) -> Totals {
        Totals {
            requests: self.requests.saturating_sub(o.requests),
            errors: self.errors.saturating_sub(o.errors),
            unpriced: self.unpriced.saturating_sub(o.unpriced),
            input: self.input.saturating_sub(o.input),
            cache_read: self.cache_read.saturating_sub(o.cache_read),
            cache_write_5m: self.cache_write_5m.saturating_sub(o.cache_write_5m),
            cache_write_1h: self.cache_write_1h.saturating_sub(o.cache_write_1h),
            output: self.output.saturating_sub(o.output),
            reasoning: self.reasoning.saturating_sub(o.reasoning),
            web_search_requests: self
                .web_search_requests
                .saturating_sub(o.web_search_requests),
            web_fetch_requests: self.web_fetch_requests.saturating_sub(o.web_fetch_requests),
            cost_input: self.cost_input - o.cost_input,
            cost_cache_read: self.cost_cache_read - o.cost_cache_read,
            cost_cache_write_5m: self.cost_cache_write_5m - o.cost_cache_write_5m,
            cost_cache_write_1h: self.cost_cache_write_1h - o.cost_cache_write_1h,
            cost_output: self.cost_output - o.cost_output,
            cost_web_search: self.cost_web_search - o.cost_web_search,
            cost_total: self.cost_total - o.cost_total,
            latency_sum_ms: self.latency_sum_ms.saturating_sub(o.latency_sum_ms),
            latency_count: self.latency_count.saturating_sub(o.latency_count),
            duration_sum_ms: self.duration_sum_ms.saturating_sub(o.duration_sum_ms),
        }
    }

    /// Prompt tokens: input + cache reads + cache writes.
    pub fn prompt_tokens(&self) -> u64 {
        self.input + self.cache_read + self.cache_write_5m + self.cache_write_1h
    }

    /// Prompt plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens() + self.output
    }

    /// Mean latency in ms, `None` without latencies. (A ratio shown to people: a float.)
    pub fn latency_avg_ms(&self) -> Option<f64> {
        (self.latency_count > 0).then(|| self.latency_sum_ms as f64 / self.latency_count as f64)
    }
}

/// A quantity rows can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Events.
    Requests,
    /// Errors.
    Errors,
    /// Unpriced events.
    Unpriced,
    /// Uncached input tokens.
    InputTokens,
    /// Cache-read tokens.
    CacheReadTokens,
    /// Cache-write tokens (both TTLs).
    CacheWriteTokens,
    /// Output tokens.
    OutputTokens,
    /// Reasoning tokens.
    ReasoningTokens,
    /// Prompt + output tokens.
    TotalTokens,
    /// Total cost.
    Cost,
    /// Mean latency.
    LatencyAvg,
    /// 95th percentile latency (requires `Query::latency_p95`).
    LatencyP95,
    /// Total duration.
    Duration,
}

impl Metric {
    /// Parses a metric name (`cost`, `requests`, `total_tokens`…).
    pub fn parse(s: &str) -> Result<Metric> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase())).map_err(|_| {
            Error::argument(
                "sort",
                format!("`{s}` is not a metric (requests, errors, unpriced, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens, cost, latency_avg, latency_p95, duration)"),
            )
        })
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Largest first.
    #[default]
    Desc,
    /// Smallest first.
    Asc,
}

/// Time bucketing: a bucket size in a time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucketing {
    /// The bucket size.
    pub bucket: Bucket,
    /// IANA time zone name.
    pub tz: String,
}

/// The general query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Query {
    /// Which events.
    pub filter: Filter,
    /// Group by these dimensions.
    pub group_by: Vec<Dimension>,
    /// And/or by time bucket (needs `filter.range`).
    pub bucket: Option<Bucketing>,
    /// Count distinct values of these dimensions per row.
    pub distinct: Vec<Dimension>,
    /// Compute the 95th percentile latency per row (from raw events).
    pub latency_p95: bool,
    /// Emit empty buckets too (with zero totals), for charts.
    pub fill_empty: bool,
    /// Sort rows by this metric (default: by bucket, then group).
    pub sort: Option<(Metric, Order)>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Skip this many rows first.
    pub offset: usize,
}

/// One result row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryRow {
    /// The group's dimension values, in `group_by` order (`None`: the event had none).
    pub group: Vec<Option<String>>,
    /// The bucket's start, when bucketed.
    pub bucket: Option<DateTime<Utc>>,
    /// The sums.
    pub totals: Totals,
    /// Distinct counts, by dimension name.
    pub distinct: BTreeMap<String, u64>,
    /// 95th percentile latency in ms (nearest rank), when asked for and known.
    pub latency_p95_ms: Option<u64>,
}

impl QueryRow {
    /// The value of `m` for this row, as a number to sort by.
    pub fn metric(&self, m: Metric) -> rust_decimal::Decimal {
        use rust_decimal::Decimal;
        let t = &self.totals;
        match m {
            Metric::Requests => t.requests.into(),
            Metric::Errors => t.errors.into(),
            Metric::Unpriced => t.unpriced.into(),
            Metric::InputTokens => t.input.into(),
            Metric::CacheReadTokens => t.cache_read.into(),
            Metric::CacheWriteTokens => (t.cache_write_5m + t.cache_write_1h).into(),
            Metric::OutputTokens => t.output.into(),
            Metric::ReasoningTokens => t.reasoning.into(),
            Metric::TotalTokens => t.total_tokens().into(),
            Metric::Cost => t.cost_total.as_decimal(),
            Metric::LatencyAvg => {
                if t.latency_count == 0 {
                    Decimal::ZERO
                } else {
                    Decimal::from(t.latency_sum_ms) / Decimal::from(t.latency_count)
                }
            }
            Metric::LatencyP95 => self.latency_p95_ms.map(Decimal::from).unwrap_or_default(),
            Metric::Duration => t.duration_sum_ms.into(),
        }
    }
}

/// A query's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The dimension names of `QueryRow::group`.
    pub columns: Vec<String>,
    /// The rows (after sort, offset and limit).
    pub rows: Vec<QueryRow>,
    /// Rows before offset and limit, for pagination.
    pub total_rows: usize,
}
