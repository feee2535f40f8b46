//! A recorded LLM call: [`UsageEvent`], what an app hands the tracker ([`NewEvent`]), and the
//! exact cost stored with it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::PricingContext;
use crate::error::{Error, Result};
use crate::money::Usd;
use crate::pricing::CostBreakdown;
use crate::tokens::TokenUsage;

/// Longest accepted id, tag key or tag value, in bytes.
pub const MAX_TEXT_LEN: usize = 512;

/// An event's idempotency key: the provider's message/request id when known, else one the
/// caller supplied, else a generated one. Recording the same id twice stores it once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Checks and wraps an id: non-empty, at most [`MAX_TEXT_LEN`] bytes, no control characters.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        check_text("id", &id)?;
        Ok(EventId(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn check_text(field: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::argument(field, "is empty"));
    }
    if s.len() > MAX_TEXT_LEN {
        return Err(Error::argument(
            field,
            format!("is {} bytes long; the limit is {MAX_TEXT_LEN}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::argument(
            field,
            format!("`{}` contains a control character", s.escape_debug()),
        ));
    }
    Ok(())
}

/// Whether the call succeeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The provider answered.
    #[default]
    Success,
    /// The call failed (the error type and message say how).
    Error,
}

impl Status {
    /// `"success"` or `"error"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "success" | "ok" => Ok(Status::Success),
            "error" | "failed" => Ok(Status::Error),
            _ => Err(Error::argument(
                "status",
                format!("`{s}` is not one of success, error"),
            )),
        }
    }
}

/// Where an event's cost came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// Computed from the catalog.
    #[default]
    Calculated,
    /// Given by the caller (e.g. the Claude CLI's own `total_cost_usd`); only `total` is set.
    Provided,
    /// Not priced: the model is unknown to the catalog. Tokens still count.
    Unpriced,
}

impl CostSource {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            CostSource::Calculated => "calculated",
            CostSource::Provided => "provided",
            CostSource::Unpriced => "unpriced",
        }
    }
}

/// The cost stored with an event, line by line (all zero but `total` for a provided cost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCost {
    /// Uncached input.
    pub input: Usd,
    /// Cache reads.
    pub cache_read: Usd,
    /// 5-minute cache writes.
    pub cache_write_5m: Usd,
    /// 1-hour cache writes.
    pub cache_write_1h: Usd,
    /// Output.
    pub output: Usd,
    /// Web search fees.
    pub web_search: Usd,
    /// The total.
    pub total: Usd,
}

impl From<&CostBreakdown> for EventCost {
    fn from(c: &CostBreakdown) -> Self {
        EventCost {
            input: c.input,
            cache_read: c.cache_read,
            cache_write_5m: c.cache_write_5m,
            cache_write_1h: c.cache_write_1h,
            output: c.output,
            web_search: c.web_search,
            total: c.total,
        }
    }
}

/// One recorded call, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// The idempotency key.
    pub id: EventId,
    /// When the call happened (UTC, millisecond precision is stored).
    pub timestamp: DateTime<Utc>,
    /// The provider key (`anthropic`, `openai`…), free text for others.
    pub provider: String,
    /// The model as the response reported it.
    pub model: String,
    /// The catalog id it resolved to, when priced by the catalog.
    pub resolved_model: Option<String>,
    /// Tokens by category.
    pub usage: TokenUsage,
    /// The cost, `None` when unpriced.
    pub cost: Option<EventCost>,
    /// Where the cost came from.
    pub cost_source: CostSource,
    /// Why the event is unpriced, when it is.
    pub unpriced_reason: Option<String>,
    /// The catalog version that priced it.
    pub catalog_version: Option<String>,
    /// Time to first token (or to the response, when not streamed), in milliseconds.
    pub latency_ms: Option<u64>,
    /// Wall time of the whole call, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Success or error.
    pub status: Status,
    /// The error's type, for failed calls.
    pub error_type: Option<String>,
    /// The error's message, for failed calls.
    pub error_message: Option<String>,
    /// Service tier, speed and geography.
    pub context: PricingContext,
    /// The user the call was made for.
    pub user_id: Option<String>,
    /// Free-form dimensions: workflow, instance, endpoint, team, session…
    pub tags: BTreeMap<String, String>,
}

impl UsageEvent {
    /// The model used for grouping: the resolved catalog id, else the reported model.
    pub fn model_key(&self) -> &str {
        self.resolved_model.as_deref().unwrap_or(&self.model)
    }

    /// The total cost, zero when unpriced.
    pub fn total_cost(&self) -> Usd {
        self.cost.map(|c| c.total).unwrap_or(Usd::ZERO)
    }
}

/// What an app records: everything but the price, which the tracker computes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewEvent {
    /// The idempotency key (generated when absent).
    pub id: Option<String>,
    /// When the call happened (now when absent). Backfills in the past are accepted.
    pub timestamp: Option<DateTime<Utc>>,
    /// The provider key.
    pub provider: String,
    /// The model as reported.
    pub model: String,
    /// Tokens by category.
    pub usage: TokenUsage,
    /// Service tier, speed and geography.
    pub context: PricingContext,
    /// A cost to store instead of calculating one.
    pub provided_cost: Option<Usd>,
    /// Time to first token, ms.
    pub latency_ms: Option<u64>,
    /// Whole-call wall time, ms.
    pub duration_ms: Option<u64>,
    /// Success or error.
    pub status: Status,
    /// Error type for failed calls.
    pub error_type: Option<String>,
    /// Error message for failed calls.
    pub error_message: Option<String>,
    /// The user.
    pub user_id: Option<String>,
    /// Free-form dimensions.
    pub tags: BTreeMap<String, String>,
}

impl NewEvent {
    /// A success event for `provider`/`model` with `usage`.
    pub fn new(provider: impl Into<String>, model: impl Into<String>, usage: TokenUsage) -> Self {
        NewEvent {
            provider: provider.into(),
            model: model.into(),
            usage,
            ..Default::default()
        }
    }

    /// Sets the user.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Sets the idempotency key.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the timestamp.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.timestamp = Some(at);
        self
    }

    /// Checks everything that does not need the catalog: ids, tag keys and values, usage
    /// invariants, a provided cost that is not negative.
    pub fn validate(&self) -> Result<()> {
        if let Some(id) = &self.id {
            check_text("id", id)?;
        }
        check_text("provider", &self.provider)?;
        check_text("model", &self.model)?;
        if let Some(u) = &self.user_id {
            check_text("user_id", u)?;
        }
        for (k, v) in &self.tags {
            check_text("tag key", k)?;
            if v.len() > MAX_TEXT_LEN || v.chars().any(char::is_control) {
                return Err(Error::argument(
                    format!("tags.{k}"),
                    "is too long or contains a control character",
                ));
            }
        }
        self.usage.validate()?;
        if let Some(c) = self.provided_cost
            && c < Usd::ZERO
        {
            return Err(Error::usage(
                "provided_cost",
                format!("is {c}; a cost cannot be negative"),
            ));
        }
        Ok(())
    }
}

/// The outcome of pricing an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    /// The stored cost (`None`: unpriced).
    pub cost: Option<EventCost>,
    /// Where it came from.
    pub source: CostSource,
    /// The catalog id the model resolved to.
    pub resolved_model: Option<String>,
    /// Why it is unpriced.
    pub unpriced_reason: Option<String>,
    /// The catalog version used.
    pub catalog_version: Option<String>,
    /// The full breakdown, when calculated.
    pub breakdown: Option<CostBreakdown>,
}

/// Prices a call: a provided cost wins; else the catalog prices it; an unknown model leaves it
/// explicitly unpriced (tokens still count), never a silent zero. Invalid usage is an error.
pub fn price_call(
    catalog: &crate::pricing::PriceCatalog,
    model: &str,
    usage: &TokenUsage,
    at: DateTime<Utc>,
    context: &PricingContext,
    provided: Option<Usd>,
) -> Result<Priced> {
    usage.validate()?;
    let resolved = catalog.resolve(model).ok();
    if let Some(total) = provided {
        return Ok(Priced {
            cost: Some(EventCost {
                total: total.round(),
                ..Default::default()
            }),
            source: CostSource::Provided,
            resolved_model: resolved.map(|r| r.id.to_string()),
            unpriced_reason: None,
            catalog_version: None,
            breakdown: None,
        });
    }
    match resolved {
        Some(r) => {
            let b = catalog.cost_resolved(&r, usage, at, context)?;
            Ok(Priced {
                cost: Some(EventCost::from(&b)),
                source: CostSource::Calculated,
                resolved_model: Some(r.id.to_string()),
                unpriced_reason: None,
                catalog_version: Some(catalog.version().to_owned()),
                breakdown: Some(b),
            })
        }
        None => Ok(Priced {
            cost: None,
            source: CostSource::Unpriced,
            resolved_model: None,
            unpriced_reason: Some(format!(
                "model `{model}` is not in catalog {}",
                catalog.version()
            )),
            catalog_version: Some(catalog.version().to_owned()),
            breakdown: None,
        }),
    }
}

impl UsageEvent {
    /// This event priced again under `catalog`, or `None` when nothing would change. Provided
    /// costs are the caller's and never repriced; an event whose model the new catalog does
    /// not know keeps its old price.
    pub fn repriced(&self, catalog: &crate::pricing::PriceCatalog) -> Option<UsageEvent> {
        if self.cost_source == CostSource::Provided {
            return None;
        }
        let p = price_call(
            catalog,
            &self.model,
            &self.usage,
            self.timestamp,
            &self.context,
            None,
        )
        .ok()?;
        if p.source == CostSource::Unpriced {
            return None;
        }
        let mut e = self.clone();
        e.cost = p.cost;
        e.cost_source = p.source;
        e.resolved_model = p.resolved_model;
        e.unpriced_reason = None;
        e.catalog_version = p.catalog_version;
        // A new catalog version alone is not a change worth a write.
        (e.cost != self.cost || e.resolved_model != self.resolved_model).then_some(e)
    }
}
