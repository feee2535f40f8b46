//! Provider usage extraction: every documented shape, with the reference payloads of
//! `provider-usage-and-pricing.md` §A.1–A.5 and the exact normalised usage each must give;
//! streams; malformed input naming the field; and property tests that no JSON input panics.

use proptest::prelude::*;
use serde_json::{Value, json};
use usage_core::extract::{
    AnthropicStream, Extracted, Provider, StreamAccumulator, dedup_claude_code, extract,
    extract_bytes,
};
use usage_core::{Error, Platform, ServiceTier, Speed, TokenUsage};

// ---------------------------------------------------------------------------------------------
// Helpers

fn one(provider: Provider, payload: &Value) -> Extracted {
    let mut recs = extract(provider, payload).unwrap_or_else(|e| panic!("{provider}: {e}"));
    assert_eq!(
        recs.len(),
        1,
        "{provider}: expected one record, got {recs:?}"
    );
    recs.remove(0)
}

/// The JSON path an `InvalidResponse` names.
fn bad_field(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(Error::InvalidResponse { field, .. }) => field,
        other => panic!("expected InvalidResponse, got {other:?}"),
    }
}

fn stream(provider: Provider, events: &[Value]) -> StreamAccumulator {
    let mut acc = StreamAccumulator::new(provider);
    for e in events {
        acc.push(e)
            .unwrap_or_else(|err| panic!("{provider} event {e}: {err}"));
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Reference payloads (§A)

fn anthropic_message() -> Value {
    json!({
      "id": "msg_01AbC", "type": "message", "role": "assistant",
      "model": "claude-sonnet-4-5-20250929",
      "content": [{"type": "text", "text": "..."}], "stop_reason": "end_turn",
      "usage": {
        "input_tokens": 1000, "cache_creation_input_tokens": 12000, "cache_read_input_tokens": 50000,
        "cache_creation": {"ephemeral_5m_input_tokens": 10000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 2000, "output_tokens_details": {"thinking_tokens": 1200},
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        "service_tier": "standard", "inference_geo": "global"
      }
    })
}

fn anthropic_start() -> Value {
    json!({"type":"message_start","message":{"id":"msg_01S","model":"claude-opus-4-7","usage":{"input_tokens":588,"cache_creation_input_tokens":0,"cache_read_input_tokens":20368,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard","inference_geo":"global"}}})
}

fn anthropic_delta() -> Value {
    json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":645,"input_tokens":588,"cache_creation_input_tokens":0,"cache_read_input_tokens":20368,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0}}})
}

fn batch_succeeded() -> Value {
    json!({"custom_id":"req-42","result":{"type":"succeeded","message":{"id":"msg_b42","model":"claude-haiku-4-5-20251001","usage":{"input_tokens":812,"output_tokens":95,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"service_tier":"batch"}}}})
}

fn batch_errored() -> Value {
    json!({"custom_id":"req-43","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}}})
}

fn openai_chat() -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06","service_tier":"default",
      "usage":{"prompt_tokens":10000,"completion_tokens":500,"total_tokens":10500,
               "prompt_tokens_details":{"cached_tokens":8000,"audio_tokens":0},
               "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}})
}

fn openai_usage_chunk() -> Value {
    json!({"id":"chatcmpl-2","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":17,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}})
}

fn responses_completed() -> Value {
    json!({"type":"response.completed","sequence_number":57,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-5-2025-08-07","service_tier":"default",
      "usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4096,"cache_write_tokens":0},"output_tokens":3000,"output_tokens_details":{"reasoning_tokens":2500},"total_tokens":8000}}})
}

fn gemini_response() -> Value {
    json!({"candidates":[{"content":{"parts":[{"text":"..."}],"role":"model"},"finishReason":"STOP"}],
      "modelVersion":"gemini-2.5-pro","responseId":"abc123",
      "usageMetadata":{"promptTokenCount":250000,"cachedContentTokenCount":0,"candidatesTokenCount":1000,"thoughtsTokenCount":4000,
        "toolUsePromptTokenCount":0,"totalTokenCount":255000,
        "promptTokensDetails":[{"modality":"TEXT","tokenCount":249000},{"modality":"IMAGE","tokenCount":1000}],
        "candidatesTokensDetails":[{"modality":"TEXT","tokenCount":1000}]}})
}

fn bedrock_converse() -> Value {
    json!({"output":{"message":{"role":"assistant","content":[{"text":"..."}]}},"stopReason":"end_turn",
      "usage":{"inputTokens":1000,"outputTokens":2000,"totalTokens":65000,"cacheReadInputTokens":50000,"cacheWriteInputTokens":12000,
               "cacheDetails":[{"ttl":"1h","inputTokens":2000},{"ttl":"5m","inputTokens":10000}]},
      "metrics":{"latencyMs":2412}})
}

fn bedrock_metadata() -> Value {
    json!({"metadata":{"usage":{"inputTokens":1000,"outputTokens":2000,"totalTokens":3000},"metrics":{"latencyMs":2412}}})
}

fn claude_code_line() -> Value {
    json!({"parentUuid":"73820097-aaaa","isSidechain":false,"userType":"external","cwd":"/Users/me/proj","sessionId":"ed8cd0a3-bbbb","version":"2.1.81","gitBranch":"main","entrypoint":"cli",
     "type":"assistant","uuid":"06650ba6-cccc","timestamp":"2026-03-23T15:42:37.165Z","requestId":"req_011CZLGF",
     "message":{"id":"msg_013C6y","type":"message","role":"assistant","model":"claude-opus-4-6","content":[{"type":"text","text":"..."}],"stop_reason":"tool_use","stop_sequence":null,
       "usage":{"input_tokens":1,"cache_creation_input_tokens":273,"cache_read_input_tokens":9011,"output_tokens":6626,
                "server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard",
                "cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":273},"inference_geo":"","iterations":[],"speed":"standard"}}})
}

fn cli_result() -> Value {
    json!({"type":"result","subtype":"success","is_error":false,"duration_ms":48211,"duration_api_ms":39120,"num_turns":6,
     "result":"Done.","stop_reason":"end_turn","session_id":"4c5ab125-dddd","total_cost_usd":0.52899875,
     "usage":{"input_tokens":4137,"cache_creation_input_tokens":47241,"cache_read_input_tokens":293915,"output_tokens":2644,
              "server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard",
              "cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":47241},"inference_geo":"","iterations":[],"speed":"standard"},
     "modelUsage":{"us.anthropic.claude-opus-4-6-v1":{"inputTokens":4137,"outputTokens":2644,"cacheReadInputTokens":293915,"cacheCreationInputTokens":47241,
              "webSearchRequests":0,"costUSD":0.52899875,"contextWindow":200000,"maxOutputTokens":64000}},
     "permission_denials":[],"fast_mode_state":"off","uuid":"e39f838d-eeee"})
}

/// Every reference payload, with a provider that reads it (for the mutation property test).
fn corpus() -> Vec<(Provider, Value)> {
    vec![
        (Provider::Anthropic, anthropic_message()),
        (Provider::Anthropic, anthropic_start()),
        (Provider::Anthropic, anthropic_delta()),
        (Provider::Anthropic, batch_succeeded()),
        (Provider::Anthropic, batch_errored()),
        (Provider::Vertex, anthropic_message()),
        (Provider::OpenAI, openai_chat()),
        (Provider::OpenAI, openai_usage_chunk()),
        (Provider::OpenAI, responses_completed()),
        (
            Provider::DeepSeek,
            json!({"id":"d","object":"chat.completion","model":"deepseek-chat","usage":{"prompt_tokens":100,"completion_tokens":10,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40}}),
        ),
        (
            Provider::OpenAI,
            json!({"id":"batch_req_1","custom_id":"r1","response":{"status_code":200,"request_id":"req_abc","body":openai_chat()},"error":null}),
        ),
        (Provider::Gemini, gemini_response()),
        (Provider::Bedrock, bedrock_converse()),
        (Provider::Bedrock, bedrock_metadata()),
        (Provider::ClaudeCode, claude_code_line()),
        (Provider::ClaudeCli, cli_result()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Anthropic (§A.1)

#[test]
fn anthropic_message_splits_cache_writes_by_ttl() {
    let r = one(Provider::Anthropic, &anthropic_message());
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 1000,
            cache_read: 50_000,
            cache_write_5m: 10_000,
            cache_write_1h: 2_000,
            output: 2000,
            reasoning: 1200,
            web_search_requests: 2,
            web_fetch_requests: 0,
        }
    );
    assert_eq!(r.model, "claude-sonnet-4-5-20250929");
    assert_eq!(r.message_id.as_deref(), Some("msg_01AbC"));
    assert_eq!(r.context.service_tier, ServiceTier::Standard);
    assert_eq!(
        r.context.inference_geo, None,
        "\"global\" names no particular geography"
    );
    assert_eq!(r.context.platform, None);
    assert!(r.complete && r.billable && r.error.is_none());
}

#[test]
fn anthropic_without_cache_creation_counts_all_writes_as_5m() {
    let mut body = anthropic_message();
    body["usage"]
        .as_object_mut()
        .unwrap()
        .remove("cache_creation");
    let r = one(Provider::Anthropic, &body);
    assert_eq!(
        (r.usage.cache_write_5m, r.usage.cache_write_1h),
        (12_000, 0)
    );
    assert_eq!(r.usage.prompt_tokens(), 63_000);
}

#[test]
fn anthropic_context_fields_come_from_the_response() {
    let body = json!({"id":"m","model":"claude-opus-4-6","usage":{"input_tokens":5,"output_tokens":7,
        "service_tier":"priority","speed":"fast","inference_geo":"us"}});
    let r = one(Provider::Anthropic, &body);
    assert_eq!(r.context.service_tier, ServiceTier::Priority);
    assert_eq!(r.context.speed, Speed::Fast);
    assert_eq!(r.context.inference_geo.as_deref(), Some("us"));
    assert!(r.context.is_us_only());
    for geo in ["", "not_available", "global"] {
        let body =
            json!({"model":"m","usage":{"input_tokens":1,"output_tokens":1,"inference_geo":geo}});
        assert_eq!(
            one(Provider::Anthropic, &body).context.inference_geo,
            None,
            "{geo:?}"
        );
    }
}

#[test]
fn vertex_reads_anthropic_bodies_on_the_vertex_platform() {
    let r = one(Provider::Vertex, &anthropic_message());
    assert_eq!(r.provider, Provider::Vertex);
    assert_eq!(r.context.platform, Some(Platform::Vertex));
    assert_eq!(r.usage.cache_write_1h, 2000);
}

#[test]
fn anthropic_batch_lines() {
    let ok = one(Provider::Anthropic, &batch_succeeded());
    assert_eq!(
        ok.usage,
        TokenUsage {
            input: 812,
            output: 95,
            ..Default::default()
        }
    );
    assert_eq!(ok.context.service_tier, ServiceTier::Batch);
    assert_eq!(ok.message_id.as_deref(), Some("msg_b42"));
    assert!(ok.billable);

    let err = one(Provider::Anthropic, &batch_errored());
    assert!(!err.billable);
    assert_eq!(err.usage, TokenUsage::default());
    let e = err.error.unwrap();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("invalid_request_error", "max_tokens: too large")
    );
    assert_eq!(
        err.message_id.as_deref(),
        Some("req-43"),
        "the custom_id identifies a failed line"
    );

    for kind in ["canceled", "expired"] {
        let line = json!({"custom_id": "req-9", "result": {"type": kind}});
        let r = one(Provider::Anthropic, &line);
        assert!(!r.billable);
        assert_eq!(r.error.unwrap().kind, kind);
    }
    let line = json!({"custom_id": "req-9", "result": {"type": "vanished"}});
    assert_eq!(
        bad_field(extract(Provider::Anthropic, &line)),
        "result.type"
    );
}

#[test]
fn anthropic_error_body_is_not_billable() {
    let body = json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_9"});
    let r = one(Provider::Anthropic, &body);
    assert!(!r.billable);
    assert_eq!(r.error.as_ref().unwrap().kind, "overloaded_error");
    assert_eq!(r.error.as_ref().unwrap().message, "Overloaded");
    assert_eq!(r.request_id.as_deref(), Some("req_9"));
}

#[test]
fn anthropic_single_stream_events_through_extract() {
    let start = one(Provider::Anthropic, &anthropic_start());
    assert!(
        !start.complete,
        "a lone message_start has only provisional output"
    );
    assert_eq!(
        start.usage,
        TokenUsage {
            input: 588,
            cache_read: 20_368,
            output: 1,
            ..Default::default()
        }
    );
    assert_eq!(start.model, "claude-opus-4-7");

    let delta = one(Provider::Anthropic, &anthropic_delta());
    assert!(
        delta.complete,
        "a final delta with input counts is the whole usage"
    );
    assert_eq!(
        delta.usage,
        TokenUsage {
            input: 588,
            cache_read: 20_368,
            output: 645,
            ..Default::default()
        }
    );
    let old_delta = json!({"type": "message_delta", "usage": {"output_tokens": 12}});
    assert!(!one(Provider::Anthropic, &old_delta).complete);

    assert_eq!(
        bad_field(extract(Provider::Anthropic, &json!({"type": "ping"}))),
        "type"
    );
}

// ---------------------------------------------------------------------------------------------
// Anthropic streams (§A.1.2, §C.5)

#[test]
fn anthropic_stream_normal() {
    let mut s = AnthropicStream::new();
    for e in [
        anthropic_start(),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_stop", "index": 0}),
        anthropic_delta(),
        json!({"type": "message_stop"}),
    ] {
        s.push(&e).unwrap();
    }
    let r = s.finish().unwrap();
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 588,
            cache_read: 20_368,
            output: 645,
            ..Default::default()
        }
    );
    assert_eq!(
        (r.model.as_str(), r.message_id.as_deref()),
        ("claude-opus-4-7", Some("msg_01S"))
    );
    assert!(r.complete && r.billable && r.error.is_none());
}

#[test]
fn anthropic_stream_deltas_overwrite_never_add() {
    let mut s = AnthropicStream::new();
    s.push(&anthropic_start()).unwrap();
    for (out, searches) in [(100, 1), (300, 2), (645, 3)] {
        s.push(
            &json!({"type": "message_delta", "usage": {"output_tokens": out,
            "server_tool_use": {"web_search_requests": searches, "web_fetch_requests": 1}}}),
        )
        .unwrap();
    }
    // A later delta that carries only the output keeps the earlier server-tool counts.
    s.push(
        &json!({"type": "message_delta", "usage": {"output_tokens": 700,
        "output_tokens_details": {"thinking_tokens": 250}}}),
    )
    .unwrap();
    s.push(&json!({"type": "message_stop"})).unwrap();
    let r = s.finish().unwrap();
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 588,
            cache_read: 20_368,
            output: 700,
            reasoning: 250,
            web_search_requests: 3,
            web_fetch_requests: 1,
            ..Default::default()
        }
    );
}

#[test]
fn anthropic_stream_cut_off_keeps_last_values() {
    let mut s = AnthropicStream::new();
    s.push(&anthropic_start()).unwrap();
    s.push(&json!({"type": "message_delta", "usage": {"output_tokens": 321}}))
        .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.usage.output, 321);
    let r = s.finish().unwrap();
    assert!(!r.complete);
    assert!(
        r.billable,
        "input was processed and is billed even if the stream broke"
    );
    assert_eq!(
        (r.usage.input, r.usage.cache_read, r.usage.output),
        (588, 20_368, 321)
    );
}

#[test]
fn anthropic_stream_error_event() {
    let mut s = AnthropicStream::new();
    s.push(&anthropic_start()).unwrap();
    s.push(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    .unwrap();
    let r = s.finish().unwrap();
    assert!(!r.complete);
    assert_eq!(r.error.unwrap().kind, "overloaded_error");
    assert_eq!(r.usage.input, 588);

    // An error before any usage: a call that was never served.
    let mut s = AnthropicStream::new();
    s.push(&json!({"type": "error", "error": {"type": "api_error", "message": "boom"}}))
        .unwrap();
    let r = s.finish().unwrap();
    assert!(!r.billable && !r.complete);
    assert_eq!(r.usage, TokenUsage::default());
}

#[test]
fn anthropic_stream_rejects_bad_events_and_stays_unchanged() {
    let mut s = AnthropicStream::new();
    s.push(&anthropic_start()).unwrap();
    let bad = json!({"type": "message_delta", "usage": {"output_tokens": 9, "input_tokens": -1}});
    assert_eq!(bad_field(s.push(&bad)), "usage.input_tokens");
    let bad = json!({"type": "message_delta", "usage": {"input_tokens": 3}});
    assert_eq!(bad_field(s.push(&bad)), "usage.output_tokens");
    assert_eq!(
        bad_field(s.push(&json!({"type": "message_delta"}))),
        "usage"
    );
    assert_eq!(bad_field(s.push(&json!({"no": "type"}))), "type");
    assert_eq!(bad_field(s.push(&json!(["not", "an", "object"]))), "<body>");
    assert_eq!(
        bad_field(s.push(&anthropic_start())),
        "type",
        "a second message_start"
    );
    let r = s.snapshot().unwrap();
    assert_eq!((r.usage.input, r.usage.output), (588, 1));
    assert_eq!(bad_field(AnthropicStream::new().finish()), "<stream>");
}

// ---------------------------------------------------------------------------------------------
// OpenAI-shaped (§A.2, §B.4)

#[test]
fn openai_chat_completion_subtracts_cached_tokens() {
    let r = one(Provider::OpenAI, &openai_chat());
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 2000,
            cache_read: 8000,
            output: 500,
            ..Default::default()
        }
    );
    assert_eq!(
        (r.model.as_str(), r.message_id.as_deref()),
        ("gpt-4o-2024-08-06", Some("chatcmpl-1"))
    );
    assert_eq!(r.context.service_tier, ServiceTier::Standard);
}

#[test]
fn openai_final_usage_chunk_and_null_usage_chunk() {
    let r = one(Provider::OpenAI, &openai_usage_chunk());
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 42,
            output: 17,
            ..Default::default()
        }
    );
    assert!(r.complete);
    let chunk = json!({"id":"chatcmpl-2","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"delta":{"content":"x"}}],"usage":null});
    assert_eq!(bad_field(extract(Provider::OpenAI, &chunk)), "usage");
}

#[test]
fn openai_responses_api() {
    let expect = TokenUsage {
        input: 904,
        cache_read: 4096,
        output: 3000,
        reasoning: 2500,
        ..Default::default()
    };
    let r = one(Provider::OpenAI, &responses_completed());
    assert_eq!(r.usage, expect);
    assert_eq!(
        (r.model.as_str(), r.message_id.as_deref()),
        ("gpt-5-2025-08-07", Some("resp_1"))
    );
    // The Response object on its own.
    let r = one(Provider::OpenAI, &responses_completed()["response"]);
    assert_eq!(r.usage, expect);
}

#[test]
fn openai_service_tiers() {
    for (tier, want) in [
        ("default", ServiceTier::Standard),
        ("auto", ServiceTier::Standard),
        ("scale", ServiceTier::Standard),
        ("flex", ServiceTier::Flex),
        ("priority", ServiceTier::Priority),
        ("fast", ServiceTier::Priority),
    ] {
        let mut body = openai_chat();
        body["service_tier"] = json!(tier);
        assert_eq!(
            one(Provider::OpenAI, &body).context.service_tier,
            want,
            "{tier}"
        );
    }
}

#[test]
fn openai_cache_writes_are_inside_the_prompt() {
    let body = json!({"id":"c","object":"chat.completion","model":"gpt-5.6-sol","usage":{"prompt_tokens":10000,"completion_tokens":800,
        "prompt_tokens_details":{"cached_tokens":2000,"cache_write_tokens":3000},"completion_tokens_details":{"reasoning_tokens":300}}});
    let r = one(Provider::OpenAI, &body);
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 5000,
            cache_read: 2000,
            cache_write_5m: 3000,
            output: 800,
            reasoning: 300,
            ..Default::default()
        }
    );
    let resp = json!({"object":"response","model":"gpt-5.6-sol","usage":{"input_tokens":1000,"input_tokens_details":{"cached_tokens":100,"cache_write_tokens":400},"output_tokens":5}});
    let r = one(Provider::OpenAI, &resp);
    assert_eq!(
        (r.usage.input, r.usage.cache_read, r.usage.cache_write_5m),
        (500, 100, 400)
    );
}

#[test]
fn openai_compatible_providers() {
    let deepseek = json!({"id":"d","object":"chat.completion","model":"deepseek-chat","usage":{"prompt_tokens":100,"completion_tokens":10,"total_tokens":110,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40}});
    let r = one(Provider::DeepSeek, &deepseek);
    assert_eq!(r.provider, Provider::DeepSeek);
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 40,
            cache_read: 60,
            output: 10,
            ..Default::default()
        }
    );
    // The details object wins when both forms are present.
    let both = json!({"model":"deepseek-chat","usage":{"prompt_tokens":100,"completion_tokens":10,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":40,"prompt_tokens_details":{"cached_tokens":50}}});
    assert_eq!(one(Provider::DeepSeek, &both).usage.cache_read, 50);

    // xAI's documented example: prompt 125 with 98 cached.
    let xai = json!({"id":"x","object":"chat.completion","model":"grok-4","usage":{"prompt_tokens":125,"completion_tokens":20,"total_tokens":145,"prompt_tokens_details":{"cached_tokens":98}}});
    let r = one(Provider::Xai, &xai);
    assert_eq!(
        (
            r.provider,
            r.usage.input,
            r.usage.cache_read,
            r.usage.output
        ),
        (Provider::Xai, 27, 98, 20)
    );
    // When total_tokens shows reasoning was counted outside completion_tokens, it is output.
    let xai = json!({"model":"grok-3-mini","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":115,"completion_tokens_details":{"reasoning_tokens":100}}});
    let r = one(Provider::Xai, &xai);
    assert_eq!((r.usage.output, r.usage.reasoning), (105, 100));

    let mistral = json!({"id":"m","object":"chat.completion","model":"mistral-large-2512","usage":{"prompt_tokens":30,"completion_tokens":4,"total_tokens":34}});
    let r = one(Provider::Mistral, &mistral);
    assert_eq!(
        (r.provider, r.usage.input, r.usage.output),
        (Provider::Mistral, 30, 4)
    );
}

#[test]
fn openai_batch_lines() {
    let ok = json!({"id":"batch_req_1","custom_id":"r1","response":{"status_code":200,"request_id":"req_abc","body":openai_chat()},"error":null});
    let r = one(Provider::OpenAI, &ok);
    assert_eq!(
        (r.usage.input, r.usage.cache_read, r.usage.output),
        (2000, 8000, 500)
    );
    assert_eq!(r.context.service_tier, ServiceTier::Batch);
    assert_eq!(r.request_id.as_deref(), Some("req_abc"));
    assert!(r.billable);

    let http_err = json!({"id":"batch_req_2","custom_id":"r2","response":{"status_code":400,"request_id":"req_x","body":{"error":{"message":"bad","type":"invalid_request_error"}}},"error":null});
    let r = one(Provider::OpenAI, &http_err);
    assert!(!r.billable);
    assert_eq!(r.error.as_ref().unwrap().kind, "invalid_request_error");
    assert_eq!(r.message_id.as_deref(), Some("r2"));

    let line_err = json!({"id":"batch_req_3","custom_id":"r3","response":null,"error":{"code":"batch_expired","message":"expired"}});
    let r = one(Provider::OpenAI, &line_err);
    assert!(!r.billable);
    assert_eq!(r.error.as_ref().unwrap().kind, "batch_expired");
}

#[test]
fn openai_responses_failed_and_incomplete() {
    let failed = json!({"type":"response.failed","response":{"id":"resp_f","model":"gpt-5","status":"failed","error":{"code":"server_error","message":"oops"},"usage":null}});
    let r = one(Provider::OpenAI, &failed);
    assert!(!r.complete && !r.billable);
    assert_eq!(r.error.unwrap().kind, "server_error");

    let incomplete = json!({"type":"response.incomplete","response":{"id":"resp_i","model":"gpt-5","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},
        "usage":{"input_tokens":10,"output_tokens":64,"output_tokens_details":{"reasoning_tokens":64}}}});
    let r = one(Provider::OpenAI, &incomplete);
    assert!(
        !r.complete && r.billable,
        "tokens used before the cut are billed"
    );
    assert_eq!(r.usage.output, 64);
    assert_eq!(r.error.unwrap().message, "max_output_tokens");

    let created = json!({"type":"response.created","response":{"id":"resp_c","model":"gpt-5","status":"in_progress","usage":null}});
    assert_eq!(
        bad_field(extract(Provider::OpenAI, &created)),
        "response.usage"
    );
}

// ---------------------------------------------------------------------------------------------
// Gemini (§A.3)

#[test]
fn gemini_adds_thoughts_to_output() {
    let r = one(Provider::Gemini, &gemini_response());
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 250_000,
            output: 5000,
            reasoning: 4000,
            ..Default::default()
        }
    );
    assert_eq!(
        (r.model.as_str(), r.message_id.as_deref()),
        ("gemini-2.5-pro", Some("abc123"))
    );
    assert_eq!(r.context.platform, None);
}

#[test]
fn gemini_snake_case_cache_tool_use_and_traffic_type() {
    let sdk = json!({"model_version":"gemini-3-pro-preview","response_id":"r1","usage_metadata":{
        "prompt_token_count":1000,"cached_content_token_count":600,"tool_use_prompt_token_count":50,
        "candidates_token_count":70,"thoughts_token_count":30,"traffic_type":"ON_DEMAND_PRIORITY"}});
    let r = one(Provider::Gemini, &sdk);
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 450,
            cache_read: 600,
            output: 100,
            reasoning: 30,
            ..Default::default()
        }
    );
    assert_eq!(
        r.usage.prompt_tokens(),
        1050,
        "tool-use prompt tokens count toward the prompt"
    );
    assert_eq!(r.model, "gemini-3-pro-preview");
    assert_eq!(r.context.service_tier, ServiceTier::Priority);
    assert_eq!(r.context.platform, Some(Platform::Vertex));
    for (t, want) in [
        ("ON_DEMAND", ServiceTier::Standard),
        ("ON_DEMAND_FLEX", ServiceTier::Flex),
        ("PROVISIONED_THROUGHPUT", ServiceTier::Provisioned),
    ] {
        let body = json!({"usageMetadata":{"promptTokenCount":1,"trafficType":t}});
        assert_eq!(
            one(Provider::Gemini, &body).context.service_tier,
            want,
            "{t}"
        );
    }
}

#[test]
fn gemini_chunk_array_keeps_the_last_usage() {
    let chunks = json!([
        {"modelVersion":"gemini-2.5-flash","responseId":"r","usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5}},
        {"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":40}},
        {"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":90,"thoughtsTokenCount":10}}
    ]);
    let r = one(Provider::Gemini, &chunks);
    assert_eq!(
        (r.usage.input, r.usage.output, r.usage.reasoning),
        (100, 100, 10)
    );
    assert_eq!(r.model, "gemini-2.5-flash");
    assert!(r.complete);
}

#[test]
fn gemini_errors() {
    assert_eq!(
        bad_field(extract(Provider::Gemini, &json!({"candidates": []}))),
        "usageMetadata"
    );
    let bad = json!({"usageMetadata":{"promptTokenCount":10,"cachedContentTokenCount":11}});
    assert_eq!(
        bad_field(extract(Provider::Gemini, &bad)),
        "usageMetadata.cachedContentTokenCount"
    );
    let body =
        json!({"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}});
    let r = one(Provider::Gemini, &body);
    assert!(!r.billable);
    assert_eq!(r.error.unwrap().kind, "RESOURCE_EXHAUSTED");
}

// ---------------------------------------------------------------------------------------------
// Bedrock (§A.4)

#[test]
fn bedrock_converse_excludes_cache_from_input() {
    let r = one(Provider::Bedrock, &bedrock_converse());
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 1000,
            cache_read: 50_000,
            cache_write_5m: 10_000,
            cache_write_1h: 2_000,
            output: 2000,
            ..Default::default()
        }
    );
    assert_eq!(r.duration_ms, Some(2412));
    assert_eq!(
        r.model, "",
        "Converse bodies carry no model id; the caller supplies it"
    );
    assert_eq!(r.context.platform, Some(Platform::Bedrock));

    let no_details = json!({"usage":{"inputTokens":10,"outputTokens":2,"totalTokens":19,"cacheWriteInputTokens":7}});
    let r = one(Provider::Bedrock, &no_details);
    assert_eq!((r.usage.cache_write_5m, r.usage.cache_write_1h), (7, 0));
}

#[test]
fn bedrock_metadata_event_wrapped_and_unwrapped() {
    let want = TokenUsage {
        input: 1000,
        output: 2000,
        ..Default::default()
    };
    let r = one(Provider::Bedrock, &bedrock_metadata());
    assert_eq!((r.usage, r.duration_ms), (want, Some(2412)));
    let r = one(Provider::Bedrock, &bedrock_metadata()["metadata"]);
    assert_eq!((r.usage, r.duration_ms), (want, Some(2412)));
    let tiered = json!({"metadata":{"usage":{"inputTokens":1,"outputTokens":1},"metrics":{"latencyMs":5},"serviceTier":{"type":"flex"}}});
    assert_eq!(
        one(Provider::Bedrock, &tiered).context.service_tier,
        ServiceTier::Flex
    );
}

#[test]
fn bedrock_invoke_model_anthropic_body() {
    let r = one(Provider::Bedrock, &anthropic_message());
    assert_eq!(r.provider, Provider::Bedrock);
    assert_eq!(r.context.platform, Some(Platform::Bedrock));
    assert_eq!(r.model, "claude-sonnet-4-5-20250929");
    assert_eq!(
        (
            r.usage.input,
            r.usage.cache_write_5m,
            r.usage.cache_write_1h
        ),
        (1000, 10_000, 2000)
    );
}

// ---------------------------------------------------------------------------------------------
// Claude Code transcripts (§A.5.1)

#[test]
fn claude_code_assistant_line() {
    let r = one(Provider::ClaudeCode, &claude_code_line());
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 1,
            cache_read: 9011,
            cache_write_5m: 273,
            output: 6626,
            ..Default::default()
        }
    );
    assert_eq!(r.model, "claude-opus-4-6");
    assert_eq!(r.message_id.as_deref(), Some("msg_013C6y"));
    assert_eq!(r.request_id.as_deref(), Some("req_011CZLGF"));
    assert_eq!(r.session_id.as_deref(), Some("ed8cd0a3-bbbb"));
    assert_eq!(
        r.timestamp.unwrap().to_rfc3339(),
        "2026-03-23T15:42:37.165+00:00"
    );
    assert_eq!(r.context.speed, Speed::Standard);
    assert_eq!(r.context.inference_geo, None);
    assert!(r.billable && !r.sidechain && r.provided_cost.is_none());
}

#[test]
fn claude_code_line_variants() {
    let mut fast = claude_code_line();
    fast["message"]["usage"]["speed"] = json!("fast");
    fast["costUSD"] = json!(0.0123);
    fast["isSidechain"] = json!(true);
    let r = one(Provider::ClaudeCode, &fast);
    assert_eq!(r.context.speed, Speed::Fast);
    assert_eq!(r.provided_cost.unwrap().to_string(), "0.0123");
    assert!(r.sidechain);

    let mut synthetic = claude_code_line();
    synthetic["message"]["model"] = json!("<synthetic>");
    assert!(!one(Provider::ClaudeCode, &synthetic).billable);

    let mut api_error = claude_code_line();
    api_error["isApiErrorMessage"] = json!(true);
    api_error["message"]["content"] = json!([{"type":"text","text":"API Error: 529 Overloaded"}]);
    let r = one(Provider::ClaudeCode, &api_error);
    assert!(!r.billable);
    assert_eq!(r.error.unwrap().message, "API Error: 529 Overloaded");

    let mut no_request = claude_code_line();
    no_request.as_object_mut().unwrap().remove("requestId");
    let r = one(Provider::ClaudeCode, &no_request);
    assert!(!r.billable);
    assert_eq!(r.usage.output, 6626, "the record is still returned");

    let user = json!({"type":"user","sessionId":"s","message":{"role":"user","content":"hi"}});
    assert!(extract(Provider::ClaudeCode, &user).unwrap().is_empty());
    let summary = json!({"type":"summary","summary":"..."});
    assert!(extract(Provider::ClaudeCode, &summary).unwrap().is_empty());
    let odd = json!({"type":"system","message":{"model":"claude-opus-4-6","usage":{"input_tokens":3,"output_tokens":4}}});
    let r = one(Provider::ClaudeCode, &odd);
    assert!(!r.billable && r.usage.output == 4);

    let mut bad_time = claude_code_line();
    bad_time["timestamp"] = json!("yesterday");
    assert_eq!(
        bad_field(extract(Provider::ClaudeCode, &bad_time)),
        "timestamp"
    );
    let mut bad_cost = claude_code_line();
    bad_cost["costUSD"] = json!("lots");
    assert_eq!(
        bad_field(extract(Provider::ClaudeCode, &bad_cost)),
        "costUSD"
    );
}

fn cc(msg: &str, req: &str, output: u64, sidechain: bool) -> Extracted {
    let line = json!({"type":"assistant","sessionId":"s","requestId":req,"isSidechain":sidechain,
        "message":{"id":msg,"model":"claude-opus-4-6","usage":{"input_tokens":10,"cache_read_input_tokens":100,"output_tokens":output}}});
    one(Provider::ClaudeCode, &line)
}

#[test]
fn claude_code_dedup_keeps_the_largest_line_per_response() {
    let kept = dedup_claude_code(vec![
        cc("msg_1", "req_1", 1, false),
        cc("msg_2", "req_2", 50, false),
        cc("msg_1", "req_1", 640, false),
        cc("msg_1", "req_1", 8, false),
    ]);
    let outs: Vec<_> = kept
        .iter()
        .map(|r| (r.message_id.clone().unwrap(), r.usage.output))
        .collect();
    assert_eq!(
        outs,
        vec![("msg_1".to_owned(), 640), ("msg_2".to_owned(), 50)]
    );
}

#[test]
fn claude_code_dedup_prefers_the_parent_over_a_sidechain_replay() {
    // The /btw sidechain replays msg_1 under a new request id, with larger totals.
    let kept = dedup_claude_code(vec![
        cc("msg_1", "req_1", 100, false),
        cc("msg_1", "req_side", 900, true),
    ]);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].request_id.as_deref(), kept[0].usage.output),
        (Some("req_1"), 100)
    );
    // Seen the other way round, the parent still wins.
    let kept = dedup_claude_code(vec![
        cc("msg_1", "req_side", 900, true),
        cc("msg_1", "req_1", 100, false),
    ]);
    assert_eq!(kept.len(), 1);
    assert!(!kept[0].sidechain);
    // Two non-sidechain records with the same message id but different requests are distinct.
    let kept = dedup_claude_code(vec![
        cc("msg_1", "req_1", 1, false),
        cc("msg_1", "req_2", 1, false),
    ]);
    assert_eq!(kept.len(), 2);
    // Records without ids cannot be matched and are all kept.
    let mut a = cc("msg_1", "req_1", 1, false);
    a.request_id = None;
    assert_eq!(dedup_claude_code(vec![a.clone(), a]).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Claude CLI result (§A.5.2)

#[test]
fn claude_cli_result_per_model() {
    let r = one(Provider::ClaudeCli, &cli_result());
    assert_eq!(r.model, "us.anthropic.claude-opus-4-6-v1");
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 4137,
            cache_read: 293_915,
            cache_write_5m: 47_241,
            output: 2644,
            ..Default::default()
        }
    );
    assert_eq!(r.provided_cost.unwrap().to_string(), "0.52899875");
    assert_eq!(r.session_id.as_deref(), Some("4c5ab125-dddd"));
    assert_eq!((r.duration_ms, r.num_turns), (Some(48211), Some(6)));
    assert!(r.billable && r.error.is_none());

    let mut two = cli_result();
    two["modelUsage"]["claude-haiku-4-5-20251001"] = json!({"inputTokens":10,"outputTokens":5,"webSearchRequests":2,"costUSD":0.001,"provider":"vertex"});
    let recs = extract(Provider::ClaudeCli, &two).unwrap();
    assert_eq!(recs.len(), 2);
    let haiku = recs
        .iter()
        .find(|r| r.model == "claude-haiku-4-5-20251001")
        .unwrap();
    assert_eq!(
        (haiku.usage.input, haiku.usage.web_search_requests),
        (10, 2)
    );
    assert_eq!(haiku.context.platform, Some(Platform::Vertex));
    assert_eq!(haiku.provided_cost.unwrap().to_string(), "0.001");
}

#[test]
fn claude_cli_result_without_model_usage() {
    let mut v = cli_result();
    v.as_object_mut().unwrap().remove("modelUsage");
    let r = one(Provider::ClaudeCli, &v);
    assert_eq!(r.model, "");
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 4137,
            cache_read: 293_915,
            cache_write_5m: 47_241,
            output: 2644,
            ..Default::default()
        }
    );
    assert_eq!(r.provided_cost.unwrap().to_string(), "0.52899875");
}

#[test]
fn claude_cli_api_error_is_not_billable() {
    let v = json!({"type":"result","subtype":"success","is_error":true,"terminal_reason":"api_error","api_error_status":529,
        "duration_ms":1200,"num_turns":1,"session_id":"s","total_cost_usd":0,"result":"API Error: 529 Overloaded",
        "usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}});
    let r = one(Provider::ClaudeCli, &v);
    assert!(!r.billable);
    let e = r.error.unwrap();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("api_error", "API Error: 529 Overloaded")
    );

    // An error after real work (max turns) is still billed, with the error recorded.
    let mut v = cli_result();
    v["is_error"] = json!(true);
    v["subtype"] = json!("error_max_turns");
    let r = one(Provider::ClaudeCli, &v);
    assert!(r.billable);
    assert_eq!(r.error.unwrap().kind, "error_max_turns");

    let init = json!({"type":"system","subtype":"init","session_id":"s"});
    assert!(extract(Provider::ClaudeCli, &init).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// StreamAccumulator

#[test]
fn accumulator_openai_chat_chunks() {
    let first = json!({"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o-mini","service_tier":"flex","choices":[{"index":0,"delta":{"content":"He"}}],"usage":null});
    let mid = json!({"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"llo"}}],"usage":null});
    let r = stream(
        Provider::OpenAI,
        &[first.clone(), mid.clone(), openai_usage_chunk()],
    )
    .finish()
    .unwrap();
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 42,
            output: 17,
            ..Default::default()
        }
    );
    assert_eq!(r.model, "gpt-4o-mini");
    assert_eq!(r.context.service_tier, ServiceTier::Flex);
    assert!(r.complete);

    // Cut off before the usage chunk (or sent without include_usage).
    let r = stream(Provider::OpenAI, &[first, mid]).finish().unwrap();
    assert!(!r.complete);
    assert_eq!(r.usage, TokenUsage::default());
    assert_eq!(
        (r.model.as_str(), r.message_id.as_deref()),
        ("gpt-4o-mini", Some("chatcmpl-9"))
    );

    assert_eq!(
        bad_field(StreamAccumulator::new(Provider::OpenAI).finish()),
        "<stream>"
    );
}

#[test]
fn accumulator_openai_responses_events() {
    let created = json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","model":"gpt-5-2025-08-07","status":"in_progress","usage":null}});
    let delta = json!({"type":"response.output_text.delta","sequence_number":3,"delta":"Hi"});
    let acc = stream(Provider::OpenAI, &[created.clone(), delta.clone()]);
    let snap = acc.snapshot().unwrap();
    assert!(!snap.complete);
    assert_eq!(snap.model, "gpt-5-2025-08-07");
    let mut acc = acc;
    acc.push(&responses_completed()).unwrap();
    let r = acc.finish().unwrap();
    assert!(r.complete);
    assert_eq!(
        (r.usage.input, r.usage.cache_read, r.usage.reasoning),
        (904, 4096, 2500)
    );

    let failed = json!({"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"rate_limit_exceeded","message":"slow down"},"usage":null}});
    let r = stream(Provider::OpenAI, &[created, delta, failed])
        .finish()
        .unwrap();
    assert!(!r.complete);
    assert_eq!(
        r.model, "gpt-5-2025-08-07",
        "the model comes from response.created"
    );
    assert_eq!(r.error.unwrap().kind, "rate_limit_exceeded");
}

#[test]
fn accumulator_gemini_keeps_last_usage_never_sums() {
    let c = |cand: u64, finish: bool| {
        let mut v = json!({"modelVersion":"gemini-2.5-flash","responseId":"g1","candidates":[{"content":{"parts":[{"text":"x"}]}}],
            "usageMetadata":{"promptTokenCount":500,"cachedContentTokenCount":100,"candidatesTokenCount":cand,"totalTokenCount":500 + cand}});
        if finish {
            v["candidates"][0]["finishReason"] = json!("STOP");
        }
        v
    };
    let acc = stream(Provider::Gemini, &[c(10, false), c(30, false)]);
    assert!(!acc.snapshot().unwrap().complete);
    let r = stream(Provider::Gemini, &[c(10, false), c(30, false), c(80, true)])
        .finish()
        .unwrap();
    assert_eq!(
        r.usage,
        TokenUsage {
            input: 400,
            cache_read: 100,
            output: 80,
            ..Default::default()
        }
    );
    assert!(r.complete);
}

#[test]
fn accumulator_bedrock_converse_stream() {
    let events = [
        json!({"messageStart":{"role":"assistant"}}),
        json!({"contentBlockDelta":{"delta":{"text":"Hi"},"contentBlockIndex":0}}),
        json!({"contentBlockStop":{"contentBlockIndex":0}}),
        json!({"messageStop":{"stopReason":"end_turn"}}),
    ];
    let cut = stream(Provider::Bedrock, &events).finish().unwrap();
    assert!(
        !cut.complete,
        "the usage comes after messageStop, in metadata"
    );
    let mut all = events.to_vec();
    all.push(bedrock_metadata());
    let r = stream(Provider::Bedrock, &all).finish().unwrap();
    assert!(r.complete);
    assert_eq!(
        (r.usage.input, r.usage.output, r.duration_ms),
        (1000, 2000, Some(2412))
    );

    let throttled = json!({"throttlingException":{"message":"Too many requests"}});
    let r = stream(Provider::Bedrock, &[events[0].clone(), throttled])
        .finish()
        .unwrap();
    assert_eq!(r.error.unwrap().kind, "throttlingException");
    assert!(!r.complete);

    // InvokeModelWithResponseStream of an Anthropic model.
    let r = stream(
        Provider::Bedrock,
        &[
            anthropic_start(),
            anthropic_delta(),
            json!({"type":"message_stop"}),
        ],
    )
    .finish()
    .unwrap();
    assert!(r.complete);
    assert_eq!(
        (r.provider, r.context.platform, r.usage.output),
        (Provider::Bedrock, Some(Platform::Bedrock), 645)
    );
}

#[test]
fn accumulator_anthropic_and_vertex() {
    let events = [
        anthropic_start(),
        json!({"type":"ping"}),
        anthropic_delta(),
        json!({"type":"message_stop"}),
    ];
    for p in [Provider::Anthropic, Provider::Vertex] {
        let r = stream(p, &events).finish().unwrap();
        assert!(r.complete);
        assert_eq!((r.provider, r.usage.output), (p, 645));
    }
}

#[test]
fn accumulator_refuses_log_formats() {
    for p in [Provider::ClaudeCode, Provider::ClaudeCli] {
        let mut acc = StreamAccumulator::new(p);
        assert!(matches!(
            acc.push(&claude_code_line()),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(acc.snapshot().is_none());
        assert!(matches!(acc.finish(), Err(Error::InvalidArgument { .. })));
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed input names the field

#[test]
fn malformed_counts_name_the_field() {
    let cases: Vec<(Provider, Value, &str)> = vec![
        (
            Provider::Anthropic,
            json!({"model":"m","usage":{"input_tokens":-5,"output_tokens":1}}),
            "usage.input_tokens",
        ),
        (
            Provider::Anthropic,
            json!({"model":"m","usage":{"input_tokens":5,"output_tokens":1.5}}),
            "usage.output_tokens",
        ),
        (
            Provider::Anthropic,
            json!({"model":"m","usage":{"input_tokens":"5","output_tokens":1}}),
            "usage.input_tokens",
        ),
        (
            Provider::Anthropic,
            json!({"model":"m","usage":{"input_tokens":1e25,"output_tokens":1}}),
            "usage.input_tokens",
        ),
        (
            Provider::Anthropic,
            json!({"model":"m","usage":{"output_tokens":1}}),
            "usage.input_tokens",
        ),
        (Provider::Anthropic, json!({"model":"m"}), "usage"),
        (
            Provider::Anthropic,
            json!({"model":"m","usage":[]}),
            "usage",
        ),
        (
            Provider::Anthropic,
            json!({"model":7,"usage":{"input_tokens":1,"output_tokens":1}}),
            "model",
        ),
        (
            Provider::Anthropic,
            json!({"model":"m","usage":{"input_tokens":1,"output_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":-1}}}),
            "usage.cache_creation.ephemeral_1h_input_tokens",
        ),
        (
            Provider::Anthropic,
            json!({"custom_id":"x","result":{"type":"succeeded","message":{"usage":{"input_tokens":1,"output_tokens":-2}}}}),
            "result.message.usage.output_tokens",
        ),
        (
            Provider::OpenAI,
            json!({"model":"m","usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":11}}}),
            "usage.prompt_tokens_details.cached_tokens",
        ),
        (
            Provider::OpenAI,
            json!({"model":"m","usage":{"completion_tokens":1}}),
            "usage.prompt_tokens",
        ),
        (
            Provider::OpenAI,
            json!({"object":"response","model":"m","usage":{"input_tokens":5,"output_tokens":-1}}),
            "usage.output_tokens",
        ),
        (
            Provider::OpenAI,
            json!({"custom_id":"c","response":{"status_code":200,"body":{"usage":{"prompt_tokens":"x","completion_tokens":1}}}}),
            "response.body.usage.prompt_tokens",
        ),
        (
            Provider::Gemini,
            json!({"usageMetadata":{"promptTokenCount":-1}}),
            "usageMetadata.promptTokenCount",
        ),
        (
            Provider::Gemini,
            json!({"usage_metadata":{"thoughts_token_count":0.5}}),
            "usage_metadata.thoughts_token_count",
        ),
        (
            Provider::Bedrock,
            json!({"usage":{"inputTokens":1}}),
            "usage.outputTokens",
        ),
        (
            Provider::Bedrock,
            json!({"usage":{"inputTokens":1,"outputTokens":1,"cacheDetails":[{"ttl":"1h","inputTokens":-4}]}}),
            "usage.cacheDetails[0].inputTokens",
        ),
        (
            Provider::Bedrock,
            json!({"metadata":{"usage":{"inputTokens":1,"outputTokens":1},"metrics":{"latencyMs":"fast"}}}),
            "metadata.metrics.latencyMs",
        ),
        (
            Provider::ClaudeCode,
            json!({"type":"assistant","message":{"usage":{"input_tokens":1,"output_tokens":-1}}}),
            "message.usage.output_tokens",
        ),
        (
            Provider::ClaudeCli,
            json!({"type":"result","modelUsage":{"claude-x.y":{"inputTokens":-1}}}),
            "modelUsage[\"claude-x.y\"].inputTokens",
        ),
        (
            Provider::ClaudeCli,
            json!({"type":"result","is_error":false}),
            "usage",
        ),
        (
            Provider::ClaudeCli,
            json!({"type":"result","total_cost_usd":"free","usage":{}}),
            "total_cost_usd",
        ),
    ];
    for (p, v, field) in cases {
        assert_eq!(bad_field(extract(p, &v)), field, "{p}: {v}");
    }
    for p in Provider::ALL {
        assert_eq!(bad_field(extract(p, &json!("text"))), "<body>", "{p}");
        assert_eq!(bad_field(extract_bytes(p, b"{not json")), "<body>", "{p}");
    }
}

#[test]
fn error_messages_say_what_was_wrong() {
    let e = extract(
        Provider::Anthropic,
        &json!({"model":"m","usage":{"input_tokens":-5,"output_tokens":1}}),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("usage.input_tokens") && text.contains("-5") && text.contains("negative"),
        "{text}"
    );
    assert_eq!(e.code(), "INVALID_RESPONSE");
}

#[test]
fn integral_floats_and_unknown_fields_are_accepted() {
    let body = json!({"model":"m","future_field":{"x":[1,2]},"usage":{"input_tokens":10.0,"output_tokens":2,"brand_new_counter":-9,"service_tier":"hyperspeed"}});
    let r = one(Provider::Anthropic, &body);
    assert_eq!((r.usage.input, r.usage.output), (10, 2));
    assert_eq!(
        r.context.service_tier,
        ServiceTier::Standard,
        "unknown tiers are left at the default"
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests: no JSON input panics

const KEYS: &[&str] = &[
    "type",
    "object",
    "id",
    "model",
    "usage",
    "message",
    "result",
    "custom_id",
    "response",
    "body",
    "status_code",
    "error",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "server_tool_use",
    "web_search_requests",
    "output_tokens_details",
    "thinking_tokens",
    "service_tier",
    "speed",
    "inference_geo",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens_details",
    "reasoning_tokens",
    "input_tokens_details",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "status",
    "usageMetadata",
    "usage_metadata",
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "toolUsePromptTokenCount",
    "trafficType",
    "candidates",
    "finishReason",
    "modelVersion",
    "metadata",
    "metrics",
    "latencyMs",
    "inputTokens",
    "outputTokens",
    "cacheReadInputTokens",
    "cacheWriteInputTokens",
    "cacheDetails",
    "ttl",
    "messageStop",
    "messageStart",
    "serviceTier",
    "requestId",
    "sessionId",
    "timestamp",
    "isSidechain",
    "isApiErrorMessage",
    "costUSD",
    "modelUsage",
    "inputTokens",
    "costUSD",
    "is_error",
    "terminal_reason",
    "total_cost_usd",
    "duration_ms",
    "num_turns",
    "thinkingTokens",
    "provider",
];

const STRINGS: &[&str] = &[
    "message",
    "message_start",
    "message_delta",
    "message_stop",
    "error",
    "ping",
    "succeeded",
    "errored",
    "canceled",
    "expired",
    "chat.completion",
    "chat.completion.chunk",
    "response",
    "response.completed",
    "response.failed",
    "response.incomplete",
    "response.created",
    "batch",
    "assistant",
    "user",
    "result",
    "api_error",
    "<synthetic>",
    "fast",
    "us",
    "global",
    "1h",
    "5m",
    "STOP",
    "ON_DEMAND_PRIORITY",
    "failed",
    "incomplete",
    "2026-03-23T15:42:37Z",
    "",
    "vertex",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        (0u64..5000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        let key =
            prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "[a-z]{1,6}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every path (object keys and array indexes) inside `v`.
fn paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                prefix.push(Seg::Key(k.clone()));
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                prefix.push(Seg::Index(i));
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |cur, seg| match seg {
        Seg::Key(k) => cur.get_mut(k.as_str()),
        Seg::Index(i) => cur.get_mut(*i),
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(Value),
    Negate,
    Fraction,
    Stringify,
    Remove,
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Negate),
        Just(Mutation::Fraction),
        Just(Mutation::Stringify),
        Just(Mutation::Remove),
        Just(Mutation::Replace(json!(u64::MAX))),
        Just(Mutation::Replace(json!(1e300))),
        Just(Mutation::Replace(Value::Null)),
        arb_json().prop_map(Mutation::Replace),
    ]
}

fn mutate(v: &mut Value, path: &[Seg], m: &Mutation) {
    if let Mutation::Remove = m {
        if let Some((Seg::Key(k), parent)) = path.split_last()
            && let Some(Value::Object(obj)) = at_mut(v, parent)
        {
            obj.remove(k);
        }
        return;
    }
    let Some(target) = at_mut(v, path) else {
        return;
    };
    *target = match (m, &*target) {
        (Mutation::Negate, Value::Number(n)) => json!(-(n.as_f64().unwrap_or(1.0)) - 1.0),
        (Mutation::Fraction, Value::Number(n)) => json!(n.as_f64().unwrap_or(0.0) + 0.5),
        (Mutation::Stringify, other) => json!(other.to_string()),
        (Mutation::Replace(r), _) => r.clone(),
        (_, other) => other.clone(),
    };
}

/// Whatever `extract` returns for any input, it must not panic, and what it accepts must be
/// usable: reasoning within output.
fn check_extract(p: Provider, v: &Value) {
    if let Ok(recs) = extract(p, v) {
        for r in recs {
            assert!(r.usage.validate().is_ok(), "{p}: {r:?} from {v}");
            assert_eq!(r.provider, p);
        }
    }
}

fn check_stream(p: Provider, events: &[Value]) {
    let mut acc = StreamAccumulator::new(p);
    for e in events {
        let before = acc.snapshot();
        if acc.push(e).is_err() {
            assert_eq!(
                acc.snapshot(),
                before,
                "{p}: a rejected event must leave the state unchanged"
            );
        }
    }
    if let Some(s) = acc.snapshot() {
        assert!(s.usage.validate().is_ok());
    }
    let _ = acc.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        for p in Provider::ALL {
            check_extract(p, &v);
        }
    }

    #[test]
    fn mutated_reference_payloads_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), arb_mutation()), 1..4),
    ) {
        let corpus = corpus();
        let (provider, mut v) = pick.get(&corpus).clone();
        for (at, m) in &edits {
            let mut all = Vec::new();
            paths(&v, &mut Vec::new(), &mut all);
            let path = at.get(&all).clone();
            mutate(&mut v, &path, m);
        }
        check_extract(provider, &v);
        for p in Provider::ALL {
            check_extract(p, &v);
        }
    }

    #[test]
    fn streams_of_arbitrary_and_mutated_events_never_panic(
        events in prop::collection::vec(arb_json(), 0..6),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), arb_mutation()), 0..3),
    ) {
        let mut real = vec![
            anthropic_start(), anthropic_delta(), json!({"type":"message_stop"}),
            openai_usage_chunk(), responses_completed(),
            gemini_response(), json!({"messageStop":{"stopReason":"end_turn"}}), bedrock_metadata(),
        ];
        for (which, at, m) in &edits {
            let i = which.index(real.len());
            if let Some(ev) = real.get_mut(i) {
                let mut all = Vec::new();
                paths(ev, &mut Vec::new(), &mut all);
                let path = at.get(&all).clone();
                mutate(ev, &path, m);
            }
        }
        for p in Provider::ALL {
            check_stream(p, &events);
            check_stream(p, &real);
            let mixed: Vec<Value> = real.iter().cloned().zip(events.iter().cloned()).flat_map(|(a, b)| [a, b]).collect();
            check_stream(p, &mixed);
        }
    }
}
