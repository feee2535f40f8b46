//! Quotas through the Tracker on every backend: levels and flags, alerts exactly once, atomic
//! reservations that never overshoot under concurrency, idempotent commit and release, soft
//! quotas, bad quota definitions, and `guard`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rust_decimal::Decimal;
use usage_core::quota::estimate::Estimate;
use usage_core::quota::{Quota, QuotaMetric, Subject, Threshold, Window};
use usage_core::{Error, NewEvent, TokenUsage, Usd};
use usage_store::GuardContext;

use super::backend::Backend;
use super::check::Check;

fn paid(user: &str, usd: &str) -> NewEvent {
    let mut e = NewEvent::new(
        "anthropic",
        "claude-haiku-4-5",
        TokenUsage {
            input: 10,
            output: 10,
            ..Default::default()
        },
    )
    .user(user);
    e.provided_cost = Some(usd.parse().expect("usd"));
    e
}

fn one_request() -> Estimate {
    Estimate::new(TokenUsage::default(), Usd::ZERO)
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

/// Sets a hard daily quota of `limit` on `user`.
async fn set_day_quota(
    t: &usage_store::Tracker,
    id: &str,
    user: &str,
    metric: QuotaMetric,
    limit: Decimal,
) {
    t.set_quota(Quota::new(
        id,
        Subject::user(user),
        metric,
        limit,
        Window::Day,
    ))
    .await
    .expect("quota");
}

/// An Anthropic call by `user`, reserved against the user's quotas; `model` for payloads that
/// do not name one.
fn call_ctx(user: &str, model: Option<&str>, batched: bool) -> GuardContext {
    GuardContext {
        provider: Some(usage_core::extract::Provider::Anthropic),
        subjects: vec![Subject::user(user)],
        meta: usage_store::ResponseMeta {
            user_id: Some(user.into()),
            model: model.map(str::to_owned),
            ..Default::default()
        },
        ttl: None,
        batched,
    }
}

/// 79.99% is nothing, 80% warns, 95% suggests an upgrade, 100% blocks, and each threshold
/// fires one alert however many events follow.
pub async fn levels_flags_and_alerts_once(b: &Backend) {
    let mut c = Check::new(b.label(), "levels_flags_and_alerts_once");
    let t = b.tracker();
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = fired.clone();
    t.on_alert(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let q = Quota::new(
        "u1-month",
        Subject::user("u1"),
        QuotaMetric::Cost,
        dec("10"),
        Window::Month { anchor_day: 1 },
    );
    t.set_quota(q).await.expect("set quota");
    let u1 = [Subject::user("u1")];

    t.record(paid("u1", "7.999")).await.expect("record");
    let s = &t.quota_status(&u1).await.expect("status")[0];
    c.eq("79.99%: level", s.level.clone(), None);
    c.that("79.99%: not warning", !s.is_warning);
    c.eq("used", s.used, dec("7.999"));
    c.eq("remaining", s.remaining, dec("2.001"));

    let r = t.record(paid("u1", "0.001")).await.expect("record");
    c.eq(
        "80%: alert names",
        r.alerts
            .iter()
            .map(|a| a.threshold.clone())
            .collect::<Vec<_>>(),
        vec!["warning".to_owned()],
    );
    let s = &t.quota_status(&u1).await.expect("status")[0];
    c.that(
        "80%: warning",
        s.is_warning && !s.is_upgrade_suggested && !s.is_blocked,
    );

    let r = t.record(paid("u1", "1.5")).await.expect("record");
    c.eq(
        "95%: alert",
        r.alerts
            .iter()
            .map(|a| a.threshold.clone())
            .collect::<Vec<_>>(),
        vec!["upgrade_suggested".to_owned()],
    );
    let r = t.record(paid("u1", "0.5")).await.expect("record");
    c.eq(
        "100%: alert",
        r.alerts
            .iter()
            .map(|a| a.threshold.clone())
            .collect::<Vec<_>>(),
        vec!["blocked".to_owned()],
    );
    let s = &t.quota_status(&u1).await.expect("status")[0];
    c.that(
        "100%: blocked",
        s.is_warning && s.is_upgrade_suggested && s.is_blocked,
    );
    c.eq("100%: level", s.level.clone(), Some("blocked".to_owned()));

    let r = t.record(paid("u1", "3")).await.expect("record");
    c.eq("past 100%: no new alert", r.alerts.len(), 0);
    // Another user's spend never touches u1's quota.
    t.record(paid("u2", "50")).await.expect("record");
    c.eq(
        "alerts stored",
        t.alerts(chrono::DateTime::<chrono::Utc>::MIN_UTC, 100)
            .await
            .expect("alerts")
            .len(),
        3,
    );
    c.eq("callback calls", fired.load(Ordering::SeqCst), 3);

    // A blocked user is refused before anything is sent.
    match t
        .reserve(
            &u1,
            &Estimate::new(TokenUsage::default(), "0.01".parse().expect("usd")),
            None,
        )
        .await
    {
        Err(Error::QuotaExceeded {
            quota,
            limit,
            used,
            requested,
        }) => {
            c.eq("refusal names the quota", quota, "u1-month".to_owned());
            c.eq("refusal limit", limit, dec("10"));
            c.eq("refusal used", used, dec("13"));
            c.eq("refusal requested", requested, dec("0.01"));
        }
        other => c.fail(format!("expected QuotaExceeded, got {other:?}")),
    }
    c.finish();
}

/// Reservations hold, refuse past the limit, and commit/release exactly once.
pub async fn reserve_commit_release(b: &Backend) {
    let mut c = Check::new(b.label(), "reserve_commit_release");
    let t = b.tracker();
    let q = Quota::new(
        "u1-requests",
        Subject::user("u1"),
        QuotaMetric::Requests,
        3,
        Window::Day,
    );
    t.set_quota(q).await.expect("set quota");
    let u1 = [Subject::user("u1")];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(t.reserve(&u1, &one_request(), None).await.expect("fits"));
    }
    c.that(
        "4th is refused",
        matches!(
            t.reserve(&u1, &one_request(), None).await,
            Err(Error::QuotaExceeded { .. })
        ),
    );
    c.eq(
        "release",
        t.release(&held[0].id).await.expect("release"),
        true,
    );
    c.eq(
        "release again",
        t.release(&held[0].id).await.expect("release"),
        false,
    );
    let r = t
        .reserve(&u1, &one_request(), None)
        .await
        .expect("fits after a release");
    let done = t
        .commit(&r.id, vec![paid("u1", "0.1").id("evt-r1")])
        .await
        .expect("commit");
    c.eq(
        "commit records",
        done.iter().filter(|x| !x.duplicate).count(),
        1,
    );
    let again = t
        .commit(&r.id, vec![paid("u1", "0.1").id("evt-r1")])
        .await
        .expect("commit again");
    c.eq(
        "second commit records nothing",
        again.iter().filter(|x| !x.duplicate).count(),
        0,
    );
    c.eq(
        "release after commit",
        t.release(&r.id).await.expect("release"),
        false,
    );
    c.that(
        "commit after release fails",
        t.commit(&held[0].id, vec![paid("u1", "0.1")])
            .await
            .is_err(),
    );
    c.that(
        "unknown id",
        matches!(t.release("rsv_nope").await, Err(Error::NotFound { .. })),
    );
    let s = &t.quota_status(&u1).await.expect("status")[0];
    c.eq("used = committed", s.used, dec("1"));
    c.eq("held = two outstanding", s.held, dec("2"));
    c.finish();
}

/// Forty concurrent reserve→commit cycles against a limit of twenty: exactly twenty pass.
pub async fn concurrent_reservations_never_overshoot(b: &Backend) {
    let mut c = Check::new(b.label(), "concurrent_reservations_never_overshoot");
    let t = b.tracker();
    let q = Quota::new(
        "team-requests",
        Subject::tag("team", "ml"),
        QuotaMetric::Requests,
        20,
        Window::Day,
    );
    t.set_quota(q).await.expect("set quota");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let subj = [Subject::tag("team", "ml")];
            match t.reserve(&subj, &one_request(), None).await {
                Ok(r) => {
                    let e = paid(&format!("u{i}"), "0.01").tag("team", "ml");
                    t.commit(&r.id, vec![e]).await.expect("commit");
                    true
                }
                Err(Error::QuotaExceeded { .. }) => false,
                Err(e) => panic!("unexpected {e}"),
            }
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += usize::from(task.await.expect("task"));
    }
    c.eq("granted", granted, 20);
    let s = &t
        .quota_status(&[Subject::tag("team", "ml")])
        .await
        .expect("status")[0];
    c.eq("committed usage", s.used, dec("20"));
    c.finish();
}

/// Soft quotas report levels and alert but never block.
pub async fn soft_quota_never_blocks(b: &Backend) {
    let mut c = Check::new(b.label(), "soft_quota_never_blocks");
    let t = b.tracker();
    let q = Quota::new(
        "global-soft",
        Subject::Global,
        QuotaMetric::Requests,
        2,
        Window::Rolling { seconds: 3600 },
    )
    .soft();
    t.set_quota(q).await.expect("set quota");
    for _ in 0..3 {
        let r = t
            .reserve(&[], &one_request(), None)
            .await
            .expect("soft never refuses");
        t.commit(&r.id, vec![paid("u9", "0.01")])
            .await
            .expect("commit");
    }
    let s = &t.quota_status(&[]).await.expect("status")[0];
    c.that(
        "over the limit but not blocked",
        s.used == dec("3") && !s.is_blocked && s.level.as_deref() == Some("blocked"),
    );
    c.finish();
}

/// Bad quota definitions name the field, and nothing is stored.
pub async fn bad_quotas_are_rejected(b: &Backend) {
    let mut c = Check::new(b.label(), "bad_quotas_are_rejected");
    let t = b.tracker();
    let base = || Quota::new("q", Subject::user("u1"), QuotaMetric::Cost, 5, Window::Day);
    let cases = [
        (
            "negative limit",
            Quota {
                limit: dec("-1"),
                ..base()
            },
            "limit",
        ),
        (
            "empty subject",
            Quota {
                subject: Subject::user(" "),
                ..base()
            },
            "subject",
        ),
        ("unknown tz", base().in_tz("Mars/Olympus"), "tz"),
        (
            "thresholds out of order",
            base().with_thresholds(vec![Threshold::new("a", 90), Threshold::new("b", 80)]),
            "thresholds",
        ),
    ];
    for (label, q, field) in cases {
        match t.set_quota(q).await {
            Err(Error::InvalidArgument { field: f, .. }) => c.that(
                format!("{label}: names `{field}` (got `{f}`)"),
                f.contains(field),
            ),
            other => c.fail(format!("{label}: expected InvalidArgument, got {other:?}")),
        }
    }
    c.eq("nothing stored", t.quotas().await.expect("quotas").len(), 0);
    c.finish();
}

/// `guard` reserves, runs the call, records its usage with latency, or records the failure and
/// releases the hold.
pub async fn guard_records_success_and_failure(b: &Backend) {
    let mut c = Check::new(b.label(), "guard_records_success_and_failure");
    let t = b.tracker();
    set_day_quota(&t, "u1-req", "u1", QuotaMetric::Requests, Decimal::from(2)).await;
    let ctx = || call_ctx("u1", None, false);
    let failed = t
        .guard(ctx(), &one_request(), || async {
            Err::<serde_json::Value, String>("upstream 529".into())
        })
        .await
        .expect("guard");
    c.that("the call's error comes back", failed.is_err());
    let body = serde_json::json!({"id": "msg_guard", "type": "message", "model": "claude-haiku-4-5",
        "usage": {"input_tokens": 100, "output_tokens": 20}});
    let ok = t
        .guard(
            ctx(),
            &one_request(),
            || async move { Ok::<_, String>(body) },
        )
        .await
        .expect("guard");
    match ok {
        Ok((_, recorded)) => {
            c.eq("one event", recorded.len(), 1);
            c.that("latency measured", recorded[0].event.latency_ms.is_some());
            c.eq(
                "id from the response",
                recorded[0].event.id.as_str().to_owned(),
                "msg_guard".to_owned(),
            );
        }
        Err(e) => c.fail(format!("call failed: {e}")),
    }
    // A failed call is still a request made: with the success, the quota of two is used up.
    c.that(
        "third call refused",
        matches!(
            t.guard(ctx(), &one_request(), || async {
                Ok::<_, String>(serde_json::json!({}))
            })
            .await,
            Err(Error::QuotaExceeded { .. })
        ),
    );
    let s = t
        .summary(&usage_core::query::Filter::default(), &[])
        .await
        .expect("summary");
    c.eq(
        "events: one error, one success",
        (s.totals.requests, s.totals.errors),
        (2, 1),
    );
    c.finish();
}

/// The step API the SDK wrappers use: a blocked subject is refused before the call, a finished
/// call cannot be finished again, a failed call drops its hold, and a call no quota covers
/// writes nothing until it finishes (through the batched writer when asked).
pub async fn begin_call_steps(b: &Backend) {
    let mut c = Check::new(b.label(), "begin_call_steps");
    let t = b.tracker();
    set_day_quota(&t, "u1-cost", "u1", QuotaMetric::Cost, dec("1")).await;
    let ctx = |user: &str, batched: bool| call_ctx(user, Some("claude-haiku-4-5"), batched);
    let costly = Estimate::new(TokenUsage::default(), "0.6".parse().expect("usd"));

    let first = t
        .begin_call(ctx("u1", false), &costly)
        .await
        .expect("begin");
    c.that("a covered call holds", first.reservation_id().is_some());
    let second = t.begin_call(ctx("u1", false), &costly).await;
    c.that(
        "0.6 held + 0.6 asked > 1: refused before the call",
        matches!(second, Err(Error::QuotaExceeded { .. })),
    );
    let failed = first.fail("api_error", "upstream 500").await.expect("fail");
    c.eq(
        "the failure is recorded",
        (failed.event.status, failed.event.error_type.clone()),
        (usage_core::Status::Error, Some("api_error".to_owned())),
    );
    c.that(
        "finishing twice is an error",
        matches!(
            first.fail("x", "y").await,
            Err(Error::InvalidArgument { .. })
        ),
    );
    let s = &t
        .quota_status(&[Subject::user("u1")])
        .await
        .expect("status")[0];
    c.eq("the failed call's hold is gone", s.held, Decimal::ZERO);

    let again = t
        .begin_call(ctx("u1", false), &costly)
        .await
        .expect("fits again");
    again.first_token();
    let body = serde_json::json!({"id": "msg_steps", "type": "message", "model": "claude-haiku-4-5",
        "usage": {"input_tokens": 1000, "output_tokens": 200}});
    let rec = again.succeed(&body).await.expect("succeed");
    c.eq(
        "committed cost",
        rec[0].event.total_cost().to_string(),
        "0.002".to_owned(),
    );
    c.that("latency measured", rec[0].event.latency_ms.is_some());

    let free = t
        .begin_call(ctx("u2", true), &costly)
        .await
        .expect("uncovered");
    c.that(
        "an uncovered call holds nothing",
        free.reservation_id().is_none(),
    );
    let mut streamed = NewEvent::new(
        "anthropic",
        "claude-haiku-4-5",
        TokenUsage {
            input: 10,
            output: 5,
            ..Default::default()
        },
    );
    streamed.id = Some("msg_stream".into());
    let rec = free
        .succeed_with(vec![streamed])
        .await
        .expect("succeed_with");
    c.eq(
        "the call's user is filled in",
        rec[0].event.user_id.clone(),
        Some("u2".to_owned()),
    );
    t.flush().await.expect("flush");
    let stored = t.event("msg_stream").await.expect("event");
    c.that("batched event stored after flush", stored.is_some());
    c.finish();
}

/// Events queued through the batched writer fire threshold alerts once their batch is
/// written, like events recorded one by one.
pub async fn queued_events_fire_alerts(b: &Backend) {
    let mut c = Check::new(b.label(), "queued_events_fire_alerts");
    let t = b.tracker();
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = fired.clone();
    t.on_alert(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    set_day_quota(&t, "u1-day", "u1", QuotaMetric::Cost, dec("10")).await;
    for _ in 0..9 {
        t.enqueue(paid("u1", "1")).await.expect("enqueue");
    }
    t.flush().await.expect("flush");
    c.eq(
        "80% crossed once: one callback",
        fired.load(Ordering::SeqCst),
        1,
    );
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let polled = t.alerts(since, 10).await.expect("alerts");
    c.eq(
        "and one stored alert",
        polled
            .iter()
            .map(|a| a.threshold.clone())
            .collect::<Vec<_>>(),
        vec!["warning".to_owned()],
    );
    c.finish();
}

/// Two servers that pass a threshold together: each stores its event, then reads the usage
/// after both writes. Neither one's own event crossed 80% from what it reads, yet the alert
/// must fire, once; later thresholds fire once too, whichever server sees them first.
pub async fn threshold_passed_by_two_servers_together_fires_once(b: &Backend) {
    let mut c = Check::new(
        b.label(),
        "threshold_passed_by_two_servers_together_fires_once",
    );
    let names = |alerts: &[usage_core::store::Alert]| -> Vec<String> {
        alerts.iter().map(|a| a.threshold.clone()).collect()
    };
    let t1 = b.tracker();
    let t2 = usage_store::Tracker::with_store(b.store.clone(), Default::default());
    set_day_quota(&t1, "u1-day", "u1", QuotaMetric::Cost, dec("10")).await;
    let r = t1.record(paid("u1", "7")).await.expect("record");
    c.eq("70%: no alert", r.alerts.len(), 0);
    // The second server's event is stored; its threshold check has not run yet.
    let (theirs, _) = t2.prepare(paid("u1", "1")).expect("prepare");
    let stored = b.store.insert(&[theirs]).await.expect("insert");
    c.eq("their event stored", stored, vec![true]);
    // 7 + 1 + 1 = 9: this server's own event took usage from 8 (already 80%) to 9.
    let r = t1.record(paid("u1", "1")).await.expect("record");
    c.eq(
        "90%: warning fires",
        names(&r.alerts),
        vec!["warning".to_owned()],
    );
    let r = t2.record(paid("u1", "0.1")).await.expect("record");
    c.eq("the other server: nothing new", r.alerts.len(), 0);
    let r = t2.record(paid("u1", "0.4")).await.expect("record");
    c.eq(
        "95% on the other server",
        names(&r.alerts),
        vec!["upgrade_suggested".to_owned()],
    );
    let r = t1.record(paid("u1", "0.1")).await.expect("record");
    c.eq("then nothing new here either", r.alerts.len(), 0);
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let stored = t1.alerts(since, 10).await.expect("alerts");
    c.eq(
        "alerts stored once each",
        names(&stored),
        vec!["warning".to_owned(), "upgrade_suggested".to_owned()],
    );
    c.finish();
}

/// A write reads back the usage of the quotas it names with its own events counted (the
/// alert check's input), whether the store reads inside the write or after it; a duplicate
/// or a second commit adds nothing.
pub async fn writes_read_back_the_usage_they_reached(b: &Backend) {
    let mut c = Check::new(b.label(), "writes_read_back_the_usage_they_reached");
    let t = b.tracker();
    let now = chrono::Utc::now();
    let quotas = [
        Quota::new(
            "u1-day",
            Subject::user("u1"),
            QuotaMetric::Cost,
            dec("100"),
            Window::Day,
        ),
        Quota::new(
            "all-hour",
            Subject::Global,
            QuotaMetric::Requests,
            dec("100"),
            Window::Rolling { seconds: 3600 },
        ),
    ];
    let watch: Vec<_> = quotas
        .iter()
        .map(|q| (q.clone(), q.window_at(now).expect("window").range()))
        .collect();
    let event = |user: &str, usd: &str| t.prepare(paid(user, usd).at(now)).expect("prepare").0;
    let (e1, e2, e3) = (event("u1", "2"), event("u2", "3"), event("u1", "4"));

    let (inserted, used) = b
        .store
        .insert_and_read(&[e1.clone(), e2], &watch)
        .await
        .expect("insert");
    c.eq("both new", inserted, vec![true, true]);
    c.eq(
        "the usage they reached",
        used.clone(),
        vec![dec("2"), dec("2")],
    );
    c.eq(
        "as read after the write",
        b.store.used(&watch).await.expect("used"),
        used,
    );
    let again = b
        .store
        .insert_and_read(std::slice::from_ref(&e1), &watch)
        .await
        .expect("again");
    c.eq(
        "a duplicate adds nothing",
        again,
        (vec![false], vec![dec("2"), dec("2")]),
    );

    let r = t
        .reserve(&[Subject::user("u1")], &one_request(), None)
        .await
        .expect("reserve");
    let committed = b
        .store
        .commit_and_read(&r.id, std::slice::from_ref(&e3), &watch)
        .await
        .expect("commit");
    c.eq(
        "a commit reads its event counted",
        committed,
        (vec![true], vec![dec("6"), dec("3")]),
    );
    let again = b
        .store
        .commit_and_read(&r.id, std::slice::from_ref(&e3), &watch)
        .await
        .expect("commit again");
    c.eq(
        "a second commit adds nothing",
        again,
        (vec![false], vec![dec("6"), dec("3")]),
    );
    c.eq(
        "nothing to read, nothing read",
        b.store
            .insert_and_read(std::slice::from_ref(&e1), &[])
            .await
            .expect("no watch"),
        (vec![false], vec![]),
    );
    c.finish();
}

/// `forecast` works for any filter, not only a quota's: with usage today only, the projection
/// is at least what is used and the limit is reported back.
pub async fn forecast_for_any_filter(b: &Backend) {
    let mut c = Check::new(b.label(), "forecast_for_any_filter");
    let t = b.tracker();
    t.record(paid("u1", "2")).await.expect("record");
    t.record(paid("u2", "5")).await.expect("record");
    let filter = usage_core::query::Filter {
        user_id: Some("u1".into()),
        ..Default::default()
    };
    let f = t
        .forecast(
            &filter,
            QuotaMetric::Cost,
            Window::Month { anchor_day: 1 },
            "UTC",
            Some(dec("100")),
            &Default::default(),
        )
        .await
        .expect("forecast");
    c.that(
        "projection covers what u1 used, not u2",
        f.projected >= dec("2") && f.low >= dec("2"),
    );
    c.eq("limit echoed", f.limit, Some(dec("100")));
    let bad = t
        .forecast(
            &filter,
            QuotaMetric::Cost,
            Window::Day,
            "Mars/Base",
            None,
            &Default::default(),
        )
        .await;
    c.that(
        "unknown time zone named",
        matches!(bad, Err(e) if e.to_string().contains("Mars/Base")),
    );
    let scoped = t.for_user("u2").expect("scope");
    let other = scoped
        .forecast(
            &filter,
            QuotaMetric::Cost,
            Window::Day,
            "UTC",
            None,
            &Default::default(),
        )
        .await;
    c.that(
        "a scoped handle cannot forecast another user",
        other.is_err(),
    );
    c.finish();
}

/// A stream the caller stopped reading is recorded with the usage it delivered, as an
/// `incomplete` error, and its hold is dropped.
pub async fn cut_off_stream_is_recorded_incomplete(b: &Backend) {
    use usage_core::extract::{Provider, StreamAccumulator};
    let mut c = Check::new(b.label(), "cut_off_stream_is_recorded_incomplete");
    let t = b.tracker();
    set_day_quota(&t, "u1-cost", "u1", QuotaMetric::Cost, dec("1")).await;
    let ctx = call_ctx("u1", None, false);
    let call = t
        .begin_call(
            ctx,
            &Estimate::new(TokenUsage::default(), "0.5".parse().expect("usd")),
        )
        .await
        .expect("begin");
    let mut acc = StreamAccumulator::new(Provider::Anthropic);
    acc.push(
        &serde_json::json!({"type": "message_start", "message": {"id": "msg_cut",
        "type": "message", "model": "claude-haiku-4-5",
        "usage": {"input_tokens": 1000, "output_tokens": 1}}}),
    )
    .expect("push");
    call.first_token();
    let rec = call
        .finish_stream(acc.snapshot(), None)
        .await
        .expect("record");
    c.eq(
        "status and error type",
        (rec[0].event.status, rec[0].event.error_type.clone()),
        (
            usage_core::Status::Error,
            Some("incomplete_stream".to_owned()),
        ),
    );
    c.eq("input seen is kept", rec[0].event.usage.input, 1000);
    let s = &t
        .quota_status(&[Subject::user("u1")])
        .await
        .expect("status")[0];
    c.eq("hold dropped", s.held, Decimal::ZERO);
    c.finish();
}

/// A model the catalog does not know: the call goes ahead (its event is recorded unpriced)
/// unless a hard cost quota applies, which could not be kept.
pub async fn unknown_model_calls_are_refused_only_under_a_cost_limit(b: &Backend) {
    use usage_store::CallSize;
    let mut c = Check::new(
        b.label(),
        "unknown_model_calls_are_refused_only_under_a_cost_limit",
    );
    let t = b.tracker();
    let ctx = |user: &str| call_ctx(user, Some("claude-next-9"), false);
    let size = CallSize {
        model: "claude-next-9".into(),
        prompt_tokens: 100,
        max_tokens: 50,
        ..Default::default()
    };
    set_day_quota(&t, "u1-cost", "u1", QuotaMetric::Cost, dec("10")).await;
    set_day_quota(&t, "u2-tokens", "u2", QuotaMetric::TotalTokens, dec("1000")).await;
    c.that(
        "under a hard cost quota: refused before the call",
        matches!(
            t.begin_call_sized(ctx("u1"), &size).await,
            Err(Error::UnknownModel { .. })
        ),
    );
    let call = t.begin_call_sized(ctx("u2"), &size).await;
    c.that("under a token quota: allowed", call.is_ok());
    if let Ok(call) = call {
        let s = &t
            .quota_status(&[Subject::user("u2")])
            .await
            .expect("status")[0];
        c.eq("its tokens are held", s.held, dec("150"));
        call.fail("api_error", "x").await.expect("fail");
    }
    c.that(
        "without quotas: allowed",
        t.begin_call_sized(ctx("u3"), &size).await.is_ok(),
    );
    c.finish();
}
