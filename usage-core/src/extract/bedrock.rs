//! Bedrock usage (placeholder).
use super::Extracted;
use crate::error::{Error, Result};

pub(crate) fn extract(_v: &serde_json::Value) -> Result<Vec<Extracted>> {
    Err(Error::response("bedrock", "<body>", "parser not implemented yet"))
}
