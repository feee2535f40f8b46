//! The dashboard reports on the seeded data set: summary, timeseries, breakdown, compare and
//! top, with every derived figure recomputed from the events.

use rust_decimal::{Decimal, RoundingStrategy};
use usage_core::Usd;
use usage_core::event::UsageEvent;
use usage_core::query::reports::SharePage;
use usage_core::query::{
    Bucket, Dimension, Filter, Metric, Order, Period, Query, TimeRange, Totals, parse_tz,
};

use super::backend::Backend;
use super::check::Check;
use super::data::{now, seed_standard};
use super::oracle;
use super::queries::{aligned, ragged};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn per(amount: Usd, n: u64) -> Option<Usd> {
    (n > 0).then(|| {
        Usd::new(
            (amount.as_decimal() / Decimal::from(n))
                .round_dp_with_strategy(9, RoundingStrategy::MidpointNearestEven),
        )
    })
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn usd_f64(u: Usd) -> f64 {
    u.as_decimal().to_string().parse().expect("a decimal")
}

/// Totals, distinct workflows and instances, averages, cost per 1K tokens, p95, token shares.
pub async fn summary_report(b: &Backend) {
    let mut c = Check::new(b.label(), "summary_report");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let distinct = [
        Dimension::Tag("workflow".into()),
        Dimension::Tag("instance".into()),
    ];
    let filters = [
        ("all time", Filter::default()),
        (
            "ragged range",
            Filter {
                range: Some(ragged()),
                ..Default::default()
            },
        ),
        (
            "whole hours, user u2",
            Filter {
                range: Some(aligned()),
                user_id: Some("u2".into()),
                ..Default::default()
            },
        ),
        (
            "workflow=chat",
            Filter {
                tags: [("workflow".to_owned(), "chat".to_owned())].into(),
                ..Default::default()
            },
        ),
        (
            "no events",
            Filter {
                user_id: Some("nobody".into()),
                ..Default::default()
            },
        ),
    ];
    for (label, f) in filters {
        let s = t.summary(&f, &distinct).await.expect("summary");
        let mine: Vec<&UsageEvent> = events.iter().filter(|e| oracle::passes(&f, e)).collect();
        let tot = oracle::totals(mine.iter().copied());
        let tokens = oracle::tokens(&tot);
        c.eq(format!("{label}: range"), s.range, f.range);
        c.totals(format!("{label}: totals"), &s.totals, &tot);
        let dw = oracle::distinct(mine.iter().copied(), &distinct[0]);
        let di = oracle::distinct(mine.iter().copied(), &distinct[1]);
        c.eq(
            format!("{label}: distinct"),
            s.distinct.clone(),
            [("instance".to_owned(), di), ("workflow".to_owned(), dw)].into(),
        );
        c.eq(
            format!("{label}: avg_cost_per_request"),
            s.avg_cost_per_request,
            per(tot.cost_total, tot.requests),
        );
        let per_distinct: std::collections::BTreeMap<String, Usd> =
            [("instance", di), ("workflow", dw)]
                .into_iter()
                .filter_map(|(k, n)| per(tot.cost_total, n).map(|u| (k.to_owned(), u)))
                .collect();
        c.eq(
            format!("{label}: avg_cost_per_distinct"),
            s.avg_cost_per_distinct.clone(),
            per_distinct,
        );
        let per_1k = (tokens > 0).then(|| {
            Usd::new(
                (tot.cost_total.as_decimal() * Decimal::from(1000) / Decimal::from(tokens))
                    .round_dp_with_strategy(9, RoundingStrategy::MidpointNearestEven),
            )
        });
        c.eq(
            format!("{label}: cost_per_1k_tokens"),
            s.cost_per_1k_tokens,
            per_1k,
        );
        match (s.avg_tokens_per_request, tot.requests) {
            (None, 0) => {}
            (Some(a), n) if n > 0 => c.that(
                format!("{label}: avg_tokens_per_request {a}"),
                close(a, tokens as f64 / n as f64),
            ),
            (a, _) => c.fail(format!(
                "{label}: avg_tokens_per_request {a:?} with {} requests",
                tot.requests
            )),
        }
        let lat: Vec<u64> = mine.iter().filter_map(|e| e.latency_ms).collect();
        let avg = (!lat.is_empty()).then(|| lat.iter().sum::<u64>() as f64 / lat.len() as f64);
        c.that(
            format!("{label}: latency_avg_ms {:?} vs {avg:?}", s.latency_avg_ms),
            match (s.latency_avg_ms, avg) {
                (Some(a), Some(b)) => close(a, b),
                (a, b) => a.is_none() && b.is_none(),
            },
        );
        c.eq(
            format!("{label}: total_duration_ms"),
            s.total_duration_ms,
            mine.iter().filter_map(|e| e.duration_ms).sum::<u64>(),
        );
        let sh = &s.token_shares;
        for (name, got, part) in [
            ("input", sh.input, tot.input),
            ("cache_read", sh.cache_read, tot.cache_read),
            (
                "cache_write",
                sh.cache_write,
                tot.cache_write_5m + tot.cache_write_1h,
            ),
            ("output", sh.output, tot.output),
        ] {
            c.that(
                format!("{label}: token share {name} {got} vs {}", pct(part, tokens)),
                close(got, pct(part, tokens)),
            );
        }
        if tokens > 0 {
            let sum = sh.input + sh.cache_read + sh.cache_write + sh.output;
            c.that(
                format!("{label}: token shares sum to {sum}"),
                close(sum, 100.0),
            );
        }
    }
    c.finish();
}

/// The last 30 days of `zone` at the fixed now: from local midnight 29 days ago to the end of
/// today, computed by hand.
fn last_30_days(zone: &str) -> TimeRange {
    let today = now()
        .with_timezone(&parse_tz(zone).expect("zone"))
        .date_naive();
    TimeRange::new(
        oracle::local_midnight(zone, today - chrono::Duration::days(29)),
        oracle::local_midnight(zone, today + chrono::Duration::days(1)),
    )
    .expect("range")
}

/// Daily points over the last 30 days: every day present (the quiet weekend as zeros), each
/// day's start and end local midnights (one day 25 hours in New York), totals exact.
pub async fn timeseries_last_30_days(b: &Backend) {
    let mut c = Check::new(b.label(), "timeseries_last_30_days");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    for zone in ["America/New_York", "UTC", "Asia/Kolkata", "Europe/Paris"] {
        let range = last_30_days(zone);
        let period = Period::LastDays { days: 30 }
            .range(&parse_tz(zone).expect("zone"), now())
            .expect("period");
        c.eq(format!("{zone}: Period::LastDays(30)"), period, range);
        for (fl, filter) in [
            (
                "everyone",
                Filter {
                    range: Some(range),
                    ..Default::default()
                },
            ),
            (
                "user u4",
                Filter {
                    range: Some(range),
                    user_id: Some("u4".into()),
                    ..Default::default()
                },
            ),
        ] {
            let points = match t.timeseries(&filter, Bucket::Day, zone).await {
                Ok(p) => p,
                Err(e) => {
                    c.fail(format!("{zone} {fl}: timeseries failed: {e}"));
                    continue;
                }
            };
            let starts = oracle::bucket_starts(Bucket::Day, zone, &range);
            c.eq(format!("{zone} {fl}: number of points"), points.len(), 30);
            c.eq(
                format!("{zone} {fl}: point starts"),
                points.iter().map(|p| p.start).collect::<Vec<_>>(),
                starts.clone(),
            );
            let q = Query {
                filter: filter.clone(),
                bucket: Some(usage_core::query::Bucketing {
                    bucket: Bucket::Day,
                    tz: zone.to_owned(),
                }),
                ..Default::default()
            };
            let expected = oracle::grouped_totals(&events, &q);
            let mut zeros = 0;
            for p in &points {
                c.eq(
                    format!("{zone} {fl}: end of the day starting {}", p.start),
                    p.end,
                    oracle::bucket_next(Bucket::Day, zone, p.start),
                );
                let want = expected
                    .get(&(vec![], Some(p.start)))
                    .copied()
                    .unwrap_or_default();
                zeros += usize::from(want == Totals::default());
                c.totals(
                    format!("{zone} {fl}: day starting {}", p.start),
                    &p.totals,
                    &want,
                );
            }
            c.that(
                format!("{zone} {fl}: the quiet days are present as zero points ({zeros})"),
                zeros >= 1,
            );
            if zone == "America/New_York" {
                let long: Vec<_> = points
                    .iter()
                    .filter(|p| p.end - p.start == chrono::Duration::hours(25))
                    .map(|p| p.start)
                    .collect();
                c.eq(
                    format!("{zone} {fl}: the 25-hour day"),
                    long,
                    vec![super::data::at("2026-11-01T04:00:00Z")],
                );
            }
        }
    }
    c.finish();
}

/// What a page of shares was asked for.
struct PageOf<'a> {
    filter: &'a Filter,
    by: &'a Dimension,
    metric: Metric,
    skip: usize,
    take: usize,
}

fn check_page(
    c: &mut Check,
    label: &str,
    page: &SharePage,
    events: &[UsageEvent],
    asked: PageOf<'_>,
) {
    let PageOf {
        filter,
        by,
        metric,
        skip,
        take,
    } = asked;
    let q = Query {
        filter: filter.clone(),
        group_by: vec![by.clone()],
        ..Default::default()
    };
    let groups = oracle::grouped_totals(events, &q);
    let all = oracle::totals(events.iter().filter(|e| oracle::passes(filter, e)));
    let order = oracle::sorted_groups(&groups, metric, Order::Desc);
    c.eq(
        format!("{label}: by"),
        page.by.clone(),
        by.name().to_owned(),
    );
    c.eq(
        format!("{label}: total_rows"),
        page.total_rows,
        groups.len(),
    );
    c.totals(
        format!("{label}: page totals (all groups)"),
        &page.totals,
        &all,
    );
    let want: Vec<Option<String>> = order
        .iter()
        .skip(skip)
        .take(take)
        .map(|(k, _)| k.0[0].clone())
        .collect();
    c.eq(
        format!("{label}: keys in order"),
        page.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        want,
    );
    for r in &page.rows {
        let Some(tot) = groups.get(&(vec![r.key.clone()], None)) else {
            continue;
        };
        c.totals(format!("{label}: {:?}", r.key), &r.totals, tot);
        let cost_share = if all.cost_total.is_zero() {
            0.0
        } else {
            usd_f64(tot.cost_total) * 100.0 / usd_f64(all.cost_total)
        };
        c.that(
            format!(
                "{label}: {:?} cost_share {} vs {cost_share}",
                r.key, r.cost_share
            ),
            close(r.cost_share, cost_share),
        );
        c.that(
            format!("{label}: {:?} token_share {}", r.key, r.token_share),
            close(
                r.token_share,
                pct(oracle::tokens(tot), oracle::tokens(&all)),
            ),
        );
        c.that(
            format!("{label}: {:?} request_share {}", r.key, r.request_share),
            close(r.request_share, pct(tot.requests, all.requests)),
        );
    }
}

/// Breakdowns by model and by tag: cost order, totals, shares that sum to 100.
pub async fn breakdown_by_model_and_tag(b: &Backend) {
    let mut c = Check::new(b.label(), "breakdown_by_model_and_tag");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    for (fl, filter) in [
        ("all time", Filter::default()),
        (
            "ragged range",
            Filter {
                range: Some(ragged()),
                ..Default::default()
            },
        ),
        (
            "user u1",
            Filter {
                user_id: Some("u1".into()),
                ..Default::default()
            },
        ),
    ] {
        for by in [
            Dimension::Model,
            Dimension::Tag("workflow".into()),
            Dimension::Tag("instance".into()),
            Dimension::Provider,
        ] {
            let label = format!("{fl}, breakdown by {by}");
            let page = t.breakdown(&filter, &by).await.expect("breakdown");
            let asked = PageOf {
                filter: &filter,
                by: &by,
                metric: Metric::Cost,
                skip: 0,
                take: usize::MAX,
            };
            check_page(&mut c, &label, &page, &events, asked);
            for (name, sum) in [
                ("cost", page.rows.iter().map(|r| r.cost_share).sum::<f64>()),
                (
                    "token",
                    page.rows.iter().map(|r| r.token_share).sum::<f64>(),
                ),
                (
                    "request",
                    page.rows.iter().map(|r| r.request_share).sum::<f64>(),
                ),
            ] {
                c.that(
                    format!("{label}: {name} shares sum to {sum}"),
                    (sum - 100.0).abs() < 1e-4,
                );
            }
        }
    }
    c.finish();
}

/// This month against last month, in UTC and in New York.
pub async fn compare_this_month_with_last(b: &Backend) {
    let mut c = Check::new(b.label(), "compare_this_month_with_last");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    for zone in ["UTC", "America/New_York"] {
        let nov = oracle::local_midnight(
            zone,
            chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("d"),
        );
        let oct = oracle::local_midnight(
            zone,
            chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("d"),
        );
        let dec = oracle::local_midnight(
            zone,
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("d"),
        );
        let (cur, prev) = (
            TimeRange::new(nov, dec).expect("r"),
            TimeRange::new(oct, nov).expect("r"),
        );
        let tz = parse_tz(zone).expect("zone");
        c.eq(
            format!("{zone}: Period::ThisMonth"),
            Period::ThisMonth.range(&tz, now()).ok(),
            Some(cur),
        );
        c.eq(
            format!("{zone}: Period::ThisMonth.previous"),
            Period::ThisMonth.previous(&tz, now()).ok(),
            Some(prev),
        );
        for (fl, filter) in [
            ("everyone", Filter::default()),
            (
                "user u3",
                Filter {
                    user_id: Some("u3".into()),
                    ..Default::default()
                },
            ),
        ] {
            let label = format!("{zone}, {fl}");
            let cmp = t.compare(&filter, cur, prev).await.expect("compare");
            let now_t = oracle::totals(events.iter().filter(|e| {
                oracle::passes(
                    &Filter {
                        range: Some(cur),
                        ..filter.clone()
                    },
                    e,
                )
            }));
            let before = oracle::totals(events.iter().filter(|e| {
                oracle::passes(
                    &Filter {
                        range: Some(prev),
                        ..filter.clone()
                    },
                    e,
                )
            }));
            c.eq(
                format!("{label}: ranges"),
                (cmp.current_range, cmp.previous_range),
                (Some(cur), Some(prev)),
            );
            c.totals(format!("{label}: current"), &cmp.current, &now_t);
            c.totals(format!("{label}: previous"), &cmp.previous, &before);
            c.eq(
                format!("{label}: cost_delta"),
                cmp.cost_delta,
                now_t.cost_total - before.cost_total,
            );
            c.eq(
                format!("{label}: requests_delta"),
                cmp.requests_delta,
                now_t.requests as i64 - before.requests as i64,
            );
            c.eq(
                format!("{label}: tokens_delta"),
                cmp.tokens_delta,
                oracle::tokens(&now_t) as i64 - oracle::tokens(&before) as i64,
            );
            let change = (usd_f64(now_t.cost_total) - usd_f64(before.cost_total)) * 100.0
                / usd_f64(before.cost_total);
            c.that(
                format!("{label}: cost_change {:?} vs {change}", cmp.cost_change),
                cmp.cost_change.is_some_and(|x| close(x, change)),
            );
            let rchange =
                (now_t.requests as f64 - before.requests as f64) * 100.0 / before.requests as f64;
            c.that(
                format!(
                    "{label}: requests_change {:?} vs {rchange}",
                    cmp.requests_change
                ),
                cmp.requests_change.is_some_and(|x| close(x, rchange)),
            );
        }
    }
    c.finish();
}

/// The top users by cost and by requests, two per page.
pub async fn top_users_paginated(b: &Backend) {
    let mut c = Check::new(b.label(), "top_users_paginated");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    for (fl, filter) in [
        ("all time", Filter::default()),
        (
            "ragged range",
            Filter {
                range: Some(ragged()),
                ..Default::default()
            },
        ),
    ] {
        for metric in [Metric::Cost, Metric::Requests] {
            let mut seen = Vec::new();
            for offset in [0, 2, 4, 6] {
                let label = format!("{fl}, top users by {metric:?}, offset {offset}");
                let page = t
                    .top(&filter, &Dimension::User, metric, 2, offset)
                    .await
                    .expect("top");
                let asked = PageOf {
                    filter: &filter,
                    by: &Dimension::User,
                    metric,
                    skip: offset,
                    take: 2,
                };
                check_page(&mut c, &label, &page, &events, asked);
                seen.extend(page.rows.iter().map(|r| r.key.clone()));
            }
            let groups = oracle::grouped_totals(
                &events,
                &Query {
                    filter: filter.clone(),
                    group_by: vec![Dimension::User],
                    ..Default::default()
                },
            );
            c.eq(
                format!("{fl}, by {metric:?}: pages together list every user once"),
                seen.len(),
                groups.len(),
            );
        }
    }
    c.finish();
}
