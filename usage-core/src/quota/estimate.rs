//! Worst-case estimates of a request before it is sent: what to reserve against each quota so
//! that a request admitted under a hard limit cannot take spend past it.
//!
//! Prices come from the real cost engine ([`PriceCatalog::cost`]), never from a flat per-token
//! rate, so the prompt-size tier, service tier, fast mode and deployment premiums all apply.
//! (LiteLLM's reservations priced every request at the base rate and under-reserved prompts
//! past GPT-5.4's 272K tier: BerriAI/litellm PR #40002.)

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Quota, QuotaMetric};
use crate::context::PricingContext;
use crate::error::{Error, Result};
use crate::money::Usd;
use crate::pricing::PriceCatalog;
use crate::query::Totals;
use crate::tokens::{MAX_TOKENS, TokenUsage};

/// What one request is expected to use at most: its tokens and their price.
///
/// ```
/// use usage_core::{TokenUsage, Usd, quota::{QuotaMetric, estimate::Estimate}};
/// let e = Estimate::new(TokenUsage { input: 1000, output: 500, ..Default::default() }, "0.01".parse().unwrap());
/// assert_eq!(e.amount(QuotaMetric::TotalTokens).to_string(), "1500");
/// assert_eq!(e.amount(QuotaMetric::Requests).to_string(), "1");
/// assert_eq!(e.amount(QuotaMetric::Cost).to_string(), "0.01");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// The tokens the request may use.
    pub usage: TokenUsage,
    /// Their price.
    pub cost: Usd,
}

impl Estimate {
    /// An estimate from usage and a price the caller worked out.
    pub fn new(usage: TokenUsage, cost: Usd) -> Self {
        Estimate { usage, cost }
    }

    /// Prices `usage` of `model` at `at` under `context` with the cost engine. Use it instead of
    /// [`worst_case`] when the request is known to write to a prompt cache (cache writes cost
    /// more than plain input) or to run server-side tools (web search fees).
    ///
    /// Fails with [`Error::UnknownModel`] for a model the catalog does not know and
    /// [`Error::InvalidUsage`] for inconsistent usage.
    pub fn priced(
        catalog: &PriceCatalog,
        model: &str,
        usage: TokenUsage,
        at: DateTime<Utc>,
        context: &PricingContext,
    ) -> Result<Self> {
        let cost = catalog.cost(model, &usage, at, context)?;
        Ok(Estimate {
            usage,
            cost: cost.total,
        })
    }

    /// The amount to reserve against a quota counting `metric`: one request, the tokens of
    /// `usage`, or `cost`. Counted exactly as recorded usage is ([`QuotaMetric::amount`]).
    pub fn amount(&self, metric: QuotaMetric) -> Decimal {
        let u = &self.usage;
        metric.amount(&Totals {
            requests: 1,
            input: u.input,
            cache_read: u.cache_read,
            cache_write_5m: u.cache_write_5m,
            cache_write_1h: u.cache_write_1h,
            output: u.output,
            reasoning: u.reasoning,
            web_search_requests: u.web_search_requests,
            web_fetch_requests: u.web_fetch_requests,
            cost_total: self.cost,
            ..Default::default()
        })
    }

    /// `(quota id, amount)` for each quota, in each quota's metric: the `requested` argument of
    /// [`super::status::decide`].
    pub fn amounts(&self, quotas: &[Quota]) -> Vec<(String, Decimal)> {
        quotas
            .iter()
            .map(|q| (q.id.clone(), self.amount(q.metric)))
            .collect()
    }
}

/// The most a request to `model` with `prompt_tokens` of input and at most `max_tokens` of
/// output (reasoning included, as every provider bills it) can cost at `at` under `context`.
///
/// The whole prompt is priced as uncached input, so the prompt-size tier is the one the real
/// request will fall in, and service tier, fast mode and deployment premiums apply as they
/// would to the recorded event. Cache reads would only make the request cheaper (a read is
/// never dearer than uncached input, and reads count towards the same tier); cache writes and
/// server-side tools can make it dearer: a caller expecting them prices a full [`TokenUsage`]
/// through [`Estimate::priced`] instead.
///
/// Fails with [`Error::UnknownModel`] for a model the catalog does not know (never a silent
/// zero reservation) and [`Error::InvalidUsage`] naming `prompt_tokens` or `max_tokens` when a
/// count is past [`MAX_TOKENS`].
///
/// ```
/// use usage_core::{PriceCatalog, PricingContext, quota::estimate::worst_case};
/// let at = "2026-06-01T00:00:00Z".parse().unwrap();
/// let e = worst_case(PriceCatalog::builtin(), "gpt-5.4", 300_000, 10_000, at, &PricingContext::default()).unwrap();
/// // Past 272K prompt tokens the whole request is billed at $5 in / $22.50 out per million.
/// assert_eq!(e.cost.to_string(), "1.725");
/// ```
pub fn worst_case(
    catalog: &PriceCatalog,
    model: &str,
    prompt_tokens: u64,
    max_tokens: u64,
    at: DateTime<Utc>,
    context: &PricingContext,
) -> Result<Estimate> {
    for (field, v) in [("prompt_tokens", prompt_tokens), ("max_tokens", max_tokens)] {
        if v > MAX_TOKENS {
            return Err(Error::usage(
                field,
                format!("is {v}; one request cannot use more than {MAX_TOKENS}"),
            ));
        }
    }
    let usage = TokenUsage {
        input: prompt_tokens,
        output: max_tokens,
        ..Default::default()
    };
    Estimate::priced(catalog, model, usage, at, context)
}

/// A rough count of the prompt tokens in a request's prompt parts (messages, system, tools,
/// input, instructions…), for reservations only (usage is read from responses): the
/// characters of every string in them over four, rounded up. Base64 payloads (`data` keys:
/// images, documents) are skipped, so attachments do not inflate a hold by their encoding.
///
/// ```
/// use usage_core::quota::estimate::approx_prompt_tokens;
/// let parts = serde_json::json!([
///     [{"role": "user", "content": [
///         {"type": "text", "text": "Describe this"},
///         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo..."}}
///     ]}],
///     "Be brief."
/// ]);
/// // "user", "text", "Describe this", "image", "base64", "image/png", "Be brief.": 50 chars.
/// assert_eq!(approx_prompt_tokens(&parts), 13);
/// ```
pub fn approx_prompt_tokens(parts: &serde_json::Value) -> u64 {
    prompt_rule::tokens(prompt_chars(parts, 0))
}

/// The parts of [`approx_prompt_tokens`]' rule, for a binding that walks its own language's
/// prompt data directly instead of converting it to JSON first, so that a long conversation is
/// counted without copying its text (the Python wrapper uses these; the Node wrapper's walk is
/// in JS, with these values written out, and its tests check it against this function): a
/// string counts its characters, a list or map the sum of its items' (a map's values only,
/// [`SKIPPED_KEY`] excepted), anything else nothing; nothing deeper than [`MAX_DEPTH`] counts.
///
/// [`SKIPPED_KEY`]: prompt_rule::SKIPPED_KEY
/// [`MAX_DEPTH`]: prompt_rule::MAX_DEPTH
pub mod prompt_rule {
    /// The map key whose value is not counted (base64 payloads).
    pub const SKIPPED_KEY: &str = "data";
    /// Items deeper than this count nothing (the parts themselves are at depth 0).
    pub const MAX_DEPTH: usize = 64;

    /// Tokens for a character count: a quarter, rounded up.
    pub fn tokens(chars: u64) -> u64 {
        chars.div_ceil(4)
    }
}

/// The characters [`approx_prompt_tokens`] counts in `v`, found at `depth`.
pub fn prompt_chars(v: &serde_json::Value, depth: usize) -> u64 {
    use serde_json::Value;
    if depth > prompt_rule::MAX_DEPTH {
        return 0;
    }
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(items) => items.iter().map(|x| prompt_chars(x, depth + 1)).sum(),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != prompt_rule::SKIPPED_KEY)
            .map(|(_, x)| prompt_chars(x, depth + 1))
            .sum(),
        _ => 0,
    }
}
