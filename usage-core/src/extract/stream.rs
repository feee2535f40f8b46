//! One accumulator for every provider's stream: it takes the events one by one, as they
//! arrive, and gives one record at the end, following each provider's rule for streamed usage
//! (reference §C.5): Anthropic overwrites with cumulative deltas, OpenAI reports usage once at
//! the end, Gemini repeats cumulative usage (the last wins), Bedrock sends a `metadata` event.

use serde_json::Value;

use super::anthropic::AnthropicStream;
use super::bedrock::BedrockStream;
use super::gemini::GeminiStream;
use super::openai::OpenAiStream;
use super::{Extracted, Provider};
use crate::error::{Error, Result};

/// Accumulates a provider's stream events (the JSON of each SSE `data:` line, or each SDK
/// event) into one usage record.
///
/// - Anthropic and Vertex: [`AnthropicStream`] (`message_start`, cumulative `message_delta`,
///   `message_stop`, `error`).
/// - OpenAI, DeepSeek, Mistral, xAI: Chat Completions chunks (model and id from any chunk,
///   usage only from the final usage chunk; without it the record has zero usage and
///   `complete == false`) or Responses events (`response.created` names the model,
///   `response.completed` carries usage, `response.failed`/`response.incomplete` set `error`
///   and `complete == false`).
/// - Gemini: the last `usageMetadata` seen (never summed); complete once a candidate has a
///   `finishReason`.
/// - Bedrock: ConverseStream (`metadata` carries usage, `messageStop` ends the message; the
///   record is complete when both were seen), or Anthropic events from
///   InvokeModelWithResponseStream.
/// - Claude Code and the Claude CLI write logs, not streams: call
///   [`extract`](super::extract) on each line instead. `push` and `finish` say so with
///   [`Error::InvalidArgument`].
///
/// A malformed event is an [`Error::InvalidResponse`] naming the field and leaves the
/// accumulator as it was, so a caller may skip it and go on. Events with nothing to say about
/// usage are ignored.
///
/// ```
/// use usage_core::extract::{Provider, StreamAccumulator};
/// use serde_json::json;
/// let mut acc = StreamAccumulator::new(Provider::OpenAI);
/// acc.push(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o",
///                  "choices": [{"delta": {"content": "Hi"}}], "usage": null})).unwrap();
/// acc.push(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
///                  "usage": {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59}})).unwrap();
/// let rec = acc.finish().unwrap();
/// assert_eq!((rec.model.as_str(), rec.usage.input, rec.usage.output), ("gpt-4o", 42, 17));
/// assert!(rec.complete);
/// ```
#[derive(Clone, Debug)]
pub struct StreamAccumulator {
    provider: Provider,
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Anthropic(AnthropicStream),
    OpenAi(OpenAiStream),
    Gemini(GeminiStream),
    Bedrock(BedrockStream),
    /// Log formats, which have no stream.
    NotAStream,
}

impl StreamAccumulator {
    /// An empty accumulator for `provider`'s stream format.
    pub fn new(provider: Provider) -> Self {
        let inner = match provider {
            Provider::Anthropic | Provider::Vertex => {
                Inner::Anthropic(AnthropicStream::for_provider(provider))
            }
            Provider::OpenAI | Provider::DeepSeek | Provider::Mistral | Provider::Xai => {
                Inner::OpenAi(OpenAiStream::new(provider))
            }
            Provider::Gemini => Inner::Gemini(GeminiStream::new()),
            Provider::Bedrock => Inner::Bedrock(BedrockStream::new()),
            Provider::ClaudeCode | Provider::ClaudeCli => Inner::NotAStream,
        };
        StreamAccumulator { provider, inner }
    }

    /// The provider this accumulator reads.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Feeds one event.
    pub fn push(&mut self, event: &Value) -> Result<()> {
        match &mut self.inner {
            Inner::Anthropic(s) => s.push(event),
            Inner::OpenAi(s) => s.push(event),
            Inner::Gemini(s) => s.push(event),
            Inner::Bedrock(s) => s.push(event),
            Inner::NotAStream => Err(self.not_a_stream()),
        }
    }

    /// The record as it stands now (for a progress display or a stream that is being
    /// abandoned), or `None` before anything identifying was seen.
    pub fn snapshot(&self) -> Option<Extracted> {
        match &self.inner {
            Inner::Anthropic(s) => s.snapshot(),
            Inner::OpenAi(s) => s.snapshot(),
            Inner::Gemini(s) => s.snapshot(),
            Inner::Bedrock(s) => s.snapshot(),
            Inner::NotAStream => None,
        }
    }

    /// The final record. A stream that ended early gives `complete == false` with the last
    /// figures seen. [`Error::InvalidResponse`] when nothing identifying (no model, id, usage
    /// or error) was seen.
    pub fn finish(self) -> Result<Extracted> {
        match self.inner {
            Inner::Anthropic(s) => s.finish(),
            Inner::Gemini(s) => s.finish(),
            Inner::Bedrock(s) => s.finish(),
            Inner::OpenAi(s) => s.snapshot().ok_or_else(|| {
                Error::response(
                    self.provider.as_str(),
                    "<stream>",
                    "has no chunk or event with an id, a model, usage or an error",
                )
            }),
            Inner::NotAStream => Err(self.not_a_stream()),
        }
    }

    fn not_a_stream(&self) -> Error {
        Error::argument(
            "provider",
            format!(
                "{} payloads are log lines, not a stream: call extract() on each line",
                self.provider
            ),
        )
    }
}
