//! OpenAI-shaped usage (OpenAI, DeepSeek, Mistral, xAI): Chat Completions bodies and their
//! final usage chunk, Responses API objects and events, and Batch output lines.
//!
//! `prompt_tokens` / `input_tokens` include cached tokens and cache writes (reference §A.2), so
//! the cached share is subtracted to get uncached input; reasoning is a subset of output.

use serde_json::Value;

use super::json::Node;
use super::{Extracted, Provider, ProviderError};
use crate::context::ServiceTier;
use crate::error::{Error, Result};
use crate::tokens::TokenUsage;

pub(crate) fn extract(provider: Provider, v: &Value) -> Result<Vec<Extracted>> {
    let root = Node::root(provider.as_str(), v);
    root.expect_object()?;
    if root.has_key("custom_id") && (root.has_key("response") || root.has_key("error")) {
        return batch_line(provider, &root).map(|r| vec![r]);
    }
    match root.raw("type").and_then(Value::as_str) {
        Some(ty) if ty == "error" || ty.starts_with("response.") => event(provider, &root),
        _ => body(provider, &root).map(|r| vec![r]),
    }
}

/// A Chat Completion, its final usage chunk, a Response object, or a Batch object.
pub(crate) fn body(provider: Provider, n: &Node<'_>) -> Result<Extracted> {
    match n.raw("object").and_then(Value::as_str) {
        Some("response") => return response_object(provider, n, true),
        Some("chat.completion.chunk") if n.has_key("usage") && n.raw("usage").is_none() => {
            return Err(n.err(
                "usage",
                "is null: only the final chunk of a stream sent with \
                 stream_options.include_usage carries usage (use StreamAccumulator for streams)",
            ));
        }
        _ => {}
    }
    let u = n.req_obj("usage")?;
    let mut rec = Extracted::new(provider, n.string("model")?.unwrap_or_default());
    rec.message_id = n.string("id")?;
    rec.usage = if u.raw("prompt_tokens").is_some() || u.raw("input_tokens").is_none() {
        chat_usage(&u)?
    } else {
        responses_usage(&u)?
    };
    rec.context.service_tier = tier(n)?.unwrap_or_default();
    if n.raw("object").and_then(Value::as_str) == Some("batch") {
        rec.context.service_tier = ServiceTier::Batch;
    }
    Ok(rec)
}

/// The served tier (`default`/`auto`/`scale` = standard, `flex`, `priority`, `fast` = priority).
/// Unknown spellings are left to the default rather than rejected.
fn tier(n: &Node<'_>) -> Result<Option<ServiceTier>> {
    Ok(n.str("service_tier")?.and_then(ServiceTier::from_provider))
}

/// Chat Completions `usage` (also DeepSeek's `prompt_cache_hit_tokens` form).
pub(crate) fn chat_usage(u: &Node<'_>) -> Result<TokenUsage> {
    let details = u.obj("prompt_tokens_details")?;
    let mut cached = match &details {
        Some(d) => d.u64("cached_tokens")?,
        None => None,
    };
    let write = match &details {
        Some(d) => d.u64_or_zero("cache_write_tokens")?,
        None => 0,
    };
    let mut cached_field = u.path_of("prompt_tokens_details.cached_tokens");
    // DeepSeek's older form: hits and misses at the top level, no details object.
    let hit = u.u64("prompt_cache_hit_tokens")?;
    let miss = u.u64("prompt_cache_miss_tokens")?;
    if cached.is_none() && hit.is_some() {
        cached = hit;
        cached_field = u.path_of("prompt_cache_hit_tokens");
    }
    let prompt = match (u.u64("prompt_tokens")?, hit, miss) {
        (Some(p), _, _) => p,
        (None, Some(h), Some(m)) => h.saturating_add(m),
        (None, _, _) => return Err(u.missing("prompt_tokens")),
    };
    let completion = u.req_u64("completion_tokens")?;
    let reasoning = match u.obj("completion_tokens_details")? {
        Some(d) => d.u64_or_zero("reasoning_tokens")?,
        None => 0,
    };
    // Reasoning is inside completion_tokens. Some OpenAI-compatible servers (xAI) have
    // reported it outside; total_tokens then says so, and the output includes it.
    let output = match u.u64("total_tokens")? {
        Some(total)
            if reasoning > 0
                && Some(total)
                    == prompt
                        .checked_add(completion)
                        .and_then(|s| s.checked_add(reasoning)) =>
        {
            completion.saturating_add(reasoning)
        }
        _ => completion,
    };
    inclusive(
        u,
        "prompt_tokens",
        &cached_field,
        prompt,
        cached.unwrap_or(0),
        write,
        output,
        reasoning,
    )
}

/// Responses API (and Batch object) `usage`.
pub(crate) fn responses_usage(u: &Node<'_>) -> Result<TokenUsage> {
    let input = u.req_u64("input_tokens")?;
    let output = u.req_u64("output_tokens")?;
    let (cached, write) = match u.obj("input_tokens_details")? {
        Some(d) => (
            d.u64_or_zero("cached_tokens")?,
            d.u64_or_zero("cache_write_tokens")?,
        ),
        None => (0, 0),
    };
    let reasoning = match u.obj("output_tokens_details")? {
        Some(d) => d.u64_or_zero("reasoning_tokens")?,
        None => 0,
    };
    let cached_field = u.path_of("input_tokens_details.cached_tokens");
    inclusive(
        u,
        "input_tokens",
        &cached_field,
        input,
        cached,
        write,
        output,
        reasoning,
    )
}

/// Undoes the inclusive-prompt convention, naming the JSON fields when the counts disagree.
#[allow(clippy::too_many_arguments)]
fn inclusive(
    u: &Node<'_>,
    prompt_key: &str,
    cached_field: &str,
    prompt: u64,
    cached: u64,
    write: u64,
    output: u64,
    reasoning: u64,
) -> Result<TokenUsage> {
    let mut usage = TokenUsage::from_inclusive_prompt(prompt, cached, write, output).map_err(|_| {
        Error::response(
            u.provider(),
            cached_field,
            format!(
                "is {cached}; with {write} cache-write tokens it exceeds {} ({prompt}), which includes them",
                u.path_of(prompt_key)
            ),
        )
    })?;
    // Reasoning is a subset of output; a payload saying otherwise contradicts itself.
    if reasoning > output {
        let (details, total) = if prompt_key == "input_tokens" {
            ("output_tokens_details.reasoning_tokens", "output_tokens")
        } else {
            (
                "completion_tokens_details.reasoning_tokens",
                "completion_tokens",
            )
        };
        return Err(Error::response(
            u.provider(),
            u.path_of(details),
            format!(
                "is {reasoning}, more than {} ({output}) which includes it",
                u.path_of(total)
            ),
        ));
    }
    usage.reasoning = reasoning;
    Ok(usage)
}

/// A `Response` object. `usage_required` is false for `response.failed`/`incomplete` events,
/// which may come without usage.
fn response_object(provider: Provider, r: &Node<'_>, usage_required: bool) -> Result<Extracted> {
    let mut rec = Extracted::new(provider, r.string("model")?.unwrap_or_default());
    rec.message_id = r.string("id")?;
    rec.context.service_tier = tier(r)?.unwrap_or_default();
    let status = r.str("status")?;
    match r.obj("usage")? {
        Some(u) => rec.usage = responses_usage(&u)?,
        None if usage_required && !matches!(status, Some("failed" | "incomplete")) => {
            return Err(if r.has_key("usage") {
                r.err(
                    "usage",
                    "is null: usage arrives with the response.completed event",
                )
            } else {
                r.missing("usage")
            });
        }
        None => rec.billable = false,
    }
    match status {
        Some("failed") => {
            rec.complete = false;
            rec.error = Some(match r.obj("error")? {
                Some(e) => openai_error(&e),
                None => ProviderError {
                    kind: "failed".into(),
                    message: String::new(),
                },
            });
        }
        Some("incomplete") => {
            rec.complete = false;
            let reason = match r.obj("incomplete_details")? {
                Some(d) => d.str("reason")?.unwrap_or_default().to_owned(),
                None => String::new(),
            };
            rec.error = Some(ProviderError {
                kind: "incomplete".into(),
                message: reason,
            });
        }
        _ => {}
    }
    Ok(rec)
}

/// A Responses stream event given to `extract` on its own.
fn event(provider: Provider, root: &Node<'_>) -> Result<Vec<Extracted>> {
    let ty = root.raw("type").and_then(Value::as_str).unwrap_or_default();
    match ty {
        "response.completed" => Ok(vec![response_object(
            provider,
            &root.req_obj("response")?,
            true,
        )?]),
        "response.failed" | "response.incomplete" => {
            let mut rec = response_object(provider, &root.req_obj("response")?, false)?;
            rec.complete = false;
            if rec.error.is_none() {
                let kind = ty.trim_start_matches("response.");
                rec.error = Some(ProviderError {
                    kind: kind.into(),
                    message: String::new(),
                });
            }
            Ok(vec![rec])
        }
        "error" => {
            let mut rec = Extracted::new(provider, "");
            rec.billable = false;
            rec.error = Some(stream_error(root)?);
            Ok(vec![rec])
        }
        "response.created" | "response.in_progress" | "response.queued" => Err(Error::response(
            provider.as_str(),
            "response.usage",
            format!("is null in a {ty} event: usage arrives with response.completed"),
        )),
        _ => Err(root.err(
            "type",
            format!("is \"{ty}\", a stream event without usage: feed streams to StreamAccumulator"),
        )),
    }
}

/// An error event: `{type:"error", code, message}` or `{error:{type|code, message}}`.
fn stream_error(root: &Node<'_>) -> Result<ProviderError> {
    Ok(match root.obj("error")? {
        Some(e) => openai_error(&e),
        None => openai_error(root),
    })
}

/// OpenAI's `{message, type, code}` error object. Its fields are read leniently: a code may be
/// a number on some compatible servers, and an error must never fail to be recorded.
fn openai_error(e: &Node<'_>) -> ProviderError {
    let text = |k: &str| match e.raw(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    ProviderError {
        kind: text("type")
            .filter(|t| t != "error")
            .or_else(|| text("code"))
            .unwrap_or_else(|| "error".into()),
        message: text("message").unwrap_or_default(),
    }
}

/// One line of a Batch output file: `{custom_id, response:{status_code, request_id, body}, error}`.
fn batch_line(provider: Provider, root: &Node<'_>) -> Result<Extracted> {
    let custom_id = root.string("custom_id")?;
    let response = root.obj("response")?;
    let request_id = match &response {
        Some(r) => r.string("request_id")?,
        None => None,
    };
    let failure = if let Some(e) = root.obj("error")? {
        Some(openai_error(&e))
    } else {
        let r = response.as_ref().ok_or_else(|| root.missing("response"))?;
        let status = r.u64("status_code")?;
        let payload = r.obj("body")?;
        match (status, payload) {
            (Some(s), payload) if !(200..300).contains(&s) => {
                let mut err = match payload
                    .as_ref()
                    .map(|b| b.obj("error"))
                    .transpose()?
                    .flatten()
                {
                    Some(e) => openai_error(&e),
                    None => ProviderError {
                        kind: String::new(),
                        message: String::new(),
                    },
                };
                if err.kind.is_empty() || err.kind == "error" {
                    err.kind = format!("http_{s}");
                }
                Some(err)
            }
            (_, Some(b)) => {
                let mut rec = body(provider, &b)?;
                rec.request_id = request_id;
                // A batch line is batch-priced by definition; the body echoes `default`.
                rec.context.service_tier = ServiceTier::Batch;
                return Ok(rec);
            }
            (_, None) => return Err(r.missing("body")),
        }
    };
    let mut rec = Extracted::new(provider, "");
    rec.billable = false;
    rec.error = failure;
    rec.message_id = custom_id;
    rec.request_id = request_id;
    rec.context.service_tier = ServiceTier::Batch;
    Ok(rec)
}

/// Accumulates a Chat Completions chunk stream or a Responses event stream.
#[derive(Clone, Debug)]
pub(crate) struct OpenAiStream {
    provider: Provider,
    id: Option<String>,
    model: Option<String>,
    tier: Option<ServiceTier>,
    /// From the final chat chunk that carries `usage`.
    usage: Option<TokenUsage>,
    /// From `response.completed`/`failed`/`incomplete`, or a whole body pushed as an event.
    last: Option<Extracted>,
    error: Option<ProviderError>,
}

impl OpenAiStream {
    pub(crate) fn new(provider: Provider) -> Self {
        OpenAiStream {
            provider,
            id: None,
            model: None,
            tier: None,
            usage: None,
            last: None,
            error: None,
        }
    }

    pub(crate) fn push(&mut self, event: &Value) -> Result<()> {
        let n = Node::root(self.provider.as_str(), event);
        n.expect_object()?;
        if let Some(ty) = n.raw("type").and_then(Value::as_str) {
            match ty {
                "response.created" | "response.in_progress" | "response.queued" => {
                    let r = n.req_obj("response")?;
                    let (id, model, tier) = (r.string("id")?, r.string("model")?, tier(&r)?);
                    self.remember(id, model, tier);
                }
                "response.completed" | "response.failed" | "response.incomplete" => {
                    let r = n.req_obj("response")?;
                    let rec = response_object(self.provider, &r, ty == "response.completed")?;
                    let mut rec = rec;
                    if ty != "response.completed" {
                        rec.complete = false;
                        if rec.error.is_none() {
                            let kind = ty.trim_start_matches("response.");
                            rec.error = Some(ProviderError {
                                kind: kind.into(),
                                message: String::new(),
                            });
                        }
                    }
                    self.remember(rec.message_id.clone(), Some(rec.model.clone()), None);
                    self.last = Some(rec);
                }
                "error" => self.error = Some(stream_error(&n)?),
                _ => {}
            }
            return Ok(());
        }
        match n.raw("object").and_then(Value::as_str) {
            Some("chat.completion.chunk") => {
                let usage = match n.obj("usage")? {
                    Some(u) => Some(chat_usage(&u)?),
                    None => None,
                };
                let (id, model, tier) = (n.string("id")?, n.string("model")?, tier(&n)?);
                self.remember(id, model, tier);
                if usage.is_some() {
                    self.usage = usage;
                }
            }
            Some("chat.completion" | "response") => {
                let rec = body(self.provider, &n)?;
                self.remember(rec.message_id.clone(), Some(rec.model.clone()), None);
                self.last = Some(rec);
            }
            _ => {
                if n.raw("error").is_some() {
                    self.error = Some(stream_error(&n)?);
                }
            }
        }
        Ok(())
    }

    fn remember(&mut self, id: Option<String>, model: Option<String>, tier: Option<ServiceTier>) {
        if id.is_some() {
            self.id = id;
        }
        if model.as_deref().is_some_and(|m| !m.is_empty()) {
            self.model = model;
        }
        if tier.is_some() {
            self.tier = tier;
        }
    }

    pub(crate) fn snapshot(&self) -> Option<Extracted> {
        let mut rec = match &self.last {
            Some(r) => r.clone(),
            None => {
                if self.id.is_none()
                    && self.model.is_none()
                    && self.usage.is_none()
                    && self.error.is_none()
                {
                    return None;
                }
                let mut r = Extracted::new(self.provider, "");
                r.usage = self.usage.unwrap_or_default();
                r.complete = self.usage.is_some();
                r.billable = self.usage.is_some() || self.error.is_none();
                if let Some(t) = self.tier {
                    r.context.service_tier = t;
                }
                r
            }
        };
        if rec.model.is_empty() {
            rec.model = self.model.clone().unwrap_or_default();
        }
        if rec.message_id.is_none() {
            rec.message_id = self.id.clone();
        }
        if let Some(e) = &self.error {
            rec.error = Some(e.clone());
            rec.complete = false;
        }
        Some(rec)
    }
}
