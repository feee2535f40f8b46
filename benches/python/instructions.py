"""Instructions the wrapper adds to a call on the calling thread, counted by callgrind: steadier
than wall-clock time on a shared machine. The SDK's `messages.create` is replaced by a function
returning a ready `Message` (a fresh id each time), so what is left is the wrapper's own work;
recording is batched, as in bench.py. Each client runs twice under callgrind (200 and 1,200
calls); per call = (the longer run's count - the shorter's) / 1,000, so start-up costs cancel.

    benches/python/.venv/bin/python benches/python/instructions.py     # needs valgrind

Set PYTHONPATH to measure another build of usage_core (e.g. a wheel unpacked with
`pip install --target`).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile

SHORT, LONG = 200, 1200


def workload(mode: str, n: int) -> None:
    import anthropic

    import usage_core as uc

    usage = {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 0, "service_tier": "standard",
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}
    # Built before counting starts to matter: the same number on both sides.
    msgs = iter([anthropic.types.Message.model_validate({
        "id": f"msg_{i}", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": usage}) for i in range(n)])
    anthropic.resources.messages.Messages.create = lambda self, **kw: next(msgs)  # type: ignore[method-assign]
    client = anthropic.Anthropic(api_key="bench")
    with tempfile.TemporaryDirectory() as tmp:
        tracker = uc.Tracker(f"sqlite://{tmp}/bench.db")
        target = tracker.wrap(client, user_id="bench-user", tags={"workflow": "bench"}) if mode == "wrapped" else client
        prompt = [{"role": "user", "content": "Say hello in one word."}]
        for _ in range(n):
            target.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=prompt)
        tracker.close()


def count(mode: str, n: int) -> int:
    """Instructions of the main thread of one run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--run", mode, str(n)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        main = sorted(glob.glob(out + "-01"))[0]
        with open(main) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary")


def main() -> None:
    per_call = {}
    for mode in ("plain", "wrapped"):
        per_call[mode] = (count(mode, LONG) - count(mode, SHORT)) / (LONG - SHORT)
        print(f"{mode}: {per_call[mode]:,.0f} instructions per call", flush=True)
    print(f"wrapper: {per_call['wrapped'] - per_call['plain']:,.0f} instructions per call")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        workload(sys.argv[2], int(sys.argv[3]))
    else:
        main()
