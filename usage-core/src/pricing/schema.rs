//! The catalog file format (JSON), exactly as it is read and written. Prices are USD per
//! million tokens, written as decimal strings. `catalog.json` beside this file is the built-in
//! catalog; `PriceCatalog::from_json` reads the same format from users.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::DecimalText;

/// A decimal written as a string in the file, read from a string or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dec(pub Decimal);

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.normalize())
    }
}

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = DecimalText::deserialize(d)?;
        let s = t.0.trim();
        Decimal::from_str_exact(s)
            .or_else(|_| Decimal::from_scientific(s))
            .map(Dec)
            .map_err(|_| serde::de::Error::custom(format!("`{}` is not a decimal number", t.0)))
    }
}

/// An instant written as `YYYY-MM-DD` (midnight UTC) or RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub DateTime<Utc>);

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        if t.time() == NaiveTime::MIN {
            s.collect_str(&t.format("%Y-%m-%d"))
        } else {
            s.collect_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_instant(&s).map(Instant).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            ))
        })
    }
}

/// Parses `YYYY-MM-DD` (as midnight UTC) or an RFC 3339 timestamp.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_time(NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The whole catalog file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// The catalog's version, stamped on every price computed from it.
    pub version: String,
    /// Free text: sources, policies for disagreements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
    /// Defaults per provider, inherited by that provider's models.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderDefaults>,
    /// The models.
    pub models: Vec<ModelFile>,
}

/// Defaults shared by a provider's models.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDefaults {
    /// Modifiers every model of the provider has unless it says otherwise.
    #[serde(default, skip_serializing_if = "Modifiers::is_empty")]
    pub modifiers: Modifiers,
    /// Per-1,000 web search fee for every model of the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_per_1k: Option<Dec>,
}

/// One model and its price history.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// The canonical id (`claude-sonnet-4-5`, `gpt-4o`).
    pub id: String,
    /// The provider key (`anthropic`, `openai`, `google`, `deepseek`, `mistral`, `xai`).
    pub provider: String,
    /// A human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Other ids that mean exactly this model (dated ids, `-latest`, old word order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// When the model was released, for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Instant>,
    /// When the provider retired it, for information: it still prices old logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Instant>,
    /// Sources, disagreements between sources and how they were settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Modifiers for every price version of this model (a version may override them).
    #[serde(default, skip_serializing_if = "Modifiers::is_empty")]
    pub modifiers: Modifiers,
    /// Price versions, oldest first; each lasts until the next one's `from`.
    pub prices: Vec<PriceVersionFile>,
    /// Price histories that replace `prices` on a given platform (`bedrock`, `vertex`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, Vec<PriceVersionFile>>,
}

/// The five token prices of one price set, per million tokens. A missing cache price means the
/// provider bills those tokens at the input price (no cache discount).
macro_rules! price_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($extra)*
            /// Uncached input.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub input: Option<Dec>,
            /// Output (reasoning included).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub output: Option<Dec>,
            /// Cache reads.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cache_read: Option<Dec>,
            /// 5-minute cache writes.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cache_write_5m: Option<Dec>,
            /// 1-hour cache writes.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cache_write_1h: Option<Dec>,
        }

        impl $name {
            /// The five prices as a [`PriceSetFile`].
            pub fn price_set(&self) -> PriceSetFile {
                PriceSetFile {
                    input: self.input,
                    output: self.output,
                    cache_read: self.cache_read,
                    cache_write_5m: self.cache_write_5m,
                    cache_write_1h: self.cache_write_1h,
                }
            }
        }
    };
}

price_fields! {
    /// One dated price version: base prices, tiers, fees, modifiers and time-of-day windows.
    /// (Fields are flat rather than `#[serde(flatten)]` so unknown fields are still rejected.)
    pub struct PriceVersionFile {
        /// The instant from which these prices apply (absent: since the model existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<Instant>,
        /// Prompt-size tiers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tiers: Vec<TierFile>,
        /// Per-1,000 web search fee (USD per 1,000 searches).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub web_search_per_1k: Option<Dec>,
        /// Modifiers for this version only.
        #[serde(default, skip_serializing_if = "Modifiers::is_empty")]
        pub modifiers: Modifiers,
        /// Time-of-day windows with their own prices or multiplier.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub time_of_day: Vec<TimeWindowFile>,
        /// Free text: sources, disagreements and how they were settled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub comment: Option<String>,
    }
}

price_fields! {
    /// Just the five prices.
    pub struct PriceSetFile {}
}

price_fields! {
    /// Base prices plus prompt-size tiers: what a modifier may substitute wholesale.
    pub struct ScheduleFile {
        /// Prompt-size tiers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tiers: Vec<TierFile>,
    }
}

price_fields! {
    /// One prompt-size tier: when a request's prompt (uncached input + cache reads + cache
    /// writes) is strictly greater than `above`, every category is billed at these prices.
    pub struct TierFile {
        /// The threshold in prompt tokens; the tier applies strictly above it.
        pub above: u64,
    }
}

/// A price change: a multiplier on every token price (`"0.5"`), or a whole price schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdjustmentFile {
    /// Multiply every token price.
    Multiplier(Dec),
    /// Use these prices instead.
    Prices(ScheduleFile),
}

/// Named price modifiers. Multipliers compose by multiplication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modifiers {
    /// `service_tier = batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<AdjustmentFile>,
    /// `service_tier = flex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex: Option<AdjustmentFile>,
    /// `service_tier = priority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<AdjustmentFile>,
    /// `speed = fast` (Anthropic fast mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<AdjustmentFile>,
    /// `inference_geo = "us"` (Anthropic US-only inference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_geo_us: Option<AdjustmentFile>,
    /// Bedrock geographic or in-region profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_regional: Option<AdjustmentFile>,
    /// Bedrock in AWS GovCloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_gov_cloud: Option<AdjustmentFile>,
    /// Vertex AI regional endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_regional: Option<AdjustmentFile>,
}

impl Modifiers {
    /// True when no modifier is set.
    pub fn is_empty(&self) -> bool {
        *self == Modifiers::default()
    }

    /// Each field of `self`, or else of `fallback`.
    pub fn or(&self, fallback: &Modifiers) -> Modifiers {
        Modifiers {
            batch: self.batch.clone().or_else(|| fallback.batch.clone()),
            flex: self.flex.clone().or_else(|| fallback.flex.clone()),
            priority: self.priority.clone().or_else(|| fallback.priority.clone()),
            fast: self.fast.clone().or_else(|| fallback.fast.clone()),
            inference_geo_us: self
                .inference_geo_us
                .clone()
                .or_else(|| fallback.inference_geo_us.clone()),
            bedrock_regional: self
                .bedrock_regional
                .clone()
                .or_else(|| fallback.bedrock_regional.clone()),
            bedrock_gov_cloud: self
                .bedrock_gov_cloud
                .clone()
                .or_else(|| fallback.bedrock_gov_cloud.clone()),
            vertex_regional: self
                .vertex_regional
                .clone()
                .or_else(|| fallback.vertex_regional.clone()),
        }
    }
}

/// A daily window in a time zone, e.g. DeepSeek's off-peak hours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowFile {
    /// Local start time, `HH:MM`, inclusive.
    pub start: String,
    /// Local end time, `HH:MM`, exclusive; earlier than `start` for a window across midnight.
    pub end: String,
    /// IANA time zone of `start` and `end` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// What changes inside the window.
    pub adjust: AdjustmentFile,
}
