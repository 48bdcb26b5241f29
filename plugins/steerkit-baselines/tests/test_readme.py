"""The README's `# test: run` examples run, in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_torch, pytest.mark.needs_plugins]

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [
    m.group(1)
    for m in re.finditer(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    if m.group(1).startswith("# test: run")
]


def test_the_readme_has_runnable_examples() -> None:
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("code", BLOCKS, ids=["arrays", "model"])
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    assert "assert " in code
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**__import__("os").environ, "STEERKIT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
