#!/usr/bin/env bash
# Creates/updates the project env in .venv with uv. Idempotent and fast when nothing changed.
# Uses a local CPU torch wheel folder when pip's config names one (avoids GBs of CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || python3 -m pip install -q uv
[ -x .venv/bin/python ] || uv venv -q --python 3.11 .venv
extras="${TESSY_EXTRAS:-dev}"
args=()
links_dir="$(python3 -m pip config get global.find-links 2>/dev/null || true)"
if [ -n "$links_dir" ] && [ -d "$links_dir" ] && ls "$links_dir"/torch-*+cpu-*.whl >/dev/null 2>&1; then
  echo "torch==2.13.0+cpu" > .venv/constraints.txt
  args+=(--find-links "$links_dir" -c .venv/constraints.txt)
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras-pyc
if [ ! -f "$stamp" ]; then
  uv pip install -q --python .venv/bin/python "${args[@]}" -e ".[$extras]"
  # Bytecode for every installed module, written once: where PYTHONDONTWRITEBYTECODE is set (as on
  # these machines) Python would otherwise compile torch, transformers, pandas... at every start.
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3.*/site-packages >/dev/null 2>&1 || true
  touch "$stamp"
fi
