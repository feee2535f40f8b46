//! Gemini usage (placeholder).
use super::Extracted;
use crate::error::{Error, Result};

pub(crate) fn extract(_v: &serde_json::Value) -> Result<Vec<Extracted>> {
    Err(Error::response("gemini", "<body>", "parser not implemented yet"))
}
