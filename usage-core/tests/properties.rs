//! Invariants of the cost engine that must hold for every input, not just the vectors:
//! lines add up to the total, cost never falls when a token count rises within a tier, and
//! resolution does not change when unrelated models are added.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use usage_core::pricing::schema::{Dec, ModelFile, PriceVersionFile};
use usage_core::{PriceCatalog, PricingContext, ServiceTier, Speed, TokenUsage, Usd};

fn models() -> Vec<String> {
    PriceCatalog::builtin()
        .models()
        .map(|m| m.id().to_owned())
        .collect()
}

fn usage_strategy(max: u64) -> impl Strategy<Value = TokenUsage> {
    (0..max, 0..max, 0..max, 0..max, 0..max, 0..10u64).prop_map(|(i, r, w5, w1, o, ws)| {
        TokenUsage {
            input: i,
            cache_read: r,
            cache_write_5m: w5,
            cache_write_1h: w1,
            output: o,
            reasoning: o / 2,
            web_search_requests: ws,
            web_fetch_requests: 0,
        }
    })
}

fn context_strategy() -> impl Strategy<Value = PricingContext> {
    (0..5usize, any::<bool>(), any::<bool>()).prop_map(|(tier, fast, us)| PricingContext {
        service_tier: [
            ServiceTier::Standard,
            ServiceTier::Batch,
            ServiceTier::Flex,
            ServiceTier::Priority,
            ServiceTier::Provisioned,
        ][tier],
        speed: if fast { Speed::Fast } else { Speed::Standard },
        inference_geo: us.then(|| "us".to_owned()),
        ..Default::default()
    })
}

fn instant_strategy() -> impl Strategy<Value = DateTime<Utc>> {
    let base: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
    (0..(3 * 365 * 24 * 60i64)).prop_map(move |m| base + Duration::minutes(m))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn lines_sum_to_total(
        model in prop::sample::select(models()),
        usage in usage_strategy(2_000_000),
        ctx in context_strategy(),
        at in instant_strategy(),
    ) {
        let c = PriceCatalog::builtin().cost(&model, &usage, at, &ctx).unwrap();
        let sum: Usd = c.lines().iter().map(|(_, v)| *v).sum();
        prop_assert_eq!(sum, c.total);
        for (name, v) in c.lines() {
            prop_assert!(v >= Usd::ZERO, "{} is negative: {}", name, v);
            prop_assert_eq!(v, v.round(), "{} is not rounded to 1e-9", name);
        }
    }

    #[test]
    fn cost_is_monotonic_within_a_tier(
        model in prop::sample::select(models()),
        usage in usage_strategy(150_000),
        ctx in context_strategy(),
        at in instant_strategy(),
        field in 0..6usize,
        extra in 1..50_000u64,
    ) {
        let cat = PriceCatalog::builtin();
        let before = cat.cost(&model, &usage, at, &ctx).unwrap();
        let mut more = usage;
        match field {
            0 => more.input += extra,
            1 => more.cache_read += extra,
            2 => more.cache_write_5m += extra,
            3 => more.cache_write_1h += extra,
            4 => more.output += extra,
            _ => more.web_search_requests += extra % 20,
        }
        let after = cat.cost(&model, &more, at, &ctx).unwrap();
        // Only compare within one tier: crossing a threshold reprices the whole request.
        if before.basis.tier_above == after.basis.tier_above {
            prop_assert!(after.total >= before.total, "{} fell from {} to {}", model, before.total, after.total);
        }
    }

    #[test]
    fn resolution_is_stable_under_unrelated_additions(
        names in prop::collection::vec("[a-z]{3,8}-[a-z]{2,6}-[0-9]{1,2}", 1..20),
    ) {
        let spellings = [
            "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic/claude-3.5-sonnet", "gpt-4o-mini-2024-07-18", "gemini-2.5-pro",
            "vertex_ai/claude-opus-4-1@20250805", "claude-opus-4-6[1m]", "deepseek-chat",
        ];
        let base = PriceCatalog::builtin();
        let before: Vec<_> = spellings.iter().map(|s| base.resolve(s).map(|r| r.id.to_string()).ok()).collect();
        let mut cat = base.clone();
        for n in names {
            // Names that share no prefix with a real model family.
            let id = format!("zz-{n}");
            let file = ModelFile {
                id,
                provider: "custom".into(),
                name: None,
                aliases: vec![],
                released: None,
                retired: None,
                comment: None,
                modifiers: Default::default(),
                prices: vec![PriceVersionFile { input: Some(Dec(1.into())), output: Some(Dec(2.into())), ..Default::default() }],
                platforms: Default::default(),
            };
            cat.add_model(file).unwrap();
        }
        let after: Vec<_> = spellings.iter().map(|s| cat.resolve(s).map(|r| r.id.to_string()).ok()).collect();
        prop_assert_eq!(before, after);
    }
}
