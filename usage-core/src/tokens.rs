//! Token usage normalised to leaf categories that never overlap, whatever the provider's own
//! convention was. Provider-specific constructors say which convention they undo.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest count any one category of one request may have: a trillion.
pub const MAX_TOKENS: u64 = 1_000_000_000_000;

/// What one request used, in categories that never overlap.
///
/// `output` includes reasoning; `reasoning` is an informational subset of `output` and is never
/// billed on top of it. Cache writes are split by time-to-live.
///
/// ```
/// use usage_core::TokenUsage;
/// // OpenAI counts cached tokens inside prompt_tokens:
/// let u = TokenUsage::from_inclusive_prompt(10_000, 8_000, 0, 500).unwrap();
/// assert_eq!(u.input, 2_000);
/// assert_eq!(u.prompt_tokens(), 10_000);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input: u64,
    /// Input tokens read from a prompt cache.
    pub cache_read: u64,
    /// Input tokens written to a cache with a 5-minute time-to-live.
    pub cache_write_5m: u64,
    /// Input tokens written to a cache with a 1-hour time-to-live.
    pub cache_write_1h: u64,
    /// Output tokens, reasoning included: the billed output count.
    pub output: u64,
    /// Reasoning (thinking) tokens: a subset of `output`, for information only.
    pub reasoning: u64,
    /// Server-side web search requests.
    pub web_search_requests: u64,
    /// Server-side web fetch requests.
    pub web_fetch_requests: u64,
}

impl TokenUsage {
    /// The eight counts with their field names, in declaration order (for display and for
    /// bindings that show or convert them).
    pub fn counts(&self) -> [(&'static str, u64); 8] {
        [
            ("input", self.input),
            ("cache_read", self.cache_read),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("output", self.output),
            ("reasoning", self.reasoning),
            ("web_search_requests", self.web_search_requests),
            ("web_fetch_requests", self.web_fetch_requests),
        ]
    }

    /// Every input token: uncached input + cache reads + cache writes. Prompt-size tiers are
    /// decided on this figure.
    pub fn prompt_tokens(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
    }

    /// All cache writes, both TTLs.
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m.saturating_add(self.cache_write_1h)
    }

    /// Prompt tokens plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output)
    }

    /// Checks the invariants a caller-built value must hold: reasoning within output, and no
    /// count above [`MAX_TOKENS`] (which keeps exact decimal arithmetic far from overflow).
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("input", self.input),
            ("cache_read", self.cache_read),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("output", self.output),
            ("reasoning", self.reasoning),
            ("web_search_requests", self.web_search_requests),
            ("web_fetch_requests", self.web_fetch_requests),
        ];
        for (name, v) in fields {
            if v > MAX_TOKENS {
                return Err(Error::usage(
                    name,
                    format!("is {v}; one request cannot use more than {MAX_TOKENS}"),
                ));
            }
        }
        if self.reasoning > self.output {
            return Err(Error::usage(
                "reasoning",
                format!(
                    "is {} but must not exceed output ({}): reasoning is a subset of output",
                    self.reasoning, self.output
                ),
            ));
        }
        Ok(())
    }

    /// From a convention where `prompt` counts every input token, cached ones included
    /// (OpenAI, xAI, DeepSeek, Mistral, Gemini): `input = prompt − cached − cache_write`.
    pub fn from_inclusive_prompt(
        prompt: u64,
        cached: u64,
        cache_write: u64,
        output: u64,
    ) -> Result<Self> {
        let input = prompt.checked_sub(cached).and_then(|r| r.checked_sub(cache_write)).ok_or_else(
            || {
                Error::usage(
                    "cached_tokens",
                    format!(
                        "cached ({cached}) + cache writes ({cache_write}) exceed the prompt count ({prompt})"
                    ),
                )
            },
        )?;
        Ok(TokenUsage {
            input,
            cache_read: cached,
            cache_write_5m: cache_write,
            output,
            ..Default::default()
        })
    }

    /// From the Anthropic/Bedrock convention, where `input` excludes cache reads and writes.
    /// `split` is the writes by TTL (`ephemeral_5m`, `ephemeral_1h`); without it every write
    /// counts as 5-minute, the cheaper reading ("fail cheap", as ccusage does).
    pub fn from_exclusive_input(
        input: u64,
        cache_read: u64,
        cache_write: u64,
        split: Option<(u64, u64)>,
        output: u64,
    ) -> Self {
        let (w5, w1) = match split {
            Some((a, b)) if a.saturating_add(b) > 0 || cache_write == 0 => (a, b),
            _ => (cache_write, 0),
        };
        TokenUsage {
            input,
            cache_read,
            cache_write_5m: w5,
            cache_write_1h: w1,
            output,
            ..Default::default()
        }
    }

    /// Adds another usage to this one, category by category.
    pub fn accumulate(&mut self, other: &TokenUsage) {
        self.input = self.input.saturating_add(other.input);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(other.cache_write_1h);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
        self.web_search_requests = self
            .web_search_requests
            .saturating_add(other.web_search_requests);
        self.web_fetch_requests = self
            .web_fetch_requests
            .saturating_add(other.web_fetch_requests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_prompt_subtracts_cached() {
        let u = TokenUsage::from_inclusive_prompt(125, 98, 0, 10).unwrap();
        assert_eq!((u.input, u.cache_read, u.prompt_tokens()), (27, 98, 125));
        let err = TokenUsage::from_inclusive_prompt(10, 11, 0, 0).unwrap_err();
        assert!(err.to_string().contains("cached_tokens"), "{err}");
    }

    #[test]
    fn exclusive_input_defaults_writes_to_five_minutes() {
        let u = TokenUsage::from_exclusive_input(1000, 50_000, 12_000, None, 2000);
        assert_eq!((u.cache_write_5m, u.cache_write_1h), (12_000, 0));
        let u = TokenUsage::from_exclusive_input(1000, 50_000, 12_000, Some((10_000, 2_000)), 2000);
        assert_eq!((u.cache_write_5m, u.cache_write_1h), (10_000, 2_000));
        assert_eq!(u.prompt_tokens(), 63_000);
    }

    #[test]
    fn absurd_counts_are_rejected_not_overflowed() {
        let u = TokenUsage {
            output: u64::MAX,
            ..Default::default()
        };
        assert!(
            matches!(u.validate(), Err(Error::InvalidUsage { ref field, .. }) if field == "output")
        );
    }

    #[test]
    fn reasoning_must_fit_in_output() {
        let u = TokenUsage {
            output: 5,
            reasoning: 6,
            ..Default::default()
        };
        assert!(
            matches!(u.validate(), Err(Error::InvalidUsage { ref field, .. }) if field == "reasoning")
        );
    }
}
