//! Writing: the same id is stored once however it arrives (twice in a row, twice in one batch,
//! through the batched writer, from many tasks or handles at once), and every total counts it
//! once, whether the rollups or the raw events answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use usage_core::TokenUsage;
use usage_core::event::{NewEvent, UsageEvent};
use usage_core::query::{Dimension, Filter, Query, TimeRange};
use usage_core::store::{AggregateRequest, Source, Store};
use usage_store::{BatchOptions, Tracker, TrackerOptions};

use super::backend::Backend;
use super::check::Check;
use super::data::{Rng, all_events, at, random_event, sorted};
use super::oracle;

fn ev(id: &str, ts: &str, input: u64) -> NewEvent {
    NewEvent::new(
        "anthropic",
        "claude-haiku-4-5",
        TokenUsage {
            input,
            output: 100,
            ..Default::default()
        },
    )
    .id(id)
    .at(at(ts))
    .user("u1")
    .tag("workflow", "chat")
}

/// The stored events' totals answered four ways: all time (rollups only), a ragged range (raw
/// edges plus rollups), a tag filter grouped by model (raw only), and the store's own raw and
/// rollup aggregates over whole hours; each must equal the oracle.
pub async fn check_totals_every_way(
    c: &mut Check,
    label: &str,
    tracker: &Tracker,
    store: &dyn Store,
    expected: &[UsageEvent],
) {
    let all = oracle::totals(expected);
    let q = |filter: Filter, group_by: Vec<Dimension>| Query {
        filter,
        group_by,
        ..Default::default()
    };
    let res = tracker
        .query(&q(Filter::default(), vec![]))
        .await
        .expect("query all time");
    c.totals(
        format!("{label}: all time (rollups)"),
        &res.rows[0].totals,
        &all,
    );

    let ragged = TimeRange::new(
        at("2026-01-01T00:17:00.123Z"),
        at("2027-12-31T23:59:59.999Z"),
    )
    .expect("range");
    let res = tracker
        .query(&q(
            Filter {
                range: Some(ragged),
                ..Default::default()
            },
            vec![],
        ))
        .await
        .expect("query ragged");
    c.totals(
        format!("{label}: ragged range"),
        &res.rows[0].totals,
        &oracle::totals(expected.iter().filter(|e| ragged.contains(e.timestamp))),
    );

    let mut tags = BTreeMap::new();
    tags.insert("workflow".to_owned(), "chat".to_owned());
    let f = Filter {
        tags,
        ..Default::default()
    };
    let res = tracker
        .query(&q(f.clone(), vec![Dimension::Model]))
        .await
        .expect("query tag+model");
    let expect = oracle::grouped_totals(expected, &q(f, vec![Dimension::Model]));
    c.eq(
        format!("{label}: tag filter by model: groups"),
        res.rows.iter().map(|r| r.group.clone()).collect::<Vec<_>>(),
        expect.keys().map(|k| k.0.clone()).collect(),
    );
    for r in &res.rows {
        if let Some(t) = expect.get(&(r.group.clone(), None)) {
            c.totals(
                format!("{label}: tag filter by model {:?}", r.group),
                &r.totals,
                t,
            );
        }
    }

    let hours =
        TimeRange::new(at("2026-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z")).expect("range");
    for source in [Source::Raw, Source::Rollup] {
        let req = AggregateRequest {
            filter: Filter {
                range: Some(hours),
                ..Default::default()
            },
            group_by: vec![Dimension::User, Dimension::Tag("workflow".into())],
            grain_secs: None,
            source,
        };
        let rows = store.aggregate(&req).await.expect("aggregate");
        let expect = oracle::grouped_totals(
            expected,
            &Query {
                filter: req.filter.clone(),
                group_by: req.group_by.clone(),
                ..Default::default()
            },
        );
        let got: BTreeMap<_, _> = rows
            .iter()
            .map(|r| ((r.group.clone(), None), r.totals))
            .collect();
        c.eq(
            format!("{label}: store.aggregate({source:?}) by user, workflow: groups"),
            got.keys().collect::<Vec<_>>(),
            expect.keys().collect(),
        );
        for (k, t) in &expect {
            if let Some(g) = got.get(k) {
                c.totals(
                    format!("{label}: store.aggregate({source:?}) {:?}", k.0),
                    g,
                    t,
                );
            }
        }
    }
}

/// Recording an id a second time (even with other figures) is a duplicate and changes nothing.
pub async fn record_same_id_twice_counts_once(b: &Backend) {
    let mut c = Check::new(b.label(), "record_same_id_twice_counts_once");
    let t = b.tracker();
    let first = t
        .record(ev("dup-1", "2026-06-01T10:30:00.250Z", 1_000))
        .await
        .expect("first record");
    c.eq("first record is not a duplicate", first.duplicate, false);
    let again = t
        .record(ev("dup-1", "2026-06-01T10:30:00.250Z", 1_000))
        .await
        .expect("second record");
    c.eq("same id again is a duplicate", again.duplicate, true);
    let changed = t
        .record(ev("dup-1", "2026-06-02T11:00:00Z", 99_999))
        .await
        .expect("third record");
    c.eq(
        "same id with other figures is a duplicate",
        changed.duplicate,
        true,
    );
    let other = t
        .record(ev("dup-2", "2026-06-01T11:45:00Z", 500))
        .await
        .expect("other record");
    c.eq("another id is new", other.duplicate, false);

    let stored = all_events(&*b.store).await;
    c.eq(
        "stored ids",
        stored.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        vec!["dup-1".to_owned(), "dup-2".to_owned()],
    );
    c.eq(
        "the first write wins",
        stored.first().cloned(),
        Some(first.event.clone()),
    );
    let got = b.store.get(&first.event.id).await.expect("get");
    c.eq(
        "get returns the first write",
        got,
        Some(first.event.clone()),
    );
    check_totals_every_way(
        &mut c,
        "after duplicates",
        &t,
        &*b.store,
        &[first.event, other.event],
    )
    .await;
    c.verified("verify_rollups", t.verify_rollups(None).await);
    c.finish();
}

/// A batch holding an id twice, and a batch of ids already stored.
pub async fn batch_with_repeated_ids_counts_once(b: &Backend) {
    let mut c = Check::new(b.label(), "batch_with_repeated_ids_counts_once");
    let t = b.tracker();
    let batch = vec![
        ev("b-a", "2026-06-01T10:00:00Z", 10),
        ev("b-b", "2026-06-01T10:10:00Z", 20),
        ev("b-a", "2026-06-01T10:00:00Z", 10),
        ev("b-c", "2026-06-01T12:00:00.5Z", 30),
        ev("b-b", "2026-06-01T10:10:00Z", 20),
    ];
    let rec = t.record_many(batch).await.expect("record_many");
    c.eq(
        "duplicate flags within one batch",
        rec.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        vec![false, false, true, false, true],
    );
    let again = t
        .record_many(vec![
            ev("b-c", "2026-06-01T12:00:00.5Z", 30),
            ev("b-a", "2026-06-01T10:00:00Z", 10),
            ev("b-d", "2026-06-01T13:00:00Z", 40),
        ])
        .await
        .expect("record_many again");
    c.eq(
        "duplicate flags against stored ids",
        again.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        vec![true, true, false],
    );

    let unique: Vec<UsageEvent> = vec![
        rec[0].event.clone(),
        rec[1].event.clone(),
        rec[3].event.clone(),
        again[2].event.clone(),
    ];
    let stored = all_events(&*b.store).await;
    c.events("stored events", &stored, &sorted(unique.clone()));
    check_totals_every_way(&mut c, "after batches", &t, &*b.store, &unique).await;
    c.verified("verify_rollups", t.verify_rollups(None).await);
    c.finish();
}

/// The batched writer stores each id once: repeated in the queue, or already recorded.
pub async fn enqueue_and_flush_count_duplicates_once(b: &Backend) {
    let mut c = Check::new(b.label(), "enqueue_and_flush_count_duplicates_once");
    let opts = TrackerOptions {
        batch: BatchOptions {
            max_batch: 1_000,
            flush_interval: Duration::from_secs(3_600),
            max_queue: 10_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let t = b.tracker_with(opts);
    let recorded = t
        .record(ev("q-0", "2026-06-03T09:00:00Z", 7))
        .await
        .expect("record");
    let mut kept = vec![recorded.event];
    for i in 0..50 {
        let e = t
            .enqueue(ev(
                &format!("q-{}", i % 20),
                "2026-06-03T09:30:00Z",
                100 + (i % 20),
            ))
            .await
            .expect("enqueue");
        if (1..20).contains(&i) {
            kept.push(e);
        }
    }
    t.flush().await.expect("flush");
    let stored = all_events(&*b.store).await;
    c.eq("stored event count after flush", stored.len(), 20);
    c.events("stored events", &stored, &sorted(kept.clone()));
    check_totals_every_way(&mut c, "after enqueue", &t, &*b.store, &kept).await;
    c.verified("verify_rollups", t.verify_rollups(None).await);
    c.finish();
}

/// Task `task`'s `i`th event: every fifth id is shared by all tasks (with identical content).
fn task_event(task: usize, i: usize) -> NewEvent {
    let shared = i.is_multiple_of(5);
    let (id, seed) = if shared {
        (format!("shared-{i}"), 10_000 + i as u64)
    } else {
        (format!("t{task}-{i}"), (task * 1_000 + i) as u64)
    };
    let mut rng = Rng::new(seed);
    let ts = at("2026-09-01T00:00:00Z")
        + chrono::Duration::milliseconds(rng.below(3 * 86_400_000) as i64);
    random_event(&mut rng, id, ts)
}

async fn write_tasks(
    trackers: &[Tracker],
    tasks: usize,
    per_task: usize,
) -> Vec<Vec<(String, bool, UsageEvent)>> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let t = trackers[task % trackers.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let events: Vec<NewEvent> = (0..per_task).map(|i| task_event(task, i)).collect();
            if task % 2 == 0 {
                for e in events {
                    let r = t.record(e).await.expect("concurrent record");
                    out.push((r.event.id.to_string(), r.duplicate, r.event));
                }
            } else {
                for chunk in events.chunks(25) {
                    for r in t
                        .record_many(chunk.to_vec())
                        .await
                        .expect("concurrent record_many")
                    {
                        out.push((r.event.id.to_string(), r.duplicate, r.event));
                    }
                }
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.expect("writer task"));
    }
    all
}

fn check_concurrent(c: &mut Check, results: &[Vec<(String, bool, UsageEvent)>]) -> Vec<UsageEvent> {
    let mut firsts: BTreeMap<String, usize> = BTreeMap::new();
    let mut unique: BTreeMap<String, UsageEvent> = BTreeMap::new();
    for r in results.iter().flatten() {
        if !r.1 {
            *firsts.entry(r.0.clone()).or_default() += 1;
        }
        unique.entry(r.0.clone()).or_insert_with(|| r.2.clone());
    }
    let ids: BTreeSet<&String> = unique.keys().collect();
    let wrong: Vec<_> = ids
        .iter()
        .filter(|id| firsts.get(**id).copied().unwrap_or(0) != 1)
        .collect();
    c.that(
        format!(
            "each id reported new exactly once; wrong for {} ids, e.g. {:?}",
            wrong.len(),
            wrong.iter().take(5).collect::<Vec<_>>()
        ),
        wrong.is_empty(),
    );
    unique.into_values().collect()
}

/// 8 tasks × 200 events at once, a fifth of the ids shared by all tasks.
pub async fn concurrent_writers_store_each_event_once(b: &Backend) {
    let mut c = Check::new(b.label(), "concurrent_writers_store_each_event_once");
    let t = b.tracker();
    let results = write_tasks(std::slice::from_ref(&t), 8, 200).await;
    let unique = check_concurrent(&mut c, &results);
    c.eq("unique events", unique.len(), 8 * 160 + 40);
    let stored = all_events(&*b.store).await;
    c.eq("stored event count", stored.len(), unique.len());
    c.events("stored events", &stored, &sorted(unique.clone()));
    check_totals_every_way(&mut c, "after concurrent writes", &t, &*b.store, &unique).await;
    c.verified("verify_rollups", t.verify_rollups(None).await);
    c.finish();
}

/// Two independent handles on one database (two processes, two app servers) writing the same
/// and different ids at once.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub async fn two_handles_on_one_database(b: &Backend) {
    let mut c = Check::new(b.label(), "two_handles_on_one_database");
    let other: Arc<dyn Store> = b
        .second_handle()
        .await
        .expect("this backend can open a second handle");
    let t1 = b.tracker();
    let t2 = Tracker::with_store(other.clone(), TrackerOptions::default());
    let results = write_tasks(&[t1.clone(), t2.clone()], 6, 150).await;
    let unique = check_concurrent(&mut c, &results);
    c.eq("unique events", unique.len(), 6 * 120 + 30);
    for (name, store, tracker) in [
        ("first handle", &b.store, &t1),
        ("second handle", &other, &t2),
    ] {
        let stored = all_events(&**store).await;
        c.eq(
            format!("{name}: stored event count"),
            stored.len(),
            unique.len(),
        );
        c.events(
            format!("{name}: stored events"),
            &stored,
            &sorted(unique.clone()),
        );
        check_totals_every_way(&mut c, name, tracker, &**store, &unique).await;
    }
    c.verified("verify_rollups", t1.verify_rollups(None).await);
    other.close().await.expect("close the second handle");
    c.finish();
}

/// `flush_interval` bounds how long a queued event waits, even while a steady trickle of
/// later events keeps arriving before any batch fills up.
pub async fn trickle_is_written_within_the_flush_interval(b: &Backend) {
    let mut c = Check::new(b.label(), "trickle_is_written_within_the_flush_interval");
    let opts = TrackerOptions {
        batch: BatchOptions {
            max_batch: 1_000,
            flush_interval: Duration::from_millis(150),
            ..Default::default()
        },
        ..Default::default()
    };
    let t = b.tracker_with(opts);
    let first = t
        .enqueue(ev("trickle-0", "2026-06-03T09:00:00Z", 1))
        .await
        .expect("enqueue");
    // One event every 50 ms for a second: without a deadline per batch, every arrival would
    // restart the wait and nothing would be written.
    for i in 1..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        t.enqueue(ev(&format!("trickle-{i}"), "2026-06-03T09:00:00Z", 1))
            .await
            .expect("enqueue");
    }
    let stored = t.event(first.id.as_str()).await.expect("read");
    c.that(
        "the first event was written without a flush",
        stored.is_some(),
    );
    t.flush().await.expect("flush");
    c.finish();
}

/// Events that fill a batch while another write runs are written when that write ends, not
/// at the flush interval (an hour here): on a store that runs two writes at once, the second
/// waits for the first (or for a whole `max_write`) and is woken by its end.
pub async fn a_batch_queued_during_a_write_follows_it(b: &Backend) {
    let mut c = Check::new(b.label(), "a_batch_queued_during_a_write_follows_it");
    let opts = TrackerOptions {
        batch: BatchOptions {
            max_batch: 2_000,
            max_write: 100_000,
            flush_interval: Duration::from_secs(3_600),
            // `enqueue` waits while 2,000 are queued: once the 2,001st is queued, the first
            // 2,000 are being written, and the next 2,000 fill a batch while they are.
            max_queue: 2_000,
        },
        ..Default::default()
    };
    let t = b.tracker_with(opts);
    let mut rng = Rng::new(17);
    for i in 0..4_000 {
        let ts = at("2026-06-03T09:00:00Z") + chrono::Duration::seconds(i);
        t.enqueue(random_event(&mut rng, format!("during-{i}"), ts))
            .await
            .expect("enqueue");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut stored = 0;
    while std::time::Instant::now() < deadline {
        stored = all_events(&*b.store).await.len();
        if stored == 4_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.eq("events stored without a flush", stored, 4_000);
    t.flush().await.expect("flush");
    c.verified("verify_rollups", t.verify_rollups(None).await);
    c.finish();
}

/// Dropping the last handle of a tracker writes what it still had queued.
pub async fn dropping_the_tracker_writes_its_queue(b: &Backend) {
    let mut c = Check::new(b.label(), "dropping_the_tracker_writes_its_queue");
    let t = b.tracker_with(TrackerOptions {
        batch: BatchOptions {
            flush_interval: Duration::from_secs(3_600),
            ..Default::default()
        },
        ..Default::default()
    });
    for i in 0..25 {
        t.enqueue(ev(&format!("drop-{i}"), "2026-06-03T09:00:00Z", 1))
            .await
            .expect("enqueue");
    }
    drop(t);
    let mut stored = 0;
    for _ in 0..200 {
        stored = all_events(&*b.store).await.len();
        if stored == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.eq("queued events stored after drop", stored, 25);
    c.finish();
}
