//! Plans and runs a [`Query`] against any [`Store`]: hour-aligned middles of the range come
//! from rollups when the rollups can serve the dimensions involved, ragged edges from raw
//! events, and the time-zone bucketing, merging, distinct counts, percentiles, gap filling,
//! sorting and pagination happen here, once for every backend.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::time::{Bucket, TimeRange, parse_tz};
use super::{Dimension, Filter, Query, QueryResult, QueryRow, Totals};
use crate::error::{Error, Result};
use crate::store::{AggregateRequest, Source, Store, rollup_can_serve};

type Key = (Vec<Option<String>>, Option<DateTime<Utc>>);

/// How a query's time axis maps onto store grains.
struct Plan {
    tz: Tz,
    bucket: Option<Bucket>,
    grain_secs: Option<i64>,
}

impl Plan {
    fn bucket_of(&self, grain_start: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.bucket, grain_start) {
            (Some(b), Some(g)) => Some(b.floor(&self.tz, g)),
            _ => None,
        }
    }
}

/// The coarsest grain (86400, 3600, 900, 60 or 1 seconds) every bucket boundary falls on.
fn grain_for(starts: &[DateTime<Utc>], range: &TimeRange) -> i64 {
    let secs = starts
        .iter()
        .map(|t| t.timestamp())
        .chain([range.end.timestamp()]);
    let mut grain = DAY_SECS;
    for s in secs {
        while grain > 1 && s.rem_euclid(grain) != 0 {
            grain = match grain {
                DAY_SECS => 3600,
                3600 => 900,
                900 => 60,
                _ => 1,
            };
        }
    }
    grain
}

const DAY_SECS: i64 = 86_400;

fn floor_to(t: DateTime<Utc>, step_secs: i64) -> DateTime<Utc> {
    let s = t.timestamp();
    DateTime::from_timestamp(s - s.rem_euclid(step_secs), 0).unwrap_or(t)
}

fn ceil_to(t: DateTime<Utc>, step_secs: i64) -> DateTime<Utc> {
    let f = floor_to(t, step_secs);
    if f == t {
        t
    } else {
        f.checked_add_signed(Duration::seconds(step_secs))
            .unwrap_or(f)
    }
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    floor_to(t, 3600)
}

fn ceil_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    ceil_to(t, 3600)
}

/// The primitive requests that together cover `filter`'s range exactly once, grouped by
/// `group_by`: rollups for the whole hours in the middle when they can serve the dimensions
/// involved, raw events for the ragged edges. Backends use it to count quota usage inside a
/// transaction.
pub fn plan_requests(
    filter: &Filter,
    group_by: &[Dimension],
    grain_secs: Option<i64>,
) -> Vec<AggregateRequest> {
    let mut dims = filter.dimensions();
    dims.extend(group_by.iter().cloned());
    split(filter, &dims, grain_secs, group_by)
}

/// The requests that together cover `filter`'s range exactly once: rollups for the whole
/// hours in the middle when they can serve `dims`, raw events for the rest.
fn split(
    filter: &Filter,
    dims: &[Dimension],
    grain: Option<i64>,
    group_by: &[Dimension],
) -> Vec<AggregateRequest> {
    let req = |f: Filter, source| AggregateRequest {
        filter: f,
        group_by: group_by.to_vec(),
        grain_secs: grain,
        source,
    };
    let rollup_ok = rollup_can_serve(dims) && grain.is_none_or(|g| g % 3600 == 0);
    if !rollup_ok {
        return vec![req(filter.clone(), Source::Raw)];
    }
    let Some(range) = filter.range else {
        return vec![req(filter.clone(), Source::Rollup)];
    };
    let (mid_start, mid_end) = (ceil_hour(range.start), floor_hour(range.end));
    if mid_start >= mid_end {
        return vec![req(filter.clone(), Source::Raw)];
    }
    let with = |start, end| Filter {
        range: Some(TimeRange { start, end }),
        ..filter.clone()
    };
    let mut out = Vec::with_capacity(5);
    if range.start < mid_start {
        out.push(req(with(range.start, mid_start), Source::Raw));
    }
    // Whole UTC days in the middle get a request of their own, which backends may serve
    // from daily rollups; the hours around them from hourly ones.
    let (days_start, days_end) = (ceil_to(mid_start, DAY_SECS), floor_to(mid_end, DAY_SECS));
    if days_start < days_end && grain.is_none_or(|g| g % DAY_SECS == 0) {
        if mid_start < days_start {
            out.push(req(with(mid_start, days_start), Source::Rollup));
        }
        out.push(req(with(days_start, days_end), Source::Rollup));
        if days_end < mid_end {
            out.push(req(with(days_end, mid_end), Source::Rollup));
        }
    } else {
        out.push(req(with(mid_start, mid_end), Source::Rollup));
    }
    if mid_end < range.end {
        out.push(req(with(mid_end, range.end), Source::Raw));
    }
    out
}

/// The position of a group-by tag that the filter does not pin to a value, if any.
fn untagged_group(filter: &Filter, group_by: &[Dimension]) -> Option<usize> {
    group_by
        .iter()
        .position(|d| matches!(d, Dimension::Tag(k) if !filter.tags.contains_key(k)))
}

/// One primitive aggregate. The tag rollup only has rows for events that carry the tag, so when
/// it serves a group-by on a tag the filter leaves open, the events without the tag (the `None`
/// group) are the events rollup's totals minus the tag rows, per remaining group and grain.
/// Doing it here keeps every backend's rollup contract the same and simple.
async fn aggregate(
    store: &dyn Store,
    req: &AggregateRequest,
) -> Result<Vec<crate::store::AggregateRow>> {
    let mut rows = store.aggregate(req).await?;
    let Some(pos) =
        untagged_group(&req.filter, &req.group_by).filter(|_| req.source == Source::Rollup)
    else {
        return Ok(rows);
    };
    // By `rollup_can_serve`, the only other dimension can be the user.
    let rest: Vec<Dimension> = req
        .group_by
        .iter()
        .filter(|d| !matches!(d, Dimension::Tag(_)))
        .cloned()
        .collect();
    let all = store
        .aggregate(&AggregateRequest {
            group_by: rest,
            ..req.clone()
        })
        .await?;
    let strip = |g: &[Option<String>]| -> Vec<Option<String>> {
        g.iter()
            .enumerate()
            .filter(|(i, _)| *i != pos)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let mut tagged: HashMap<Key, Totals> = HashMap::new();
    for r in &rows {
        tagged
            .entry((strip(&r.group), r.grain_start))
            .or_default()
            .merge(&r.totals);
    }
    for a in all {
        let seen = tagged
            .get(&(a.group.clone(), a.grain_start))
            .copied()
            .unwrap_or_default();
        let untagged = a.totals.minus(&seen);
        if untagged.requests > 0 {
            let mut group = a.group;
            group.insert(pos, None);
            rows.push(crate::store::AggregateRow {
                group,
                grain_start: a.grain_start,
                totals: untagged,
            });
        }
    }
    Ok(rows)
}

fn percentile_95(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = (v.len() * 95).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

/// Runs a query against a store.
pub async fn run(store: &dyn Store, q: &Query) -> Result<QueryResult> {
    if q.group_by
        .iter()
        .chain(&q.distinct)
        .any(|d| matches!(d, Dimension::Tag(k) if k.trim().is_empty()))
    {
        return Err(Error::argument("group_by", "a tag key is empty"));
    }
    let tz_name = q.bucket.as_ref().map_or("UTC", |b| b.tz.as_str());
    let tz = parse_tz(tz_name)?;
    let bucket = q.bucket.as_ref().map(|b| b.bucket);
    let mut starts = Vec::new();
    let grain_secs = match (bucket, q.filter.range) {
        (Some(_), None) => {
            return Err(Error::argument(
                "bucket",
                "time buckets need a time range (filter.range)",
            ));
        }
        (Some(b), Some(range)) => {
            starts = b.starts(&tz, &range);
            if starts.len() > 100_000 {
                return Err(Error::argument(
                    "bucket",
                    format!("the range holds {} buckets; at most 100,000", starts.len()),
                ));
            }
            Some(grain_for(&starts, &range))
        }
        (None, _) => None,
    };
    let plan = Plan {
        tz,
        bucket,
        grain_secs,
    };

    let mut dims = q.filter.dimensions();
    dims.extend(q.group_by.iter().cloned());

    let mut rows: BTreeMap<Key, QueryRow> = BTreeMap::new();
    for req in split(&q.filter, &dims, plan.grain_secs, &q.group_by) {
        for r in aggregate(store, &req).await? {
            let key = (r.group.clone(), plan.bucket_of(r.grain_start));
            let row = rows.entry(key.clone()).or_insert_with(|| QueryRow {
                group: key.0,
                bucket: key.1,
                ..Default::default()
            });
            row.totals.merge(&r.totals);
        }
    }

    for d in &q.distinct {
        let mut ddims = dims.clone();
        ddims.push(d.clone());
        let mut sets: HashMap<Key, BTreeSet<String>> = HashMap::new();
        // The tag rollup has no row for events without the tag, so a distinct count grouped by
        // a tag the filter leaves open is read from raw events.
        let reqs = if untagged_group(&q.filter, &q.group_by).is_some() {
            vec![AggregateRequest {
                filter: q.filter.clone(),
                group_by: q.group_by.clone(),
                grain_secs: plan.grain_secs,
                source: Source::Raw,
            }]
        } else {
            split(&q.filter, &ddims, plan.grain_secs, &q.group_by)
        };
        for req in reqs {
            for r in store.distinct(&req, d).await? {
                sets.entry((r.group, plan.bucket_of(r.grain_start)))
                    .or_default()
                    .insert(r.value);
            }
        }
        for row in rows.values_mut() {
            let n = sets
                .get(&(row.group.clone(), row.bucket))
                .map_or(0, |s| s.len() as u64);
            row.distinct.insert(d.name().to_owned(), n);
        }
    }

    if q.latency_p95 {
        let req = AggregateRequest {
            filter: q.filter.clone(),
            group_by: q.group_by.clone(),
            grain_secs: plan.grain_secs,
            source: Source::Raw,
        };
        let mut samples: HashMap<Key, Vec<u64>> = HashMap::new();
        for r in store.latencies(&req).await? {
            samples
                .entry((r.group, plan.bucket_of(r.grain_start)))
                .or_default()
                .push(r.latency_ms);
        }
        for (k, v) in samples {
            if let Some(row) = rows.get_mut(&k) {
                row.latency_p95_ms = percentile_95(v);
            }
        }
    }

    if q.fill_empty && plan.bucket.is_some() {
        let mut groups: BTreeSet<Vec<Option<String>>> =
            rows.keys().map(|(g, _)| g.clone()).collect();
        if groups.is_empty() && q.group_by.is_empty() {
            groups.insert(Vec::new());
        }
        for g in groups {
            for s in &starts {
                rows.entry((g.clone(), Some(*s)))
                    .or_insert_with(|| QueryRow {
                        group: g.clone(),
                        bucket: Some(*s),
                        distinct: q
                            .distinct
                            .iter()
                            .map(|d| (d.name().to_owned(), 0))
                            .collect(),
                        ..Default::default()
                    });
            }
        }
    }
    // An ungrouped, unbucketed query over no events still has one (zero) row: the totals.
    if rows.is_empty() && q.group_by.is_empty() && plan.bucket.is_none() {
        rows.insert(
            (Vec::new(), None),
            QueryRow {
                distinct: q
                    .distinct
                    .iter()
                    .map(|d| (d.name().to_owned(), 0))
                    .collect(),
                ..Default::default()
            },
        );
    }

    let mut out: Vec<QueryRow> = rows.into_values().collect();
    if let Some((metric, order)) = q.sort {
        // Stable: ties keep bucket-then-group order.
        out.sort_by(|a, b| {
            let o = a.metric(metric).cmp(&b.metric(metric));
            if order == super::Order::Desc {
                o.reverse()
            } else {
                o
            }
        });
    } else {
        out.sort_by(|a, b| (a.bucket, &a.group).cmp(&(b.bucket, &b.group)));
    }
    let total_rows = out.len();
    let rows: Vec<QueryRow> = out
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    Ok(QueryResult {
        columns: q.group_by.iter().map(|d| d.name().to_owned()).collect(),
        rows,
        total_rows,
    })
}

/// Compares rollups with raw events over `range` (all time after the purge horizon when
/// absent), hour by hour, for both rollups; returns the differing (hour, group) cells.
pub async fn verify_rollups(
    store: &dyn Store,
    range: Option<TimeRange>,
) -> Result<Vec<RollupDifference>> {
    let horizon = store.purged_before().await?;
    let mut filter = Filter {
        range,
        ..Default::default()
    };
    if let Some(h) = horizon {
        filter.range = match filter.range {
            Some(r) if r.end <= h => return Ok(Vec::new()),
            Some(r) => Some(TimeRange {
                start: r.start.max(h),
                end: r.end,
            }),
            None => Some(TimeRange {
                start: h,
                end: DateTime::<Utc>::MAX_UTC,
            }),
        };
    }
    if let Some(r) = filter.range
        && (floor_hour(r.start) != r.start
            || (r.end != DateTime::<Utc>::MAX_UTC && floor_hour(r.end) != r.end))
    {
        return Err(Error::argument(
            "range",
            "rollups are verified over whole UTC hours",
        ));
    }
    let mut diffs = Vec::new();
    let plain = vec![
        Dimension::User,
        Dimension::Provider,
        Dimension::Model,
        Dimension::Status,
    ];
    diffs.extend(compare(store, &filter, plain.clone(), 3600, "events").await?);
    // Backends may keep coarser rollups for requests without a user (`models`) and for whole
    // UTC days (`days`, `users`, `daily`); these requests are the shapes they serve.
    let models = vec![Dimension::Provider, Dimension::Model, Dimension::Status];
    diffs.extend(compare(store, &filter, models.clone(), 3600, "models").await?);
    if let Some(r) = filter.range {
        let (start, end) = (ceil_to(r.start, DAY_SECS), floor_to(r.end, DAY_SECS));
        if start < end {
            let days = Filter {
                range: Some(TimeRange { start, end }),
                ..filter.clone()
            };
            diffs.extend(compare(store, &days, models.clone(), DAY_SECS, "days").await?);
            diffs.extend(compare(store, &days, vec![Dimension::User], DAY_SECS, "users").await?);
            diffs.extend(compare(store, &days, plain, DAY_SECS, "daily").await?);
        }
    } else {
        diffs.extend(compare(store, &filter, models, DAY_SECS, "days").await?);
        diffs.extend(compare(store, &filter, vec![Dimension::User], DAY_SECS, "users").await?);
        diffs.extend(compare(store, &filter, plain, DAY_SECS, "daily").await?);
    }
    // Tag rollups: check every tag key seen in the range.
    let keys = store_tag_keys(store, &filter).await?;
    for k in keys {
        diffs.extend(
            compare(
                store,
                &filter,
                vec![Dimension::User, Dimension::Tag(k.clone())],
                3600,
                &format!("tags:{k}"),
            )
            .await?,
        );
    }
    Ok(diffs)
}

async fn store_tag_keys(store: &dyn Store, filter: &Filter) -> Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    let mut after = None;
    loop {
        let page = store.scan(filter, after.as_ref(), 5_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(crate::store::Cursor::after(last));
        for e in &page {
            keys.extend(e.tags.keys().cloned());
        }
    }
    Ok(keys)
}

async fn compare(
    store: &dyn Store,
    filter: &Filter,
    group_by: Vec<Dimension>,
    grain_secs: i64,
    rollup: &str,
) -> Result<Vec<RollupDifference>> {
    let req = |source| AggregateRequest {
        filter: filter.clone(),
        group_by: group_by.clone(),
        grain_secs: Some(grain_secs),
        source,
    };
    let index = |rows: Vec<crate::store::AggregateRow>| {
        rows.into_iter()
            .map(|r| ((r.group, r.grain_start), r.totals))
            .collect::<BTreeMap<_, _>>()
    };
    let raw = index(aggregate(store, &req(Source::Raw)).await?);
    let rolled = index(aggregate(store, &req(Source::Rollup)).await?);
    let keys: BTreeSet<_> = raw.keys().chain(rolled.keys()).cloned().collect();
    let mut out = Vec::new();
    for k in keys {
        let (a, b) = (
            raw.get(&k).copied().unwrap_or_default(),
            rolled.get(&k).copied().unwrap_or_default(),
        );
        if a != b {
            out.push(RollupDifference {
                rollup: rollup.to_owned(),
                hour: k.1,
                group: k.0,
                raw: a,
                rollup_totals: b,
            });
        }
    }
    Ok(out)
}

/// A cell where rollups and raw events disagree.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollupDifference {
    /// `events`, `models` (user-free), `days`, `users` or `daily` (whole UTC days), or
    /// `tags:<key>`.
    pub rollup: String,
    /// The hour (the day, for `days`, `users` and `daily`).
    pub hour: Option<DateTime<Utc>>,
    /// The group.
    pub group: Vec<Option<String>>,
    /// Sums from raw events.
    pub raw: Totals,
    /// Sums from the rollup.
    pub rollup_totals: Totals,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grain_drops_to_quarter_hours_for_india() {
        let tz = parse_tz("Asia/Kolkata").unwrap();
        let r = TimeRange::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-01-05T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let starts = Bucket::Day.starts(&tz, &r);
        assert_eq!(grain_for(&starts, &r), 900);
        let utc = parse_tz("UTC").unwrap();
        assert_eq!(grain_for(&Bucket::Day.starts(&utc, &r), &r), 86_400);
        let ny = parse_tz("America/New_York").unwrap();
        assert_eq!(grain_for(&Bucket::Day.starts(&ny, &r), &r), 3600);
    }

    #[test]
    fn p95_nearest_rank() {
        assert_eq!(percentile_95((1..=100).collect()), Some(95));
        assert_eq!(percentile_95(vec![7]), Some(7));
        assert_eq!(percentile_95(vec![]), None);
    }

    #[test]
    fn rollup_service_rules() {
        assert!(rollup_can_serve(&[Dimension::User, Dimension::Model]));
        assert!(rollup_can_serve(&[
            Dimension::User,
            Dimension::Tag("workflow".into())
        ]));
        assert!(!rollup_can_serve(&[
            Dimension::Model,
            Dimension::Tag("workflow".into())
        ]));
        assert!(!rollup_can_serve(&[
            Dimension::Tag("a".into()),
            Dimension::Tag("b".into())
        ]));
    }
}
