//! Stateless pricing and extraction: the built-in (or a loaded) catalog, `cost`, `extract`,
//! worst-case estimates and the stream accumulator. All synchronous: pure CPU work that takes
//! microseconds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;
use serde_json::Value;
use usage_core::extract::{Provider, extract as core_extract};
use usage_core::pricing::PriceCatalog;
use usage_core::quota::estimate::{Estimate, worst_case};
use usage_core::{Error, PricingContext, TokenUsage};

use crate::convert::{from_js, parse_time, to_js};
use crate::error::{IntoNapi, bad_arg, to_napi};

/// Token counts as JS passes them (the core's `TokenUsage` field names). Read field by field:
/// much cheaper than walking an arbitrary object, which matters on the `cost()` hot path.
#[napi(object)]
#[derive(Default)]
pub struct UsageInput {
    /// Uncached input tokens.
    #[napi(js_name = "input")]
    pub input: Option<f64>,
    /// Cache reads.
    #[napi(js_name = "cache_read")]
    pub cache_read: Option<f64>,
    /// 5-minute cache writes.
    #[napi(js_name = "cache_write_5m")]
    pub cache_write_5m: Option<f64>,
    /// 1-hour cache writes.
    #[napi(js_name = "cache_write_1h")]
    pub cache_write_1h: Option<f64>,
    /// Output tokens, reasoning included.
    #[napi(js_name = "output")]
    pub output: Option<f64>,
    /// Reasoning tokens (part of `output`).
    #[napi(js_name = "reasoning")]
    pub reasoning: Option<f64>,
    /// Server-side web searches.
    #[napi(js_name = "web_search_requests")]
    pub web_search_requests: Option<f64>,
    /// Server-side web fetches.
    #[napi(js_name = "web_fetch_requests")]
    pub web_fetch_requests: Option<f64>,
}

fn token_count(field: &str, v: Option<f64>) -> napi::Result<u64> {
    match v {
        None => Ok(0),
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => Ok(x as u64),
        Some(x) => Err(to_napi(Error::usage(
            field,
            format!("must be a whole number of tokens, got {x}"),
        ))),
    }
}

impl UsageInput {
    /// The core's `TokenUsage` (absent counts are zero).
    pub fn to_usage(&self) -> napi::Result<TokenUsage> {
        Ok(TokenUsage {
            input: token_count("input", self.input)?,
            cache_read: token_count("cache_read", self.cache_read)?,
            cache_write_5m: token_count("cache_write_5m", self.cache_write_5m)?,
            cache_write_1h: token_count("cache_write_1h", self.cache_write_1h)?,
            output: token_count("output", self.output)?,
            reasoning: token_count("reasoning", self.reasoning)?,
            web_search_requests: token_count("web_search_requests", self.web_search_requests)?,
            web_fetch_requests: token_count("web_fetch_requests", self.web_fetch_requests)?,
        })
    }
}

/// When and how a call is priced: `at` (RFC 3339; now when absent) and the `PricingContext`
/// fields (the core's defaults when absent).
#[napi(object)]
#[derive(Default)]
pub struct PricingOptions {
    /// The instant the call happened (RFC 3339).
    pub at: Option<String>,
    /// `standard`, `batch`, `flex`, `priority`.
    #[napi(js_name = "service_tier")]
    pub service_tier: Option<String>,
    /// `standard` or `fast`.
    #[napi(js_name = "speed")]
    pub speed: Option<String>,
    /// Inference geography (`us`).
    #[napi(js_name = "inference_geo")]
    pub inference_geo: Option<Either<String, Null>>,
    /// The platform priced on (`direct`, `bedrock`, `vertex`…).
    #[napi(js_name = "platform")]
    pub platform: Option<Either<String, Null>>,
    /// The deployment (`global`, `regional`…).
    #[napi(js_name = "deployment")]
    pub deployment: Option<Either<String, Null>>,
}

/// `null` and absent are the same: the core's default.
fn nullable(v: Option<Either<String, Null>>) -> Option<String> {
    match v {
        Some(Either::A(s)) => Some(s),
        _ => None,
    }
}

fn variant<T: serde::de::DeserializeOwned>(
    field: &str,
    v: Option<String>,
) -> napi::Result<Option<T>> {
    v.map(|s| from_js(field, Value::String(s))).transpose()
}

impl PricingOptions {
    /// The instant (now when absent) and the pricing context.
    pub fn split(self) -> napi::Result<(DateTime<Utc>, PricingContext)> {
        let at = match &self.at {
            None => Utc::now(),
            Some(s) => parse_time("at", s)?,
        };
        let mut c = PricingContext::default();
        if let Some(x) = variant("service_tier", self.service_tier)? {
            c.service_tier = x;
        }
        if let Some(x) = variant("speed", self.speed)? {
            c.speed = x;
        }
        c.inference_geo = nullable(self.inference_geo);
        c.platform = variant("platform", nullable(self.platform))?;
        c.deployment = variant("deployment", nullable(self.deployment))?;
        Ok((at, c))
    }
}

/// A token count from JS: not negative.
pub fn count(field: &str, v: i64) -> napi::Result<u64> {
    u64::try_from(v).map_err(|_| to_napi(Error::usage(field, format!("is negative ({v})"))))
}

/// Prices `usage` of `model` with `catalog`.
pub fn cost_with(
    catalog: &PriceCatalog,
    model: &str,
    usage: UsageInput,
    options: Option<PricingOptions>,
) -> napi::Result<String> {
    let usage = usage.to_usage()?;
    let (at, context) = options.unwrap_or_default().split()?;
    to_js(&catalog.cost(model, &usage, at, &context).napi()?)
}

/// The worst-case estimate with `catalog`.
pub fn worst_case_with(
    catalog: &PriceCatalog,
    model: &str,
    prompt_tokens: i64,
    max_tokens: i64,
    options: Option<PricingOptions>,
) -> napi::Result<String> {
    let (at, context) = options.unwrap_or_default().split()?;
    let e = worst_case(
        catalog,
        model,
        count("prompt_tokens", prompt_tokens)?,
        count("max_tokens", max_tokens)?,
        at,
        &context,
    )
    .napi()?;
    to_js(&e)
}

/// Prices `usage` of `model` with the built-in catalog: a `CostBreakdown` with exact decimal
/// strings.
#[napi]
pub fn cost(
    model: String,
    usage: UsageInput,
    options: Option<PricingOptions>,
) -> napi::Result<String> {
    cost_with(PriceCatalog::builtin(), &model, usage, options)
}

/// `cost()` with the token counts as positional numbers and the instant apart: the JS layer
/// reads the usage object's fields itself, which is several times cheaper than napi reading
/// them one property lookup at a time, and `cost()` is called per request. `context` holds the
/// `PricingContext` fields (its `at` is ignored: `at` is the argument).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn cost_parts(
    catalog: Option<&Catalog>,
    model: String,
    input: Option<f64>,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    output: Option<f64>,
    reasoning: Option<f64>,
    web_search_requests: Option<f64>,
    web_fetch_requests: Option<f64>,
    at: Option<String>,
    context: Option<PricingOptions>,
) -> napi::Result<String> {
    let usage = UsageInput {
        input,
        cache_read,
        cache_write_5m,
        cache_write_1h,
        output,
        reasoning,
        web_search_requests,
        web_fetch_requests,
    };
    let options = PricingOptions {
        at,
        ..context.unwrap_or_default()
    };
    let catalog = match catalog {
        Some(c) => &c.inner,
        None => PriceCatalog::builtin(),
    };
    cost_with(catalog, &model, usage, Some(options))
}

/// Reads every usage record in a provider payload (`Extracted[]`).
#[napi]
pub fn extract(provider: String, response: Value) -> napi::Result<String> {
    let p: Provider = provider.parse().napi()?;
    to_js(&core_extract(p, &response).napi()?)
}

/// The top-level fields of `provider`'s responses and stream events that usage is never read
/// from (the generated content: `content`, `choices`, `output`…): the wrappers leave them out
/// of what they hand over, so a long answer is not serialised for nothing.
#[napi]
pub fn unread_fields(provider: String) -> napi::Result<Vec<String>> {
    let p: Provider = provider.parse().napi()?;
    Ok(p.unread_fields().iter().map(|f| (*f).to_owned()).collect())
}

/// A rough count of the prompt tokens in a request's prompt parts (given as JSON text), by the
/// core's rule: the characters of every string over four, base64 `data` payloads skipped. For
/// reservations only; usage is read from responses.
#[napi]
pub fn approx_prompt_tokens(parts_json: String) -> napi::Result<i64> {
    let v: Value = serde_json::from_str(&parts_json).map_err(|e| bad_arg("parts", e))?;
    let n = usage_core::quota::estimate::approx_prompt_tokens(&v);
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The most a request can cost (whole prompt as uncached input plus `maxTokens` of output),
/// priced with the built-in catalog: an `Estimate` to reserve.
#[napi]
pub fn worst_case_estimate(
    model: String,
    prompt_tokens: i64,
    max_tokens: i64,
    options: Option<PricingOptions>,
) -> napi::Result<String> {
    worst_case_with(
        PriceCatalog::builtin(),
        &model,
        prompt_tokens,
        max_tokens,
        options,
    )
}

/// `Estimate` from usage priced by the built-in catalog.
#[napi]
pub fn priced_estimate(
    model: String,
    usage: UsageInput,
    options: Option<PricingOptions>,
) -> napi::Result<String> {
    let usage = usage.to_usage()?;
    let (at, context) = options.unwrap_or_default().split()?;
    to_js(&Estimate::priced(PriceCatalog::builtin(), &model, usage, at, &context).napi()?)
}

/// A price catalog: the built-in one, one loaded from JSON (or LiteLLM's price file), with
/// models added or removed.
#[napi]
pub struct Catalog {
    pub(crate) inner: Arc<PriceCatalog>,
}

#[napi]
impl Catalog {
    /// The catalog compiled into the addon.
    #[napi(factory)]
    pub fn builtin() -> Catalog {
        Catalog {
            inner: Arc::new(PriceCatalog::builtin().clone()),
        }
    }

    /// A catalog from its JSON file format.
    #[napi(factory)]
    pub fn from_json(json: String) -> napi::Result<Catalog> {
        Ok(Catalog {
            inner: Arc::new(PriceCatalog::from_json(&json).napi()?),
        })
    }

    /// A catalog from LiteLLM's `model_prices_and_context_window.json`.
    #[napi(factory)]
    pub fn from_litellm_json(json: String, version: String) -> napi::Result<Catalog> {
        Ok(Catalog {
            inner: Arc::new(PriceCatalog::from_litellm_json(&json, version).napi()?),
        })
    }

    /// The catalog's version.
    #[napi(getter)]
    pub fn version(&self) -> String {
        self.inner.version().to_owned()
    }

    /// The catalog as JSON (its file format).
    #[napi]
    pub fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Every model id.
    #[napi]
    pub fn model_ids(&self) -> Vec<String> {
        self.inner.models().map(|m| m.id().to_owned()).collect()
    }

    /// The catalog id `model` resolves to (aliases, dated ids, platform prefixes).
    #[napi]
    pub fn resolve(&self, model: String) -> napi::Result<String> {
        Ok(self.inner.resolve(&model).napi()?.id.to_string())
    }

    /// Adds (or replaces) a model, given in the catalog's model file format.
    #[napi]
    pub fn add_model(&mut self, model: Value) -> napi::Result<()> {
        let m = from_js("model", model)?;
        Arc::make_mut(&mut self.inner).add_model(m).napi()
    }

    /// Merges another catalog's models into this one.
    #[napi]
    pub fn merge(&mut self, other: &Catalog) -> napi::Result<()> {
        Arc::make_mut(&mut self.inner)
            .merge((*other.inner).clone())
            .napi()
    }

    /// Removes a model; true when it was there.
    #[napi]
    pub fn remove_model(&mut self, id: String) -> bool {
        Arc::make_mut(&mut self.inner).remove_model(&id)
    }

    /// Prices `usage` of `model` with this catalog.
    #[napi]
    pub fn cost(
        &self,
        model: String,
        usage: UsageInput,
        options: Option<PricingOptions>,
    ) -> napi::Result<String> {
        cost_with(&self.inner, &model, usage, options)
    }

    /// The worst-case estimate of a request, priced with this catalog.
    #[napi]
    pub fn worst_case_estimate(
        &self,
        model: String,
        prompt_tokens: i64,
        max_tokens: i64,
        options: Option<PricingOptions>,
    ) -> napi::Result<String> {
        worst_case_with(&self.inner, &model, prompt_tokens, max_tokens, options)
    }
}

/// Accumulates a provider's stream events (SSE `data:` JSON or SDK events) into one record.
#[napi]
pub struct StreamAccumulator {
    inner: Option<usage_core::extract::StreamAccumulator>,
}

#[napi]
impl StreamAccumulator {
    /// An empty accumulator for `provider`'s stream format.
    #[napi(constructor)]
    pub fn new(provider: String) -> napi::Result<Self> {
        let p: Provider = provider.parse().napi()?;
        Ok(StreamAccumulator {
            inner: Some(usage_core::extract::StreamAccumulator::new(p)),
        })
    }

    fn acc(&mut self) -> napi::Result<&mut usage_core::extract::StreamAccumulator> {
        self.inner
            .as_mut()
            .ok_or_else(|| bad_arg("stream", "this accumulator was already finished"))
    }

    /// Feeds one event.
    #[napi]
    pub fn push(&mut self, event: Value) -> napi::Result<()> {
        self.acc()?.push(&event).napi()
    }

    /// The record as it stands (`null` before anything identifying was seen).
    #[napi]
    pub fn snapshot(&mut self) -> napi::Result<String> {
        to_js(&self.acc()?.snapshot())
    }

    /// The final record (`complete: false` for a stream that ended early).
    #[napi]
    pub fn finish(&mut self) -> napi::Result<String> {
        let acc = self
            .inner
            .take()
            .ok_or_else(|| bad_arg("stream", "this accumulator was already finished"))?;
        to_js(&acc.finish().napi()?)
    }
}
