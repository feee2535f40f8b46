//! Daylight saving time in New York (2026-03-08 spring forward, 2026-11-01 fall back): days of
//! 23 and 25 hours, every event in its local day, both 01:30s of the fall-back night in the same
//! day but in different hours. Expected instants are written out by hand.

use usage_core::TokenUsage;
use usage_core::event::NewEvent;
use usage_core::query::{Bucket, Bucketing, Filter, Query, TimeRange};

use super::backend::Backend;
use super::check::Check;
use super::data::at;

const NY: &str = "America/New_York";

/// (id, UTC instant, the local day's start in UTC).
const EVENTS: [(&str, &str, &str); 12] = [
    (
        "spring-a",
        "2026-03-08T04:30:00.000Z",
        "2026-03-07T05:00:00Z",
    ), // 7 Mar 23:30 EST
    (
        "spring-b",
        "2026-03-08T05:30:00.125Z",
        "2026-03-08T05:00:00Z",
    ), // 8 Mar 00:30 EST
    (
        "spring-c",
        "2026-03-08T06:59:59.999Z",
        "2026-03-08T05:00:00Z",
    ), // 01:59:59.999 EST
    (
        "spring-d",
        "2026-03-08T07:00:00.000Z",
        "2026-03-08T05:00:00Z",
    ), // 03:00 EDT
    (
        "spring-e",
        "2026-03-09T03:59:00.000Z",
        "2026-03-08T05:00:00Z",
    ), // 23:59 EDT
    (
        "spring-f",
        "2026-03-09T04:00:00.000Z",
        "2026-03-09T04:00:00Z",
    ), // 9 Mar 00:00 EDT
    ("fall-g", "2026-11-01T03:59:59.999Z", "2026-10-31T04:00:00Z"), // 31 Oct 23:59:59.999 EDT
    ("fall-h", "2026-11-01T04:00:00.000Z", "2026-11-01T04:00:00Z"), // 1 Nov 00:00 EDT
    ("fall-i", "2026-11-01T05:30:00.000Z", "2026-11-01T04:00:00Z"), // 01:30 EDT (first)
    ("fall-j", "2026-11-01T06:30:00.000Z", "2026-11-01T04:00:00Z"), // 01:30 EST (second)
    ("fall-k", "2026-11-02T04:30:00.000Z", "2026-11-01T04:00:00Z"), // 23:30 EST
    ("fall-l", "2026-11-02T05:00:00.000Z", "2026-11-02T05:00:00Z"), // 2 Nov 00:00 EST
];

async fn record(b: &Backend) -> usage_store::Tracker {
    let t = b.tracker();
    let evs = EVENTS
        .iter()
        .enumerate()
        .map(|(i, (id, ts, _))| {
            NewEvent::new(
                "openai",
                "gpt-4o",
                TokenUsage {
                    input: 1_000 * (i as u64 + 1),
                    output: 10,
                    ..Default::default()
                },
            )
            .id(*id)
            .at(at(ts))
            .user("u1")
        })
        .collect();
    t.record_many(evs).await.expect("record");
    t
}

fn input_of(ids: &[&str]) -> u64 {
    EVENTS
        .iter()
        .enumerate()
        .filter(|(_, (id, _, _))| ids.contains(id))
        .map(|(i, _)| 1_000 * (i as u64 + 1))
        .sum()
}

/// Daily buckets and points across both transitions.
pub async fn new_york_days_are_23_and_25_hours(b: &Backend) {
    let mut c = Check::new(b.label(), "new_york_days_are_23_and_25_hours");
    let t = record(b).await;
    let cases = [
        (
            "spring",
            "2026-03-07T05:00:00Z",
            "2026-03-10T04:00:00Z",
            vec![
                ("2026-03-07T05:00:00Z", 24),
                ("2026-03-08T05:00:00Z", 23),
                ("2026-03-09T04:00:00Z", 24),
            ],
        ),
        (
            "fall",
            "2026-10-31T04:00:00Z",
            "2026-11-03T05:00:00Z",
            vec![
                ("2026-10-31T04:00:00Z", 24),
                ("2026-11-01T04:00:00Z", 25),
                ("2026-11-02T05:00:00Z", 24),
            ],
        ),
    ];
    for (label, s, e, days) in cases {
        let range = TimeRange::new(at(s), at(e)).expect("range");
        let filter = Filter {
            range: Some(range),
            ..Default::default()
        };
        let points = t
            .timeseries(&filter, Bucket::Day, NY)
            .await
            .expect("timeseries");
        let got: Vec<_> = points
            .iter()
            .map(|p| (p.start, (p.end - p.start).num_hours()))
            .collect();
        let want: Vec<_> = days.iter().map(|(d, h)| (at(d), *h)).collect();
        c.eq(format!("{label}: day starts and lengths"), got, want);
        for p in &points {
            let ids: Vec<&str> = EVENTS
                .iter()
                .filter(|(_, _, day)| at(day) == p.start)
                .map(|(id, _, _)| *id)
                .collect();
            c.eq(
                format!("{label}: events of the day starting {} ({ids:?})", p.start),
                (p.totals.requests, p.totals.input),
                (ids.len() as u64, input_of(&ids)),
            );
        }
        // The same through the general query, without gap filling, grouped by user.
        let q = Query {
            filter,
            group_by: vec![usage_core::query::Dimension::User],
            bucket: Some(Bucketing {
                bucket: Bucket::Day,
                tz: NY.into(),
            }),
            ..Default::default()
        };
        let res = t.query(&q).await.expect("query");
        let got: Vec<_> = res
            .rows
            .iter()
            .map(|r| (r.bucket, r.totals.requests))
            .collect();
        let want: Vec<_> = days
            .iter()
            .map(|(d, _)| {
                (
                    Some(at(d)),
                    EVENTS.iter().filter(|(_, _, day)| day == d).count() as u64,
                )
            })
            .collect();
        c.eq(format!("{label}: query rows per local day"), got, want);
    }
    // Months: 31 October 23:59:59.999 EDT is October; 1 November 00:00 EDT is November.
    let range =
        TimeRange::new(at("2026-10-01T04:00:00Z"), at("2026-12-01T05:00:00Z")).expect("range");
    let points = t
        .timeseries(
            &Filter {
                range: Some(range),
                ..Default::default()
            },
            Bucket::Month,
            NY,
        )
        .await
        .expect("months");
    let got: Vec<_> = points
        .iter()
        .map(|p| (p.start, p.end, p.totals.requests))
        .collect();
    c.eq(
        "New York months",
        got,
        vec![
            (at("2026-10-01T04:00:00Z"), at("2026-11-01T04:00:00Z"), 1),
            (at("2026-11-01T04:00:00Z"), at("2026-12-01T05:00:00Z"), 5),
        ],
    );
    c.finish();
}

/// Hour buckets across the fall-back night: the two 01:00 hours are separate buckets.
pub async fn fall_back_hours_are_separate_buckets(b: &Backend) {
    let mut c = Check::new(b.label(), "fall_back_hours_are_separate_buckets");
    let t = record(b).await;
    let range =
        TimeRange::new(at("2026-11-01T04:00:00Z"), at("2026-11-01T08:00:00Z")).expect("range");
    let points = t
        .timeseries(
            &Filter {
                range: Some(range),
                ..Default::default()
            },
            Bucket::Hour,
            NY,
        )
        .await
        .expect("hours");
    let got: Vec<_> = points
        .iter()
        .map(|p| (p.start, p.totals.requests))
        .collect();
    c.eq(
        "New York hours, 1 Nov 00:00 EDT to 02:00 EST",
        got,
        vec![
            (at("2026-11-01T04:00:00Z"), 1),
            (at("2026-11-01T05:00:00Z"), 1),
            (at("2026-11-01T06:00:00Z"), 1),
            (at("2026-11-01T07:00:00Z"), 0),
        ],
    );
    // Spring forward: 02:00 EST does not exist, so 01:00 EST is followed by 03:00 EDT.
    let range =
        TimeRange::new(at("2026-03-08T05:00:00Z"), at("2026-03-08T08:00:00Z")).expect("range");
    let points = t
        .timeseries(
            &Filter {
                range: Some(range),
                ..Default::default()
            },
            Bucket::Hour,
            NY,
        )
        .await
        .expect("hours");
    let got: Vec<_> = points
        .iter()
        .map(|p| (p.start, p.totals.requests))
        .collect();
    c.eq(
        "New York hours, 8 Mar 00:00 EST to 04:00 EDT",
        got,
        vec![
            (at("2026-03-08T05:00:00Z"), 1),
            (at("2026-03-08T06:00:00Z"), 1),
            (at("2026-03-08T07:00:00Z"), 1),
        ],
    );
    c.finish();
}
