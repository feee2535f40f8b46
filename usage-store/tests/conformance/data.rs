//! The seeded data set: ~2,000 events over 40 days before "now" (2026-11-23 12:00 UTC), five
//! users, four priced models across three providers plus one unknown model, `workflow` and
//! `instance` tags, errors, provided costs and latencies. A small PRNG keeps it reproducible.

use chrono::{DateTime, Duration, Utc};
use usage_core::event::{NewEvent, Status, UsageEvent};
use usage_core::store::{Cursor, Store};
use usage_core::{TokenUsage, Usd};
use usage_store::Tracker;

/// The fixed "now" every period is resolved against.
pub fn now() -> DateTime<Utc> {
    at("2026-11-23T12:00:00Z")
}

/// An RFC 3339 instant.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
        .with_timezone(&Utc)
}

/// The first instant of the data set.
pub fn start() -> DateTime<Utc> {
    at("2026-10-14T00:00:00Z")
}

/// No events here: New York's Saturday and Sunday 7-8 November, so series have empty days.
pub fn quiet() -> (DateTime<Utc>, DateTime<Utc>) {
    (at("2026-11-07T05:00:00Z"), at("2026-11-09T05:00:00Z"))
}

/// splitmix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A model as the data set reports it, and the catalog id it must resolve to.
pub struct ModelSpec {
    /// Provider key.
    pub provider: &'static str,
    /// The id the "response" reported.
    pub reported: &'static str,
    /// The catalog id, `None` for the unknown model.
    pub canonical: Option<&'static str>,
}

/// The four priced models (one reported by a dated alias) and an unknown one.
pub const MODELS: [ModelSpec; 5] = [
    ModelSpec {
        provider: "anthropic",
        reported: "claude-sonnet-4-5-20250929",
        canonical: Some("claude-sonnet-4-5"),
    },
    ModelSpec {
        provider: "anthropic",
        reported: "claude-haiku-4-5",
        canonical: Some("claude-haiku-4-5"),
    },
    ModelSpec {
        provider: "openai",
        reported: "gpt-4o-2024-08-06",
        canonical: Some("gpt-4o"),
    },
    ModelSpec {
        provider: "google",
        reported: "gemini-2.5-flash",
        canonical: Some("gemini-2.5-flash"),
    },
    ModelSpec {
        provider: "acme",
        reported: "acme-large-1",
        canonical: None,
    },
];

/// The users.
pub const USERS: [&str; 5] = ["u1", "u2", "u3", "u4", "u5"];
/// `workflow` tag values.
pub const WORKFLOWS: [&str; 4] = ["summarise", "classify", "chat", "extract"];
/// `instance` tag values.
pub const INSTANCES: [&str; 12] = [
    "i-01", "i-02", "i-03", "i-04", "i-05", "i-06", "i-07", "i-08", "i-09", "i-10", "i-11", "i-12",
];

/// One random event at `ts` with id `id`.
pub fn random_event(rng: &mut Rng, id: String, ts: DateTime<Utc>) -> NewEvent {
    let model = match rng.below(100) {
        0..=27 => &MODELS[0],
        28..=55 => &MODELS[1],
        56..=76 => &MODELS[2],
        77..=95 => &MODELS[3],
        _ => &MODELS[4],
    };
    let output = rng.range(0, 4_000);
    let mut usage = TokenUsage {
        input: rng.range(1, 20_000),
        output,
        reasoning: if rng.chance(30) {
            rng.range(0, output)
        } else {
            0
        },
        ..Default::default()
    };
    if rng.chance(40) {
        usage.cache_read = rng.range(1, 50_000);
    }
    if model.provider == "anthropic" {
        if rng.chance(30) {
            usage.cache_write_5m = rng.range(1, 20_000);
        }
        if rng.chance(10) {
            usage.cache_write_1h = rng.range(1, 10_000);
        }
        if rng.chance(5) {
            usage.web_search_requests = rng.range(1, 3);
        }
    }
    let mut e = NewEvent::new(model.provider, model.reported, usage)
        .id(id)
        .at(ts);
    if !rng.chance(3) {
        e.user_id = Some(USERS[weighted_user(rng)].to_owned());
    }
    e.tags
        .insert("workflow".into(), rng.pick(&WORKFLOWS).to_string());
    if rng.chance(90) {
        e.tags
            .insert("instance".into(), rng.pick(&INSTANCES).to_string());
    }
    if rng.chance(6) {
        e.status = Status::Error;
        e.error_type = Some("rate_limit_error".into());
        e.error_message = Some("slow down".into());
    }
    if rng.chance(85) {
        let l = rng.range(40, 6_000);
        e.latency_ms = Some(l);
        if rng.chance(90) {
            e.duration_ms = Some(l + rng.range(0, 20_000));
        }
    }
    if model.reported == "claude-haiku-4-5" && rng.chance(4) {
        // A caller-provided cost (the Claude CLI's own figure): never repriced.
        e.provided_cost = Some(Usd::new(rust_decimal::Decimal::new(
            rng.range(1, 99_999) as i64,
            6,
        )));
    }
    e
}

/// Users are not equally busy, so sorting by cost or requests has a clear order.
fn weighted_user(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=34 => 0,
        35..=59 => 1,
        60..=77 => 2,
        78..=90 => 3,
        _ => 4,
    }
}

/// `n` random events between [`start`] and [`now`], outside [`quiet`], with millisecond
/// timestamps (so ranges and hours have ragged edges).
pub fn dataset(seed: u64, n: usize) -> Vec<NewEvent> {
    let mut rng = Rng::new(seed);
    let span_ms = (now() - start()).num_milliseconds() as u64;
    let (q0, q1) = quiet();
    (0..n)
        .map(|i| {
            let ts = loop {
                let t = start() + Duration::milliseconds(rng.below(span_ms) as i64);
                if !(q0 <= t && t < q1) {
                    break t;
                }
            };
            random_event(&mut rng, format!("evt-{seed}-{i:05}"), ts)
        })
        .collect()
}

/// Records events through the tracker in batches; returns them as stored.
pub async fn record_all(tracker: &Tracker, events: Vec<NewEvent>) -> Vec<UsageEvent> {
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(500) {
        let recorded = tracker
            .record_many(chunk.to_vec())
            .await
            .expect("record_many");
        for r in recorded {
            assert!(
                !r.duplicate,
                "fresh event {} reported as a duplicate",
                r.event.id
            );
            let spec = MODELS
                .iter()
                .find(|m| m.reported == r.event.model)
                .expect("a data set model");
            assert_eq!(
                r.event.resolved_model.as_deref(),
                spec.canonical,
                "{} resolves to its catalog id",
                spec.reported
            );
            out.push(r.event);
        }
    }
    out
}

/// Records the standard data set (2,000 events).
pub async fn seed_standard(tracker: &Tracker) -> Vec<UsageEvent> {
    record_all(tracker, dataset(7, 2_000)).await
}

/// Every stored event, in `(timestamp, id)` order, read page by page.
pub async fn all_events(store: &dyn Store) -> Vec<UsageEvent> {
    scan_all(store, &usage_core::query::Filter::default()).await
}

/// Every stored event passing `filter`.
pub async fn scan_all(store: &dyn Store, filter: &usage_core::query::Filter) -> Vec<UsageEvent> {
    let mut out: Vec<UsageEvent> = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store.scan(filter, after.as_ref(), 700).await.expect("scan");
        let Some(last) = page.last() else { break };
        after = Some(Cursor::after(last));
        out.extend(page);
    }
    out
}

/// Events sorted as a scan returns them.
pub fn sorted(mut events: Vec<UsageEvent>) -> Vec<UsageEvent> {
    events.sort_by(|a, b| (a.timestamp, a.id.as_str()).cmp(&(b.timestamp, b.id.as_str())));
    events
}
