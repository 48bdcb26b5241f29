"""The distribution as a plugin: found through its entry point, light to discover, and the
README's example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import steerkit

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [
    m.group(1)
    for m in re.finditer(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    if m.group(1).startswith("# test: run")
]
METRICS = [
    "classifier",
    "kl",
    "norm",
    "perplexity",
    "probe_shift",
    "solve_time",
    "sparsity",
    "vader",
    "textblob",
    "fluency",
    "readback",
    "heldout_probe",
    "truthfulqa_mc",
]


def test_every_metric_is_registered_through_the_entry_point() -> None:
    registry = steerkit.get_host().registry("metric")
    for name in METRICS:
        entry = registry.entry(name)
        assert entry.origin.distribution == "steerkit-metrics"
        assert issubclass(entry.obj, steerkit.Metric) and entry.obj.name == name
        entry.obj()  # constructed with no parameters, as the runner does by default


def test_the_llm_judge_is_registered_but_off_until_configured() -> None:
    entry = steerkit.get_host().registry("metric").entry("llm_judge")
    assert entry.origin.distribution == "steerkit-metrics"
    with pytest.raises(steerkit.ValidationError, match="base_url"):
        entry.obj()


def test_discovery_imports_nothing_heavy() -> None:
    code = (
        "import sys, steerkit_metrics, steerkit_metrics.plugin\n"
        "heavy = [m for m in ('sklearn', 'torch', 'transformer_lens', 'scipy', 'vaderSentiment', "
        "'textblob', 'nltk') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_readme_has_a_runnable_example() -> None:
    assert BLOCKS


@pytest.mark.needs_torch
@pytest.mark.parametrize("code", BLOCKS)
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    assert "assert " in code
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
