//! OpenAI-shaped usage (placeholder).
use super::{Extracted, Provider};
use crate::error::{Error, Result};

pub(crate) fn extract(provider: Provider, _v: &serde_json::Value) -> Result<Vec<Extracted>> {
    Err(Error::response(provider.as_str(), "<body>", "parser not implemented yet"))
}
