"""tracker.wrap() with the real anthropic and openai SDKs against the fake provider."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from decimal import Decimal
from typing import Any, Callable, List

import anthropic
import openai
import pydantic
import pytest

from fake_provider import (
    FakeProvider,
    anthropic_message,
    anthropic_sse,
    openai_chat,
    openai_chat_sse,
    openai_response,
    openai_response_sse,
)
from usage_core import InvalidArgumentError, QuotaExceededError, Tracker, UnknownModelError, UsageEvent

MSGS = [{"role": "user", "content": "Say hello"}]


def sync_anthropic(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test", base_url=fake.url, max_retries=0)


def sync_openai(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=fake.url + "/v1", max_retries=0)


def events(t: Tracker) -> List[UsageEvent]:
    t.flush()
    out = []
    for line in t.export_jsonl().decode().splitlines():
        out.append(t.event(json.loads(line)["id"]))
    return [e for e in out if e is not None]


def wait_for(pred: Callable[[], Any], secs: float = 5.0) -> Any:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_wrapped_client_is_the_same_class_and_untouched_elsewhere(tracker: Tracker, fake: FakeProvider) -> None:
    client = sync_anthropic(fake)
    w = tracker.wrap(client, user_id="alice")
    assert type(w) is type(client) and isinstance(w, anthropic.Anthropic)
    assert w.base_url == client.base_url and w.api_key == "test"
    assert client.messages.create is not w.messages.create, "the caller's client is not modified"
    assert isinstance(w.with_options(timeout=5), anthropic.Anthropic)
    with pytest.raises(TypeError):
        tracker.wrap(object())


def test_anthropic_create_records_usage_cost_and_latency(tracker: Tracker, fake: FakeProvider) -> None:
    fake.script({"json": anthropic_message(usage={"input_tokens": 1000, "output_tokens": 2000,
                                                  "cache_read_input_tokens": 50000})})
    w = tracker.wrap(sync_anthropic(fake), user_id="alice", tags={"workflow": "greet"})
    msg = w.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS)
    assert msg.content[0].text == "Hello!" and isinstance(msg, anthropic.types.Message)
    (e,) = events(tracker)
    assert (e.id, e.user_id, e.tags, e.status) == ("msg_01", "alice", {"workflow": "greet"}, "success")
    assert (e.usage.input, e.usage.cache_read, e.usage.output) == (1000, 50000, 2000)
    assert e.cost is not None and e.cost.total == Decimal("0.003") + Decimal("0.015") + Decimal("0.03")
    assert e.latency_ms is not None and e.duration_ms is not None
    assert fake.requests[0][1]["max_tokens"] == 100


@pytest.mark.parametrize("status,kind", [(500, "api_error"), (429, "rate_limit_error")])
def test_anthropic_errors_record_an_error_event_and_release_the_hold(tracker: Tracker, fake: FakeProvider, status: int, kind: str) -> None:
    tracker.set_quota("alice", subject="user:alice", metric="cost", limit=10, window="day")
    fake.script({"status": status, "json": {"type": "error", "error": {"type": kind, "message": "boom"}}})
    w = tracker.wrap(sync_anthropic(fake), user_id="alice")
    with pytest.raises(anthropic.APIStatusError):
        w.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS)
    (e,) = events(tracker)
    assert (e.status, e.error_type) == ("error", kind) and e.usage.total_tokens() == 0
    (st,) = tracker.quota_status(["user:alice"])
    assert st.held == 0 and st.used == 0


def test_quota_blocks_before_any_request_is_sent(tracker: Tracker, fake: FakeProvider) -> None:
    tracker.set_quota("alice", subject="user:alice", metric="cost", limit=Decimal("0.001"), window="day")
    w = tracker.wrap(sync_anthropic(fake), user_id="alice")
    with pytest.raises(QuotaExceededError) as e:
        w.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=MSGS)
    assert e.value.quota == "alice" and e.value.requested > e.value.limit
    assert fake.requests == [], "the provider never saw the request"
    bob = tracker.wrap(sync_anthropic(fake), user_id="bob")
    fake.script({"json": anthropic_message()})
    bob.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=MSGS)
    assert len(fake.requests) == 1, "another user is not blocked"
    # A model the catalog does not know: refused before sending only where a cost limit
    # applies (it could not be kept); elsewhere sent, and recorded unpriced.
    with pytest.raises(UnknownModelError):
        w.messages.create(model="claude-imaginary-9", max_tokens=10, messages=MSGS)
    assert len(fake.requests) == 1
    fake.script({"json": anthropic_message(id="msg_imaginary", model="claude-imaginary-9")})
    bob.messages.create(model="claude-imaginary-9", max_tokens=10, messages=MSGS)
    assert len(fake.requests) == 2
    tracker.flush()
    ev = tracker.event("msg_imaginary")
    assert ev is not None and ev.cost is None and ev.unpriced_reason


def test_context_block_sets_identity(tracker: Tracker, fake: FakeProvider) -> None:
    w = tracker.wrap(sync_anthropic(fake), tags={"app": "demo"})
    fake.script({"json": anthropic_message(id="msg_a")}, {"json": anthropic_message(id="msg_b")})
    with tracker.context(user_id="carol", tags={"endpoint": "/chat"}):
        w.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
    w.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
    by_id = {e.id: e for e in events(tracker)}
    assert by_id["msg_a"].user_id == "carol" and by_id["msg_a"].tags == {"app": "demo", "endpoint": "/chat"}
    assert by_id["msg_b"].user_id is None and by_id["msg_b"].tags == {"app": "demo"}


def test_anthropic_stream_true_and_stream_helper(tracker: Tracker, fake: FakeProvider) -> None:
    fake.script({"sse": anthropic_sse(id="msg_s1")}, {"sse": anthropic_sse(id="msg_s2")})
    w = tracker.wrap(sync_anthropic(fake), user_id="dave")
    stream = w.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS, stream=True)
    types = [ev.type for ev in stream]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    with w.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello, world." and final.usage.output_tokens == 2000
    evs = {e.id: e for e in events(tracker)}
    for mid in ("msg_s1", "msg_s2"):
        assert evs[mid].status == "success" and (evs[mid].usage.input, evs[mid].usage.output) == (1000, 2000)
        assert evs[mid].user_id == "dave" and evs[mid].latency_ms is not None


def test_cut_off_and_abandoned_streams_are_errors_with_what_was_seen(tracker: Tracker, fake: FakeProvider) -> None:
    tracker.set_quota("erin", subject="user:erin", metric="cost", limit=10, window="day")
    w = tracker.wrap(sync_anthropic(fake), user_id="erin")
    fake.script({"sse": anthropic_sse(id="msg_cut", cut=True)})
    list(w.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS, stream=True))
    fake.script({"sse": anthropic_sse(id="msg_gone")})
    stream = w.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS, stream=True)
    next(iter(stream))
    stream.close()
    fake.script({"sse": anthropic_sse(id="msg_dropped")})
    dropped = w.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS, stream=True)
    next(iter(dropped))
    del dropped
    gc.collect()
    evs = wait_for(lambda: (lambda d: d if len(d) == 3 else None)({e.id: e for e in events(tracker)}))
    assert (evs["msg_cut"].status, evs["msg_cut"].error_type) == ("error", "incomplete_stream")
    assert evs["msg_cut"].usage.input == 1000, "what was seen is kept"
    assert evs["msg_gone"].error_type == "stream_abandoned" and evs["msg_dropped"].error_type == "stream_abandoned"
    (st,) = tracker.quota_status(["user:erin"])
    assert st.held == 0, "every hold was released"


def test_anthropic_batch_results_are_recorded(tracker: Tracker, fake: FakeProvider) -> None:
    lines = [
        {"custom_id": "a", "result": {"type": "succeeded", "message": anthropic_message(id="msg_b1")}},
        {"custom_id": "b", "result": {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}}},
    ]
    fake.script({"json": {"id": "msgbatch_1", "type": "message_batch", "processing_status": "ended",
                          "request_counts": {"processing": 0, "succeeded": 1, "errored": 1, "canceled": 0, "expired": 0},
                          "ended_at": None, "created_at": "2026-11-01T00:00:00Z", "expires_at": "2026-11-02T00:00:00Z",
                          "archived_at": None, "cancel_initiated_at": None,
                          "results_url": fake.url + "/v1/messages/batches/msgbatch_1/results"}})
    fake.script({"raw": "\n".join(json.dumps(x) for x in lines)})  # the JSONL results body
    w = tracker.wrap(sync_anthropic(fake), user_id="frank")
    got = list(w.messages.batches.results("msgbatch_1"))
    assert [r.custom_id for r in got] == ["a", "b"]
    evs = events(tracker)
    ok = [e for e in evs if e.status == "success"]
    assert len(ok) == 1 and ok[0].id == "msg_b1" and ok[0].user_id == "frank" and ok[0].usage.output == 2000


def test_openai_chat_create_and_streams(tracker: Tracker, fake: FakeProvider) -> None:
    plain = sync_openai(fake)
    w = tracker.wrap(plain, user_id="gina")
    fake.script({"json": openai_chat(cached=800)})
    r = w.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert r.choices[0].message.content == "Hi"
    # A stream the caller did not ask usage for: the usage chunk is requested and hidden.
    fake.script({"sse": openai_chat_sse(id="chatcmpl-s1"), "named": False})
    seen = list(w.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    assert fake.requests[-1][1]["stream_options"] == {"include_usage": True}
    assert len(seen) == 2 and all(c.choices for c in seen) and all(c.usage is None for c in seen)
    # The caller asked for usage: passed through untouched.
    fake.script({"sse": openai_chat_sse(id="chatcmpl-s2"), "named": False})
    seen = list(w.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}))
    assert len(seen) == 3 and seen[-1].usage is not None and seen[-1].usage.prompt_tokens == 1000
    evs = {e.id: e for e in events(tracker)}
    assert (evs["chatcmpl-1"].usage.input, evs["chatcmpl-1"].usage.cache_read) == (200, 800)
    for cid in ("chatcmpl-s1", "chatcmpl-s2"):
        assert (evs[cid].usage.input, evs[cid].usage.output, evs[cid].status) == (1000, 500, "success")


def test_openai_responses_create_and_stream(tracker: Tracker, fake: FakeProvider) -> None:
    w = tracker.wrap(sync_openai(fake), user_id="hal")
    fake.script({"json": openai_response()})
    resp = w.responses.create(model="gpt-4o", input="hi", max_output_tokens=50)
    assert resp.output_text == "Hi"
    fake.script({"sse": openai_response_sse(), "named": False})
    types = [ev.type for ev in w.responses.create(model="gpt-4o", input="hi", stream=True)]
    assert types == ["response.created", "response.output_text.delta", "response.completed"]
    evs = {e.id: e for e in events(tracker)}
    assert evs["resp_1"].usage.output == 500 and evs["resp_s"].usage.input == 1000


class Greeting(pydantic.BaseModel):
    greeting: str


# Reading a parsed response must not warn in the caller's program (pydantic warns when it
# serialises the SDKs' generic `parsed` fields).
@pytest.mark.filterwarnings("error::UserWarning")
def test_beta_structured_output_and_stream_helpers_are_recorded(tracker: Tracker, fake: FakeProvider) -> None:
    """Every way the SDKs offer to make a call is recorded, and each helper returns what it
    returns on a plain client (the OpenAI `.stream()` helpers pass their unset arguments as
    `Omit` sentinels, which must not break the wrapper)."""
    tracker.set_quota("q", subject="user:kim", metric="cost", limit=100, window="day")
    a = tracker.wrap(sync_anthropic(fake), user_id="kim")
    o = tracker.wrap(sync_openai(fake), user_id="kim")
    fake.script({"json": anthropic_message(id="msg_beta")})
    assert a.beta.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS).id == "msg_beta"
    fake.script({"sse": anthropic_sse(id="msg_beta_stream")})
    with a.beta.messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS) as s:
        assert s.get_final_message().id == "msg_beta_stream"
    fake.script({"json": anthropic_message(id="msg_parse", text='{"greeting": "hi"}')})
    parsed = a.messages.parse(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS, output_format=Greeting)
    assert parsed.parsed_output == Greeting(greeting="hi")

    chat = openai_chat(id="chatcmpl-parse")
    chat["choices"][0]["message"]["content"] = '{"greeting": "hi"}'
    fake.script({"json": chat})
    done = o.chat.completions.parse(model="gpt-4o", messages=MSGS, response_format=Greeting)
    assert done.choices[0].message.parsed == Greeting(greeting="hi")
    fake.script({"sse": openai_chat_sse(id="chatcmpl-helper"), "named": False})
    with o.chat.completions.stream(model="gpt-4o", messages=MSGS) as cs:
        assert cs.get_final_completion().choices[0].message.content == "Hello"
    resp = openai_response(id="resp_parse")
    resp["output"][0]["content"][0]["text"] = '{"greeting": "hi"}'
    fake.script({"json": resp})
    assert o.responses.parse(model="gpt-4o", input="hi", text_format=Greeting).output_parsed == Greeting(greeting="hi")
    # The stream helper follows the output items, so this stream announces its item and part.
    sse = openai_response_sse(id="resp_helper")
    item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}
    sse[1:1] = [
        json.dumps({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item}),
        json.dumps({"type": "response.content_part.added", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ]
    fake.script({"sse": sse, "named": False})
    with o.responses.stream(model="gpt-4o", input="hi") as rs:
        assert rs.get_final_response().id == "resp_helper"

    evs = {e.id: e for e in events(tracker)}
    for mid in ("msg_beta", "msg_beta_stream", "msg_parse", "chatcmpl-parse", "chatcmpl-helper", "resp_parse", "resp_helper"):
        assert evs[mid].status == "success" and evs[mid].user_id == "kim", mid
        assert evs[mid].usage.input + evs[mid].usage.cache_read == 1000, mid
    assert len(evs) == 7
    (st,) = tracker.quota_status(["user:kim"])
    assert st.held == 0 and st.used > 0, "every call reserved, committed and dropped its hold"


def test_async_beta_structured_output_and_stream_helpers_are_recorded(tracker: Tracker, fake: FakeProvider) -> None:
    async def main() -> None:
        a = tracker.wrap(anthropic.AsyncAnthropic(api_key="t", base_url=fake.url, max_retries=0), user_id="lee")
        fake.script({"json": anthropic_message(id="msg_abeta")},
                    {"json": anthropic_message(id="msg_aparse", text='{"greeting": "hi"}')})
        assert (await a.beta.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)).id == "msg_abeta"
        parsed = await a.messages.parse(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS, output_format=Greeting)
        assert parsed.parsed_output == Greeting(greeting="hi")
        o = tracker.wrap(openai.AsyncOpenAI(api_key="t", base_url=fake.url + "/v1", max_retries=0), user_id="lee")
        chat = openai_chat(id="chatcmpl-aparse")
        chat["choices"][0]["message"]["content"] = '{"greeting": "hi"}'
        fake.script({"json": chat}, {"sse": openai_chat_sse(id="chatcmpl-ahelper"), "named": False})
        done = await o.chat.completions.parse(model="gpt-4o", messages=MSGS, response_format=Greeting)
        assert done.choices[0].message.parsed == Greeting(greeting="hi")
        async with o.chat.completions.stream(model="gpt-4o", messages=MSGS) as cs:
            assert (await cs.get_final_completion()).choices[0].message.content == "Hello"

    asyncio.run(main())
    evs = {e.id: e for e in events(tracker)}
    assert sorted(evs) == ["chatcmpl-ahelper", "chatcmpl-aparse", "msg_abeta", "msg_aparse"]
    assert all(e.status == "success" and e.user_id == "lee" for e in evs.values())


def test_anthropic_beta_tool_runner_requests_are_recorded(tracker: Tracker, fake: FakeProvider) -> None:
    """The SDK's tool runner sends each turn through `beta.messages`: every turn is recorded."""

    @anthropic.beta_tool
    def add(a: int, b: int) -> str:
        """Adds two numbers."""
        return str(a + b)

    w = tracker.wrap(sync_anthropic(fake), user_id="ola")
    turn1 = anthropic_message(id="msg_turn1")
    turn1["content"] = [{"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}}]
    turn1["stop_reason"] = "tool_use"
    fake.script({"json": turn1}, {"json": anthropic_message(id="msg_turn2", text="5")})
    runner = w.beta.messages.tool_runner(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS, tools=[add])
    assert [m.id for m in runner] == ["msg_turn1", "msg_turn2"]
    assert len(fake.requests) == 2
    evs = {e.id: e for e in events(tracker)}
    assert sorted(evs) == ["msg_turn1", "msg_turn2"] and all(e.user_id == "ola" for e in evs.values())


def test_raw_and_streaming_response_calls_are_recorded(tracker: Tracker, fake: FakeProvider) -> None:
    """`with_raw_response` (to read headers) and `with_streaming_response`: the caller gets the
    SDK's response wrapper as before, its `parse()` the same object the wrapper read usage from."""
    a = tracker.wrap(sync_anthropic(fake), user_id="max")
    o = tracker.wrap(sync_openai(fake), user_id="max")
    fake.script({"json": anthropic_message(id="msg_raw")})
    raw = a.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
    assert raw.http_response.status_code == 200 and raw.parse().id == "msg_raw" and raw.parse() is raw.parse()
    fake.script({"sse": anthropic_sse(id="msg_raw_stream")})
    raw = a.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS, stream=True)
    assert [ev.type for ev in raw.parse()][-1] == "message_stop"
    fake.script({"json": openai_chat(id="chatcmpl-raw")})
    raw = o.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    assert raw.parse().choices[0].message.content == "Hi"
    fake.script({"json": anthropic_message(id="msg_streaming_response")})
    with a.messages.with_streaming_response.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS) as r:
        assert r.parse().id == "msg_streaming_response"

    async def main() -> None:
        aa = tracker.wrap(anthropic.AsyncAnthropic(api_key="t", base_url=fake.url, max_retries=0), user_id="max")
        fake.script({"json": anthropic_message(id="msg_araw")})
        araw = await aa.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
        assert (await araw.parse()).id == "msg_araw"

    asyncio.run(main())
    evs = {e.id: e for e in events(tracker)}
    assert sorted(evs) == ["chatcmpl-raw", "msg_araw", "msg_raw", "msg_raw_stream", "msg_streaming_response"]
    assert all(e.status == "success" and e.user_id == "max" for e in evs.values())


def test_provider_of_bedrock_vertex_and_openai_compatible_clients(tracker: Tracker, fake: FakeProvider) -> None:
    """The provider a call is priced as: Vertex and Bedrock clients are recognised (sync and
    async), an OpenAI client pointed at an OpenAI-compatible API says which one; anything a
    client's responses cannot be is refused."""
    v = tracker.wrap(anthropic.AnthropicVertex(region="us-east5", project_id="p", access_token="t", base_url=fake.url, max_retries=0), user_id="ned")
    fake.script({"json": anthropic_message(id="msg_vertex")})
    v.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
    d = tracker.wrap(openai.OpenAI(api_key="t", base_url=fake.url + "/v1", max_retries=0), user_id="ned", provider="deepseek")
    fake.script({"json": openai_chat(id="chatcmpl-deepseek", model="deepseek-chat")})
    d.chat.completions.create(model="deepseek-chat", messages=MSGS)

    async def main() -> None:
        av = tracker.wrap(anthropic.AsyncAnthropicVertex(region="us-east5", project_id="p", access_token="t", base_url=fake.url, max_retries=0), user_id="ned")
        fake.script({"json": anthropic_message(id="msg_avertex")})
        await av.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)

    asyncio.run(main())
    evs = {e.id: e for e in events(tracker)}
    assert {i: (e.provider, e.context.platform) for i, e in evs.items()} == {
        "msg_vertex": ("anthropic", "vertex"),
        "msg_avertex": ("anthropic", "vertex"),
        "chatcmpl-deepseek": ("deepseek", None),
    }
    assert all(e.status == "success" and e.cost is not None and e.cost.total > 0 for e in evs.values())
    with pytest.raises(InvalidArgumentError, match="openai, deepseek, mistral, xai, not 'gemini'"):
        tracker.wrap(sync_openai(fake), provider="gemini")
    with pytest.raises(InvalidArgumentError, match="anthropic, bedrock, vertex, not 'openai'"):
        tracker.wrap(sync_anthropic(fake), provider="openai")


def test_async_clients(tracker: Tracker, fake: FakeProvider) -> None:
    async def main() -> None:
        aw = tracker.wrap(anthropic.AsyncAnthropic(api_key="t", base_url=fake.url, max_retries=0), user_id="ivy")
        assert isinstance(aw, anthropic.AsyncAnthropic)
        fake.script({"json": anthropic_message(id="msg_x1")}, {"sse": anthropic_sse(id="msg_x2")},
                    {"sse": anthropic_sse(id="msg_x3")}, {"status": 500, "json": {"type": "error", "error": {"type": "api_error", "message": "x"}}})
        await aw.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
        s = await aw.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS, stream=True)
        assert [ev.type async for ev in s][-1] == "message_stop"
        async with aw.messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS) as ms:
            final = await ms.get_final_message()
        assert final.id == "msg_x3"
        with pytest.raises(anthropic.InternalServerError):
            await aw.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
        ow = tracker.wrap(openai.AsyncOpenAI(api_key="t", base_url=fake.url + "/v1", max_retries=0), user_id="ivy")
        fake.script({"sse": openai_chat_sse(id="chatcmpl-a"), "named": False}, {"json": openai_response(id="resp_a")})
        chunks = [c async for c in await ow.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)]
        assert len(chunks) == 2
        await ow.responses.create(model="gpt-4o", input="hi")

    asyncio.run(main())
    evs = events(tracker)
    by_id = {e.id: e for e in evs}
    for mid in ("msg_x1", "msg_x2", "msg_x3", "chatcmpl-a", "resp_a"):
        assert by_id[mid].status == "success" and by_id[mid].user_id == "ivy", mid
    assert [e.error_type for e in evs if e.status == "error"] == ["api_error"]


def test_async_abandoned_stream_and_openai_error(tracker: Tracker, fake: FakeProvider) -> None:
    tracker.set_quota("jo", subject="user:jo", metric="cost", limit=10, window="day")

    async def main() -> None:
        aw = tracker.wrap(anthropic.AsyncAnthropic(api_key="t", base_url=fake.url, max_retries=0), user_id="jo")
        fake.script({"sse": anthropic_sse(id="msg_async_gone")})
        s = await aw.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS, stream=True)
        async for ev in s:
            assert ev.type == "message_start"
            break
        await s.close()
        ow = tracker.wrap(openai.AsyncOpenAI(api_key="t", base_url=fake.url + "/v1", max_retries=0), user_id="jo")
        fake.script({"status": 429, "json": {"error": {"type": "rate_limit_exceeded", "message": "slow down"}}})
        with pytest.raises(openai.RateLimitError):
            await ow.chat.completions.create(model="gpt-4o", messages=MSGS)

    asyncio.run(main())
    evs = wait_for(lambda: (lambda e: e if len(e) == 2 else None)(events(tracker)))
    kinds = sorted((e.error_type or "") for e in evs)
    assert kinds == ["rate_limit_exceeded", "stream_abandoned"]
    gone = next(e for e in evs if e.error_type == "stream_abandoned")
    assert gone.id == "msg_async_gone" and gone.usage.input == 1000
    wait_for(lambda: tracker.quota_status(["user:jo"])[0].held == 0)


def test_prompt_count_walks_python_data_by_the_core_rule() -> None:
    """The wrapper counts a request's prompt where it lies (no copy of its text), by the core's
    rule: characters (code points) of every string, `data` values skipped, nothing below depth
    64, a quarter rounded up; SDK objects among the parts are counted through their JSON."""
    from usage_core._native import approx_prompt_tokens

    # The core's documented example: 50 characters, 13 tokens.
    parts = [
        [{"role": "user", "content": [
            {"type": "text", "text": "Describe this"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo..."}},
        ]}],
        "Be brief.",
    ]
    assert approx_prompt_tokens(parts) == 13
    assert approx_prompt_tokens(("é" * 7, None, 3, 2.5, True)) == 2  # 7 code points, not 14 bytes
    deep: object = "abcd"
    for _ in range(64):
        deep = [deep]
    assert approx_prompt_tokens(deep) == 1 and approx_prompt_tokens([deep]) == 0
    block = anthropic.types.TextBlock(type="text", text="x" * 40, citations=None)
    # Read through its JSON: "assistant", then "text" (the type) and the 40 x's: 53 characters.
    assert approx_prompt_tokens([{"role": "assistant", "content": [block]}]) == approx_prompt_tokens(
        [{"role": "assistant", "content": [block.model_dump(mode="json")]}]
    ) == 14
    assert approx_prompt_tokens(["\ud800abc"]) == 1  # a lone surrogate counts; it does not fail
