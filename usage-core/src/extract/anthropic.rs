//! Anthropic Messages API usage (placeholder until the parsers land).
use super::{Extracted, Provider};
use crate::error::{Error, Result};

pub(crate) fn extract(provider: Provider, _v: &serde_json::Value) -> Result<Vec<Extracted>> {
    Err(Error::response(provider.as_str(), "<body>", "parser not implemented yet"))
}

/// Accumulates an Anthropic SSE stream.
#[derive(Debug, Default)]
pub struct AnthropicStream;
