//! Scoped handles: `for_user` and tag scopes see only their events in every report, cannot read
//! another scope's event by id, cannot record or ask outside their scope, and cannot run
//! maintenance.

use usage_core::Error;
use usage_core::TokenUsage;
use usage_core::event::{NewEvent, UsageEvent};
use usage_core::query::{Bucket, Dimension, Filter, Metric, Query};
use usage_core::store::RunOptions;
use usage_store::Tracker;

use super::backend::Backend;
use super::check::Check;
use super::data::{all_events, at, seed_standard};
use super::oracle;
use super::queries::ragged;

fn is_argument(r: &Result<impl std::fmt::Debug, Error>, field: &str) -> bool {
    matches!(r, Err(Error::InvalidArgument { field: f, .. }) if f == field)
}

/// Every report through `scoped` against the oracle over `mine` (the scope's events).
async fn check_reports(c: &mut Check, label: &str, scoped: &Tracker, mine: &[UsageEvent]) {
    let f = Filter {
        range: Some(ragged()),
        ..Default::default()
    };
    let in_range: Vec<UsageEvent> = mine
        .iter()
        .filter(|e| ragged().contains(e.timestamp))
        .cloned()
        .collect();
    let s = scoped
        .summary(&Filter::default(), &[Dimension::User])
        .await
        .expect("summary");
    c.totals(
        format!("{label}: summary"),
        &s.totals,
        &oracle::totals(mine),
    );
    c.eq(
        format!("{label}: distinct users"),
        s.distinct.get("user").copied(),
        Some(oracle::distinct(mine, &Dimension::User)),
    );
    let mut csv = Vec::new();
    let rows = scoped
        .export_csv(&Filter::default(), &mut csv)
        .await
        .expect("export");
    c.eq(
        format!("{label}: export has only the scope's events"),
        rows,
        mine.len() as u64,
    );
    let mut jsonl = Vec::new();
    scoped
        .export_jsonl(&Filter::default(), &mut jsonl)
        .await
        .expect("export");
    let ids: std::collections::BTreeSet<String> = String::from_utf8(jsonl)
        .expect("utf-8")
        .lines()
        .map(|l| {
            serde_json::from_str::<UsageEvent>(l)
                .expect("event")
                .id
                .as_str()
                .to_owned()
        })
        .collect();
    c.eq(
        format!("{label}: exported ids"),
        ids,
        mine.iter().map(|e| e.id.as_str().to_owned()).collect(),
    );
    let s = scoped.summary(&f, &[]).await.expect("summary");
    c.totals(
        format!("{label}: summary over a ragged range"),
        &s.totals,
        &oracle::totals(&in_range),
    );
    let q = Query {
        group_by: vec![Dimension::User, Dimension::Model],
        ..Default::default()
    };
    super::queries::check_query(
        c,
        &format!("{label}: query by user and model"),
        scoped,
        mine,
        &q,
    )
    .await;
    let points = scoped
        .timeseries(&f, Bucket::Day, "Europe/Paris")
        .await
        .expect("timeseries");
    let sum = points
        .iter()
        .fold(usage_core::query::Totals::default(), |mut a, p| {
            a.merge(&p.totals);
            a
        });
    c.totals(
        format!("{label}: timeseries summed"),
        &sum,
        &oracle::totals(&in_range),
    );
    let page = scoped
        .breakdown(&Filter::default(), &Dimension::Model)
        .await
        .expect("breakdown");
    c.totals(
        format!("{label}: breakdown totals"),
        &page.totals,
        &oracle::totals(mine),
    );
    let page = scoped
        .top(&Filter::default(), &Dimension::User, Metric::Cost, 10, 0)
        .await
        .expect("top");
    let users: Vec<Option<String>> = page.rows.iter().map(|r| r.key.clone()).collect();
    let mut want: Vec<Option<String>> = mine.iter().map(|e| e.user_id.clone()).collect();
    want.sort();
    want.dedup();
    let mut got = users.clone();
    got.sort();
    c.eq(format!("{label}: top users"), got, want);
    let cmp = scoped
        .compare(
            &Filter::default(),
            ragged(),
            usage_core::query::TimeRange::new(
                at("2026-01-01T00:00:00Z"),
                at("2026-02-01T00:00:00Z"),
            )
            .expect("r"),
        )
        .await
        .expect("compare");
    c.totals(
        format!("{label}: compare current"),
        &cmp.current,
        &oracle::totals(&in_range),
    );
}

/// A user's handle.
pub async fn user_scope_sees_only_its_user(b: &Backend) {
    let mut c = Check::new(b.label(), "user_scope_sees_only_its_user");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let u1 = t.for_user("u1").expect("for_user");
    let mine: Vec<UsageEvent> = events
        .iter()
        .filter(|e| e.user_id.as_deref() == Some("u1"))
        .cloned()
        .collect();
    check_reports(&mut c, "u1", &u1, &mine).await;

    let theirs = events
        .iter()
        .find(|e| e.user_id.as_deref() == Some("u2"))
        .expect("a u2 event");
    c.eq(
        "u1 reading a u2 event",
        u1.event(theirs.id.as_str()).await.expect("event"),
        None,
    );
    c.eq(
        "u1 reading its own event",
        u1.event(mine[0].id.as_str()).await.expect("event"),
        Some(mine[0].clone()),
    );
    c.eq(
        "unscoped reading a u2 event",
        t.event(theirs.id.as_str()).await.expect("event"),
        Some(theirs.clone()),
    );

    let count = all_events(&*b.store).await.len();
    let bad = NewEvent::new(
        "openai",
        "gpt-4o",
        TokenUsage {
            input: 5,
            ..Default::default()
        },
    )
    .id("scope-bad")
    .user("u2");
    c.that(
        "u1 recording for u2 is InvalidArgument(user_id)",
        is_argument(&u1.record(bad.clone()).await, "user_id"),
    );
    c.that(
        "u1 recording a batch with a u2 event is InvalidArgument(user_id)",
        is_argument(
            &u1.record_many(vec![
                NewEvent {
                    id: Some("scope-ok".into()),
                    ..bad.clone()
                }
                .user("u1"),
                bad.clone(),
            ])
            .await,
            "user_id",
        ),
    );
    c.that(
        "u1 enqueueing for u2 is InvalidArgument(user_id)",
        is_argument(&u1.enqueue(bad).await, "user_id"),
    );
    u1.flush().await.expect("flush");
    c.eq(
        "nothing was written by refused records",
        all_events(&*b.store).await.len(),
        count,
    );
    let placed = u1
        .record(
            NewEvent::new(
                "openai",
                "gpt-4o",
                TokenUsage {
                    input: 5,
                    ..Default::default()
                },
            )
            .id("scope-placed"),
        )
        .await
        .expect("record");
    c.eq(
        "an event recorded through u1 belongs to u1",
        placed.event.user_id.as_deref(),
        Some("u1"),
    );

    let other = Filter {
        user_id: Some("u2".into()),
        ..Default::default()
    };
    c.that(
        "u1 asking for u2 totals",
        is_argument(&u1.summary(&other, &[]).await, "user_id"),
    );
    c.that(
        "u1 querying u2",
        is_argument(
            &u1.query(&Query {
                filter: other.clone(),
                ..Default::default()
            })
            .await,
            "user_id",
        ),
    );
    c.that(
        "u1 breakdown of u2",
        is_argument(&u1.breakdown(&other, &Dimension::Model).await, "user_id"),
    );
    c.that(
        "u1 timeseries of u2",
        is_argument(
            &u1.timeseries(
                &Filter {
                    range: Some(ragged()),
                    ..other.clone()
                },
                Bucket::Day,
                "UTC",
            )
            .await,
            "user_id",
        ),
    );
    c.that(
        "u1 top of u2",
        is_argument(
            &u1.top(&other, &Dimension::Model, Metric::Cost, 5, 0).await,
            "user_id",
        ),
    );
    c.that("a u1 handle cannot become u2", u1.for_user("u2").is_err());
    c.that(
        "a scoped handle cannot purge",
        is_argument(
            &u1.purge(at("2026-01-01T00:00:00Z"), &RunOptions::default())
                .await,
            "scope",
        ),
    );
    c.that(
        "a scoped handle cannot list runs",
        is_argument(&u1.runs(5).await, "scope"),
    );
    c.that(
        "a scoped handle cannot reprice",
        is_argument(
            &u1.reprice(
                None,
                usage_core::PriceCatalog::builtin(),
                true,
                &RunOptions::default(),
            )
            .await,
            "scope",
        ),
    );
    c.finish();
}

/// A tag scope (`workflow = chat`), and a user scope narrowed by a tag.
pub async fn tag_scope_sees_only_its_tag(b: &Backend) {
    let mut c = Check::new(b.label(), "tag_scope_sees_only_its_tag");
    let t = b.tracker();
    let events = seed_standard(&t).await;
    let chat_scope = Filter {
        tags: [("workflow".to_owned(), "chat".to_owned())].into(),
        ..Default::default()
    };
    let chat = t.scoped(chat_scope.clone()).expect("scoped");
    let mine: Vec<UsageEvent> = events
        .iter()
        .filter(|e| e.tags.get("workflow").map(String::as_str) == Some("chat"))
        .cloned()
        .collect();
    check_reports(&mut c, "workflow=chat", &chat, &mine).await;
    let both = t
        .for_user("u3")
        .expect("for_user")
        .scoped(chat_scope)
        .expect("narrow");
    let mine3: Vec<UsageEvent> = mine
        .iter()
        .filter(|e| e.user_id.as_deref() == Some("u3"))
        .cloned()
        .collect();
    check_reports(&mut c, "u3 + workflow=chat", &both, &mine3).await;

    let theirs = events
        .iter()
        .find(|e| e.tags.get("workflow").map(String::as_str) == Some("extract"))
        .expect("an extract event");
    c.eq(
        "chat scope reading an extract event",
        chat.event(theirs.id.as_str()).await.expect("event"),
        None,
    );
    let count = all_events(&*b.store).await.len();
    let bad = NewEvent::new(
        "openai",
        "gpt-4o",
        TokenUsage {
            input: 5,
            ..Default::default()
        },
    )
    .id("tag-bad")
    .tag("workflow", "extract");
    c.that(
        "chat scope recording workflow=extract is InvalidArgument(tags.workflow)",
        is_argument(&chat.record(bad).await, "tags.workflow"),
    );
    c.eq(
        "nothing was written",
        all_events(&*b.store).await.len(),
        count,
    );
    let placed = chat
        .record(
            NewEvent::new(
                "openai",
                "gpt-4o",
                TokenUsage {
                    input: 5,
                    ..Default::default()
                },
            )
            .id("tag-placed"),
        )
        .await
        .expect("record");
    c.eq(
        "an event recorded through the scope gets its tag",
        placed.event.tags.get("workflow").map(String::as_str),
        Some("chat"),
    );
    let other = Filter {
        tags: [("workflow".to_owned(), "extract".to_owned())].into(),
        ..Default::default()
    };
    c.that(
        "chat scope asking for extract",
        is_argument(&chat.summary(&other, &[]).await, "tags.workflow"),
    );
    c.that(
        "a scope may not name a model",
        t.scoped(Filter {
            model: Some("gpt-4o".into()),
            ..Default::default()
        })
        .is_err(),
    );
    c.finish();
}
