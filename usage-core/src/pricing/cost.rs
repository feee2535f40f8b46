//! The cost engine: usage + model + instant + context → an exact [`CostBreakdown`] that says
//! how every figure was reached.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::catalog::{PriceCatalog, ResolvedModel};
use super::compiled::{self, Adjustment, CompiledModifiers, PriceSet, Schedule};
use crate::context::{Deployment, Platform, PricingContext, ServiceTier, Speed};
use crate::error::Result;
use crate::money::Usd;
use crate::tokens::TokenUsage;

const MTOK: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const THOUSAND: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);

/// A price modifier that was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModifierKind {
    /// Batch processing.
    Batch,
    /// Flex processing.
    Flex,
    /// Priority processing.
    Priority,
    /// Anthropic fast mode.
    Fast,
    /// Anthropic US-only inference.
    InferenceGeoUs,
    /// Bedrock regional profile.
    BedrockRegional,
    /// Bedrock GovCloud.
    BedrockGovCloud,
    /// Vertex regional endpoint.
    VertexRegional,
    /// A time-of-day window (DeepSeek off-peak or peak hours).
    TimeOfDay,
}

impl ModifierKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ModifierKind::Batch => "batch",
            ModifierKind::Flex => "flex",
            ModifierKind::Priority => "priority",
            ModifierKind::Fast => "fast",
            ModifierKind::InferenceGeoUs => "inference_geo_us",
            ModifierKind::BedrockRegional => "bedrock_regional",
            ModifierKind::BedrockGovCloud => "bedrock_gov_cloud",
            ModifierKind::VertexRegional => "vertex_regional",
            ModifierKind::TimeOfDay => "time_of_day",
        }
    }
}

impl fmt::Display for ModifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One applied modifier: a multiplier, or (`factor: None`) a substituted price schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedModifier {
    /// Which modifier.
    pub kind: ModifierKind,
    /// The multiplier, when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<Decimal>,
}

/// How a cost was reached: enough to explain any figure to a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingBasis {
    /// The catalog id the model resolved to.
    pub model: Arc<str>,
    /// The provider key.
    pub provider: Arc<str>,
    /// Start of the price version used (`None`: the model's first prices).
    pub price_from: Option<DateTime<Utc>>,
    /// The prompt-size tier threshold crossed, if any.
    pub tier_above: Option<u64>,
    /// Platform priced on.
    pub platform: Platform,
    /// Modifiers applied, in order.
    pub modifiers: Vec<AppliedModifier>,
    /// The catalog version.
    pub catalog_version: Arc<str>,
    /// Anything a reader should know (a tier with no known price, a timestamp before the
    /// model's first price).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// An exact cost, line by line. Each line is rounded once, half-to-even, to 1e-9 USD; `total`
/// is the sum of the lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Uncached input.
    pub input: Usd,
    /// Cache reads.
    pub cache_read: Usd,
    /// 5-minute cache writes.
    pub cache_write_5m: Usd,
    /// 1-hour cache writes.
    pub cache_write_1h: Usd,
    /// Output, reasoning included.
    pub output: Usd,
    /// Web search fees.
    pub web_search: Usd,
    /// The sum of the lines above.
    pub total: Usd,
    /// How it was priced.
    pub basis: PricingBasis,
}

impl CostBreakdown {
    /// The token lines and the tool fee, in a fixed order, with their names.
    pub fn lines(&self) -> [(&'static str, Usd); 6] {
        [
            ("input", self.input),
            ("cache_read", self.cache_read),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("output", self.output),
            ("web_search", self.web_search),
        ]
    }
}

fn pick(m: &CompiledModifiers, tier: ServiceTier) -> (Option<&Adjustment>, Option<ModifierKind>) {
    match tier {
        ServiceTier::Standard | ServiceTier::Provisioned => (None, None),
        ServiceTier::Batch => (m.batch.as_ref(), Some(ModifierKind::Batch)),
        ServiceTier::Flex => (m.flex.as_ref(), Some(ModifierKind::Flex)),
        ServiceTier::Priority => (m.priority.as_ref(), Some(ModifierKind::Priority)),
    }
}

struct Pricing<'a> {
    schedule: &'a Schedule,
    factor: Decimal,
    applied: Vec<AppliedModifier>,
}

impl<'a> Pricing<'a> {
    fn apply(&mut self, kind: ModifierKind, adj: &'a Adjustment) {
        match adj {
            Adjustment::Multiplier(m) => {
                self.factor *= *m;
                self.applied.push(AppliedModifier {
                    kind,
                    factor: Some(*m),
                });
            }
            Adjustment::Prices(s) => {
                self.schedule = s;
                self.applied.push(AppliedModifier { kind, factor: None });
            }
        }
    }
}

/// `tokens × per_mtok × factor / 1,000,000`, exact, rounded once. Dividing by a million is done
/// by moving the decimal point (exact and far cheaper than a decimal division).
fn line(tokens: u64, per_mtok: Decimal, factor: Decimal) -> Usd {
    if tokens == 0 || per_mtok.is_zero() {
        return Usd::ZERO;
    }
    let mut v = Decimal::from(tokens) * per_mtok;
    if factor != Decimal::ONE {
        v *= factor;
    }
    let scale = v.scale() + 6;
    if scale <= 28 {
        v.set_scale(scale).unwrap_or_default();
    } else {
        v /= MTOK;
    }
    Usd::new(v).round()
}

impl PriceCatalog {
    /// Prices `usage` of `model` at the instant `at` under `context`.
    ///
    /// Fails with [`crate::Error::UnknownModel`] for a model the catalog does not know (never a
    /// silent zero) and [`crate::Error::InvalidUsage`] for inconsistent usage.
    pub fn cost(
        &self,
        model: &str,
        usage: &TokenUsage,
        at: DateTime<Utc>,
        context: &PricingContext,
    ) -> Result<CostBreakdown> {
        let resolved = self.resolve(model)?;
        self.cost_resolved(&resolved, usage, at, context)
    }

    /// [`PriceCatalog::cost`] for a model already resolved by [`PriceCatalog::resolve`].
    pub fn cost_resolved(
        &self,
        resolved: &ResolvedModel,
        usage: &TokenUsage,
        at: DateTime<Utc>,
        context: &PricingContext,
    ) -> Result<CostBreakdown> {
        usage.validate()?;
        let entry = self.entry(resolved);
        let platform = context.platform.or(resolved.platform).unwrap_or_default();
        let deployment = context
            .deployment
            .or(resolved.deployment)
            .unwrap_or_default();
        let speed = if resolved.fast {
            Speed::Fast
        } else {
            context.speed
        };
        let (version, in_force) = compiled::in_force(entry.versions(platform), at);
        let mods = &version.modifiers;
        let mut notes = Vec::new();
        if !in_force {
            notes.push(format!(
                "{at} is before the first known price of {}; its earliest prices were used",
                entry.id
            ));
        }
        let mut p = Pricing {
            schedule: &version.schedule,
            factor: Decimal::ONE,
            applied: Vec::new(),
        };

        match pick(mods, context.service_tier) {
            (Some(adj), Some(kind)) => p.apply(kind, adj),
            (None, Some(kind)) => notes.push(format!(
                "no {kind} price is known for {}; standard prices were used",
                entry.id
            )),
            _ => {}
        }
        if context.service_tier == ServiceTier::Provisioned {
            notes.push("provisioned throughput is prepaid; standard prices were used".to_owned());
        }
        for w in &version.time_of_day {
            if w.contains(at) {
                p.apply(ModifierKind::TimeOfDay, &w.adjust);
            }
        }
        if speed == Speed::Fast {
            match &mods.fast {
                Some(adj) => p.apply(ModifierKind::Fast, adj),
                None => notes.push(format!(
                    "no fast-mode price is known for {}; standard prices were used",
                    entry.id
                )),
            }
        }
        if context.is_us_only()
            && let Some(adj) = &mods.inference_geo_us
        {
            p.apply(ModifierKind::InferenceGeoUs, adj);
        }
        let deployment_mod = match (platform, deployment) {
            (Platform::Bedrock, Deployment::Regional) => mods
                .bedrock_regional
                .as_ref()
                .map(|a| (ModifierKind::BedrockRegional, a)),
            (Platform::Bedrock, Deployment::GovCloud) => mods
                .bedrock_gov_cloud
                .as_ref()
                .map(|a| (ModifierKind::BedrockGovCloud, a)),
            (Platform::Vertex, Deployment::Regional) => mods
                .vertex_regional
                .as_ref()
                .map(|a| (ModifierKind::VertexRegional, a)),
            _ => None,
        };
        if let Some((kind, adj)) = deployment_mod {
            p.apply(kind, adj);
        }

        let (prices, tier_above): (&PriceSet, Option<u64>) =
            p.schedule.select(usage.prompt_tokens());
        let f = p.factor;
        let input = line(usage.input, prices.input, f);
        let cache_read = line(usage.cache_read, prices.cache_read, f);
        let cache_write_5m = line(usage.cache_write_5m, prices.cache_write_5m, f);
        let cache_write_1h = line(usage.cache_write_1h, prices.cache_write_1h, f);
        let output = line(usage.output, prices.output, f);
        let web_search = if usage.web_search_requests == 0 {
            Usd::ZERO
        } else {
            Usd::new(
                Decimal::from(usage.web_search_requests) * version.web_search_per_1k / THOUSAND,
            )
            .round()
        };
        let total = input + cache_read + cache_write_5m + cache_write_1h + output + web_search;
        Ok(CostBreakdown {
            input,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output,
            web_search,
            total,
            basis: PricingBasis {
                model: entry.id.clone(),
                provider: entry.provider.clone(),
                price_from: version.from,
                tier_above,
                platform,
                modifiers: p.applied,
                catalog_version: self.version_arc().clone(),
                notes,
            },
        })
    }
}
