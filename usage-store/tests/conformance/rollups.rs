//! Rollups: for every shape they can serve they equal the raw events (checked through the
//! store's own raw and rollup aggregates and through `verify_rollups`), and a rebuild keeps
//! every answer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use usage_core::Error;
use usage_core::event::UsageEvent;
use usage_core::query::{Dimension, Filter, Query, TimeRange, Totals};
use usage_core::store::{AggregateRequest, RunKind, RunOptions, RunOutcome, Source, Store};

use super::backend::Backend;
use super::check::Check;
use super::data::{at, seed_standard};
use super::oracle;
use super::queries::{aligned, ragged};

type GrainKey = (Vec<Option<String>>, Option<DateTime<Utc>>);

/// The oracle for a store aggregate: sums by group and by `floor(t / grain)`.
pub fn aggregate_oracle(
    events: &[UsageEvent],
    req: &AggregateRequest,
) -> BTreeMap<GrainKey, Totals> {
    // The store contract: a rollup request grouped by a tag the filter leaves open returns only
    // events carrying the tag (the engine derives the untagged group; see `rollup_can_serve`).
    let open_tag = req.group_by.iter().position(
        |d| matches!(d, usage_core::query::Dimension::Tag(k) if !req.filter.tags.contains_key(k)),
    );
    let mut out: BTreeMap<GrainKey, Vec<&UsageEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| oracle::passes(&req.filter, e)) {
        let group: Vec<Option<String>> = req.group_by.iter().map(|d| oracle::value(e, d)).collect();
        if req.source == usage_core::store::Source::Rollup
            && open_tag.is_some_and(|i| group[i].is_none())
        {
            continue;
        }
        let grain = req.grain_secs.map(|g| {
            let ms = e.timestamp.timestamp_millis();
            DateTime::from_timestamp_millis(ms - ms.rem_euclid(g * 1000)).expect("instant")
        });
        out.entry((group, grain)).or_default().push(e);
    }
    out.into_iter()
        .map(|(k, v)| (k, oracle::totals(v)))
        .collect()
}

/// Compares `store.aggregate(req)` with the oracle.
pub async fn check_aggregate(
    c: &mut Check,
    label: &str,
    store: &dyn Store,
    events: &[UsageEvent],
    req: &AggregateRequest,
) {
    let rows = match store.aggregate(req).await {
        Ok(r) => r,
        Err(e) => {
            c.fail(format!("{label}: aggregate failed: {e}"));
            return;
        }
    };
    let got: BTreeMap<GrainKey, Totals> = rows
        .into_iter()
        .map(|r| ((r.group, r.grain_start), r.totals))
        .collect();
    let want = aggregate_oracle(events, req);
    let (gk, wk): (Vec<_>, Vec<_>) = (got.keys().collect(), want.keys().collect());
    if gk != wk {
        let missing: Vec<_> = wk
            .iter()
            .filter(|k| !got.contains_key(**k))
            .take(3)
            .collect();
        let extra: Vec<_> = gk
            .iter()
            .filter(|k| !want.contains_key(**k))
            .take(3)
            .collect();
        c.fail(format!(
            "{label}: {} groups, expected {} (missing e.g. {missing:?}; unexpected e.g. {extra:?})",
            gk.len(),
            wk.len()
        ));
    }
    let mut bad = 0;
    for (k, t) in &want {
        if let Some(g) = got.get(k).filter(|g| *g != t) {
            bad += 1;
            if bad <= 3 {
                c.totals(format!("{label}: {k:?}"), g, t);
            }
        }
    }
    c.that(
        format!("{label}: {bad} groups with wrong totals (first 3 listed)"),
        bad == 0,
    );
}

/// Raw and rollup aggregates for every rollup-servable shape, each against the oracle.
pub async fn check_rollups_everywhere(
    c: &mut Check,
    label: &str,
    store: &dyn Store,
    events: &[UsageEvent],
    ranges: &[Option<TimeRange>],
) {
    let tag = |k: &str| Dimension::Tag(k.to_owned());
    let shapes: Vec<(Filter, Vec<Dimension>)> = vec![
        (Filter::default(), vec![]),
        (
            Filter::default(),
            vec![
                Dimension::User,
                Dimension::Provider,
                Dimension::Model,
                Dimension::Status,
            ],
        ),
        (Filter::default(), vec![Dimension::Model]),
        (Filter::default(), vec![tag("workflow")]),
        (Filter::default(), vec![Dimension::User, tag("instance")]),
        (
            Filter {
                user_id: Some("u2".into()),
                ..Default::default()
            },
            vec![Dimension::Model],
        ),
        (
            Filter {
                tags: [("workflow".to_owned(), "chat".to_owned())].into(),
                ..Default::default()
            },
            vec![Dimension::User],
        ),
        (
            Filter {
                status: Some(usage_core::Status::Error),
                provider: Some("anthropic".into()),
                ..Default::default()
            },
            vec![Dimension::User],
        ),
    ];
    for range in ranges {
        for (f, g) in &shapes {
            for grain in [None, Some(3_600), Some(86_400)] {
                for source in [Source::Rollup, Source::Raw] {
                    let req = AggregateRequest {
                        filter: Filter {
                            range: *range,
                            ..f.clone()
                        },
                        group_by: g.clone(),
                        grain_secs: grain,
                        source,
                    };
                    let l = format!(
                        "{label}: {source:?} range {} filter {:?} group {g:?} grain {grain:?}",
                        range.map_or("all".to_owned(), |r| format!("{}..{}", r.start, r.end)),
                        f.dimensions()
                    );
                    check_aggregate(c, &l, store, events, &req).await;
                }
            }
        }
    }
}

/// Rollups equal raw events for every shape they can serve, and verification finds nothing.
pub async fn rollups_agree_with_raw_events(b: &Backend) {
    let mut c = Check::new(b.label(), "rollups_agree_with_raw_events");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    c.verified("verify_rollups(all time)", t.verify_rollups(None).await);
    c.verified(
        "verify_rollups(whole hours)",
        t.verify_rollups(Some(aligned())).await,
    );
    check_rollups_everywhere(
        &mut c,
        "fresh",
        &*b.store,
        &events,
        &[None, Some(aligned())],
    )
    .await;
    // The engine's choice of source must not change an answer.
    for g in [
        vec![Dimension::Model],
        vec![Dimension::User, Dimension::Tag("workflow".into())],
    ] {
        for range in [Some(aligned()), Some(ragged()), None] {
            let q = Query {
                filter: Filter {
                    range,
                    ..Default::default()
                },
                group_by: g.clone(),
                ..Default::default()
            };
            super::queries::check_query(&mut c, &format!("query {g:?} {range:?}"), &t, &events, &q)
                .await;
        }
    }
    c.finish();
}

/// Rebuilding all rollups, or some hours of them, keeps every answer; a range that is not whole
/// hours is refused.
pub async fn rebuild_rollups_keeps_totals(b: &Backend) {
    let mut c = Check::new(b.label(), "rebuild_rollups_keeps_totals");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let rec = t
        .rebuild_rollups(None, &RunOptions::default())
        .await
        .expect("rebuild all");
    c.eq(
        "rebuild all: kind and outcome",
        (rec.kind, rec.outcome),
        (RunKind::RebuildRollups, RunOutcome::Succeeded),
    );
    c.that(format!("rebuild all: rows {} > 0", rec.rows), rec.rows > 0);
    c.verified("verify after a full rebuild", t.verify_rollups(None).await);
    let rec2 = t
        .rebuild_rollups(
            Some(aligned()),
            &RunOptions {
                batch_size: Some(97),
                ..Default::default()
            },
        )
        .await
        .expect("rebuild some hours");
    c.eq(
        "rebuild some hours: outcome and range",
        (rec2.outcome, rec2.range),
        (RunOutcome::Succeeded, Some(aligned())),
    );
    c.verified(
        "verify after a partial rebuild",
        t.verify_rollups(None).await,
    );
    check_rollups_everywhere(
        &mut c,
        "rebuilt",
        &*b.store,
        &events,
        &[None, Some(aligned())],
    )
    .await;
    let runs = t.runs(10).await.expect("runs");
    c.eq(
        "runs, newest first",
        runs.iter()
            .map(|r| (r.kind, r.outcome, r.range))
            .collect::<Vec<_>>(),
        vec![
            (
                RunKind::RebuildRollups,
                RunOutcome::Succeeded,
                Some(aligned()),
            ),
            (RunKind::RebuildRollups, RunOutcome::Succeeded, None),
        ],
    );
    c.that(
        "run ids increase",
        runs.len() == 2 && runs[0].id > runs[1].id,
    );
    let odd =
        TimeRange::new(at("2026-10-20T00:30:00Z"), at("2026-10-21T00:00:00Z")).expect("range");
    match t.rebuild_rollups(Some(odd), &RunOptions::default()).await {
        Err(Error::InvalidArgument { field, .. }) => c.that(
            format!("rebuild over half hours: field {field:?} names the range"),
            field == "range" || field.starts_with("range."),
        ),
        other => c.fail(format!(
            "rebuild over half hours: expected InvalidArgument(range), got {other:?}"
        )),
    }
    c.finish();
}
