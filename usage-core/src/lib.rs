//! # usage-core
//!
//! Record, price, aggregate and budget LLM API usage. This crate is the pure domain: exact
//! money ([`Usd`]), normalised token usage ([`TokenUsage`]), the dated pricing catalog and cost
//! engine ([`PriceCatalog`]), provider usage extraction ([`extract`]), and the store trait the
//! backends in `usage-store` implement. It performs no I/O.
//!
//! ```
//! use usage_core::{extract::{extract, Provider}, PriceCatalog};
//! let body = serde_json::json!({
//!     "id": "msg_01", "type": "message", "model": "claude-sonnet-4-5-20250929",
//!     "usage": {"input_tokens": 1000, "cache_read_input_tokens": 50000,
//!               "cache_creation_input_tokens": 12000, "output_tokens": 2000,
//!               "cache_creation": {"ephemeral_5m_input_tokens": 10000, "ephemeral_1h_input_tokens": 2000}}
//! });
//! let rec = &extract(Provider::Anthropic, &body).unwrap()[0];
//! let at = "2026-01-15T12:00:00Z".parse().unwrap();
//! let cost = PriceCatalog::builtin().cost(&rec.model, &rec.usage, at, &rec.context).unwrap();
//! // 1000×3 + 50000×0.30 + 10000×3.75 + 2000×6 + 2000×15, per million tokens
//! assert_eq!(cost.total.to_string(), "0.0975");
//! ```

pub mod context;
pub mod error;
pub mod event;
pub mod extract;
pub mod forecast;
pub mod money;
pub mod pricing;
pub mod query;
pub mod quota;
pub mod store;
pub mod tokens;

pub use context::{Deployment, Platform, PricingContext, ServiceTier, Speed};
pub use error::{Error, Result};
pub use event::{CostSource, EventCost, EventId, NewEvent, Status, UsageEvent};
pub use money::Usd;
pub use pricing::{CostBreakdown, PriceCatalog};
pub use tokens::TokenUsage;
