//! Google Gemini `usageMetadata`, from AI Studio or Vertex, in the REST camelCase form or the
//! Python SDK's snake_case dict form.
//!
//! `promptTokenCount` includes cached tokens; `toolUsePromptTokenCount` is extra input outside
//! it; thoughts are outside `candidatesTokenCount` and are added to output (reference §A.3).

use serde_json::Value;

use super::json::Node;
use super::{Extracted, Provider, ProviderError};
use crate::context::{Platform, ServiceTier};
use crate::error::{Error, Result};
use crate::tokens::TokenUsage;

const PROVIDER: Provider = Provider::Gemini;

/// A `generateContent` response, one stream chunk, or the JSON array of chunks that
/// `streamGenerateContent` returns without SSE (the last usage wins).
pub(crate) fn extract(v: &Value) -> Result<Vec<Extracted>> {
    if v.is_array() {
        let mut s = GeminiStream::new();
        s.push(v)?;
        return s.finish().map(|r| vec![r]);
    }
    let root = Node::root(PROVIDER.as_str(), v);
    root.expect_object()?;
    if root.raw("usageMetadata").is_none() && root.raw("usage_metadata").is_none() {
        if root.raw("error").is_some() {
            let mut rec = Extracted::new(PROVIDER, "");
            rec.billable = false;
            rec.error = Some(google_error(&root));
            return Ok(vec![rec]);
        }
        return Err(root.missing("usageMetadata"));
    }
    let chunk = Chunk::read(&root)?;
    let mut rec = Extracted::new(PROVIDER, chunk.model.unwrap_or_default());
    rec.message_id = chunk.id;
    rec.usage = chunk.usage.unwrap_or_default();
    if let Some(t) = chunk.traffic {
        rec.context.service_tier = t;
        rec.context.platform = Some(Platform::Vertex);
    }
    Ok(vec![rec])
}

/// What one response or chunk says.
struct Chunk {
    model: Option<String>,
    id: Option<String>,
    usage: Option<TokenUsage>,
    /// `Some` when the payload has a `trafficType` (only Vertex sends one).
    traffic: Option<ServiceTier>,
    finished: bool,
}

impl Chunk {
    fn read(n: &Node<'_>) -> Result<Self> {
        let meta = n.obj_any(&["usageMetadata", "usage_metadata"])?;
        let (usage, traffic) = match &meta {
            Some(m) => (Some(usage(m)?), traffic(m)?),
            None => (None, None),
        };
        let mut finished = false;
        if let Some(cands) = n.arr("candidates")? {
            finished = cands.iter().any(|c| {
                c.raw("finishReason")
                    .or_else(|| c.raw("finish_reason"))
                    .is_some_and(|r| {
                        r.as_str()
                            .is_some_and(|s| !s.is_empty() && s != "FINISH_REASON_UNSPECIFIED")
                    })
            });
        }
        Ok(Chunk {
            model: n
                .str_any(&["modelVersion", "model_version"])?
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            id: n
                .str_any(&["responseId", "response_id"])?
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            usage,
            traffic,
            finished,
        })
    }
}

/// The normalised usage of one `usageMetadata`. Zero counts are often omitted, so every count
/// defaults to 0.
fn usage(m: &Node<'_>) -> Result<TokenUsage> {
    let prompt = m
        .u64_any(&["promptTokenCount", "prompt_token_count"])?
        .unwrap_or(0);
    let cached = m
        .u64_any(&["cachedContentTokenCount", "cached_content_token_count"])?
        .unwrap_or(0);
    let tool = m
        .u64_any(&["toolUsePromptTokenCount", "tool_use_prompt_token_count"])?
        .unwrap_or(0);
    let candidates = m
        .u64_any(&["candidatesTokenCount", "candidates_token_count"])?
        .unwrap_or(0);
    let thoughts = m
        .u64_any(&["thoughtsTokenCount", "thoughts_token_count"])?
        .unwrap_or(0);
    let overflow = |what: &str| {
        Error::response(
            PROVIDER.as_str(),
            m.path_of(what),
            "overflows a 64-bit count when added up",
        )
    };
    let output = candidates
        .checked_add(thoughts)
        .ok_or_else(|| overflow("thoughtsTokenCount"))?;
    let mut u = TokenUsage::from_inclusive_prompt(prompt, cached, 0, output).map_err(|_| {
        Error::response(
            PROVIDER.as_str(),
            m.path_of("cachedContentTokenCount"),
            format!("is {cached}, more than promptTokenCount ({prompt}), which includes it"),
        )
    })?;
    // Tool results fed back as input are not in promptTokenCount.
    u.input = u
        .input
        .checked_add(tool)
        .ok_or_else(|| overflow("toolUsePromptTokenCount"))?;
    u.reasoning = thoughts;
    Ok(u)
}

/// Vertex's `trafficType` as a tier; unknown values are the standard tier.
fn traffic(m: &Node<'_>) -> Result<Option<ServiceTier>> {
    Ok(m.str_any(&["trafficType", "traffic_type"])?
        .map(|t| ServiceTier::from_provider(t).unwrap_or_default()))
}

/// Google's `{"error":{"code","message","status"}}`, read leniently.
fn google_error(n: &Node<'_>) -> ProviderError {
    let e = n.raw("error");
    let field = |k: &str| match e.and_then(|e| e.get(k)) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(x)) => Some(x.to_string()),
        _ => None,
    };
    match e {
        Some(Value::String(s)) => ProviderError {
            kind: "error".into(),
            message: s.clone(),
        },
        _ => ProviderError {
            kind: field("status")
                .or_else(|| field("code"))
                .unwrap_or_else(|| "error".into()),
            message: field("message").unwrap_or_default(),
        },
    }
}

/// Accumulates Gemini stream chunks. Every chunk repeats a cumulative `usageMetadata`, so the
/// last one seen is kept, never summed (reference §C.5).
#[derive(Clone, Debug, Default)]
pub(crate) struct GeminiStream {
    model: Option<String>,
    id: Option<String>,
    usage: Option<TokenUsage>,
    traffic: Option<ServiceTier>,
    finished: bool,
    error: Option<ProviderError>,
}

impl GeminiStream {
    pub(crate) fn new() -> Self {
        GeminiStream::default()
    }

    /// One chunk, or a JSON array of chunks (applied all or not at all).
    pub(crate) fn push(&mut self, event: &Value) -> Result<()> {
        if let Value::Array(items) = event {
            let mut next = self.clone();
            for (i, item) in items.iter().enumerate() {
                next.push_one(item).map_err(|e| match e {
                    Error::InvalidResponse {
                        provider,
                        field,
                        reason,
                    } => Error::InvalidResponse {
                        provider,
                        field: format!("[{i}].{field}"),
                        reason,
                    },
                    other => other,
                })?;
            }
            *self = next;
            return Ok(());
        }
        self.push_one(event)
    }

    fn push_one(&mut self, event: &Value) -> Result<()> {
        let n = Node::root(PROVIDER.as_str(), event);
        n.expect_object()?;
        let chunk = Chunk::read(&n)?;
        if n.raw("error").is_some() {
            self.error = Some(google_error(&n));
        }
        if chunk.model.is_some() {
            self.model = chunk.model;
        }
        if chunk.id.is_some() {
            self.id = chunk.id;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.traffic.is_some() {
            self.traffic = chunk.traffic;
        }
        self.finished |= chunk.finished;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Option<Extracted> {
        if self.model.is_none() && self.id.is_none() && self.usage.is_none() && self.error.is_none()
        {
            return None;
        }
        let mut rec = Extracted::new(PROVIDER, self.model.clone().unwrap_or_default());
        rec.message_id = self.id.clone();
        rec.usage = self.usage.unwrap_or_default();
        if let Some(t) = self.traffic {
            rec.context.service_tier = t;
            rec.context.platform = Some(Platform::Vertex);
        }
        rec.complete = self.finished && self.usage.is_some() && self.error.is_none();
        rec.billable = self.usage.is_some() || self.error.is_none();
        rec.error = self.error.clone();
        Some(rec)
    }

    pub(crate) fn finish(self) -> Result<Extracted> {
        self.snapshot().ok_or_else(|| {
            Error::response(
                PROVIDER.as_str(),
                "<stream>",
                "has no chunk with usageMetadata, modelVersion or responseId",
            )
        })
    }
}
