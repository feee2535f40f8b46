//! Quotas on SQLite: reservations never let spend pass a hard limit, whether the reservers are
//! threads, two store instances or two processes on one file; holds expire; commit and release
//! are idempotent; alerts are stored once; usage is counted exactly over ragged windows; and
//! every answer matches the in-memory reference store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use usage_core::event::{CostSource, EventCost, EventId, Status, UsageEvent};
use usage_core::quota::{Quota, QuotaMetric, Subject, Window};
use usage_core::store::{
    Alert, HoldRequest, QuotaStore, ReserveRequest, Store, quota_usage_requests,
};
use usage_core::{Error, PricingContext, Result, TokenUsage, Usd};

use super::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
use crate::memory::MemoryStore;

const CHILD_DB: &str = "USAGE_QUOTA_CHILD_DB";
const CHILD_LOG: &str = "USAGE_QUOTA_CHILD_LOG";

/// A unique database path under the temp dir, removed (with its side files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        TempDb(std::env::temp_dir().join(format!(
            "usage-quota-{name}-{}-{nanos}-{n}.db",
            std::process::id()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// A sibling file (logs, barriers) removed with the database.
    fn sibling(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", self.0.display()))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal", ".child", ".ready", ".go"] {
            let _ = std::fs::remove_file(self.sibling(suffix));
        }
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open")
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("timestamp")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn nanos_usd(n: i64) -> Decimal {
    Decimal::new(n, 9)
}

/// The instant most tests reserve at.
const NOW: &str = "2026-11-23T10:30:15.250Z";

fn event(id: &str, ts: DateTime<Utc>, user: &str, cost_nanos: i64) -> UsageEvent {
    let cost = Usd::from_nanos(i128::from(cost_nanos));
    UsageEvent {
        id: EventId::new(id).expect("id"),
        timestamp: ts,
        provider: "anthropic".into(),
        model: "claude-x".into(),
        resolved_model: None,
        usage: TokenUsage {
            input: 100,
            output: 20,
            ..Default::default()
        },
        cost: Some(EventCost {
            output: cost,
            total: cost,
            ..Default::default()
        }),
        cost_source: CostSource::Calculated,
        unpriced_reason: None,
        catalog_version: Some("test".into()),
        latency_ms: Some(120),
        duration_ms: None,
        status: Status::Success,
        error_type: None,
        error_message: None,
        context: PricingContext::default(),
        user_id: Some(user.into()),
        tags: BTreeMap::new(),
    }
}

fn tagged(mut e: UsageEvent, k: &str, v: &str) -> UsageEvent {
    e.tags.insert(k.into(), v.into());
    e
}

fn cost_quota(id: &str, user: &str, limit: &str) -> Quota {
    Quota::new(
        id,
        Subject::user(user),
        QuotaMetric::Cost,
        dec(limit),
        Window::Day,
    )
}

fn hold(q: &Quota, now: DateTime<Utc>, amount: Decimal) -> HoldRequest {
    HoldRequest {
        quota: q.clone(),
        range: q.window_at(now).expect("window").range(),
        amount,
    }
}

fn request(id: &str, holds: Vec<HoldRequest>, now: DateTime<Utc>, ttl_secs: i64) -> ReserveRequest {
    ReserveRequest {
        id: id.into(),
        holds,
        now,
        expires_at: now + Duration::seconds(ttl_secs),
    }
}

/// What a quota has used, counted independently of `reserve`: the same primitive requests,
/// through the public `Store::aggregate`.
async fn used(store: &dyn Store, q: &Quota, now: DateTime<Utc>) -> Decimal {
    let mut sum = Decimal::ZERO;
    for req in quota_usage_requests(q, q.window_at(now).expect("window").range()) {
        for row in store.aggregate(&req).await.expect("aggregate") {
            sum += q.metric.amount(&row.totals);
        }
    }
    sum
}

fn raw_count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("inspect");
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

// ---------------------------------------------------------------------------------------
// The hard-limit guarantee under concurrency.

/// One reserve (and, when granted, commit) as a worker saw it, with wall-clock nanoseconds
/// taken just before each call and just after it returned (comparable across processes).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cycle {
    id: String,
    estimate: Decimal,
    actual: Decimal,
    r0: i64,
    r1: i64,
    /// `used + held` reported by a granted reservation.
    granted: Option<Decimal>,
    /// `used` reported by the QuotaExceeded error of a refused one.
    refused: Option<Decimal>,
    c0: i64,
    c1: i64,
}

fn clock() -> i64 {
    Utc::now().timestamp_nanos_opt().expect("clock in range")
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reserves an estimate and commits an actual event, `cycles` times. Estimates are 5–15 mUSD;
/// the actual is 50–100% of it, except in every seventh cycle, which spends 2 mUSD more than
/// it reserved.
async fn worker(
    store: SqliteStore,
    quota: Quota,
    who: String,
    seed: u64,
    cycles: usize,
) -> Vec<Cycle> {
    let now = at(NOW);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::with_capacity(cycles);
    for i in 0..cycles {
        let est = 5_000_000 + rng.below(10_000_001) as i64;
        let actual = if i % 7 == 3 {
            est + 2_000_000
        } else {
            est * (50 + rng.below(51) as i64) / 100
        };
        let id = format!("{who}-{i}");
        let req = request(&id, vec![hold(&quota, now, nanos_usd(est))], now, 3600);
        let r0 = clock();
        let res = store.reserve(&req).await;
        let r1 = clock();
        let mut c = Cycle {
            id: id.clone(),
            estimate: nanos_usd(est),
            actual: nanos_usd(actual),
            r0,
            r1,
            granted: None,
            refused: None,
            c0: 0,
            c1: 0,
        };
        match res {
            Ok(r) => {
                c.granted = Some(r.uses[0].used + r.uses[0].held);
                let e = event(&format!("ev-{id}"), now, "u", actual);
                c.c0 = clock();
                let done = store.commit_reservation(&id, &[e]).await;
                c.c1 = clock();
                assert_eq!(done.expect("commit"), vec![true], "{id}: committed once");
            }
            Err(Error::QuotaExceeded {
                quota: q,
                used,
                requested,
                limit,
            }) => {
                assert_eq!(
                    (q.as_str(), requested, limit),
                    (quota.id.as_str(), nanos_usd(est), quota.limit)
                );
                c.refused = Some(used);
            }
            Err(e) => panic!("{id}: unexpected error {e}"),
        }
        out.push(c);
    }
    out
}

/// Checks a run against what the workers observed. For each reserve X, every other granted
/// cycle C contributed to X's `used + held` between a lower and an upper bound known from the
/// timings alone: nothing if C started reserving after X returned, its actual if C's commit
/// returned before X started, its estimate if C was surely holding then, and so on. The
/// reported figure must lie within the bounds; a refusal must have been needed
/// (`used + held + estimate > limit`) and a grant allowed (`≤ limit`). Then the recorded
/// total must be exactly what the granted cycles spent, and pass the limit by no more than
/// the overruns (actual - estimate) of the cycles that may still have been outstanding when
/// the last reservation was granted: the others were counted in its `used`.
async fn check_run(store: &SqliteStore, quota: &Quota, cycles: &[Cycle]) {
    let limit = quota.limit;
    let granted: Vec<&Cycle> = cycles.iter().filter(|c| c.granted.is_some()).collect();
    let refusals = cycles.len() - granted.len();
    for x in cycles {
        let (mut lo, mut hi) = (Decimal::ZERO, Decimal::ZERO);
        for c in granted.iter().filter(|c| c.id != x.id) {
            let (est, act) = (c.estimate, c.actual);
            lo += if c.c1 < x.r0 {
                act
            } else if c.r1 < x.r0 && c.c0 > x.r1 {
                est
            } else if c.r1 < x.r0 {
                est.min(act)
            } else {
                Decimal::ZERO
            };
            hi += if c.r0 > x.r1 {
                Decimal::ZERO
            } else if c.c1 < x.r0 {
                act
            } else if c.c0 > x.r1 {
                est
            } else {
                est.max(act)
            };
        }
        let (seen, fits) = match (x.granted, x.refused) {
            (Some(g), None) => (g, true),
            (None, Some(r)) => (r, false),
            other => panic!("{}: neither granted nor refused: {other:?}", x.id),
        };
        assert!(
            lo <= seen && seen <= hi,
            "{}: reported used+held {seen} outside what the timings allow [{lo}, {hi}]",
            x.id
        );
        assert_eq!(
            seen + x.estimate <= limit,
            fits,
            "{}: used+held {seen} + estimate {} vs limit {limit}: granted={fits}",
            x.id,
            x.estimate
        );
    }
    // Between grants the state (committed actuals plus outstanding estimates) only falls,
    // except when an overrun commits. So just as each commit starts, a lower bound of the
    // state may pass the limit only by the overruns that can have committed since the last
    // grant was checked (no earlier than the latest start of a grant that had returned).
    let overrun = |c: &Cycle| (c.actual - c.estimate).max(Decimal::ZERO);
    for tau in granted.iter().map(|c| c.c0) {
        let state: Decimal = granted
            .iter()
            .map(|c| {
                if c.c1 < tau {
                    c.actual
                } else if c.r1 < tau && tau <= c.c0 {
                    c.estimate
                } else if c.r1 < tau {
                    c.estimate.min(c.actual)
                } else {
                    Decimal::ZERO
                }
            })
            .sum();
        let last_check = granted
            .iter()
            .filter(|c| c.r1 < tau)
            .map(|c| c.r0)
            .max()
            .unwrap_or(i64::MIN);
        let slack: Decimal = granted
            .iter()
            .filter(|c| c.c1 >= last_check && c.c0 < tau)
            .map(|c| overrun(c))
            .sum();
        assert!(
            state <= limit + slack,
            "at {tau}, committed and held add up to at least {state}, past the limit {limit} plus the overruns that may have committed since the last grant ({slack})"
        );
    }
    let spent: Decimal = granted.iter().map(|c| c.actual).sum();
    let recorded = used(store, quota, at(NOW)).await;
    assert_eq!(recorded, spent, "every granted cycle's event recorded once");
    // The last grant (in the store's order) was checked no earlier than `t`: it returned
    // after the latest-starting grant started, so it started no earlier than the earliest of
    // those that did.
    let latest_start = granted.iter().map(|c| c.r0).max().unwrap_or_default();
    let t = granted
        .iter()
        .filter(|c| c.r1 >= latest_start)
        .map(|c| c.r0)
        .min()
        .unwrap_or_default();
    let slack: Decimal = granted
        .iter()
        .filter(|c| c.c1 >= t)
        .map(|c| overrun(c))
        .sum();
    assert!(
        recorded <= limit + slack,
        "recorded {recorded} passes the limit {limit} by more than the overruns outstanding at the last grant ({slack})"
    );
    // The run must have reached the limit for the checks above to mean anything.
    assert!(
        refusals > 40 && granted.len() > 40,
        "{} granted, {refusals} refused",
        granted.len()
    );
    assert_eq!(
        store.held(&quota.id, at(NOW)).await.expect("held"),
        Decimal::ZERO
    );
}

/// Reserve/commit cycles per worker.
const CYCLES: usize = 60;

async fn run_workers(
    stores: &[SqliteStore],
    quota: &Quota,
    prefix: &str,
    workers: usize,
) -> Vec<Cycle> {
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = stores[w % stores.len()].clone();
            tokio::spawn(worker(
                store,
                quota.clone(),
                format!("{prefix}{w}"),
                w as u64 + 1,
                CYCLES,
            ))
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_threads_never_pass_a_hard_limit() {
    let db = TempDb::new("threads");
    let store = open(db.path());
    let quota = cost_quota("alice-daily", "u", "0.60");
    store.put_quota(&quota).await.expect("put");
    let cycles = run_workers(std::slice::from_ref(&store), &quota, "t", 8).await;
    check_run(&store, &quota, &cycles).await;
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_instances_on_one_file_never_pass_a_hard_limit() {
    let db = TempDb::new("instances");
    let stores = [open(db.path()), open(db.path())];
    let quota = cost_quota("alice-daily", "u", "0.60");
    stores[0].put_quota(&quota).await.expect("put");
    let cycles = run_workers(&stores, &quota, "i", 8).await;
    check_run(&stores[1], &quota, &cycles).await;
    for s in stores {
        s.close().await.expect("close");
    }
}

/// Waits (up to 60 s) until `path` exists.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// This test binary runs again as a child process reserving against the same quota in the
/// same file while this process does; the two logs together must pass `check_run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_second_process_never_passes_a_hard_limit_with_us() {
    let db = TempDb::new("processes");
    let store = open(db.path());
    let quota = cost_quota("alice-daily", "u", "0.60");
    store.put_quota(&quota).await.expect("put");
    let log = db.sibling(".child");
    let child = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--exact",
            "sqlite::quota_tests::child_reserver",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, db.path())
        .env(CHILD_LOG, &log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let child = tokio::task::spawn_blocking(move || child.wait_with_output());
    // Start together: the child says when its store is open, then both go.
    let (ready, go) = (db.sibling(".ready"), db.sibling(".go"));
    tokio::task::spawn_blocking(move || wait_for(&ready))
        .await
        .expect("ready");
    std::fs::write(&go, b"go").expect("go");
    let mut cycles = run_workers(std::slice::from_ref(&store), &quota, "p", 4).await;
    let out = child.await.expect("join").expect("child output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child did not run:\n{text}");
    let theirs: Vec<Cycle> =
        serde_json::from_slice(&std::fs::read(&log).expect("child log")).expect("log json");
    assert_eq!(theirs.len(), 4 * CYCLES);
    // The two processes really overlapped.
    let span = |cs: &[Cycle]| {
        (
            cs.iter().map(|c| c.r0).min().unwrap_or_default(),
            cs.iter().map(|c| c.r1.max(c.c1)).max().unwrap_or_default(),
        )
    };
    let (mine, other) = (span(&cycles), span(&theirs));
    assert!(
        mine.0 < other.1 && other.0 < mine.1,
        "the processes did not overlap: {mine:?} vs {other:?}"
    );
    cycles.extend(theirs);
    check_run(&store, &quota, &cycles).await;
    store.close().await.expect("close");
}

/// The child side of `a_second_process_never_passes_a_hard_limit_with_us` (does nothing when
/// run on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "run by a_second_process_never_passes_a_hard_limit_with_us"]
async fn child_reserver() {
    let (Some(path), Some(log)) = (std::env::var_os(CHILD_DB), std::env::var_os(CHILD_LOG)) else {
        return;
    };
    let path = PathBuf::from(path);
    let store = open(&path);
    let quota = store
        .quotas()
        .await
        .expect("quotas")
        .into_iter()
        .next()
        .expect("the parent's quota");
    std::fs::write(format!("{}.ready", path.display()), b"ready").expect("ready");
    let go = PathBuf::from(format!("{}.go", path.display()));
    tokio::task::spawn_blocking(move || wait_for(&go))
        .await
        .expect("go");
    let cycles = run_workers(std::slice::from_ref(&store), &quota, "c", 4).await;
    std::fs::write(log, serde_json::to_vec(&cycles).expect("json")).expect("write log");
    store.close().await.expect("close");
}

// ---------------------------------------------------------------------------------------
// Reservation life cycle.

#[tokio::test]
async fn an_expired_hold_stops_counting_and_can_still_be_committed() {
    let db = TempDb::new("ttl");
    let store = open(db.path());
    let q = cost_quota("q", "u", "1.00");
    // Mid-millisecond, as `Utc::now()` usually is.
    let now = at(NOW) + Duration::nanoseconds(400_123);
    let r = store
        .reserve(&request("r1", vec![hold(&q, now, dec("0.6"))], now, 60))
        .await
        .expect("reserve");
    assert_eq!(r.expires_at, now + Duration::seconds(60));
    let expiry = r.expires_at;
    assert_eq!(store.held("q", now).await.expect("held"), dec("0.6"));
    // Expiry is exact to the nanosecond, not rounded to the stored millisecond.
    let just_before = expiry - Duration::nanoseconds(1);
    assert_eq!(
        store.held("q", just_before).await.expect("held"),
        dec("0.6")
    );
    assert_eq!(store.held("q", expiry).await.expect("held"), Decimal::ZERO);
    // While it holds, it blocks; once expired, it does not.
    let t = now + Duration::seconds(30);
    match store
        .reserve(&request("r2", vec![hold(&q, t, dec("0.5"))], t, 60))
        .await
    {
        Err(Error::QuotaExceeded { used, .. }) => assert_eq!(used, dec("0.6")),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let r3 = store
        .reserve(&request(
            "r3",
            vec![hold(&q, expiry, dec("0.5"))],
            expiry,
            60,
        ))
        .await
        .expect("the expired hold no longer counts");
    assert_eq!(
        (r3.uses[0].used, r3.uses[0].held),
        (Decimal::ZERO, Decimal::ZERO)
    );
    // The expired reservation's events are still recorded when it is committed.
    let e = event("late", at(NOW) + Duration::seconds(90), "u", 700_000_000);
    assert_eq!(
        store
            .commit_reservation("r1", std::slice::from_ref(&e))
            .await
            .expect("commit"),
        vec![true]
    );
    assert_eq!(store.get(&e.id).await.expect("get"), Some(e));
    assert_eq!(used(&store, &q, now).await, dec("0.7"));
    // r3 still holds 0.5 until it expires.
    assert_eq!(store.held("q", expiry).await.expect("held"), dec("0.5"));
    store.close().await.expect("close");
}

fn assert_not_found(r: Result<impl std::fmt::Debug>, id: &str) {
    match r {
        Err(Error::NotFound { kind, id: got }) => {
            assert_eq!((kind, got.as_str()), ("reservation", id))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn assert_invalid(r: Result<impl std::fmt::Debug>, needle: &str) {
    match r {
        Err(e @ Error::InvalidArgument { .. }) => {
            assert!(
                e.to_string().contains(needle),
                "{e} should mention {needle}"
            )
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test]
async fn commit_and_release_are_idempotent_and_unknown_ids_are_not_found() {
    let db = TempDb::new("lifecycle");
    let store = open(db.path());
    let q = cost_quota("q", "u", "1.00");
    let now = at(NOW);
    let req = |id: &str| request(id, vec![hold(&q, now, dec("0.25"))], now, 600);

    store.reserve(&req("a")).await.expect("reserve a");
    let e1 = event("e1", now, "u", 200_000_000);
    assert_eq!(
        store
            .commit_reservation("a", std::slice::from_ref(&e1))
            .await
            .expect("commit"),
        vec![true]
    );
    assert_eq!(store.held("q", now).await.expect("held"), Decimal::ZERO);
    // Again, even with other events: nothing changes.
    let e2 = event("e2", now, "u", 300_000_000);
    assert_eq!(
        store
            .commit_reservation("a", &[e1.clone(), e2.clone()])
            .await
            .expect("recommit"),
        vec![false, false]
    );
    assert_eq!(store.get(&e2.id).await.expect("get"), None);
    assert_eq!(used(&store, &q, now).await, dec("0.2"));
    assert!(
        !store
            .release_reservation("a")
            .await
            .expect("release committed")
    );
    // A reservation id is never reused, whatever became of it.
    assert_invalid(store.reserve(&req("a")).await, "already exists");

    store.reserve(&req("b")).await.expect("reserve b");
    assert_eq!(store.held("q", now).await.expect("held"), dec("0.25"));
    assert!(store.release_reservation("b").await.expect("release"));
    assert_eq!(store.held("q", now).await.expect("held"), Decimal::ZERO);
    assert!(!store.release_reservation("b").await.expect("release again"));
    assert_invalid(
        store
            .commit_reservation("b", std::slice::from_ref(&e2))
            .await,
        "released",
    );
    assert_eq!(store.get(&e2.id).await.expect("get"), None);

    // Committing an event that is already stored reports it, and still commits.
    store.reserve(&req("c")).await.expect("reserve c");
    assert_eq!(
        store
            .commit_reservation("c", &[e1.clone(), e2.clone()])
            .await
            .expect("commit c"),
        vec![false, true]
    );
    assert_eq!(used(&store, &q, now).await, dec("0.5"));

    assert_not_found(store.commit_reservation("nope", &[]).await, "nope");
    assert_not_found(store.release_reservation("nope").await, "nope");
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM reservations"), 3);
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_refused_reservation_writes_nothing() {
    let db = TempDb::new("refused");
    let store = open(db.path());
    let now = at(NOW);
    let small = cost_quota("small", "u", "0.10");
    let big = cost_quota("big", "u", "5.00");
    store
        .insert(&[event("spent", now, "u", 80_000_000)])
        .await
        .expect("insert");
    // The first hold fits; the second does not: nothing of the reservation may remain.
    let req = request(
        "r",
        vec![hold(&big, now, dec("0.05")), hold(&small, now, dec("0.05"))],
        now,
        600,
    );
    match store.reserve(&req).await {
        Err(Error::QuotaExceeded {
            quota,
            limit,
            used,
            requested,
        }) => assert_eq!(
            (quota.as_str(), limit, used, requested),
            ("small", dec("0.10"), dec("0.08"), dec("0.05"))
        ),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM reservations"), 0);
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM holds"), 0);
    assert_eq!(store.held("big", now).await.expect("held"), Decimal::ZERO);
    assert_not_found(store.release_reservation("r").await, "r");
    // The same id is free for a reservation that fits; a soft quota never refuses.
    let ok = store
        .reserve(&request(
            "r",
            vec![
                hold(&big, now, dec("0.05")),
                hold(&small.clone().soft(), now, dec("0.05")),
            ],
            now,
            600,
        ))
        .await
        .expect("fits");
    assert_eq!(ok.uses[1].used, dec("0.08"));
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM holds"), 2);
    store.close().await.expect("close");
}

// ---------------------------------------------------------------------------------------
// Counting usage over ragged windows.

#[tokio::test]
async fn ragged_windows_count_raw_edges_and_rollups_exactly() {
    let db = TempDb::new("ragged");
    let store = open(db.path());
    let memory = MemoryStore::default();
    let now = at(NOW);
    // A rolling two hours on a tag: [08:30:15.250, end of time).
    let rolling = Quota::new(
        "ml-2h",
        Subject::tag("team", "ml"),
        QuotaMetric::Cost,
        dec("1"),
        Window::Rolling { seconds: 7200 },
    );
    // A calendar day in Kolkata (UTC+5:30): [Nov 22 18:30Z, Nov 23 18:30Z).
    let day = Quota::new(
        "u-day",
        Subject::user("u"),
        QuotaMetric::Cost,
        dec("1"),
        Window::Day,
    )
    .in_tz("Asia/Kolkata");
    let ml = |id: &str, ts: &str, n: i64| tagged(event(id, at(ts), "v", n), "team", "ml");
    let events = vec![
        ml("a", "2026-11-23T08:10:00Z", 1), // in hour 08, before the start
        ml("b", "2026-11-23T08:30:15.249Z", 2), // one ms before the start
        ml("c", "2026-11-23T08:30:15.250Z", 4), // the start itself
        ml("d", "2026-11-23T08:59:59.999Z", 8),
        ml("e", "2026-11-23T09:00:00Z", 16), // first whole hour
        ml("f", "2026-11-23T10:29:00Z", 32),
        ml("g", "2026-11-23T10:31:00Z", 64), // slightly ahead of now still counts
        tagged(
            event("h", at("2026-11-23T09:30:00Z"), "v", 128),
            "team",
            "other",
        ),
        event("i", at("2026-11-23T09:30:00Z"), "v", 256),
        ml("j", "2026-11-23T07:00:00Z", 512),
        event("k", at("2026-11-22T18:29:59.999Z"), "u", 1_000),
        event("l", at("2026-11-22T18:30:00Z"), "u", 2_000),
        event("m", at("2026-11-22T18:45:00Z"), "u", 4_000),
        event("n", at("2026-11-22T19:00:00Z"), "u", 8_000),
        event("o", at("2026-11-23T18:15:00Z"), "u", 16_000),
        event("p", at("2026-11-23T18:30:00Z"), "u", 32_000),
        event("q", at("2026-11-23T18:40:00Z"), "u", 64_000),
    ];
    store.insert(&events).await.expect("insert");
    memory.insert(&events).await.expect("insert");
    for (q, want) in [
        (&rolling, 4 + 8 + 16 + 32 + 64),
        (&day, 2_000 + 4_000 + 8_000 + 16_000),
    ] {
        let want = nanos_usd(want);
        let kinds: Vec<_> = quota_usage_requests(q, q.window_at(now).expect("w").range())
            .iter()
            .map(|r| r.source)
            .collect();
        assert!(
            kinds.len() >= 2,
            "{}: the window has ragged edges: {kinds:?}",
            q.id
        );
        let rest = q.limit - want;
        let id = format!("{}-fits", q.id);
        let req = request(&id, vec![hold(q, now, rest)], now, 60);
        let got = store.reserve(&req).await.expect("exactly the rest fits");
        assert_eq!(got.uses[0].used, want, "{}", q.id);
        assert_eq!(got, memory.reserve(&req).await.expect("memory"));
        let more = request(
            &format!("{}-more", q.id),
            vec![hold(q, now, nanos_usd(1))],
            now,
            60,
        );
        match store.reserve(&more).await {
            Err(Error::QuotaExceeded { used, .. }) => assert_eq!(used, q.limit),
            other => panic!("{}: expected QuotaExceeded, got {other:?}", q.id),
        }
    }
    store.close().await.expect("close");
}

// ---------------------------------------------------------------------------------------
// Alerts.

fn alert(quota: &str, threshold: &str, at_: DateTime<Utc>, used: &str) -> Alert {
    Alert {
        quota_id: quota.into(),
        subject: Subject::user("u"),
        window_start: at("2026-11-23T00:00:00Z"),
        threshold: threshold.into(),
        percent: dec("80"),
        used: dec(used),
        limit: dec("1"),
        at: at_,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn an_alert_is_stored_once_by_eight_concurrent_inserters() {
    let db = TempDb::new("alerts");
    let stores = [open(db.path()), open(db.path())];
    let now = at(NOW);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            let a = alert(
                "q",
                "warning",
                now + Duration::milliseconds(i as i64),
                &format!("0.8{i}"),
            );
            tokio::spawn(async move { (store.insert_alert(&a).await.expect("insert"), a) })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (stored, a) = t.await.expect("task");
        if stored {
            winners.push(a);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one inserter stores it");
    let got = stores[1]
        .alerts(DateTime::<Utc>::MIN_UTC, 100)
        .await
        .expect("alerts");
    assert_eq!(got, winners);
    for s in stores {
        s.close().await.expect("close");
    }
}

#[tokio::test]
async fn alerts_are_listed_oldest_first_from_an_exact_instant() {
    let store = SqliteStore::open_in_memory().expect("open");
    let t = at(NOW);
    let ns = Duration::nanoseconds;
    let a = alert("q", "warning", t + ns(500), "0.8");
    let b = alert("q", "blocked", t + ns(200), "1.0");
    let c = alert("r", "warning", t + ns(200), "0.9"); // same instant as b, stored later
    let d = alert("q", "upgrade_suggested", t - Duration::hours(1), "0.95");
    for x in [&a, &b, &c, &d] {
        assert!(store.insert_alert(x).await.expect("insert"));
    }
    assert!(
        !store
            .insert_alert(&alert("q", "warning", t, "0.99"))
            .await
            .expect("dup")
    );
    let mut other_window = a.clone();
    other_window.window_start = at("2026-11-24T00:00:00Z");
    assert!(
        store
            .insert_alert(&other_window)
            .await
            .expect("next window")
    );
    let all = store
        .alerts(DateTime::<Utc>::MIN_UTC, 10)
        .await
        .expect("all");
    assert_eq!(
        all,
        vec![
            d.clone(),
            b.clone(),
            c.clone(),
            a.clone(),
            other_window.clone()
        ]
    );
    assert_eq!(
        store.alerts(t + ns(200), 2).await.expect("page"),
        vec![b.clone(), c.clone()]
    );
    assert_eq!(
        store.alerts(t + ns(201), 10).await.expect("after"),
        vec![a, other_window]
    );
    assert!(store.alerts(t, 0).await.expect("none").is_empty());
}

// ---------------------------------------------------------------------------------------
// Quotas, the schema, and the reference store.

#[tokio::test]
async fn quotas_are_validated_upserted_listed_and_deleted() {
    let db = TempDb::new("quotas");
    let store = open(db.path());
    let now = at(NOW);
    let mut bad = cost_quota("bad", "u", "0");
    assert!(matches!(
        store.put_quota(&bad).await,
        Err(Error::InvalidArgument { .. })
    ));
    bad.limit = dec("1");
    bad.tz = "Mars/Olympus".into();
    assert!(store.put_quota(&bad).await.is_err());
    let b = cost_quota("b", "u", "2").in_tz("Europe/Paris").soft();
    let a = Quota::new(
        "a",
        Subject::Global,
        QuotaMetric::Requests,
        10,
        Window::Week {
            start: chrono::Weekday::Wed,
        },
    );
    store.put_quota(&b).await.expect("put b");
    store.put_quota(&a).await.expect("put a");
    let mut a2 = a.clone();
    a2.limit = dec("20");
    store.put_quota(&a2).await.expect("replace a");
    assert_eq!(
        store.quotas().await.expect("quotas"),
        vec![a2.clone(), b.clone()]
    );

    // Deleting a quota drops its outstanding holds; other quotas' holds stay.
    store
        .reserve(&request(
            "r",
            vec![hold(&a2, now, dec("3")), hold(&b, now, dec("0.5"))],
            now,
            60,
        ))
        .await
        .expect("reserve");
    assert!(store.delete_quota("a").await.expect("delete"));
    assert!(!store.delete_quota("a").await.expect("delete again"));
    assert_eq!(store.held("a", now).await.expect("held"), Decimal::ZERO);
    assert_eq!(store.held("b", now).await.expect("held"), dec("0.5"));
    // Re-creating it does not bring them back; the reservation still commits.
    store.put_quota(&a2).await.expect("put again");
    assert_eq!(store.held("a", now).await.expect("held"), Decimal::ZERO);
    assert_eq!(
        store.commit_reservation("r", &[]).await.expect("commit"),
        Vec::<bool>::new()
    );
    assert_eq!(store.held("b", now).await.expect("held"), Decimal::ZERO);
    store.close().await.expect("close");
    // Everything survives a reopen.
    let store = open(db.path());
    assert_eq!(store.quotas().await.expect("quotas"), vec![a2, b]);
    store.close().await.expect("close");
}

/// A file as a build at schema `version` left it: the migrations up to it applied (the id
/// hash registered, as the writer does), `meta` and the application id set.
fn file_at_version(path: &Path, version: i64) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("create");
    super::ids::register(&conn).expect("register");
    for (_, sql) in super::schema::MIGRATIONS
        .iter()
        .filter(|(v, _)| *v <= version)
    {
        conn.execute_batch(sql).expect("migration");
    }
    conn.execute_batch(&format!(
        "INSERT INTO meta (key, value) VALUES ('schema_version', '{version}');
         PRAGMA application_id = {};",
        super::APPLICATION_ID
    ))
    .expect("meta");
    conn
}

#[tokio::test]
async fn a_version_1_file_is_migrated_and_keeps_its_events() {
    let db = TempDb::new("v1");
    file_at_version(db.path(), 1);
    let store = open(db.path());
    store
        .insert(&[event("e", at(NOW), "u", 5)])
        .await
        .expect("insert");
    let q = cost_quota("q", "u", "1");
    store.put_quota(&q).await.expect("put");
    let r = store
        .reserve(&request(
            "r",
            vec![hold(&q, at(NOW), dec("0.5"))],
            at(NOW),
            60,
        ))
        .await
        .expect("reserve");
    assert_eq!(r.uses[0].used, nanos_usd(5));
    store.close().await.expect("close");
    let v: String = rusqlite::Connection::open(db.path())
        .expect("inspect")
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION.to_string());
    assert_eq!(SCHEMA_VERSION, 6);
}

/// Migration 5 replaces the unique index on event ids by id hashes: events stored before it
/// are still found by id, still duplicates when recorded again, and purged with their hashes.
#[tokio::test]
async fn migration_5_keeps_stored_ids_idempotent() {
    let db = TempDb::new("v4");
    let hour = DateTime::from_timestamp(at(NOW).timestamp() / 3600 * 3600, 0).expect("hour");
    let old: Vec<UsageEvent> = (0..3)
        .map(|i| event(&format!("msg_old_{i}"), hour + Duration::hours(i), "u", 5))
        .collect();
    {
        let conn = file_at_version(db.path(), 4);
        let marks = (1..=super::codec::EVENT_COLS.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn
            .prepare(&format!(
                "INSERT INTO events ({}) VALUES ({marks})",
                super::codec::EVENT_COLS.join(", ")
            ))
            .expect("prepare");
        for e in &old {
            super::codec::EventRow::new(e)
                .expect("row")
                .bind(&mut stmt)
                .expect("bind");
            stmt.raw_execute().expect("insert");
        }
    }
    let store = open(db.path());
    for e in &old {
        assert_eq!(store.get(&e.id).await.expect("get").as_ref(), Some(e));
    }
    let fresh = event("msg_new", hour + Duration::hours(5), "u", 5);
    assert_eq!(
        store
            .insert(&[old[1].clone(), fresh.clone(), fresh.clone()])
            .await
            .expect("insert"),
        vec![false, true, false]
    );
    let count = |table: &str| -> i64 {
        rusqlite::Connection::open(db.path())
            .expect("inspect")
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!((count("event_ids"), count("event_ids_recent")), (3, 1));
    // Purging the two oldest events drops their hashes, wherever they are.
    store
        .purge(
            hour + Duration::hours(2),
            &usage_core::store::RunOptions::default(),
        )
        .await
        .expect("purge");
    assert_eq!((count("event_ids"), count("event_ids_recent")), (1, 1));
    assert_eq!(store.get(&old[0].id).await.expect("get"), None);
    assert_eq!(
        store.get(&old[2].id).await.expect("get").as_ref(),
        Some(&old[2])
    );
    assert_eq!(
        store
            .insert(&[old[0].clone(), old[2].clone()])
            .await
            .expect("insert"),
        vec![true, false]
    );
    store.close().await.expect("close");
}

/// Migration 6 keeps every reservation as it was: a held one still holds what it held (and
/// only on the quotas it still held), a committed one stays committed, a released one
/// released.
#[tokio::test]
async fn migration_6_keeps_reservations_and_their_outstanding_holds() {
    let db = TempDb::new("v5");
    let now = at(NOW);
    let (now_ms, exp_ms) = (now.timestamp_millis(), now.timestamp_millis() + 600_000);
    {
        let conn = file_at_version(db.path(), 5);
        conn.execute_batch(&format!(
            "INSERT INTO reservations VALUES
                 ('held', 'held', {now_ms}, {exp_ms}, 5, NULL),
                 ('done', 'committed', {now_ms}, {exp_ms}, 0, {now_ms}),
                 ('dropped', 'released', {now_ms}, {exp_ms}, 0, {now_ms});
             INSERT INTO holds VALUES
                 ('held', 'a', '0.25', {exp_ms}, 5, 1),
                 ('held', 'b', '3', {exp_ms}, 5, 1),
                 ('held', 'gone', '7', {exp_ms}, 5, 0),
                 ('done', 'a', '100', {exp_ms}, 0, 0),
                 ('dropped', 'a', '100', {exp_ms}, 0, 0);"
        ))
        .expect("v5 rows");
    }
    let store = open(db.path());
    let held = |q: &'static str| {
        let store = &store;
        async move { store.held(q, now).await.expect("held") }
    };
    assert_eq!(
        (held("a").await, held("b").await, held("gone").await),
        (dec("0.25"), dec("3"), Decimal::ZERO)
    );
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM reservations"), 3);
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM holds"), 2);
    let e = event("after", now, "u", 5);
    assert_eq!(
        store
            .commit_reservation("done", std::slice::from_ref(&e))
            .await
            .expect("done again"),
        vec![false]
    );
    assert_invalid(store.commit_reservation("dropped", &[]).await, "released");
    assert_eq!(
        store
            .commit_reservation("held", std::slice::from_ref(&e))
            .await
            .expect("commit held"),
        vec![true]
    );
    assert_eq!(
        (held("a").await, held("b").await),
        (Decimal::ZERO, Decimal::ZERO)
    );
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM holds"), 0);
    store.close().await.expect("close");
}

/// Migration 3 fills the coarse rollups from the hourly cells a store already has.
#[tokio::test]
async fn migration_3_fills_the_coarse_rollups_from_existing_cells() {
    let db = TempDb::new("v2");
    {
        let conn = file_at_version(db.path(), 2);
        conn.execute_batch(
            "INSERT INTO rollup_events (hour_ms, user_id, provider, model_key, status, requests, cost_total)
             VALUES (3600000, 'u', 'anthropic', 'm', 'success', 2, 10),
                    (7200000, 'u', 'anthropic', 'm', 'success', 3, 5),
                    (7200000, 'v', 'anthropic', 'm', 'success', 1, 1),
                    (90000000, 'u', 'anthropic', 'm', 'success', 1, 7);",
        )
        .expect("v2 data");
    }
    open(db.path()).close().await.expect("migrate");
    let conn = rusqlite::Connection::open(db.path()).expect("inspect");
    let daily: Vec<(i64, String, i64, i64)> = conn
        .prepare("SELECT day_ms, user_id, requests, cost_total FROM rollup_daily ORDER BY 1, 2")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(
        daily,
        vec![
            (0, "u".into(), 5, 15),
            (0, "v".into(), 1, 1),
            (86_400_000, "u".into(), 1, 7)
        ]
    );
    let models: Vec<(i64, i64)> = conn
        .prepare("SELECT hour_ms, requests FROM rollup_models ORDER BY 1")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(
        models,
        vec![(3_600_000, 2), (7_200_000, 4), (90_000_000, 1)]
    );
}

/// Migration 4 drops `event_tags`; raw tag filters then read the events' JSON, and the
/// quota counters table starts empty.
#[tokio::test]
async fn migration_4_reads_raw_tags_from_the_events_json() {
    let db = TempDb::new("v3");
    {
        let conn = file_at_version(db.path(), 3);
        conn.execute_batch(
            "INSERT INTO events (seq, id, ts_ms, provider, model, model_key, input, cache_read,
                 cache_write_5m, cache_write_1h, output, reasoning, web_search_requests,
                 web_fetch_requests, cost_source, status, service_tier, speed, tags)
             VALUES (1, 'a', 3600000, 'anthropic', 'm', 'm', 10, 0, 0, 0, 5, 0, 0, 0,
                     'calculated', 'success', 'standard', 'standard', '{\"team\":\"ml\"}'),
                    (2, 'b', 3600001, 'anthropic', 'm', 'm', 20, 0, 0, 0, 5, 0, 0, 0,
                     'calculated', 'success', 'standard', 'standard', '{\"team\":\"ops\"}');
             INSERT INTO event_tags (seq, key, value, ts_ms) VALUES (1, 'team', 'ml', 3600000),
                    (2, 'team', 'ops', 3600001);",
        )
        .expect("v3 data");
    }
    let store = open(db.path());
    let filter = usage_core::query::Filter {
        tags: [("team".to_owned(), "ml".to_owned())].into(),
        ..Default::default()
    };
    let rows = store
        .aggregate(&usage_core::store::AggregateRequest {
            filter,
            group_by: vec![usage_core::query::Dimension::Tag("team".into())],
            grain_secs: None,
            source: usage_core::store::Source::Raw,
        })
        .await
        .expect("aggregate");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].group, vec![Some("ml".to_owned())]);
    assert_eq!((rows[0].totals.requests, rows[0].totals.input), (1, 10));
    store.close().await.expect("close");
    let tables = raw_count(
        db.path(),
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'event_tags'",
    );
    assert_eq!(tables, 0);
    assert_eq!(
        raw_count(db.path(), "SELECT COUNT(*) FROM quota_counters"),
        0
    );
}

/// The debug form of a result, with decimals normalised so that 0.50 and 0.5 compare equal.
fn norm<T: std::fmt::Debug>(r: &Result<T>) -> String {
    match r {
        Err(Error::QuotaExceeded {
            quota,
            limit,
            used,
            requested,
        }) => format!(
            "QuotaExceeded({quota}, {}, {}, {})",
            limit.normalize(),
            used.normalize(),
            requested.normalize()
        ),
        other => format!("{other:?}"),
    }
}

/// One script of quota calls against the memory store and SQLite: every answer must match.
#[tokio::test]
async fn every_answer_matches_the_memory_store() {
    let db = TempDb::new("diff");
    let sqlite = open(db.path());
    let memory = MemoryStore::default();
    let stores: [&dyn Store; 2] = [&memory, &sqlite];
    let now = at(NOW);
    let user_day = cost_quota("user-day", "u", "1.00");
    let tag_rolling = Quota::new(
        "tag-3h",
        Subject::tag("team", "ml"),
        QuotaMetric::TotalTokens,
        10_000,
        Window::Rolling { seconds: 3 * 3600 },
    );
    let global_soft = Quota::new(
        "all",
        Subject::Global,
        QuotaMetric::Requests,
        5,
        Window::Lifetime,
    )
    .soft();
    let seed: Vec<UsageEvent> = (0..12)
        .map(|i| {
            let e = event(
                &format!("s{i}"),
                now - Duration::minutes(17 * i),
                if i % 3 == 0 { "u" } else { "v" },
                10_000_000 * (i + 1),
            );
            if i % 2 == 0 {
                tagged(e, "team", "ml")
            } else {
                e
            }
        })
        .collect();

    let mut log: Vec<[String; 2]> = Vec::new();
    macro_rules! both {
        ($label:expr, |$s:ident| $call:expr) => {{
            let mut out: [String; 2] = Default::default();
            for (i, $s) in stores.iter().enumerate() {
                out[i] = norm(&$call.await);
            }
            assert_eq!(out[0], out[1], "{}: memory vs sqlite", $label);
            log.push(out);
        }};
    }
    both!("seed", |s| s.insert(&seed));
    for q in [&user_day, &tag_rolling, &global_soft] {
        both!("put", |s| s.put_quota(q));
    }
    both!("invalid put", |s| s.put_quota(&cost_quota("", "u", "1")));
    both!("quotas", |s| s.quotas());
    let three = |id: &str, a: &str, b: u32, c: u32, t: DateTime<Utc>| {
        request(
            id,
            vec![
                hold(&user_day, t, dec(a)),
                hold(&tag_rolling, t, Decimal::from(b)),
                hold(&global_soft, t, Decimal::from(c)),
            ],
            t,
            120,
        )
    };
    both!("r1", |s| s.reserve(&three("r1", "0.3", 2_000, 1, now)));
    both!("r1 again", |s| s.reserve(&three("r1", "0.1", 1, 1, now)));
    both!("r2 over tokens", |s| s
        .reserve(&three("r2", "0.1", 9_000, 1, now)));
    both!("r3 over cost", |s| s
        .reserve(&three("r3", "0.9", 1, 1, now)));
    both!("r4 soft only over", |s| s
        .reserve(&three("r4", "0.01", 1, 100, now)));
    let dup = request(
        "r5",
        vec![
            hold(&user_day, now, dec("0.2")),
            hold(&user_day, now, dec("0.2")),
        ],
        now,
        30,
    );
    both!("r5 one quota twice", |s| s.reserve(&dup));
    for t in [
        now,
        now + Duration::seconds(30) - Duration::nanoseconds(1),
        now + Duration::seconds(30),
        now + Duration::seconds(120),
    ] {
        for q in ["user-day", "tag-3h", "all", "unknown"] {
            both!(format!("held {q} at {t}"), |s| s.held(q, t));
        }
    }
    let spend = [
        tagged(event("x1", now, "u", 250_000_000), "team", "ml"),
        event("x2", now, "v", 1),
    ];
    both!("commit r1", |s| s.commit_reservation("r1", &spend));
    both!("commit r1 again", |s| s.commit_reservation("r1", &spend));
    both!("release r1", |s| s.release_reservation("r1"));
    both!("release r4", |s| s.release_reservation("r4"));
    both!("commit r4", |s| s.commit_reservation("r4", &spend));
    both!("commit unknown", |s| s.commit_reservation("zz", &spend));
    both!("release unknown", |s| s.release_reservation("zz"));
    both!("r6 after commit", |s| s.reserve(&three(
        "r6",
        "0.2",
        5_000,
        1,
        now + Duration::seconds(60)
    )));
    both!("r7 after r5 expired", |s| s.reserve(&three(
        "r7",
        "0.2",
        1,
        1,
        now + Duration::seconds(31)
    )));
    both!("held after", |s| s
        .held("user-day", now + Duration::seconds(31)));
    let t = now;
    for a in [
        alert("user-day", "warning", t + Duration::nanoseconds(10), "0.8"),
        alert("user-day", "warning", t, "0.81"),
        alert("user-day", "blocked", t + Duration::nanoseconds(10), "1"),
        alert("tag-3h", "warning", t - Duration::seconds(1), "8000"),
    ] {
        both!("insert_alert", |s| s.insert_alert(&a));
    }
    for (since, limit) in [
        (DateTime::<Utc>::MIN_UTC, 10),
        (t, 10),
        (t + Duration::nanoseconds(10), 1),
        (t + Duration::nanoseconds(11), 10),
    ] {
        both!(format!("alerts {since} {limit}"), |s| s
            .alerts(since, limit));
    }
    both!("delete", |s| s.delete_quota("tag-3h"));
    both!("delete again", |s| s.delete_quota("tag-3h"));
    both!("quotas after", |s| s.quotas());
    assert!(
        log.iter().any(|[m, _]| m.contains("QuotaExceeded(tag-3h")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|[m, _]| m.contains("QuotaExceeded(user-day")),
        "{log:?}"
    );
    sqlite.close().await.expect("close");
}

// ---------------------------------------------------------------------------------------
// Timing.

/// `cargo test -p usage-store --release reserve_commit_timing -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a timing measurement, run by hand in release mode"]
async fn reserve_commit_timing() {
    let db = TempDb::new("timing");
    let store = open(db.path());
    let now = at(NOW);
    // Some history: 20,000 events over the day for 50 users.
    let history: Vec<UsageEvent> = (0..20_000)
        .map(|i| {
            let ts = at("2026-11-23T00:00:00Z") + Duration::milliseconds(i * 1_800);
            event(&format!("h{i}"), ts, &format!("user{}", i % 50), 1_000)
        })
        .collect();
    for chunk in history.chunks(1_000) {
        store.insert(chunk).await.expect("history");
    }
    // The bench's three quotas: the user's month cost, their day's requests, the global
    // month cost.
    let quotas = [
        Quota::new(
            "q-month",
            Subject::user("user7"),
            QuotaMetric::Cost,
            dec("1000000"),
            Window::Month { anchor_day: 1 },
        ),
        Quota::new(
            "q-day",
            Subject::user("user7"),
            QuotaMetric::Requests,
            dec("1000000"),
            Window::Day,
        ),
        Quota::new(
            "q-global",
            Subject::Global,
            QuotaMetric::Cost,
            dec("1000000"),
            Window::Month { anchor_day: 1 },
        ),
    ];
    for q in &quotas {
        store.put_quota(q).await.expect("put");
    }
    let n = 3_000;
    let (mut pairs, mut reserves, mut commits, mut inserts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());

    for i in 0..n {
        let id = format!("t{i}");
        let start = Instant::now();
        store
            .reserve(&request(
                &id,
                quotas.iter().map(|q| hold(q, now, dec("0.01"))).collect(),
                now,
                60,
            ))
            .await
            .expect("reserve");
        let reserved = Instant::now();
        store
            .commit_reservation(&id, &[event(&format!("c{i}"), now, "user7", 5_000_000)])
            .await
            .expect("commit");
        let end = Instant::now();
        pairs.push(end - start);
        reserves.push(reserved - start);
        commits.push(end - reserved);
        // The baseline: recording one event without a reservation.
        let e = event(&format!("b{i}"), now, "user8", 5_000_000);
        let start = Instant::now();
        store.insert(&[e]).await.expect("insert");
        inserts.push(start.elapsed());
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() * 99 / 100])
    };
    eprintln!(
        "SQLite, {n} rounds, (median, p90, p99): reserve+commit {:?}; reserve {:?}; commit {:?}; plain insert of one event {:?}",
        median(&mut pairs),
        median(&mut reserves),
        median(&mut commits),
        median(&mut inserts),
    );
    store.close().await.expect("close");
}

// ---------------------------------------------------------------------------------------
// Usage counters.

/// Every quota's usage as the store answers it (from its counter when there is one) and as
/// the rollups say, side by side.
async fn counted_and_summed(store: &SqliteStore, quotas: &[&Quota], now: DateTime<Utc>) {
    for q in quotas {
        let range = q.window_at(now).expect("window").range();
        let counted = store.used(&[((*q).clone(), range)]).await.expect("used")[0];
        assert_eq!(counted, used(store, q, now).await, "{}", q.id);
    }
}

#[tokio::test]
async fn counters_follow_every_insert_and_are_dropped_when_the_rollups_change() {
    let db = TempDb::new("counters");
    let store = open(db.path());
    let other = open(db.path()); // a second writer on the file, as another process would be
    let now = at(NOW);
    let user_month = Quota::new(
        "u-month",
        Subject::user("u"),
        QuotaMetric::Cost,
        dec("100"),
        Window::Month { anchor_day: 1 },
    )
    .in_tz("America/New_York");
    let team_day = Quota::new(
        "ml-day",
        Subject::tag("team", "ml"),
        QuotaMetric::TotalTokens,
        dec("1000000"),
        Window::Day,
    );
    let all_time = Quota::new(
        "all",
        Subject::Global,
        QuotaMetric::Requests,
        dec("1000000"),
        Window::Lifetime,
    );
    let rolling = Quota::new(
        "u-24h",
        Subject::user("u"),
        QuotaMetric::Cost,
        dec("100"),
        Window::Rolling { seconds: 86_400 },
    );
    let quotas = [&user_month, &team_day, &all_time, &rolling];
    let early = [
        event("e1", now - Duration::hours(3), "u", 1_000),
        tagged(
            event("e2", now - Duration::hours(1), "v", 2_000),
            "team",
            "ml",
        ),
        // Last month in New York: outside the month's window.
        event("e3", at("2026-11-01T03:00:00Z"), "u", 4_000),
    ];
    store.insert(&early).await.expect("insert");
    // The first reservation creates the counters of the calendar and lifetime windows.
    let holds = quotas.iter().map(|q| hold(q, now, Decimal::ZERO)).collect();
    store
        .reserve(&request("r1", holds, now, 60))
        .await
        .expect("reserve");
    let stored = || raw_count(db.path(), "SELECT COUNT(*) FROM quota_counters");
    assert_eq!(stored(), 3, "no counter for the rolling window");
    counted_and_summed(&store, &quotas, now).await;

    // Inserts through either writer, duplicates, batches, tags, other users, other windows.
    let later = vec![
        event("e4", now - Duration::minutes(5), "u", 8_000),
        tagged(event("e5", now, "u", 16_000), "team", "ml"),
        tagged(event("e6", now, "w", 32_000), "team", "ops"),
        event("e1", now, "u", 64_000), // a duplicate id: counts nowhere
        event("e7", at("2026-10-31T12:00:00Z"), "u", 128_000), // a backfill, last month
    ];
    store.insert(&later).await.expect("insert");
    other
        .insert(&[tagged(event("e8", now, "u", 256_000), "team", "ml")])
        .await
        .expect("insert");
    store
        .commit_reservation("r1", &[event("e9", now, "u", 512_000)])
        .await
        .expect("commit");
    counted_and_summed(&store, &quotas, now).await;
    assert_eq!(
        store
            .used(&[(
                user_month.clone(),
                user_month.window_at(now).expect("w").range()
            )])
            .await
            .expect("used")[0],
        nanos_usd(1_000 + 8_000 + 16_000 + 256_000 + 512_000)
    );
    // Many distinct tag values in one insert: only keys with counters are looked up.
    let many: Vec<UsageEvent> = (0..200)
        .map(|i| {
            tagged(
                tagged(event(&format!("m{i}"), now, "u", 1), "team", "ml"),
                "instance",
                &format!("i{i}"),
            )
        })
        .collect();
    other.insert(&many).await.expect("insert");
    counted_and_summed(&store, &quotas, now).await;

    // Changing a quota drops its counter; the next reservation counts it afresh.
    store.put_quota(&team_day).await.expect("put");
    assert_eq!(stored(), 2);
    counted_and_summed(&store, &quotas, now).await;
    store.delete_quota(&team_day.id).await.expect("delete");

    // A rebuild drops every counter.
    let holds = quotas.iter().map(|q| hold(q, now, Decimal::ZERO)).collect();
    store
        .reserve(&request("r2", holds, now, 60))
        .await
        .expect("reserve");
    assert_eq!(stored(), 3);
    store
        .rebuild_rollups(None, &Default::default())
        .await
        .expect("rebuild");
    assert_eq!(stored(), 0);
    counted_and_summed(&store, &quotas, now).await;
    // So does a counter whose quota changed shape behind its back: it is not used.
    let holds = quotas.iter().map(|q| hold(q, now, Decimal::ZERO)).collect();
    store
        .reserve(&request("r3", holds, now, 60))
        .await
        .expect("reserve");
    let as_tokens = Quota {
        metric: QuotaMetric::TotalTokens,
        ..user_month.clone()
    };
    counted_and_summed(&store, &[&as_tokens], now).await;
    store.close().await.expect("close");
    other.close().await.expect("close");
}

/// A write that reads quotas back creates the counter it lacked, inside its own transaction,
/// so the next alert check reads one row; the amount equals what the rollups say.
#[tokio::test]
async fn a_write_that_reads_a_quota_back_creates_its_counter() {
    let db = TempDb::new("read-back");
    let store = open(db.path());
    let now = at(NOW);
    let q = cost_quota("q", "u", "10");
    let watch = [(q.clone(), q.window_at(now).expect("window").range())];
    assert_eq!(
        raw_count(db.path(), "SELECT COUNT(*) FROM quota_counters"),
        0
    );
    let (inserted, read) = store
        .insert_and_read(&[event("a", now, "u", 250_000_000)], &watch)
        .await
        .expect("insert");
    assert_eq!((inserted, read), (vec![true], vec![dec("0.25")]));
    assert_eq!(
        raw_count(
            db.path(),
            "SELECT COUNT(*) FROM quota_counters WHERE quota_id = 'q'"
        ),
        1
    );
    // A plain insert keeps the counter current; the next read matches the rollups.
    store
        .insert(&[event("b", now, "u", 500_000_000)])
        .await
        .expect("insert");
    let (_, read) = store
        .insert_and_read(&[event("c", now, "u", 0)], &watch)
        .await
        .expect("insert");
    assert_eq!(read, vec![dec("0.75")]);
    assert_eq!(used(&store, &q, now).await, dec("0.75"));
    store.close().await.expect("close");
}

/// A stored quota whose window cannot be computed (a time zone this build does not know,
/// written by another program) fails a record before anything is written.
#[tokio::test]
async fn a_quota_without_a_window_fails_a_record_before_it_writes() {
    let db = TempDb::new("bad-window");
    let store = std::sync::Arc::new(open(db.path()));
    let mut q = cost_quota("q", "u", "10");
    q.tz = "Mars/Base".into();
    rusqlite::Connection::open(db.path())
        .expect("inspect")
        .execute(
            "INSERT INTO quotas (id, body, updated_at_ms) VALUES ('q', ?1, 0)",
            [serde_json::to_string(&q).expect("json")],
        )
        .expect("foreign quota");
    let t = crate::Tracker::with_store(store.clone(), Default::default());
    let e =
        usage_core::NewEvent::new("anthropic", "claude-haiku-4-5", TokenUsage::default()).user("u");
    match t.record(e).await {
        Err(err) => assert!(err.to_string().contains("Mars/Base"), "{err}"),
        Ok(r) => panic!("recorded {r:?}"),
    }
    assert_eq!(raw_count(db.path(), "SELECT COUNT(*) FROM events"), 0);
    store.close().await.expect("close");
}
