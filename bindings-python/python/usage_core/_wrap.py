"""``Tracker.wrap(client)``: record every Anthropic / OpenAI SDK call without changing it.

The wrapped client is a copy of the caller's (``client.with_options()``, sharing its HTTP
connection pool) of the very same class, whose call methods are replaced on the resource
instances only; everything else is untouched. Hooked: Anthropic ``messages.create``,
``.parse``, ``.stream`` and ``.batches.results``, the same under ``client.beta.messages``;
OpenAI ``chat.completions.create`` and ``.parse`` (also under ``client.beta.chat``) and
``responses.create`` and ``.parse``. The SDKs' ``.stream()`` helpers for OpenAI go through
``create``, and so do ``with_raw_response`` / ``with_streaming_response`` calls.

Each call: reserve the core's worst-case estimate against the quotas of its user and tags
(``QuotaExceededError`` before any request is sent), make the call, then record its usage with
latency through the core's ``CallGuard`` (batched writer when nothing is held), or record an
error event and release the hold when the call fails. Streams are followed event by event into
the core's ``StreamAccumulator``; a stream closed or dropped before its end is recorded with
the usage seen so far as an error (``stream_abandoned``), and its hold is released.

This module is imported on first use of ``wrap``, so ``import usage_core`` stays lean.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import weakref
from typing import Any, AsyncGenerator, AsyncIterator, Callable, Dict, Generator, Iterator, Optional, Set, Tuple

from ._errors import InvalidArgumentError, UsageError
from ._native import CallTemplate, NativeCall, NativeTracker, StreamAccumulator, approx_prompt_tokens

log = logging.getLogger("usage_core")

try:  # both SDKs build their responses with pydantic; this module loads when a client is wrapped
    from pydantic import BaseModel as _Model
except ImportError:  # pragma: no cover - a client from neither SDK is refused anyway
    _Model = ()  # type: ignore[assignment,misc]

# Request arguments holding the prompt, by API.
_PROMPT_KEYS = {
    "anthropic": ("system", "messages", "tools"),
    "openai.chat": ("messages", "tools", "functions"),
    "openai.responses": ("instructions", "input", "tools"),
}
# Request arguments bounding the output, by API (the first one given wins).
_MAX_KEYS = {
    "anthropic": ("max_tokens",),
    "openai.chat": ("max_completion_tokens", "max_tokens"),
    "openai.responses": ("max_output_tokens",),
}
# Stream events that carry identity, usage or an error (the others are text and tool deltas).
_USAGE_EVENTS = {
    "anthropic": {"message_start", "message_delta", "message_stop", "error"},
    "openai.responses": {
        "response.created",
        "response.completed",
        "response.failed",
        "response.incomplete",
        "error",
    },
}
_NOT_CONTENT = {"message_start", "ping", "response.created", "response.in_progress"}


def _int(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _error_type(e: BaseException) -> str:
    """The provider's error type when the SDK exception carries its body, else the class name."""
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return str(err["type"])
    return type(e).__name__


class _Recorder:
    """Identity, quota subjects and the native tracker shared by one wrapped client's hooks."""

    def __init__(
        self,
        native: NativeTracker,
        provider: str,
        user_id: Optional[str],
        tags: Optional[Dict[str, str]],
        identity: contextvars.ContextVar[Any],
    ) -> None:
        self.native = native
        self.provider = provider
        self.user_id = user_id
        self.tags = tags or {}
        self.identity = identity
        # Outside a `tracker.context(...)` block every call has the client's own user and tags:
        # converted once, not on every call (the wrapper's per-call cost counts).
        self._template: Optional[CallTemplate] = None

    def who(self) -> Tuple[Optional[str], Dict[str, str]]:
        ctx = self.identity.get()
        user = self.user_id if self.user_id is not None else (ctx.user_id if ctx else None)
        tags = dict(ctx.tags) if ctx else {}
        tags.update(self.tags)
        return user, tags

    def meta(self) -> Dict[str, Any]:
        user, tags = self.who()
        m: Dict[str, Any] = {"tags": tags}
        if user:
            m["user_id"] = user
        return m

    def begin(self, api: str, kwargs: Dict[str, Any]) -> Any:
        """Starts the guarded call for a request (a ``NativeCall``; on an async client an
        awaitable of one unless nothing was to be reserved): reserves its worst-case estimate
        when a quota applies (``QuotaExceededError`` here, before anything is sent)."""
        model = kwargs.get("model")
        if not isinstance(model, str):
            model = None
        # The SDKs' own helpers (`.stream()`, `.parse()`) pass every argument, the unset ones as
        # their `Omit`/`NotGiven` sentinels, which are falsy; so are the parts that count for
        # nothing (None, "", []).
        prompt = [v for v in (kwargs.get(k) for k in _PROMPT_KEYS[api]) if v]
        max_tokens = None
        for k in _MAX_KEYS[api]:
            max_tokens = _int(kwargs.get(k))
            if max_tokens is not None:
                break
        if self.identity.get() is None:
            if self._template is None:
                self._template = self.native.call_template(self.provider, meta=self.meta(), batched=True)
            return self._template.begin(model, prompt, max_tokens)
        meta = self.meta()
        if model:
            meta["model"] = model
        return self.native.begin_call(
            self.provider,
            model=model,
            prompt_tokens=approx_prompt_tokens(prompt),
            max_tokens=max_tokens,
            meta=meta,
            batched=True,
        )


class _Finisher:
    """Finishes one streamed call exactly once, whichever way the stream ends."""

    def __init__(self, call: NativeCall, acc: StreamAccumulator) -> None:
        self.call = call
        self.acc = acc
        self.done = False

    def claim(self) -> bool:
        if self.done:
            return False
        self.done = True
        return True

    def abandon(self) -> None:
        """The stream was closed or dropped before its end: record what was seen as an error,
        on the runtime without blocking (this may run in a finaliser)."""
        if self.claim():
            try:
                self.call.succeed_stream(
                    self.acc,
                    error_type="stream_abandoned",
                    error_message="the stream was closed before its end",
                    result=False,
                    background=True,
                )
            except Exception:  # pragma: no cover - only reached if the runtime is gone
                log.exception("usage_core: recording an abandoned stream failed")


def _wants(api: str, ev: Any, seen: bool) -> bool:
    if api == "openai.chat":
        return not seen or getattr(ev, "usage", None) is not None
    return getattr(ev, "type", None) in _USAGE_EVENTS[api]


def _is_content(api: str, ev: Any) -> bool:
    if api == "openai.chat":
        return bool(getattr(ev, "choices", None))
    return getattr(ev, "type", None) not in _NOT_CONTENT


def _is_usage_chunk(ev: Any) -> bool:
    return not getattr(ev, "choices", None) and getattr(ev, "usage", None) is not None


def _push(acc: StreamAccumulator, ev: Any) -> None:
    try:
        acc.push(ev)
    except UsageError:  # a malformed event leaves the accumulator as it was
        log.debug("usage_core: skipped an unreadable stream event", exc_info=True)


def _hook_sync_stream(obj: Any, call: NativeCall, provider: str, api: str, hide_usage: bool) -> Any:
    """Follows a sync SDK stream (anything iterating `self._iterator`) into the accumulator."""
    acc = StreamAccumulator(provider)
    fin = _Finisher(call, acc)
    inner: Iterator[Any] = obj._iterator

    def follow() -> Generator[Any, None, None]:
        seen = first = False
        try:
            for ev in inner:
                if _wants(api, ev, seen):
                    _push(acc, ev)
                seen = True
                if not first and _is_content(api, ev):
                    first = True
                    call.first_token()
                if hide_usage and _is_usage_chunk(ev):
                    continue
                yield ev
        except GeneratorExit:
            fin.abandon()
            raise
        except BaseException as e:
            if fin.claim():
                _quiet(call.succeed_stream, acc, error_type=_error_type(e), error_message=str(e), result=False)
            raise
        if fin.claim():
            _quiet(call.succeed_stream, acc, result=False)

    gen = follow()
    obj._iterator = gen
    close = obj.close

    def closing() -> None:
        gen.close()
        fin.abandon()
        close()

    obj.close = closing
    weakref.finalize(obj, fin.abandon)
    return obj


def _hook_async_stream(obj: Any, call: NativeCall, provider: str, api: str, hide_usage: bool) -> Any:
    """Follows an async SDK stream into the accumulator."""
    acc = StreamAccumulator(provider)
    fin = _Finisher(call, acc)
    inner: AsyncIterator[Any] = obj._iterator

    async def follow() -> AsyncGenerator[Any, None]:
        seen = first = False
        try:
            async for ev in inner:
                if _wants(api, ev, seen):
                    _push(acc, ev)
                seen = True
                if not first and _is_content(api, ev):
                    first = True
                    call.first_token()
                if hide_usage and _is_usage_chunk(ev):
                    continue
                yield ev
        except GeneratorExit:
            fin.abandon()
            raise
        except BaseException as e:
            if fin.claim():
                await _aquiet(call.succeed_stream, acc, error_type=_error_type(e), error_message=str(e), result=False)
            raise
        if fin.claim():
            await _aquiet(call.succeed_stream, acc, result=False)

    gen = follow()
    obj._iterator = gen
    close = obj.close

    async def closing() -> None:
        await gen.aclose()
        fin.abandon()
        await close()

    obj.close = closing
    weakref.finalize(obj, fin.abandon)
    return obj


def _body(resp: Any) -> Any:
    """The response object itself, or for ``with_raw_response`` / ``with_streaming_response``
    calls the SDK's parsed body or stream (or an awaitable of it): ``parse()`` caches what it
    returns, so the caller's own ``parse()`` gets the very same object (a stream hooked like any
    other) and the body is read once."""
    # A response model first: asking a pydantic model for an attribute it lacks costs a few
    # microseconds (its `__getattr__` builds an error), on every call.
    if isinstance(resp, _Model):
        return resp
    if hasattr(resp, "http_response") and callable(getattr(resp, "parse", None)):
        return resp.parse()
    return resp


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Records without ever breaking the caller's call: a recording failure is logged."""
    try:
        fn(*args, **kwargs)
    except UsageError:
        log.exception("usage_core: recording a call failed")


async def _aquiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        # A call with nothing to wait for (no hold, batched recording) is finished at once.
        done = fn(*args, **kwargs)
        if inspect.isawaitable(done):
            await done
    except UsageError:
        log.exception("usage_core: recording a call failed")


async def _started(begun: Any) -> NativeCall:
    """The call an async ``_Recorder.begin`` started: an awaitable of it, or the call itself
    when nothing was to be reserved."""
    return begun if isinstance(begun, NativeCall) else await begun


def _sync_create(rec: _Recorder, api: str, orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def create(*args: Any, **kwargs: Any) -> Any:
        hide = False
        if api == "openai.chat" and kwargs.get("stream") is True:
            opts = kwargs.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                kwargs["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                hide = True
        call: NativeCall = rec.begin(api, kwargs)
        try:
            resp = orig(*args, **kwargs)
        except BaseException as e:
            _quiet(call.fail, _error_type(e), str(e), result=False)
            raise
        try:
            body = _body(resp)
        except Exception as e:  # an unreadable raw body: the caller meets it in its own parse()
            _quiet(call.fail, _error_type(e), str(e), result=False)
            return resp
        if kwargs.get("stream") is True:
            _hook_sync_stream(body, call, rec.provider, api, hide)
        else:
            _quiet(call.succeed, body, False)  # result=False: nothing to convert back
        return resp

    return create


def _async_create(rec: _Recorder, api: str, orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def create(*args: Any, **kwargs: Any) -> Any:
        hide = False
        if api == "openai.chat" and kwargs.get("stream") is True:
            opts = kwargs.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                kwargs["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                hide = True
        # The common path (nothing reserved, batched recording) awaits nothing of ours: the
        # call starts and finishes in place, without a coroutine of its own for either step.
        begun = rec.begin(api, kwargs)
        call: NativeCall = begun if isinstance(begun, NativeCall) else await begun
        try:
            resp = await orig(*args, **kwargs)
        except BaseException as e:
            await _aquiet(call.fail, _error_type(e), str(e), result=False)
            raise
        try:
            body = _body(resp)
            if inspect.isawaitable(body):
                body = await body
        except Exception as e:
            await _aquiet(call.fail, _error_type(e), str(e), result=False)
            return resp
        if kwargs.get("stream") is True:
            _hook_async_stream(body, call, rec.provider, api, hide)
        else:
            try:
                done = call.succeed(body, result=False)
                if done is not None:
                    await done
            except UsageError:
                log.exception("usage_core: recording a call failed")
        return resp

    return create


_MANAGERS: Dict[type, type] = {}


def _tracked_manager(cls: type, is_async: bool) -> type:
    """A subclass of the SDK's stream manager whose ``__enter__`` reserves before the request
    and follows the stream it opens (so ``isinstance`` still holds)."""
    sub = _MANAGERS.get(cls)
    if sub is not None:
        return sub
    if is_async:

        async def __aenter__(self: Any) -> Any:
            rec, kwargs = self._usage_core
            call = await _started(rec.begin("anthropic", kwargs))
            try:
                ms = await cls.__aenter__(self)  # type: ignore[attr-defined]
            except BaseException as e:
                await _aquiet(call.fail, _error_type(e), str(e), result=False)
                raise
            _hook_async_stream(ms._raw_stream, call, rec.provider, "anthropic", False)
            return ms

        sub = type(cls.__name__, (cls,), {"__aenter__": __aenter__, "__module__": cls.__module__})
    else:

        def __enter__(self: Any) -> Any:
            rec, kwargs = self._usage_core
            call = rec.begin("anthropic", kwargs)
            try:
                ms = cls.__enter__(self)  # type: ignore[attr-defined]
            except BaseException as e:
                _quiet(call.fail, _error_type(e), str(e), result=False)
                raise
            _hook_sync_stream(ms._raw_stream, call, rec.provider, "anthropic", False)
            return ms

        sub = type(cls.__name__, (cls,), {"__enter__": __enter__, "__module__": cls.__module__})
    _MANAGERS[cls] = sub
    return sub


def _stream_method(rec: _Recorder, orig: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    @functools.wraps(orig)
    def stream(*args: Any, **kwargs: Any) -> Any:
        mgr = orig(*args, **kwargs)
        mgr.__class__ = _tracked_manager(type(mgr), is_async)
        mgr._usage_core = (rec, kwargs)
        return mgr

    return stream


def _batch_results(rec: _Recorder, orig: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """Each result line is recorded as it is read (succeeded ones with their usage; errored,
    canceled and expired ones as errors); reading the results twice records them once."""

    meta = rec.meta

    if is_async:

        @functools.wraps(orig)
        async def aresults(*args: Any, **kwargs: Any) -> Any:
            decoder = await orig(*args, **kwargs)
            inner = decoder._iterator

            async def follow() -> AsyncIterator[Any]:
                async for item in inner:
                    await _aquiet(rec.native.record_response, rec.provider, item, meta())
                    yield item

            decoder._iterator = follow()
            return decoder

        return aresults

    @functools.wraps(orig)
    def results(*args: Any, **kwargs: Any) -> Any:
        decoder = orig(*args, **kwargs)
        inner = decoder._iterator

        def follow() -> Iterator[Any]:
            for item in inner:
                _quiet(rec.native.record_response, rec.provider, item, meta())
                yield item

        decoder._iterator = follow()
        return decoder

    return results


# The providers whose responses each SDK returns: the SDK's own first, then those it reaches
# through another endpoint (Anthropic models on Bedrock or Vertex; OpenAI-compatible APIs).
_PROVIDERS = {
    "anthropic": ("anthropic", "bedrock", "vertex"),
    "openai": ("openai", "deepseek", "mistral", "xai"),
}


def wrap_client(
    native: NativeTracker,
    client: Any,
    *,
    user_id: Optional[str],
    tags: Optional[Dict[str, str]],
    identity: contextvars.ContextVar[Any],
    provider: Optional[str] = None,
) -> Any:
    family = type(client).__module__.split(".")[0]
    if family not in _PROVIDERS:
        raise TypeError(
            f"wrap() takes an anthropic.Anthropic/AsyncAnthropic or openai.OpenAI/AsyncOpenAI client, not {type(client).__name__}"
        )
    # Both SDKs build every client, Bedrock, Vertex and Azure ones included, on these bases
    # (`AsyncAPIClient`; the public async classes too, should a release rename that base).
    bases = {c.__name__ for c in type(client).__mro__}
    is_async = bool(bases & {"AsyncAPIClient", "AsyncAnthropic", "AsyncOpenAI"})
    if provider is None:
        provider = "bedrock" if "BaseBedrockClient" in bases else "vertex" if "BaseVertexClient" in bases else family
    if provider not in _PROVIDERS[family]:
        raise InvalidArgumentError(
            f"invalid argument `provider`: a {family} client's responses are priced as one of "
            f"{', '.join(_PROVIDERS[family])}, not {provider!r}",
            field="provider",
            reason=f"must be one of {', '.join(_PROVIDERS[family])}",
        )
    rec = _Recorder(native.flavour(is_async), provider, user_id, tags, identity)
    wrapped = client.with_options()
    make = _async_create if is_async else _sync_create
    beta = getattr(wrapped, "beta", None)
    hooked: Set[int] = set()

    def calls(resource: Any, api: str) -> bool:
        """Hooks a resource's calls once (False when it was already)."""
        if id(resource) in hooked:
            return False
        hooked.add(id(resource))
        # `parse` (structured output) posts the request itself rather than through `create`.
        for name in ("create", "parse"):
            orig = getattr(resource, name, None)
            if orig is not None:
                setattr(resource, name, make(rec, api, orig))
        return True

    if family == "anthropic":
        # `client.beta.messages` is a resource of its own (beta features, same responses).
        for messages in (wrapped.messages, getattr(beta, "messages", None)):
            if messages is None or not calls(messages, "anthropic"):
                continue
            messages.stream = _stream_method(rec, messages.stream, is_async)
            batches = getattr(messages, "batches", None)
            if batches is not None:
                batches.results = _batch_results(rec, batches.results, is_async)
    else:
        # `chat.completions.stream()` and `responses.stream()` go through `create`; older SDKs
        # keep `parse` and `stream` under `client.beta.chat`.
        for chat in (wrapped.chat, getattr(beta, "chat", None)):
            if chat is not None:
                calls(chat.completions, "openai.chat")
        calls(wrapped.responses, "openai.responses")

    copy = type(wrapped).copy

    def rewrap(*args: Any, **kwargs: Any) -> Any:
        return wrap_client(
            native, copy(wrapped, *args, **kwargs), user_id=user_id, tags=tags, identity=identity, provider=provider
        )

    wrapped.copy = rewrap
    wrapped.with_options = rewrap
    return wrapped
