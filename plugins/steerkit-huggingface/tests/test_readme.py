"""The README's runnable example runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from steerkit.testing.examples import run_example, runnable_examples

BLOCKS = runnable_examples(Path(__file__).parent.parent / "README.md")


def test_the_readme_has_an_example() -> None:
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    run_example(code, tmp_path)
