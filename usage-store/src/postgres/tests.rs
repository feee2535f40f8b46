//! PostgreSQL-specific tests: migrations, concurrency, transactions and errors. Each test gets
//! its own fresh schema, dropped at the end. The server comes from `USAGE_TEST_POSTGRES_URL`
//! or `DATABASE_URL`; without one the tests print a skip notice, unless
//! `USAGE_REQUIRE_POSTGRES=1`, which makes them fail instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use usage_core::event::{CostSource, EventCost, EventId, Status, UsageEvent};
use usage_core::query::engine::{RollupDifference, verify_rollups};
use usage_core::query::{Dimension, Filter, TimeRange, Totals};
use usage_core::store::{
    AggregateRequest, AggregateRow, CancelToken, Cursor, RunOptions, RunOutcome, Source, Store,
};
use usage_core::{Error, PriceCatalog, PricingContext, TokenUsage, Usd};

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
        let nanos = Utc::now().timestamp_subsec_nanos();
        let schema = format!(
            "usage_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Some(TestDb { url, schema })
    }

    async fn open(&self) -> PgStore {
        PgStore::connect(&self.url, PgOptions::default().schema(&self.schema))
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

fn event(id: &str, ts: DateTime<Utc>) -> UsageEvent {
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
            input: Usd::from_nanos(300),
            output: Usd::from_nanos(300),
            total: Usd::from_nanos(600),
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
        user_id: Some("u1".into()),
        tags: BTreeMap::new(),
    }
}

/// A deterministic mix of events over 30 hours (users, models, statuses, tags, unpriced ones,
/// missing latencies, negative-free but ragged timestamps).
fn mixed_events(n: usize, prefix: &str) -> Vec<UsageEvent> {
    let base = at("2026-03-01T00:00:00Z");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let ts = base
                + chrono::Duration::milliseconds((r % (30 * 3_600_000)) as i64)
                + chrono::Duration::microseconds(7);
            let mut e = event(&format!("{prefix}{i:05}"), ts);
            e.user_id = match r % 4 {
                0 => None,
                1 => Some("alice".into()),
                _ => Some(format!("user{}", r % 3)),
            };
            e.provider = if r % 5 == 0 {
                "openai".into()
            } else {
                "anthropic".into()
            };
            e.model = ["claude-sonnet-4-5", "gpt-5", "mystery"][(r % 3) as usize].into();
            e.resolved_model = (r % 3 != 2).then(|| e.model.clone());
            if r % 3 == 2 {
                e.cost = None;
                e.cost_source = CostSource::Unpriced;
                e.unpriced_reason = Some("model `mystery` is not in catalog test".into());
            } else if let Some(c) = &mut e.cost {
                c.cache_read = Usd::from_nanos((r % 1000) as i128);
                c.total = c.input + c.output + c.cache_read;
            }
            e.usage.cache_read = r % 1000;
            e.usage.output = 20 + r % 50;
            e.usage.reasoning = r % 20;
            e.status = if r % 7 == 0 {
                Status::Error
            } else {
                Status::Success
            };
            e.latency_ms = (r % 6 != 0).then_some(r % 2000);
            if r % 2 == 0 {
                e.tags
                    .insert("team".into(), ["red", "blue", ""][(r % 3) as usize].into());
            }
            if r % 3 == 0 {
                e.tags.insert("workflow".into(), format!("wf{}", r % 4));
            }
            e
        })
        .collect()
}

fn sorted(mut rows: Vec<AggregateRow>) -> Vec<AggregateRow> {
    rows.sort_by(|a, b| (&a.group, a.grain_start).cmp(&(&b.group, b.grain_start)));
    rows
}

fn req(
    filter: Filter,
    group_by: Vec<Dimension>,
    grain_secs: Option<i64>,
    source: Source,
) -> AggregateRequest {
    AggregateRequest {
        filter,
        group_by,
        grain_secs,
        source,
    }
}

fn tag(k: &str) -> Dimension {
    Dimension::Tag(k.into())
}

/// `verify_rollups`, less the gap the rollup design has by contract (the memory store has it
/// too): an event without tag `k` is in no `rollup_tags` row, so raw's (user, no `k`) groups
/// have no rollup counterpart.
async fn rollup_differences(store: &dyn Store) -> Vec<RollupDifference> {
    let diffs = verify_rollups(store, None).await.expect("verify_rollups");
    diffs
        .into_iter()
        .filter(|d| {
            !(d.rollup.starts_with("tags:")
                && d.group.last() == Some(&None)
                && d.rollup_totals == Totals::default())
        })
        .collect()
}

async fn total(store: &dyn Store, source: Source) -> Totals {
    let rows = store
        .aggregate(&req(Filter::default(), vec![], None, source))
        .await
        .expect("aggregate");
    rows.first().map(|r| r.totals).unwrap_or_default()
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_to_race() {
    let Some(db) = TestDb::new() else { return };
    let a = db.open().await;
    a.insert(&[event("e1", at("2026-01-01T10:00:00Z"))])
        .await
        .unwrap();
    // Connecting again applies nothing and keeps the data.
    let b = db.open().await;
    assert_eq!(total(&b, Source::Raw).await.requests, 1);
    let v: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert_eq!(v, super::migrate::latest().to_string());

    // Servers starting together on an empty schema: the advisory lock serialises them.
    let fresh = TestDb::new().unwrap();
    let url = format!("{}?schema={}", fresh.url, fresh.schema);
    let opens = (0..4).map(|_| {
        let url = url.clone();
        async move { PgStore::connect(&url, PgOptions::default()).await }
    });
    for s in futures_join_all(opens).await {
        let s = s.expect("concurrent connect");
        assert_eq!(s.schema(), Some(fresh.schema.as_str()));
        assert_eq!(total(&s, Source::Raw).await.requests, 0);
    }
}

/// Polls futures concurrently (no `futures` dependency).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn session_settings_apply_to_every_pooled_connection() {
    let Some(db) = TestDb::new() else { return };
    let opts = PgOptions::default()
        .schema(&db.schema)
        .synchronous_commit(false)
        .max_connections(2);
    let s = PgStore::connect(&db.url, opts).await.unwrap();
    // Hold both connections at once so the second one is a fresh connection too.
    let (mut a, mut b) = (
        s.pool.acquire().await.unwrap(),
        s.pool.acquire().await.unwrap(),
    );
    for conn in [&mut a, &mut b] {
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(path, db.schema);
        let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(sync, "off");
    }
    drop((a, b));
    let durable = db.open().await;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&durable.pool)
        .await
        .unwrap();
    assert_eq!(sync, "on");
}

#[tokio::test]
async fn connections_the_server_dropped_while_idle_are_replaced() {
    let Some(db) = TestDb::new() else { return };
    let opts = PgOptions::default().schema(&db.schema).max_connections(2);
    let s = PgStore::connect(&db.url, opts).await.unwrap();
    // Both pooled connections open and idle.
    let (mut a, mut b) = (
        s.pool.acquire().await.unwrap(),
        s.pool.acquire().await.unwrap(),
    );
    let mut pids = Vec::new();
    for conn in [&mut a, &mut b] {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        pids.push(pid);
    }
    drop((a, b));
    // The server (a restart, an idle timeout, a proxy) drops them.
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for pid in &pids {
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(killed);
    }
    tokio::time::sleep(super::PING_IDLE_AFTER + Duration::from_millis(200)).await;
    // Each is checked when taken, found dead and replaced: no call fails.
    for i in 0..4 {
        let e = event(&format!("after-drop-{i}"), at("2026-03-01T10:00:00Z"));
        assert_eq!(s.insert(&[e]).await.unwrap(), vec![true]);
    }
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert!(!pids.contains(&pid));
}

#[tokio::test]
async fn duplicate_ids_count_once_in_events_and_rollups() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    let mut a = event("a", at("2026-01-01T10:00:00Z"));
    a.tags.insert("team".into(), "red".into());
    let mut a2 = a.clone();
    a2.usage.input = 999_999; // same id, different content: the first one wins
    let b = event("b", at("2026-01-01T11:30:00Z"));
    let c = event("c", at("2026-01-01T11:45:00Z"));

    assert_eq!(
        s.insert(&[a.clone(), b.clone(), a2]).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(
        s.insert(&[b, c, a]).await.unwrap(),
        vec![false, true, false]
    );

    for source in [Source::Raw, Source::Rollup] {
        let t = total(&s, source).await;
        assert_eq!((t.requests, t.input), (3, 300), "{source:?}");
        let by_tag = s
            .aggregate(&req(Filter::default(), vec![tag("team")], None, source))
            .await
            .unwrap();
        let red: Vec<_> = by_tag
            .iter()
            .filter(|r| r.group == vec![Some("red".to_owned())])
            .collect();
        assert_eq!(red.len(), 1);
        assert_eq!(red[0].totals.requests, 1, "{source:?}");
    }
    // The tag was counted once, by the first copy only.
    let red = Filter {
        tags: [("team".to_owned(), "red".to_owned())].into(),
        ..Default::default()
    };
    for source in [Source::Raw, Source::Rollup] {
        let rows = s
            .aggregate(&req(red.clone(), vec![], None, source))
            .await
            .unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.totals.requests, r.totals.input))
                .collect::<Vec<_>>(),
            vec![(1, 100)],
            "{source:?}"
        );
    }
}

#[tokio::test]
async fn events_round_trip_and_scan_in_bytewise_id_order() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    let mut e = event("round", at("2026-02-03T04:05:06.789123Z"));
    e.context = PricingContext {
        service_tier: usage_core::ServiceTier::Batch,
        speed: usage_core::Speed::Fast,
        inference_geo: Some("us".into()),
        platform: Some(usage_core::Platform::Bedrock),
        deployment: Some(usage_core::Deployment::GovCloud),
    };
    e.status = Status::Error;
    e.error_type = Some("overloaded_error".into());
    e.error_message = Some("busy \"now\"".into());
    e.tags.insert("k\"ey".into(), "v'alue".into());
    e.latency_ms = None;
    s.insert(&[e.clone()]).await.unwrap();
    let back = s.get(&e.id).await.unwrap().expect("stored");
    let mut want = e.clone();
    want.timestamp = at("2026-02-03T04:05:06.789Z");
    assert_eq!(back, want);
    assert_eq!(s.get(&EventId::new("nope").unwrap()).await.unwrap(), None);

    let t = at("2026-02-04T00:00:00Z");
    let ids = ["b", "B", "a", "\u{e9}", "Z"];
    s.insert(&ids.iter().map(|i| event(i, t)).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut pages = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = s.scan(&Filter::default(), after.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(Cursor::after(last));
        pages.extend(page.into_iter().map(|e| e.id.as_str().to_owned()));
    }
    assert_eq!(pages, ["round", "B", "Z", "a", "b", "\u{e9}"]);
}

#[tokio::test]
async fn answers_like_the_memory_store_and_rollups_equal_raw() {
    let Some(db) = TestDb::new() else { return };
    let pg = db.open().await;
    let mem = MemoryStore::default();
    let events = mixed_events(600, "m");
    for chunk in events.chunks(97) {
        assert_eq!(
            pg.insert(chunk).await.unwrap(),
            mem.insert(chunk).await.unwrap()
        );
    }
    let hours = TimeRange::new(at("2026-03-01T02:00:00Z"), at("2026-03-01T20:00:00Z")).unwrap();
    let ragged =
        TimeRange::new(at("2026-03-01T02:17:00.0005Z"), at("2026-03-01T20:03:00Z")).unwrap();
    let filters = [
        Filter::default(),
        Filter {
            range: Some(hours),
            ..Default::default()
        },
        Filter {
            range: Some(ragged),
            user_id: Some("alice".into()),
            ..Default::default()
        },
        Filter {
            model: Some("mystery".into()),
            status: Some(Status::Success),
            ..Default::default()
        },
        Filter {
            provider: Some("openai".into()),
            ..Default::default()
        },
        Filter {
            tags: [("team".to_owned(), "red".to_owned())].into(),
            ..Default::default()
        },
        Filter {
            tags: [
                ("team".to_owned(), "".to_owned()),
                ("workflow".to_owned(), "wf0".to_owned()),
            ]
            .into(),
            ..Default::default()
        },
    ];
    let groupings = [
        vec![],
        vec![Dimension::User],
        vec![Dimension::Model, Dimension::Status],
        vec![tag("team"), Dimension::User],
        vec![tag("workflow"), tag("team"), Dimension::Provider],
    ];
    for f in &filters {
        for g in &groupings {
            for grain in [None, Some(1), Some(60), Some(900), Some(3600), Some(86400)] {
                let r = req(f.clone(), g.clone(), grain, Source::Raw);
                let (a, b) = (
                    pg.aggregate(&r).await.unwrap(),
                    mem.aggregate(&r).await.unwrap(),
                );
                assert_eq!(sorted(a), sorted(b), "aggregate {r:?}");
                let (mut a, mut b) = (
                    pg.latencies(&r).await.unwrap(),
                    mem.latencies(&r).await.unwrap(),
                );
                let key = |l: &usage_core::store::LatencyRow| {
                    (l.group.clone(), l.grain_start, l.latency_ms)
                };
                a.sort_by_key(key);
                b.sort_by_key(key);
                assert_eq!(a, b, "latencies {r:?}");
                for d in [Dimension::User, tag("team")] {
                    let (mut a, b) = (
                        pg.distinct(&r, &d).await.unwrap(),
                        mem.distinct(&r, &d).await.unwrap(),
                    );
                    a.sort_by(|x, y| {
                        (&x.group, x.grain_start, &x.value).cmp(&(
                            &y.group,
                            y.grain_start,
                            &y.value,
                        ))
                    });
                    assert_eq!(a, b, "distinct {d:?} {r:?}");
                }
            }
        }
        let mut scanned = Vec::new();
        let mut after = None;
        loop {
            let page = pg.scan(f, after.as_ref(), 50).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(Cursor::after(last));
            scanned.extend(page);
        }
        assert_eq!(
            scanned,
            mem.scan(f, None, usize::MAX).await.unwrap(),
            "scan {f:?}"
        );
    }

    // Rollups: whole hours, the dimensions they can serve, grains of whole hours.
    let rollup_cases = [
        (
            Filter {
                range: Some(hours),
                ..Default::default()
            },
            vec![
                Dimension::User,
                Dimension::Provider,
                Dimension::Model,
                Dimension::Status,
            ],
        ),
        (Filter::default(), vec![Dimension::Model]),
        (
            Filter {
                user_id: Some("alice".into()),
                ..Default::default()
            },
            vec![Dimension::Status],
        ),
        (
            Filter {
                range: Some(hours),
                ..Default::default()
            },
            vec![Dimension::User, tag("team")],
        ),
        (
            Filter {
                tags: [("workflow".to_owned(), "wf1".to_owned())].into(),
                ..Default::default()
            },
            vec![Dimension::User],
        ),
        (Filter::default(), vec![]),
    ];
    for (f, g) in rollup_cases {
        for grain in [None, Some(3600), Some(7200)] {
            let raw = pg
                .aggregate(&req(f.clone(), g.clone(), grain, Source::Raw))
                .await
                .unwrap();
            let rolled = pg
                .aggregate(&req(f.clone(), g.clone(), grain, Source::Rollup))
                .await
                .unwrap();
            let mem_rolled = mem
                .aggregate(&req(f.clone(), g.clone(), grain, Source::Rollup))
                .await
                .unwrap();
            assert!(!raw.is_empty());
            // Events without the tag are in no rollup_tags row (see `rollup_differences`).
            let tagged = |rows: Vec<AggregateRow>| {
                let tag_at = g.iter().position(|d| matches!(d, Dimension::Tag(_)));
                sorted(
                    rows.into_iter()
                        .filter(|r| tag_at.is_none_or(|i| r.group[i].is_some()))
                        .collect(),
                )
            };
            assert_eq!(
                tagged(rolled.clone()),
                tagged(raw),
                "rollup vs raw {f:?} {g:?} {grain:?}"
            );
            assert_eq!(
                sorted(rolled),
                sorted(mem_rolled),
                "rollup vs memory {f:?} {g:?} {grain:?}"
            );
            let d = Dimension::User;
            let r = req(f.clone(), g.clone(), grain, Source::Rollup);
            let mut a = pg.distinct(&r, &d).await.unwrap();
            a.sort_by(|x, y| {
                (&x.group, x.grain_start, &x.value).cmp(&(&y.group, y.grain_start, &y.value))
            });
            assert_eq!(
                a,
                mem.distinct(&r, &d).await.unwrap(),
                "rollup distinct {r:?}"
            );
        }
    }
    assert_eq!(rollup_differences(&pg).await, vec![]);
    let bad = req(
        Filter::default(),
        vec![Dimension::Model, tag("team")],
        None,
        Source::Rollup,
    );
    assert!(matches!(
        pg.aggregate(&bad).await,
        Err(Error::InvalidArgument { .. })
    ));
}

/// Every event of `s`, in id order.
async fn all_events(s: &PgStore) -> Vec<UsageEvent> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = s
            .scan(&Filter::default(), after.as_ref(), 1000)
            .await
            .expect("scan");
        let Some(last) = page.last() else { break };
        after = Some(Cursor::after(last));
        out.extend(page);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// [`mixed_events`] with text that COPY's text format must escape or pass through untouched:
/// backslashes, a literal `\N` and `\.`, quotes and non-ASCII in ids, users and tags (which
/// refuse control characters), tabs, newlines and carriage returns as well in error messages
/// and the inference geography.
fn awkward_events(n: usize, prefix: &str) -> Vec<UsageEvent> {
    let plain = [
        "back\\slash\\",
        "\\N",
        "\\.",
        "quote\"'",
        "caf\u{e9} \u{1F600}",
    ];
    let control = ["tab\there", "line\nbreak\r\n", "\\N", "", "\\\t"];
    let mut events = mixed_events(n, prefix);
    for (i, e) in events.iter_mut().enumerate() {
        let (p, c) = (plain[i % plain.len()], control[i % control.len()]);
        if i % 3 == 0 {
            e.id = EventId::new(format!("{prefix}{i:05}{p}")).expect("id");
        }
        if i % 4 == 1 {
            e.user_id = Some(format!("user {p}"));
        }
        if i % 2 == 0 {
            e.tags.insert(format!("k{p}"), p.to_owned());
        }
        if i % 5 == 2 {
            e.status = Status::Error;
            e.error_message = Some(c.to_owned());
            e.error_type = Some(format!("type{c}"));
        }
        if i % 7 == 3 {
            e.context.inference_geo = Some(c.to_owned());
        }
    }
    events
}

/// A batch large enough to go through COPY and a staging table stores exactly what the same
/// events stored in small (bound) batches do: the same duplicates, the same rows read back
/// (awkward text included), the same rollups.
#[tokio::test]
async fn large_batches_are_copied_and_store_what_small_ones_do() {
    let Some(db) = TestDb::new() else { return };
    let other = TestDb::new().expect("a second schema");
    let (copied, bound) = (db.open().await, other.open().await);
    let mem = MemoryStore::default();
    let n = super::insert::COPY_AT_LEAST + 500;
    let mut events = awkward_events(n, "big");
    // Some already stored, some repeated inside the batch with other content (the first wins).
    let early: Vec<UsageEvent> = events[..300].to_vec();
    let repeated = events[5].id.clone();
    for e in events.iter_mut().skip(1000).step_by(997) {
        e.id = repeated.clone();
        e.usage.input = 7_777;
    }
    for s in [&copied as &dyn Store, &bound, &mem] {
        s.insert(&early).await.expect("early");
    }
    let stored = copied.insert(&events).await.expect("copied insert");
    let mut by_chunks = Vec::new();
    for chunk in events.chunks(211) {
        by_chunks.extend(bound.insert(chunk).await.expect("bound insert"));
    }
    assert_eq!(stored, by_chunks);
    assert_eq!(stored, mem.insert(&events).await.unwrap());
    assert!(stored[..300].iter().all(|s| !s));
    assert_eq!(stored.iter().filter(|s| **s).count(), n - 300 - 4);

    let (a, b) = (all_events(&copied).await, all_events(&bound).await);
    assert_eq!(a.len(), n - 4);
    assert_eq!(a, b);
    let awkward = a
        .iter()
        .find(|e| e.error_message.as_deref() == Some("\\N"))
        .expect("an event whose error message is a literal \\N");
    assert_eq!(
        copied.get(&awkward.id).await.unwrap().as_ref(),
        Some(awkward)
    );
    for source in [Source::Raw, Source::Rollup] {
        for group in [
            vec![],
            vec![Dimension::User, Dimension::Model],
            vec![tag("team")],
        ] {
            let r = req(Filter::default(), group, Some(3600), source);
            assert_eq!(
                sorted(copied.aggregate(&r).await.unwrap()),
                sorted(bound.aggregate(&r).await.unwrap()),
                "{source:?}"
            );
        }
    }
    assert_eq!(rollup_differences(&copied).await, vec![]);

    // The same batch again: all duplicates, nothing added.
    let before = total(&copied, Source::Rollup).await;
    assert!(copied.insert(&events).await.unwrap().iter().all(|s| !s));
    assert_eq!(total(&copied, Source::Rollup).await, before);
}

/// A large batch the server refuses (a NUL character, which PostgreSQL text cannot hold)
/// stores none of its events, and the connection it used keeps working.
#[tokio::test]
async fn a_refused_large_batch_writes_nothing() {
    let Some(db) = TestDb::new() else { return };
    let s = PgStore::connect(
        &db.url,
        PgOptions::default().schema(&db.schema).max_connections(1),
    )
    .await
    .expect("connect");
    let mut events = mixed_events(super::insert::COPY_AT_LEAST + 10, "nul");
    let last = events.len() - 1;
    events[last].error_message = Some("bad\0byte".into());
    let err = s.insert(&events).await.expect_err("NUL refused");
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_eq!(total(&s, Source::Raw).await, Totals::default());
    assert_eq!(total(&s, Source::Rollup).await, Totals::default());
    events.pop();
    let stored = s
        .insert(&events)
        .await
        .expect("the same connection, next batch");
    assert!(stored.iter().all(|s| *s));
    assert_eq!(total(&s, Source::Raw).await.requests, events.len() as u64);
    assert_eq!(rollup_differences(&s).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_from_two_pools_lose_nothing() {
    concurrent_inserts(1000, 50).await;
}

/// As above, with batches large enough to be copied through a staging table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_large_inserts_from_two_pools_lose_nothing() {
    let n = super::insert::COPY_AT_LEAST + 1000;
    concurrent_inserts(n, n).await;
}

/// Two pools write the same `n_shared` events (overlapping batches of `chunk`, opposite orders)
/// plus 500 of their own each.
async fn concurrent_inserts(n_shared: usize, chunk: usize) {
    let Some(db) = TestDb::new() else { return };
    let (s1, s2) = (db.open().await, db.open().await);
    let shared = mixed_events(n_shared, "shared");
    let own1 = mixed_events(500, "one");
    let own2 = mixed_events(500, "two");
    let mut w1: Vec<UsageEvent> = shared.iter().chain(&own1).cloned().collect();
    let mut w2: Vec<UsageEvent> = shared.iter().chain(&own2).cloned().collect();
    w1.sort_by(|a, b| a.id.cmp(&b.id));
    w2.sort_by(|a, b| b.id.cmp(&a.id));
    let write = |s: PgStore, evs: Vec<UsageEvent>| async move {
        let mut stored = 0;
        for chunk in evs.chunks(chunk) {
            stored += s
                .insert(chunk)
                .await
                .expect("insert")
                .iter()
                .filter(|b| **b)
                .count();
        }
        stored
    };
    let (a, b) = tokio::join!(
        tokio::spawn(write(s1.clone(), w1)),
        tokio::spawn(write(s2.clone(), w2))
    );
    let want = shared.len() + 1000;
    assert_eq!(a.unwrap() + b.unwrap(), want);
    let t = total(&s1, Source::Raw).await;
    assert_eq!(t.requests, want as u64);
    assert_eq!(total(&s2, Source::Rollup).await, t);
    assert_eq!(rollup_differences(&s1).await, vec![]);
}

#[tokio::test]
async fn purge_deletes_raw_events_and_keeps_rollups() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    s.insert(&mixed_events(300, "p")).await.unwrap();
    let before = total(&s, Source::Rollup).await;
    let cut = at("2026-03-01T12:00:00Z");
    assert!(matches!(
        s.purge(at("2026-03-01T12:30:00Z"), &RunOptions::default())
            .await,
        Err(Error::InvalidArgument { .. })
    ));

    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r2 = reports.clone();
    let opts = RunOptions {
        batch_size: Some(40),
        progress: Some(Arc::new(move |p| r2.lock().unwrap().push(p))),
        cancel: None,
    };
    let rec = s.purge(cut, &opts).await.unwrap();
    assert_eq!(rec.outcome, RunOutcome::Succeeded);
    let early = Filter {
        range: Some(TimeRange::new(at("2000-01-01T00:00:00Z"), cut).unwrap()),
        ..Default::default()
    };
    assert!(s.scan(&early, None, 10).await.unwrap().is_empty());
    assert!(rec.rows > 40, "several batches: {}", rec.rows);
    let reports = reports.lock().unwrap().clone();
    assert!(reports.len() > 1);
    assert_eq!(
        reports.last().map(|p| (p.done, p.total)),
        Some((rec.rows, Some(rec.rows)))
    );
    assert_eq!(total(&s, Source::Rollup).await, before);
    assert_eq!(total(&s, Source::Raw).await.requests, 300 - rec.rows);
    assert_eq!(s.purged_before().await.unwrap(), Some(cut));
    // The horizon never moves back.
    s.purge(at("2026-03-01T01:00:00Z"), &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(s.purged_before().await.unwrap(), Some(cut));
    // Rebuilding everything only rebuilds after the horizon: the purged hours keep their sums.
    let rb = s
        .rebuild_rollups(None, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(rb.range.map(|r| r.start), Some(cut));
    assert_eq!(total(&s, Source::Rollup).await, before);
    let runs = s.runs(10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ["rebuild_rollups", "purge", "purge"]
    );
    assert_eq!(runs[2].rows, rec.rows);
}

fn cancel_after_first_batch(batch: usize) -> RunOptions {
    let token = CancelToken::new();
    let t2 = token.clone();
    RunOptions {
        batch_size: Some(batch),
        progress: Some(Arc::new(move |_| t2.cancel())),
        cancel: Some(token),
    }
}

async fn snapshot(s: &PgStore) -> (Vec<UsageEvent>, Vec<AggregateRow>, Vec<AggregateRow>) {
    let all = s.scan(&Filter::default(), None, usize::MAX).await.unwrap();
    let g = vec![
        Dimension::User,
        Dimension::Provider,
        Dimension::Model,
        Dimension::Status,
    ];
    let ev = sorted(
        s.aggregate(&req(Filter::default(), g, Some(3600), Source::Rollup))
            .await
            .unwrap(),
    );
    let tg = sorted(
        s.aggregate(&req(
            Filter::default(),
            vec![Dimension::User, tag("team")],
            Some(3600),
            Source::Rollup,
        ))
        .await
        .unwrap(),
    );
    (all, ev, tg)
}

#[tokio::test]
async fn cancelled_runs_leave_data_unchanged() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    let mut events = mixed_events(200, "c");
    for e in &mut events {
        // Mispriced, so a reprice would change every priced event.
        if let Some(c) = &mut e.cost {
            c.total += Usd::from_nanos(1);
        }
    }
    s.insert(&events).await.unwrap();
    let before = snapshot(&s).await;

    let rec = s
        .purge(at("2026-03-02T00:00:00Z"), &cancel_after_first_batch(25))
        .await
        .unwrap();
    assert_eq!((rec.outcome, rec.rows), (RunOutcome::Cancelled, 25));
    assert_eq!(s.purged_before().await.unwrap(), None);

    let rec = s
        .rebuild_rollups(None, &cancel_after_first_batch(25))
        .await
        .unwrap();
    assert_eq!(rec.outcome, RunOutcome::Cancelled);

    let (report, rec) = s
        .reprice(
            None,
            PriceCatalog::builtin(),
            false,
            &cancel_after_first_batch(25),
        )
        .await
        .unwrap();
    assert_eq!(rec.outcome, RunOutcome::Cancelled);
    assert!(
        report.changed > 0,
        "the first batch had changes to roll back"
    );

    assert_eq!(snapshot(&s).await, before);
    let outcomes: Vec<_> = s
        .runs(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [RunOutcome::Cancelled; 3]);
}

#[tokio::test]
async fn reprice_dry_run_writes_nothing_and_the_real_run_keeps_rollups_exact() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    let t = at("2026-04-01T10:15:00Z");
    let mut wrong = event("wrong", t); // priced, but not at the catalog's price
    wrong.tags.insert("team".into(), "red".into());
    let mut unpriced = event("late", t); // a model the catalog has since learned
    unpriced.model = "claude-sonnet-4-5-20250929".into();
    unpriced.resolved_model = None;
    unpriced.cost = None;
    unpriced.cost_source = CostSource::Unpriced;
    let mut unknown = event("unknown", t);
    unknown.model = "mystery-model".into();
    unknown.resolved_model = None;
    unknown.cost = None;
    unknown.cost_source = CostSource::Unpriced;
    let mut provided = event("provided", t);
    provided.cost_source = CostSource::Provided;
    s.insert(&[wrong, unpriced, unknown, provided])
        .await
        .unwrap();
    let before = snapshot(&s).await;

    let cat = PriceCatalog::builtin();
    let (dry, rec) = s
        .reprice(None, cat, true, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(rec.outcome, RunOutcome::DryRun);
    assert!(dry.dry_run);
    assert_eq!(
        (
            dry.examined,
            dry.changed,
            dry.newly_priced,
            dry.still_unpriced
        ),
        (4, 2, 1, 1)
    );
    assert_eq!(dry.old_total, Usd::from_nanos(1200));
    assert!(dry.new_total > dry.old_total);
    assert_eq!(snapshot(&s).await, before, "a dry run writes nothing");

    let (real, rec) = s
        .reprice(None, cat, false, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(rec.outcome, RunOutcome::Succeeded);
    assert_eq!((real.changed, real.new_total), (dry.changed, dry.new_total));
    assert_eq!(total(&s, Source::Rollup).await.cost_total, real.new_total);
    assert_eq!(
        total(&s, Source::Raw).await,
        total(&s, Source::Rollup).await
    );
    assert_eq!(rollup_differences(&s).await, vec![]);
    let late = s
        .get(&EventId::new("late").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late.cost_source, CostSource::Calculated);
    assert_eq!(late.resolved_model.as_deref(), Some("claude-sonnet-4-5"));
    // The unpriced event moved from its reported model's cell to the resolved model's.
    let by_model = s
        .aggregate(&req(
            Filter::default(),
            vec![Dimension::Model],
            None,
            Source::Rollup,
        ))
        .await
        .unwrap();
    assert!(
        by_model
            .iter()
            .all(|r| r.group[0].as_deref() != Some("claude-sonnet-4-5-20250929"))
    );
    // Nothing left to change.
    let (again, _) = s
        .reprice(None, cat, false, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(again.changed, 0);
    let kinds: Vec<_> = s.runs(3).await.unwrap().iter().map(|r| r.outcome).collect();
    assert_eq!(
        kinds,
        [
            RunOutcome::Succeeded,
            RunOutcome::Succeeded,
            RunOutcome::DryRun
        ]
    );
    assert!(
        s.runs(3).await.unwrap()[2]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("2 changed")
    );
}

#[tokio::test]
async fn rebuild_restores_damaged_rollups() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    s.insert(&mixed_events(250, "r")).await.unwrap();
    let before = snapshot(&s).await;
    sqlx::query("UPDATE rollup_events SET requests = requests + 5")
        .execute(&s.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM rollup_tags WHERE key = 'team'")
        .execute(&s.pool)
        .await
        .unwrap();
    assert_ne!(snapshot(&s).await, before);
    let range = TimeRange::new(at("2026-03-01T00:00:00Z"), at("2026-03-03T00:00:00Z")).unwrap();
    let half_hour = TimeRange::new(at("2026-03-01T00:30:00Z"), at("2026-03-03T00:00:00Z")).unwrap();
    assert!(matches!(
        s.rebuild_rollups(Some(half_hour), &RunOptions::default())
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    let rec = s
        .rebuild_rollups(
            Some(range),
            &RunOptions {
                batch_size: Some(33),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((rec.outcome, rec.rows), (RunOutcome::Succeeded, 250));
    assert_eq!(snapshot(&s).await, before);
}

#[tokio::test]
async fn connection_and_argument_errors_are_typed() {
    // These need no server.
    for url in ["not a url", "postgres://u@localhost:notaport/db"] {
        match PgStore::connect(url, PgOptions::default()).await {
            Err(Error::Store {
                backend: "postgres",
                operation,
                ..
            }) => assert_eq!(operation, "connect"),
            other => panic!("{url}: {other:?}"),
        }
    }
    for schema in ["Bad", "1abc", "a-b", "x\"; DROP TABLE events; --", ""] {
        let r = PgStore::connect(
            "postgres://u@127.0.0.1:1/db",
            PgOptions::default().schema(schema),
        )
        .await;
        assert!(
            matches!(r, Err(Error::InvalidArgument { ref field, .. }) if field == "schema"),
            "{schema}: {r:?}"
        );
    }
    let r = PgStore::connect(
        "postgres://u@127.0.0.1:1/db?schema=a",
        PgOptions::default().schema("b"),
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidArgument { .. })));
    let unreachable = PgOptions::default().acquire_timeout(Duration::from_millis(300));
    match PgStore::connect("postgres://u@127.0.0.1:1/db", unreachable).await {
        Err(e @ Error::Store { .. }) => {
            let source = std::error::Error::source(&e)
                .expect("source kept")
                .to_string();
            assert!(source.to_lowercase().contains("refused"), "{source}");
        }
        other => panic!("{other:?}"),
    }

    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    s.close().await.unwrap();
    match s
        .insert(&[event("x", Utc.timestamp_opt(0, 0).unwrap())])
        .await
    {
        Err(Error::Store {
            backend: "postgres",
            source,
            ..
        }) => assert!(source.to_string().contains("closed")),
        other => panic!("{other:?}"),
    }
}

/// Insert throughput and latency on this machine:
/// `USAGE_TEST_POSTGRES_URL=… cargo test -p usage-store --features postgres --release -- --ignored --nocapture insert_speed`.
/// "live": events of the current hour (few rollup cells, the usual case); "backfill": the same
/// events spread over 30 hours (a cell per few events, the worst case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn insert_speed() {
    let Some(db) = TestDb::new() else { return };
    let s = db.open().await;
    let hour = Utc::now().timestamp_millis() / 3_600_000 * 3_600_000;
    let live: Vec<UsageEvent> = mixed_events(50_000, "live")
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.timestamp =
                DateTime::from_timestamp_millis(hour + (i as i64 * 7) % 3_600_000).unwrap();
            e
        })
        .collect();
    for (name, events) in [
        ("live", live),
        ("backfill", mixed_events(50_000, "backfill")),
    ] {
        let start = std::time::Instant::now();
        for chunk in events.chunks(1000) {
            s.insert(chunk).await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{name}, batches of 1,000: {:.0} events/s ({} events in {secs:.2} s)",
            events.len() as f64 / secs,
            events.len()
        );
    }
    let relaxed = PgStore::connect(
        &db.url,
        PgOptions::default()
            .schema(&db.schema)
            .synchronous_commit(false),
    )
    .await
    .unwrap();
    for (name, store) in [
        ("synchronous_commit on", &s),
        ("synchronous_commit off", &relaxed),
    ] {
        let mut times: Vec<Duration> = Vec::new();
        for (i, mut e) in mixed_events(2000, name).into_iter().enumerate() {
            e.timestamp = DateTime::from_timestamp_millis(hour + i as i64).unwrap();
            let t = std::time::Instant::now();
            store.insert(std::slice::from_ref(&e)).await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let q = |p: usize| times[times.len() * p / 100];
        eprintln!(
            "single-event insert, {name}: median {:?}, p90 {:?}, p99 {:?}",
            q(50),
            q(90),
            q(99)
        );
    }
}

/// The batched writer runs two writes at once on PostgreSQL (one when the pool is too small to
/// spare a connection). A flush still returns only once every event queued before it is
/// stored; a batch the server refuses is reported by the next flush, and the writes beside it
/// are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batched_writer_writes_two_batches_at_once_and_flush_waits_for_both() {
    use crate::{BatchOptions, Tracker, TrackerOptions};
    use usage_core::NewEvent;

    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    assert_eq!(store.concurrent_inserts(), 2);
    let small = PgStore::connect(
        &db.url,
        PgOptions::default().schema(&db.schema).max_connections(2),
    )
    .await
    .expect("connect");
    assert_eq!(
        small.concurrent_inserts(),
        1,
        "one connection is kept for reads"
    );
    small.close().await.expect("close");

    let t = Tracker::with_store(
        store.clone(),
        TrackerOptions {
            batch: BatchOptions {
                max_batch: 300,
                max_write: 5_000,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let event = |user: &str| {
        NewEvent::new(
            "anthropic",
            "claude-haiku-4-5",
            TokenUsage {
                input: 10,
                output: 5,
                ..Default::default()
            },
        )
        .user(user)
    };
    // Each flush must find every event queued before it stored, the batch written beside its
    // own included.
    let mut n = 0u64;
    for round in 0..20 {
        for i in 0..700 {
            t.enqueue(event(&format!("u{}", i % 97)))
                .await
                .expect("enqueue");
        }
        n += 700;
        t.flush().await.expect("flush");
        assert_eq!(
            total(&*store, Source::Raw).await.requests,
            n,
            "round {round}"
        );
    }
    assert_eq!(rollup_differences(&*store).await, vec![]);

    // The refused batch is reported once: by the flush, or by an enqueue that comes after
    // its write (that call's own event is then not queued).
    let (mut reported, mut not_queued) = (Vec::new(), 0);
    for i in 0..3_000u64 {
        let mut e = event(&format!("u{i}"));
        if i == 1_500 {
            // PostgreSQL text cannot hold a NUL: the server refuses this event's batch.
            e.error_message = Some("bad\0byte".into());
        }
        if let Err(err) = t.enqueue(e).await {
            reported.push(err.to_string());
            not_queued += 1;
        }
    }
    if let Err(err) = t.flush().await {
        reported.push(err.to_string());
    }
    assert_eq!(reported.len(), 1, "{reported:?}");
    // "… N queued events were not stored: …": exactly the refused batch is missing.
    let refused: u64 = reported[0]
        .split(" queued events were not stored")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reported:?}"));
    let stored = total(&*store, Source::Raw).await.requests;
    assert_eq!(stored, n + 3_000 - refused - not_queued, "{reported:?}");
    for _ in 0..10 {
        t.enqueue(event("after")).await.expect("enqueue");
    }
    t.flush()
        .await
        .expect("the next flush has nothing to report");
    assert_eq!(total(&*store, Source::Raw).await.requests, stored + 10);
    assert_eq!(rollup_differences(&*store).await, vec![]);
}
