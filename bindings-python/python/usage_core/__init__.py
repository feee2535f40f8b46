"""usage-core: record, price, query and enforce LLM API usage in-process.

Stateless: ``cost(model, usage, at=None, **context)``, ``extract(provider, response)``,
``StreamAccumulator``, ``Estimate``, ``PriceCatalog``. Stateful: ``Tracker`` (blocking) and
``AsyncTracker`` (asyncio) over SQLite, PostgreSQL or memory, with reports, quotas and
``wrap(client)`` for the Anthropic and OpenAI SDKs. Money is ``decimal.Decimal``, instants are
timezone-aware ``datetime``; every rule lives in the Rust core.
"""

from ._errors import (
    InvalidArgumentError,
    InvalidCatalogError,
    InvalidResponseError,
    InvalidUsageError,
    NotFoundError,
    OperationCancelledError,
    QuotaExceededError,
    StoreError,
    UnknownModelError,
    UsageError,
)
from ._native import (
    CATALOG_VERSION,
    CostBreakdown,
    Estimate,
    Extracted,
    PriceCatalog,
    PricingBasis,
    PricingContext,
    StreamAccumulator,
    TokenUsage,
    __version__,
    cost,
    extract,
)
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._tracker import AsyncGuardedCall, AsyncTracker, CallIdentity, GuardedCall, Period, Tracker
    from ._types import (
        Alert,
        Comparison,
        Decision,
        EventCost,
        Forecast,
        LevelNotice,
        Point,
        QueryResult,
        QueryRow,
        Quota,
        QuotaStatus,
        QuotaUse,
        Recorded,
        RepriceReport,
        Reservation,
        RollupDifference,
        RunRecord,
        Share,
        SharePage,
        Subject,
        Summary,
        Threshold,
        TimeRange,
        TokenShares,
        Totals,
        UsageEvent,
        Window,
        WindowSpan,
    )

# The trackers and their result types load on first use, so `import usage_core` (and the
# stateless `cost`/`extract`) stays a few milliseconds.
_LAZY = {
    **dict.fromkeys(
        ["AsyncGuardedCall", "AsyncTracker", "CallIdentity", "GuardedCall", "Period", "Tracker"], "_tracker"
    ),
    **dict.fromkeys(
        [
            "Alert", "Comparison", "Decision", "EventCost", "Forecast", "LevelNotice", "Point",
            "QueryResult", "QueryRow", "Quota", "QuotaStatus", "QuotaUse", "Recorded",
            "RepriceReport", "Reservation", "RollupDifference", "RunRecord", "Share", "SharePage",
            "Subject", "Summary", "Threshold", "TimeRange", "TokenShares", "Totals", "UsageEvent",
            "Window", "WindowSpan",
        ],
        "_types",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'usage_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"usage_core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list:  # type: ignore[type-arg]
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CATALOG_VERSION",
    "Alert",
    "AsyncGuardedCall",
    "AsyncTracker",
    "CallIdentity",
    "Comparison",
    "CostBreakdown",
    "Decision",
    "Estimate",
    "EventCost",
    "Extracted",
    "Forecast",
    "GuardedCall",
    "InvalidArgumentError",
    "InvalidCatalogError",
    "InvalidResponseError",
    "InvalidUsageError",
    "LevelNotice",
    "NotFoundError",
    "OperationCancelledError",
    "Period",
    "Point",
    "PriceCatalog",
    "PricingBasis",
    "PricingContext",
    "QueryResult",
    "QueryRow",
    "Quota",
    "QuotaExceededError",
    "QuotaStatus",
    "QuotaUse",
    "Recorded",
    "RepriceReport",
    "Reservation",
    "RollupDifference",
    "RunRecord",
    "Share",
    "SharePage",
    "StoreError",
    "StreamAccumulator",
    "Subject",
    "Summary",
    "Threshold",
    "TimeRange",
    "TokenShares",
    "TokenUsage",
    "Totals",
    "Tracker",
    "UnknownModelError",
    "UsageError",
    "UsageEvent",
    "Window",
    "WindowSpan",
    "__version__",
    "cost",
    "extract",
]
