"""Runs every case of every shared vector file (usage-core/tests/vectors/*.json) through the
Python API and checks the hand-worked expectations, as usage-core/tests/vectors.rs does in
Rust: the two languages must give identical costs, usage, flags, tiers and modifiers."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import usage_core
from usage_core import PriceCatalog, StreamAccumulator, TokenUsage, UsageError, cost, extract

VECTORS = Path(__file__).resolve().parents[2] / "usage-core" / "tests" / "vectors"
LINES = ["input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "web_search", "total"]
USAGE_FIELDS = [
    "input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning",
    "web_search_requests", "web_fetch_requests",
]


def load() -> List[Tuple[str, Dict[str, Any]]]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        for case in json.loads(path.read_text())["cases"]:
            cases.append((f"{path.name}::{case['name']}", case))
    return cases


CASES = load()


def test_every_vector_file_is_read() -> None:
    files = {name.split("::")[0] for name, _ in CASES}
    assert files == {p.name for p in VECTORS.glob("*.json")}
    assert len(CASES) >= 100, len(CASES)


def run(case: Dict[str, Any]) -> List[str]:
    """The differences between the case's expectations and what the Python API does."""
    expect = case["expect"]
    want_error = expect.get("error")
    at = datetime.fromisoformat(case["at"].replace("Z", "+00:00"))
    diffs: List[str] = []
    complete = None
    billable = True
    records = None
    try:
        if "response" in case:
            recs = extract(case["provider"], case["response"])
            records = len(recs)
            if not recs:
                if expect.get("records", 1) != 0:
                    diffs.append(f"records: expected {expect.get('records', 1)}, got 0")
                return diffs
            rec = recs[0]
        elif "stream" in case:
            acc = StreamAccumulator(case["provider"])
            for event in case["stream"]:
                acc.push(event)
            rec = acc.finish()
        else:
            rec = None
    except UsageError as e:
        if want_error != e.code:
            diffs.append(f"error: expected {want_error}, got {e.code}: {e}")
        return diffs
    if rec is not None:
        model = case.get("model") or rec.model
        usage = rec.usage
        context = rec.context.to_dict()
        complete, billable = rec.complete, rec.billable
    else:
        model = case["model"]
        usage = TokenUsage(**case["usage"])
        context = {}
    context.update(case.get("context", {}))
    ctx = {k: v for k, v in context.items() if v is not None}

    if records is not None and expect.get("records", 1) != records:
        diffs.append(f"records: expected {expect.get('records', 1)}, got {records}")
    if "usage" in expect:
        want = {f: expect["usage"].get(f, 0) for f in USAGE_FIELDS}
        got = usage.to_dict()
        if want != got:
            diffs.append(f"usage: expected {want}, got {got}")
    for flag, got_flag in (("complete", complete), ("billable", billable)):
        if flag in expect and got_flag is not None and expect[flag] != got_flag:
            diffs.append(f"{flag}: expected {expect[flag]}, got {got_flag}")

    if not billable:
        if want_error:
            diffs.append(f"error: expected {want_error}, got a non-billable record")
        if "model" in expect and PriceCatalog.builtin().resolve(model) != expect["model"]:
            diffs.append(f"model: expected {expect['model']}")
        for line in LINES:
            if Decimal(expect["cost"].get(line, "0")) != 0:
                diffs.append(f"cost.{line}: expected {expect['cost'][line]}, got 0 (not billable)")
        return diffs

    try:
        c = cost(model, usage, at, **ctx)
    except UsageError as e:
        if want_error != e.code:
            diffs.append(f"error: expected {want_error}, got {e.code}: {e}")
        return diffs
    if want_error:
        return [f"error: expected {want_error}, got a cost of {c.total}"]
    if "model" in expect and c.basis.model != expect["model"]:
        diffs.append(f"model: expected {expect['model']}, got {c.basis.model}")
    for line in LINES:
        want_line = Decimal(expect["cost"].get(line, "0"))
        got_line = getattr(c, line)
        assert isinstance(got_line, Decimal)
        if want_line != got_line:
            diffs.append(f"cost.{line}: expected {want_line}, got {got_line}")
    if expect.get("tier_above") != c.basis.tier_above:
        diffs.append(f"tier_above: expected {expect.get('tier_above')}, got {c.basis.tier_above}")
    if "modifiers" in expect and expect["modifiers"] != [k for k, _ in c.basis.modifiers]:
        diffs.append(f"modifiers: expected {expect['modifiers']}, got {[k for k, _ in c.basis.modifiers]}")
    return diffs


@pytest.mark.parametrize("name,case", CASES, ids=[n for n, _ in CASES])
def test_vector(name: str, case: Dict[str, Any]) -> None:
    diffs = run(case)
    assert not diffs, f"{name}:\n  " + "\n  ".join(diffs)


def test_a_wrong_expectation_is_caught() -> None:
    """The runner itself can fail: a case with a wrong total reports the difference."""
    name, case = next((n, c) for n, c in CASES if "cost" in c["expect"] and c["expect"]["cost"].get("total", "0") != "0")
    bad = json.loads(json.dumps(case))
    bad["expect"]["cost"]["total"] = str(Decimal(bad["expect"]["cost"]["total"]) + Decimal("0.000000001"))
    assert any(d.startswith("cost.total") for d in run(bad)), name
    assert usage_core.CATALOG_VERSION
