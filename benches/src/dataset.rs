//! The reference data set of issue 3: events over the last 90 days from 1,000 users of very
//! unequal weight (Zipf, s = 1: the heaviest user makes ~13% of all calls, the median one
//! ~0.03%), 12 real models of Anthropic, OpenAI and Gemini, a `workflow` tag (5,000 values) and
//! an `instance` tag (~50,000 values, each owned by one user and alive for a few days), 2%
//! errors, log-normal token counts and latencies, and random provider-style ids. Everything
//! derives from a seed, so anyone can rebuild the same events.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use usage_core::{NewEvent, Status, TokenUsage};

use crate::rng::{Rng, Zipf};

/// The seed `gen-dataset` uses unless told otherwise.
pub const SEED: u64 = 0x5553_4743_0000_0003;
/// Distinct users.
pub const USERS: usize = 1_000;
/// The Zipf exponent of how calls spread over users.
pub const USER_SKEW: f64 = 1.0;
/// Distinct `workflow` tag values.
pub const WORKFLOWS: u64 = 5_000;
/// Distinct `instance` tag values (approximately: each user owns at least one).
pub const INSTANCES: u64 = 50_000;
/// The data set covers this many days, ending at generation time.
pub const DAYS: i64 = 90;
/// The share of calls that fail.
pub const ERROR_RATE: f64 = 0.02;

/// A model of the data set, with the shape of its typical call.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec {
    /// Provider key.
    pub provider: &'static str,
    /// The id as the provider reports it (a catalog id or alias, so it prices).
    pub model: &'static str,
    /// Relative share of calls.
    pub weight: u32,
    /// Median uncached input tokens.
    pub input: f64,
    /// Median output tokens.
    pub output: f64,
    /// Whether part of the output is reasoning.
    pub reasoning: bool,
    /// Median time to first token, ms.
    pub ttft_ms: f64,
    /// Output tokens per second once streaming.
    pub tokens_per_sec: f64,
}

// One positional row per model keeps the table below readable at a glance.
#[allow(clippy::too_many_arguments)]
const fn spec(
    provider: &'static str,
    model: &'static str,
    weight: u32,
    input: f64,
    output: f64,
    reasoning: bool,
    ttft_ms: f64,
    tokens_per_sec: f64,
) -> ModelSpec {
    ModelSpec {
        provider,
        model,
        weight,
        input,
        output,
        reasoning,
        ttft_ms,
        tokens_per_sec,
    }
}

/// The 12 models, 4 Anthropic, 5 OpenAI, 3 Gemini.
pub const MODELS: [ModelSpec; 12] = [
    spec(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        22,
        1_800.0,
        600.0,
        false,
        900.0,
        70.0,
    ),
    spec(
        "anthropic",
        "claude-haiku-4-5-20251001",
        14,
        1_500.0,
        350.0,
        false,
        450.0,
        150.0,
    ),
    spec(
        "anthropic",
        "claude-opus-4-1-20250805",
        4,
        2_500.0,
        800.0,
        false,
        1_600.0,
        40.0,
    ),
    spec(
        "anthropic",
        "claude-sonnet-4-20250514",
        5,
        1_800.0,
        550.0,
        false,
        950.0,
        65.0,
    ),
    spec(
        "openai",
        "gpt-4o-2024-08-06",
        8,
        1_200.0,
        400.0,
        false,
        500.0,
        90.0,
    ),
    spec(
        "openai",
        "gpt-4o-mini-2024-07-18",
        12,
        900.0,
        300.0,
        false,
        350.0,
        120.0,
    ),
    spec(
        "openai",
        "gpt-4.1-mini-2025-04-14",
        8,
        1_400.0,
        350.0,
        false,
        400.0,
        110.0,
    ),
    spec(
        "openai",
        "gpt-5-2025-08-07",
        7,
        2_000.0,
        1_400.0,
        true,
        2_500.0,
        80.0,
    ),
    spec(
        "openai",
        "o4-mini-2025-04-16",
        4,
        1_200.0,
        1_100.0,
        true,
        1_800.0,
        120.0,
    ),
    spec(
        "gemini",
        "gemini-2.5-pro",
        4,
        2_200.0,
        1_200.0,
        true,
        2_000.0,
        85.0,
    ),
    spec(
        "gemini",
        "gemini-2.5-flash",
        9,
        1_500.0,
        500.0,
        true,
        600.0,
        180.0,
    ),
    spec(
        "gemini",
        "gemini-2.0-flash-001",
        3,
        1_000.0,
        300.0,
        false,
        350.0,
        200.0,
    ),
];

/// The id of the user of popularity rank `rank` (0: heaviest). Ranks are scattered over ids,
/// so `user_0000` is not special.
pub fn user_id(rank: usize) -> String {
    // 7919 is prime and coprime with 1,000: a permutation of 0..1000.
    format!("user_{:04}", (rank * 7919 + 13) % USERS)
}

/// The heaviest user (~13% of calls).
pub fn heavy_user() -> String {
    user_id(0)
}

/// A median user (~0.03% of calls, a few thousand over 90 days at 10M events).
pub fn typical_user() -> String {
    user_id(USERS / 2)
}

/// Who calls and on which instances: users by Zipf rank, and the instance ids each owns
/// (a share of the 50,000 in proportion to the user's weight, at least one).
#[derive(Clone, Debug)]
struct Population {
    users: Zipf,
    ids: Vec<String>,
    instance_first: Vec<u64>,
    instance_count: Vec<u64>,
    model_cdf: Vec<u32>,
}

impl Population {
    fn new() -> Population {
        let users = Zipf::new(USERS, USER_SKEW);
        let mut instance_first = Vec::with_capacity(USERS);
        let mut instance_count = Vec::with_capacity(USERS);
        let mut next = 0u64;
        for r in 0..USERS {
            let n = ((INSTANCES as f64 * users.weight(r)).round() as u64).max(1);
            instance_first.push(next);
            instance_count.push(n);
            next += n;
        }
        let mut acc = 0;
        let model_cdf = MODELS
            .iter()
            .map(|m| {
                acc += m.weight;
                acc
            })
            .collect();
        Population {
            ids: (0..USERS).map(user_id).collect(),
            users,
            instance_first,
            instance_count,
            model_cdf,
        }
    }

    fn model(&self, rng: &mut Rng, user_rank: usize) -> &'static ModelSpec {
        // Users stick to a favourite model for 40% of their calls; the rest follow the
        // global mix. Per-user breakdowns then look like real ones.
        if rng.chance(0.4) {
            return &MODELS[(user_rank * 5) % MODELS.len()];
        }
        let total = *self.model_cdf.last().unwrap_or(&1);
        let x = rng.below(u64::from(total)) as u32;
        &MODELS[self.model_cdf.partition_point(|&c| c <= x)]
    }
}

/// Makes events: `event(at)` draws who, which model and tags, tokens, latency and outcome.
#[derive(Clone, Debug)]
pub struct EventMaker {
    rng: Rng,
    pop: Population,
    /// Where the 90 days start; instances live a few days each within it.
    start: DateTime<Utc>,
}

const ERRORS: [(&str, &str); 4] = [
    (
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
    ),
    ("overloaded_error", "Overloaded"),
    ("api_error", "Internal server error"),
    ("timeout", "Request timed out after 600s"),
];

impl EventMaker {
    /// A maker drawing from `seed`'s stream `label`, for a data set ending at `end`.
    pub fn new(seed: u64, label: &str, end: DateTime<Utc>) -> EventMaker {
        EventMaker {
            rng: Rng::stream(seed, label),
            pop: Population::new(),
            start: end - Duration::days(DAYS),
        }
    }

    /// The random number generator (for timestamps drawn alongside the events).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// One event at `at`.
    pub fn event(&mut self, at: DateTime<Utc>) -> NewEvent {
        let rng = &mut self.rng;
        let rank = self.pop.users.sample(rng);
        let m = self.pop.model(rng, rank);

        // The instance: the one the user is running around this time (each lives ~3 days).
        let n = self.pop.instance_count[rank];
        let frac = ((at - self.start).num_milliseconds() as f64
            / Duration::days(DAYS).num_milliseconds() as f64)
            .clamp(0.0, 1.0);
        let window = (n as f64 / 30.0).max(1.0);
        let k = (frac * n as f64 + (rng.unit() - 0.5) * window).clamp(0.0, (n - 1) as f64) as u64;
        let instance = self.pop.instance_first[rank] + k;
        let workflow = (instance * 7_919) % WORKFLOWS;

        let mut id = String::with_capacity(33);
        match m.provider {
            "anthropic" => id.push_str("msg_"),
            "openai" => id.push_str("chatcmpl-"),
            _ => {}
        }
        rng.base62(24, &mut id);

        let mut tags = BTreeMap::new();
        tags.insert("workflow".to_owned(), format!("wf-{workflow:04}"));
        tags.insert("instance".to_owned(), format!("inst-{instance:05}"));

        let mut e = NewEvent {
            id: Some(id),
            timestamp: Some(at),
            provider: m.provider.to_owned(),
            model: m.model.to_owned(),
            user_id: Some(self.pop.ids[rank].clone()),
            tags,
            ..Default::default()
        };

        if rng.chance(ERROR_RATE) {
            // Failed calls bill nothing; most fail fast, timeouts do not.
            let (kind, message) = ERRORS[rng.below(ERRORS.len() as u64) as usize];
            e.status = Status::Error;
            e.error_type = Some(kind.to_owned());
            e.error_message = Some(message.to_owned());
            e.duration_ms = Some(if kind == "timeout" {
                600_000
            } else {
                rng.lognormal(250.0, 0.6) as u64 + 1
            });
            return e;
        }

        let tokens = |rng: &mut Rng, median: f64, sigma: f64, max: f64| {
            rng.lognormal(median, sigma).clamp(1.0, max).round() as u64
        };
        let mut usage = TokenUsage {
            input: tokens(rng, m.input, 1.0, 150_000.0),
            output: tokens(rng, m.output, 0.9, 32_000.0),
            ..Default::default()
        };
        // Prompt caching: Anthropic writes then reads an explicit prefix; OpenAI and Gemini
        // cache implicitly (reads only, in 128-token blocks for OpenAI).
        match m.provider {
            "anthropic" if rng.chance(0.65) => {
                let prefix = tokens(rng, 12_000.0, 0.8, 180_000.0);
                let x = rng.unit();
                if x < 0.82 {
                    usage.cache_read = prefix;
                } else if x < 0.97 {
                    usage.cache_write_5m = prefix;
                } else {
                    usage.cache_write_1h = prefix;
                }
            }
            "openai" if rng.chance(0.45) => {
                usage.cache_read = tokens(rng, 4_000.0, 0.9, 120_000.0) / 128 * 128 + 1_024;
            }
            "gemini" if rng.chance(0.3) => {
                usage.cache_read = tokens(rng, 6_000.0, 0.9, 150_000.0);
            }
            _ => {}
        }
        if m.reasoning {
            usage.reasoning = (usage.output as f64 * (0.3 + 0.5 * rng.unit())) as u64;
        }
        let ttft = rng.lognormal(m.ttft_ms, 0.5).max(50.0);
        let stream = usage.output as f64 * 1000.0 / m.tokens_per_sec * rng.lognormal(1.0, 0.25);
        e.usage = usage;
        e.latency_ms = Some(ttft as u64);
        e.duration_ms = Some((ttft + stream) as u64);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_prices_in_the_builtin_catalog() {
        let catalog = usage_core::PriceCatalog::builtin();
        let at = "2026-11-01T00:00:00Z".parse().unwrap();
        let ctx = usage_core::PricingContext::default();
        let usage = TokenUsage {
            input: 100,
            output: 10,
            ..Default::default()
        };
        for m in MODELS {
            assert!(
                catalog.cost(m.model, &usage, at, &ctx).is_ok(),
                "{}",
                m.model
            );
        }
    }

    #[test]
    fn same_seed_same_events_and_the_shape_holds() {
        let end = "2026-11-23T00:00:00Z".parse().unwrap();
        let mut a = EventMaker::new(SEED, "t", end);
        let mut b = EventMaker::new(SEED, "t", end);
        let at = end - Duration::days(3);
        let (mut errors, mut heavy) = (0, 0);
        for _ in 0..20_000 {
            let (x, y) = (a.event(at), b.event(at));
            assert_eq!(x, y);
            x.validate().unwrap();
            errors += usize::from(x.status == Status::Error);
            heavy += usize::from(x.user_id.as_deref() == Some(heavy_user().as_str()));
        }
        assert!((250..550).contains(&errors), "{errors}");
        assert!((2_000..3_400).contains(&heavy), "{heavy}");
    }
}
