#!/usr/bin/env bash
# Create .venv in the repository root if it is missing and install promptlearning into it.
# torch is pinned (TORCH_SPEC, default torch==2.13.0, the CPU build); people with GPUs can set
# e.g. TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or TORCH_SPEC changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in $venv" >&2
  "$PYTHON" -m venv "$venv"
fi
stamp="$venv/.promptlearning-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $TORCH_SPEC ${TORCH_INDEX_URL:-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip_quiet=(--disable-pip-version-check -q)
echo "[setup] installing $TORCH_SPEC" >&2
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "$venv/bin/python" -m pip install "${pip_quiet[@]}" "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
else
  "$venv/bin/python" -m pip install "${pip_quiet[@]}" "$TORCH_SPEC"
fi
echo "[setup] installing promptlearning (editable) with its dev tools, plots, the PEFT, serve, ray, tune and vision extras" >&2
# the constraint keeps pip from replacing the pinned torch while resolving transformers/accelerate
constraint="$(mktemp)"
"$venv/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$constraint"
"$venv/bin/python" -m pip install "${pip_quiet[@]}" -c "$constraint" -e ".[dev,plots,peft,serve,ray,tune,vision]"
rm -f "$constraint"
echo "$want" > "$stamp"
