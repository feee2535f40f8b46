//! Purge: raw events before a whole hour are deleted, and every answer the rollups give is
//! unchanged; an instant that is not a whole hour is refused. Reservations that ended before
//! it are forgotten, outstanding ones never.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use usage_core::Error;
use usage_core::event::UsageEvent;
use usage_core::query::{Dimension, Filter, Query, TimeRange};
use usage_core::quota::{Quota, QuotaMetric, Subject, Window};
use usage_core::store::{HoldRequest, ReserveRequest, RunKind, RunOptions, RunOutcome};

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

/// Purge also forgets the reservations that ended before its cut (committed or released, or
/// expired while held), and never an outstanding one, even when the cut is later than now: a
/// forgotten reservation is unknown afterwards, a kept one commits as before.
pub async fn purge_forgets_reservations_that_ended(b: &Backend) {
    let mut c = Check::new(b.label(), "purge_forgets_reservations_that_ended");
    let s = &*b.store;
    let q = Quota::new(
        "everyone",
        Subject::Global,
        QuotaMetric::Requests,
        100,
        Window::Lifetime,
    );
    s.put_quota(&q).await.expect("put quota");
    let now = Utc::now();
    let reserve = |id: &str, now: DateTime<Utc>, ttl_minutes: i64| ReserveRequest {
        id: id.to_owned(),
        holds: vec![HoldRequest {
            range: q.window_at(now).expect("window").range(),
            quota: q.clone(),
            amount: Decimal::ONE,
        }],
        now,
        expires_at: now + Duration::minutes(ttl_minutes),
    };
    for r in [
        reserve("committed", now, 10),
        reserve("released", now, 10),
        reserve("outstanding", now, 10),
        reserve("expired", now - Duration::hours(2), 60),
    ] {
        s.reserve(&r).await.expect("reserve");
    }
    s.commit_reservation("committed", &[])
        .await
        .expect("commit");
    c.eq(
        "release",
        s.release_reservation("released").await.expect("release"),
        true,
    );

    // A cut before all of them forgets none.
    purge_succeeds(b, at("2000-01-01T00:00:00Z")).await;
    c.eq(
        "commit again after a purge before it ended",
        s.commit_reservation("committed", &[])
            .await
            .expect("commit"),
        Vec::<bool>::new(),
    );

    // A cut two hours ahead: everything that ended by now goes, the outstanding hold stays.
    let ahead = DateTime::from_timestamp_millis(
        (now.timestamp_millis().div_euclid(3_600_000) + 2) * 3_600_000,
    )
    .expect("hour");
    purge_succeeds(b, ahead).await;
    for id in ["committed", "expired"] {
        c.that(
            format!("commit `{id}` after the purge is NotFound"),
            matches!(
                s.commit_reservation(id, &[]).await,
                Err(Error::NotFound { .. })
            ),
        );
    }
    c.that(
        "release `released` after the purge is NotFound",
        matches!(
            s.release_reservation("released").await,
            Err(Error::NotFound { .. })
        ),
    );
    c.eq(
        "the outstanding hold still counts",
        s.held("everyone", Utc::now()).await.expect("held"),
        Decimal::ONE,
    );
    c.eq(
        "the outstanding reservation commits",
        s.commit_reservation("outstanding", &[])
            .await
            .expect("commit"),
        Vec::<bool>::new(),
    );
    c.eq(
        "nothing is held after it",
        s.held("everyone", Utc::now()).await.expect("held"),
        Decimal::ZERO,
    );
    c.finish();
}

/// Purges before `cut` through the tracker, and checks the run succeeded.
async fn purge_succeeds(b: &Backend, cut: DateTime<Utc>) {
    let rec = b
        .tracker()
        .purge(cut, &RunOptions::default())
        .await
        .expect("purge");
    assert_eq!(rec.outcome, RunOutcome::Succeeded, "{rec:?}");
}
