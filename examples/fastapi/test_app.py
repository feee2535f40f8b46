"""The FastAPI example through its test client, Claude replaced by the fake provider."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Iterator

import anthropic
import pytest
from fastapi.testclient import TestClient

from app import create_app
from fake_provider import FakeProvider, anthropic_message

ALICE = {"authorization": "Bearer tok-alice"}
BOB = {"authorization": "Bearer tok-bob"}
ADMIN = {"authorization": "Bearer tok-admin"}


@pytest.fixture()
def fake() -> Iterator[FakeProvider]:
    server = FakeProvider()
    yield server
    server.close()


@pytest.fixture()
def client(fake: FakeProvider) -> Iterator[TestClient]:
    app = create_app(
        store_url="memory://",
        tokens={"tok-alice": "alice", "tok-bob": "bob"},
        admin_token="tok-admin",
        monthly_budget_usd="0.05",
        anthropic_client=anthropic.AsyncAnthropic(api_key="test", base_url=fake.url, max_retries=0),
    )
    with TestClient(app) as c:
        yield c


def chat(client: TestClient, headers: dict, fake: FakeProvider, msg_id: str, workflow: str = "chat") -> dict:
    fake.script({"json": anthropic_message(id=msg_id, model="claude-haiku-4-5",
                                           usage={"input_tokens": 10_000, "output_tokens": 1_000})})
    r = client.post("/api/chat", json={"message": "hi", "workflow": workflow, "max_tokens": 100},
                    headers={**headers, "x-instance": f"inst-{msg_id}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_auth_is_required(client: TestClient) -> None:
    assert client.get("/api/usage/stats").status_code == 401
    assert client.get("/api/usage/stats", headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/admin/users", headers=ALICE).status_code == 403


def test_chat_is_recorded_and_users_only_see_their_own(client: TestClient, fake: FakeProvider) -> None:
    assert chat(client, ALICE, fake, "msg_a1", "summarise")["reply"] == "Hello!"
    chat(client, ALICE, fake, "msg_a2", "chat")
    chat(client, BOB, fake, "msg_b1")
    # haiku 4.5: 10,000 × $1 + 1,000 × $5 per million = $0.015 per call
    stats = client.get("/api/usage/stats", headers=ALICE).json()
    assert stats["requests"] == 2 and stats["cost_usd"] == "0.03"
    assert stats["distinct_workflows"] == 2 and stats["distinct_instances"] == 2
    assert stats["tokens"] == {"input": 20_000, "output": 2_000, "cache_read": 0, "cache_write": 0}
    assert stats["total_execution_time_ms"] >= 0
    assert client.get("/api/usage/stats", headers=BOB).json()["requests"] == 1
    rows = list(csv.DictReader(io.StringIO(client.get("/api/usage/export.csv", headers=ALICE).text)))
    assert {r["user_id"] for r in rows} == {"alice"} and len(rows) == 2
    assert {r["id"] for r in rows} == {"msg_a1", "msg_a2"}
    bd = client.get("/api/usage/breakdown?by=model", headers=ALICE).json()
    assert bd["rows"][0]["key"] == "claude-haiku-4-5" and bd["totals"]["requests"] == 2
    hist = client.get("/api/usage/history?days=30", headers=ALICE).json()["days"]
    assert len(hist) == 30 and hist[-1]["requests"] == 2 and hist[-1]["cost_usd"] == "0.03"
    admin = client.get("/api/admin/users", headers=ADMIN).json()
    assert [u["user_id"] for u in admin["users"]] == ["alice", "bob"] and admin["total_cost_usd"] == "0.045"
    bad = client.get("/api/usage/stats?period_start=2026-01-01T00:00:00&period_end=2026-02-01T00:00:00", headers=ALICE)
    assert bad.status_code == 422 and bad.json()["field"] == "start"
    ranged = client.get("/api/usage/stats?period_start=2020-01-01T00:00:00Z&period_end=2020-02-01T00:00:00Z", headers=ALICE)
    assert ranged.json()["requests"] == 0


def test_budget_levels_and_429_before_the_call(client: TestClient, fake: FakeProvider) -> None:
    chat(client, ALICE, fake, "msg_1")
    chat(client, ALICE, fake, "msg_2")
    p = client.get("/api/profile/usage", headers=ALICE).json()
    assert Decimal(p["used_usd"]) == Decimal("0.03") and p["percentage"] == 60.0
    assert not p["is_warning"] and not p["is_blocked"]
    chat(client, ALICE, fake, "msg_3")
    p = client.get("/api/profile/usage", headers=ALICE).json()
    assert p["percentage"] == 90.0 and p["is_warning"] and not p["is_upgrade_suggested"]
    sent = len(fake.requests)
    r = client.post("/api/chat", json={"message": "one more", "max_tokens": 2000}, headers=ALICE)
    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "quota_exceeded" and "budget" in body["message"] and body["limit"] == "0.05"
    assert len(fake.requests) == sent, "Anthropic never saw the refused request"
    assert client.get("/api/profile/usage", headers=BOB).json()["is_blocked"] is False
