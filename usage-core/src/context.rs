//! How a request was served, as far as price is concerned: service tier, speed, data residency
//! and cloud deployment. Extractors fill it from what the response reports, not from what was
//! requested, because providers may serve a different tier than the one asked for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The processing tier a request was served at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceTier {
    /// The normal on-demand tier (OpenAI `default`/`auto`/`scale`, Gemini `ON_DEMAND`).
    #[default]
    Standard,
    /// Asynchronous batch processing (usually 50% off).
    Batch,
    /// Flex processing (OpenAI, Gemini; usually 50% off).
    Flex,
    /// Priority processing (a premium).
    Priority,
    /// Provisioned throughput (Gemini on Vertex): prepaid, priced at the standard rate here.
    Provisioned,
}

impl ServiceTier {
    /// The canonical name, as stored and accepted by [`FromStr`].
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Batch => "batch",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
            ServiceTier::Provisioned => "provisioned",
        }
    }

    /// Reads any provider's spelling of a tier (`default`, `auto`, `scale`, `ON_DEMAND_FLEX`,
    /// `fast`…). Unknown spellings are `None`, and the caller decides what that means.
    pub fn from_provider(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" | "default" | "auto" | "scale" | "on_demand" => ServiceTier::Standard,
            "batch" => ServiceTier::Batch,
            "flex" | "on_demand_flex" => ServiceTier::Flex,
            // OpenAI reports a request sent with `fast` as `priority`.
            "priority" | "fast" | "on_demand_priority" => ServiceTier::Priority,
            "provisioned" | "provisioned_throughput" => ServiceTier::Provisioned,
            _ => return None,
        })
    }
}

impl fmt::Display for ServiceTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceTier {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ServiceTier::from_provider(s).ok_or_else(|| {
            Error::argument(
                "service_tier",
                format!("`{s}` is not one of standard, batch, flex, priority, provisioned"),
            )
        })
    }
}

/// Output speed (Anthropic fast mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// Normal speed.
    #[default]
    Standard,
    /// Fast mode, billed at a model-specific premium.
    Fast,
}

impl Speed {
    /// The canonical name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Speed::Standard => "standard",
            Speed::Fast => "fast",
        }
    }
}

impl FromStr for Speed {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" => Ok(Speed::Standard),
            "fast" => Ok(Speed::Fast),
            _ => Err(Error::argument(
                "speed",
                format!("`{s}` is not one of standard, fast"),
            )),
        }
    }
}

/// Where a cloud platform served the request, for platforms that price by deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deployment {
    /// The provider's own API, or a cloud's global endpoint: list price.
    #[default]
    Global,
    /// A Bedrock geographic/in-region profile or a Vertex regional endpoint.
    Regional,
    /// AWS GovCloud.
    GovCloud,
}

impl Deployment {
    /// The canonical name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Deployment::Global => "global",
            Deployment::Regional => "regional",
            Deployment::GovCloud => "gov_cloud",
        }
    }
}

impl FromStr for Deployment {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "" | "global" => Ok(Deployment::Global),
            "regional" => Ok(Deployment::Regional),
            "gov_cloud" | "govcloud" => Ok(Deployment::GovCloud),
            _ => Err(Error::argument(
                "deployment",
                format!("`{s}` is not one of global, regional, gov_cloud"),
            )),
        }
    }
}

/// The platform that served a model, when it changes the price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// The model vendor's own API.
    #[default]
    Direct,
    /// AWS Bedrock.
    Bedrock,
    /// Google Vertex AI.
    Vertex,
}

impl Platform {
    /// The canonical name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Platform::Direct => "direct",
            Platform::Bedrock => "bedrock",
            Platform::Vertex => "vertex",
        }
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "direct" | "anthropic" | "openai" | "google" | "gemini" => Ok(Platform::Direct),
            "bedrock" | "aws" => Ok(Platform::Bedrock),
            "vertex" | "vertex_ai" | "vertex-ai" => Ok(Platform::Vertex),
            _ => Err(Error::argument(
                "platform",
                format!("`{s}` is not one of direct, bedrock, vertex"),
            )),
        }
    }
}

/// Everything besides tokens and time that decides a request's price.
///
/// Model resolution may fill `platform` and `deployment` from the model id
/// (`us.anthropic.claude-…` is Bedrock, regional); a value set here explicitly wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingContext {
    /// The tier the response says it was served at.
    pub service_tier: ServiceTier,
    /// Output speed (Anthropic fast mode).
    pub speed: Speed,
    /// Anthropic `inference_geo` as reported (`"us"` carries a premium on newer models).
    pub inference_geo: Option<String>,
    /// The platform, when not evident from the model id.
    pub platform: Option<Platform>,
    /// The deployment, when not evident from the model id.
    pub deployment: Option<Deployment>,
}

impl PricingContext {
    /// True when nothing differs from the standard, global, direct defaults.
    pub fn is_default(&self) -> bool {
        *self == PricingContext::default()
    }

    /// True when `inference_geo` asks for US-only inference.
    pub fn is_us_only(&self) -> bool {
        self.inference_geo
            .as_deref()
            .is_some_and(|g| g.eq_ignore_ascii_case("us"))
    }
}
