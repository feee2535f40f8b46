//! SQLite-specific behaviour: opening files safely, migrations, concurrency across instances,
//! rollups against raw events, and the all-or-nothing maintenance runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use rusqlite::types::Value;
use usage_core::event::{CostSource, EventCost, EventId, Status, UsageEvent};
use usage_core::query::{Dimension, Filter, TimeRange, Totals};
use usage_core::store::{
    AggregateRequest, CancelToken, Cursor, RunKind, RunOptions, RunOutcome, Source, Store,
};
use usage_core::{
    Deployment, Error, Platform, PriceCatalog, PricingContext, ServiceTier, Speed, TokenUsage, Usd,
};

use super::codec::EventRow;
use super::{APPLICATION_ID, SqliteOptions, SqliteStore};

/// A unique database path under the temp dir, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        TempDb(std::env::temp_dir().join(format!(
            "usage-sqlite-{name}-{}-{nanos}-{n}.db",
            std::process::id()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn side_files_exist(&self) -> bool {
        ["-wal", "-shm", "-journal"]
            .iter()
            .any(|s| Path::new(&format!("{}{s}", self.0.display())).exists())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn open(db: &TempDb) -> SqliteStore {
    SqliteStore::open(db.path(), SqliteOptions::default()).expect("open")
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("timestamp")
}

const BASE: &str = "2026-03-02T00:00:00Z";
const HOUR: i64 = 3_600_000;

fn usd(nanos: i128) -> Usd {
    Usd::from_nanos(nanos)
}

fn ev(id: &str, ts_ms: i64) -> UsageEvent {
    UsageEvent {
        id: EventId::new(id).expect("id"),
        timestamp: DateTime::from_timestamp_millis(ts_ms).expect("ts"),
        provider: "anthropic".into(),
        model: "claude-x".into(),
        resolved_model: None,
        usage: TokenUsage {
            input: 100,
            output: 20,
            ..Default::default()
        },
        cost: Some(EventCost {
            input: usd(300),
            output: usd(200),
            total: usd(500),
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

fn base_ms() -> i64 {
    at(BASE).timestamp_millis()
}

/// A deterministic, varied set of events over three days.
fn corpus(n: usize, seed: u64) -> Vec<UsageEvent> {
    let mut x = seed;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let users = [None, Some("u1"), Some("u2"), Some("u3")];
    let models = [
        ("anthropic", "claude-a"),
        ("anthropic", "claude-b"),
        ("openai", "gpt-x"),
    ];
    (0..n)
        .map(|i| {
            let ts = base_ms() + (next(72 * HOUR as u64) as i64);
            let mut e = ev(&format!("ev-{seed}-{i}"), ts);
            let (p, m) = models[next(3) as usize];
            e.provider = p.into();
            e.model = m.into();
            if next(3) == 0 {
                e.resolved_model = Some(format!("{m}-resolved"));
            }
            e.user_id = users[next(4) as usize].map(str::to_owned);
            e.usage = TokenUsage {
                input: next(10_000),
                cache_read: next(5_000),
                cache_write_5m: next(300),
                cache_write_1h: next(200),
                output: 1_000 + next(1_000),
                reasoning: next(1_000),
                web_search_requests: next(3),
                web_fetch_requests: next(2),
            };
            e.cost = match next(5) {
                0 => None,
                _ => {
                    let parts: Vec<i128> =
                        (0..6).map(|_| i128::from(next(1_000_000) as i32)).collect();
                    Some(EventCost {
                        input: usd(parts[0]),
                        cache_read: usd(parts[1]),
                        cache_write_5m: usd(parts[2]),
                        cache_write_1h: usd(parts[3]),
                        output: usd(parts[4]),
                        web_search: usd(parts[5]),
                        total: usd(parts.iter().sum()),
                    })
                }
            };
            if e.cost.is_none() {
                e.cost_source = CostSource::Unpriced;
                e.unpriced_reason = Some("not in catalog".into());
            }
            e.latency_ms = (next(4) != 0).then(|| next(5_000));
            e.duration_ms = (next(4) != 0).then(|| next(50_000));
            if next(6) == 0 {
                e.status = Status::Error;
                e.error_type = Some("overloaded_error".into());
            }
            match next(4) {
                0 => {}
                1 => {
                    e.tags.insert("team".into(), "a".into());
                }
                2 => {
                    e.tags.insert("team".into(), "b".into());
                    e.tags.insert("workflow".into(), "summarise".into());
                }
                _ => {
                    e.tags.insert("workflow".into(), "chat".into());
                }
            }
            e
        })
        .collect()
}

type Agg = BTreeMap<(Vec<Option<String>>, Option<DateTime<Utc>>), Totals>;

async fn agg(
    store: &dyn Store,
    filter: &Filter,
    group_by: &[Dimension],
    grain: Option<i64>,
    source: Source,
) -> Agg {
    let req = AggregateRequest {
        filter: filter.clone(),
        group_by: group_by.to_vec(),
        grain_secs: grain,
        source,
    };
    let rows = store.aggregate(&req).await.expect("aggregate");
    let n = rows.len();
    let map: Agg = rows
        .into_iter()
        .map(|r| ((r.group, r.grain_start), r.totals))
        .collect();
    assert_eq!(map.len(), n, "duplicate groups in {req:?}");
    map
}

/// The same aggregate computed from the events with `Filter::matches` and `Totals::of`.
fn expected(
    events: &[UsageEvent],
    filter: &Filter,
    group_by: &[Dimension],
    grain: Option<i64>,
) -> Agg {
    let mut out = Agg::new();
    for e in events.iter().filter(|e| filter.matches(e)) {
        let group = group_by
            .iter()
            .map(|d| d.value_of(e).map(str::to_owned))
            .collect();
        let ms = e.timestamp.timestamp_millis();
        let grain = grain.map(|g| {
            DateTime::from_timestamp_millis(ms.div_euclid(g * 1000) * g * 1000).expect("grain")
        });
        out.entry((group, grain)).or_default().merge(&Totals::of(e));
    }
    out
}

/// Every row of every data table (not `runs`), for "nothing changed" checks.
fn dump(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("dump open");
    let mut out = Vec::new();
    for t in [
        "events",
        "rollup_events",
        "rollup_tags",
        "quota_counters",
        "meta",
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {t}"))
            .expect("prepare");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let vals: Vec<Value> = (0..n)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<rusqlite::Result<_>>()?;
                Ok(format!("{t}: {vals:?}"))
            })
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        rows.sort();
        out.extend(rows);
    }
    out
}

fn dims_sets() -> Vec<Vec<Dimension>> {
    let tag = |k: &str| Dimension::Tag(k.into());
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
        vec![tag("team")],
        vec![Dimension::User, tag("team")],
        vec![tag("workflow"), Dimension::User],
    ]
}

#[test]
fn sums_are_totals_of() {
    for e in corpus(200, 7) {
        let row = EventRow::new(&e).expect("row");
        assert_eq!(row.sums.to_totals(), Totals::of(&e), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_file_is_migrated_and_reopens_with_events_intact() {
    let db = TempDb::new("fresh");
    let mut e = ev("msg_full", base_ms() + 1234);
    // Sub-millisecond precision is dropped on the way in.
    e.timestamp += Duration::nanoseconds(456_789);
    e.resolved_model = Some("claude-sonnet-4-5".into());
    e.usage = TokenUsage {
        input: 1,
        cache_read: 2,
        cache_write_5m: 3,
        cache_write_1h: 4,
        output: 50,
        reasoning: 6,
        web_search_requests: 7,
        web_fetch_requests: 8,
    };
    e.cost = Some(EventCost {
        input: "0.000000001".parse().expect("usd"),
        cache_read: "0.25".parse().expect("usd"),
        cache_write_5m: "1.5".parse().expect("usd"),
        cache_write_1h: "2".parse().expect("usd"),
        output: "3.123456789".parse().expect("usd"),
        web_search: "0.07".parse().expect("usd"),
        total: "6.943456790".parse().expect("usd"),
    });
    e.status = Status::Error;
    e.error_type = Some("rate_limit_error".into());
    e.error_message = Some("slow down: \"quoted\" ✓".into());
    e.context = PricingContext {
        service_tier: ServiceTier::Batch,
        speed: Speed::Fast,
        inference_geo: Some("us".into()),
        platform: Some(Platform::Bedrock),
        deployment: Some(Deployment::GovCloud),
    };
    e.tags.insert("workflow".into(), "summarise".into());
    e.tags.insert("empty".into(), String::new());
    let mut unpriced = ev("msg_unpriced", base_ms());
    unpriced.cost = None;
    unpriced.cost_source = CostSource::Unpriced;
    unpriced.unpriced_reason = Some("model `x` is not in catalog".into());
    unpriced.user_id = None;
    unpriced.latency_ms = None;
    unpriced.duration_ms = None;

    {
        let store = open(&db);
        assert_eq!(
            store
                .insert(&[e.clone(), unpriced.clone()])
                .await
                .expect("insert"),
            vec![true, true]
        );
        store.close().await.expect("close");
    }
    let conn = rusqlite::Connection::open(db.path()).expect("conn");
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .expect("app id");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    drop(conn);
    assert_eq!(
        (app, mode.as_str(), version.as_str()),
        (
            APPLICATION_ID,
            "wal",
            super::schema::SCHEMA_VERSION.to_string().as_str()
        )
    );

    let store = open(&db);
    let mut want = e.clone();
    want.timestamp = DateTime::from_timestamp_millis(e.timestamp.timestamp_millis()).expect("ms");
    assert_eq!(store.get(&e.id).await.expect("get"), Some(want.clone()));
    assert_eq!(
        store.get(&unpriced.id).await.expect("get"),
        Some(unpriced.clone())
    );
    assert_eq!(
        store
            .get(&EventId::new("nope").expect("id"))
            .await
            .expect("get"),
        None
    );
    let all = store
        .scan(&Filter::default(), None, 10)
        .await
        .expect("scan");
    assert_eq!(all, vec![unpriced, want]);
    // Re-inserting after a reopen is still a duplicate.
    assert_eq!(store.insert(&[e]).await.expect("insert"), vec![false]);
    store.close().await.expect("close");
}

fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn assert_open_refused(db: &TempDb, needle: &str) {
    let before = std::fs::read(db.path()).expect("read");
    let err = SqliteStore::open(db.path(), SqliteOptions::default()).expect_err("must refuse");
    match &err {
        Error::Store {
            backend, operation, ..
        } => assert_eq!((*backend, operation.as_str()), ("sqlite", "open")),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string().contains(needle),
        "message `{err}` should contain `{needle}`"
    );
    assert_eq!(
        std::fs::read(db.path()).expect("read"),
        before,
        "the file was modified"
    );
    assert!(
        !db.side_files_exist(),
        "journal files were left next to the file"
    );
}

#[test]
fn refuses_a_corrupt_file_and_leaves_it_untouched() {
    let db = TempDb::new("corrupt");
    std::fs::write(db.path(), pseudo_random_bytes(16 * 1024)).expect("write");
    assert_open_refused(&db, "is not an SQLite database, or it is corrupt");

    let text = TempDb::new("text");
    std::fs::write(text.path(), b"hello, this is not a database\n").expect("write");
    assert_open_refused(&text, "is not an SQLite database");

    // A real SQLite header followed by garbage.
    let mangled = TempDb::new("mangled");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(pseudo_random_bytes(8 * 1024));
    std::fs::write(mangled.path(), bytes).expect("write");
    assert_open_refused(&mangled, "not an SQLite database, or it is corrupt");
}

#[test]
fn refuses_another_applications_database_and_leaves_it_untouched() {
    let db = TempDb::new("foreign");
    {
        let conn = rusqlite::Connection::open(db.path()).expect("conn");
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('ada'), ('grace');
             CREATE TABLE events (id TEXT);",
        )
        .expect("foreign schema");
    }
    assert_open_refused(&db, "SQLite database of another application");

    // Another application that sets its own application_id, even without tables.
    let tagged = TempDb::new("foreign-id");
    {
        let conn = rusqlite::Connection::open(tagged.path()).expect("conn");
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x); DROP TABLE t;")
            .expect("foreign");
    }
    assert_open_refused(&tagged, "application_id 0x4d2");
}

#[test]
fn an_empty_file_or_empty_sqlite_database_is_adopted() {
    let empty = TempDb::new("empty");
    std::fs::write(empty.path(), b"").expect("write");
    SqliteStore::open(empty.path(), SqliteOptions::default()).expect("empty file is fine");

    let blank = TempDb::new("blank");
    rusqlite::Connection::open(blank.path())
        .expect("conn")
        .execute_batch("VACUUM")
        .expect("vacuum");
    SqliteStore::open(blank.path(), SqliteOptions::default()).expect("empty database is fine");
}

fn page_size(path: &Path) -> u32 {
    rusqlite::Connection::open(path)
        .expect("conn")
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page_size")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_file_gets_small_pages_and_a_file_made_with_others_keeps_them() {
    let db = TempDb::new("pages");
    let store = open(&db);
    store
        .insert(&[ev("msg_a", base_ms())])
        .await
        .expect("insert");
    store.close().await.expect("close");
    assert_eq!(page_size(db.path()), super::schema::PAGE_SIZE);

    // A store created by an earlier version, at SQLite's default page size.
    let conn = rusqlite::Connection::open(db.path()).expect("conn");
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; VACUUM; PRAGMA journal_mode = WAL",
    )
    .expect("to 4096");
    drop(conn);
    assert_eq!(page_size(db.path()), 4096);

    let store = open(&db);
    assert_eq!(
        store
            .insert(&[ev("msg_a", base_ms()), ev("msg_b", base_ms() + 1)])
            .await
            .expect("insert"),
        vec![false, true]
    );
    assert_eq!(
        store
            .scan(&Filter::default(), None, 10)
            .await
            .expect("scan")
            .len(),
        2
    );
    store.close().await.expect("close");
    assert_eq!(page_size(db.path()), 4096);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_count_once_in_events_and_rollups() {
    let db = TempDb::new("dups");
    let store = open(&db);
    let mut a = ev("a", base_ms());
    a.tags.insert("team".into(), "x".into());
    let b = ev("b", base_ms() + 10);
    let c = ev("c", base_ms() + 20);
    let mut a_again = a.clone();
    a_again.usage.output = 999_999; // same id, other content: still a duplicate
    assert_eq!(
        store
            .insert(&[a.clone(), b.clone(), a_again])
            .await
            .expect("insert"),
        vec![true, true, false]
    );
    assert_eq!(
        store.insert(&[b, c]).await.expect("insert"),
        vec![false, true]
    );
    assert_eq!(store.insert(&[]).await.expect("insert"), Vec::<bool>::new());

    assert_eq!(
        store
            .scan(&Filter::default(), None, 100)
            .await
            .expect("scan")
            .len(),
        3
    );
    let all = Filter::default();
    for source in [Source::Raw, Source::Rollup] {
        let t = agg(&store, &all, &[], None, source).await;
        let totals = t.values().next().expect("one row");
        assert_eq!((totals.requests, totals.output), (3, 60), "{source:?}");
        let tagged = agg(
            &store,
            &all,
            &[Dimension::Tag("team".into())],
            Some(3600),
            source,
        )
        .await;
        let x = tagged
            .iter()
            .find(|((g, _), _)| g[0].as_deref() == Some("x"))
            .expect("team x");
        assert_eq!(x.1.requests, 1, "{source:?}");
    }
    let conn = rusqlite::Connection::open(db.path()).expect("conn");
    let tagged_requests: i64 = conn
        .query_row(
            "SELECT SUM(requests) FROM rollup_tags WHERE key = 'team'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(tagged_requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_an_empty_user_id_without_writing_anything() {
    let db = TempDb::new("empty-user");
    let store = open(&db);
    let mut bad = ev("bad", base_ms());
    bad.user_id = Some(String::new());
    let err = store
        .insert(&[ev("good", base_ms()), bad])
        .await
        .expect_err("empty user");
    assert!(
        matches!(&err, Error::InvalidArgument { field, .. } if field == "user_id"),
        "{err:?}"
    );
    assert!(
        store
            .scan(&Filter::default(), None, 10)
            .await
            .expect("scan")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_aggregates_follow_filter_semantics_exactly() {
    let db = TempDb::new("raw");
    let store = open(&db);
    let events = corpus(600, 11);
    for chunk in events.chunks(97) {
        store.insert(chunk).await.expect("insert");
    }
    let stored: Vec<UsageEvent> = store
        .scan(&Filter::default(), None, 10_000)
        .await
        .expect("scan");
    assert_eq!(stored.len(), events.len());
    let range = |s: i64, e: i64| {
        Some(TimeRange {
            start: at(BASE) + Duration::milliseconds(s),
            end: at(BASE) + Duration::milliseconds(e),
        })
    };
    let ragged = TimeRange {
        start: at(BASE) + Duration::nanoseconds(5 * HOUR * 1_000_000 + 123_456_789),
        end: at(BASE) + Duration::nanoseconds(40 * HOUR * 1_000_000 + 999_999_999),
    };
    let filters = vec![
        Filter::default(),
        Filter {
            range: Some(ragged),
            ..Default::default()
        },
        Filter {
            range: range(HOUR + 17, 30 * HOUR - 3),
            user_id: Some("u2".into()),
            ..Default::default()
        },
        Filter {
            model: Some("claude-a-resolved".into()),
            ..Default::default()
        },
        Filter {
            provider: Some("openai".into()),
            status: Some(Status::Error),
            ..Default::default()
        },
        Filter {
            tags: [("team".to_owned(), "b".to_owned())].into(),
            ..Default::default()
        },
        Filter {
            tags: [
                ("team".to_owned(), "b".to_owned()),
                ("workflow".to_owned(), "summarise".to_owned()),
            ]
            .into(),
            user_id: Some("u1".into()),
            ..Default::default()
        },
        Filter {
            user_id: Some(String::new()),
            ..Default::default()
        },
    ];
    for f in &filters {
        for dims in dims_sets() {
            for grain in [None, Some(1), Some(60), Some(900), Some(3600), Some(86_400)] {
                let got = agg(&store, f, &dims, grain, Source::Raw).await;
                assert_eq!(
                    got,
                    expected(&stored, f, &dims, grain),
                    "filter {f:?} dims {dims:?} grain {grain:?}"
                );
            }
        }
    }
    // Latencies: every sample, in its group.
    let req = AggregateRequest {
        filter: Filter::default(),
        group_by: vec![Dimension::Tag("team".into())],
        grain_secs: Some(86_400),
        source: Source::Raw,
    };
    let lat = store.latencies(&req).await.expect("latencies");
    assert_eq!(
        lat.len(),
        stored.iter().filter(|e| e.latency_ms.is_some()).count()
    );
    let sum: u64 = lat.iter().map(|l| l.latency_ms).sum();
    assert_eq!(sum, stored.iter().filter_map(|e| e.latency_ms).sum::<u64>());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_equal_raw() {
    let db = TempDb::new("rollups");
    let store = open(&db);
    let events = corpus(800, 23);
    for chunk in events.chunks(64) {
        store.insert(chunk).await.expect("insert");
    }
    check_rollups_match_raw(&store).await;
    assert!(
        usage_core::query::engine::verify_rollups(&store, None)
            .await
            .expect("verify")
            .is_empty()
    );
}

async fn check_rollups_match_raw(store: &SqliteStore) {
    let hours = |s: i64, e: i64| {
        Some(TimeRange {
            start: at(BASE) + Duration::hours(s),
            end: at(BASE) + Duration::hours(e),
        })
    };
    let ranges = [
        None,
        hours(0, 48),
        hours(5, 50),
        hours(26, 30),
        hours(-3, 80),
    ];
    let mut filters = Vec::new();
    for range in ranges {
        filters.push(Filter {
            range,
            ..Default::default()
        });
        filters.push(Filter {
            range,
            user_id: Some("u1".into()),
            ..Default::default()
        });
        filters.push(Filter {
            range,
            tags: [("team".to_owned(), "a".to_owned())].into(),
            ..Default::default()
        });
        filters.push(Filter {
            range,
            model: Some("gpt-x".into()),
            status: Some(Status::Success),
            ..Default::default()
        });
    }
    for f in &filters {
        for dims in dims_sets() {
            let mut all = f.dimensions();
            all.extend(dims.iter().cloned());
            if !usage_core::store::rollup_can_serve(&all) {
                continue;
            }
            for grain in [None, Some(3600), Some(7200), Some(86_400), Some(7 * 86_400)] {
                // A rollup grouped by a tag the filter leaves open holds only tagged events;
                // the engine derives the untagged group (see `rollup_can_serve`).
                let open = dims
                    .iter()
                    .position(|d| matches!(d, Dimension::Tag(k) if !f.tags.contains_key(k)));
                let mut raw = agg(store, f, &dims, grain, Source::Raw).await;
                raw.retain(|(g, _), _| open.is_none_or(|i| g[i].is_some()));
                let rolled = agg(store, f, &dims, grain, Source::Rollup).await;
                assert_eq!(rolled, raw, "filter {f:?} dims {dims:?} grain {grain:?}");
                for d in [
                    Dimension::User,
                    Dimension::Tag("team".into()),
                    Dimension::Model,
                ] {
                    let mut with = all.clone();
                    with.push(d.clone());
                    if !usage_core::store::rollup_can_serve(&with) {
                        continue;
                    }
                    let req = |source| AggregateRequest {
                        filter: f.clone(),
                        group_by: dims.clone(),
                        grain_secs: grain,
                        source,
                    };
                    let mut raw = store
                        .distinct(&req(Source::Raw), &d)
                        .await
                        .expect("distinct raw");
                    raw.retain(|r| open.is_none_or(|i| r.group[i].is_some()));
                    let rolled = store
                        .distinct(&req(Source::Rollup), &d)
                        .await
                        .expect("distinct rollup");
                    assert_eq!(
                        rolled, raw,
                        "distinct {d:?} filter {f:?} dims {dims:?} grain {grain:?}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollup_requests_the_rollups_cannot_serve_are_refused() {
    let store = SqliteStore::open_in_memory().expect("memory");
    let req = AggregateRequest {
        filter: Filter::default(),
        group_by: vec![Dimension::Model, Dimension::Tag("team".into())],
        grain_secs: None,
        source: Source::Rollup,
    };
    assert!(matches!(
        store.aggregate(&req).await,
        Err(Error::InvalidArgument { .. })
    ));
    let req = AggregateRequest {
        group_by: vec![],
        grain_secs: Some(900),
        ..req
    };
    assert!(matches!(
        store.aggregate(&req).await,
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_pages_in_timestamp_then_id_order() {
    let store = SqliteStore::open_in_memory().expect("memory");
    let mut events = Vec::new();
    for i in 0..25 {
        // Several events per millisecond, inserted out of order.
        let mut e = ev(&format!("id-{:02}", (i * 7) % 25), base_ms() + (i % 4));
        if i % 3 == 0 {
            e.tags.insert("team".into(), "a".into());
        }
        events.push(e);
    }
    store.insert(&events).await.expect("insert");
    for filter in [
        Filter::default(),
        Filter {
            tags: [("team".to_owned(), "a".to_owned())].into(),
            ..Default::default()
        },
    ] {
        let mut want: Vec<UsageEvent> = events
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect();
        want.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        let mut got = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = store.scan(&filter, after.as_ref(), 4).await.expect("scan");
            let Some(last) = page.last() else { break };
            after = Some(Cursor::after(last));
            got.extend(page);
        }
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_and_many_tasks_share_one_file() {
    let db = TempDb::new("concurrent");
    let stores = [open(&db), open(&db)];
    let writers = 4;
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = stores[w % 2].clone();
        handles.push(tokio::spawn(async move {
            let mut inserted = 0u64;
            for batch in 0..40 {
                // Half the ids are shared with the neighbouring writer: only one may win.
                let events: Vec<UsageEvent> = (0..10)
                    .map(|i| {
                        let owner = if i % 2 == 0 { w } else { (w + 1) % writers };
                        let mut e = ev(
                            &format!("w{owner}-b{batch}-i{i}"),
                            base_ms() + (batch * 60_000) as i64,
                        );
                        e.tags.insert("writer".into(), owner.to_string());
                        e
                    })
                    .collect();
                let flags = store.insert(&events).await.expect("insert");
                inserted += flags.iter().filter(|f| **f).count() as u64;
            }
            inserted
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.expect("join");
    }
    let unique = (writers * 40 * 10) as u64;
    assert_eq!(total, unique, "every event inserted exactly once");
    let check = open(&db);
    let rows = check
        .scan(&Filter::default(), None, 100_000)
        .await
        .expect("scan");
    let ids: BTreeSet<_> = rows.iter().map(|e| e.id.clone()).collect();
    assert_eq!((rows.len() as u64, ids.len() as u64), (unique, unique));
    for source in [Source::Raw, Source::Rollup] {
        let t = agg(&check, &Filter::default(), &[], None, source).await;
        assert_eq!(t.values().next().map(|t| t.requests), Some(unique));
        let by_writer = agg(
            &check,
            &Filter::default(),
            &[Dimension::Tag("writer".into())],
            None,
            source,
        )
        .await;
        assert_eq!(by_writer.values().map(|t| t.requests).sum::<u64>(), unique);
    }
    for s in &stores {
        s.close().await.expect("close");
    }
}

fn cancel_on_first_report() -> (RunOptions, CancelToken) {
    let token = CancelToken::new();
    let t = token.clone();
    let opts = RunOptions {
        batch_size: Some(10),
        progress: Some(Arc::new(move |_| t.cancel())),
        cancel: Some(token.clone()),
    };
    (opts, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_keeps_rollups_and_moves_the_horizon() {
    let db = TempDb::new("purge");
    let store = open(&db);
    let events = corpus(300, 5);
    store.insert(&events).await.expect("insert");
    let all = Filter::default();
    let dims = [Dimension::User, Dimension::Model];
    let before_rollup = agg(&store, &all, &dims, Some(3600), Source::Rollup).await;
    let before_tags = agg(
        &store,
        &all,
        &[Dimension::Tag("team".into())],
        Some(86_400),
        Source::Rollup,
    )
    .await;

    let cut = at(BASE) + Duration::hours(30);
    let err = store
        .purge(cut + Duration::minutes(1), &RunOptions::default())
        .await
        .expect_err("not a whole hour");
    assert!(matches!(err, Error::InvalidArgument { .. }));

    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = reports.clone();
    let opts = RunOptions {
        batch_size: Some(25),
        progress: Some(Arc::new(move |p| r.lock().expect("lock").push(p))),
        cancel: None,
    };
    let run = store.purge(cut, &opts).await.expect("purge");
    let gone = events.iter().filter(|e| e.timestamp < cut).count() as u64;
    assert_eq!(
        (run.kind, run.outcome, run.rows),
        (RunKind::Purge, RunOutcome::Succeeded, gone)
    );
    let reports = reports.lock().expect("lock").clone();
    assert!(
        reports.len() >= 2 && reports.last().map(|p| (p.done, p.total)) == Some((gone, Some(gone)))
    );
    assert_eq!(store.purged_before().await.expect("horizon"), Some(cut));
    let left = store.scan(&all, None, 10_000).await.expect("scan");
    assert!(
        left.iter().all(|e| e.timestamp >= cut) && left.len() as u64 == events.len() as u64 - gone
    );

    assert_eq!(
        agg(&store, &all, &dims, Some(3600), Source::Rollup).await,
        before_rollup
    );
    // A rebuild of all time starts at the horizon, so the history before it survives.
    let rebuilt = store
        .rebuild_rollups(None, &RunOptions::default())
        .await
        .expect("rebuild");
    assert_eq!(rebuilt.outcome, RunOutcome::Succeeded);
    assert!(
        rebuilt
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("purge horizon"),
        "{rebuilt:?}"
    );
    assert_eq!(
        agg(&store, &all, &dims, Some(3600), Source::Rollup).await,
        before_rollup
    );
    assert_eq!(
        agg(
            &store,
            &all,
            &[Dimension::Tag("team".into())],
            Some(86_400),
            Source::Rollup
        )
        .await,
        before_tags
    );
    assert!(
        usage_core::query::engine::verify_rollups(&store, None)
            .await
            .expect("verify")
            .is_empty()
    );

    // An earlier purge never moves the horizon back.
    store
        .purge(cut - Duration::hours(5), &RunOptions::default())
        .await
        .expect("purge");
    assert_eq!(store.purged_before().await.expect("horizon"), Some(cut));

    let runs = store.runs(10).await.expect("runs");
    let kinds: Vec<RunKind> = runs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![RunKind::Purge, RunKind::RebuildRollups, RunKind::Purge]
    );
    assert!(runs.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(runs[2], run);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_from_the_progress_callback_changes_nothing() {
    let db = TempDb::new("cancel");
    let store = open(&db);
    store.insert(&corpus(200, 9)).await.expect("insert");
    // Damage one hour's cells, so that a completed rebuild would visibly change something.
    rusqlite::Connection::open(db.path())
        .expect("conn")
        .execute("UPDATE rollup_events SET requests = requests + 100 WHERE hour_ms = (SELECT MIN(hour_ms) FROM rollup_events)", [])
        .expect("damage");
    let snapshot = dump(db.path());

    let (opts, _) = cancel_on_first_report();
    let run = store
        .purge(at(BASE) + Duration::hours(48), &opts)
        .await
        .expect("purge");
    assert_eq!(run.outcome, RunOutcome::Cancelled);
    assert_eq!(store.purged_before().await.expect("horizon"), None);

    let (opts, _) = cancel_on_first_report();
    let run = store.rebuild_rollups(None, &opts).await.expect("rebuild");
    assert_eq!(run.outcome, RunOutcome::Cancelled);

    let mut catalog = PriceCatalog::builtin().clone();
    catalog.set_version("cancel-test");
    let (opts, _) = cancel_on_first_report();
    let (_, run) = store
        .reprice(None, &catalog, false, &opts)
        .await
        .expect("reprice");
    assert_eq!(run.outcome, RunOutcome::Cancelled);

    // A token cancelled before the run starts stops it before the first batch.
    let token = CancelToken::new();
    token.cancel();
    let opts = RunOptions {
        cancel: Some(token),
        ..Default::default()
    };
    assert_eq!(
        store
            .purge(at(BASE) + Duration::hours(72), &opts)
            .await
            .expect("purge")
            .outcome,
        RunOutcome::Cancelled
    );

    assert_eq!(
        dump(db.path()),
        snapshot,
        "a cancelled run left changes behind"
    );
    let outcomes: Vec<RunOutcome> = store
        .runs(10)
        .await
        .expect("runs")
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, vec![RunOutcome::Cancelled; 4]);

    // The same rebuild, not cancelled, repairs the damaged cell.
    assert!(
        !usage_core::query::engine::verify_rollups(&store, None)
            .await
            .expect("verify")
            .is_empty()
    );
    store
        .rebuild_rollups(
            None,
            &RunOptions {
                batch_size: Some(7),
                ..Default::default()
            },
        )
        .await
        .expect("rebuild");
    assert!(
        usage_core::query::engine::verify_rollups(&store, None)
            .await
            .expect("verify")
            .is_empty()
    );
    check_rollups_match_raw(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_needs_whole_hours() {
    let store = SqliteStore::open_in_memory().expect("memory");
    let r = TimeRange {
        start: at(BASE) + Duration::minutes(30),
        end: at(BASE) + Duration::hours(2),
    };
    let err = store
        .rebuild_rollups(Some(r), &RunOptions::default())
        .await
        .expect_err("ragged");
    assert!(
        matches!(err, Error::InvalidArgument { ref field, .. } if field == "range.start"),
        "{err:?}"
    );
    assert!(store.runs(10).await.expect("runs").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reprice_dry_run_writes_nothing_and_the_real_run_matches_it() {
    let db = TempDb::new("reprice");
    let store = open(&db);
    let ts = at("2026-06-01T10:15:00Z").timestamp_millis();
    let mut wrong = ev("wrong-price", ts);
    wrong.model = "claude-sonnet-4-5-20250929".into();
    wrong.tags.insert("team".into(), "a".into());
    let mut unpriced = ev("was-unpriced", ts + 1000);
    unpriced.model = "claude-sonnet-4-5".into();
    unpriced.cost = None;
    unpriced.cost_source = CostSource::Unpriced;
    unpriced.unpriced_reason = Some("unknown then".into());
    let mut unknown = ev("still-unknown", ts + 2000);
    unknown.model = "no-such-model-anywhere".into();
    unknown.cost = None;
    unknown.cost_source = CostSource::Unpriced;
    let mut provided = ev("provided", ts + 3000);
    provided.model = "claude-sonnet-4-5".into();
    provided.cost_source = CostSource::Provided;
    let events = vec![wrong.clone(), unpriced.clone(), unknown.clone(), provided];
    store.insert(&events).await.expect("insert");
    let catalog = PriceCatalog::builtin();
    let snapshot = dump(db.path());

    let (dry, run) = store
        .reprice(None, catalog, true, &RunOptions::default())
        .await
        .expect("dry run");
    assert_eq!(run.outcome, RunOutcome::DryRun);
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
    let new_wrong = wrong.repriced(catalog).expect("reprices");
    let new_unpriced = unpriced.repriced(catalog).expect("prices");
    let old_total: Usd = events.iter().map(UsageEvent::total_cost).sum();
    assert_eq!(dry.old_total, old_total);
    assert_eq!(
        dry.new_total,
        old_total - wrong.total_cost() + new_wrong.total_cost() + new_unpriced.total_cost()
    );
    assert_eq!(dump(db.path()), snapshot, "a dry run wrote to the database");

    let (real, run) = store
        .reprice(
            None,
            catalog,
            false,
            &RunOptions {
                batch_size: Some(3),
                ..Default::default()
            },
        )
        .await
        .expect("reprice");
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(
        real,
        usage_core::store::RepriceReport {
            dry_run: false,
            ..dry.clone()
        }
    );
    assert_eq!(
        store.get(&wrong.id).await.expect("get"),
        Some(new_wrong.clone())
    );
    assert_eq!(
        store.get(&unpriced.id).await.expect("get"),
        Some(new_unpriced.clone())
    );
    assert_eq!(store.get(&unknown.id).await.expect("get"), Some(unknown));
    assert!(
        usage_core::query::engine::verify_rollups(&store, None)
            .await
            .expect("verify")
            .is_empty()
    );
    // The resolved model moved the events to another model's cells; no empty cell is left.
    let by_model = agg(
        &store,
        &Filter::default(),
        &[Dimension::Model],
        None,
        Source::Rollup,
    )
    .await;
    let models: Vec<Option<String>> = by_model.keys().map(|(g, _)| g[0].clone()).collect();
    assert_eq!(
        models,
        vec![
            Some("claude-sonnet-4-5".into()),
            Some("no-such-model-anywhere".into())
        ]
    );
    let conn = rusqlite::Connection::open(db.path()).expect("conn");
    let empty: i64 = conn
        .query_row("SELECT (SELECT COUNT(*) FROM rollup_events WHERE requests = 0) + (SELECT COUNT(*) FROM rollup_tags WHERE requests = 0)", [], |r| r.get(0))
        .expect("count");
    assert_eq!(empty, 0);

    // Nothing left to change.
    let (again, _) = store
        .reprice(None, catalog, false, &RunOptions::default())
        .await
        .expect("reprice");
    assert_eq!((again.changed, again.old_total), (0, real.new_total));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_store_refuses_further_calls() {
    let db = TempDb::new("closed");
    let store = open(&db);
    store.insert(&[ev("x", base_ms())]).await.expect("insert");
    let clone = store.clone();
    store.close().await.expect("close");
    store.close().await.expect("closing twice is harmless");
    assert!(
        !db.side_files_exist(),
        "close checkpoints and removes the WAL"
    );
    let err = clone
        .insert(&[ev("y", base_ms())])
        .await
        .expect_err("closed");
    assert!(
        matches!(&err, Error::Store { backend: "sqlite", operation, .. } if operation == "insert"),
        "{err:?}"
    );
    assert!(err.to_string().contains("closed"), "{err}");
    assert!(clone.get(&EventId::new("x").expect("id")).await.is_err());
    assert!(clone.runs(1).await.is_err());
    // Reopening finds the data.
    let again = open(&db);
    assert!(
        again
            .get(&EventId::new("x").expect("id"))
            .await
            .expect("get")
            .is_some()
    );
}

#[test]
fn works_without_a_tokio_runtime_in_memory() {
    let store = SqliteStore::open_in_memory().expect("memory");
    let fut = async {
        store.insert(&[ev("a", base_ms())]).await.expect("insert");
        store
            .aggregate(&AggregateRequest {
                filter: Filter::default(),
                group_by: vec![Dimension::User],
                grain_secs: Some(3600),
                source: Source::Rollup,
            })
            .await
            .expect("aggregate")
    };
    let rows = block_on(fut);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].group, vec![Some("u1".to_owned())]);
}

/// A minimal executor: without a tokio runtime the store runs its work inline, so its futures
/// complete on the first poll.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Insert throughput against a store already holding a million events. Run with
/// `cargo test -p usage-store --release --lib sqlite::tests::insert_benchmark -- --ignored --nocapture`.
/// Ids are time-ordered like the tracker's generated `evt_<uuid v7>`; set
/// `USAGE_BENCH_RANDOM_IDS=1` for random provider-style ids, the worst case for the id index.
/// `USAGE_BENCH_FILL` sets how many thousand events to load first (default 1,000).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: slow, run on demand in release mode"]
async fn insert_benchmark() {
    let db = TempDb::new("bench");
    let store = open(&db);
    let random_ids = std::env::var("USAGE_BENCH_RANDOM_IDS").is_ok_and(|v| v == "1");
    let fill: usize = std::env::var("USAGE_BENCH_FILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let models = [
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gpt-5",
        "gpt-5-mini",
        "gemini-2.5-pro",
    ];
    let mut seq = 0u64;
    let mut make = |n: usize| -> Vec<UsageEvent> {
        (0..n)
            .map(|_| {
                seq += 1;
                let id = if random_ids {
                    format!(
                        "msg_{:016x}{:08x}",
                        seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        seq
                    )
                } else {
                    format!("evt_{seq:032x}")
                };
                let mut e = ev(&id, base_ms() + (seq as i64) * 2_500);
                e.user_id = Some(users[(seq % 200) as usize].clone());
                e.model = models[(seq % 5) as usize].into();
                e.tags.insert("workflow".into(), format!("wf-{}", seq % 7));
                e.tags.insert(
                    "env".into(),
                    if seq.is_multiple_of(3) {
                        "prod"
                    } else {
                        "staging"
                    }
                    .into(),
                );
                e
            })
            .collect()
    };
    let t = std::time::Instant::now();
    for _ in 0..fill {
        store.insert(&make(1_000)).await.expect("insert");
    }
    eprintln!("loaded {} events in {:?}", fill * 1_000, t.elapsed());

    let batches: Vec<Vec<UsageEvent>> = (0..100).map(|_| make(1_000)).collect();
    let (t, cpu) = (std::time::Instant::now(), cpu_secs());
    for b in &batches {
        store.insert(b).await.expect("insert");
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
    eprintln!(
        "batched: {:.0} events/s wall clock, {:.0} events/s per CPU second (100 calls of 1,000)",
        100_000.0 / secs,
        100_000.0 / cpu
    );

    let singles: Vec<Vec<UsageEvent>> = (0..2_000).map(|_| make(1)).collect();
    let mut times = Vec::with_capacity(singles.len());
    for s in &singles {
        let t = std::time::Instant::now();
        store.insert(s).await.expect("insert");
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "single insert: median {:?}, p99 {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );

    let req = AggregateRequest {
        filter: Filter::default(),
        group_by: vec![Dimension::User, Dimension::Model],
        grain_secs: Some(86_400),
        source: Source::Rollup,
    };
    let t = std::time::Instant::now();
    let rows = store.aggregate(&req).await.expect("aggregate");
    eprintln!(
        "rollup aggregate by user, model, day over all time: {} rows in {:?}",
        rows.len(),
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let rows = store
        .aggregate(&AggregateRequest {
            source: Source::Raw,
            ..req
        })
        .await
        .expect("aggregate");
    eprintln!(
        "raw aggregate, same: {} rows in {:?}",
        rows.len(),
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let run = store
        .rebuild_rollups(None, &RunOptions::default())
        .await
        .expect("rebuild");
    eprintln!(
        "rebuild of all rollups ({} events) in {:?}",
        run.rows,
        t.elapsed()
    );
    store.close().await.expect("close");
}

/// CPU time of this process (user + system), from /proc: the machine running the tests may be
/// busy with other work, which distorts wall-clock rates.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name, in ticks.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// A batch's ids, looked up in one statement whatever its size (one event, a few, many): ids
/// stored in either id table are duplicates, so is a repeat inside the batch (the first one
/// wins), and an id whose hash points at another event (a collision, forged here) is not.
#[test]
fn a_batch_finds_stored_and_repeated_ids_and_no_shared_hash() {
    for n in [1, 2, 3, 6, 31, 96] {
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        super::schema::configure(&conn, &SqliteOptions::default(), true).expect("configure");
        super::schema::migrate(&mut conn, ":memory:").expect("migrate");
        let stored: Vec<UsageEvent> = (0..10)
            .map(|i| ev(&format!("old_{i}"), base_ms() + i))
            .collect();
        super::write::insert(&mut conn, &stored[..5]).expect("insert");
        super::ids::merge(&conn).expect("merge");
        super::write::insert(&mut conn, &stored[5..]).expect("insert");
        // "collide" now shares its hash with old_0's row.
        conn.execute(
            "INSERT INTO event_ids_recent (h, seq) SELECT ?1, seq FROM events WHERE id = 'old_0'",
            [super::ids::hash("collide")],
        )
        .expect("forge");
        let mut ids: Vec<String> = vec![
            "old_1".into(),   // in event_ids
            "old_7".into(),   // in event_ids_recent
            "collide".into(), // a hash match that is another event
            "new_a".into(),
            "new_a".into(), // repeated in the batch
            "old_0".into(),
        ];
        ids.extend((ids.len()..n).map(|i| format!("new_{i}")));
        ids.truncate(n);
        let batch: Vec<UsageEvent> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ev(id, base_ms() + 100 + i as i64))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let want: Vec<bool> = ids
            .iter()
            .map(|id| !id.starts_with("old_") && seen.insert(id.clone()))
            .collect();
        assert_eq!(
            super::write::insert(&mut conn, &batch).expect("insert"),
            want,
            "batch of {n}"
        );
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 10 + want.iter().filter(|w| **w).count() as i64);
        // The collided id is stored, and a second try finds it.
        assert_eq!(
            super::write::insert(&mut conn, &batch).expect("again"),
            vec![false; n],
            "batch of {n}, again"
        );
    }
}

/// Recent id hashes merged into `event_ids` still make duplicates duplicates; a merge is due
/// once the recent ones pass their share of the store, and only checked now and then.
#[test]
fn merged_id_hashes_still_catch_duplicates() {
    let mut conn = rusqlite::Connection::open_in_memory().expect("open");
    super::schema::configure(&conn, &SqliteOptions::default(), true).expect("configure");
    super::schema::migrate(&mut conn, ":memory:").expect("migrate");
    let count = |conn: &rusqlite::Connection, table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    let events: Vec<UsageEvent> = (0..4)
        .map(|i| ev(&format!("msg_{i}"), base_ms() + i))
        .collect();
    assert_eq!(
        super::write::insert(&mut conn, &events[..2]).expect("insert"),
        vec![true, true]
    );
    super::ids::merge(&conn).expect("merge");
    assert_eq!(
        (count(&conn, "event_ids"), count(&conn, "event_ids_recent")),
        (2, 0)
    );
    assert_eq!(
        super::write::insert(&mut conn, &events).expect("insert"),
        vec![false, false, true, true]
    );
    assert_eq!(
        (count(&conn, "event_ids"), count(&conn, "event_ids_recent")),
        (2, 2)
    );

    // 60,000 recent hashes (50,000 is the least that is merged), spread over the hash space, on
    // a small store: a batch that does not cross a multiple of 4,096 sequence numbers leaves
    // them, and so does a small one that does (a single record never pays for a merge); a
    // large one that does moves one sixteenth of the hash space, the next one the next.
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 59998)
         INSERT INTO event_ids_recent (h, seq)
         SELECT (i - 30000) * 307445734561825, 1000000 + i FROM n",
    )
    .expect("fill");
    super::ids::merge_if_due(&conn, 4_097, 8_000).expect("not due");
    assert_eq!(count(&conn, "event_ids_recent"), 60_000);
    super::ids::merge_if_due(&conn, 4_090, 4_100).expect("small");
    assert_eq!(count(&conn, "event_ids_recent"), 60_000);
    let mut moved = Vec::new();
    for _ in 0..2 {
        let before = count(&conn, "event_ids");
        super::ids::merge_if_due(&conn, 4_000, 4_400).expect("due");
        moved.push(count(&conn, "event_ids") - before);
    }
    assert!(
        moved.iter().all(|&n| (3_300..=4_200).contains(&n)),
        "each merge moves about 1/16 of 60,000: {moved:?}"
    );
    let lowest: i64 = conn
        .query_row(
            "SELECT MIN(h) FROM event_ids_recent WHERE seq > 4",
            [],
            |r| r.get(0),
        )
        .expect("min");
    assert!(
        lowest >= i64::MIN / 8 * 6,
        "the two lowest slices went first"
    );
    assert_eq!(
        count(&conn, "event_ids") + count(&conn, "event_ids_recent"),
        60_002
    );
    // Still duplicates, wherever their hashes are.
    assert_eq!(
        super::write::insert(&mut conn, &events).expect("insert"),
        vec![false; 4]
    );
}

/// A write runs in place on a multi-thread runtime (borrowing its batch) and on the blocking
/// pool under a current-thread one (with a copy): both store the same, duplicates included.
#[test]
fn inserts_in_place_and_on_the_blocking_pool_agree() {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for rt in [&multi, &current] {
        rt.block_on(async {
            let store = SqliteStore::open_in_memory().expect("memory");
            let a = ev("msg_a", base_ms());
            let b = ev("msg_b", base_ms() + 1);
            assert_eq!(
                store
                    .insert(&[a.clone(), b.clone(), a.clone()])
                    .await
                    .expect("insert"),
                vec![true, true, false]
            );
            assert_eq!(store.insert(&[b]).await.expect("insert"), vec![false]);
            assert_eq!(store.get(&a.id).await.expect("get"), Some(a));
            store.close().await.expect("close");
        });
    }
}

/// One user's rollup cells are read with a seek per period (the rollups have no per-user
/// index): hourly and daily, over a range or all time, the totals equal raw events'; a store
/// with no cells, or a range before them, gives nothing.
#[tokio::test]
async fn per_user_rollup_reads_agree_with_raw_events() {
    let store = SqliteStore::open_in_memory().expect("memory");
    let none = AggregateRequest {
        filter: Filter {
            user_id: Some("u2".into()),
            ..Default::default()
        },
        group_by: vec![Dimension::Model],
        grain_secs: Some(3_600),
        source: Source::Rollup,
    };
    assert!(store.aggregate(&none).await.expect("empty").is_empty());
    store.insert(&corpus(400, 11)).await.expect("insert");
    let days = TimeRange::new(at(BASE), at(BASE) + Duration::days(3)).expect("range");
    let before = TimeRange::new(at(BASE) - Duration::days(3), at(BASE)).expect("range");
    for (range, grain) in [
        (None, 3_600),
        (None, 86_400),
        (Some(days), 3_600),
        (Some(days), 86_400),
        (Some(before), 3_600),
    ] {
        for user in ["u1", "u2"] {
            let req = |source| AggregateRequest {
                filter: Filter {
                    range,
                    user_id: Some(user.into()),
                    ..Default::default()
                },
                group_by: vec![Dimension::Model],
                grain_secs: Some(grain),
                source,
            };
            let rolled = store.aggregate(&req(Source::Rollup)).await.expect("rollup");
            let raw = store.aggregate(&req(Source::Raw)).await.expect("raw");
            assert_eq!(rolled, raw, "{user} over {range:?} per {grain} s");
            assert_eq!(rolled.is_empty(), range == Some(before), "{user} {range:?}");
        }
    }
}
