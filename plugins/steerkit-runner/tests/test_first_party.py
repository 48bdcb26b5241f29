"""A tiny run through every first-party method and metric, found through their entry points."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner.runner import run

import steerkit

from .conftest import TINY_CONFIG, ToyPlugin

pytestmark = [pytest.mark.needs_plugins, pytest.mark.needs_torch]

BASELINES = (
    "no_steering",
    "random_direction",
    "caa_mean_diff",
    "caa_contrastive",
    "caa_repe",
    "single_feature",
    "topk_features",
)
METRICS = ("probe_shift", "sparsity", "norm", "kl", "perplexity", "classifier", "solve_time")


@pytest.fixture
def installed_host() -> Iterator[steerkit.PluginHost]:
    """Every installed plugin, plus the toy dataset registered inline."""
    host = steerkit.PluginHost(plugins=[("toy", ToyPlugin())])
    with steerkit.use_host(host):
        yield host


def test_every_first_party_method_and_metric_in_one_tiny_run(
    installed_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    registered = installed_host.registry("steering_method").names()
    missing = [m for m in (*BASELINES, "qp", "socp", "shared") if m not in registered]
    if missing:
        pytest.skip(f"first-party methods not installed: {missing}")
    head, _, _ = TINY_CONFIG.partition("[[methods]]")
    # on a random tiny SAE the top-k features may point away from the probe: keep the raw
    # direction rather than scale it to the margin (which the baseline rightly refuses then)
    methods = "".join(f'[[methods]]\nname = "{m}"\n\n' for m in BASELINES)
    methods = methods.replace('"topk_features"\n', '"topk_features"\nnormalize = "unit"\n')
    methods += '[[methods]]\nname = "qp"\nsolver = "path"\nlam = [1.0]\n\n'
    methods += '[[methods]]\nname = "socp"\nsolver = "path"\neps = [50.0]\n\n'
    methods += '[[methods]]\nname = "shared"\nsolver = "path"\n\n'
    metrics = ", ".join(f'"{m}"' for m in METRICS)
    text = head + methods + f"[evaluation]\nmetrics = [{metrics}]\n"
    result = run(write_config(text), source=tiny_source, report=False, progress=False)

    assert not result.failed_units, result.failed_units
    rows = result.read_rows()
    assert len(rows) == 10 * 2 * 6
    columns = {
        "p_before", "p_after", "probe_shift", "flipped", "l0", "l1", "norm", "kl",
        "perplexity", "base_perplexity", "classifier_target", "classifier_base", "solve_seconds",
    }  # fmt: skip
    assert all(columns <= set(r) for r in rows)
    none = [r for r in rows if r["method"] == "no_steering"]
    assert all(r["kl"] == pytest.approx(0.0, abs=1e-6) for r in none)
    assert all(r["probe_shift"] == pytest.approx(0.0, abs=1e-9) for r in none)
    qp = [r for r in rows if r["method"] == "qp"]
    assert all(r["l0"] == len(r["support"]) for r in qp)
    moved = [r for r in qp if r["l0"] > 0]
    assert moved and all(r["kl"] > 0 for r in moved)
    assert all(math.isnan(r["l0"]) for r in rows if r["method"] == "caa_mean_diff")
    with_text = [r for r in rows if r["input_id"] < 2]
    assert all(np.isfinite(r["perplexity"]) for r in with_text)
    assert all(math.isnan(r["perplexity"]) for r in rows if r["input_id"] >= 2)


JUDGES = ("probe_shift", "vader", "textblob", "fluency", "readback", "heldout_probe")


def test_the_judges_of_generated_text_score_a_protocol_run(
    installed_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    registered = installed_host.registry("steering_method").names()
    if not {"no_steering", "caa_mean_diff", "qp"} <= set(registered):
        pytest.skip("first-party methods not installed")
    head, _, _ = TINY_CONFIG.partition("[[methods]]")
    head = head.replace("alphas = [0.5, 1.0]", "alphas = [1.0, 4.0]\ndev = 2")
    methods = '[[methods]]\nname = "no_steering"\n\n[[methods]]\nname = "caa_mean_diff"\n\n'
    methods += '[[methods]]\nname = "qp"\nsolver = "path"\nlam = [1.0]\n\n'
    metrics = ", ".join(f'"{m}"' for m in JUDGES)
    evaluation = (
        f"[evaluation]\nmetrics = [{metrics}]\n"
        'concept = "readback"\nfluency = "fluency_score"\n'
        "[evaluation.params.fluency]\nppl_low = 5.0\nppl_high = 500.0\n"
    )
    result = run(
        write_config(head + methods + evaluation), source=tiny_source, report=False, progress=False
    )
    assert not result.failed_units, result.failed_units
    rows = result.read_rows()
    problems = {r["message"] for r in rows if "metric" in (r["message"] or "")}
    assert rows and not problems, problems
    for r in rows:  # every input is generated (a dev split): every row is judged
        for column in ("vader", "textblob", "readback", "fluency_score", "repetition"):
            assert 0.0 <= r[column] <= 1.0, (column, r)
        c, f = r["readback"], r["fluency_score"]
        assert (r["concept"], r["fluency"]) == (c, f)
        assert r["aggregate"] == pytest.approx(0.0 if c * f == 0 else 2 * c * f / (c + f))
        assert np.isfinite(r["heldout_shift"])
    for r in (r for r in rows if r["method"] == "no_steering"):
        # the control's generation is the unsteered one, and nothing moves at the held-out layer
        assert r["readback"] == r["readback_base"] and r["vader"] == r["vader_base"]
        assert r["heldout_shift"] == 0.0
    moved = [r for r in rows if r["method"] == "qp" and abs(r["probe_shift"]) > 1e-3]
    assert moved and any(abs(r["heldout_shift"]) > 1e-6 for r in moved)
