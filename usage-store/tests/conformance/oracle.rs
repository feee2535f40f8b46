//! The independent computation every answer is checked against: plain loops over the events a
//! test recorded. Nothing here calls the engine, `Filter::matches`, `Totals::of` or
//! `Bucket::floor`, so a bug there cannot hide itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use usage_core::event::{Status, UsageEvent};
use usage_core::query::{Bucket, Dimension, Filter, Metric, Order, Query, TimeRange, Totals};

/// A result row's identity: group values and bucket start.
pub type Key = (Vec<Option<String>>, Option<DateTime<Utc>>);

/// The event's value for a dimension: the user, the provider, the catalog id (the reported id
/// when unpriced), `success`/`error`, or a tag.
pub fn value(e: &UsageEvent, d: &Dimension) -> Option<String> {
    match d {
        Dimension::User => e.user_id.clone(),
        Dimension::Provider => Some(e.provider.clone()),
        Dimension::Model => Some(e.resolved_model.clone().unwrap_or_else(|| e.model.clone())),
        Dimension::Status => Some(
            if e.status == Status::Error {
                "error"
            } else {
                "success"
            }
            .to_owned(),
        ),
        Dimension::Tag(k) => e.tags.get(k).cloned(),
    }
}

/// True when `e` passes every condition of `f`.
pub fn passes(f: &Filter, e: &UsageEvent) -> bool {
    let in_range = f
        .range
        .is_none_or(|r| r.start <= e.timestamp && e.timestamp < r.end);
    let user = f
        .user_id
        .as_ref()
        .is_none_or(|u| e.user_id.as_ref() == Some(u));
    let model = f
        .model
        .as_ref()
        .is_none_or(|m| value(e, &Dimension::Model).as_ref() == Some(m));
    let provider = f.provider.as_ref().is_none_or(|p| &e.provider == p);
    let status = f.status.is_none_or(|s| e.status == s);
    let tags = f.tags.iter().all(|(k, v)| e.tags.get(k) == Some(v));
    in_range && user && model && provider && status && tags
}

/// Sums over events, field by field.
pub fn totals<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Totals {
    let mut t = Totals::default();
    for e in events {
        t.requests += 1;
        if e.status == Status::Error {
            t.errors += 1;
        }
        t.input += e.usage.input;
        t.cache_read += e.usage.cache_read;
        t.cache_write_5m += e.usage.cache_write_5m;
        t.cache_write_1h += e.usage.cache_write_1h;
        t.output += e.usage.output;
        t.reasoning += e.usage.reasoning;
        t.web_search_requests += e.usage.web_search_requests;
        t.web_fetch_requests += e.usage.web_fetch_requests;
        match &e.cost {
            None => t.unpriced += 1,
            Some(c) => {
                t.cost_input += c.input;
                t.cost_cache_read += c.cache_read;
                t.cost_cache_write_5m += c.cache_write_5m;
                t.cost_cache_write_1h += c.cache_write_1h;
                t.cost_output += c.output;
                t.cost_web_search += c.web_search;
                t.cost_total += c.total;
            }
        }
        if let Some(l) = e.latency_ms {
            t.latency_sum_ms += l;
            t.latency_count += 1;
        }
        if let Some(d) = e.duration_ms {
            t.duration_sum_ms += d;
        }
    }
    t
}

/// Prompt + output tokens.
pub fn tokens(t: &Totals) -> u64 {
    t.input + t.cache_read + t.cache_write_5m + t.cache_write_1h + t.output
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| panic!("test zone {name}"))
}

/// The UTC instant of local midnight starting `date` (these zones never skip midnight).
pub fn local_midnight(zone: &str, date: NaiveDate) -> DateTime<Utc> {
    let z = tz(zone);
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight");
    z.from_local_datetime(&naive)
        .earliest()
        .expect("midnight exists in the test zones")
        .with_timezone(&Utc)
}

fn local_date(zone: &str, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz(zone)).date_naive()
}

/// The start of the bucket holding `t`: hours in real time (a local hour is the stretch of
/// real time where the local clock shows that hour with one offset), other sizes from local
/// midnight.
pub fn bucket_start(b: Bucket, zone: &str, t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&tz(zone));
    match b {
        Bucket::Hour => {
            t - Duration::seconds(i64::from(local.minute()) * 60 + i64::from(local.second()))
                - Duration::nanoseconds(i64::from(local.nanosecond()))
        }
        Bucket::Day => local_midnight(zone, local.date_naive()),
        Bucket::Week { start } => {
            let d = local.date_naive();
            let back = (d.weekday().num_days_from_monday() + 7 - start.num_days_from_monday()) % 7;
            local_midnight(zone, d - Duration::days(i64::from(back)))
        }
        Bucket::Month => {
            let d = local.date_naive();
            local_midnight(
                zone,
                NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("first of month"),
            )
        }
    }
}

/// The start of the next bucket.
pub fn bucket_next(b: Bucket, zone: &str, start: DateTime<Utc>) -> DateTime<Utc> {
    let d = local_date(zone, start);
    match b {
        Bucket::Hour => start + Duration::hours(1),
        Bucket::Day => local_midnight(zone, d + Duration::days(1)),
        Bucket::Week { .. } => local_midnight(zone, d + Duration::days(7)),
        Bucket::Month => {
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            local_midnight(
                zone,
                NaiveDate::from_ymd_opt(y, m, 1).expect("first of month"),
            )
        }
    }
}

/// Every bucket overlapping `range`.
pub fn bucket_starts(b: Bucket, zone: &str, range: &TimeRange) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut s = bucket_start(b, zone, range.start);
    while s < range.end {
        out.push(s);
        s = bucket_next(b, zone, s);
    }
    out
}

/// The events of a query's filter, grouped by its dimensions and bucket.
pub fn groups<'a>(events: &'a [UsageEvent], q: &Query) -> BTreeMap<Key, Vec<&'a UsageEvent>> {
    let mut out: BTreeMap<Key, Vec<&UsageEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| passes(&q.filter, e)) {
        let group = q.group_by.iter().map(|d| value(e, d)).collect();
        let bucket = q
            .bucket
            .as_ref()
            .map(|b| bucket_start(b.bucket, &b.tz, e.timestamp));
        out.entry((group, bucket)).or_default().push(e);
    }
    out
}

/// Totals per group.
pub fn grouped_totals(events: &[UsageEvent], q: &Query) -> BTreeMap<Key, Totals> {
    groups(events, q)
        .into_iter()
        .map(|(k, v)| (k, totals(v)))
        .collect()
}

/// Distinct non-empty values of `d` among events.
pub fn distinct<'a>(events: impl IntoIterator<Item = &'a UsageEvent>, d: &Dimension) -> u64 {
    events
        .into_iter()
        .filter_map(|e| value(e, d))
        .collect::<BTreeSet<_>>()
        .len() as u64
}

/// The 95th percentile by nearest rank: the smallest value with at least 95% of samples at
/// or below it.
pub fn p95(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let rank = (n * 95).div_ceil(100);
    Some(v[rank.max(1) - 1])
}

/// A row's sort value for the metrics the tests sort by.
pub fn metric(t: &Totals, m: Metric) -> rust_decimal::Decimal {
    match m {
        Metric::Cost => t.cost_total.as_decimal(),
        Metric::Requests => t.requests.into(),
        Metric::TotalTokens => tokens(t).into(),
        Metric::Errors => t.errors.into(),
        other => panic!("the oracle does not sort by {other:?}"),
    }
}

/// Groups ordered by `metric` (ties: group order), as the engine documents.
pub fn sorted_groups(rows: &BTreeMap<Key, Totals>, m: Metric, order: Order) -> Vec<(Key, Totals)> {
    let mut v: Vec<(Key, Totals)> = rows.iter().map(|(k, t)| (k.clone(), *t)).collect();
    v.sort_by(|a, b| {
        let o = metric(&a.1, m).cmp(&metric(&b.1, m));
        if order == Order::Desc { o.reverse() } else { o }
    });
    v
}
