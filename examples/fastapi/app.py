"""A FastAPI app with the usage endpoints real apps build by hand, on usage-core.

Run it:  ANTHROPIC_API_KEY=sk-... API_TOKENS=tok-alice:alice,tok-bob:bob ADMIN_TOKEN=tok-admin \
         uvicorn app:app
Every figure comes from the tracker; every Claude call goes through the wrapped client, which
records it and enforces each user's monthly budget before anything is sent.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional

import anthropic
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from usage_core import AsyncTracker, InvalidArgumentError, Period, QuotaExceededError

MODEL = "claude-haiku-4-5"


def parse_tokens(spec: str) -> Dict[str, str]:
    """`tok-alice:alice,tok-bob:bob` → {token: user id}."""
    pairs = (item.split(":", 1) for item in spec.split(",") if ":" in item)
    return {token.strip(): user.strip() for token, user in pairs}


class ChatIn(BaseModel):
    message: str
    workflow: str = "chat"
    max_tokens: int = 512


def create_app(
    *,
    store_url: Optional[str] = None,
    tokens: Optional[Dict[str, str]] = None,
    admin_token: Optional[str] = None,
    monthly_budget_usd: Optional[str] = None,
    anthropic_client: Optional[anthropic.AsyncAnthropic] = None,
) -> FastAPI:
    store_url = store_url or os.environ.get("USAGE_STORE_URL", "sqlite://usage.db")
    tokens = tokens if tokens is not None else parse_tokens(os.environ.get("API_TOKENS", ""))
    admin_token = admin_token or os.environ.get("ADMIN_TOKEN")
    budget = Decimal(monthly_budget_usd or os.environ.get("MONTHLY_BUDGET_USD", "5"))
    state: Dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracker = await AsyncTracker.open(store_url)
        for user in set(tokens.values()):
            await tracker.set_quota(f"{user}-monthly", subject=f"user:{user}", metric="cost", limit=budget, window="month")
        client = anthropic_client or anthropic.AsyncAnthropic(base_url=os.environ.get("ANTHROPIC_BASE_URL"))
        state["tracker"] = tracker
        state["claude"] = tracker.wrap(client, tags={"app": "fastapi-example"})
        try:
            yield
        finally:
            await tracker.close()

    app = FastAPI(title="usage-core FastAPI example", lifespan=lifespan)

    def bearer(request: Request) -> Optional[str]:
        header = request.headers.get("authorization", "")
        return header[7:].strip() if header.lower().startswith("bearer ") else None

    @app.middleware("http")
    async def identity(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Sets who every wrapped call in this request is for, once."""
        user = tokens.get(bearer(request) or "")
        if user is None or "tracker" not in state:
            return await call_next(request)
        with state["tracker"].context(user_id=user, tags={"endpoint": request.url.path}):
            return await call_next(request)

    def current_user(request: Request) -> str:
        user = tokens.get(bearer(request) or "")
        if user is None:
            raise HTTPException(401, "missing or unknown bearer token")
        return user

    def mine(user: str = Depends(current_user)) -> AsyncTracker:
        """A handle that can only see this user's events: no endpoint can leak another's."""
        tracker: AsyncTracker = state["tracker"]
        return tracker.for_user(user)

    def admin(request: Request) -> AsyncTracker:
        if not admin_token or bearer(request) != admin_token:
            raise HTTPException(403, "admin token required")
        tracker: AsyncTracker = state["tracker"]
        return tracker

    @app.exception_handler(QuotaExceededError)
    async def quota_exceeded(request: Request, e: QuotaExceededError) -> JSONResponse:
        return JSONResponse(
            status_code=429,
            content={
                "error": "quota_exceeded",
                "message": f"Your monthly AI budget is used up (${e.used} of ${e.limit}); it resets at the start of next month.",
                "quota": e.quota,
                "limit": str(e.limit),
                "used": str(e.used),
                "requested": str(e.requested),
            },
        )

    @app.exception_handler(InvalidArgumentError)
    async def bad_argument(request: Request, e: InvalidArgumentError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": "invalid_argument", "field": e.field, "message": e.reason})

    @app.get("/api/usage/stats")
    async def stats(
        period_start: Optional[datetime] = None,
        period_end: Optional[datetime] = None,
        t: AsyncTracker = Depends(mine),
    ) -> Dict[str, Any]:
        """A user's totals: requests, distinct workflows and instances, tokens, cost, time."""
        s = await t.summary(start=period_start, end=period_end, distinct=["workflow", "instance"])
        tot = s.totals
        return {
            "requests": tot.requests,
            "errors": tot.errors,
            "distinct_workflows": s.distinct.get("workflow", 0),
            "distinct_instances": s.distinct.get("instance", 0),
            "tokens": {
                "input": tot.input,
                "output": tot.output,
                "cache_read": tot.cache_read,
                "cache_write": tot.cache_write_5m + tot.cache_write_1h,
            },
            "cost_usd": str(tot.cost_total),
            "avg_cost_per_request_usd": None if s.avg_cost_per_request is None else str(s.avg_cost_per_request),
            "total_execution_time_ms": s.total_duration_ms,
            "summary": s.to_dict(),
        }

    @app.get("/api/profile/usage")
    async def profile_usage(user: str = Depends(current_user), t: AsyncTracker = Depends(mine)) -> Dict[str, Any]:
        """Where the user stands against their monthly budget."""
        statuses = await t.quota_status([f"user:{user}"])
        if not statuses:
            return {"has_quota": False}
        s = statuses[0]
        return {
            "has_quota": True,
            "percentage": s.percent,
            "used_usd": str(s.used),
            "limit_usd": str(s.limit),
            "remaining_usd": str(s.remaining),
            "is_warning": s.is_warning,
            "is_upgrade_suggested": s.is_upgrade_suggested,
            "is_blocked": s.is_blocked,
            "resets_at": s.window.resets_at.isoformat() if s.window.resets_at else None,
        }

    @app.get("/api/usage/history")
    async def history(days: int = Query(30, ge=1, le=366), t: AsyncTracker = Depends(mine)) -> Dict[str, Any]:
        """Daily cost, requests and tokens over the last `days` days (today included)."""
        points = await t.timeseries("day", period=Period.last_days(days))
        return {
            "days": [
                {
                    "date": p.start.date().isoformat(),
                    "requests": p.totals.requests,
                    "cost_usd": str(p.totals.cost_total),
                    "input_tokens": p.totals.input,
                    "output_tokens": p.totals.output,
                }
                for p in points
            ]
        }

    @app.get("/api/usage/breakdown")
    async def breakdown(by: str = "model", t: AsyncTracker = Depends(mine)) -> Dict[str, Any]:
        """The user's usage by model (or provider, status, any tag such as workflow)."""
        page = await t.breakdown(by)
        return page.to_dict()

    @app.get("/api/usage/export.csv")
    async def export_csv(t: AsyncTracker = Depends(mine)) -> Response:
        """Every event of the user, as CSV (schema version 1)."""
        data = await t.export_csv()
        assert isinstance(data, bytes)
        return Response(data, media_type="text/csv", headers={"content-disposition": 'attachment; filename="usage.csv"'})

    @app.get("/api/admin/users")
    async def admin_users(limit: int = Query(50, ge=1, le=500), t: AsyncTracker = Depends(admin)) -> Dict[str, Any]:
        """All users by cost this month, with their quota levels."""
        top = await t.top("user", metric="cost", limit=limit, period=Period.this_month())
        users = []
        for row in top.rows:
            statuses = await t.quota_status([f"user:{row.key}"]) if row.key else []
            users.append({
                "user_id": row.key,
                "requests": row.totals.requests,
                "cost_usd": str(row.totals.cost_total),
                "cost_share": row.cost_share,
                "level": statuses[0].level if statuses else None,
                "is_blocked": statuses[0].is_blocked if statuses else False,
            })
        return {"users": users, "total_users": top.total_rows, "total_cost_usd": str(top.totals.cost_total)}

    @app.post("/api/chat")
    async def chat(body: ChatIn, request: Request, user: str = Depends(current_user)) -> Dict[str, Any]:
        """Calls Claude through the wrapped client: recorded, and refused with 429 when the
        user's budget would be passed (before anything is sent to Anthropic)."""
        claude: anthropic.AsyncAnthropic = state["claude"]
        tracker: AsyncTracker = state["tracker"]
        with tracker.context(tags={"workflow": body.workflow, "instance": request.headers.get("x-instance", "default")}):
            msg = await claude.messages.create(
                model=MODEL, max_tokens=body.max_tokens, messages=[{"role": "user", "content": body.message}]
            )
        text = "".join(block.text for block in msg.content if block.type == "text")
        return {"reply": text, "usage": {"input_tokens": msg.usage.input_tokens, "output_tokens": msg.usage.output_tokens}}

    return app


if os.environ.get("USAGE_EXAMPLE_NO_APP") is None:
    app = create_app()
