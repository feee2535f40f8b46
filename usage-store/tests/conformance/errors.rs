//! Bad input: each gives an error naming the field, and nothing is written. And an unknown
//! model is recorded as unpriced (tokens counted, cost absent), never as a silent $0.

use usage_core::event::{CostSource, NewEvent};
use usage_core::query::{Bucket, Bucketing, Dimension, Filter, Query, TimeRange};
use usage_core::{Error, TokenUsage};
use usage_store::Tracker;

use super::backend::Backend;
use super::check::Check;
use super::data::{all_events, at};
use super::oracle;

fn good(id: &str) -> NewEvent {
    NewEvent::new(
        "anthropic",
        "claude-haiku-4-5",
        TokenUsage {
            input: 100,
            output: 50,
            ..Default::default()
        },
    )
    .id(id)
    .at(at("2026-05-05T05:05:05Z"))
    .user("u1")
}

/// `(code, field)` of an error, for comparing.
fn code_field<T: std::fmt::Debug>(r: &Result<T, Error>) -> Result<(&'static str, String), String> {
    match r {
        Err(e @ Error::InvalidUsage { field, .. })
        | Err(e @ Error::InvalidArgument { field, .. }) => Ok((e.code(), field.clone())),
        Err(e) => Err(format!("{} ({e})", e.code())),
        Ok(v) => Err(format!("Ok({v:?})")),
    }
}

/// Reasoning above output, empty provider or model, a control character in an id, a user or a
/// tag: each refused with its field named, alone or inside a batch, and nothing stored.
pub async fn bad_events_are_rejected_and_not_written(b: &Backend) {
    let mut c = Check::new(b.label(), "bad_events_are_rejected_and_not_written");
    let t = b.tracker();
    t.record(good("ok-0")).await.expect("a good event");
    let before = all_events(&*b.store).await;
    let cases: Vec<(&str, NewEvent, (&str, &str))> = vec![
        (
            "reasoning > output",
            NewEvent {
                usage: TokenUsage {
                    input: 10,
                    output: 5,
                    reasoning: 6,
                    ..Default::default()
                },
                ..good("bad-1")
            },
            ("INVALID_USAGE", "reasoning"),
        ),
        (
            "empty provider",
            NewEvent {
                provider: String::new(),
                ..good("bad-2")
            },
            ("INVALID_ARGUMENT", "provider"),
        ),
        (
            "blank model",
            NewEvent {
                model: "  ".into(),
                ..good("bad-3")
            },
            ("INVALID_ARGUMENT", "model"),
        ),
        (
            "id with a control character",
            good("bad\u{7}4"),
            ("INVALID_ARGUMENT", "id"),
        ),
        (
            "id with a newline",
            good("bad-5\n"),
            ("INVALID_ARGUMENT", "id"),
        ),
        (
            "empty user",
            NewEvent {
                user_id: Some(String::new()),
                ..good("bad-6")
            },
            ("INVALID_ARGUMENT", "user_id"),
        ),
        (
            "tag value with a control character",
            good("bad-7").tag("workflow", "a\u{0}b"),
            ("INVALID_ARGUMENT", "tags.workflow"),
        ),
        (
            "id over 512 bytes",
            good(&"x".repeat(513)),
            ("INVALID_ARGUMENT", "id"),
        ),
    ];
    for (label, e, (code, field)) in cases {
        let want = Ok((code, field.to_owned()));
        c.eq(
            format!("{label}: record"),
            code_field(&t.record(e.clone()).await),
            want.clone(),
        );
        c.eq(
            format!("{label}: record_many with a good event first"),
            code_field(&t.record_many(vec![good("ok-1"), e.clone()]).await),
            want.clone(),
        );
        c.eq(
            format!("{label}: enqueue"),
            code_field(&t.enqueue(e).await),
            want,
        );
    }
    t.flush().await.expect("flush");
    c.events(
        "stored events after the refused writes",
        &all_events(&*b.store).await,
        &before,
    );
    let msg = t
        .record(NewEvent {
            usage: TokenUsage {
                input: 1,
                output: 5,
                reasoning: 9,
                ..Default::default()
            },
            ..good("bad-8")
        })
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    c.that(
        format!("the message names the field and the values: {msg:?}"),
        msg.contains("reasoning") && msg.contains('9') && msg.contains('5'),
    );
    c.finish();
}

/// Query mistakes: an unknown zone, buckets without a range, an empty tag key, a backwards
/// range; each names its field.
pub async fn bad_queries_name_the_field(b: &Backend) {
    let mut c = Check::new(b.label(), "bad_queries_name_the_field");
    let t = b.tracker();
    t.record(good("ok-0")).await.expect("a good event");
    let range =
        Some(TimeRange::new(at("2026-05-01T00:00:00Z"), at("2026-06-01T00:00:00Z")).expect("r"));
    let cases: Vec<(&str, Query, &str)> = vec![
        (
            "unknown zone",
            Query {
                filter: Filter {
                    range,
                    ..Default::default()
                },
                bucket: Some(Bucketing {
                    bucket: Bucket::Day,
                    tz: "Mars/Olympus_Mons".into(),
                }),
                ..Default::default()
            },
            "tz",
        ),
        (
            "bucket without a range",
            Query {
                bucket: Some(Bucketing {
                    bucket: Bucket::Day,
                    tz: "UTC".into(),
                }),
                ..Default::default()
            },
            "bucket",
        ),
        (
            "empty tag key",
            Query {
                group_by: vec![Dimension::Tag(" ".into())],
                ..Default::default()
            },
            "group_by",
        ),
    ];
    for (label, q, field) in cases {
        c.eq(
            format!("{label}: query"),
            code_field(&t.query(&q).await),
            Ok(("INVALID_ARGUMENT", field.to_owned())),
        );
    }
    c.eq(
        "unknown zone: timeseries",
        code_field(
            &t.timeseries(
                &Filter {
                    range,
                    ..Default::default()
                },
                Bucket::Day,
                "Nowhere/Town",
            )
            .await,
        ),
        Ok(("INVALID_ARGUMENT", "tz".to_owned())),
    );
    c.eq(
        "timeseries without a range",
        code_field(&t.timeseries(&Filter::default(), Bucket::Hour, "UTC").await),
        Ok(("INVALID_ARGUMENT", "bucket".to_owned())),
    );
    c.eq(
        "backwards range",
        code_field(&TimeRange::new(
            at("2026-06-01T00:00:00Z"),
            at("2026-05-01T00:00:00Z"),
        )),
        Ok(("INVALID_ARGUMENT", "range".to_owned())),
    );
    c.eq(
        "event id with a control character",
        code_field(&t.event("a\tb").await),
        Ok(("INVALID_ARGUMENT", "id".to_owned())),
    );
    c.finish();
}

/// An unknown model: tokens stored and counted, cost absent (`None`, `Unpriced`, a reason),
/// counted in `unpriced`, and not a $0 cost anywhere, after a round trip through the store.
pub async fn unknown_model_is_unpriced_not_free(b: &Backend) {
    let mut c = Check::new(b.label(), "unknown_model_is_unpriced_not_free");
    let t = b.tracker();
    let priced = t.record(good("priced-1")).await.expect("priced").event;
    let usage = TokenUsage {
        input: 1_234,
        cache_read: 100,
        output: 567,
        reasoning: 7,
        ..Default::default()
    };
    let rec = t
        .record(
            NewEvent::new("acme", "acme-large-1", usage)
                .id("unpriced-1")
                .at(at("2026-05-05T06:30:00.5Z"))
                .user("u1")
                .tag("workflow", "chat"),
        )
        .await
        .expect("record");
    let e = &rec.event;
    c.eq("cost", e.cost, None);
    c.eq("cost_source", e.cost_source, CostSource::Unpriced);
    c.that(
        format!("unpriced_reason names the model: {:?}", e.unpriced_reason),
        e.unpriced_reason
            .as_deref()
            .is_some_and(|r| r.contains("acme-large-1")),
    );
    c.eq("resolved_model", e.resolved_model.clone(), None);
    c.eq("breakdown", rec.breakdown.is_none(), true);
    let stored = b.store.get(&e.id).await.expect("get");
    c.eq("stored event", stored.as_ref(), Some(e));
    c.eq("stored tokens", stored.map(|s| s.usage), Some(usage));

    let s = t.summary(&Filter::default(), &[]).await.expect("summary");
    c.totals("summary", &s.totals, &oracle::totals([&priced, e]));
    c.eq("unpriced count", s.totals.unpriced, 1);
    c.eq("tokens counted", s.totals.input, 1_234 + 100);
    let by_model = t
        .query(&Query {
            group_by: vec![Dimension::Model],
            ..Default::default()
        })
        .await
        .expect("query");
    let row = by_model
        .rows
        .iter()
        .find(|r| r.group == vec![Some("acme-large-1".to_owned())]);
    c.eq(
        "the unknown model's row: unpriced, tokens, zero cost",
        row.map(|r| {
            (
                r.totals.unpriced,
                r.totals.input,
                r.totals.cost_total.is_zero(),
            )
        }),
        Some((1, 1_234, true)),
    );
    let raw = t
        .query(&Query {
            filter: Filter {
                tags: [("workflow".into(), "chat".into())].into(),
                ..Default::default()
            },
            group_by: vec![Dimension::Model],
            ..Default::default()
        })
        .await
        .expect("query");
    c.eq(
        "raw-served unpriced count",
        raw.rows.iter().map(|r| r.totals.unpriced).sum::<u64>(),
        1,
    );

    let mut csv = Vec::new();
    usage_store::export::export_csv(&*b.store, &Filter::default(), &mut csv)
        .await
        .expect("export");
    let mut rd = csv::Reader::from_reader(csv.as_slice());
    let header = rd.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let row = rd
        .records()
        .map(|r| r.expect("row"))
        .find(|r| &r[col("id")] == "unpriced-1")
        .expect("the unpriced row");
    c.eq(
        "csv cost_total of the unpriced event",
        &row[col("cost_total")],
        "",
    );
    c.eq("csv cost_source", &row[col("cost_source")], "unpriced");
    c.finish();
}

/// URLs `Tracker::open` cannot use are InvalidArgument naming `url`.
pub async fn open_rejects_malformed_urls() {
    let mut c = Check::new("open", "open_rejects_malformed_urls");
    for url in [
        "nonsense",
        "ftp://x",
        "sqlite://",
        "sqlite://?mode=rwc",
        "",
        "://",
        "mysql://localhost/db",
    ] {
        match Tracker::open(url).await {
            Err(Error::InvalidArgument { field, reason }) => {
                c.eq(format!("{url:?}: field"), field.as_str(), "url");
                c.that(
                    format!("{url:?}: the reason quotes the URL: {reason}"),
                    reason.contains(&format!("`{url}`")),
                );
            }
            Err(e) => c.fail(format!(
                "{url:?}: expected InvalidArgument(url), got {} ({e})",
                e.code()
            )),
            Ok(t) => c.fail(format!("{url:?}: opened a {} store", t.store().backend())),
        }
    }
    c.finish();
}
