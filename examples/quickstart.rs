//! The main job: creates `usage.db`, records about six weeks of sample usage for a few users
//! across Anthropic, OpenAI and Gemini models (sample provider responses run through the
//! extractors), and prints a summary, a daily series, a breakdown by model and a
//! month-over-month comparison. Run it again: ids are stable, so nothing is counted twice.
//!
//! `cargo run --example quickstart [-- path/to/usage.db]`
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use usage_core::extract::Provider;
use usage_core::query::{Bucket, Dimension, Filter, Period, Query, parse_tz};
use usage_store::{ResponseMeta, Tracker, response_events};

/// A tiny deterministic generator, so every run records the same sample.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn sample_response(rng: &mut Lcg, n: u64) -> (Provider, Value) {
    let input = 500 + rng.below(20_000);
    let output = 100 + rng.below(3_000);
    match rng.below(6) {
        0 | 1 => {
            let cached = rng.below(60_000);
            let write = if rng.below(4) == 0 {
                rng.below(8_000)
            } else {
                0
            };
            let model = [
                "claude-sonnet-4-5-20250929",
                "claude-haiku-4-5-20251001",
                "claude-opus-4-6",
            ][rng.below(3) as usize];
            (
                Provider::Anthropic,
                json!({
                "id": format!("msg_qs_{n}"), "type": "message", "model": model,
                "usage": {"input_tokens": input, "cache_read_input_tokens": cached, "cache_creation_input_tokens": write,
                          "output_tokens": output, "service_tier": "standard"}}),
            )
        }
        2 | 3 => {
            let cached = rng.below(input);
            let model =
                ["gpt-4o-2024-08-06", "gpt-4.1-mini", "gpt-5-2025-08-07"][rng.below(3) as usize];
            let reasoning = if model.starts_with("gpt-5") {
                rng.below(output)
            } else {
                0
            };
            (
                Provider::OpenAI,
                json!({
                "id": format!("chatcmpl-qs-{n}"), "object": "chat.completion", "model": model, "service_tier": "default",
                "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output,
                          "prompt_tokens_details": {"cached_tokens": cached},
                          "completion_tokens_details": {"reasoning_tokens": reasoning}}}),
            )
        }
        _ => {
            let model = ["gemini-2.5-flash", "gemini-2.5-pro"][rng.below(2) as usize];
            let thoughts = rng.below(2_000);
            (
                Provider::Gemini,
                json!({
                "modelVersion": model, "responseId": format!("gem-qs-{n}"),
                "usageMetadata": {"promptTokenCount": input, "cachedContentTokenCount": rng.below(input / 2),
                                  "candidatesTokenCount": output, "thoughtsTokenCount": thoughts,
                                  "totalTokenCount": input + output + thoughts}}),
            )
        }
    }
}

fn usd(u: usage_core::Usd) -> String {
    format!("${}", u.as_decimal().round_dp(4))
}

#[tokio::main]
async fn main() -> Result<(), usage_core::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "usage.db".to_owned());
    let tracker = Tracker::open(&format!("sqlite://{path}")).await?;
    let tz = "UTC";
    let zone = parse_tz(tz)?;
    let now = Utc::now();

    // About six weeks of traffic for four users, heavier on weekdays and for alice.
    let users = [("alice", 40), ("bob", 15), ("carol", 8), ("dave", 3)];
    let workflows = ["summarise", "chat", "extract", "classify"];
    let mut rng = Lcg(42);
    let mut batch = Vec::new();
    let mut n = 0u64;
    for day in 0..42i64 {
        let day_start = (now - Duration::days(day))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        for (user, per_day) in users {
            for _ in 0..(per_day / 2 + rng.below(per_day)) {
                n += 1;
                let at = day_start + Duration::seconds(rng.below(86_400) as i64);
                if at > now {
                    continue;
                }
                let (provider, body) = sample_response(&mut rng, n);
                let workflow = workflows[rng.below(4) as usize];
                let meta = ResponseMeta {
                    user_id: Some(user.to_owned()),
                    tags: BTreeMap::from([
                        ("workflow".to_owned(), workflow.to_owned()),
                        (
                            "instance".to_owned(),
                            format!("{workflow}-{}", rng.below(20)),
                        ),
                    ]),
                    latency_ms: Some(300 + rng.below(4_000)),
                    duration_ms: Some(1_000 + rng.below(20_000)),
                    timestamp: Some(at),
                    ..Default::default()
                };
                batch.extend(response_events(provider, &body, meta)?);
            }
        }
    }
    let mut new = 0;
    for chunk in batch.chunks(1_000) {
        new += tracker
            .record_many(chunk.to_vec())
            .await?
            .iter()
            .filter(|r| !r.duplicate)
            .count();
    }
    println!(
        "{path}: {} sample calls, {new} new (the rest were already recorded)\n",
        batch.len()
    );

    let month = Period::ThisMonth.range(&zone, now)?;
    let this_month = Filter {
        range: Some(month),
        ..Default::default()
    };
    let s = tracker
        .summary(
            &this_month,
            &[Dimension::parse("workflow")?, Dimension::parse("instance")?],
        )
        .await?;
    let t = &s.totals;
    // Percentiles come from the general query (they read every raw latency).
    let p95 = tracker
        .query(&Query {
            filter: this_month.clone(),
            latency_p95: true,
            ..Default::default()
        })
        .await?
        .rows
        .first()
        .and_then(|r| r.latency_p95_ms);
    println!(
        "This month ({} .. {}, {tz})",
        month.start.date_naive(),
        month.end.date_naive()
    );
    println!(
        "  requests {:>8}   errors {}   unpriced {}",
        t.requests, t.errors, t.unpriced
    );
    println!(
        "  tokens   {:>8}   input {:.1}%  cache read {:.1}%  cache write {:.1}%  output {:.1}%",
        t.total_tokens(),
        s.token_shares.input,
        s.token_shares.cache_read,
        s.token_shares.cache_write,
        s.token_shares.output
    );
    println!(
        "  cost     {:>8}   per request {}   per 1K tokens {}",
        usd(t.cost_total),
        s.avg_cost_per_request.map(usd).unwrap_or_default(),
        s.cost_per_1k_tokens.map(usd).unwrap_or_default()
    );
    println!(
        "  workflows {}  instances {}  latency avg {:.0} ms, p95 {} ms  execution time {:.1} h\n",
        s.distinct.get("workflow").unwrap_or(&0),
        s.distinct.get("instance").unwrap_or(&0),
        s.latency_avg_ms.unwrap_or(0.0),
        p95.unwrap_or(0),
        s.total_duration_ms as f64 / 3_600_000.0
    );

    let last14 = Period::LastDays { days: 14 }.range(&zone, now)?;
    println!("Daily, last 14 days");
    println!(
        "  {:<12} {:>9} {:>12} {:>10}",
        "day", "requests", "tokens", "cost"
    );
    for p in tracker
        .timeseries(
            &Filter {
                range: Some(last14),
                ..Default::default()
            },
            Bucket::Day,
            tz,
        )
        .await?
    {
        println!(
            "  {:<12} {:>9} {:>12} {:>10}",
            p.start.date_naive(),
            p.totals.requests,
            p.totals.total_tokens(),
            usd(p.totals.cost_total)
        );
    }

    println!("\nBy model, this month");
    println!(
        "  {:<24} {:>9} {:>12} {:>10} {:>7}",
        "model", "requests", "tokens", "cost", "share"
    );
    for r in tracker
        .breakdown(&this_month, &Dimension::Model)
        .await?
        .rows
    {
        println!(
            "  {:<24} {:>9} {:>12} {:>10} {:>6.1}%",
            r.key.unwrap_or_default(),
            r.totals.requests,
            r.totals.total_tokens(),
            usd(r.totals.cost_total),
            r.cost_share
        );
    }

    let prev = Period::ThisMonth.previous(&zone, now)?;
    let c = tracker.compare(&Filter::default(), month, prev).await?;
    println!("\nThis month vs last month ({})", prev.start.format("%B"));
    println!(
        "  cost     {:>10} vs {:>10}  ({}{})",
        usd(c.current.cost_total),
        usd(c.previous.cost_total),
        if c.cost_delta.as_decimal().is_sign_negative() {
            ""
        } else {
            "+"
        },
        usd(c.cost_delta)
    );
    println!(
        "  requests {:>10} vs {:>10}  ({:+})",
        c.current.requests, c.previous.requests, c.requests_delta
    );
    println!("  (month to date against the whole of last month)");
    tracker.close().await
}
