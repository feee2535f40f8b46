"""The binding surface: conversions, errors, sync and async trackers, quotas, scoping, GIL."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import typing
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import usage_core as uc
from usage_core import (
    AsyncTracker,
    Estimate,
    InvalidArgumentError,
    InvalidUsageError,
    NotFoundError,
    Period,
    QuotaExceededError,
    StoreError,
    Subject,
    TokenUsage,
    Tracker,
    UnknownModelError,
    UsageError,
)

UTC = timezone.utc
NOW = datetime.now(UTC)


def test_cost_is_exact_decimal_with_a_readable_breakdown() -> None:
    c = uc.cost("claude-sonnet-4-5", {"input": 1000, "cache_read": 50000, "cache_write_5m": 10000,
                                       "cache_write_1h": 2000, "output": 2000},
                datetime(2026, 1, 15, 12, tzinfo=UTC))
    assert c.total == Decimal("0.0975") and isinstance(c.total, Decimal)
    assert dict(c.lines())["cache_write_1h"] == Decimal("0.012")
    assert c.basis.model == "claude-sonnet-4-5" and c.basis.catalog_version == uc.CATALOG_VERSION
    assert "total=Decimal('0.0975')" in repr(c)
    assert json.loads(json.dumps(c.to_dict()))["total"] == "0.0975"
    batch = uc.cost("claude-sonnet-4-5", TokenUsage(input=1000, output=2000), service_tier="batch")
    assert batch.total == Decimal("0.0165") and batch.basis.modifiers[0][0] == "batch"


def test_token_usage_repr_is_eval_able_and_hashable() -> None:
    u = TokenUsage(input=10, output=5, reasoning=2)
    assert eval(repr(u), {"TokenUsage": TokenUsage}) == u
    assert len({u, TokenUsage(input=10, output=5, reasoning=2)}) == 1
    assert u.total_tokens() == 15 and u.to_dict()["reasoning"] == 2
    with pytest.raises(AttributeError):
        u.input = 3  # type: ignore[misc]


def test_error_classes_carry_the_rust_fields() -> None:
    with pytest.raises(UnknownModelError) as e:
        uc.cost("gpt-99-imaginary", {"input": 1})
    assert e.value.model == "gpt-99-imaginary" and e.value.code == "UNKNOWN_MODEL"
    assert "not in the pricing catalog" in str(e.value)
    with pytest.raises(InvalidUsageError) as u:
        uc.cost("gpt-4o", TokenUsage(output=5, reasoning=6))
    assert isinstance(u.value, ValueError) and isinstance(u.value, UsageError)
    assert u.value.field == "reasoning" and "must not exceed output" in u.value.reason
    with pytest.raises(InvalidArgumentError) as a:
        uc.cost("gpt-4o", {"input": 1}, datetime(2026, 1, 1))
    assert a.value.field == "at" and "naive" in a.value.reason
    with pytest.raises(uc.InvalidResponseError) as r:
        uc.extract("anthropic", {"type": "message", "model": "claude-haiku-4-5", "usage": {"input_tokens": "ten"}})
    assert r.value.provider == "anthropic" and "input_tokens" in r.value.field
    with pytest.raises(InvalidArgumentError):
        uc.cost("gpt-4o", {"input": 1}, service_tier="gold")


def test_extract_accepts_dicts_and_sdk_objects() -> None:
    anthropic = pytest.importorskip("anthropic")
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 5}}
    msg = anthropic.types.Message.model_validate(body)
    for payload in (body, msg):
        (rec,) = uc.extract("anthropic", payload)
        assert (rec.usage.input, rec.usage.cache_read, rec.usage.output) == (10, 5, 20)
        assert rec.message_id == "msg_1" and rec.complete and rec.billable


def test_sdk_objects_are_read_as_pydantic_writes_them() -> None:
    """SDK objects are read field by field where pydantic writes a model's fields as they are,
    and through pydantic's serializer where a model customises that: either way they give what
    their `model_dump(mode="json")` gives. Extra fields (a newer API's usage fields in an older
    SDK) are read too."""
    anthropic = pytest.importorskip("anthropic")
    openai = pytest.importorskip("openai")
    import pydantic
    from fake_provider import anthropic_message, openai_chat, openai_response

    sdk_objects = [
        ("anthropic", anthropic.types.Message.model_validate(anthropic_message(id="msg_x"))),
        # The OpenAI SDK builds its responses without validating them, as here.
        ("openai", openai.types.chat.ChatCompletion.construct(**openai_chat(cached=300))),
        ("openai", openai.types.responses.Response.construct(**openai_response())),
    ]
    for provider, obj in sdk_objects:
        assert repr(uc.extract(provider, obj)) == repr(uc.extract(provider, obj.model_dump(mode="json")))

    class Usage(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        input_tokens: int

    class Doubled(pydantic.BaseModel):
        input_tokens: int
        output_tokens: int

        @pydantic.field_serializer("output_tokens")
        def _twice(self, v: int) -> int:
            return v * 2

    class Msg(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow", arbitrary_types_allowed=True)
        id: str
        type: str
        model: str
        usage: Any
        content: Any = None

    extra = Msg(id="m1", type="message", model="claude-haiku-4-5",
                usage=Usage.model_validate({"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 5}))
    (rec,) = uc.extract("anthropic", extra)
    assert (rec.usage.input, rec.usage.cache_read, rec.usage.output) == (10, 5, 20)
    class Annotated(pydantic.BaseModel):
        input_tokens: int
        output_tokens: typing.Annotated[int, pydantic.PlainSerializer(lambda v: v * 3)]

    for usage, output in ((Doubled(input_tokens=10, output_tokens=20), 40), (Annotated(input_tokens=10, output_tokens=20), 60)):
        (rec,) = uc.extract("anthropic", Msg(id="m2", type="message", model="claude-haiku-4-5", usage=usage))
        assert rec.usage.output == output, "a model with its own serializer is written by pydantic"

    # A model type whose pydantic internals cannot be made out (another pydantic version's
    # layout) is read through pydantic's serializer instead of failing the call.
    class Odd(pydantic.BaseModel):
        input_tokens: int
        output_tokens: int

    Odd.__pydantic_decorators__ = None  # type: ignore[assignment]
    (rec,) = uc.extract("anthropic", Msg(id="m4", type="message", model="claude-haiku-4-5",
                                         usage=Odd(input_tokens=3, output_tokens=4)))
    assert (rec.usage.input, rec.usage.output) == (3, 4)

    # What an extractor never reads (the answer's content) is not converted at all, so content
    # that is not JSON cannot break the reading.
    odd = Msg(id="m3", type="message", model="claude-haiku-4-5", usage={"input_tokens": 1, "output_tokens": 2},
              content=[object()])
    assert uc.extract("anthropic", odd)[0].usage.output == 2
    assert uc.extract("anthropic", {**odd.__dict__})[0].usage.output == 2
    with pytest.raises(InvalidArgumentError):
        uc.extract("gemini", {"usageMetadata": {"promptTokenCount": 1}, "content": [object()]})


def test_record_query_and_reports(tracker: Tracker) -> None:
    day = timedelta(days=1)
    events = []
    for i, (user, wf, model) in enumerate([("alice", "summarise", "claude-haiku-4-5"), ("alice", "chat", "claude-haiku-4-5"),
                                           ("bob", "chat", "gpt-4o"), ("alice", "chat", "gpt-4o")]):
        events.append({"provider": "anthropic" if model.startswith("claude") else "openai", "model": model,
                       "usage": {"input": 1000, "output": 200}, "user_id": user, "id": f"e{i}",
                       "tags": {"workflow": wf, "instance": f"i{i % 2}"}, "timestamp": NOW - i * day,
                       "latency_ms": 100 + i, "duration_ms": 1000})
    recs = tracker.record_many(events)
    assert [r.duplicate for r in recs] == [False] * 4
    again = tracker.record(**{**events[0], "usage": TokenUsage(input=1000, output=200)})
    assert again.duplicate, "the same id is stored once"
    assert again.event.timestamp.tzinfo is not None

    s = tracker.summary(user_id="alice", distinct=["workflow", "instance"])
    assert s.totals.requests == 3 and s.distinct == {"workflow": 2, "instance": 2}
    assert s.totals.cost_total == Decimal("0.002") * 2 + Decimal("0.0045")
    assert s.total_duration_ms == 3000
    round_trip = json.loads(json.dumps(s.to_dict()))
    assert round_trip["totals"]["cost_total"] == str(s.totals.cost_total)

    series = tracker.timeseries("day", period=Period.last_days(7))
    assert len(series) == 7 and sum(p.totals.requests for p in series) == 4
    assert series[-1].start.tzinfo is not None

    b = tracker.breakdown("model")
    assert [r.key for r in b.rows] == ["gpt-4o", "claude-haiku-4-5"] and b.totals.requests == 4
    top = tracker.top("user", metric="cost", limit=1)
    assert top.rows[0].key == "alice" and top.total_rows == 2
    q = tracker.query(group_by=["user", "workflow"], sort="requests", limit=10)
    assert q.columns == ["user", "workflow"] and q.total_rows == 3
    cmp = tracker.compare(current=(NOW - 1.5 * day, NOW + day), previous=(NOW - 4 * day, NOW - 1.5 * day))
    assert (cmp.current.requests, cmp.previous.requests) == (2, 2)

    csv = tracker.export_csv(user_id="bob")
    assert isinstance(csv, bytes)
    lines = csv.decode().strip().splitlines()
    assert lines[0].startswith("schema_version,id,timestamp") and len(lines) == 2 and ",bob," in lines[1]
    ev = tracker.event("e2")
    assert ev is not None and ev.user_id == "bob" and ev.cost is not None
    assert tracker.event("missing") is None


def test_scoped_handles_never_see_other_users(tracker: Tracker) -> None:
    tracker.record("openai", "gpt-4o", {"input": 10}, user_id="alice")
    tracker.record("openai", "gpt-4o", {"input": 10}, user_id="bob")
    alice = tracker.for_user("alice")
    assert alice.summary().totals.requests == 1
    with pytest.raises(InvalidArgumentError) as e:
        alice.summary(user_id="bob")
    assert e.value.field == "user_id"
    assert b",bob," not in alice.export_csv()
    rec = alice.record("openai", "gpt-4o", {"input": 1})
    assert rec.event.user_id == "alice"
    with pytest.raises(InvalidArgumentError):
        alice.rebuild_rollups()


def test_quotas_levels_reservations_and_alerts(tracker: Tracker) -> None:
    seen: list = []
    got = threading.Event()

    def on_alert(alert: uc.Alert) -> None:
        seen.append(alert)
        if alert.threshold == "warning":
            got.set()

    tracker.on_alert(on_alert)
    q = tracker.set_quota("alice-monthly", subject=Subject.user("alice"), metric="cost", limit=Decimal("1"), window="month")
    assert q.hard and q.tz == "UTC" and [t.name for t in q.thresholds] == ["warning", "upgrade_suggested", "blocked"]
    tracker.record("anthropic", "claude-haiku-4-5", {"input": 850_000}, user_id="alice")  # $0.85
    (st,) = tracker.quota_status(["user:alice"])
    assert st.used == Decimal("0.85") and st.is_warning and not st.is_upgrade_suggested and not st.is_blocked
    assert st.level == "warning" and st.window.resets_at is not None
    assert got.wait(5), "the alert callback ran"
    assert seen[0].quota_id == "alice-monthly" and seen[0].subject == Subject.user("alice")
    assert [a.threshold for a in tracker.alerts(NOW - timedelta(hours=1))] == ["warning"]

    est = Estimate.worst_case("claude-haiku-4-5", 200_000, 10_000)
    assert est.cost == Decimal("0.25")
    d = tracker.check(est, ["user:alice"])
    assert not d.allowed and d.blocked_by[0].quota_id == "alice-monthly"
    with pytest.raises(QuotaExceededError) as e:
        tracker.reserve(est, ["user:alice"])
    assert (e.value.quota, e.value.limit, e.value.used, e.value.requested) == ("alice-monthly", Decimal("1"), Decimal("0.85"), Decimal("0.25"))
    small = Estimate(TokenUsage(input=10), "0.05")
    r = tracker.reserve(small, ["user:alice"])
    assert tracker.quota_status(["user:alice"])[0].held == Decimal("0.05")
    recs = tracker.commit(r.id, [{"provider": "anthropic", "model": "claude-haiku-4-5", "usage": {"input": 10_000}, "user_id": "alice"}])
    assert recs[0].event.cost is not None
    (st,) = tracker.quota_status(["user:alice"])
    assert st.held == 0 and st.used == Decimal("0.86")
    r2 = tracker.reserve(small, ["user:alice"])
    assert tracker.release(r2.id) and not tracker.release(r2.id)
    f = tracker.forecast(metric="cost", window="month", user_id="alice", limit=1)
    assert f.limit == Decimal("1") and f.period_end is not None
    assert tracker.delete_quota("alice-monthly") and tracker.quotas() == []
    with pytest.raises(InvalidArgumentError):
        tracker.set_quota("x", subject="user:alice", metric="cost", limit=0.5, window="month")  # type: ignore[arg-type]


def test_not_found_and_store_errors(tmp_path: Path) -> None:
    t = Tracker("memory://")
    t.set_quota("q", subject="global", metric="requests", limit=10, window="day")
    with pytest.raises(NotFoundError) as nf:
        t.commit("rsv_missing", [{"provider": "openai", "model": "gpt-4o"}])
    assert nf.value.kind and nf.value.id == "rsv_missing"
    with pytest.raises(StoreError) as se:
        Tracker(f"sqlite://{tmp_path}/no/such/dir/usage.db")
    assert se.value.backend == "sqlite" and se.value.code == "STORE_ERROR"
    with pytest.raises(InvalidArgumentError) as ia:
        Tracker("mysql://nope")
    assert ia.value.field == "url"


def test_sqlite_file_store_rollups_and_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Tracker(f"sqlite://{path}") as t:
        for i in range(5):
            t.enqueue("openai", "gpt-4o", {"input": 100, "output": 10}, user_id="u", id=f"q{i}")
        t.flush()
        assert t.summary().totals.requests == 5
        assert t.rebuild_rollups().outcome == "succeeded"
        assert t.verify_rollups() == []
        out = tmp_path / "events.jsonl"
        assert t.export_jsonl(out) == 5 and len(out.read_text().splitlines()) == 5
    with Tracker(f"sqlite://{path}") as again:
        assert again.summary().totals.requests == 5, "durable across opens"


def test_other_threads_run_while_a_store_call_is_in_flight(tmp_path: Path) -> None:
    """With a huge switch interval the counter thread only runs when the caller releases the
    GIL; it advances during record_many, so the store call released it."""
    t = Tracker(f"sqlite://{tmp_path}/gil.db")
    events = [{"provider": "openai", "model": "gpt-4o", "usage": {"input": i + 1}, "user_id": f"u{i % 50}",
               "tags": {"workflow": f"w{i % 7}"}} for i in range(20_000)]
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1
            if counter[0] % 1000 == 0:
                time.sleep(0)  # let the caller take the GIL back as soon as it wants it

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    th = threading.Thread(target=count)
    th.start()
    try:
        time.sleep(0.05)
        before = counter[0]
        t.record_many(events)
        during = counter[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        th.join()
    t.close()
    assert during > 1000, f"the counter thread advanced only {during} times during record_many"


def test_async_tracker_does_not_block_the_event_loop(tmp_path: Path) -> None:
    async def main() -> None:
        t = await AsyncTracker.open(f"sqlite://{tmp_path}/async.db")
        async with t:
            ticks = 0
            done = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    await asyncio.sleep(0)

            task = asyncio.create_task(ticker())
            events = [{"provider": "openai", "model": "gpt-4o", "usage": {"input": 5}, "user_id": "a"} for _ in range(20_000)]
            recs = await t.record_many(events)
            done.set()
            await task
            assert len(recs) == 20_000
            assert ticks > 10, f"the event loop ran only {ticks} times while the store wrote"
            s = await t.for_user("a").summary()
            assert s.totals.requests == 20_000
            assert t.blocking().summary().totals.input == 100_000

    asyncio.run(main())


def test_catalog_overrides_price_new_models() -> None:
    cat = uc.PriceCatalog.builtin()
    cat.add_model({"id": "my-model", "provider": "acme",
                   "prices": [{"input": "1", "output": "2"}]})
    assert uc.cost("my-model", {"input": 1_000_000, "output": 500_000}, catalog=cat).total == Decimal("2")
    t = Tracker("memory://", catalog=cat)
    assert t.record("acme", "my-model", {"input": 1000}).event.cost is not None
    unpriced = Tracker("memory://").record("acme", "my-model", {"input": 1000}).event
    assert unpriced.cost is None and unpriced.cost_source == "unpriced"


def test_docstring_examples_run() -> None:
    import doctest

    import usage_core._tracker as mod

    result = doctest.testmod(mod, extraglobs={"TokenUsage": TokenUsage, "Tracker": Tracker})
    assert result.attempted >= 3 and result.failed == 0


def test_readme_quick_use_runs(tmp_path: Path) -> None:
    """The README's first code block, with its two placeholders filled in."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Quick use")[1].split("```python")[1].split("```")[0]
    block = block.replace("sqlite://usage.db", f"sqlite://{tmp_path}/usage.db").replace('"usage.csv"', f'"{tmp_path}/usage.csv"')
    response = {"id": "msg_1", "type": "message", "model": "claude-haiku-4-5", "usage": {"input_tokens": 1, "output_tokens": 2}}
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
                   "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    scope = {"response": response, "completion": completion}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["c"].total == Decimal("0.048")
    assert scope["s"].totals.requests == 2


def test_tracker_module_matches_its_generator() -> None:
    import subprocess

    tool = Path(__file__).resolve().parents[1] / "tools" / "gen_tracker.py"
    r = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
