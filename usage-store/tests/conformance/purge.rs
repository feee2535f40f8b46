//! Purge: raw events before a whole hour are deleted, and every answer the rollups give is
//! unchanged; an instant that is not a whole hour is refused.

use usage_core::Error;
use usage_core::event::UsageEvent;
use usage_core::query::{Dimension, Filter, Query, TimeRange};
use usage_core::store::{RunKind, RunOptions, RunOutcome};

use super::backend::Backend;
use super::check::Check;
use super::data::{all_events, at, seed_standard};
use super::oracle;

/// Purging raw events before an hour keeps every rollup-served answer, removes the events from
/// scans and `get`, and leaves a run record; a purge instant that is not a whole hour is
/// refused without deleting anything.
pub async fn purge_keeps_rollup_totals(b: &Backend) {
    let mut c = Check::new(b.label(), "purge_keeps_rollup_totals");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let cut = at("2026-11-01T00:00:00Z");
    let pre = t
        .summary(&Filter::default(), &[])
        .await
        .expect("summary")
        .totals;
    c.totals("summary before purge", &pre, &oracle::totals(&events));

    match t
        .purge(at("2026-11-01T00:30:00Z"), &RunOptions::default())
        .await
    {
        Err(Error::InvalidArgument { field, .. }) => {
            c.eq("purge at half past: field", field.as_str(), "before")
        }
        other => c.fail(format!(
            "purge at half past: expected InvalidArgument(before), got {other:?}"
        )),
    }
    c.eq(
        "events after the refused purge",
        all_events(&*b.store).await.len(),
        events.len(),
    );

    let doomed: Vec<&UsageEvent> = events.iter().filter(|e| e.timestamp < cut).collect();
    let rec = t.purge(cut, &RunOptions::default()).await.expect("purge");
    c.eq(
        "purge record",
        (rec.kind, rec.outcome, rec.rows),
        (RunKind::Purge, RunOutcome::Succeeded, doomed.len() as u64),
    );
    c.eq(
        "purged_before",
        b.store.purged_before().await.expect("purged_before"),
        Some(cut),
    );
    let kept: Vec<UsageEvent> = events
        .iter()
        .filter(|e| e.timestamp >= cut)
        .cloned()
        .collect();
    c.events(
        "events left",
        &all_events(&*b.store).await,
        &super::data::sorted(kept),
    );
    c.eq(
        "get of a purged event",
        b.store.get(&doomed[0].id).await.expect("get"),
        None,
    );
    c.totals(
        "summary over all time after purge (rollups)",
        &t.summary(&Filter::default(), &[])
            .await
            .expect("summary")
            .totals,
        &pre,
    );
    let span =
        TimeRange::new(at("2026-10-20T00:00:00Z"), at("2026-11-10T13:00:00Z")).expect("range");
    let f = Filter {
        range: Some(span),
        ..Default::default()
    };
    c.totals(
        "summary over whole hours across the purge",
        &t.summary(&f, &[]).await.expect("summary").totals,
        &oracle::totals(events.iter().filter(|e| span.contains(e.timestamp))),
    );
    for g in [
        vec![Dimension::User],
        vec![Dimension::Model],
        vec![Dimension::Tag("workflow".into())],
    ] {
        let q = Query {
            group_by: g.clone(),
            ..Default::default()
        };
        super::queries::check_query(
            &mut c,
            &format!("all time by {g:?} after purge"),
            &t,
            &events,
            &q,
        )
        .await;
    }
    c.verified("verify_rollups after purge", t.verify_rollups(None).await);
    let runs = t.runs(1).await.expect("runs");
    c.eq(
        "latest run",
        runs.first().map(|r| (r.kind, r.outcome)),
        Some((RunKind::Purge, RunOutcome::Succeeded)),
    );
    c.finish();
}
