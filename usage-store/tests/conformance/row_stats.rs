//! Per-row figures that are not sums: distinct counts (from rollups when they can serve, else
//! raw events) and the 95th percentile latency by nearest rank (always raw events).

use std::collections::BTreeMap;

use usage_core::event::{Status, UsageEvent};
use usage_core::query::{Bucket, Bucketing, Dimension, Filter, Query};

use super::backend::Backend;
use super::check::Check;
use super::data::seed_standard;
use super::oracle::{self, Key};
use super::queries::{aligned, ragged, ranges, tag, tags};

fn expected_distinct(events: &[UsageEvent], q: &Query) -> BTreeMap<Key, BTreeMap<String, u64>> {
    oracle::groups(events, q)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                q.distinct
                    .iter()
                    .map(|d| (d.name().to_owned(), oracle::distinct(v.iter().copied(), d)))
                    .collect(),
            )
        })
        .collect()
}

/// Distinct users, models, providers and tag values per row.
pub async fn distinct_counts(b: &Backend) {
    let mut c = Check::new(b.label(), "distinct_counts");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let all = vec![
        Dimension::User,
        Dimension::Model,
        Dimension::Provider,
        tag("workflow"),
        tag("instance"),
    ];
    let mut cases: Vec<(String, Query)> = Vec::new();
    for (rl, range) in ranges() {
        let f = Filter {
            range,
            ..Default::default()
        };
        cases.push((
            format!("{rl}, ungrouped"),
            Query {
                filter: f.clone(),
                distinct: all.clone(),
                ..Default::default()
            },
        ));
        cases.push((
            format!("{rl}, by provider"),
            Query {
                filter: f.clone(),
                group_by: vec![Dimension::Provider],
                distinct: vec![Dimension::User, tag("instance")],
                ..Default::default()
            },
        ));
        cases.push((
            format!("{rl}, by user"),
            Query {
                filter: f.clone(),
                group_by: vec![Dimension::User],
                distinct: vec![tag("workflow"), Dimension::Model],
                ..Default::default()
            },
        ));
        cases.push((
            format!("{rl}, workflow=chat by user"),
            Query {
                filter: Filter {
                    tags: tags(&[("workflow", "chat")]),
                    ..f
                },
                group_by: vec![Dimension::User],
                distinct: vec![tag("instance")],
                ..Default::default()
            },
        ));
    }
    for (zone, range) in [("Asia/Kolkata", ragged()), ("UTC", aligned())] {
        cases.push((
            format!("{zone} days"),
            Query {
                filter: Filter {
                    range: Some(range),
                    ..Default::default()
                },
                bucket: Some(Bucketing {
                    bucket: Bucket::Day,
                    tz: zone.to_owned(),
                }),
                distinct: vec![Dimension::User, tag("instance")],
                ..Default::default()
            },
        ));
    }
    for (label, q) in cases {
        let res = t.query(&q).await.expect("query");
        let expected = expected_distinct(&events, &q);
        c.eq(format!("{label}: rows"), res.rows.len(), expected.len());
        for r in &res.rows {
            match expected.get(&(r.group.clone(), r.bucket)) {
                Some(d) => c.eq(
                    format!("{label}: distinct of {:?} {:?}", r.group, r.bucket),
                    &r.distinct,
                    d,
                ),
                None => c.fail(format!(
                    "{label}: unexpected row {:?} {:?}",
                    r.group, r.bucket
                )),
            }
        }
    }
    c.finish();
}

/// p95 latency by nearest rank per row; rows without latencies have none.
pub async fn latency_p95_nearest_rank(b: &Backend) {
    let mut c = Check::new(b.label(), "latency_p95_nearest_rank");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let cases: Vec<(&str, Query)> = vec![
        (
            "all time",
            Query {
                latency_p95: true,
                ..Default::default()
            },
        ),
        (
            "ragged, by model",
            Query {
                filter: Filter {
                    range: Some(ragged()),
                    ..Default::default()
                },
                group_by: vec![Dimension::Model],
                latency_p95: true,
                ..Default::default()
            },
        ),
        (
            "errors by user",
            Query {
                filter: Filter {
                    status: Some(Status::Error),
                    ..Default::default()
                },
                group_by: vec![Dimension::User],
                latency_p95: true,
                ..Default::default()
            },
        ),
        (
            "UTC days by provider",
            Query {
                filter: Filter {
                    range: Some(aligned()),
                    ..Default::default()
                },
                group_by: vec![Dimension::Provider],
                bucket: Some(Bucketing {
                    bucket: Bucket::Day,
                    tz: "UTC".into(),
                }),
                latency_p95: true,
                ..Default::default()
            },
        ),
    ];
    for (label, q) in cases {
        let res = t.query(&q).await.expect("query");
        let groups = oracle::groups(&events, &q);
        c.eq(format!("{label}: rows"), res.rows.len(), groups.len());
        for r in &res.rows {
            let Some(v) = groups.get(&(r.group.clone(), r.bucket)) else {
                c.fail(format!(
                    "{label}: unexpected row {:?} {:?}",
                    r.group, r.bucket
                ));
                continue;
            };
            let want = oracle::p95(v.iter().filter_map(|e| e.latency_ms).collect());
            c.eq(
                format!(
                    "{label}: p95 of {:?} {:?} ({} events)",
                    r.group,
                    r.bucket,
                    v.len()
                ),
                r.latency_p95_ms,
                want,
            );
        }
    }
    c.finish();
}
