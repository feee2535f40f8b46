//! Pricing and extraction speed: `cargo bench -p usage-benches --bench pricing`.
//! Targets: pricing a resolved model < 300 ns; resolving an unseen alias < 2 µs; extracting a
//! typical Anthropic response < 5 µs.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use usage_core::extract::{Provider, extract};
use usage_core::{PriceCatalog, PricingContext, TokenUsage};

fn pricing(c: &mut Criterion) {
    let catalog = PriceCatalog::builtin();
    let at = "2026-06-01T12:00:00Z".parse().unwrap();
    let ctx = PricingContext::default();
    let usage = TokenUsage {
        input: 1_000,
        cache_read: 50_000,
        cache_write_5m: 10_000,
        cache_write_1h: 2_000,
        output: 2_000,
        ..Default::default()
    };
    let resolved = catalog.resolve("claude-sonnet-4-5").unwrap();
    c.bench_function("cost_resolved (sonnet 4.5, 5 categories)", |b| {
        b.iter(|| {
            catalog
                .cost_resolved(black_box(&resolved), black_box(&usage), at, &ctx)
                .unwrap()
        })
    });
    c.bench_function("cost by id (cached resolution)", |b| {
        b.iter(|| {
            catalog
                .cost(
                    black_box("claude-sonnet-4-5-20250929"),
                    black_box(&usage),
                    at,
                    &ctx,
                )
                .unwrap()
        })
    });
    // Distinct spellings, made outside the timed part, so every resolution is a cache miss
    // (the cache stops growing at 16,384 entries; later misses are resolved but not kept).
    let forms = [
        "us.anthropic.claude-sonnet-4-5-2025{n}-v1:0",
        "vertex_ai/claude-opus-4-1@2025{n}",
        "anthropic/claude-3.5-sonnet-2024{n}",
        "bedrock/us-gov-west-1/anthropic.claude-haiku-4-5-2025{n}-v1:0",
        "gpt-4o-mini-2024{n}",
        "openrouter/openai/gpt-4.1-mini-2025{n}",
    ];
    let unseen: Vec<String> = (0..200_000u32)
        .map(|i| {
            forms[i as usize % forms.len()].replace("{n}", &format!("{:04}", 1000 + i % 9000))
                + &"x".repeat(0)
        })
        .enumerate()
        .map(|(i, s)| {
            if i < 9000 * forms.len() {
                s
            } else {
                s.replacen("2025", "2026", 1)
            }
        })
        .collect();
    let fresh = catalog.clone();
    let mut i = 0usize;
    c.bench_function("resolve unseen alias", |b| {
        b.iter(|| {
            i = (i + 1) % unseen.len();
            black_box(fresh.resolve(black_box(&unseen[i])).unwrap())
        })
    });
    let body = serde_json::json!({
        "id": "msg_01AbC", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello there, this is a typical short answer."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 12000, "cache_read_input_tokens": 50000,
                  "cache_creation": {"ephemeral_5m_input_tokens": 10000, "ephemeral_1h_input_tokens": 2000},
                  "output_tokens": 2000, "output_tokens_details": {"thinking_tokens": 1200},
                  "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
                  "service_tier": "standard", "inference_geo": "global"}
    });
    c.bench_function("extract anthropic response (parsed Value)", |b| {
        b.iter(|| extract(Provider::Anthropic, black_box(&body)).unwrap())
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    c.bench_function("extract anthropic response (from bytes)", |b| {
        b.iter(|| {
            usage_core::extract::extract_bytes(Provider::Anthropic, black_box(&bytes)).unwrap()
        })
    });
}

criterion_group!(benches, pricing);
criterion_main!(benches);
