//! The rollup invariant as a property: for random event sets and random whole-hour ranges,
//! what the rollups answer equals the sums of the raw events, for every shape rollups serve.
//! Each proptest case writes into its own week of time, so cases share one store safely.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::Duration;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use usage_core::TokenUsage;
use usage_core::event::{NewEvent, Status};
use usage_core::query::{Dimension, Filter, Query, TimeRange};
use usage_core::store::{AggregateRequest, Source};

use super::backend::Backend;
use super::check::Check;
use super::data::{MODELS, at};
use super::oracle;
use super::rollups::aggregate_oracle;

/// One generated event: (hour, ms in the hour, user, model, workflow, input, output, error,
/// latency).
type Gen = (i64, i64, usize, usize, usize, u64, u64, bool, Option<u64>);

fn event_strategy() -> impl Strategy<Value = Gen> {
    (
        0i64..72,
        0i64..3_600_000,
        0usize..6,
        0usize..MODELS.len(),
        0usize..5,
        1u64..10_000,
        0u64..2_000,
        any::<bool>(),
        proptest::option::of(1u64..9_000),
    )
}

fn shapes() -> Vec<Vec<Dimension>> {
    let wf = || Dimension::Tag("workflow".into());
    vec![
        vec![],
        vec![Dimension::User],
        vec![Dimension::Model],
        vec![Dimension::Provider, Dimension::Status],
        vec![
            Dimension::User,
            Dimension::Provider,
            Dimension::Model,
            Dimension::Status,
        ],
        vec![wf()],
        vec![Dimension::User, wf()],
    ]
}

fn new_event(window: i64, i: usize, g: &Gen) -> NewEvent {
    let (hour, ms, user, model, wf, input, output, error, latency) = *g;
    let base = at("2024-01-01T00:00:00Z") + Duration::days(7 * window);
    let m = &MODELS[model];
    let mut e = NewEvent::new(
        m.provider,
        m.reported,
        TokenUsage {
            input,
            output,
            ..Default::default()
        },
    )
    .id(format!("prop-{window}-{i}"))
    .at(base + Duration::hours(hour) + Duration::milliseconds(ms));
    if user < 5 {
        e.user_id = Some(format!("u{user}"));
    }
    if wf < 4 {
        e.tags
            .insert("workflow".into(), super::data::WORKFLOWS[wf].into());
    }
    if error {
        e.status = Status::Error;
    }
    e.latency_ms = latency;
    e
}

/// Random sets of up to 60 events, each checked over several random whole-hour ranges.
pub async fn rollup_totals_equal_raw_sums(b: &Backend) {
    let t = b.tracker();
    let store = b.store.clone();
    let windows = AtomicI64::new(0);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    });
    let strategy = (
        vec(event_strategy(), 0..60),
        vec((0i64..72, 1i64..72, 0usize..7, 0i64..3_600_000), 1..5),
    );
    let label = b.label();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(gens, queries)| {
            let window = windows.fetch_add(1, Ordering::SeqCst);
            handle.block_on(async {
                let evs: Vec<NewEvent> = gens
                    .iter()
                    .enumerate()
                    .map(|(i, g)| new_event(window, i, g))
                    .collect();
                let recorded = if evs.is_empty() {
                    Vec::new()
                } else {
                    t.record_many(evs)
                        .await
                        .map_err(|e| TestCaseError::fail(format!("record_many: {e}")))?
                };
                let events: Vec<_> = recorded.into_iter().map(|r| r.event).collect();
                let base = at("2024-01-01T00:00:00Z") + Duration::days(7 * window);
                let mut c = Check::new(label, "rollup_totals_equal_raw_sums");
                for (start, len, shape, ms) in queries {
                    let range = TimeRange::new(
                        base + Duration::hours(start),
                        base + Duration::hours(start + len),
                    )
                    .expect("range");
                    let group_by = shapes()[shape].clone();
                    for source in [Source::Rollup, Source::Raw] {
                        let req = AggregateRequest {
                            filter: Filter {
                                range: Some(range),
                                ..Default::default()
                            },
                            group_by: group_by.clone(),
                            grain_secs: Some(3_600),
                            source,
                        };
                        let got = store
                            .aggregate(&req)
                            .await
                            .map_err(|e| TestCaseError::fail(format!("aggregate: {e}")))?;
                        let got: std::collections::BTreeMap<_, _> = got
                            .into_iter()
                            .map(|r| ((r.group, r.grain_start), r.totals))
                            .collect();
                        c.eq(
                            format!("{source:?} by {group_by:?} per hour over {range:?}"),
                            got,
                            aggregate_oracle(&events, &req),
                        );
                    }
                    // Through the engine, with one edge moved off the hour (raw edge + rollups).
                    let ragged =
                        TimeRange::new(range.start + Duration::milliseconds(ms), range.end)
                            .expect("range");
                    for r in [range, ragged] {
                        let q = Query {
                            filter: Filter {
                                range: Some(r),
                                ..Default::default()
                            },
                            group_by: group_by.clone(),
                            ..Default::default()
                        };
                        let res = t
                            .query(&q)
                            .await
                            .map_err(|e| TestCaseError::fail(format!("query: {e}")))?;
                        let got: std::collections::BTreeMap<_, _> = res
                            .rows
                            .into_iter()
                            .filter(|row| row.totals.requests > 0)
                            .map(|row| ((row.group, row.bucket), row.totals))
                            .collect();
                        c.eq(
                            format!("query by {group_by:?} over {r:?}"),
                            got,
                            oracle::grouped_totals(&events, &q),
                        );
                    }
                }
                match c.message() {
                    Some(msg) => Err(TestCaseError::fail(msg)),
                    None => Ok(()),
                }
            })
        })
    });
    if let Err(e) = result {
        panic!("[{label}] rollup_totals_equal_raw_sums: {e}");
    }
}
