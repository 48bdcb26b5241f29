"""Run a Markdown file's `# test: run` Python examples, each in a fresh interpreter.

A plugin's README examples are part of its documentation; its tests call these so that an
example that stops working fails the suite::

    BLOCKS = runnable_examples(Path(__file__).parent.parent / "README.md")

    @pytest.mark.parametrize("code", BLOCKS)
    def test_readme_example_runs(code, tmp_path):
        run_example(code, tmp_path)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_example", "runnable_examples"]

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def runnable_examples(markdown: Path) -> list[str]:
    """The ```python blocks of `markdown` whose first line is `# test: run`, in order."""
    text = markdown.read_text(encoding="utf-8")
    return [m.group(1) for m in _BLOCK.finditer(text) if m.group(1).startswith("# test: run")]


def run_example(
    code: str, cwd: Path, *, env: Mapping[str, str] | None = None, timeout: float = 120
) -> None:
    """Run `code` with this interpreter in `cwd`; fail with its output unless it exits 0.

    The example must check its own result: code without an `assert` is refused.
    """
    assert "assert " in code, "a runnable example must assert what it shows"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
