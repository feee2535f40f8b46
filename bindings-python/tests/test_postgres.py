"""PostgreSQL from Python: record, query and reserve against a real server. Skipped without
USAGE_TEST_POSTGRES_URL (scripts/test starts one and sets it)."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal

import pytest

from usage_core import Estimate, QuotaExceededError, TokenUsage, Tracker

URL = os.environ.get("USAGE_TEST_POSTGRES_URL")


@pytest.mark.skipif(not URL, reason="USAGE_TEST_POSTGRES_URL is not set")
def test_postgres_round_trip() -> None:
    assert URL is not None
    user = f"py-{uuid.uuid4().hex[:12]}"
    # Its own schema (created and migrated by the store on first use), so the Python smoke
    # test never meets tables another suite left in `public`; ids are fresh on every run.
    sep = "&" if "?" in URL else "?"
    with Tracker(f"{URL}{sep}schema=usage_core_python_smoke") as t:
        assert t.backend == "postgres"
        me = t.for_user(user)
        rec = me.record("anthropic", "claude-haiku-4-5", TokenUsage(input=1000, output=200), tags={"workflow": "pg"})
        assert rec.event.cost is not None and rec.event.cost.total == Decimal("0.002")
        s = me.summary(distinct=["workflow"])
        assert s.totals.requests == 1 and s.distinct == {"workflow": 1}
        qid = f"q-{user}"
        t.set_quota(qid, subject=f"user:{user}", metric="requests", limit=1, window="day")
        try:
            with pytest.raises(QuotaExceededError) as e:
                t.reserve(Estimate(TokenUsage(input=1), "0"), [f"user:{user}"])
            assert e.value.quota == qid and e.value.used == 1
        finally:
            t.delete_quota(qid)
