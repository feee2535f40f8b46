"""Generates python/usage_core/_tracker.py: `Tracker` and `AsyncTracker` from one method table,
so the blocking and asyncio flavours cannot drift. Run it after changing the table:

    python bindings-python/tools/gen_tracker.py            # rewrites _tracker.py
    python bindings-python/tools/gen_tracker.py --check    # fails when _tracker.py is stale

tests/test_tracker.py runs the check.
"""

import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "python" / "usage_core" / "_tracker.py"

F = "start: Optional[datetime] = None, end: Optional[datetime] = None, period: Optional[PeriodLike] = None, tz: Optional[str] = None, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, model: Optional[str] = None, provider: Optional[str] = None, status: Optional[str] = None"
FA = "_filter(start=start, end=end, period=period, tz=tz, user_id=user_id, tags=tags, model=model, provider=provider, status=status)"
FDOC = "Filter keywords: ``start``/``end`` (aware datetimes) or ``period`` (+ ``tz``), ``user_id``, ``tags``, ``model``, ``provider``, ``status``."
EV = "provider: str, model: str, usage: UsageLike = None, *, id: Optional[str] = None, timestamp: Optional[datetime] = None, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, context: Optional[PricingContext] = None, provided_cost: Optional[MoneyLike] = None, latency_ms: Optional[int] = None, duration_ms: Optional[int] = None, status: Optional[str] = None, error_type: Optional[str] = None, error_message: Optional[str] = None"
EVA = "_event(provider=provider, model=model, usage=usage, id=id, timestamp=timestamp, user_id=user_id, tags=tags, context=context, provided_cost=provided_cost, latency_ms=latency_ms, duration_ms=duration_ms, status=status, error_type=error_type, error_message=error_message)"
# (name, params, native expr, result type, wrap expr using `r`, doc)
M = [
 ("record", EV, f"self._n.record({EVA})", "Recorded", "_build(Recorded, r[0])",
  "Prices and stores one event durably before returning. Recording an id already stored changes nothing (``duplicate`` is true)."),
 ("record_many", "events: Iterable[Mapping[str, Any]]", "self._n.record_many([dict(e) for e in events])", "List[Recorded]", "[_build(Recorded, x) for x in r]",
  "Prices and stores several events (dicts of ``record``'s arguments) in one transaction."),
 ("enqueue", EV, f"self._n.enqueue({EVA})", "UsageEvent", "_build(UsageEvent, r)",
  "Prices an event and queues it for the batched writer; durable after the next batch write (``flush``, ``close``, a full batch or the flush interval). A batch the store refused is raised once, by the next ``enqueue`` (which then does not queue its own event) or ``flush``."),
 ("record_response", "provider: str, response: Any, *, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, latency_ms: Optional[int] = None, duration_ms: Optional[int] = None, model: Optional[str] = None, timestamp: Optional[datetime] = None, id: Optional[str] = None",
  "self._n.record_response(provider, response, _drop_none(user_id=user_id, tags=tags, latency_ms=latency_ms, duration_ms=duration_ms, model=model, timestamp=timestamp, id=id))", "List[Recorded]", "[_build(Recorded, x) for x in r]",
  "Reads every usage record in a provider payload (a dict or an SDK response object) and records each durably."),
 ("flush", "", "self._n.flush()", "None", "None", "Writes everything queued by ``enqueue`` and wrapped calls; raises for a batch the store refused since the last report (its events were not stored)."),
 ("close", "", "self._n.close()", "None", "None", "Flushes and closes the store. Later calls fail."),
 ("summary", f"*, distinct: Sequence[str] = (), {F}", f"self._n.summary({FA}, list(distinct))", "Summary", "_build(Summary, r)",
  f"Totals with distinct counts of ``distinct`` dimensions (e.g. ``workflow``, ``instance``). {FDOC}"),
 ("timeseries", f"bucket: str, *, {F}", f"self._n.timeseries(bucket, {FA}, tz)", "List[Point]", "[_build(Point, x) for x in r]",
  f"Per-bucket sums (``hour``, ``day``, ``week``, ``week:sunday``, ``month``) in time zone ``tz`` (UTC by default) over the range, empty buckets included. {FDOC}"),
 ("breakdown", f"by: str, *, {F}", f"self._n.breakdown(by, {FA})", "SharePage", "_build(SharePage, r)",
  f"Sums by a dimension (``model``, ``user``, ``provider``, ``status`` or a tag key) with shares, largest cost first. {FDOC}"),
 ("compare", "*, current: Optional[Tuple[datetime, datetime]] = None, previous: Optional[Tuple[datetime, datetime]] = None, period: Optional[PeriodLike] = None, tz: Optional[str] = None, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, model: Optional[str] = None, provider: Optional[str] = None, status: Optional[str] = None",
  "self._n.compare(_filter(user_id=user_id, tags=tags, model=model, provider=provider, status=status), current[0] if current else None, current[1] if current else None, previous[0] if previous else None, previous[1] if previous else None, _period(period), tz)", "Comparison", "_build(Comparison, r)",
  "Two periods compared: ``current`` and ``previous`` as (start, end) pairs, or a ``period`` and the one before it."),
 ("top", f"by: str, *, metric: str, limit: int, offset: Optional[int] = None, {F}", f"self._n.top(by, metric, limit, offset, {FA})", "SharePage", "_build(SharePage, r)",
  f"The heaviest values of ``by`` by ``metric`` (``cost``, ``requests``, ``total_tokens``…), paginated. {FDOC}"),
 ("query", f"*, group_by: Sequence[str] = (), bucket: Optional[str] = None, distinct: Sequence[str] = (), latency_p95: Optional[bool] = None, fill_empty: Optional[bool] = None, sort: Optional[str] = None, order: Optional[str] = None, limit: Optional[int] = None, offset: Optional[int] = None, {F}",
  f"self._n.query({FA}, list(group_by), bucket, tz, list(distinct), latency_p95, fill_empty, sort, order, limit, offset)", "QueryResult", "_build(QueryResult, r)",
  f"The general query: group by dimensions and/or time bucket, distinct counts, p95 latency, sort, paginate. {FDOC}"),
 ("event", "id: str", "self._n.event(id)", "Optional[UsageEvent]", "None if r is None else _build(UsageEvent, r)", "One stored event by id (only inside this handle's scope)."),
 ("export_csv", f"path: Union[str, PathLike[str], None] = None, *, {F}", f"self._n.export({FA}, path, 'csv')", "Union[bytes, int]", "cast(Union[bytes, int], r)",
  f"Exports matching events as CSV (schema version 1; money as exact decimal strings): to ``path`` (returns the row count) or as ``bytes``. {FDOC}"),
 ("export_jsonl", f"path: Union[str, PathLike[str], None] = None, *, {F}", f"self._n.export({FA}, path, 'jsonl')", "Union[bytes, int]", "cast(Union[bytes, int], r)",
  f"Exports matching events as JSON lines: to ``path`` (returns the row count) or as ``bytes``. {FDOC}"),
 ("rebuild_rollups", "*, start: Optional[datetime] = None, end: Optional[datetime] = None, batch_size: Optional[int] = None", "self._n.rebuild_rollups(start, end, batch_size)", "RunRecord", "_build(RunRecord, r)",
  "Recomputes rollups from raw events (whole UTC hours; all time without a range)."),
 ("verify_rollups", "*, start: Optional[datetime] = None, end: Optional[datetime] = None", "self._n.verify_rollups(start, end)", "List[RollupDifference]", "[_build(RollupDifference, x) for x in r]",
  "Every (hour, group) where rollups and raw events disagree; empty means verified."),
 ("reprice", "catalog: PriceCatalog, *, dry_run: bool, start: Optional[datetime] = None, end: Optional[datetime] = None, batch_size: Optional[int] = None", "self._n.reprice(catalog, dry_run, start, end, batch_size)", "Tuple[RepriceReport, RunRecord]", "(_build(RepriceReport, r['report']), _build(RunRecord, r['run']))",
  "Recomputes stored costs under ``catalog`` (``dry_run``: report only)."),
 ("purge", "before: datetime, *, batch_size: Optional[int] = None", "self._n.purge(before, batch_size)", "RunRecord", "_build(RunRecord, r)", "Deletes raw events before ``before``, keeping rollups, and forgets the reservations that ended before it (committed, released or expired; never an outstanding one)."),
 ("runs", "limit: int = 20", "self._n.runs(limit)", "List[RunRecord]", "[_build(RunRecord, x) for x in r]", "Recent maintenance runs, newest first."),
 ("set_quota", "id: str, *, subject: SubjectLike, metric: str, limit: MoneyLike, window: WindowLike, tz: Optional[str] = None, hard: Optional[bool] = None, thresholds: Optional[Iterable[Tuple[str, MoneyLike]]] = None",
  "self._n.set_quota(id, _subject(subject), metric, limit, _window(window), tz, hard, None if thresholds is None else list(thresholds))", "Quota", "_build(Quota, r)",
  "Creates or replaces a quota. ``metric``: ``cost``, ``total_tokens``, ``input_tokens``, ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``, ``requests``. Defaults (UTC, hard, thresholds warning 80 / upgrade_suggested 95 / blocked 100) come from the core."),
 ("quotas", "", "self._n.quotas()", "List[Quota]", "[_build(Quota, x) for x in r]", "Every quota."),
 ("delete_quota", "id: str", "self._n.delete_quota(id)", "bool", "bool(r)", "Deletes a quota; true when there was one."),
 ("quota_status", "subjects: Iterable[SubjectLike] = ()", "self._n.quota_status(_subjects(subjects))", "List[QuotaStatus]", "[_build(QuotaStatus, x) for x in r]",
  "Status of every quota applying to ``subjects`` (and every global quota): used, held, remaining, percent, level, flags, forecast."),
 ("check", "estimate: Estimate, subjects: Iterable[SubjectLike] = ()", "self._n.check(estimate, _subjects(subjects))", "Decision", "_build(Decision, r)", "Would a request of ``estimate`` be allowed? Changes nothing."),
 ("reserve", "estimate: Estimate, subjects: Iterable[SubjectLike] = (), *, ttl: Optional[float] = None", "self._n.reserve(estimate, _subjects(subjects), ttl)", "Reservation", "_build(Reservation, r)",
  "Atomically holds ``estimate`` against every applying quota, or raises ``QuotaExceededError``. ``ttl`` in seconds (the core's default otherwise)."),
 ("commit", "reservation_id: str, events: Iterable[Mapping[str, Any]]", "self._n.commit(reservation_id, [dict(e) for e in events])", "List[Recorded]", "[_build(Recorded, x) for x in r]",
  "Records a reserved call's events (dicts of ``record``'s arguments) and drops its holds, in one transaction."),
 ("release", "reservation_id: str", "self._n.release(reservation_id)", "bool", "bool(r)", "Drops a reservation's holds without recording anything; true the first time."),
 ("alerts", "since: datetime, limit: int = 100", "self._n.alerts(since, limit)", "List[Alert]", "[_build(Alert, x) for x in r]", "Alerts stored since ``since`` by any process, oldest first."),
 ("forecast", f"*, metric: str, window: WindowLike, limit: Optional[MoneyLike] = None, lookback_days: Optional[int] = None, confidence: Optional[float] = None, tz: Optional[str] = None, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, model: Optional[str] = None, provider: Optional[str] = None, status: Optional[str] = None",
  "self._n.forecast(metric, _window(window), _filter(user_id=user_id, tags=tags, model=model, provider=provider, status=status), tz, limit, lookback_days, confidence)", "Forecast", "_build(Forecast, r)",
  "Forecasts ``metric`` of the matching events over the current ``window``, against an optional ``limit``."),
]

HEAD = '''"""``Tracker`` (blocking) and ``AsyncTracker`` (asyncio): record, query and enforce usage.

Generated by bindings-python/tools/gen_tracker.py from one method table, so the two flavours
cannot drift (edit the table there, not this file): each method converts its
arguments, calls the native tracker (which releases the GIL, or returns an awaitable), and
builds the frozen result values. Defaults live in Rust: ``None`` means "the core's default".
"""

from __future__ import annotations

import contextvars
from datetime import datetime
from os import PathLike
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)
from contextlib import contextmanager
from decimal import Decimal

from ._native import Estimate, NativeCall, NativeTracker, PriceCatalog, PricingContext, TokenUsage
from ._types import (
    Alert,
    Comparison,
    Decision,
    Forecast,
    Point,
    QueryResult,
    Quota,
    QuotaStatus,
    Recorded,
    RepriceReport,
    Reservation,
    RollupDifference,
    RunRecord,
    SharePage,
    Subject,
    Summary,
    UsageEvent,
    Window,
    _build,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Tracker", "AsyncTracker", "Period", "CallIdentity"]

MoneyLike = Union[Decimal, int, str]
UsageLike = Union[TokenUsage, Mapping[str, int], None]
SubjectLike = Union[Subject, str]
WindowLike = Union[Window, str]
ClientT = TypeVar("ClientT")


class Period:
    """Named periods for the ``period=`` filter keyword, resolved in ``tz`` at call time."""

    @staticmethod
    def today() -> Dict[str, Any]:
        """Since local midnight."""
        return {"kind": "today"}

    @staticmethod
    def this_week(start: str = "monday") -> Dict[str, Any]:
        """Since the start of the week."""
        return {"kind": "this_week", "start": start}

    @staticmethod
    def this_month() -> Dict[str, Any]:
        """Since the first of the month."""
        return {"kind": "this_month"}

    @staticmethod
    def last_month() -> Dict[str, Any]:
        """The previous calendar month."""
        return {"kind": "last_month"}

    @staticmethod
    def last_days(days: int) -> Dict[str, Any]:
        """The last ``days`` days, today included."""
        return {"kind": "last_days", "days": days}


PeriodLike = Mapping[str, Any]


def _drop_none(**kw: Any) -> Dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _period(p: Optional[PeriodLike]) -> Optional[Dict[str, Any]]:
    return None if p is None else dict(p)


def _filter(**kw: Any) -> Dict[str, Any]:
    return _drop_none(**kw)


def _event(**kw: Any) -> Dict[str, Any]:
    return _drop_none(**kw)


def _subject(s: SubjectLike) -> Any:
    return s.to_dict() if isinstance(s, Subject) else s


def _subjects(subjects: Iterable[SubjectLike]) -> List[Any]:
    return [_subject(s) for s in subjects]


def _window(w: WindowLike) -> Any:
    return w.to_dict() if isinstance(w, Window) else w


class CallIdentity:
    """Who the wrapped calls in a ``tracker.context(...)`` block are made for."""

    __slots__ = ("user_id", "tags")

    def __init__(self, user_id: Optional[str], tags: Mapping[str, str]) -> None:
        self.user_id = user_id
        self.tags: Dict[str, str] = dict(tags)

    def __repr__(self) -> str:
        return f"CallIdentity(user_id={self.user_id!r}, tags={self.tags!r})"


_IDENTITY: contextvars.ContextVar[Optional[CallIdentity]] = contextvars.ContextVar(
    "usage_core_identity", default=None
)


class _Common:
    """What both flavours share: scope handles, the catalog, identity, alert callbacks, wrap."""

    _n: NativeTracker

    def __init__(self, native: NativeTracker) -> None:
        self._n = native

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self._n.backend!r} scope={self._n.scope()!r}>"

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgres`` or ``memory``."""
        return self._n.backend

    @property
    def scope(self) -> Dict[str, Any]:
        """This handle's scope (``{}``: everything)."""
        scope: Dict[str, Any] = self._n.scope()
        return scope

    def for_user(self, user_id: str) -> Self:
        """A handle that can only read and write ``user_id``'s events."""
        return type(self)(self._n.for_user(user_id))

    def scoped(self, *, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None) -> Self:
        """A handle confined to a user and/or tag values; scopes only narrow."""
        return type(self)(self._n.scoped(user_id, None if tags is None else dict(tags)))

    @property
    def catalog(self) -> PriceCatalog:
        """A copy of the catalog events are priced with."""
        return self._n.catalog()

    def set_catalog(self, catalog: PriceCatalog) -> None:
        """Replaces the catalog for events recorded from now on (see ``reprice``)."""
        self._n.set_catalog(catalog)

    def on_alert(self, callback: Callable[[Alert], None]) -> None:
        """Calls ``callback(alert)`` for every alert this process stores. It runs on a
        background thread (never inside a store call), in the order alerts were stored; an
        exception it raises goes to ``sys.unraisablehook``."""
        self._n.on_alert(lambda data: callback(_build(Alert, data)))

    @contextmanager
    def context(self, *, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None) -> Iterator[CallIdentity]:
        """Sets who wrapped calls in this block (thread or asyncio task) are made for; nested
        blocks add to the outer tags. For FastAPI middleware: set it once per request."""
        outer = _IDENTITY.get()
        merged = dict(outer.tags) if outer else {}
        merged.update(tags or {})
        ident = CallIdentity(user_id if user_id is not None else (outer.user_id if outer else None), merged)
        token = _IDENTITY.set(ident)
        try:
            yield ident
        finally:
            _IDENTITY.reset(token)

    def wrap(self, client: ClientT, *, user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, provider: Optional[str] = None) -> ClientT:
        """A copy of an ``anthropic.Anthropic``/``AsyncAnthropic`` or ``openai.OpenAI``/
        ``AsyncOpenAI`` client (Bedrock, Vertex and Azure clients included) that records every
        ``messages.create``/``parse``/``stream`` (streams included), batch result and
        ``chat.completions`` / ``responses`` ``create``/``parse``/``stream`` call, after
        reserving its worst-case estimate against the quotas of its user and tags. Everything
        else behaves exactly as on ``client``.

        ``provider`` prices the calls: by default the SDK's own (``bedrock``/``vertex`` for
        those Anthropic clients); ``deepseek``, ``mistral`` or ``xai`` for an OpenAI client
        pointed at their OpenAI-compatible APIs."""
        from ._wrap import wrap_client

        wrapped: ClientT = wrap_client(
            self._n, client, user_id=user_id, tags=dict(tags) if tags else None, identity=_IDENTITY, provider=provider
        )
        return wrapped

'''

out = [HEAD]
def sig(params):
    return "self" + (", " + params if params else "")
out.append('''class Tracker(_Common):
    """A usage tracker with blocking methods (scripts, Flask, workers). Every store call
    releases the GIL. Use as a context manager to close it.

    >>> t = Tracker("memory://")
    >>> rec = t.record("anthropic", "claude-haiku-4-5", TokenUsage(input=1000, output=200))
    >>> rec.event.cost.total
    Decimal('0.002')
    """

    def __init__(self, url: Union[str, NativeTracker], *, catalog: Optional[PriceCatalog] = None, max_batch: Optional[int] = None, flush_interval: Optional[float] = None, max_queue: Optional[int] = None) -> None:
        """Opens a store: ``sqlite://usage.db``, ``postgres://…`` or ``memory://``.
        ``max_batch``/``flush_interval`` (seconds)/``max_queue`` tune the batched writer."""
        if isinstance(url, NativeTracker):
            native = url
        else:
            native = NativeTracker.open(url, asynchronous=False, catalog=catalog, max_batch=max_batch, flush_interval=flush_interval, max_queue=max_queue)
        super().__init__(native if not native.asynchronous else native.flavour(False))

    @classmethod
    def open(cls, url: str, *, catalog: Optional[PriceCatalog] = None, max_batch: Optional[int] = None, flush_interval: Optional[float] = None, max_queue: Optional[int] = None) -> Tracker:
        """Same as ``Tracker(url, …)``."""
        return cls(url, catalog=catalog, max_batch=max_batch, flush_interval=flush_interval, max_queue=max_queue)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def asynchronous(self) -> AsyncTracker:
        """The asyncio flavour of this tracker, sharing its store, scope and writer."""
        return AsyncTracker(self._n.flavour(True))

    def begin_call(self, provider: str, *, estimate: Optional[Estimate] = None, model: Optional[str] = None, prompt_tokens: Optional[int] = None, max_tokens: Optional[int] = None, subjects: Iterable[SubjectLike] = (), user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, ttl: Optional[float] = None, batched: bool = False) -> GuardedCall:
        """Starts a guarded call: reserves ``estimate`` (or the worst case for ``model``,
        ``prompt_tokens`` and ``max_tokens``) against the applying quotas, or raises
        ``QuotaExceededError`` before anything is sent. Finish it with ``succeed``/``fail``."""
        n = self._n.begin_call(provider, estimate=estimate, model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens, subjects=_subjects(subjects), meta=_drop_none(user_id=user_id, tags=dict(tags) if tags else None, model=model), ttl=ttl, batched=batched)
        return GuardedCall(n)
''')
for name, params, call, rtype, wrap, doc in M:
    body = f"        r = {call}\n        return {wrap}\n" if wrap != "None" else f"        {call}\n"
    out.append(f'''
    def {name}({sig(params)}) -> {rtype}:
        """{doc}"""
{body}''')

out.append('''

class AsyncTracker(_Common):
    """A usage tracker with awaitable methods (FastAPI, asyncio): the store works on a
    background runtime, so no call blocks the event loop.

    ``tracker = await AsyncTracker.open("sqlite://usage.db")``, or ``AsyncTracker(url)`` (which
    opens the store at once, blocking with the GIL released).
    """

    def __init__(self, url: Union[str, NativeTracker], *, catalog: Optional[PriceCatalog] = None, max_batch: Optional[int] = None, flush_interval: Optional[float] = None, max_queue: Optional[int] = None) -> None:
        if isinstance(url, NativeTracker):
            native = url
        else:
            native = NativeTracker.open(url, asynchronous=False, catalog=catalog, max_batch=max_batch, flush_interval=flush_interval, max_queue=max_queue)
        super().__init__(native if native.asynchronous else native.flavour(True))

    @classmethod
    async def open(cls, url: str, *, catalog: Optional[PriceCatalog] = None, max_batch: Optional[int] = None, flush_interval: Optional[float] = None, max_queue: Optional[int] = None) -> AsyncTracker:
        """Opens a store without blocking the event loop."""
        native = await NativeTracker.open(url, asynchronous=True, catalog=catalog, max_batch=max_batch, flush_interval=flush_interval, max_queue=max_queue)
        return cls(native)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.close()

    def blocking(self) -> Tracker:
        """The blocking flavour of this tracker, sharing its store, scope and writer."""
        return Tracker(self._n.flavour(False))

    async def begin_call(self, provider: str, *, estimate: Optional[Estimate] = None, model: Optional[str] = None, prompt_tokens: Optional[int] = None, max_tokens: Optional[int] = None, subjects: Iterable[SubjectLike] = (), user_id: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, ttl: Optional[float] = None, batched: bool = False) -> AsyncGuardedCall:
        """See ``Tracker.begin_call``."""
        n = await self._n.begin_call(provider, estimate=estimate, model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens, subjects=_subjects(subjects), meta=_drop_none(user_id=user_id, tags=dict(tags) if tags else None, model=model), ttl=ttl, batched=batched)
        return AsyncGuardedCall(n)
''')
for name, params, call, rtype, wrap, doc in M:
    if wrap == "None":
        body = f"        await {call}\n"
    else:
        body = f"        r = await {call}\n        return {wrap}\n"
    out.append(f'''
    async def {name}({sig(params)}) -> {rtype}:
        """{doc}"""
{body}''')

out.append('''

class GuardedCall:
    """A guarded call in progress (``Tracker.begin_call``): finish it exactly once."""

    def __init__(self, native: NativeCall) -> None:
        self._n = native

    @property
    def reservation_id(self) -> Optional[str]:
        """The reservation holding the estimate, when a quota applied."""
        return self._n.reservation_id

    def first_token(self) -> None:
        """Marks the first token's arrival (a stream's latency)."""
        self._n.first_token()

    def succeed(self, response: Any) -> List[Recorded]:
        """Records the usage in the provider's response (dict or SDK object), drops the hold."""
        return [_build(Recorded, x) for x in self._n.succeed(response)]

    def fail(self, error_type: str, message: str) -> Recorded:
        """Records the call as failed and drops the hold."""
        return _build(Recorded, self._n.fail(error_type, message)[0])


class AsyncGuardedCall:
    """A guarded call in progress (``AsyncTracker.begin_call``): finish it exactly once."""

    def __init__(self, native: NativeCall) -> None:
        self._n = native

    @property
    def reservation_id(self) -> Optional[str]:
        """The reservation holding the estimate, when a quota applied."""
        return self._n.reservation_id

    def first_token(self) -> None:
        """Marks the first token's arrival (a stream's latency)."""
        self._n.first_token()

    async def succeed(self, response: Any) -> List[Recorded]:
        """Records the usage in the provider's response (dict or SDK object), drops the hold."""
        return [_build(Recorded, x) for x in await self._n.succeed(response)]

    async def fail(self, error_type: str, message: str) -> Recorded:
        """Records the call as failed and drops the hold."""
        return _build(Recorded, (await self._n.fail(error_type, message))[0])
''')
text = "".join(out)
if "--check" in sys.argv:
    if TARGET.read_text() != text:
        sys.exit(f"{TARGET} is stale: run {Path(__file__).name}")
else:
    TARGET.write_text(text)
