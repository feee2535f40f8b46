//! AWS Bedrock usage: Converse responses, the ConverseStream `metadata` event, and InvokeModel
//! with an Anthropic body (read by the Anthropic parser, with the Bedrock platform set).
//!
//! Converse bodies carry no model id (the model is in the request URL), so records have an
//! empty `model`: the caller supplies it, as the store and tracker APIs take the model
//! separately. `inputTokens` excludes cache reads and writes (reference §A.4.1).

use serde_json::Value;

use super::anthropic::{self, AnthropicStream};
use super::json::Node;
use super::{Extracted, Provider, ProviderError};
use crate::context::{Platform, ServiceTier};
use crate::error::{Error, Result};
use crate::tokens::TokenUsage;

const PROVIDER: Provider = Provider::Bedrock;

pub(crate) fn extract(v: &Value) -> Result<Vec<Extracted>> {
    let root = Node::root(PROVIDER.as_str(), v);
    root.expect_object()?;
    if is_anthropic_body(v) {
        return anthropic::extract(PROVIDER, v);
    }
    let node = root.obj("metadata")?.unwrap_or(root);
    Ok(vec![converse(&node)?])
}

/// InvokeModel with an Anthropic model: snake_case `usage.input_tokens`, or an Anthropic
/// stream event.
fn is_anthropic_body(v: &Value) -> bool {
    v.get("usage").and_then(|u| u.get("input_tokens")).is_some()
        || v.get("type").and_then(Value::as_str).is_some()
}

/// A Converse response or ConverseStream metadata event (`usage`, `metrics`, `serviceTier`).
fn converse(n: &Node<'_>) -> Result<Extracted> {
    let m = Metadata::read(n)?;
    let mut rec = Extracted::new(PROVIDER, "");
    rec.usage = m.usage;
    rec.duration_ms = m.latency_ms;
    rec.context.platform = Some(Platform::Bedrock);
    if let Some(t) = m.tier {
        rec.context.service_tier = t;
    }
    Ok(rec)
}

struct Metadata {
    usage: TokenUsage,
    latency_ms: Option<u64>,
    tier: Option<ServiceTier>,
}

impl Metadata {
    fn read(n: &Node<'_>) -> Result<Self> {
        let u = n.req_obj("usage")?;
        let latency_ms = match n.obj("metrics")? {
            Some(m) => m.u64("latencyMs")?,
            None => None,
        };
        // `serviceTier` is `{"type": "priority"}`; a bare string is accepted too.
        let tier = match n.raw("serviceTier") {
            Some(Value::String(s)) => ServiceTier::from_provider(s),
            Some(_) => n
                .obj("serviceTier")?
                .map(|t| t.str("type"))
                .transpose()?
                .flatten()
                .and_then(ServiceTier::from_provider),
            None => None,
        };
        Ok(Metadata {
            usage: usage(&u)?,
            latency_ms,
            tier,
        })
    }
}

/// Converse `TokenUsage`: `inputTokens` excludes cache; `cacheDetails` splits writes by TTL.
fn usage(u: &Node<'_>) -> Result<TokenUsage> {
    let input = u.req_u64("inputTokens")?;
    let output = u.req_u64("outputTokens")?;
    let read = u.u64_or_zero("cacheReadInputTokens")?;
    let write = u.u64("cacheWriteInputTokens")?;
    let split = match u.arr("cacheDetails")? {
        Some(details) => {
            let (mut w5, mut w1) = (0u64, 0u64);
            for d in &details {
                d.expect_object()?;
                let n = d.u64_or_zero("inputTokens")?;
                // Unknown TTLs are counted as 5m, the cheaper reading.
                let slot = if d.str("ttl")? == Some("1h") {
                    &mut w1
                } else {
                    &mut w5
                };
                *slot = slot.checked_add(n).ok_or_else(|| {
                    d.err("inputTokens", "overflows a 64-bit count when added up")
                })?;
            }
            Some((w5, w1))
        }
        None => None,
    };
    let (w5, w1) = anthropic::split_writes(write, split);
    Ok(TokenUsage::from_exclusive_input(
        input,
        read,
        w5.saturating_add(w1),
        Some((w5, w1)),
        output,
    ))
}

/// Accumulates a ConverseStream (`messageStart` … `messageStop`, then `metadata`), or an
/// InvokeModelWithResponseStream of Anthropic events, which is handed to [`AnthropicStream`].
#[derive(Clone, Debug, Default)]
pub(crate) struct BedrockStream {
    anthropic: Option<AnthropicStream>,
    usage: Option<TokenUsage>,
    latency_ms: Option<u64>,
    tier: Option<ServiceTier>,
    started: bool,
    stopped: bool,
    error: Option<ProviderError>,
}

impl BedrockStream {
    pub(crate) fn new() -> Self {
        BedrockStream::default()
    }

    pub(crate) fn push(&mut self, event: &Value) -> Result<()> {
        if AnthropicStream::is_anthropic_event(event) {
            // Pushed into a copy so that a rejected event leaves the state as it was.
            let mut a = self
                .anthropic
                .clone()
                .unwrap_or_else(|| AnthropicStream::for_provider(PROVIDER));
            a.push(event)?;
            self.anthropic = Some(a);
            return Ok(());
        }
        let n = Node::root(PROVIDER.as_str(), event);
        n.expect_object()?;
        if let Some(meta) = n.obj("metadata")? {
            self.take_metadata(&meta)?;
        } else if n.raw("usage").is_some() {
            // The unwrapped metadata event.
            self.take_metadata(&n)?;
        } else if n.raw("messageStart").is_some() {
            self.started = true;
        } else if n.raw("messageStop").is_some() {
            self.stopped = true;
        } else if let Some((kind, body)) = event
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.ends_with("Exception")))
        {
            let message = body
                .get("message")
                .or_else(|| body.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.error = Some(ProviderError {
                kind: kind.clone(),
                message: message.to_owned(),
            });
        }
        Ok(())
    }

    fn take_metadata(&mut self, n: &Node<'_>) -> Result<()> {
        let m = Metadata::read(n)?;
        self.usage = Some(m.usage);
        if m.latency_ms.is_some() {
            self.latency_ms = m.latency_ms;
        }
        if m.tier.is_some() {
            self.tier = m.tier;
        }
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Option<Extracted> {
        if let Some(a) = &self.anthropic {
            let mut rec = a.snapshot()?;
            if let Some(e) = &self.error {
                rec.error = Some(e.clone());
                rec.complete = false;
            }
            return Some(rec);
        }
        if !self.started && !self.stopped && self.usage.is_none() && self.error.is_none() {
            return None;
        }
        let mut rec = Extracted::new(PROVIDER, "");
        rec.usage = self.usage.unwrap_or_default();
        rec.duration_ms = self.latency_ms;
        rec.context.platform = Some(Platform::Bedrock);
        if let Some(t) = self.tier {
            rec.context.service_tier = t;
        }
        // messageStop ends the content; the usage comes after it, in metadata.
        rec.complete = self.stopped && self.usage.is_some() && self.error.is_none();
        rec.billable = self.usage.is_some() || self.error.is_none();
        rec.error = self.error.clone();
        Some(rec)
    }

    pub(crate) fn finish(self) -> Result<Extracted> {
        self.snapshot().ok_or_else(|| {
            Error::response(
                PROVIDER.as_str(),
                "<stream>",
                "has no messageStart, messageStop, metadata or exception event",
            )
        })
    }
}
