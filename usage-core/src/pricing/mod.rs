//! Pricing: the dated catalog, model-id resolution, and the cost engine.

mod catalog;
mod compiled;
mod cost;
mod litellm;
mod resolve;
pub mod schema;

pub use catalog::{ModelEntry, PriceCatalog, ResolvedModel};
pub use compiled::{PriceSet, PriceVersion, Schedule};
pub use cost::{AppliedModifier, CostBreakdown, ModifierKind, PricingBasis};
