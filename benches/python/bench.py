"""usage_core from Python against the tools people use today, in one run on one machine.

1. cost(): median time per call for usage_core.cost, LiteLLM's cost_per_token, genai-prices'
   calc_price and tokencost, on the same inputs (gpt-4o, 1,000 prompt + 500 completion tokens),
   with the totals each one returns.
2. import time: `import X` in a fresh interpreter, median of several runs.
3. wrapper overhead: the same Anthropic SDK call made through a plain client and through
   tracker.wrap(client), both on an in-process HTTP transport that answers at once (so the
   "provider" time is the SDK's own work, identical for both); overhead = median(wrapped) −
   median(plain), calls interleaved, recording batched (no quota applies, so events go to the
   batched writer of a SQLite store).

Run benches/python/setup.sh first, then benches/python/.venv/bin/python benches/python/bench.py.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# LiteLLM otherwise fetches its price map from the network at import; this machine (like many
# production ones) has none, so use the copy it ships, as its docs recommend.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from typing import Any, Callable, Dict, List, Optional, Tuple

MODEL = "gpt-4o"
PROMPT, COMPLETION = 1_000, 500


def per_call(fn: Callable[[], Any], *, batch: int, rounds: int) -> float:
    """Median over `rounds` of the mean time per call in a batch of `batch` calls, in seconds."""
    for _ in range(min(batch, 200)):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) / batch)
    return statistics.median(samples)


def fmt(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def bench_cost() -> List[Tuple[str, float, str]]:
    import usage_core as uc

    rows: List[Tuple[str, float, str]] = []
    usage = uc.TokenUsage(input=PROMPT, output=COMPLETION)
    total = str(uc.cost(MODEL, usage).total)
    rows.append(("usage_core.cost(model, TokenUsage)", per_call(lambda: uc.cost(MODEL, usage), batch=20_000, rounds=15), total))
    d = {"input": PROMPT, "output": COMPLETION}
    rows.append(("usage_core.cost(model, dict)", per_call(lambda: uc.cost(MODEL, d), batch=20_000, rounds=15), total))
    rows.append(("usage_core.cost(...).total (Decimal)", per_call(lambda: uc.cost(MODEL, usage).total, batch=20_000, rounds=15), total))

    try:
        import litellm

        f = lambda: litellm.cost_per_token(model=MODEL, prompt_tokens=PROMPT, completion_tokens=COMPLETION)
        p, c = f()
        rows.append(("litellm.cost_per_token", per_call(f, batch=500, rounds=9), repr(p + c)))
    except Exception as e:  # report, do not hide
        rows.append((f"litellm.cost_per_token (failed: {e!r})", float("nan"), ""))
    try:
        from genai_prices import Usage, calc_price

        u = Usage(input_tokens=PROMPT, output_tokens=COMPLETION)
        g = lambda: calc_price(u, model_ref=MODEL, provider_id="openai")
        rows.append(("genai_prices.calc_price", per_call(g, batch=500, rounds=9), str(g().total_price)))
    except Exception as e:
        rows.append((f"genai_prices.calc_price (failed: {e!r})", float("nan"), ""))
    try:
        import tokencost

        t = lambda: tokencost.calculate_cost_by_tokens(PROMPT, MODEL, "input") + tokencost.calculate_cost_by_tokens(COMPLETION, MODEL, "output")
        rows.append(("tokencost.calculate_cost_by_tokens ×2", per_call(t, batch=5_000, rounds=9), str(t())))
    except Exception as e:
        rows.append((f"tokencost (failed: {e!r})", float("nan"), ""))
    return rows


def import_time(module: str, runs: int, then: str = "") -> Optional[float]:
    then = f"{then}; " if then else ""
    code = f"import time; t=time.perf_counter(); import {module}; {then}print(time.perf_counter()-t)"
    out = []
    for _ in range(runs):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        out.append(float(r.stdout.strip().splitlines()[-1]))
    return statistics.median(out)


def canned_answers() -> Callable[[], bytes]:
    """The provider's answer in the wrapper benches: one canned message, with a fresh id per
    call, so every recorded event is a new one, as in real traffic."""
    body = json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 0},
    }).encode()
    n = [0]

    def answer() -> bytes:
        n[0] += 1
        return body.replace(b"msg_bench", f"msg_{n[0]}".encode())

    return answer


def bench_wrapper() -> Dict[str, float]:
    import anthropic
    import httpx2

    import usage_core as uc

    answer = canned_answers()

    def handler(request: Any) -> Any:
        return httpx2.Response(200, content=answer(), headers={"content-type": "application/json"})

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    plain = anthropic.Anthropic(api_key="bench", http_client=http, max_retries=0)
    with tempfile.TemporaryDirectory() as tmp:
        tracker = uc.Tracker(f"sqlite://{tmp}/bench.db")
        wrapped = tracker.wrap(plain, user_id="bench-user", tags={"workflow": "bench"})
        msgs = [{"role": "user", "content": "Say hello in one word."}]
        call_plain = lambda: plain.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msgs)
        call_wrapped = lambda: wrapped.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msgs)
        plain_s, wrapped_s = [], []
        for _ in range(200):
            call_plain(); call_wrapped()
        for _ in range(21):
            plain_s.append(per_call(call_plain, batch=200, rounds=1))
            wrapped_s.append(per_call(call_wrapped, batch=200, rounds=1))
        tracker.flush()
        recorded = tracker.summary().totals.requests
        tracker.close()
    p, w = statistics.median(plain_s), statistics.median(wrapped_s)
    return {"plain": p, "wrapped": w, "overhead": w - p, "recorded": float(recorded)}


def bench_async_wrapper() -> Dict[str, float]:
    """`bench_wrapper` with `AsyncAnthropic` and an `AsyncTracker` (FastAPI's case): 15
    interleaved rounds of 200 awaited calls each."""
    import asyncio

    import anthropic
    import httpx2

    import usage_core as uc

    answer = canned_answers()

    async def handler(request: Any) -> Any:
        return httpx2.Response(200, content=answer(), headers={"content-type": "application/json"})

    async def run() -> Dict[str, float]:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        plain = anthropic.AsyncAnthropic(api_key="bench", http_client=http, max_retries=0)
        with tempfile.TemporaryDirectory() as tmp:
            tracker = await uc.AsyncTracker.open(f"sqlite://{tmp}/bench.db")
            wrapped = tracker.wrap(plain, user_id="bench-user", tags={"workflow": "bench"})
            msgs = [{"role": "user", "content": "Say hello in one word."}]

            async def per_call(client: Any, batch: int) -> float:
                t0 = time.perf_counter()
                for _ in range(batch):
                    await client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msgs)
                return (time.perf_counter() - t0) / batch

            await per_call(plain, 200)
            await per_call(wrapped, 200)
            plain_s, wrapped_s = [], []
            for _ in range(15):
                plain_s.append(await per_call(plain, 200))
                wrapped_s.append(await per_call(wrapped, 200))
            await tracker.flush()
            recorded = (await tracker.summary()).totals.requests
            await tracker.close()
        p, w = statistics.median(plain_s), statistics.median(wrapped_s)
        return {"plain": p, "wrapped": w, "overhead": w - p, "recorded": float(recorded)}

    return asyncio.run(run())


def long_prompts() -> List[Tuple[str, Any]]:
    """Prompt parts a wrapped call counts before it reserves: a 50-turn conversation (about
    55 KB of text) and one 200 KB document."""
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "lorem ipsum dolor sit amet " * 40} for i in range(50)]
    doc = [{"role": "user", "content": [{"type": "text", "text": "x" * 200_000}]}]
    return [("50-turn conversation (55 KB)", [None, turns, None]), ("one 200 KB document", [None, doc, None])]


def main() -> None:
    import platform

    import usage_core as uc

    print(f"# usage_core {uc.__version__} (catalog {uc.CATALOG_VERSION}), Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores\n")
    print("## cost() per call (gpt-4o, 1,000 in + 500 out)\n")
    rows = bench_cost()
    base = rows[0][1]
    print("| call | median per call | vs usage_core.cost | total returned |")
    print("|---|---|---|---|")
    for name, s, total in rows:
        ratio = "—" if s != s else f"{s / base:.1f}×"
        print(f"| {name} | {fmt(s) if s == s else 'n/a'} | {ratio} | {total} |")

    print("\n## import time (fresh interpreter, median)\n")
    print("| module | median |")
    print("|---|---|")
    for module, runs, then, label in (
        ("usage_core", 15, "", "import usage_core"),
        ("usage_core", 15, "usage_core.Tracker", "import usage_core; usage_core.Tracker (everything loaded)"),
        ("genai_prices", 5, "", "import genai_prices"),
        ("tokencost", 3, "", "import tokencost"),
        ("litellm", 3, "", "import litellm"),
    ):
        t = import_time(module, runs, then)
        print(f"| `{label}` ({runs} runs) | {fmt(t) if t is not None else 'not installed'} |")

    print("\n## prompt count before a wrapped call reserves (median per call)\n")
    from usage_core._native import approx_prompt_tokens

    print("| prompt | median | tokens |")
    print("|---|---|---|")
    for label, parts in long_prompts():
        t = per_call(lambda: approx_prompt_tokens(parts), batch=500, rounds=9)
        print(f"| {label} | {fmt(t)} | {approx_prompt_tokens(parts)} |")

    for title, run in (
        ("anthropic messages.create, batched recording to SQLite", bench_wrapper),
        ("async: AsyncAnthropic, AsyncTracker, batched recording to SQLite", bench_async_wrapper),
    ):
        print(f"\n## wrapper overhead ({title})\n")
        w = run()
        print("| | median per call |")
        print("|---|---|")
        print(f"| plain client (SDK + in-process transport) | {fmt(w['plain'])} |")
        print(f"| wrapped client | {fmt(w['wrapped'])} |")
        print(f"| **overhead** | **{fmt(w['overhead'])}** |")
        print(f"\n(events recorded by the wrapped client: {int(w['recorded'])})")


if __name__ == "__main__":
    main()
