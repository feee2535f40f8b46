//! Anthropic Messages API usage: response bodies, batch result lines, error bodies and the SSE
//! stream ([`AnthropicStream`]). Vertex and Bedrock InvokeModel send the same bodies, so they
//! come through here too, with the platform set.
//!
//! Anthropic's `input_tokens` excludes cache reads and writes (reference §A.1.1), so the counts
//! are taken as they are and writes are split by TTL.

use serde_json::Value;

use super::json::Node;
use super::{Extracted, Provider, ProviderError};
use crate::context::{PricingContext, ServiceTier, Speed};
use crate::error::{Error, Result};
use crate::tokens::TokenUsage;

/// Stream events that never carry usage.
const USAGELESS_EVENTS: [&str; 5] = [
    "ping",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
];

pub(crate) fn extract(provider: Provider, v: &Value) -> Result<Vec<Extracted>> {
    let root = Node::root(provider.as_str(), v);
    root.expect_object()?;
    if root.has_key("custom_id") && root.has_key("result") {
        return batch_line(provider, &root).map(|r| vec![r]);
    }
    match root.str("type")? {
        Some("error") => Ok(vec![error_body(provider, &root)?]),
        Some("message_start") => {
            let mut s = AnthropicStream::for_provider(provider);
            s.push(v)?;
            Ok(s.snapshot().into_iter().collect())
        }
        Some("message_delta") => {
            // A lone final delta: its figures are cumulative totals. Older API versions sent
            // only `output_tokens` here, so it is complete only when it carries the input too.
            let mut s = AnthropicStream::for_provider(provider);
            s.push(v)?;
            let carries_input = s.fields.input.is_some();
            Ok(s.snapshot()
                .map(|mut r| {
                    r.complete = carries_input;
                    r
                })
                .into_iter()
                .collect())
        }
        Some(t) if USAGELESS_EVENTS.contains(&t) => Err(root.err(
            "type",
            format!("is \"{t}\", a stream event without usage: feed streams to StreamAccumulator"),
        )),
        _ => Ok(vec![message(provider, &root)?]),
    }
}

/// A non-streaming `Message` (also the `message` of a batch result or a Claude Code line).
/// `usage.input_tokens` and `usage.output_tokens` are required, as the API documents them.
pub(crate) fn message(provider: Provider, m: &Node<'_>) -> Result<Extracted> {
    let mut rec = Extracted::new(provider, m.string("model")?.unwrap_or_default());
    rec.message_id = m.string("id")?;
    let u = m.req_obj("usage")?;
    let f = UsageFields::read(&u)?;
    f.require_full(&u)?;
    rec.usage = f.to_usage();
    f.apply_context(&mut rec.context);
    rec.context.platform = provider.platform();
    Ok(rec)
}

/// `{"type":"error","error":{"type":…,"message":…},"request_id":…}`: a failed call, not billed.
fn error_body(provider: Provider, root: &Node<'_>) -> Result<Extracted> {
    let mut rec = Extracted::new(provider, "");
    rec.billable = false;
    rec.error = Some(error_from(root, "error")?);
    rec.request_id = root.string("request_id")?;
    rec.context.platform = provider.platform();
    Ok(rec)
}

/// One line of a Message Batches results file.
fn batch_line(provider: Provider, root: &Node<'_>) -> Result<Extracted> {
    let custom_id = root.string("custom_id")?;
    let result = root.req_obj("result")?;
    let ty = result.str("type")?.ok_or_else(|| result.missing("type"))?;
    let failure = match ty {
        "succeeded" => {
            let mut rec = message(provider, &result.req_obj("message")?)?;
            // A batch result is batch-priced by definition, whatever the usage says.
            rec.context.service_tier = ServiceTier::Batch;
            return Ok(rec);
        }
        "errored" => error_from(&result, "error")?,
        "canceled" => ProviderError {
            kind: "canceled".into(),
            message: "the batch request was canceled before it was processed".into(),
        },
        "expired" => ProviderError {
            kind: "expired".into(),
            message: "the batch request expired before it was processed".into(),
        },
        other => {
            return Err(result.err(
                "type",
                format!("is \"{other}\", not one of succeeded, errored, canceled, expired"),
            ));
        }
    };
    let mut rec = Extracted::new(provider, "");
    rec.billable = false;
    rec.error = Some(failure);
    // A failed result has no message; its custom_id is the only handle on the request.
    rec.message_id = custom_id;
    rec.context.service_tier = ServiceTier::Batch;
    rec.context.platform = provider.platform();
    Ok(rec)
}

/// The error at `key`: either `{type, message}` or the API's envelope
/// `{type:"error", error:{type, message}}`. A plain string is taken as the message.
pub(crate) fn error_from(n: &Node<'_>, key: &str) -> Result<ProviderError> {
    if let Some(Value::String(s)) = n.raw(key) {
        return Ok(ProviderError {
            kind: "error".into(),
            message: s.clone(),
        });
    }
    let Some(e) = n.obj(key)? else {
        return Ok(ProviderError {
            kind: "error".into(),
            message: String::new(),
        });
    };
    let e = match e.obj("error")? {
        Some(inner) => inner,
        None => e,
    };
    Ok(ProviderError {
        kind: e.string("type")?.unwrap_or_else(|| "error".into()),
        message: e.str("message")?.unwrap_or_default().to_owned(),
    })
}

/// Anthropic usage fields as one payload carries them. Absent fields stay `None`, so a stream
/// can overwrite exactly what a `message_delta` carries.
#[derive(Clone, Debug, Default)]
pub(crate) struct UsageFields {
    pub(crate) input: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    /// `cache_creation`: (5m, 1h) writes.
    split: Option<(u64, u64)>,
    pub(crate) output: Option<u64>,
    thinking: Option<u64>,
    web_search: Option<u64>,
    web_fetch: Option<u64>,
    service_tier: Option<ServiceTier>,
    speed: Option<Speed>,
    /// `Some(None)` when the payload says there is no particular geography.
    geo: Option<Option<String>>,
}

impl UsageFields {
    /// Reads every usage field `u` carries, checking each count.
    pub(crate) fn read(u: &Node<'_>) -> Result<Self> {
        let split = match u.obj("cache_creation")? {
            Some(c) => Some((
                c.u64_or_zero("ephemeral_5m_input_tokens")?,
                c.u64_or_zero("ephemeral_1h_input_tokens")?,
            )),
            None => None,
        };
        let (web_search, web_fetch) = match u.obj("server_tool_use")? {
            Some(s) => (s.u64("web_search_requests")?, s.u64("web_fetch_requests")?),
            None => (None, None),
        };
        let thinking = match u.obj("output_tokens_details")? {
            Some(d) => d.u64("thinking_tokens")?,
            None => None,
        };
        Ok(UsageFields {
            input: u.u64("input_tokens")?,
            cache_read: u.u64("cache_read_input_tokens")?,
            cache_creation: u.u64("cache_creation_input_tokens")?,
            split,
            output: u.u64("output_tokens")?,
            thinking,
            web_search,
            web_fetch,
            // Unknown tiers are left to the default rather than rejected: new ones appear.
            service_tier: u.str("service_tier")?.and_then(ServiceTier::from_provider),
            speed: u.str("speed")?.map(|s| {
                if s.eq_ignore_ascii_case("fast") {
                    Speed::Fast
                } else {
                    Speed::Standard
                }
            }),
            geo: u.str("inference_geo")?.map(geo),
        })
    }

    /// A full `Usage` object requires the input and output counts.
    pub(crate) fn require_full(&self, u: &Node<'_>) -> Result<()> {
        if self.input.is_none() {
            return Err(u.missing("input_tokens"));
        }
        if self.output.is_none() {
            return Err(u.missing("output_tokens"));
        }
        Ok(())
    }

    /// Replaces every field `newer` carries; the values are cumulative, never added up.
    pub(crate) fn overwrite(&mut self, newer: UsageFields) {
        fn take<T>(slot: &mut Option<T>, v: Option<T>) {
            if v.is_some() {
                *slot = v;
            }
        }
        take(&mut self.input, newer.input);
        take(&mut self.cache_read, newer.cache_read);
        take(&mut self.cache_creation, newer.cache_creation);
        take(&mut self.split, newer.split);
        take(&mut self.output, newer.output);
        take(&mut self.thinking, newer.thinking);
        take(&mut self.web_search, newer.web_search);
        take(&mut self.web_fetch, newer.web_fetch);
        take(&mut self.service_tier, newer.service_tier);
        take(&mut self.speed, newer.speed);
        take(&mut self.geo, newer.geo);
    }

    /// The normalised usage.
    pub(crate) fn to_usage(&self) -> TokenUsage {
        let (w5, w1) = split_writes(self.cache_creation, self.split);
        let output = self.output.unwrap_or(0);
        let mut usage = TokenUsage::from_exclusive_input(
            self.input.unwrap_or(0),
            self.cache_read.unwrap_or(0),
            w5.saturating_add(w1),
            Some((w5, w1)),
            output,
        );
        usage.reasoning = self.thinking.unwrap_or(0).min(output);
        usage.web_search_requests = self.web_search.unwrap_or(0);
        usage.web_fetch_requests = self.web_fetch.unwrap_or(0);
        usage
    }

    /// Tier, speed and geography, where the usage reports them.
    pub(crate) fn apply_context(&self, ctx: &mut PricingContext) {
        if let Some(t) = self.service_tier {
            ctx.service_tier = t;
        }
        if let Some(s) = self.speed {
            ctx.speed = s;
        }
        if let Some(g) = &self.geo {
            ctx.inference_geo = g.clone();
        }
    }
}

/// Cache writes by TTL from the total and the optional `cache_creation` split. The total is
/// authoritative: when the split does not add up to it, the 1h figure is kept and the rest is
/// counted as 5m (the cheaper reading). Without a split every write is 5m (reference §C.4).
pub(crate) fn split_writes(total: Option<u64>, split: Option<(u64, u64)>) -> (u64, u64) {
    match (total, split) {
        (None, None) => (0, 0),
        (None, Some(s)) => s,
        (Some(t), None) => (t, 0),
        (Some(t), Some((a, b))) if a.checked_add(b) == Some(t) => (a, b),
        (Some(t), Some((_, b))) if b <= t => (t - b, b),
        (Some(t), Some(_)) => (t, 0),
    }
}

/// `inference_geo` as reported; values that name no particular geography become `None`.
fn geo(s: &str) -> Option<String> {
    match s.trim() {
        "" => None,
        g if g.eq_ignore_ascii_case("not_available") || g.eq_ignore_ascii_case("global") => None,
        g => Some(g.to_owned()),
    }
}

/// Accumulates an Anthropic SSE stream (`message_start`, `message_delta`, …) into one record.
///
/// Usage starts from `message_start.message.usage`; every `message_delta.usage` then
/// **overwrites** the fields it carries (they are cumulative, never summed). `message_stop`
/// marks the record complete; without it (a cut-off stream) the record holds the last values
/// seen and `complete` is false. An `error` event is recorded in `error`. Other events
/// (`ping`, `content_block_*`, unknown types) are ignored.
///
/// ```
/// use usage_core::extract::AnthropicStream;
/// use serde_json::json;
/// let mut s = AnthropicStream::new();
/// s.push(&json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-opus-4-7",
///     "usage": {"input_tokens": 588, "cache_read_input_tokens": 20368, "output_tokens": 1}}})).unwrap();
/// s.push(&json!({"type": "message_delta", "usage": {"output_tokens": 645}})).unwrap();
/// s.push(&json!({"type": "message_stop"})).unwrap();
/// let rec = s.finish().unwrap();
/// assert_eq!((rec.usage.input, rec.usage.cache_read, rec.usage.output), (588, 20368, 645));
/// assert!(rec.complete);
/// ```
#[derive(Clone, Debug)]
pub struct AnthropicStream {
    provider: Provider,
    id: Option<String>,
    model: Option<String>,
    pub(crate) fields: UsageFields,
    started: bool,
    saw_delta: bool,
    stopped: bool,
    error: Option<ProviderError>,
}

impl Default for AnthropicStream {
    fn default() -> Self {
        AnthropicStream::new()
    }
}

impl AnthropicStream {
    /// An empty accumulator for the Anthropic API.
    pub fn new() -> Self {
        AnthropicStream::for_provider(Provider::Anthropic)
    }

    /// An empty accumulator for a platform that streams Anthropic events (Vertex, Bedrock
    /// InvokeModelWithResponseStream); the records carry that provider and platform.
    pub fn for_provider(provider: Provider) -> Self {
        AnthropicStream {
            provider,
            id: None,
            model: None,
            fields: UsageFields::default(),
            started: false,
            saw_delta: false,
            stopped: false,
            error: None,
        }
    }

    /// True for event types this accumulator reads (the rest are ignored by [`push`](Self::push)).
    pub(crate) fn is_anthropic_event(event: &Value) -> bool {
        matches!(
            event.get("type").and_then(Value::as_str),
            Some("message_start" | "message_delta" | "message_stop" | "error")
        )
    }

    /// Feeds one event (the JSON of one SSE `data:` line). A malformed event is an
    /// [`Error::InvalidResponse`] naming the field, and leaves the accumulator unchanged.
    pub fn push(&mut self, event: &Value) -> Result<()> {
        let e = Node::root(self.provider.as_str(), event);
        e.expect_object()?;
        let ty = e.str("type")?.ok_or_else(|| e.missing("type"))?;
        match ty {
            "message_start" => {
                if self.started {
                    return Err(e.err(
                        "type",
                        "is a second message_start: one stream carries one message",
                    ));
                }
                let m = e.req_obj("message")?;
                let id = m.string("id")?;
                let model = m.string("model")?;
                let u = m.req_obj("usage")?;
                let mut f = UsageFields::read(&u)?;
                f.require_full(&u)?;
                if self.saw_delta {
                    // Out of order: whatever a delta already reported is newer.
                    f.overwrite(std::mem::take(&mut self.fields));
                }
                self.fields = f;
                self.id = id;
                self.model = model;
                self.started = true;
            }
            "message_delta" => {
                let u = e.req_obj("usage")?;
                let f = UsageFields::read(&u)?;
                if f.output.is_none() {
                    return Err(u.missing("output_tokens"));
                }
                self.fields.overwrite(f);
                self.saw_delta = true;
            }
            "message_stop" => self.stopped = true,
            "error" => self.error = Some(error_from(&e, "error")?),
            _ => {}
        }
        Ok(())
    }

    /// The record as it stands, or `None` before any usage or error event.
    pub fn snapshot(&self) -> Option<Extracted> {
        if !self.started && !self.saw_delta && self.error.is_none() {
            return None;
        }
        let mut rec = Extracted::new(self.provider, self.model.clone().unwrap_or_default());
        rec.message_id = self.id.clone();
        rec.usage = self.fields.to_usage();
        self.fields.apply_context(&mut rec.context);
        rec.context.platform = self.provider.platform();
        rec.complete = self.stopped && self.error.is_none();
        // An error before any usage was reported is a call that was never served.
        rec.billable = self.started || self.saw_delta;
        rec.error = self.error.clone();
        Some(rec)
    }

    /// The final record. [`Error::InvalidResponse`] when no `message_start`, `message_delta`
    /// or `error` event was seen.
    pub fn finish(self) -> Result<Extracted> {
        self.snapshot().ok_or_else(|| {
            Error::response(
                self.provider.as_str(),
                "<stream>",
                "has no message_start, message_delta or error event",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_total_is_authoritative() {
        assert_eq!(split_writes(Some(12), Some((10, 2))), (10, 2));
        assert_eq!(split_writes(Some(13), Some((10, 2))), (11, 2));
        assert_eq!(split_writes(Some(1), Some((0, 2))), (1, 0));
        assert_eq!(split_writes(Some(5), None), (5, 0));
        assert_eq!(split_writes(None, Some((3, 4))), (3, 4));
        assert_eq!(
            split_writes(Some(u64::MAX), Some((u64::MAX, 1))),
            (u64::MAX - 1, 1)
        );
    }
}
