//! Claude Code transcript lines and Claude CLI results (placeholder).
use super::Extracted;
use crate::error::{Error, Result};

pub(crate) fn extract_line(_v: &serde_json::Value) -> Result<Vec<Extracted>> {
    Err(Error::response("claude_code", "<line>", "parser not implemented yet"))
}

pub(crate) fn extract_cli_result(_v: &serde_json::Value) -> Result<Vec<Extracted>> {
    Err(Error::response("claude_cli", "<result>", "parser not implemented yet"))
}
