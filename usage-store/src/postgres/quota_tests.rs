//! PostgreSQL quota tests: the reservation guarantee across several pools (as several app
//! servers), expiry, idempotency, errors, alerts and usage windows. Each test gets a fresh
//! schema, like `tests.rs`: the server comes from `USAGE_TEST_POSTGRES_URL` or `DATABASE_URL`,
//! and without one the tests print a skip notice unless `USAGE_REQUIRE_POSTGRES=1`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use usage_core::event::{CostSource, EventCost, EventId, Status, UsageEvent};
use usage_core::quota::{Quota, QuotaMetric, Subject, Threshold, Window};
use usage_core::store::{
    Alert, HoldRequest, QuotaStore, Reservation, ReserveRequest, Store, quota_usage_requests,
};
use usage_core::{Error, PricingContext, TokenUsage, Usd};

use super::{PgOptions, PgStore};
use crate::memory::MemoryStore;

fn test_url() -> Option<String> {
    let url = ["USAGE_TEST_POSTGRES_URL", "DATABASE_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
    if url.is_none() {
        assert!(
            std::env::var("USAGE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "USAGE_REQUIRE_POSTGRES=1 but neither USAGE_TEST_POSTGRES_URL nor DATABASE_URL is set"
        );
        eprintln!(
            "skipping PostgreSQL test: set USAGE_TEST_POSTGRES_URL (or DATABASE_URL) to run it"
        );
    }
    url
}

/// A fresh schema on the test server, dropped with the value (so also when a test fails).
struct TestDb {
    url: String,
    schema: String,
}

impl TestDb {
    fn new() -> Option<TestDb> {
        static N: AtomicU64 = AtomicU64::new(0);
        let url = test_url()?;
        let schema = format!(
            "usage_quota_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            Utc::now().timestamp_subsec_nanos()
        );
        Some(TestDb { url, schema })
    }

    /// A store with its own pool: one per simulated app server.
    async fn open(&self, connections: u32) -> PgStore {
        PgStore::connect(
            &self.url,
            PgOptions::default()
                .schema(&self.schema)
                .max_connections(connections),
        )
        .await
        .expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs on a runtime thread (or while unwinding): use a thread and runtime of our own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = done.join() {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("timestamp")
}

fn usd(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

/// An event of `user` costing exactly `cost` (USD, whole nano-dollars).
fn event(id: &str, ts: DateTime<Utc>, user: &str, cost: Decimal) -> UsageEvent {
    let total = Usd::from(cost);
    UsageEvent {
        id: EventId::new(id).expect("id"),
        timestamp: ts,
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        resolved_model: Some("claude-sonnet-4-5".into()),
        usage: TokenUsage {
            input: 100,
            output: 20,
            ..Default::default()
        },
        cost: Some(EventCost {
            input: total,
            total,
            ..Default::default()
        }),
        cost_source: CostSource::Calculated,
        unpriced_reason: None,
        catalog_version: Some("test".into()),
        latency_ms: Some(120),
        duration_ms: Some(900),
        status: Status::Success,
        error_type: None,
        error_message: None,
        context: PricingContext::default(),
        user_id: Some(user.into()),
        tags: BTreeMap::new(),
    }
}

/// A hard daily cost quota on user `u1`.
fn cost_quota(id: &str, limit: &str) -> Quota {
    Quota::new(
        id,
        Subject::user("u1"),
        QuotaMetric::Cost,
        usd(limit),
        Window::Day,
    )
}

fn hold(quota: &Quota, now: DateTime<Utc>, amount: Decimal) -> HoldRequest {
    HoldRequest {
        quota: quota.clone(),
        range: quota.window_at(now).expect("window").range(),
        amount,
    }
}

fn request(id: &str, now: DateTime<Utc>, ttl_secs: i64, holds: Vec<HoldRequest>) -> ReserveRequest {
    ReserveRequest {
        id: id.into(),
        holds,
        now,
        expires_at: now + chrono::Duration::seconds(ttl_secs),
    }
}

/// What `quota` has recorded at `now`, summed the way `reserve` sums it.
async fn used(store: &dyn Store, quota: &Quota, now: DateTime<Utc>) -> Decimal {
    let mut sum = Decimal::ZERO;
    for r in quota_usage_requests(quota, quota.window_at(now).expect("window").range()) {
        for row in store.aggregate(&r).await.expect("aggregate") {
            sum += quota.metric.amount(&row.totals);
        }
    }
    sum
}

/// (quota, limit, used + held, requested) of a refusal.
fn refusal(e: Error) -> (String, Decimal, Decimal, Decimal) {
    match e {
        Error::QuotaExceeded {
            quota,
            limit,
            used,
            requested,
        } => (quota, limit, used, requested),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

/// A small deterministic generator (no `rand` dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Outcome {
    /// (estimate, actual) of every committed reservation.
    committed: Vec<(Decimal, Decimal)>,
    /// (limit, used + held, requested) of every refusal.
    refused: Vec<(Decimal, Decimal, Decimal)>,
}

/// Three pools on one schema play three app servers; 24 tasks run ten rounds of reserve →
/// commit against one hard $1.00 quota. Actual spend is the estimate or a little more, never less, so
/// the estimates granted must add up to at most the limit (each grant saw every earlier
/// commit and outstanding hold), and the spend to at most the limit plus the overshoots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_from_three_servers_never_pass_a_hard_limit() {
    let Some(db) = TestDb::new() else { return };
    let servers = [db.open(8).await, db.open(8).await, db.open(8).await];
    let limit = usd("1.00");
    let quota = cost_quota("u1-daily", "1.00");
    servers[0].put_quota(&quota).await.unwrap();
    let now = at("2026-11-23T10:30:00Z");

    // Every round starts together, so two dozen checks race at the limit.
    let round = std::sync::Arc::new(tokio::sync::Barrier::new(24));
    let tasks: Vec<_> = (0..24u64)
        .map(|task| {
            let store = servers[(task % 3) as usize].clone();
            let quota = quota.clone();
            let round = round.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (task + 1).wrapping_mul(0x2545_f491));
                let mut out = Outcome::default();
                for cycle in 0..10u64 {
                    round.wait().await;
                    // $0.01 to $0.06 estimated; a quarter of the calls cost up to $0.003 more.
                    let estimate = Decimal::new(1 + (rng.next() % 6) as i64, 2);
                    let over = if rng.next().is_multiple_of(4) {
                        Decimal::new(1 + (rng.next() % 3) as i64, 3)
                    } else {
                        Decimal::ZERO
                    };
                    let id = format!("r-{task}-{cycle}");
                    let req = request(&id, now, 3600, vec![hold(&quota, now, estimate)]);
                    match store.reserve(&req).await {
                        Ok(r) => {
                            let u = &r.uses[0];
                            assert!(u.used + u.held + u.requested <= u.limit, "{r:?}");
                            let ts =
                                now + chrono::Duration::milliseconds((task * 10 + cycle) as i64);
                            let e = event(&format!("e-{task}-{cycle}"), ts, "u1", estimate + over);
                            let stored = store.commit_reservation(&id, &[e]).await.unwrap();
                            assert_eq!(stored, vec![true]);
                            out.committed.push((estimate, estimate + over));
                        }
                        Err(e) => {
                            let (q, limit, used, requested) = refusal(e);
                            assert_eq!(q, "u1-daily");
                            out.refused.push((limit, used, requested));
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await.expect("task");
        all.committed.extend(o.committed);
        all.refused.extend(o.refused);
    }

    let estimates: Decimal = all.committed.iter().map(|c| c.0).sum();
    let spent: Decimal = all.committed.iter().map(|c| c.1).sum();
    let overshoots: Decimal = all.committed.iter().map(|c| c.1 - c.0).sum();
    let max_overshoot = all.committed.iter().map(|c| c.1 - c.0).max().unwrap();
    eprintln!(
        "{} granted (estimates {estimates}, spent {spent}), {} refused; over the limit by {} \
         (largest single overshoot {max_overshoot}, all overshoots {overshoots})",
        all.committed.len(),
        all.refused.len(),
        (spent - limit).max(Decimal::ZERO)
    );
    assert!(all.committed.len() >= 16, "too few grants to mean anything");
    assert!(all.refused.len() >= 100, "the limit was never reached");
    // Every event recorded exactly once, and seen the same way from every server.
    for s in &servers {
        assert_eq!(used(s, &quota, now).await, spent);
        assert_eq!(s.held(&quota.id, now).await.unwrap(), Decimal::ZERO);
    }
    assert!(
        estimates <= limit,
        "granted {estimates} against a limit of {limit}"
    );
    assert!(spent <= limit + overshoots);
    for (l, used, requested) in &all.refused {
        assert_eq!(*l, limit);
        assert!(
            used + requested > limit,
            "refused {requested} with {used} used"
        );
    }
}

/// Reservations naming the same quotas in opposite orders, from two servers at once: the
/// advisory locks are taken in one order, so none of them deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_on_overlapping_quotas_in_any_order_do_not_deadlock() {
    let Some(db) = TestDb::new() else { return };
    let servers = [db.open(6).await, db.open(6).await];
    let now = at("2026-11-23T10:30:00Z");
    let quotas: Vec<Quota> = ["qa", "qb", "qc"]
        .iter()
        .map(|id| cost_quota(id, "1000"))
        .collect();
    let tasks: Vec<_> = (0..12usize)
        .map(|task| {
            let store = servers[task % 2].clone();
            let mut order = quotas.clone();
            if task % 2 == 1 {
                order.reverse();
            }
            order.rotate_left(task % 3);
            tokio::spawn(async move {
                for cycle in 0..15 {
                    let id = format!("r-{task}-{cycle}");
                    let holds = order.iter().map(|q| hold(q, now, usd("0.01"))).collect();
                    store.reserve(&request(&id, now, 60, holds)).await.unwrap();
                    let e = event(&format!("e-{task}-{cycle}"), now, "u1", usd("0.01"));
                    store.commit_reservation(&id, &[e]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("no reservation failed");
    }
    assert_eq!(used(&servers[1], &quotas[0], now).await, usd("1.80"));
}

/// A purge forgetting expired reservations while another server commits them: each commit
/// either lands or finds its reservation gone, and neither side deadlocks (the purge locks the
/// reservations before their holds, as a commit does).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purge_and_commits_of_the_reservations_it_forgets_do_not_deadlock() {
    let Some(db) = TestDb::new() else { return };
    let servers = [db.open(4).await, db.open(24).await];
    let q = cost_quota("q", "1000");
    servers[0].put_quota(&q).await.expect("put quota");
    for round in 0..4 {
        let then = Utc::now() - chrono::Duration::hours(2);
        let ids: Vec<String> = (0..40).map(|i| format!("r-{round}-{i}")).collect();
        for id in &ids {
            let holds = vec![hold(&q, then, usd("0.01"))];
            servers[0]
                .reserve(&request(id, then, 60, holds))
                .await
                .expect("reserve");
        }
        let committer = servers[1].clone();
        let commits: Vec<_> = ids
            .iter()
            .map(|id| {
                let (store, id) = (committer.clone(), id.clone());
                tokio::spawn(async move { store.commit_reservation(&id, &[]).await })
            })
            .collect();
        let ahead = Utc::now() + chrono::Duration::hours(2);
        let cut = DateTime::from_timestamp_millis(
            ahead.timestamp_millis().div_euclid(3_600_000) * 3_600_000,
        )
        .expect("hour");
        let purged = servers[0]
            .purge(cut, &usage_core::store::RunOptions::default())
            .await
            .expect("purge");
        assert_eq!(purged.outcome, usage_core::store::RunOutcome::Succeeded);
        for c in commits {
            match c.await.expect("task") {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("round {round}: a commit failed: {e}"),
            }
        }
    }
}

/// Reserve and commit wait for the quota's advisory lock, under the documented key (so
/// servers running different builds still exclude each other); release needs no lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_and_commit_wait_for_the_quotas_advisory_lock() {
    use sqlx::Connection;
    let Some(db) = TestDb::new() else { return };
    let s = db.open(4).await;
    // Advisory locks are database-wide: an id of its own keeps other tests out of the way.
    let id = format!("probe-{}", db.schema);
    let q = cost_quota(&id, "1.00");
    let now = at("2026-11-23T10:00:00Z");
    for r in ["to-commit", "to-release"] {
        s.reserve(&request(r, now, 60, vec![hold(&q, now, usd("0.10"))]))
            .await
            .unwrap();
    }
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('usage-core:quota:' || $1, 0))")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let commit = tokio::spawn({
        let s = s.clone();
        async move {
            let e = event("spent", now, "u1", usd("0.10"));
            s.commit_reservation("to-commit", &[e]).await
        }
    });
    let reserve = tokio::spawn({
        let (s, q) = (s.clone(), q.clone());
        async move {
            s.reserve(&request("next", now, 60, vec![hold(&q, now, usd("0.10"))]))
                .await
        }
    });
    assert!(s.release_reservation("to-release").await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!commit.is_finished(), "commit did not wait for the lock");
    assert!(!reserve.is_finished(), "reserve did not wait for the lock");
    tx.rollback().await.unwrap();
    assert_eq!(commit.await.unwrap().unwrap(), vec![true]);
    reserve.await.unwrap().unwrap();
}

#[tokio::test]
async fn expired_holds_stop_counting_and_can_still_be_committed() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open(2).await;
    let q = cost_quota("q", "1.00");
    let t0 = at("2026-11-23T10:00:00.000Z");
    let later = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    s.reserve(&request("a", t0, 60, vec![hold(&q, t0, usd("0.80"))]))
        .await
        .unwrap();
    assert_eq!(s.held("q", t0).await.unwrap(), usd("0.80"));
    assert_eq!(s.held("q", later(59_999)).await.unwrap(), usd("0.80"));
    // Expiring at `now` means not counting any more.
    assert_eq!(s.held("q", later(60_000)).await.unwrap(), Decimal::ZERO);

    let e = s
        .reserve(&request(
            "b",
            later(30_000),
            60,
            vec![hold(&q, t0, usd("0.30"))],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(e),
        ("q".into(), usd("1.00"), usd("0.80"), usd("0.30"))
    );
    let b = s
        .reserve(&request(
            "b",
            later(60_000),
            60,
            vec![hold(&q, t0, usd("0.30"))],
        ))
        .await
        .unwrap();
    assert_eq!(
        (b.uses[0].used, b.uses[0].held),
        (Decimal::ZERO, Decimal::ZERO)
    );

    // The expired reservation still records what was spent.
    let spent = event("a-1", later(61_000), "u1", usd("0.75"));
    assert_eq!(
        s.commit_reservation("a", &[spent]).await.unwrap(),
        vec![true]
    );
    assert_eq!(used(&s, &q, t0).await, usd("0.75"));
    assert_eq!(s.held("q", later(61_000)).await.unwrap(), usd("0.30"));
    // Which now leaves no room for more than $0.05 while `b` holds.
    let e = s
        .reserve(&request(
            "c",
            later(62_000),
            60,
            vec![hold(&q, t0, usd("0.06"))],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(e),
        ("q".into(), usd("1.00"), usd("1.05"), usd("0.06"))
    );
}

#[tokio::test]
async fn commit_and_release_are_idempotent_and_exclusive() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open(2).await;
    let q = cost_quota("q", "1.00");
    let now = at("2026-11-23T10:00:00Z");
    let ev = |id: &str| event(id, now, "u1", usd("0.10"));

    s.reserve(&request("a", now, 60, vec![hold(&q, now, usd("0.25"))]))
        .await
        .unwrap();
    // An event already recorded elsewhere counts once.
    s.insert(&[ev("dup")]).await.unwrap();
    assert_eq!(
        s.commit_reservation("a", &[ev("a1"), ev("dup")])
            .await
            .unwrap(),
        vec![true, false]
    );
    assert_eq!(s.held("q", now).await.unwrap(), Decimal::ZERO);
    // Committing again changes nothing, whatever events come with it.
    assert_eq!(
        s.commit_reservation("a", &[ev("a1"), ev("a2")])
            .await
            .unwrap(),
        vec![false, false]
    );
    assert!(s.get(&EventId::new("a2").unwrap()).await.unwrap().is_none());
    assert!(!s.release_reservation("a").await.unwrap());
    assert_eq!(used(&s, &q, now).await, usd("0.20"));

    s.reserve(&request("b", now, 60, vec![hold(&q, now, usd("0.50"))]))
        .await
        .unwrap();
    assert_eq!(s.held("q", now).await.unwrap(), usd("0.50"));
    assert!(s.release_reservation("b").await.unwrap());
    assert!(!s.release_reservation("b").await.unwrap());
    assert_eq!(s.held("q", now).await.unwrap(), Decimal::ZERO);
    let e = s.commit_reservation("b", &[ev("b1")]).await.unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { field, reason } if field == "reservation" && reason.contains("released")),
        "{e:?}"
    );
    assert!(s.get(&EventId::new("b1").unwrap()).await.unwrap().is_none());
    assert_eq!(used(&s, &q, now).await, usd("0.20"));
}

#[tokio::test]
async fn unknown_and_reused_reservation_ids_are_errors() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open(2).await;
    let q = cost_quota("q", "1.00");
    let now = at("2026-11-23T10:00:00Z");
    let not_found =
        |e: Error| matches!(e, Error::NotFound { kind: "reservation", id } if id == "nope");
    assert!(not_found(
        s.commit_reservation("nope", &[]).await.unwrap_err()
    ));
    assert!(not_found(s.release_reservation("nope").await.unwrap_err()));

    s.reserve(&request("a", now, 60, vec![hold(&q, now, usd("0.40"))]))
        .await
        .unwrap();
    // Reusing the id fails before the limit is even looked at, and leaves `a` as it was.
    for amount in ["0.10", "5"] {
        let e = s
            .reserve(&request("a", now, 60, vec![hold(&q, now, usd(amount))]))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { ref field, .. } if field == "reservation"),
            "{e:?}"
        );
    }
    assert_eq!(s.held("q", now).await.unwrap(), usd("0.40"));
    s.commit_reservation("a", &[]).await.unwrap();
    assert!(matches!(
        s.reserve(&request("a", now, 60, vec![])).await,
        Err(Error::InvalidArgument { .. })
    ));
}

/// A refused reservation stores nothing: not the holds on quotas that had room, not the
/// reservation (its id stays free).
#[tokio::test]
async fn a_refused_reservation_writes_nothing() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open(2).await;
    let now = at("2026-11-23T10:00:00Z");
    let soft = cost_quota("soft", "0.10").soft();
    let roomy = cost_quota("roomy", "10");
    let tight = cost_quota("tight", "1.00");
    let tighter = cost_quota("tighter", "0.50");
    s.insert(&[event("old", now, "u1", usd("0.70"))])
        .await
        .unwrap();
    let holds = vec![
        hold(&soft, now, usd("0.40")),
        hold(&roomy, now, usd("0.40")),
        hold(&tight, now, usd("0.40")),
        hold(&tighter, now, usd("0.40")),
    ];
    let e = s
        .reserve(&request("r", now, 60, holds.clone()))
        .await
        .unwrap_err();
    // The first hard quota in `holds` order that would pass its limit.
    assert_eq!(
        refusal(e),
        ("tight".into(), usd("1.00"), usd("0.70"), usd("0.40"))
    );
    for q in ["soft", "roomy", "tight", "tighter"] {
        assert_eq!(s.held(q, now).await.unwrap(), Decimal::ZERO, "{q}");
    }
    let rows: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM reservations), (SELECT count(*) FROM holds)")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(rows, (0, 0));
    assert!(matches!(
        s.release_reservation("r").await,
        Err(Error::NotFound { .. })
    ));

    // The same id goes through once the request fits; the soft quota holds but never refuses.
    let r = s
        .reserve(&request("r", now, 60, holds[..2].to_vec()))
        .await
        .unwrap();
    assert_eq!(r.uses[0].used, usd("0.70"));
    assert_eq!(s.held("soft", now).await.unwrap(), usd("0.40"));
    assert_eq!(s.held("roomy", now).await.unwrap(), usd("0.40"));
}

/// A rolling window starts mid-hour: the ragged head comes from raw events (to the
/// millisecond), the rest from rollups, and events stamped ahead of `now` still count. The
/// memory store must see exactly the same.
#[tokio::test]
async fn a_rolling_window_counts_its_ragged_edge_from_raw_events() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open(2).await;
    let mem = MemoryStore::default();
    let now = at("2026-11-23T10:30:15.250Z");
    let rolling = |id: &str, metric, limit: &str| {
        Quota::new(
            id,
            Subject::user("u1"),
            metric,
            usd(limit),
            Window::Rolling { seconds: 5 * 3600 },
        )
    };
    let cost = rolling("cost-5h", QuotaMetric::Cost, "1");
    let requests = rolling("requests-5h", QuotaMetric::Requests, "8");
    let events = vec![
        event(
            "before-start",
            at("2026-11-23T05:30:15.249Z"),
            "u1",
            usd("0.5"),
        ),
        event(
            "at-start",
            at("2026-11-23T05:30:15.250Z"),
            "u1",
            usd("0.000000001"),
        ),
        event("head", at("2026-11-23T05:59:59.999Z"), "u1", usd("0.02")),
        event("hour-6", at("2026-11-23T06:00:00Z"), "u1", usd("0.04")),
        event("hour-8", at("2026-11-23T08:15:00Z"), "u1", usd("0.08")),
        event("now", now, "u1", usd("0.16")),
        event("ahead", at("2026-11-23T11:00:00Z"), "u1", usd("0.32")),
        event("someone-else", at("2026-11-23T09:00:00Z"), "u2", usd("0.9")),
    ];
    s.insert(&events).await.unwrap();
    mem.insert(&events).await.unwrap();
    let counted = usd("0.620000001");

    // Exactly up to the limit is allowed, a nano-dollar more is not.
    let fits = request(
        "fits",
        now,
        60,
        vec![
            hold(&cost, now, Decimal::ONE - counted),
            hold(&requests, now, Decimal::from(2)),
        ],
    );
    let pg = s.reserve(&fits).await.unwrap();
    assert_eq!(pg, mem.reserve(&fits).await.unwrap());
    assert_eq!(
        (pg.uses[0].used, pg.uses[1].used),
        (counted, Decimal::from(6))
    );

    let over = request("over", now, 60, vec![hold(&cost, now, usd("0.000000001"))]);
    let e = s.reserve(&over).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        mem.reserve(&over).await.unwrap_err().to_string()
    );
    assert_eq!(refusal(e).2, Decimal::ONE);
}

/// Sixteen workers on three servers notice the same crossing: one alert is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_is_stored_once_however_many_servers_notice_it() {
    let Some(db) = TestDb::new() else { return };
    let servers = [db.open(6).await, db.open(6).await, db.open(6).await];
    let window_start = at("2026-11-23T00:00:00Z");
    let alert = |threshold: &str, at: DateTime<Utc>| Alert {
        quota_id: "q".into(),
        subject: Subject::user("u1"),
        window_start,
        threshold: threshold.into(),
        percent: Decimal::from(80),
        used: usd("0.81"),
        limit: usd("1.00"),
        at,
    };
    let base = at("2026-11-23T10:00:00.000100Z");
    let tasks: Vec<_> = (0..16i64)
        .map(|i| {
            let s = servers[(i % 3) as usize].clone();
            let a = alert("warning", base + chrono::Duration::microseconds(i * 1500));
            tokio::spawn(async move { (s.insert_alert(&a).await.unwrap(), a) })
        })
        .collect();
    let mut stored = Vec::new();
    for t in tasks {
        let (inserted, a) = t.await.unwrap();
        if inserted {
            stored.push(a);
        }
    }
    assert_eq!(stored.len(), 1);
    let first = stored.remove(0);
    assert_eq!(
        servers[1].alerts(window_start, 10).await.unwrap(),
        vec![first.clone()]
    );

    // Another threshold, or another window, is another alert; order is oldest first, `since`
    // is inclusive to the nanosecond, and `limit` keeps the oldest.
    let blocked = alert("blocked", at("2026-11-23T09:00:00.000000500Z"));
    let mut next_window = alert("warning", at("2026-11-24T09:00:00Z"));
    next_window.window_start = at("2026-11-24T00:00:00Z");
    assert!(servers[2].insert_alert(&blocked).await.unwrap());
    assert!(servers[0].insert_alert(&next_window).await.unwrap());
    assert!(!servers[0].insert_alert(&blocked).await.unwrap());
    let all = servers[0].alerts(window_start, 10).await.unwrap();
    assert_eq!(
        all,
        vec![blocked.clone(), first.clone(), next_window.clone()]
    );
    assert_eq!(servers[0].alerts(window_start, 2).await.unwrap(), all[..2]);
    let since = blocked.at + chrono::Duration::nanoseconds(1);
    assert_eq!(
        servers[0].alerts(since, 10).await.unwrap(),
        vec![first.clone(), next_window.clone()]
    );
    assert_eq!(
        servers[0].alerts(blocked.at, 1).await.unwrap(),
        vec![blocked]
    );
}

#[tokio::test]
async fn quotas_are_validated_replaced_and_deleted_exactly() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open(2).await;
    let now = at("2026-11-23T10:00:00Z");
    let bad = cost_quota("q", "0");
    assert!(matches!(
        s.put_quota(&bad).await,
        Err(Error::InvalidArgument { ref field, .. }) if field == "limit"
    ));
    let bad = cost_quota("q", "1")
        .with_thresholds(vec![Threshold::new("b", 90), Threshold::new("a", 50)]);
    assert!(s.put_quota(&bad).await.is_err());
    assert_eq!(s.quotas().await.unwrap(), vec![]);

    // Decimals round-trip exactly; ids come back in bytewise order; a put replaces.
    let a = cost_quota("a", "0.1234567890123456789012345678");
    let upper = Quota::new(
        "Z",
        Subject::tag("team", "ml"),
        QuotaMetric::TotalTokens,
        1_000_000,
        Window::Month { anchor_day: 31 },
    )
    .in_tz("America/New_York")
    .soft();
    s.put_quota(&a).await.unwrap();
    s.put_quota(&upper).await.unwrap();
    s.put_quota(&cost_quota("a", "5")).await.unwrap();
    let a = cost_quota("a", "1.00");
    s.put_quota(&a).await.unwrap();
    assert_eq!(s.quotas().await.unwrap(), vec![upper.clone(), a.clone()]);
    let exact = cost_quota("x", "0.1234567890123456789012345678");
    s.put_quota(&exact).await.unwrap();
    assert_eq!(s.quotas().await.unwrap()[2], exact);

    // Deleting a quota drops its outstanding holds, for good; the reservation can still be
    // committed.
    s.reserve(&request("r", now, 60, vec![hold(&a, now, usd("0.60"))]))
        .await
        .unwrap();
    assert_eq!(s.held("a", now).await.unwrap(), usd("0.60"));
    assert!(s.delete_quota("a").await.unwrap());
    assert!(!s.delete_quota("a").await.unwrap());
    assert_eq!(s.held("a", now).await.unwrap(), Decimal::ZERO);
    s.put_quota(&a).await.unwrap();
    assert_eq!(s.held("a", now).await.unwrap(), Decimal::ZERO);
    s.reserve(&request("r2", now, 60, vec![hold(&a, now, usd("1.00"))]))
        .await
        .unwrap();
    let e = event("r-1", now, "u1", usd("0.60"));
    assert_eq!(s.commit_reservation("r", &[e]).await.unwrap(), vec![true]);
    assert_eq!(
        s.quotas()
            .await
            .unwrap()
            .iter()
            .map(|q| q.id.as_str())
            .collect::<Vec<_>>(),
        ["Z", "a", "x"]
    );
}

/// Latency of a reserve → commit cycle (one hold, one event) on this machine, with commits
/// waiting for the disk and without (`PgOptions::synchronous_commit`):
/// `USAGE_TEST_POSTGRES_URL=… cargo test -p usage-store --features postgres --release -- --ignored --nocapture reserve_commit_speed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run in release"]
async fn reserve_commit_speed() {
    let Some(db) = TestDb::new() else { return };
    let relaxed = PgStore::connect(
        &db.url,
        PgOptions::default()
            .schema(&db.schema)
            .max_connections(4)
            .synchronous_commit(false),
    )
    .await
    .unwrap();
    let mut medians = Vec::new();
    for (name, s) in [
        ("synchronous_commit on", db.open(4).await),
        ("synchronous_commit off", relaxed),
    ] {
        let q = cost_quota(&format!("q-{name}"), "1000000");
        s.put_quota(&q).await.unwrap();
        let (mut reserve, mut commit, mut both) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..1000 {
            let now = Utc::now();
            let id = format!("{name}-r{i}");
            let t = Instant::now();
            let r: Reservation = s
                .reserve(&request(&id, now, 60, vec![hold(&q, now, usd("0.05"))]))
                .await
                .unwrap();
            let reserved = t.elapsed();
            let e = event(&format!("{name}-e{i}"), now, "u1", usd("0.04"));
            s.commit_reservation(&r.id, &[e]).await.unwrap();
            both.push(t.elapsed());
            reserve.push(reserved);
            commit.push(t.elapsed() - reserved);
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        both.sort();
        eprintln!(
            "{name}: reserve + commit median {:?}, p90 {:?}, p99 {:?} (reserve median {:?}, commit median {:?})",
            both[500],
            both[900],
            both[990],
            median(&mut reserve),
            median(&mut commit)
        );
        medians.push(both[500]);
    }
    assert!(
        medians[0] < Duration::from_millis(3),
        "median {:?}",
        medians[0]
    );
}
