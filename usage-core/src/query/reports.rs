//! The reports dashboards show, built on the general query: [`summary`], [`timeseries`],
//! [`breakdown`], [`compare`] and [`top`]. Percentages are floats (ratios shown to people);
//! money stays exact.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::engine::run;
use super::time::{Bucket, TimeRange};
use super::{Bucketing, Dimension, Filter, Metric, Order, Query, Totals};
use crate::error::Result;
use crate::money::{USD_SCALE, Usd};
use crate::store::Store;

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn money_ratio(part: Usd, whole: Usd) -> f64 {
    if whole.is_zero() {
        return 0.0;
    }
    let r = part.as_decimal() * Decimal::ONE_HUNDRED / whole.as_decimal();
    r.round_dp(6).to_string().parse().unwrap_or(0.0)
}

fn per(amount: Usd, n: u64) -> Option<Usd> {
    (n > 0).then(|| {
        Usd::new(
            (amount.as_decimal() / Decimal::from(n))
                .round_dp_with_strategy(USD_SCALE, RoundingStrategy::MidpointNearestEven),
        )
    })
}

/// Each token category's share of all tokens, in percent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenShares {
    /// Uncached input.
    pub input: f64,
    /// Cache reads.
    pub cache_read: f64,
    /// Cache writes (both TTLs).
    pub cache_write: f64,
    /// Output.
    pub output: f64,
}

impl TokenShares {
    fn of(t: &Totals) -> Self {
        let all = t.total_tokens();
        TokenShares {
            input: ratio(t.input, all),
            cache_read: ratio(t.cache_read, all),
            cache_write: ratio(t.cache_write_5m + t.cache_write_1h, all),
            output: ratio(t.output, all),
        }
    }
}

/// Totals over a period with the derived figures dashboards show.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The period (all time when absent).
    pub range: Option<TimeRange>,
    /// The sums.
    pub totals: Totals,
    /// Distinct counts of the requested dimensions (e.g. workflows, instances).
    pub distinct: BTreeMap<String, u64>,
    /// Mean cost per request.
    pub avg_cost_per_request: Option<Usd>,
    /// Mean tokens per request.
    pub avg_tokens_per_request: Option<f64>,
    /// Mean cost per distinct value of each requested dimension ("per instance").
    pub avg_cost_per_distinct: BTreeMap<String, Usd>,
    /// Cost per 1,000 tokens.
    pub cost_per_1k_tokens: Option<Usd>,
    /// Mean latency, ms. (Percentiles need every raw latency, so a summary, which must stay
    /// cheap over any period, leaves them out: ask a [`Query`] with `latency_p95`.)
    pub latency_avg_ms: Option<f64>,
    /// Sum of call durations, ms ("total execution time").
    pub total_duration_ms: u64,
    /// Token categories as shares of all tokens.
    pub token_shares: TokenShares,
}

/// Totals for `filter`, with distinct counts of `distinct` (e.g. `workflow`, `instance`).
pub async fn summary(
    store: &dyn Store,
    filter: &Filter,
    distinct: &[Dimension],
) -> Result<Summary> {
    let q = Query {
        filter: filter.clone(),
        distinct: distinct.to_vec(),
        ..Default::default()
    };
    let res = run(store, &q).await?;
    let row = res.rows.into_iter().next().unwrap_or_default();
    let t = row.totals;
    Ok(Summary {
        range: filter.range,
        avg_cost_per_request: per(t.cost_total, t.requests),
        avg_tokens_per_request: (t.requests > 0)
            .then(|| t.total_tokens() as f64 / t.requests as f64),
        avg_cost_per_distinct: row
            .distinct
            .iter()
            .filter_map(|(k, n)| per(t.cost_total, *n).map(|c| (k.clone(), c)))
            .collect(),
        cost_per_1k_tokens: (t.total_tokens() > 0).then(|| {
            Usd::new(
                (t.cost_total.as_decimal() * Decimal::from(1000) / Decimal::from(t.total_tokens()))
                    .round_dp_with_strategy(USD_SCALE, RoundingStrategy::MidpointNearestEven),
            )
        }),
        latency_avg_ms: t.latency_avg_ms(),
        total_duration_ms: t.duration_sum_ms,
        token_shares: TokenShares::of(&t),
        distinct: row.distinct,
        totals: t,
    })
}

/// One point of a time series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The bucket's first instant.
    pub start: DateTime<Utc>,
    /// The next bucket's first instant.
    pub end: DateTime<Utc>,
    /// The sums (zero for an empty bucket).
    pub totals: Totals,
}

/// Per-bucket sums over `filter.range` (required), every bucket present, empty ones zero.
pub async fn timeseries(
    store: &dyn Store,
    filter: &Filter,
    bucket: Bucket,
    tz: &str,
) -> Result<Vec<Point>> {
    let q = Query {
        filter: filter.clone(),
        bucket: Some(Bucketing {
            bucket,
            tz: tz.to_owned(),
        }),
        fill_empty: true,
        ..Default::default()
    };
    let zone = super::time::parse_tz(tz)?;
    let res = run(store, &q).await?;
    Ok(res
        .rows
        .into_iter()
        .filter_map(|r| {
            let start = r.bucket?;
            Some(Point {
                start,
                end: bucket.next(&zone, start),
                totals: r.totals,
            })
        })
        .collect())
}

/// One group's sums and its shares of the whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// The dimension's value (`None`: events without it).
    pub key: Option<String>,
    /// The sums.
    pub totals: Totals,
    /// Share of total cost, percent.
    pub cost_share: f64,
    /// Share of total tokens, percent.
    pub token_share: f64,
    /// Share of requests, percent.
    pub request_share: f64,
}

/// A page of shares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharePage {
    /// The dimension.
    pub by: String,
    /// The rows of this page.
    pub rows: Vec<Share>,
    /// Groups in all, for pagination.
    pub total_rows: usize,
    /// Sums over every group (not just this page).
    pub totals: Totals,
}

async fn shares(
    store: &dyn Store,
    filter: &Filter,
    by: &Dimension,
    metric: Metric,
    limit: Option<usize>,
    offset: usize,
) -> Result<SharePage> {
    let q = Query {
        filter: filter.clone(),
        group_by: vec![by.clone()],
        sort: Some((metric, Order::Desc)),
        ..Default::default()
    };
    let res = run(store, &q).await?;
    let mut all = Totals::default();
    for r in &res.rows {
        all.merge(&r.totals);
    }
    let rows = res
        .rows
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|r| Share {
            key: r.group.into_iter().next().flatten(),
            cost_share: money_ratio(r.totals.cost_total, all.cost_total),
            token_share: ratio(r.totals.total_tokens(), all.total_tokens()),
            request_share: ratio(r.totals.requests, all.requests),
            totals: r.totals,
        })
        .collect();
    Ok(SharePage {
        by: by.name().to_owned(),
        rows,
        total_rows: res.total_rows,
        totals: all,
    })
}

/// Sums by `by` (model, user, any tag) with shares of the total, largest cost first.
pub async fn breakdown(store: &dyn Store, filter: &Filter, by: &Dimension) -> Result<SharePage> {
    shares(store, filter, by, Metric::Cost, None, 0).await
}

/// The heaviest values of `by` by `metric`, paginated.
pub async fn top(
    store: &dyn Store,
    filter: &Filter,
    by: &Dimension,
    metric: Metric,
    limit: usize,
    offset: usize,
) -> Result<SharePage> {
    shares(store, filter, by, metric, Some(limit), offset).await
}

/// This period against a previous one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The current period.
    pub current_range: Option<TimeRange>,
    /// The previous period.
    pub previous_range: Option<TimeRange>,
    /// Sums now.
    pub current: Totals,
    /// Sums before.
    pub previous: Totals,
    /// Cost now minus cost before.
    pub cost_delta: Usd,
    /// Relative cost change in percent (`None` when before was zero).
    pub cost_change: Option<f64>,
    /// Requests now minus before.
    pub requests_delta: i64,
    /// Relative request change in percent.
    pub requests_change: Option<f64>,
    /// Tokens now minus before.
    pub tokens_delta: i64,
    /// Relative token change in percent.
    pub tokens_change: Option<f64>,
}

fn change(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) * 100.0 / before)
}

/// Sums over `current` and `previous` (both applied to `filter`) and their differences.
pub async fn compare(
    store: &dyn Store,
    filter: &Filter,
    current: TimeRange,
    previous: TimeRange,
) -> Result<Comparison> {
    let now = summary(
        store,
        &Filter {
            range: Some(current),
            ..filter.clone()
        },
        &[],
    )
    .await?
    .totals;
    let before = summary(
        store,
        &Filter {
            range: Some(previous),
            ..filter.clone()
        },
        &[],
    )
    .await?
    .totals;
    let f = |u: Usd| u.as_decimal().to_string().parse::<f64>().unwrap_or(0.0);
    Ok(Comparison {
        current_range: Some(current),
        previous_range: Some(previous),
        cost_delta: now.cost_total - before.cost_total,
        cost_change: change(f(now.cost_total), f(before.cost_total)),
        requests_delta: now.requests as i64 - before.requests as i64,
        requests_change: change(now.requests as f64, before.requests as f64),
        tokens_delta: now.total_tokens() as i64 - before.total_tokens() as i64,
        tokens_change: change(now.total_tokens() as f64, before.total_tokens() as f64),
        current: now,
        previous: before,
    })
}
