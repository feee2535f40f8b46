//! The built-in pricing catalog and the LiteLLM importer, checked against the reference
//! (`shared/reference/provider-usage-and-pricing.md`): ids resolve to the right model, prices
//! change at the right instant, and bad catalog data is refused with an error naming the model
//! and the field. Every expected cost was worked out by hand from the reference's list prices.

use chrono::{DateTime, Utc};
use usage_core::pricing::{ModifierKind, PriceCatalog};
use usage_core::{
    Deployment, Error, Platform, PricingContext, ServiceTier, Speed, TokenUsage, Usd,
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
}

fn usd(s: &str) -> Usd {
    s.parse().unwrap()
}

fn builtin() -> &'static PriceCatalog {
    PriceCatalog::builtin()
}

/// 100,000 tokens of uncached input and 100,000 of output: under every prompt-size tier, and
/// a tenth of the per-million prices.
const MIO: TokenUsage = TokenUsage {
    input: 100_000,
    cache_read: 0,
    cache_write_5m: 0,
    cache_write_1h: 0,
    output: 100_000,
    reasoning: 0,
    web_search_requests: 0,
    web_fetch_requests: 0,
};

/// 10,000 tokens in every token category: a hundredth of the sum of the per-million prices.
const ALL: TokenUsage = TokenUsage {
    input: 10_000,
    cache_read: 10_000,
    cache_write_5m: 10_000,
    cache_write_1h: 10_000,
    output: 10_000,
    reasoning: 0,
    web_search_requests: 0,
    web_fetch_requests: 0,
};

fn total_in(
    catalog: &PriceCatalog,
    model: &str,
    usage: &TokenUsage,
    when: &str,
    ctx: &PricingContext,
) -> Usd {
    catalog
        .cost(model, usage, at(when), ctx)
        .unwrap_or_else(|e| panic!("{model} at {when}: {e}"))
        .total
}

fn total(model: &str, usage: &TokenUsage, when: &str) -> Usd {
    total_in(builtin(), model, usage, when, &PricingContext::default())
}

fn total_with(model: &str, usage: &TokenUsage, when: &str, ctx: &PricingContext) -> Usd {
    total_in(builtin(), model, usage, when, ctx)
}

fn tokens(input: u64, cache_read: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input,
        cache_read,
        output,
        ..Default::default()
    }
}

// ------------------------------------------------------------------------------------------
// The built-in catalog

#[test]
fn builtin_catalog_loads_and_every_alias_names_its_own_model() {
    let c = builtin();
    assert_eq!(c.version(), "2026-11-23");
    let models: Vec<_> = c.models().collect();
    assert!(models.len() >= 100, "only {} models", models.len());
    for m in &models {
        let file = m.to_file();
        for name in std::iter::once(&file.id).chain(&file.aliases) {
            let r = c.resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&*r.id, m.id(), "`{name}` resolves to another model");
        }
    }
}

#[test]
fn builtin_covers_every_model_of_the_reference() {
    let ids = [
        // §B.1.2
        "claude-2.0",
        "claude-2.1",
        "claude-3-haiku",
        "claude-3-sonnet",
        "claude-3-opus",
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-5",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-sonnet-5",
        "claude-opus-5",
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        // §B.2.2
        "gpt-4o",
        "gpt-4o-2024-05-13",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o1-mini",
        "o1-pro",
        "o3",
        "o3-mini",
        "o3-pro",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-5-pro",
        "gpt-5-codex",
        "gpt-5-chat-latest",
        "gpt-5.1",
        "gpt-5.1-codex",
        "gpt-5.1-codex-max",
        "gpt-5.1-chat-latest",
        "gpt-5.1-codex-mini",
        "gpt-5.2",
        "gpt-5.2-pro",
        "gpt-5.3-codex",
        "gpt-5.3-chat",
        "gpt-5.4",
        "gpt-5.4-mini",
        "gpt-5.4-nano",
        "gpt-5.4-pro",
        "gpt-5.5",
        "gpt-5.5-pro",
        "gpt-5.6-sol",
        "gpt-5.6-terra",
        "gpt-5.6-luna",
        // §B.3.2
        "gemini-1.5-pro",
        "gemini-1.5-flash",
        "gemini-2.0-flash",
        "gemini-2.0-flash-lite",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-preview-04-17",
        "gemini-2.5-flash-lite",
        "gemini-3-pro-preview",
        "gemini-3.1-pro-preview",
        "gemini-3-flash-preview",
        "gemini-3.1-flash-lite",
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.6-flash",
        "gemini-3.7-flash",
        // §B.4
        "deepseek-chat",
        "deepseek-reasoner",
        "deepseek-v4-flash",
        "deepseek-v4-pro",
        "mistral-large-2512",
        "mistral-large-2411",
        "mistral-large-2407",
        "mistral-medium-2505",
        "mistral-medium-2508",
        "mistral-medium-3-5",
        "mistral-medium-2604",
        "codestral-2508",
        "devstral-2512",
        "magistral-medium",
        "magistral-small",
        "mistral-small-latest",
        "grok-3",
        "grok-3-mini",
        "grok-3-fast",
        "grok-4-0709",
        "grok-4-fast",
        "grok-4-1-fast",
        "grok-code-fast-1",
        "grok-4.3",
        "grok-4.5",
        "grok-4.20",
    ];
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| builtin().resolve(id).is_err())
        .collect();
    assert!(missing.is_empty(), "not in the catalog: {missing:?}");
}

// ------------------------------------------------------------------------------------------
// Resolution

#[test]
fn real_world_ids_resolve_to_the_canonical_model() {
    let cases: &[(&str, &str)] = &[
        // §A.1.4 dated ids, aliases, old word order
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-3-opus-20240229", "claude-3-opus"),
        ("claude-3-opus-latest", "claude-3-opus"),
        ("claude-3-sonnet-20240229", "claude-3-sonnet"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("claude-2.1", "claude-2.1"),
        ("claude-2.0", "claude-2.0"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-4-sonnet-20250514", "claude-sonnet-4"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-4-opus-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-6-20260205", "claude-opus-4-6"),
        ("claude-opus-4-7-20260416", "claude-opus-4-7"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-opus-5", "claude-opus-5"),
        ("claude-haiku-5-5", "claude-haiku-5-5"),
        // §C.10 OpenRouter dotted forms and routing prefixes
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("claude-opus-4.6", "claude-opus-4-6"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-fable-5.1", "claude-fable-5-1"),
        // §A.5 Claude Code display suffixes
        ("claude-opus-4-6[1m]", "claude-opus-4-6"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"),
        // §A.4.3 Vertex
        ("claude-3-haiku@20240307", "claude-3-haiku"),
        ("claude-3-opus@20240229", "claude-3-opus"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("claude-opus-4@20250514", "claude-opus-4"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("claude-opus-4-5@20251101", "claude-opus-4-5"),
        ("vertex_ai/claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-sonnet-4-5@default", "claude-sonnet-4-5"),
        ("vertex_ai/claude-opus-4-6", "claude-opus-4-6"),
        // §A.4.2 Bedrock
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        (
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "claude-3-5-sonnet",
        ),
        (
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "claude-3-5-sonnet",
        ),
        (
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "claude-3-7-sonnet",
        ),
        ("anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        (
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        (
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "claude-haiku-4-5",
        ),
        ("anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5"),
        ("anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        ("anthropic.claude-opus-4-6-v1:0", "claude-opus-4-6"),
        ("anthropic.claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("anthropic.claude-opus-4-7", "claude-opus-4-7"),
        ("anthropic.claude-opus-5", "claude-opus-5"),
        ("anthropic.claude-fable-5", "claude-fable-5"),
        ("anthropic.claude-haiku-5-5", "claude-haiku-5-5"),
        ("anthropic.claude-v2:1", "claude-2.1"),
        ("anthropic.claude-v2", "claude-2.0"),
        ("anthropic.claude-instant-v1", "claude-instant-1.2"),
        (
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "claude-3-5-sonnet",
        ),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        (
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        (
            "apac.anthropic.claude-sonnet-4-20250514-v1:0",
            "claude-sonnet-4",
        ),
        (
            "jp.anthropic.claude-haiku-4-5-20251001-v1:0",
            "claude-haiku-4-5",
        ),
        (
            "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        ("us.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-7",
            "claude-opus-4-7",
        ),
        (
            "bedrock/us-gov-west-1/anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        (
            "bedrock/converse/us.anthropic.claude-sonnet-4-20250514-v1:0",
            "claude-sonnet-4",
        ),
        (
            "bedrock/invoke/anthropic.claude-3-haiku-20240307-v1:0",
            "claude-3-haiku",
        ),
        (
            "bedrock/us-west-2/1-month-commitment/anthropic.claude-3-haiku-20240307-v1:0",
            "claude-3-haiku",
        ),
        // OpenAI dated snapshots (§B.2.2)
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("o1-2024-12-17", "o1"),
        ("o3-2025-04-16", "o3"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("gpt-5-chat-latest", "gpt-5-chat"),
        ("gpt-5-pro-2025-10-06", "gpt-5-pro"),
        ("gpt-5.1-2025-11-13", "gpt-5.1"),
        ("gpt-5.2-2025-12-11", "gpt-5.2"),
        ("gpt-5.4-2026-03-05", "gpt-5.4"),
        ("gpt-5.5-2026-04-23", "gpt-5.5"),
        ("gpt-5.6", "gpt-5.6-sol"),
        ("openai/gpt-4o", "gpt-4o"),
        // Gemini, DeepSeek, Mistral, xAI
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("vertex_ai/gemini-2.5-pro", "gemini-2.5-pro"),
        (
            "gemini-2.5-flash-preview-04-17",
            "gemini-2.5-flash-preview-04-17",
        ),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("mistral-medium-2604", "mistral-medium-3-5"),
        ("magistral-medium-latest", "magistral-medium"),
        ("grok-4-0709", "grok-4"),
        ("grok-4-1-fast-reasoning", "grok-4-1-fast"),
        ("grok-4.20-0309-reasoning", "grok-4.20"),
        ("grok-3-fast", "grok-3-fast"),
    ];
    let mut wrong = Vec::new();
    for (raw, want) in cases {
        match builtin().resolve(raw) {
            Ok(r) if &*r.id == *want => {}
            Ok(r) => wrong.push(format!("{raw} -> {} (want {want})", r.id)),
            Err(e) => wrong.push(format!("{raw} -> {e}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} ids resolve wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn ids_carry_platform_deployment_and_fast_mode() {
    let cases: &[(&str, Option<Platform>, Option<Deployment>)] = &[
        (
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            Some(Platform::Bedrock),
            Some(Deployment::Regional),
        ),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some(Platform::Bedrock),
            Some(Deployment::Global),
        ),
        (
            "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some(Platform::Bedrock),
            Some(Deployment::GovCloud),
        ),
        (
            "bedrock/us-gov-west-1/anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some(Platform::Bedrock),
            Some(Deployment::GovCloud),
        ),
        // Unprefixed Bedrock ids are regional ([GP] 2026-08-21, the later source).
        (
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some(Platform::Bedrock),
            Some(Deployment::Regional),
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-7",
            Some(Platform::Bedrock),
            Some(Deployment::Regional),
        ),
        ("claude-opus-4-1@20250805", Some(Platform::Vertex), None),
        ("vertex_ai/claude-opus-4-6", Some(Platform::Vertex), None),
        ("claude-sonnet-4-5", None, None),
    ];
    for (raw, platform, deployment) in cases {
        let r = builtin().resolve(raw).unwrap();
        assert_eq!(
            (r.platform, r.deployment),
            (*platform, *deployment),
            "{raw}"
        );
        assert!(!r.fast, "{raw}");
    }
    let r = builtin().resolve("claude-opus-4-6-fast").unwrap();
    assert_eq!((&*r.id, r.fast), ("claude-opus-4-6", true));
    let r = builtin().resolve("grok-3-fast").unwrap();
    assert_eq!((&*r.id, r.fast), ("grok-3-fast", false));
}

#[test]
fn a_newer_version_never_falls_back_to_an_older_model() {
    // With the newer models present they resolve to themselves…
    for id in [
        "claude-opus-4-5",
        "claude-opus-5-5",
        "claude-sonnet-4-5",
        "claude-haiku-5-5",
        "gpt-4o-mini",
    ] {
        assert_eq!(&*builtin().resolve(id).unwrap().id, id);
    }
    // …and without them they are unknown, never the shorter key they extend.
    let mut c = builtin().clone();
    for id in [
        "claude-opus-4-5",
        "claude-opus-5-5",
        "gpt-4o-mini",
        "gpt-5.4-mini",
    ] {
        assert!(c.remove_model(id), "{id}");
    }
    for id in [
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "claude-opus-5-5",
        "gpt-4o-mini-2024-07-18",
        "gpt-5.4-mini",
    ] {
        match c.resolve(id) {
            Err(Error::UnknownModel { model }) => assert_eq!(model, id),
            other => panic!("{id} -> {other:?}"),
        }
    }
}

#[test]
fn made_up_and_synthetic_ids_are_unknown() {
    for id in [
        "claude-opus-4-9",
        "claude-opus-4-9-20270101",
        "<synthetic>",
        "gpt-7",
        "anthropic.claude-opus-4-9-v1:0",
        "",
    ] {
        match builtin().resolve(id) {
            Err(e @ Error::UnknownModel { .. }) => assert_eq!(e.code(), "UNKNOWN_MODEL"),
            other => panic!("{id:?} -> {other:?}"),
        }
        let err = builtin()
            .cost(
                id,
                &MIO,
                at("2026-01-01T00:00:00Z"),
                &PricingContext::default(),
            )
            .unwrap_err();
        assert!(matches!(err, Error::UnknownModel { .. }), "{id:?}: {err}");
    }
}

// ------------------------------------------------------------------------------------------
// Prices at version boundaries

#[test]
fn o3_price_cut_on_2025_06_10() {
    // $10 in / $2.50 cached / $40 out, then $2 / $0.50 / $8.
    let u = tokens(1_000_000, 1_000_000, 1_000_000);
    assert_eq!(total("o3", &u, "2025-06-09T23:59:59Z"), usd("52.50"));
    assert_eq!(
        total("o3-2025-04-16", &u, "2025-06-10T00:00:00Z"),
        usd("10.50")
    );
    // Flex is half price in both periods: (10 + 2.50 + 40) / 2 and (2 + 0.50 + 8) / 2.
    let flex = PricingContext {
        service_tier: ServiceTier::Flex,
        ..Default::default()
    };
    assert_eq!(
        total_with("o3", &u, "2025-05-01T00:00:00Z", &flex),
        usd("26.25")
    );
    assert_eq!(
        total_with("o3", &u, "2025-07-01T00:00:00Z", &flex),
        usd("5.25")
    );
    // Priority after the cut: 3.50 + 0.875 + 14.
    let prio = PricingContext {
        service_tier: ServiceTier::Priority,
        ..Default::default()
    };
    assert_eq!(
        total_with("o3", &u, "2025-07-01T00:00:00Z", &prio),
        usd("18.375")
    );
}

#[test]
fn sonnet_4_6_long_context_tier_ends_on_2026_03_13() {
    // 150,000 input + 60,000 cache reads = 210,000 prompt tokens > 200,000.
    let u = tokens(150_000, 60_000, 1_000);
    let before = builtin()
        .cost(
            "claude-sonnet-4-6",
            &u,
            at("2026-03-12T23:59:59Z"),
            &PricingContext::default(),
        )
        .unwrap();
    // 150000 × 6 + 60000 × 0.60 + 1000 × 22.50, per million
    assert_eq!(before.total, usd("0.9585"));
    assert_eq!(before.basis.tier_above, Some(200_000));
    let after = builtin()
        .cost(
            "claude-sonnet-4-6",
            &u,
            at("2026-03-13T00:00:00Z"),
            &PricingContext::default(),
        )
        .unwrap();
    // 150000 × 3 + 60000 × 0.30 + 1000 × 15
    assert_eq!(after.total, usd("0.483"));
    assert_eq!(after.basis.tier_above, None);
    // Opus 4.6 the same way: 150000 × 10 + 60000 × 1 + 1000 × 37.50 before, 5 / 0.50 / 25 after.
    assert_eq!(
        total("claude-opus-4-6", &u, "2026-03-12T23:59:59Z"),
        usd("1.5975")
    );
    assert_eq!(
        total("claude-opus-4-6", &u, "2026-03-13T00:00:00Z"),
        usd("0.805")
    );
}

#[test]
fn long_context_tiers_apply_strictly_above_the_threshold_to_the_whole_request() {
    // §C.3: Sonnet 4.5, 150,000 input + 100,000 cache reads + 1,000 output = $0.9825.
    assert_eq!(
        total(
            "claude-sonnet-4-5",
            &tokens(150_000, 100_000, 1_000),
            "2026-06-01T00:00:00Z"
        ),
        usd("0.9825")
    );
    // Exactly 200,000 is not above 200,000: 200000 × 3.
    assert_eq!(
        total(
            "claude-sonnet-4-5",
            &tokens(200_000, 0, 0),
            "2026-06-01T00:00:00Z"
        ),
        usd("0.6")
    );
    assert_eq!(
        total(
            "claude-sonnet-4-5",
            &tokens(200_001, 0, 0),
            "2026-06-01T00:00:00Z"
        ),
        usd("1.200006")
    );
    // Sonnet 4 keeps the tier ([LL]); cache writes count toward the prompt: 150000 + 60000 writes.
    let u = TokenUsage {
        input: 150_000,
        cache_write_1h: 60_000,
        output: 2_000,
        ..Default::default()
    };
    // 150000 × 6 + 60000 × 12 + 2000 × 22.50
    assert_eq!(
        total("claude-sonnet-4-20250514", &u, "2026-06-01T00:00:00Z"),
        usd("1.665")
    );
    // Haiku 5.5 at 100K: 100000 × 0.10 vs 100001 × 0.50.
    assert_eq!(
        total(
            "claude-haiku-5-5",
            &tokens(100_000, 0, 0),
            "2026-11-01T00:00:00Z"
        ),
        usd("0.01")
    );
    assert_eq!(
        total(
            "claude-haiku-5-5",
            &tokens(100_001, 0, 0),
            "2026-11-01T00:00:00Z"
        ),
        usd("0.0500005")
    );
    // gpt-5.4 over 272K: 300000 × 5 + 1000 × 22.50.
    assert_eq!(
        total(
            "gpt-5.4",
            &tokens(300_000, 0, 1_000),
            "2026-06-01T00:00:00Z"
        ),
        usd("1.5225")
    );
    // Gemini 1.5 Pro over 128K: 130000 × 2.50.
    assert_eq!(
        total(
            "gemini-1.5-pro",
            &tokens(130_000, 0, 0),
            "2025-01-01T00:00:00Z"
        ),
        usd("0.325")
    );
    // Opus 4.7 is flat across 1M: 500000 × 5.
    assert_eq!(
        total(
            "claude-opus-4-7",
            &tokens(500_000, 0, 0),
            "2026-06-01T00:00:00Z"
        ),
        usd("2.5")
    );
}

#[test]
fn deepseek_off_peak_window_edges() {
    // Standard 0.27 / 0.07 / 1.10 (chat); off-peak 0.135 / 0.035 / 0.55 for both models.
    let u = tokens(1_000_000, 1_000_000, 1_000_000);
    let cases = [
        ("2025-03-01T16:29:59Z", "1.44"),
        ("2025-03-01T16:30:00Z", "0.72"),
        ("2025-03-01T23:59:59Z", "0.72"),
        ("2025-03-02T00:29:59Z", "0.72"),
        ("2025-03-02T00:30:00Z", "1.44"),
        // The discount started with the 16:30 UTC window of 2025-02-26.
        ("2025-02-25T17:00:00Z", "1.44"),
        ("2025-02-26T00:10:00Z", "1.44"),
        ("2025-02-26T16:30:00Z", "0.72"),
        // Ends 2025-09-05 16:00 UTC with the unified 0.56 / 0.07 / 1.68.
        ("2025-09-05T15:59:59Z", "1.44"),
        ("2025-09-05T16:00:00Z", "2.31"),
        ("2025-09-05T17:00:00Z", "2.31"),
        // V3.2: 0.28 / 0.028 / 0.42 from 2025-12-01 (the project's date; the sources give none).
        ("2025-11-30T23:59:59Z", "2.31"),
        ("2025-12-01T00:00:00Z", "0.728"),
    ];
    for (when, want) in cases {
        assert_eq!(
            total("deepseek-chat", &u, when),
            usd(want),
            "deepseek-chat at {when}"
        );
    }
    // Reasoner: 0.55 / 0.14 / 2.19 standard, the same off-peak prices.
    assert_eq!(
        total("deepseek-reasoner", &u, "2025-03-01T16:29:59Z"),
        usd("2.88")
    );
    let c = builtin()
        .cost(
            "deepseek-reasoner",
            &u,
            at("2025-03-01T16:30:00Z"),
            &PricingContext::default(),
        )
        .unwrap();
    assert_eq!(c.total, usd("0.72"));
    assert_eq!(
        c.basis.modifiers.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [ModifierKind::TimeOfDay]
    );
}

#[test]
fn deepseek_v4_peak_hours_in_beijing_time() {
    // 0.14 + 0.0028 + 0.28 off-peak; ×2 at peak. Beijing is UTC+8: peak 01:00–04:00 and
    // 06:00–10:00 UTC.
    let u = tokens(1_000_000, 1_000_000, 1_000_000);
    let cases = [
        ("2026-08-03T00:59:59Z", "0.4228"), // 08:59:59 Beijing
        ("2026-08-03T01:00:00Z", "0.8456"), // 09:00:00
        ("2026-08-03T03:59:59Z", "0.8456"), // 11:59:59
        ("2026-08-03T04:00:00Z", "0.4228"), // 12:00:00
        ("2026-08-03T05:59:59Z", "0.4228"), // 13:59:59
        ("2026-08-03T06:00:00Z", "0.8456"), // 14:00:00
        ("2026-08-03T09:59:59Z", "0.8456"), // 17:59:59
        ("2026-08-03T10:00:00Z", "0.4228"), // 18:00:00
        ("2026-07-14T02:00:00Z", "0.4228"), // peak hour, before peak pricing began
    ];
    for (when, want) in cases {
        assert_eq!(
            total("deepseek-v4-flash", &u, when),
            usd(want),
            "deepseek-v4-flash at {when}"
        );
    }
    // Pro: 0.435 + 0.003625 + 0.87 = 1.308625, ×2 at peak.
    assert_eq!(
        total("deepseek-v4-pro", &u, "2026-08-03T02:00:00Z"),
        usd("2.61725")
    );
    assert_eq!(
        total("deepseek-v4-pro", &u, "2026-08-03T12:00:00Z"),
        usd("1.308625")
    );
}

#[test]
fn other_dated_changes() {
    // Claude 3.5 Haiku: $1/$5 at launch, $0.80/$4 from (about) 2024-12-01; Vertex stays $1/$5.
    assert_eq!(
        total("claude-3-5-haiku-20241022", &MIO, "2024-11-20T00:00:00Z"),
        usd("0.6")
    );
    assert_eq!(
        total("claude-3-5-haiku-20241022", &MIO, "2025-01-10T00:00:00Z"),
        usd("0.48")
    );
    assert_eq!(
        total(
            "vertex_ai/claude-3-5-haiku@20241022",
            &MIO,
            "2025-06-01T00:00:00Z"
        ),
        usd("0.6")
    );
    // gpt-5.6 cuts on 2026-07-30: luna 1 + 6 → 0.20 + 1.20; terra 2.50 + 15 → 2 + 12.
    assert_eq!(
        total("gpt-5.6-luna", &MIO, "2026-07-29T23:59:59Z"),
        usd("0.7")
    );
    assert_eq!(
        total("gpt-5.6-luna", &MIO, "2026-07-30T00:00:00Z"),
        usd("0.14")
    );
    assert_eq!(
        total("gpt-5.6-terra", &MIO, "2026-07-29T23:59:59Z"),
        usd("1.75")
    );
    assert_eq!(
        total("gpt-5.6-terra", &MIO, "2026-07-30T00:00:00Z"),
        usd("1.4")
    );
    // gpt-5.6 bills cache writes: 100,000 × 6.25 for sol.
    let w = TokenUsage {
        cache_write_5m: 100_000,
        ..Default::default()
    };
    assert_eq!(total("gpt-5.6", &w, "2026-08-01T00:00:00Z"), usd("0.625"));
    // Older OpenAI models bill cache writes at the input price.
    assert_eq!(total("gpt-4o", &w, "2026-08-01T00:00:00Z"), usd("0.25"));
    // Gemini 3.6 / 3.7 Flash intro price ends 2026-12-31: 0.75 + 3.75 → 1.50 + 7.50.
    for m in ["gemini-3.6-flash", "gemini-3.7-flash"] {
        assert_eq!(total(m, &MIO, "2026-12-31T23:59:59Z"), usd("0.45"), "{m}");
        assert_eq!(total(m, &MIO, "2027-01-01T00:00:00Z"), usd("0.9"), "{m}");
    }
    // Sonnet 5 stays $2/$10 after 2026-09-01 (the planned rise was cancelled).
    assert_eq!(
        total("claude-sonnet-5", &MIO, "2026-10-01T00:00:00Z"),
        usd("1.2")
    );
    // Sonnet 5.5 cache reads: $0.20, then $0.10 from 2026-10-07.
    let r = TokenUsage {
        cache_read: 1_000_000,
        ..Default::default()
    };
    assert_eq!(
        total("claude-sonnet-5-5", &r, "2026-10-06T23:59:59Z"),
        usd("0.20")
    );
    assert_eq!(
        total("claude-sonnet-5-5", &r, "2026-10-07T00:00:00Z"),
        usd("0.10")
    );
    // gpt-4o-2024-05-13 costs $5/$15, not gpt-4o's $2.50/$10.
    assert_eq!(
        total("gpt-4o-2024-05-13", &MIO, "2024-06-01T00:00:00Z"),
        usd("2")
    );
    assert_eq!(
        total("gpt-4o-2024-08-06", &MIO, "2024-09-01T00:00:00Z"),
        usd("1.25")
    );
}

#[test]
fn explicit_cache_prices_and_platform_histories() {
    // Claude 3 Haiku: 1P 0.25 / 0.30 / 0.50 / 0.03 / 1.25; Bedrock 0.3125 write, 0.025 read.
    let when = "2025-01-01T00:00:00Z";
    assert_eq!(total("claude-3-haiku-20240307", &ALL, when), usd("0.0233"));
    assert_eq!(
        total("anthropic.claude-3-haiku-20240307-v1:0", &ALL, when),
        usd("0.023375")
    );
    // Fable 5.1 reads at ×0.025: 10 + 0.25 + 12.50 + 20 + 50.
    assert_eq!(
        total("claude-fable-5-1", &ALL, "2026-11-01T00:00:00Z"),
        usd("0.9275")
    );
    // Claude 2.1 has no cache prices: every category at the input price, 8 × 4 + 24.
    assert_eq!(total("claude-2.1", &ALL, when), usd("0.56"));
}

#[test]
fn anthropic_modifiers_stack() {
    let when = "2026-06-01T00:00:00Z";
    let batch = PricingContext {
        service_tier: ServiceTier::Batch,
        ..Default::default()
    };
    let fast = PricingContext {
        speed: Speed::Fast,
        ..Default::default()
    };
    let us = PricingContext {
        inference_geo: Some("us".into()),
        ..Default::default()
    };
    // Batch ×0.5 (provider default): (3 + 15) / 2.
    assert_eq!(
        total_with("claude-sonnet-4-5", &MIO, when, &batch),
        usd("0.9")
    );
    assert_eq!(
        total_with("claude-3-haiku", &MIO, when, &batch),
        usd("0.075")
    );
    // Fast mode: Opus 4.6 ×6 = 30 + 150; via the Claude Code `-fast` id too.
    assert_eq!(total_with("claude-opus-4-6", &MIO, when, &fast), usd("18"));
    assert_eq!(total("claude-opus-4-6-fast", &MIO, when), usd("18"));
    // Fast + batch + US-only stack: 30 × 6 × 0.5 × 1.1.
    let all = PricingContext {
        speed: Speed::Fast,
        inference_geo: Some("us".into()),
        ..batch.clone()
    };
    assert_eq!(total_with("claude-opus-4-6", &MIO, when, &all), usd("9.9"));
    // Opus 4.7 fast ×6 until fast mode was removed on 2026-07-24.
    assert_eq!(
        total_with("claude-opus-4-7", &MIO, "2026-07-23T23:59:59Z", &fast),
        usd("18")
    );
    let after = builtin()
        .cost("claude-opus-4-7", &MIO, at("2026-07-24T00:00:00Z"), &fast)
        .unwrap();
    assert_eq!(after.total, usd("3"));
    assert!(
        after.basis.notes.iter().any(|n| n.contains("fast")),
        "{:?}",
        after.basis.notes
    );
    // ×2 for Opus 4.8, Opus 5 and Opus 5.5 ("$8/$40").
    assert_eq!(total_with("claude-opus-4-8", &MIO, when, &fast), usd("6"));
    assert_eq!(
        total_with("claude-opus-5", &MIO, "2026-08-01T00:00:00Z", &fast),
        usd("6")
    );
    assert_eq!(
        total_with("claude-opus-5-5", &MIO, "2026-11-01T00:00:00Z", &fast),
        usd("4.8")
    );
    // US-only inference ×1.1 from Opus 4.6 on, not before.
    assert_eq!(total_with("claude-opus-4-6", &MIO, when, &us), usd("3.3"));
    assert_eq!(total_with("claude-opus-4-5", &MIO, when, &us), usd("3"));
    // Web search: $10 per 1,000 → 3 searches = $0.03.
    let s = TokenUsage {
        web_search_requests: 3,
        ..Default::default()
    };
    assert_eq!(total("claude-haiku-4-5", &s, when), usd("0.03"));
}

#[test]
fn cloud_deployment_premiums_start_with_sonnet_4_5() {
    // Bedrock regional ×1.1, GovCloud ×1.2 and Vertex regional ×1.1 for these; none for older models.
    let premium = [
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-5",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-sonnet-5",
        "claude-opus-5",
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
    ];
    let when = "2026-11-01T00:00:00Z";
    let ctx = |platform, deployment| PricingContext {
        platform: Some(platform),
        deployment: Some(deployment),
        ..Default::default()
    };
    for m in builtin().models().filter(|m| m.provider() == "anthropic") {
        let id = m.id();
        let base =
            total_with(id, &MIO, when, &ctx(Platform::Bedrock, Deployment::Global)).as_decimal();
        let regional = total_with(
            id,
            &MIO,
            when,
            &ctx(Platform::Bedrock, Deployment::Regional),
        )
        .as_decimal();
        let gov = total_with(
            id,
            &MIO,
            when,
            &ctx(Platform::Bedrock, Deployment::GovCloud),
        )
        .as_decimal();
        let vertex =
            total_with(id, &MIO, when, &ctx(Platform::Vertex, Deployment::Regional)).as_decimal();
        let vertex_base =
            total_with(id, &MIO, when, &ctx(Platform::Vertex, Deployment::Global)).as_decimal();
        let (r, g) = if premium.contains(&id) {
            ("1.1", "1.2")
        } else {
            ("1", "1")
        };
        let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
        assert_eq!(regional, base * dec(r), "{id} Bedrock regional");
        assert_eq!(gov, base * dec(g), "{id} Bedrock GovCloud");
        assert_eq!(vertex, vertex_base * dec(r), "{id} Vertex regional");
    }
    // The reference's own examples: us.anthropic Sonnet 4.5 = 3.30 + 16.50; GovCloud 3.60 + 18.
    assert_eq!(
        total("us.anthropic.claude-sonnet-4-5-20250929-v1:0", &MIO, when),
        usd("1.98")
    );
    assert_eq!(
        total("anthropic.claude-sonnet-4-5-20250929-v1:0", &MIO, when),
        usd("1.98")
    );
    assert_eq!(
        total(
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            &MIO,
            when
        ),
        usd("1.8")
    );
    assert_eq!(
        total(
            "bedrock/us-gov-west-1/anthropic.claude-sonnet-4-5-20250929-v1:0",
            &MIO,
            when
        ),
        usd("2.16")
    );
    // Opus 4.6+ regional: 5.50 input, 6.875 write, 0.55 read, 27.50 output (+ 1h at 11).
    assert_eq!(
        total("us.anthropic.claude-opus-4-6-v1", &ALL, when),
        usd("0.51425")
    );
    // No premium before Sonnet 4.5.
    assert_eq!(
        total("us.anthropic.claude-sonnet-4-20250514-v1:0", &MIO, when),
        usd("1.8")
    );
}

#[test]
fn inference_geo_us_starts_with_opus_4_6() {
    let from = [
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-sonnet-5",
        "claude-opus-5",
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
    ];
    let when = "2026-11-01T00:00:00Z";
    let us = PricingContext {
        inference_geo: Some("us".into()),
        ..Default::default()
    };
    for m in builtin().models().filter(|m| m.provider() == "anthropic") {
        let id = m.id();
        let base = total(id, &MIO, when).as_decimal();
        let geo = total_with(id, &MIO, when, &us).as_decimal();
        let want = if from.contains(&id) {
            base * rust_decimal::Decimal::new(11, 1)
        } else {
            base
        };
        assert_eq!(geo, want, "{id}");
    }
}

#[test]
fn openai_and_gemini_service_tiers() {
    let when = "2026-06-01T00:00:00Z";
    // 100,000 each of input, cache reads and output: a tenth of the per-million sums below,
    // and under every prompt-size tier.
    let u = tokens(100_000, 100_000, 100_000);
    let tier = |t| PricingContext {
        service_tier: t,
        ..Default::default()
    };
    // Priority from [LL]'s figures: gpt-4o 4.25 + 2.125 + 17; gpt-4.1 3.50 + 0.875 + 14;
    // o4-mini 2 + 0.50 + 8; gpt-5 2.50 + 0.25 + 20; gpt-4o-mini 0.25 + 0.125 + 1.00.
    for (m, want) in [
        ("gpt-4o", "2.3375"),
        ("gpt-4.1", "1.8375"),
        ("o4-mini", "1.05"),
        ("gpt-5", "2.275"),
        ("gpt-4o-mini", "0.1375"),
        ("gpt-5.1", "2.275"), // ×2 of 1.25 + 0.125 + 10
        ("gpt-5.5", "8.875"), // ×2.5 of 5 + 0.50 + 30
    ] {
        assert_eq!(
            total_with(m, &u, when, &tier(ServiceTier::Priority)),
            usd(want),
            "{m} priority"
        );
    }
    // Flex ×0.5: gpt-5 0.625 + 0.0625 + 5; o4-mini 0.55 + 0.1375 + 2.20.
    assert_eq!(
        total_with("gpt-5", &u, when, &tier(ServiceTier::Flex)),
        usd("0.56875")
    );
    assert_eq!(
        total_with("o4-mini", &u, when, &tier(ServiceTier::Flex)),
        usd("0.28875")
    );
    // Batch ×0.5: gpt-4.1 1 + 0.25 + 4.
    assert_eq!(
        total_with("gpt-4.1", &u, when, &tier(ServiceTier::Batch)),
        usd("0.525")
    );
    // No priority price for gpt-5-nano ([LL]'s is wrong): standard price, with a note.
    let c = builtin()
        .cost("gpt-5-nano", &u, at(when), &tier(ServiceTier::Priority))
        .unwrap();
    assert_eq!(c.total, usd("0.0455"));
    assert!(
        c.basis.notes.iter().any(|n| n.contains("priority")),
        "{:?}",
        c.basis.notes
    );
    // Gemini 3 Pro: priority ×1.8 = 3.60 + 0.36 + 21.60; batch 1 + 0.10 + 6.
    assert_eq!(
        total_with(
            "gemini-3-pro-preview",
            &u,
            when,
            &tier(ServiceTier::Priority)
        ),
        usd("2.556")
    );
    assert_eq!(
        total_with("gemini-3-pro-preview", &u, when, &tier(ServiceTier::Batch)),
        usd("0.71")
    );
    // gpt-5.4 priority applies on top of the >272K tier: 300000 × 5 × 2.
    assert_eq!(
        total_with(
            "gpt-5.4",
            &tokens(300_000, 0, 0),
            when,
            &tier(ServiceTier::Priority)
        ),
        usd("3")
    );
}

// ------------------------------------------------------------------------------------------
// JSON round trip

#[test]
fn builtin_round_trips_through_json() {
    let json = builtin().to_json();
    let back = PriceCatalog::from_json(&json).unwrap();
    assert_eq!(back.to_json(), json);
    assert_eq!(back.version(), builtin().version());
    assert_eq!(back.models().count(), builtin().models().count());
    for (m, when) in [
        ("deepseek-chat", "2025-03-01T16:30:00Z"),
        ("deepseek-v4-pro", "2026-08-03T02:00:00Z"),
        ("claude-opus-4-6", "2026-03-12T00:00:00Z"),
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "2025-01-01T00:00:00Z",
        ),
        ("us.anthropic.claude-opus-4-6-v1", "2026-06-01T00:00:00Z"),
    ] {
        let u = tokens(150_000, 60_000, 1_000);
        let a = builtin()
            .cost(m, &u, at(when), &PricingContext::default())
            .unwrap();
        let b = back
            .cost(m, &u, at(when), &PricingContext::default())
            .unwrap();
        assert_eq!(a, b, "{m}");
    }
}

// ------------------------------------------------------------------------------------------
// Bad catalog data

fn catalog_error(models: &str) -> (String, String, String) {
    let json = format!(r#"{{"version": "t", "models": [{models}]}}"#);
    match PriceCatalog::from_json(&json) {
        Err(e @ Error::InvalidCatalog { .. }) => {
            assert_eq!(e.code(), "INVALID_CATALOG");
            let Error::InvalidCatalog {
                model,
                field,
                reason,
            } = e
            else {
                unreachable!()
            };
            (model, field, reason)
        }
        other => panic!("expected InvalidCatalog for {models}, got {other:?}"),
    }
}

#[test]
fn bad_catalog_data_names_the_model_and_field() {
    let (m, f, r) = catalog_error(
        r#"{"id": "m1", "provider": "p", "prices": [{"input": "-1", "output": "2"}]}"#,
    );
    assert_eq!((m.as_str(), f.as_str()), ("m1", "prices[0].input"));
    assert!(r.contains("negative"), "{r}");

    let (m, f, _) = catalog_error(r#"{"id": "m2", "provider": "p", "prices": [{"input": "1"}]}"#);
    assert_eq!((m.as_str(), f.as_str()), ("m2", "prices[0].output"));

    let (m, f, _) = catalog_error(
        r#"{"id": "m3", "provider": "p", "prices": [{"input": "1", "output": "2", "tiers": [{"above": 10, "input": "2"}]}]}"#,
    );
    assert_eq!(
        (m.as_str(), f.as_str()),
        ("m3", "prices[0].tiers[0].output")
    );

    let (m, _, r) = catalog_error(
        r#"{"id": "m4", "provider": "p", "prices": [{"input": "1", "output": "2", "outptu": "3"}]}"#,
    );
    assert_eq!(m, "m4");
    assert!(r.contains("outptu"), "{r}");

    let (m, f, r) = catalog_error(
        r#"{"id": "m5", "provider": "p", "prices": [{"input": "1", "output": "2",
            "time_of_day": [{"start": "09:00", "end": "12:00", "tz": "Mars/Olympus_Mons", "adjust": "2"}]}]}"#,
    );
    assert_eq!(
        (m.as_str(), f.as_str()),
        ("m5", "prices[0].time_of_day[0].tz")
    );
    assert!(r.contains("Mars/Olympus_Mons"), "{r}");

    let (m, f, _) = catalog_error(
        r#"{"id": "m6", "provider": "p", "prices": [{"from": "2025-02-01", "input": "1", "output": "2"},
                                                   {"from": "2025-01-01", "input": "1", "output": "2"}]}"#,
    );
    assert_eq!((m.as_str(), f.as_str()), ("m6", "prices[1].from"));

    let (m, f, _) = catalog_error(
        r#"{"id": "m7", "provider": "p", "prices": [{"input": "1", "output": "2", "modifiers": {"batch": "0"}}]}"#,
    );
    assert_eq!(
        (m.as_str(), f.as_str()),
        ("m7", "prices[0].modifiers.batch")
    );

    let (m, f, _) = catalog_error(
        r#"{"id": "a", "provider": "p", "aliases": ["shared"], "prices": [{"input": "1", "output": "2"}]},
           {"id": "b", "provider": "p", "aliases": ["shared"], "prices": [{"input": "1", "output": "2"}]}"#,
    );
    assert_eq!((m.as_str(), f.as_str()), ("b", "aliases"));

    let (m, f, _) = catalog_error(
        r#"{"id": "m8", "provider": "p", "prices": [{"input": "1", "output": "2"}], "platforms": {"azure": [{"input": "1", "output": "2"}]}}"#,
    );
    assert_eq!((m.as_str(), f.as_str()), ("m8", "platforms.azure"));

    match PriceCatalog::from_json(r#"{"version": "t", "modles": [], "models": []}"#) {
        Err(Error::InvalidCatalog { model, reason, .. }) => {
            assert_eq!(model, "<catalog>");
            assert!(reason.contains("modles"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// LiteLLM import

const LITELLM: &str = r#"{
  "sample_spec": {
    "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers"
  },
  "claude-sonnet-4-5": {
    "litellm_provider": "anthropic", "mode": "chat", "max_input_tokens": 1000000,
    "input_cost_per_token": 3e-06,
    "output_cost_per_token": 1.5e-05,
    "cache_read_input_token_cost": 3e-07,
    "cache_creation_input_token_cost": 3.75e-06,
    "cache_creation_input_token_cost_above_1hr": 6e-06,
    "input_cost_per_token_above_200k_tokens": 6e-06,
    "output_cost_per_token_above_200k_tokens": 2.25e-05,
    "cache_read_input_token_cost_above_200k_tokens": 6e-07,
    "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
    "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
    "input_cost_per_token_batches": 1.5e-06,
    "output_cost_per_token_batches": 7.5e-06,
    "search_context_cost_per_query": {"search_context_size_low": 0.01, "search_context_size_medium": 0.01, "search_context_size_high": 0.01},
    "provider_specific_entry": {"us": 1.1, "fast": 6},
    "supports_vision": true
  },
  "gpt-4o": {
    "litellm_provider": "openai",
    "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
    "input_cost_per_token_priority": 4.25e-06, "output_cost_per_token_priority": 1.7e-05,
    "cache_read_input_token_cost_priority": 2.125e-06,
    "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 5e-06,
    "search_context_cost_per_query": {"search_context_size_low": 0.03, "search_context_size_medium": 0.035, "search_context_size_high": 0.05}
  },
  "gpt-5-nano": {
    "litellm_provider": "openai",
    "input_cost_per_token": 5e-08, "output_cost_per_token": 4e-07, "cache_read_input_token_cost": 5e-09,
    "input_cost_per_token_priority": 2.5e-06, "output_cost_per_token_priority": 8e-07
  },
  "gpt-5.4": {
    "litellm_provider": "openai",
    "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 2.5e-07,
    "input_cost_per_token_above_272k_tokens": 5e-06, "output_cost_per_token_above_272k_tokens": 2.25e-05,
    "cache_read_input_token_cost_above_272k_tokens": 5e-07,
    "input_cost_per_token_flex": 1.25e-06, "output_cost_per_token_flex": 7.5e-06, "cache_read_input_token_cost_flex": 1.25e-07
  },
  "gemini-1.5-flash": {
    "litellm_provider": "gemini",
    "input_cost_per_token": 7.5e-08, "output_cost_per_token": 3e-07,
    "input_cost_per_token_above_128k_tokens": 1.5e-07, "output_cost_per_token_above_128k_tokens": 6e-07,
    "search_context_cost_per_query": 0.035
  },
  "claude-3-5-haiku-20241022": {
    "litellm_provider": "anthropic", "input_cost_per_token": 8e-07, "output_cost_per_token": 4e-06,
    "cache_creation_input_token_cost": 1e-06, "cache_read_input_token_cost": 8e-08,
    "deprecation_date": "2025-10-01"
  },
  "claude-3-5-haiku@20241022": {
    "litellm_provider": "vertex_ai-anthropic_models", "input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06,
    "cache_creation_input_token_cost": 1.25e-06, "cache_read_input_token_cost": 1e-07
  },
  "odd-float": {
    "litellm_provider": "openai", "input_cost_per_token": 3.0000000000000004e-06, "output_cost_per_token": "0.0000125"
  },
  "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
  "text-embedding-3-small": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08}
}"#;

#[test]
fn litellm_import_maps_prices_tiers_and_modifiers_exactly() {
    let c = PriceCatalog::from_litellm_json(LITELLM, "litellm-2026-07-24").unwrap();
    assert_eq!(c.version(), "litellm-2026-07-24");
    let mut ids: Vec<_> = c.models().map(|m| m.id().to_owned()).collect();
    ids.sort();
    // sample_spec, the image model and the input-only embedding are skipped; the Vertex key
    // joins its Anthropic twin.
    assert_eq!(
        ids,
        [
            "claude-3-5-haiku-20241022",
            "claude-sonnet-4-5",
            "gemini-1.5-flash",
            "gpt-4o",
            "gpt-5-nano",
            "gpt-5.4",
            "odd-float"
        ]
    );
    assert_eq!(
        c.model("claude-sonnet-4-5").unwrap().provider(),
        "anthropic"
    );

    let when = at("2026-07-24T00:00:00Z");
    let v = c.price_at("claude-sonnet-4-5", when, None).unwrap();
    let s = &v.schedule;
    let p = |d: rust_decimal::Decimal| d.normalize().to_string();
    assert_eq!(
        [
            p(s.base.input),
            p(s.base.cache_write_5m),
            p(s.base.cache_write_1h),
            p(s.base.cache_read),
            p(s.base.output)
        ],
        ["3", "3.75", "6", "0.3", "15"]
    );
    assert_eq!(s.tiers.len(), 1);
    let (above, t) = &s.tiers[0];
    assert_eq!(*above, 200_000);
    assert_eq!(
        [
            p(t.input),
            p(t.cache_write_5m),
            p(t.cache_write_1h),
            p(t.cache_read),
            p(t.output)
        ],
        ["6", "7.5", "12", "0.6", "22.5"]
    );
    assert_eq!(p(v.web_search_per_1k), "10");

    // Batch became ×0.5 (it also halves the cache categories LiteLLM leaves out), fast ×6, US ×1.1.
    let batch = PricingContext {
        service_tier: ServiceTier::Batch,
        ..Default::default()
    };
    let cost = c.cost("claude-sonnet-4-5", &ALL, when, &batch).unwrap();
    // (3 + 0.30 + 3.75 + 6 + 15) / 2
    assert_eq!(cost.total, usd("0.14025"));
    assert_eq!(cost.basis.modifiers[0].factor, Some("0.5".parse().unwrap()));
    let all = PricingContext {
        speed: Speed::Fast,
        inference_geo: Some("us".into()),
        ..batch
    };
    // 18 × 0.5 × 6 × 1.1
    assert_eq!(
        total_in(&c, "claude-sonnet-4-5", &MIO, "2026-07-24T00:00:00Z", &all),
        usd("5.94")
    );
    // The §C.3 tier example prices the same as the built-in catalog.
    assert_eq!(
        total_in(
            &c,
            "claude-sonnet-4-5",
            &tokens(150_000, 100_000, 1_000),
            "2026-07-24T00:00:00Z",
            &PricingContext::default()
        ),
        usd("0.9825")
    );

    // Priority prices that are one multiple (×1.7) of the standard ones become that multiplier.
    let prio = PricingContext {
        service_tier: ServiceTier::Priority,
        ..Default::default()
    };
    let cost = c
        .cost(
            "gpt-4o",
            &tokens(1_000_000, 1_000_000, 1_000_000),
            when,
            &prio,
        )
        .unwrap();
    assert_eq!(cost.total, usd("23.375")); // 4.25 + 2.125 + 17
    assert_eq!(cost.basis.modifiers[0].factor, Some("1.7".parse().unwrap()));
    // Web search from the medium context size: $0.035 per query = $35 per 1,000.
    assert_eq!(
        p(c.price_at("gpt-4o", when, None).unwrap().web_search_per_1k),
        "35"
    );
    assert_eq!(
        p(c.price_at("gemini-1.5-flash", when, None)
            .unwrap()
            .web_search_per_1k),
        "35"
    );

    // Priority prices that are not one multiple stay an explicit schedule; the cached price
    // LiteLLM leaves out falls back to the standard one: 2.50 + 0.005 + 0.80.
    let cost = c
        .cost(
            "gpt-5-nano",
            &tokens(1_000_000, 1_000_000, 1_000_000),
            when,
            &prio,
        )
        .unwrap();
    assert_eq!(cost.total, usd("3.305"));
    assert_eq!(cost.basis.modifiers[0].factor, None);

    // Flex ×0.5 keeps the >272K tier: 300000 × 5 × 0.5.
    let flex = PricingContext {
        service_tier: ServiceTier::Flex,
        ..Default::default()
    };
    assert_eq!(
        total_in(
            &c,
            "gpt-5.4",
            &tokens(300_000, 0, 0),
            "2026-07-24T00:00:00Z",
            &flex
        ),
        usd("0.75")
    );
    // 128K tier: 130000 × 0.15.
    assert_eq!(
        total_in(
            &c,
            "gemini-1.5-flash",
            &tokens(130_000, 0, 0),
            "2026-07-24T00:00:00Z",
            &PricingContext::default()
        ),
        usd("0.0195")
    );

    // The Vertex twin prices the model on Vertex only: 0.80 + 4 direct, 1 + 5 on Vertex.
    assert_eq!(
        total_in(
            &c,
            "claude-3-5-haiku-20241022",
            &MIO,
            "2026-07-24T00:00:00Z",
            &PricingContext::default()
        ),
        usd("0.48")
    );
    assert_eq!(
        total_in(
            &c,
            "claude-3-5-haiku@20241022",
            &MIO,
            "2026-07-24T00:00:00Z",
            &PricingContext::default()
        ),
        usd("0.6")
    );
    // Without a 1h price, 1h writes take the 5m write price (1.00), never the lower input price.
    let w = TokenUsage {
        cache_write_1h: 1_000_000,
        ..Default::default()
    };
    assert_eq!(
        total_in(
            &c,
            "claude-3-5-haiku-20241022",
            &w,
            "2026-07-24T00:00:00Z",
            &PricingContext::default()
        ),
        usd("1")
    );
    assert!(
        c.model("claude-3-5-haiku-20241022")
            .unwrap()
            .to_file()
            .comment
            .as_deref()
            .unwrap_or("")
            .contains("2025-10-01")
    );

    // Exact decimals straight from the number's text, never through f64.
    let v = c.price_at("odd-float", when, None).unwrap();
    assert_eq!(v.schedule.base.input.to_string(), "3.0000000000000004");
    assert_eq!(p(v.schedule.base.output), "12.5");

    // An imported catalog round-trips through this crate's format.
    let back = PriceCatalog::from_json(&c.to_json()).unwrap();
    assert_eq!(back.to_json(), c.to_json());
}

#[test]
fn litellm_bad_data_names_the_entry_and_field() {
    let cases = [
        (
            r#"{"m": {"litellm_provider": "x", "input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06}}"#,
            "m",
            "input_cost_per_token",
        ),
        (
            r#"{"m": {"litellm_provider": "x", "input_cost_per_token": "abc", "output_cost_per_token": 1e-06}}"#,
            "m",
            "input_cost_per_token",
        ),
        (
            r#"{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}}"#,
            "m",
            "litellm_provider",
        ),
        (r#"{"m": [1, 2]}"#, "m", "<entry>"),
        (
            r#"{"m": {"litellm_provider": "x", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "provider_specific_entry": {"fast": 0}}}"#,
            "m",
            "provider_specific_entry.fast",
        ),
        (
            r#"{"m": {"litellm_provider": "x", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "search_context_cost_per_query": {"search_context_size_high": 0.05}}}"#,
            "m",
            "search_context_cost_per_query",
        ),
        (
            r#"{"m": {"litellm_provider": "x", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "cache_read_input_token_cost_priority": true}}"#,
            "m",
            "cache_read_input_token_cost_priority",
        ),
        ("[1, 2]", "<litellm>", "<json>"),
    ];
    for (json, model, field) in cases {
        match PriceCatalog::from_litellm_json(json, "v") {
            Err(Error::InvalidCatalog {
                model: m, field: f, ..
            }) => {
                assert_eq!((m.as_str(), f.as_str()), (model, field), "{json}");
            }
            other => panic!("{json}: expected InvalidCatalog, got {other:?}"),
        }
    }
}
