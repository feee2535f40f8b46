//! Prices a set of sample provider responses (Anthropic, OpenAI, Gemini, Bedrock, DeepSeek)
//! and prints what each cost and why: `cargo run --example price_samples`.
#![allow(clippy::print_stdout)]

use serde_json::json;
use usage_core::PriceCatalog;
use usage_core::extract::{Provider, extract};

fn main() -> Result<(), usage_core::Error> {
    let samples = [
        (
            Provider::Anthropic,
            "2026-01-15T12:00:00Z",
            json!({
            "id": "msg_01", "type": "message", "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 12000, "cache_read_input_tokens": 50000,
                      "cache_creation": {"ephemeral_5m_input_tokens": 10000, "ephemeral_1h_input_tokens": 2000},
                      "output_tokens": 2000, "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
                      "service_tier": "standard"}}),
        ),
        (
            Provider::Anthropic,
            "2026-01-15T12:00:00Z",
            json!({
            "custom_id": "req-42", "result": {"type": "succeeded", "message": {"id": "msg_02", "model": "claude-haiku-4-5-20251001",
            "usage": {"input_tokens": 812, "output_tokens": 95, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "batch"}}}}),
        ),
        (
            Provider::OpenAI,
            "2026-01-15T12:00:00Z",
            json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06", "service_tier": "default",
            "usage": {"prompt_tokens": 10000, "completion_tokens": 500, "total_tokens": 10500,
                      "prompt_tokens_details": {"cached_tokens": 8000}, "completion_tokens_details": {"reasoning_tokens": 0}}}),
        ),
        (
            Provider::OpenAI,
            "2026-01-15T12:00:00Z",
            json!({
            "type": "response.completed", "response": {"id": "resp_1", "object": "response", "model": "gpt-5-2025-08-07", "service_tier": "default",
            "usage": {"input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4096, "cache_write_tokens": 0},
                      "output_tokens": 3000, "output_tokens_details": {"reasoning_tokens": 2500}, "total_tokens": 8000}}}),
        ),
        (
            Provider::Gemini,
            "2026-01-15T12:00:00Z",
            json!({
            "modelVersion": "gemini-2.5-pro", "responseId": "abc123",
            "usageMetadata": {"promptTokenCount": 250000, "cachedContentTokenCount": 0, "candidatesTokenCount": 1000,
                              "thoughtsTokenCount": 4000, "totalTokenCount": 255000}}),
        ),
        (
            Provider::DeepSeek,
            "2025-06-01T17:00:00Z",
            json!({
            "id": "ds-1", "object": "chat.completion", "model": "deepseek-chat",
            "usage": {"prompt_tokens": 100000, "completion_tokens": 20000, "total_tokens": 120000,
                      "prompt_tokens_details": {"cached_tokens": 60000}}}),
        ),
    ];
    let catalog = PriceCatalog::builtin();
    println!("catalog {}\n", catalog.version());
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>8} {:>12}  how",
        "model", "prompt", "output", "cached", "tier", "cost (USD)"
    );
    for (provider, at, body) in samples {
        for rec in extract(provider, &body)? {
            let at = at.parse().expect("sample timestamps are valid");
            let cost = catalog.cost(&rec.model, &rec.usage, at, &rec.context)?;
            let mods: Vec<&str> = cost
                .basis
                .modifiers
                .iter()
                .map(|m| m.kind.as_str())
                .collect();
            println!(
                "{:<28} {:>9} {:>9} {:>9} {:>8} {:>12}  {} {}",
                rec.model,
                rec.usage.prompt_tokens(),
                rec.usage.output,
                rec.usage.cache_read,
                cost.basis
                    .tier_above
                    .map(|t| format!(">{}K", t / 1000))
                    .unwrap_or_else(|| "-".into()),
                cost.total.to_string(),
                cost.basis.model,
                if mods.is_empty() {
                    String::new()
                } else {
                    format!("[{}]", mods.join(", "))
                },
            );
        }
    }
    Ok(())
}
