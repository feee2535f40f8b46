//! Stream accumulators (placeholder).

/// Accumulates a provider's stream events into one usage record.
#[derive(Debug)]
pub struct StreamAccumulator;
