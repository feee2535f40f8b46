//! Claude Code: transcript JSONL lines (`~/.claude/projects/**/*.jsonl`), the Claude CLI
//! `result` event (`claude -p --output-format json|stream-json`), and the de-duplication that
//! transcripts need because one API response is written as several lines (reference §A.5).

use std::collections::HashMap;

use serde_json::Value;

use super::anthropic::{self, UsageFields};
use super::json::Node;
use super::{Extracted, Provider, ProviderError};
use crate::context::Platform;
use crate::error::Result;
use crate::tokens::TokenUsage;

/// A transcript line. Assistant lines give one record; other lines give none unless they carry
/// `message.usage`, in which case the record is not billable.
///
/// Not billable either (the record is still returned, so callers can count them): the
/// `<synthetic>` model (client-generated), `isApiErrorMessage: true` (with `error` filled), and
/// a line without `requestId`, which ccusage does not price.
pub(crate) fn extract_line(v: &Value) -> Result<Vec<Extracted>> {
    let root = Node::root(Provider::ClaudeCode.as_str(), v);
    root.expect_object()?;
    let is_assistant = root.raw("type").and_then(Value::as_str) == Some("assistant");
    let has_usage = v
        .get("message")
        .and_then(|m| m.get("usage"))
        .is_some_and(|u| !u.is_null());
    if !is_assistant && !has_usage {
        return Ok(Vec::new());
    }
    let message = root.req_obj("message")?;
    let mut rec = anthropic::message(Provider::ClaudeCode, &message)?;
    rec.request_id = root.string("requestId")?;
    rec.session_id = match root.string("sessionId")? {
        Some(s) => Some(s),
        None => root.string("session_id")?,
    };
    rec.timestamp = match root.str("timestamp")? {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    root.err(
                        "timestamp",
                        format!("is \"{t}\", not an RFC 3339 time: {e}"),
                    )
                })?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    rec.provided_cost = root.usd("costUSD")?;
    rec.sidechain = root.bool("isSidechain")?.unwrap_or(false);
    let api_error = root.bool("isApiErrorMessage")?.unwrap_or(false);
    if api_error {
        rec.error = Some(ProviderError {
            kind: root
                .raw("error")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("api_error")
                .to_owned(),
            message: first_text(message.v).unwrap_or_default(),
        });
    }
    rec.billable =
        is_assistant && rec.model != "<synthetic>" && !api_error && rec.request_id.is_some();
    Ok(vec![rec])
}

/// The first text block of a message's content (where Claude Code writes API error text).
fn first_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .find_map(|b| b.get("text").and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    }
}

/// A Claude CLI `result` event: one record per `modelUsage` entry, else one from `usage`.
///
/// Other stream-json lines (`system`, `assistant`, `user`, `stream_event`…) give no records:
/// the result's figures already total the run, and adding per-message usage on top would count
/// it twice (reference §C.6).
///
/// `session_id`, `duration_ms` and `num_turns` describe the whole run and are copied onto
/// every record. Per-model records take `costUSD` as `provided_cost`; the `usage` fallback
/// record (model `""`: the caller supplies it) takes `total_cost_usd`. When there is a single
/// `modelUsage` entry, the run's `usage` tier, speed and geography apply to it.
pub(crate) fn extract_cli_result(v: &Value) -> Result<Vec<Extracted>> {
    const P: Provider = Provider::ClaudeCli;
    let root = Node::root(P.as_str(), v);
    root.expect_object()?;
    let ty = root.str("type")?.ok_or_else(|| root.missing("type"))?;
    if ty != "result" {
        return Ok(Vec::new());
    }
    let session_id = root.string("session_id")?;
    let duration_ms = root.u64("duration_ms")?;
    let num_turns = root.u64("num_turns")?;
    let is_error = root.bool("is_error")?.unwrap_or(false);
    let total_cost = match root.usd("total_cost_usd")? {
        Some(c) => Some(c),
        None => root.usd("cost_usd")?,
    };
    let run_usage = match root.obj("usage")? {
        Some(u) => Some(UsageFields::read(&u)?),
        None => None,
    };

    let mut records = Vec::new();
    let model_usage = root.entries("modelUsage")?.unwrap_or_default();
    let single = model_usage.len() == 1;
    for (model, entry) in model_usage {
        entry.expect_object()?;
        let mut rec = Extracted::new(P, model);
        let output = entry.u64_or_zero("outputTokens")?;
        // The CLI reports cache writes as one count; without a split they are all 5m.
        rec.usage = TokenUsage::from_exclusive_input(
            entry.u64_or_zero("inputTokens")?,
            entry.u64_or_zero("cacheReadInputTokens")?,
            entry.u64_or_zero("cacheCreationInputTokens")?,
            None,
            output,
        );
        rec.usage.reasoning = entry.u64_or_zero("thinkingTokens")?.min(output);
        rec.usage.web_search_requests = entry.u64_or_zero("webSearchRequests")?;
        rec.provided_cost = entry.usd("costUSD")?;
        rec.context.platform = match entry.str("provider")? {
            // Only the two named clouds; other providers (`foundry`, `gateway`…) price as the
            // model id says.
            Some("bedrock") => Some(Platform::Bedrock),
            Some("vertex") => Some(Platform::Vertex),
            _ => None,
        };
        if single && let Some(f) = &run_usage {
            f.apply_context(&mut rec.context);
        }
        records.push(rec);
    }
    if records.is_empty() {
        let mut rec = Extracted::new(P, "");
        match &run_usage {
            Some(f) => {
                rec.usage = f.to_usage();
                f.apply_context(&mut rec.context);
            }
            None if is_error => {}
            None => return Err(root.missing("usage")),
        }
        rec.provided_cost = total_cost;
        records.push(rec);
    }

    let zero_usage = records.iter().all(|r| {
        r.usage.total_tokens() == 0
            && r.usage.web_search_requests == 0
            && r.usage.web_fetch_requests == 0
    });
    let terminal_reason = root.raw("terminal_reason").and_then(Value::as_str);
    let error = is_error.then(|| cli_error(v, terminal_reason));
    let billable = !(is_error && (terminal_reason == Some("api_error") || zero_usage));
    for rec in &mut records {
        rec.session_id = session_id.clone();
        rec.duration_ms = duration_ms;
        rec.num_turns = num_turns;
        rec.error = error.clone();
        rec.billable = billable;
    }
    Ok(records)
}

/// The error of a failed run: the terminal reason or subtype, and the `result` text or errors.
fn cli_error(v: &Value, terminal_reason: Option<&str>) -> ProviderError {
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let kind = terminal_reason
        .filter(|s| !s.is_empty())
        .or_else(|| text("subtype"))
        .unwrap_or("error")
        .to_owned();
    let errors: Vec<&str> = v
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let message = match text("result") {
        Some(r) => r.to_owned(),
        None if !errors.is_empty() => errors.join("; "),
        None => match v.get("api_error_status") {
            Some(Value::Number(n)) => format!("API error status {n}"),
            Some(Value::String(s)) => format!("API error status {s}"),
            _ => String::new(),
        },
    };
    ProviderError { kind, message }
}

/// Removes the duplicate records Claude Code transcripts contain, the way ccusage does
/// (reference §A.5.1), keeping the first-seen order.
///
/// - Claude Code writes one line per content block, so one API response appears several
///   times with the same `message_id` and `request_id`, the early lines with provisional
///   usage. Of those, the record with the larger token total (prompt + output) is kept; on a
///   tie, the first.
/// - `/btw` sidechains replay a parent message under a new request id. When either record is
///   a [`sidechain`](Extracted::sidechain), records match on `message_id` alone, and the
///   non-sidechain copy wins whatever its totals.
/// - Records without both a `message_id` and a `request_id` cannot be matched and are all kept
///   (they are not billable anyway).
///
/// ```
/// use usage_core::extract::{dedup_claude_code, extract, Provider};
/// use serde_json::json;
/// let line = |out: u64| json!({"type": "assistant", "requestId": "req_1", "sessionId": "s",
///     "message": {"id": "msg_1", "model": "claude-opus-4-6",
///                 "usage": {"input_tokens": 10, "output_tokens": out}}});
/// let mut recs = extract(Provider::ClaudeCode, &line(1)).unwrap();
/// recs.extend(extract(Provider::ClaudeCode, &line(640)).unwrap());
/// let kept = dedup_claude_code(recs);
/// assert_eq!(kept.len(), 1);
/// assert_eq!(kept[0].usage.output, 640);
/// ```
pub fn dedup_claude_code(records: impl IntoIterator<Item = Extracted>) -> Vec<Extracted> {
    let mut kept: Vec<Extracted> = Vec::new();
    let mut by_key: HashMap<(String, String), usize> = HashMap::new();
    let mut by_message: HashMap<String, Vec<usize>> = HashMap::new();
    for rec in records {
        let (Some(msg), Some(req)) = (rec.message_id.clone(), rec.request_id.clone()) else {
            kept.push(rec);
            continue;
        };
        let key = (msg.clone(), req);
        let slot = by_key.get(&key).copied().or_else(|| {
            by_message.get(&msg).and_then(|slots| {
                slots
                    .iter()
                    .copied()
                    .find(|&i| rec.sidechain || kept.get(i).is_some_and(|k| k.sidechain))
            })
        });
        match slot {
            Some(i) => {
                if let Some(existing) = kept.get_mut(i)
                    && better(&rec, existing)
                {
                    *existing = rec;
                }
                by_key.insert(key, i);
            }
            None => {
                let i = kept.len();
                kept.push(rec);
                by_key.insert(key, i);
                by_message.entry(msg).or_default().push(i);
            }
        }
    }
    kept
}

/// Whether `new` should replace `old`: a non-sidechain beats a sidechain, then the larger
/// token total wins.
fn better(new: &Extracted, old: &Extracted) -> bool {
    if new.sidechain != old.sidechain {
        return old.sidechain;
    }
    new.usage.total_tokens() > old.usage.total_tokens()
}
