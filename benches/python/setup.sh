#!/usr/bin/env bash
# Creates the bench's own virtual environment (benches/python/.venv, ignored by git) with the
# tools compared (LiteLLM, genai-prices, tokencost) and a release build of usage_core.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "maturin>=1.9.4,<2" litellm genai-prices tokencost anthropic
(cd "$root/bindings-python" && VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --release --quiet)
echo "ready: $venv/bin/python $here/bench.py"
