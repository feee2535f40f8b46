"""Result values of the tracker: frozen dataclasses built from the data the Rust core returns.

Field names and meanings are the Rust structs' own (see the usage-core docs). Money is
``decimal.Decimal`` (USD, exact), instants are timezone-aware ``datetime`` in UTC, percentages
and averages shown to people are ``float``. ``to_dict()`` gives JSON-ready data: decimals as
exact strings (never floats), datetimes as ISO 8601 strings, so FastAPI can return it as is.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

from ._native import CostBreakdown, PricingContext, TokenUsage

__all__ = [
    "Alert",
    "Comparison",
    "Decision",
    "EventCost",
    "Forecast",
    "LevelNotice",
    "Point",
    "QueryResult",
    "QueryRow",
    "Quota",
    "QuotaStatus",
    "QuotaUse",
    "Recorded",
    "RepriceReport",
    "Reservation",
    "RollupDifference",
    "RunRecord",
    "Share",
    "SharePage",
    "Subject",
    "Summary",
    "Threshold",
    "TimeRange",
    "TokenShares",
    "Totals",
    "UsageEvent",
    "Window",
    "WindowSpan",
]

T = TypeVar("T")


def _to_json(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _to_json(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {k: _to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_json(x) for x in v]
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return v


class _Value:
    """What every result class shares."""

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready data: decimals as exact strings, datetimes as ISO 8601 strings."""
        out: Dict[str, Any] = _to_json(self)
        return out


def _datetime(v: str) -> datetime:
    return datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)


def _converter(tp: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Decimal:
        return Decimal
    if tp is datetime:
        return _datetime
    if tp is TokenUsage:
        return lambda v: v if isinstance(v, TokenUsage) else TokenUsage(**v)
    if tp is PricingContext:
        return lambda v: v if isinstance(v, PricingContext) else PricingContext(**v)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp
        return lambda v: _build(cls, v)
    if origin is typing.Union:
        inner = _converter(next(a for a in args if a is not type(None)))
        return lambda v: None if v is None else inner(v)
    if origin is list:
        item = _converter(args[0])
        return lambda v: [item(x) for x in v]
    if origin is dict:
        val = _converter(args[1])
        return lambda v: {k: val(x) for k, x in v.items()}
    return lambda v: v


_PLANS: Dict[type, List[typing.Tuple[str, Callable[[Any], Any]]]] = {}


def _build(cls: Type[T], data: Dict[str, Any]) -> T:
    """Builds `cls` from the Rust data (only conversion: strings to Decimal/datetime…)."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = [(f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        _PLANS[cls] = plan
    return cls(**{name: conv(data.get(name)) for name, conv in plan})


@dataclass(frozen=True)
class TimeRange(_Value):
    """A half-open interval ``[start, end)``."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Totals(_Value):
    """Sums over a set of events: counts, tokens by category, cost lines, latency sums."""

    requests: int
    errors: int
    unpriced: int
    input: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    output: int
    reasoning: int
    web_search_requests: int
    web_fetch_requests: int
    cost_input: Decimal
    cost_cache_read: Decimal
    cost_cache_write_5m: Decimal
    cost_cache_write_1h: Decimal
    cost_output: Decimal
    cost_web_search: Decimal
    cost_total: Decimal
    latency_sum_ms: int
    latency_count: int
    duration_sum_ms: int


@dataclass(frozen=True)
class TokenShares(_Value):
    """Each token category's share of all tokens, in percent."""

    input: float
    cache_read: float
    cache_write: float
    output: float


@dataclass(frozen=True)
class Summary(_Value):
    """Totals over a period with the derived figures dashboards show."""

    range: Optional[TimeRange]
    totals: Totals
    distinct: Dict[str, int]
    avg_cost_per_request: Optional[Decimal]
    avg_tokens_per_request: Optional[float]
    avg_cost_per_distinct: Dict[str, Decimal]
    cost_per_1k_tokens: Optional[Decimal]
    latency_avg_ms: Optional[float]
    latency_p95_ms: Optional[int]
    total_duration_ms: int
    token_shares: TokenShares


@dataclass(frozen=True)
class Point(_Value):
    """One bucket of a time series (empty buckets have zero totals)."""

    start: datetime
    end: datetime
    totals: Totals


@dataclass(frozen=True)
class Share(_Value):
    """One group's sums and its shares (percent) of the whole."""

    key: Optional[str]
    totals: Totals
    cost_share: float
    token_share: float
    request_share: float


@dataclass(frozen=True)
class SharePage(_Value):
    """A breakdown or top-N page; ``totals`` covers every group, not just this page."""

    by: str
    rows: List[Share]
    total_rows: int
    totals: Totals


@dataclass(frozen=True)
class Comparison(_Value):
    """One period against another."""

    current_range: Optional[TimeRange]
    previous_range: Optional[TimeRange]
    current: Totals
    previous: Totals
    cost_delta: Decimal
    cost_change: Optional[float]
    requests_delta: int
    requests_change: Optional[float]
    tokens_delta: int
    tokens_change: Optional[float]


@dataclass(frozen=True)
class QueryRow(_Value):
    """One row of a general query."""

    group: List[Optional[str]]
    bucket: Optional[datetime]
    totals: Totals
    distinct: Dict[str, int]
    latency_p95_ms: Optional[int]


@dataclass(frozen=True)
class QueryResult(_Value):
    """A general query's answer; ``total_rows`` counts rows before offset and limit."""

    columns: List[str]
    rows: List[QueryRow]
    total_rows: int


@dataclass(frozen=True)
class EventCost(_Value):
    """The cost stored with an event, line by line (USD)."""

    input: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    output: Decimal
    web_search: Decimal
    total: Decimal


@dataclass(frozen=True)
class UsageEvent(_Value):
    """One recorded call, as stored."""

    id: str
    timestamp: datetime
    provider: str
    model: str
    resolved_model: Optional[str]
    usage: TokenUsage
    cost: Optional[EventCost]
    cost_source: str
    unpriced_reason: Optional[str]
    catalog_version: Optional[str]
    latency_ms: Optional[int]
    duration_ms: Optional[int]
    status: str
    error_type: Optional[str]
    error_message: Optional[str]
    context: PricingContext
    user_id: Optional[str]
    tags: Dict[str, str]


@dataclass(frozen=True)
class Subject(_Value):
    """Who a quota applies to: ``Subject.user(id)``, ``Subject.tag(key, value)``, ``Subject.global_()``.

    Anywhere a subject is taken, its string form works too: ``"user:alice"``,
    ``"tag:team=ml"``, ``"global"``.
    """

    kind: str
    id: Optional[str] = None
    key: Optional[str] = None
    value: Optional[str] = None

    @classmethod
    def user(cls, id: str) -> Subject:
        """One user."""
        return cls("user", id=id)

    @classmethod
    def tag(cls, key: str, value: str) -> Subject:
        """Every event carrying a tag value."""
        return cls("tag", key=key, value=value)

    @classmethod
    def global_(cls) -> Subject:
        """Every event."""
        return cls("global")

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in _to_json(self).items() if v is not None}

    def __str__(self) -> str:
        if self.kind == "user":
            return f"user:{self.id}"
        if self.kind == "tag":
            return f"tag:{self.key}={self.value}"
        return self.kind


@dataclass(frozen=True)
class Window(_Value):
    """A quota window. Its string forms are accepted everywhere too: ``"day"``, ``"week"``,
    ``"week:sunday"``, ``"month"``, ``"month:15"``, ``"year"``, ``"rolling:3600"``,
    ``"lifetime"``."""

    kind: str
    start: Optional[str] = None
    anchor_day: Optional[int] = None
    seconds: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in _to_json(self).items() if v is not None}


@dataclass(frozen=True)
class Threshold(_Value):
    """A named level at a percentage of the limit."""

    name: str
    percent: Decimal


@dataclass(frozen=True)
class Quota(_Value):
    """A limit on what a subject may use in a window, in the metric's unit (USD for cost)."""

    id: str
    subject: Subject
    metric: str
    limit: Decimal
    window: Window
    tz: str
    hard: bool
    thresholds: List[Threshold]


@dataclass(frozen=True)
class WindowSpan(_Value):
    """The window in force: its start, when it resets (``None``: rolling, lifetime), and now."""

    start: datetime
    resets_at: Optional[datetime]
    now: datetime


@dataclass(frozen=True)
class Forecast(_Value):
    """Where usage is heading by the end of the window."""

    burn_rate_per_day: Decimal
    projected: Decimal
    low: Decimal
    high: Decimal
    limit: Optional[Decimal]
    exhausted_at: Optional[datetime]
    days_remaining: Optional[float]
    period_end: Optional[datetime]
    basis_days: int
    method: str


@dataclass(frozen=True)
class QuotaStatus(_Value):
    """Where a quota stands: used, held, remaining, percent, level and flags, forecast."""

    quota: Quota
    window: WindowSpan
    used: Decimal
    held: Decimal
    limit: Decimal
    remaining: Decimal
    percent: float
    level: Optional[str]
    reached: List[str]
    is_warning: bool
    is_upgrade_suggested: bool
    is_blocked: bool
    forecast: Optional[Forecast]


@dataclass(frozen=True)
class LevelNotice(_Value):
    """A level a request would reach."""

    quota_id: str
    level: str
    percent: float


@dataclass(frozen=True)
class QuotaUse(_Value):
    """Where a quota stood when a request was checked against it."""

    quota_id: str
    used: Decimal
    held: Decimal
    requested: Decimal
    limit: Decimal


@dataclass(frozen=True)
class Decision(_Value):
    """The answer of ``check``: allowed or not, levels reached, quotas that would block."""

    allowed: bool
    warnings: List[LevelNotice]
    blocked_by: List[QuotaUse]


@dataclass(frozen=True)
class Reservation(_Value):
    """A granted reservation: commit or release it by ``id``."""

    id: str
    expires_at: datetime
    uses: List[QuotaUse]


@dataclass(frozen=True)
class Alert(_Value):
    """A quota's usage reached a threshold in a window (stored once across processes)."""

    quota_id: str
    subject: Subject
    window_start: datetime
    threshold: str
    percent: Decimal
    used: Decimal
    limit: Decimal
    at: datetime


@dataclass(frozen=True)
class Recorded(_Value):
    """The outcome of recording one event."""

    event: UsageEvent
    duplicate: bool
    breakdown: Optional[CostBreakdown]
    alerts: List[Alert]


@dataclass(frozen=True)
class RunRecord(_Value):
    """A maintenance run (rebuild, reprice, purge)."""

    id: int
    kind: str
    range: Optional[TimeRange]
    started_at: datetime
    finished_at: datetime
    rows: int
    outcome: str
    error: Optional[str]
    detail: Optional[str]


@dataclass(frozen=True)
class RepriceReport(_Value):
    """What a reprice changed (or would change, in a dry run)."""

    examined: int
    changed: int
    newly_priced: int
    still_unpriced: int
    old_total: Decimal
    new_total: Decimal
    dry_run: bool


@dataclass(frozen=True)
class RollupDifference(_Value):
    """An (hour, group) where rollups and raw events disagree."""

    rollup: str
    hour: Optional[datetime]
    group: List[Optional[str]]
    raw: Totals
    rollup_totals: Totals
