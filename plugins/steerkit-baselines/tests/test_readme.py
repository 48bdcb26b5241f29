"""The README's `# test: run` examples run, in a fresh interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from steerkit.testing import run_example, runnable_examples

pytestmark = [pytest.mark.needs_torch, pytest.mark.needs_plugins]

BLOCKS = runnable_examples(Path(__file__).resolve().parent.parent / "README.md")


def test_the_readme_has_runnable_examples() -> None:
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("code", BLOCKS, ids=["arrays", "model"])
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    run_example(code, tmp_path, env={"STEERKIT_CACHE_DIR": str(tmp_path / "cache")})
