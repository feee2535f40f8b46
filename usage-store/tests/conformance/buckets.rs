//! Calendar buckets on the seeded data set: hours, days, weeks (Monday and Sunday starts) and
//! months in UTC, New York, Paris, Kolkata (a half-hour offset) and Lord Howe (a half-hour DST
//! shift), and gap filling with zero buckets.

use chrono::Weekday;
use usage_core::query::{Bucket, Bucketing, Dimension, Filter, Query, TimeRange};

use super::backend::Backend;
use super::check::Check;
use super::data::{at, seed_standard};
use super::oracle;
use super::queries::{aligned, check_query, check_query_rows, ragged, tag};

/// The zones: UTC, two with DST, a half-hour offset, and Lord Howe (half-hour DST shift).
pub const ZONES: [&str; 5] = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

/// Every bucket size in every zone, ungrouped and grouped, ragged and whole-hour ranges.
pub async fn buckets_in_five_time_zones(b: &Backend) {
    let mut c = Check::new(b.label(), "buckets_in_five_time_zones");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let sizes = [
        Bucket::Hour,
        Bucket::Day,
        Bucket::Week {
            start: Weekday::Mon,
        },
        Bucket::Week {
            start: Weekday::Sun,
        },
        Bucket::Month,
    ];
    for zone in ZONES {
        for size in sizes {
            for (rl, range) in [("ragged range", ragged()), ("whole-hour range", aligned())] {
                let groupings: Vec<Vec<Dimension>> = if size == Bucket::Hour {
                    vec![vec![]]
                } else {
                    vec![vec![], vec![Dimension::Provider], vec![tag("workflow")]]
                };
                for g in groupings {
                    let q = Query {
                        filter: Filter {
                            range: Some(range),
                            ..Default::default()
                        },
                        group_by: g.clone(),
                        bucket: Some(Bucketing {
                            bucket: size,
                            tz: zone.to_owned(),
                        }),
                        ..Default::default()
                    };
                    check_query(
                        &mut c,
                        &format!("{zone} {size:?} {rl} group by {g:?}"),
                        &t,
                        &events,
                        &q,
                    )
                    .await;
                }
            }
        }
    }
    c.finish();
}

/// With `fill_empty`, every bucket of the range is present for every group, zero when empty.
pub async fn fill_empty_emits_zero_buckets(b: &Backend) {
    let mut c = Check::new(b.label(), "fill_empty_emits_zero_buckets");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let cases: Vec<(&str, Bucket, &str, TimeRange, Vec<Dimension>)> = vec![
        (
            "New York days by user",
            Bucket::Day,
            "America/New_York",
            TimeRange::new(at("2026-10-25T04:00:00Z"), at("2026-11-15T05:00:00Z")).expect("r"),
            vec![Dimension::User],
        ),
        (
            "Kolkata hours over the quiet days",
            Bucket::Hour,
            "Asia/Kolkata",
            TimeRange::new(at("2026-11-06T18:30:00Z"), at("2026-11-09T18:30:00Z")).expect("r"),
            vec![],
        ),
        (
            "Paris weeks before any event",
            Bucket::Week {
                start: Weekday::Mon,
            },
            "Europe/Paris",
            TimeRange::new(at("2026-01-05T00:00:00Z"), at("2026-03-01T00:00:00Z")).expect("r"),
            vec![],
        ),
        (
            "Lord Howe days by provider",
            Bucket::Day,
            "Australia/Lord_Howe",
            ragged(),
            vec![Dimension::Provider],
        ),
    ];
    for (label, size, zone, range, g) in cases {
        let q = Query {
            filter: Filter {
                range: Some(range),
                ..Default::default()
            },
            group_by: g.clone(),
            bucket: Some(Bucketing {
                bucket: size,
                tz: zone.to_owned(),
            }),
            fill_empty: true,
            ..Default::default()
        };
        let mut expected = oracle::grouped_totals(&events, &q);
        let mut groups: Vec<Vec<Option<String>>> = expected.keys().map(|k| k.0.clone()).collect();
        groups.dedup();
        if groups.is_empty() && g.is_empty() {
            groups.push(vec![]);
        }
        let starts = oracle::bucket_starts(size, zone, &range);
        for grp in &groups {
            for s in &starts {
                expected.entry((grp.clone(), Some(*s))).or_default();
            }
        }
        let empty = expected.values().filter(|t| t.requests == 0).count();
        c.that(
            format!("{label}: the case has empty buckets to fill"),
            empty > 0,
        );
        check_query_rows(&mut c, label, &t, &q, &expected).await;
    }
    c.finish();
}
