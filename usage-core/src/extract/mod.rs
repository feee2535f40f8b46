//! Provider usage extraction: from the raw JSON a provider (or a log) returns to a normalised
//! [`Extracted`] record. Every parser reports malformed input as
//! [`Error::InvalidResponse`] naming the field (its JSON path, e.g. `usage.input_tokens`);
//! none panics, whatever the input.

mod anthropic;
mod bedrock;
mod claude_code;
mod gemini;
mod json;
mod openai;
mod stream;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::context::{Platform, PricingContext};
use crate::error::{Error, Result};
use crate::money::Usd;
use crate::tokens::TokenUsage;

pub use anthropic::AnthropicStream;
pub use claude_code::dedup_claude_code;
pub use stream::StreamAccumulator;

/// Where a response came from, which decides how its usage is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Anthropic Messages API (responses, batch result lines, stream events).
    Anthropic,
    /// OpenAI Chat Completions and Responses (responses, stream chunks/events, batch lines).
    #[serde(rename = "openai")]
    OpenAI,
    /// Google Gemini (AI Studio or Vertex) `generateContent` responses and stream chunks.
    Gemini,
    /// AWS Bedrock Converse / ConverseStream, or InvokeModel with an Anthropic body.
    Bedrock,
    /// Anthropic models on Google Vertex AI (Anthropic-shaped bodies).
    Vertex,
    /// DeepSeek (OpenAI-shaped).
    #[serde(rename = "deepseek")]
    DeepSeek,
    /// Mistral (OpenAI-shaped).
    Mistral,
    /// xAI Grok (OpenAI-shaped).
    Xai,
    /// A Claude Code transcript JSONL line.
    ClaudeCode,
    /// The Claude CLI `--output-format json` / `stream-json` `result` event.
    ClaudeCli,
}

impl Provider {
    /// Every provider, in a fixed order.
    pub const ALL: [Provider; 10] = [
        Provider::Anthropic,
        Provider::OpenAI,
        Provider::Gemini,
        Provider::Bedrock,
        Provider::Vertex,
        Provider::DeepSeek,
        Provider::Mistral,
        Provider::Xai,
        Provider::ClaudeCode,
        Provider::ClaudeCli,
    ];

    /// The top-level fields of this provider's responses and stream events that extraction
    /// never reads: the generated content. A binding converting an SDK object for extraction
    /// may leave them out, which is most of the work for a long answer; a test over the shared
    /// vectors checks that every record is the same without them.
    pub fn unread_fields(&self) -> &'static [&'static str] {
        match self {
            Provider::Anthropic | Provider::Vertex => &["content"],
            // An InvokeModel body is Anthropic's; a Converse body holds its message in `output`.
            Provider::Bedrock => &["content", "output"],
            Provider::OpenAI | Provider::DeepSeek | Provider::Mistral | Provider::Xai => {
                &["choices", "output", "instructions", "tools"]
            }
            Provider::Gemini | Provider::ClaudeCode | Provider::ClaudeCli => &[],
        }
    }

    /// The platform a provider implies for the pricing context (Anthropic models served by
    /// Vertex or Bedrock), `None` for the others.
    pub fn platform(&self) -> Option<Platform> {
        match self {
            Provider::Vertex => Some(Platform::Vertex),
            Provider::Bedrock => Some(Platform::Bedrock),
            _ => None,
        }
    }

    /// The canonical name (`"openai"`, `"claude_code"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAI => "openai",
            Provider::Gemini => "gemini",
            Provider::Bedrock => "bedrock",
            Provider::Vertex => "vertex",
            Provider::DeepSeek => "deepseek",
            Provider::Mistral => "mistral",
            Provider::Xai => "xai",
            Provider::ClaudeCode => "claude_code",
            Provider::ClaudeCli => "claude_cli",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let k = s.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match k.as_str() {
            "anthropic" | "claude" => Provider::Anthropic,
            "openai" | "azure" | "azure_openai" => Provider::OpenAI,
            "gemini" | "google" | "vertex_gemini" => Provider::Gemini,
            "bedrock" | "aws" | "aws_bedrock" => Provider::Bedrock,
            "vertex" | "vertex_ai" | "vertex_anthropic" => Provider::Vertex,
            "deepseek" => Provider::DeepSeek,
            "mistral" | "mistralai" => Provider::Mistral,
            "xai" | "x_ai" | "grok" => Provider::Xai,
            "claude_code" => Provider::ClaudeCode,
            "claude_cli" | "claude_agent_sdk" => Provider::ClaudeCli,
            _ => {
                return Err(Error::argument(
                    "provider",
                    format!(
                        "`{s}` is not one of anthropic, openai, gemini, bedrock, vertex, deepseek, mistral, xai, claude_code, claude_cli"
                    ),
                ));
            }
        })
    }
}

/// One call's usage as read from a provider response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// The provider the response came from.
    pub provider: Provider,
    /// The model as the response reports it (resolve it with the catalog to price it).
    /// Empty when the payload names no model (Bedrock Converse bodies, a Claude CLI result
    /// without `modelUsage`, error bodies): the caller supplies it, as the store and tracker
    /// APIs take the model separately.
    pub model: String,
    /// Normalised token usage.
    pub usage: TokenUsage,
    /// Service tier, speed and geography as the response reports them.
    pub context: PricingContext,
    /// The provider's message/response id (`msg_…`, `chatcmpl-…`, `resp_…`).
    pub message_id: Option<String>,
    /// The provider's request id (`req_…`), when the payload carries one.
    pub request_id: Option<String>,
    /// Session id (Claude Code, Claude CLI).
    pub session_id: Option<String>,
    /// When the payload says when it happened (Claude Code lines).
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// False for a stream cut off before its final usage: the figures are what was seen.
    pub complete: bool,
    /// False when the record must not be billed (`<synthetic>` or API-error lines, errored
    /// batch results); `error` says why.
    pub billable: bool,
    /// The provider's error type and message, for failed calls.
    pub error: Option<ProviderError>,
    /// A cost the payload itself states (the Claude CLI's `costUSD`/`total_cost_usd`).
    pub provided_cost: Option<Usd>,
    /// Wall time the payload reports (Bedrock `metrics.latencyMs`, CLI `duration_ms`).
    pub duration_ms: Option<u64>,
    /// Turns in an agent run (Claude CLI `num_turns`).
    pub num_turns: Option<u64>,
    /// True for a Claude Code sidechain line (`isSidechain`: subagents, `/btw`), which may
    /// replay a parent message; [`dedup_claude_code`] prefers the parent copy.
    #[serde(default)]
    pub sidechain: bool,
}

/// A provider-reported error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    /// The error type (`overloaded_error`, `rate_limit_exceeded`, `api_error`…).
    pub kind: String,
    /// The message.
    pub message: String,
}

impl Extracted {
    /// A blank record for `provider` and `model`, complete and billable, that parsers fill in.
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        Extracted {
            provider,
            model: model.into(),
            usage: TokenUsage::default(),
            context: PricingContext::default(),
            message_id: None,
            request_id: None,
            session_id: None,
            timestamp: None,
            complete: true,
            billable: true,
            error: None,
            provided_cost: None,
            duration_ms: None,
            num_turns: None,
            sidechain: false,
        }
    }
}

/// Reads every usage record in one provider payload: a response body, a batch result line, a
/// final stream chunk or event, a Claude Code line or a Claude CLI result (one record per model
/// in its `modelUsage`). The shape is detected from the payload.
///
/// ```
/// use usage_core::extract::{extract, Provider};
/// let body = serde_json::json!({
///   "id": "msg_1", "type": "message", "model": "claude-sonnet-4-5-20250929",
///   "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 5}
/// });
/// let rec = &extract(Provider::Anthropic, &body).unwrap()[0];
/// assert_eq!((rec.usage.input, rec.usage.cache_read, rec.usage.output), (10, 5, 20));
/// ```
pub fn extract(provider: Provider, payload: &serde_json::Value) -> Result<Vec<Extracted>> {
    match provider {
        Provider::Anthropic | Provider::Vertex => anthropic::extract(provider, payload),
        Provider::OpenAI | Provider::DeepSeek | Provider::Mistral | Provider::Xai => {
            openai::extract(provider, payload)
        }
        Provider::Gemini => gemini::extract(payload),
        Provider::Bedrock => bedrock::extract(payload),
        Provider::ClaudeCode => claude_code::extract_line(payload),
        Provider::ClaudeCli => claude_code::extract_cli_result(payload),
    }
}

/// [`extract`] from raw bytes (a response body or one JSONL line).
pub fn extract_bytes(provider: Provider, bytes: &[u8]) -> Result<Vec<Extracted>> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::response(provider.as_str(), "<body>", format!("is not JSON: {e}")))?;
    extract(provider, &v)
}
