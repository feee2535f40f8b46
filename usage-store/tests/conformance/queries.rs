//! The general query on the seeded data set: totals over ragged and whole-hour ranges, every
//! grouping, every filter, calendar buckets in five zones, gap filling, distinct counts, p95
//! latency, sorting and pagination, each compared with the oracle.

use std::collections::BTreeMap;

use usage_core::event::{Status, UsageEvent};
use usage_core::query::{Dimension, Filter, Metric, Order, Query, QueryResult, TimeRange, Totals};
use usage_store::Tracker;

use super::backend::Backend;
use super::check::Check;
use super::data::{at, seed_standard};
use super::oracle::{self, Key};

/// Edges that fall mid-hour, mid-second.
pub fn ragged() -> TimeRange {
    TimeRange::new(
        at("2026-10-16T07:23:11.250Z"),
        at("2026-11-20T18:44:02.777Z"),
    )
    .expect("range")
}

/// Whole UTC hours: rollups answer all of it when they can.
pub fn aligned() -> TimeRange {
    TimeRange::new(at("2026-10-20T00:00:00Z"), at("2026-11-10T13:00:00Z")).expect("range")
}

/// All time, a ragged range and a whole-hour range.
pub fn ranges() -> Vec<(&'static str, Option<TimeRange>)> {
    vec![
        ("all time", None),
        ("ragged range", Some(ragged())),
        ("whole-hour range", Some(aligned())),
    ]
}

pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn tag(k: &str) -> Dimension {
    Dimension::Tag(k.to_owned())
}

/// Checks a result against oracle totals: the same keys in the engine's default order
/// (bucket, then group), the same totals, `total_rows` and `columns`.
pub fn compare_rows(
    c: &mut Check,
    label: &str,
    q: &Query,
    res: &QueryResult,
    expected: &BTreeMap<Key, Totals>,
) {
    let mut keys: Vec<&Key> = expected.keys().collect();
    keys.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let got: Vec<Key> = res
        .rows
        .iter()
        .map(|r| (r.group.clone(), r.bucket))
        .collect();
    let want: Vec<Key> = keys.iter().map(|k| (*k).clone()).collect();
    if got != want {
        let missing: Vec<_> = want.iter().filter(|k| !got.contains(k)).take(4).collect();
        let extra: Vec<_> = got.iter().filter(|k| !want.contains(k)).take(4).collect();
        c.fail(format!(
            "{label}: rows differ: {} rows, expected {} (missing e.g. {missing:?}; unexpected e.g. {extra:?})",
            got.len(),
            want.len()
        ));
    }
    c.eq(
        format!("{label}: total_rows"),
        res.total_rows,
        expected.len(),
    );
    c.eq(
        format!("{label}: columns"),
        res.columns.clone(),
        q.group_by
            .iter()
            .map(|d| d.name().to_owned())
            .collect::<Vec<_>>(),
    );
    for r in &res.rows {
        if let Some(t) = expected.get(&(r.group.clone(), r.bucket)) {
            c.totals(
                format!("{label}: row {:?} {:?}", r.group, r.bucket),
                &r.totals,
                t,
            );
        }
    }
}

/// Runs `q` and compares with the oracle's grouping (an ungrouped, unbucketed query always has
/// its one totals row, even over no events).
pub async fn check_query(
    c: &mut Check,
    label: &str,
    t: &Tracker,
    events: &[UsageEvent],
    q: &Query,
) {
    let mut expected = oracle::grouped_totals(events, q);
    if expected.is_empty() && q.group_by.is_empty() && q.bucket.is_none() {
        expected.insert((vec![], None), Totals::default());
    }
    check_query_rows(c, label, t, q, &expected).await;
}

/// Runs `q` and compares with `expected`.
pub async fn check_query_rows(
    c: &mut Check,
    label: &str,
    t: &Tracker,
    q: &Query,
    expected: &BTreeMap<Key, Totals>,
) {
    match t.query(q).await {
        Ok(res) => compare_rows(c, label, q, &res, expected),
        Err(e) => c.fail(format!("{label}: query failed: {e}")),
    }
}

/// Totals over ranges with ragged edges, whole hours, inside one hour, starting or ending
/// exactly on an event (start included, end excluded) and over no events at all.
pub async fn totals_over_ragged_and_aligned_ranges(b: &Backend) {
    let mut c = Check::new(b.label(), "totals_over_ragged_and_aligned_ranges");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let (e1, e2) = (events[100].timestamp, events[1_700].timestamp);
    let (lo, hi) = (e1.min(e2), e1.max(e2));
    let mut cases = ranges();
    cases.extend([
        (
            "inside one hour",
            Some(
                TimeRange::new(at("2026-10-20T10:05:00Z"), at("2026-10-20T10:55:00Z")).expect("r"),
            ),
        ),
        (
            "ragged start, whole-hour end",
            Some(TimeRange::new(ragged().start, aligned().end).expect("r")),
        ),
        (
            "whole-hour start, ragged end",
            Some(TimeRange::new(aligned().start, ragged().end).expect("r")),
        ),
        (
            "from one event to another",
            Some(TimeRange::new(lo, hi).expect("r")),
        ),
        (
            "one hour ending on an event",
            Some(TimeRange::new(lo - chrono::Duration::hours(1), lo).expect("r")),
        ),
        (
            "one millisecond holding an event",
            Some(TimeRange::new(lo, lo + chrono::Duration::milliseconds(1)).expect("r")),
        ),
        (
            "before any event",
            Some(
                TimeRange::new(at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")).expect("r"),
            ),
        ),
    ]);
    for (label, range) in cases {
        let q = Query {
            filter: Filter {
                range,
                ..Default::default()
            },
            ..Default::default()
        };
        check_query(&mut c, label, &t, &events, &q).await;
    }
    c.finish();
}

/// Group by each dimension and some pairs, over each kind of range.
pub async fn group_by_every_dimension(b: &Backend) {
    let mut c = Check::new(b.label(), "group_by_every_dimension");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let dims: Vec<Vec<Dimension>> = vec![
        vec![Dimension::User],
        vec![Dimension::Model],
        vec![Dimension::Provider],
        vec![Dimension::Status],
        vec![tag("workflow")],
        vec![tag("instance")],
        vec![Dimension::User, Dimension::Model],
        vec![Dimension::Provider, Dimension::Status],
        vec![Dimension::User, tag("workflow")],
        vec![Dimension::Model, tag("workflow")],
        vec![tag("workflow"), tag("instance")],
    ];
    for (rl, range) in ranges() {
        for g in &dims {
            let q = Query {
                filter: Filter {
                    range,
                    ..Default::default()
                },
                group_by: g.clone(),
                ..Default::default()
            };
            check_query(&mut c, &format!("{rl}, group by {g:?}"), &t, &events, &q).await;
        }
    }
    c.finish();
}

/// Each filter alone and in combinations (a tag filter with a model grouping forces raw
/// events), grouped and not.
pub async fn filters_and_combinations(b: &Backend) {
    let mut c = Check::new(b.label(), "filters_and_combinations");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let filters: Vec<(&str, Filter)> = vec![
        (
            "user u2",
            Filter {
                user_id: Some("u2".into()),
                ..Default::default()
            },
        ),
        (
            "tag workflow=chat",
            Filter {
                tags: tags(&[("workflow", "chat")]),
                ..Default::default()
            },
        ),
        (
            "model claude-sonnet-4-5",
            Filter {
                model: Some("claude-sonnet-4-5".into()),
                ..Default::default()
            },
        ),
        (
            "unpriced model acme-large-1",
            Filter {
                model: Some("acme-large-1".into()),
                ..Default::default()
            },
        ),
        (
            "provider openai",
            Filter {
                provider: Some("openai".into()),
                ..Default::default()
            },
        ),
        (
            "status error",
            Filter {
                status: Some(Status::Error),
                ..Default::default()
            },
        ),
        (
            "user u1 + model haiku",
            Filter {
                user_id: Some("u1".into()),
                model: Some("claude-haiku-4-5".into()),
                ..Default::default()
            },
        ),
        (
            "user u3 + tag workflow=extract",
            Filter {
                user_id: Some("u3".into()),
                tags: tags(&[("workflow", "extract")]),
                ..Default::default()
            },
        ),
        (
            "tag instance=i-03 + status success",
            Filter {
                tags: tags(&[("instance", "i-03")]),
                status: Some(Status::Success),
                ..Default::default()
            },
        ),
        (
            "two tags",
            Filter {
                tags: tags(&[("workflow", "summarise"), ("instance", "i-07")]),
                ..Default::default()
            },
        ),
        (
            "provider anthropic + status error + user u1",
            Filter {
                provider: Some("anthropic".into()),
                status: Some(Status::Error),
                user_id: Some("u1".into()),
                ..Default::default()
            },
        ),
        (
            "no such user",
            Filter {
                user_id: Some("nobody".into()),
                ..Default::default()
            },
        ),
    ];
    let groupings: Vec<Vec<Dimension>> = vec![
        vec![],
        vec![Dimension::Model],
        vec![Dimension::User],
        vec![tag("workflow")],
    ];
    for (rl, range) in ranges() {
        for (fl, f) in &filters {
            for g in &groupings {
                let q = Query {
                    filter: Filter { range, ..f.clone() },
                    group_by: g.clone(),
                    ..Default::default()
                };
                check_query(
                    &mut c,
                    &format!("{rl}, {fl}, group by {g:?}"),
                    &t,
                    &events,
                    &q,
                )
                .await;
            }
        }
    }
    c.finish();
}

/// Sorting by cost and requests both ways, then pages of the sorted rows.
pub async fn sort_limit_offset(b: &Backend) {
    let mut c = Check::new(b.label(), "sort_limit_offset");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    for (rl, range) in ranges() {
        for by in [Dimension::User, Dimension::Model, tag("instance")] {
            for (m, o) in [
                (Metric::Cost, Order::Desc),
                (Metric::Cost, Order::Asc),
                (Metric::Requests, Order::Desc),
                (Metric::Requests, Order::Asc),
                (Metric::TotalTokens, Order::Desc),
            ] {
                let base = Query {
                    filter: Filter {
                        range,
                        ..Default::default()
                    },
                    group_by: vec![by.clone()],
                    sort: Some((m, o)),
                    ..Default::default()
                };
                let expected = oracle::sorted_groups(&oracle::grouped_totals(&events, &base), m, o);
                let want = |skip: usize, take: usize| {
                    expected
                        .iter()
                        .skip(skip)
                        .take(take)
                        .map(|(k, _)| k.0.clone())
                        .collect::<Vec<_>>()
                };
                let all = t.query(&base).await.expect("query");
                c.eq(
                    format!("{rl}, by {by}, {m:?} {o:?}: order"),
                    all.rows.iter().map(|r| r.group.clone()).collect::<Vec<_>>(),
                    want(0, usize::MAX),
                );
                for (limit, offset) in [(2, 0), (2, 1), (3, 4), (5, 100)] {
                    let q = Query {
                        limit: Some(limit),
                        offset,
                        ..base.clone()
                    };
                    let res = t.query(&q).await.expect("query");
                    c.eq(
                        format!("{rl}, by {by}, {m:?} {o:?}, limit {limit} offset {offset}: rows"),
                        res.rows.iter().map(|r| r.group.clone()).collect::<Vec<_>>(),
                        want(offset, limit),
                    );
                    c.eq(
                        format!(
                            "{rl}, by {by}, {m:?} {o:?}, limit {limit} offset {offset}: total_rows"
                        ),
                        res.total_rows,
                        expected.len(),
                    );
                    for r in &res.rows {
                        if let Some((_, tot)) = expected.iter().find(|(k, _)| k.0 == r.group) {
                            c.totals(
                                format!("{rl}, by {by}, page row {:?}", r.group),
                                &r.totals,
                                tot,
                            );
                        }
                    }
                }
            }
        }
    }
    c.finish();
}
