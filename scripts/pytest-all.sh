#!/usr/bin/env bash
# One pytest run over the core's tests/ and every plugins/*/tests, with the Python in $PYTHON
# (default: python on PATH). Tests marked `slow` are left out unless --slow is given or
# STEERKIT_SLOW=1. Other arguments go to pytest.
# Exit status: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python}"

markers=(-m "not slow")
[[ "${STEERKIT_SLOW:-0}" == "1" ]] && markers=()
args=()
for arg in "$@"; do
    if [[ "$arg" == "--slow" ]]; then
        markers=()
    else
        args+=("$arg")
    fi
done

shopt -s nullglob
paths=(tests plugins/*/tests)

status=0
# importlib import mode: test modules of different plugins may share a name
"$python" -m pytest -p no:cacheprovider --import-mode=importlib \
    ${markers[@]+"${markers[@]}"} ${args[@]+"${args[@]}"} "${paths[@]}" || status=$?
if [[ $status -eq 5 ]]; then
    echo "pytest-all.sh: FAILED: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
