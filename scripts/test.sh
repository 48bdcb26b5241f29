#!/usr/bin/env bash
# The test command: set up .venv (scripts/setup.sh), then one pytest run over tests/ and every
# plugins/*/tests. `slow` tests are left out unless --slow (or STEERKIT_SLOW=1); other arguments
# go to pytest, e.g. `bash scripts/test.sh -k cli -x`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
PYTHON="$root/.venv/bin/python" exec bash "$root/scripts/pytest-all.sh" "$@"
