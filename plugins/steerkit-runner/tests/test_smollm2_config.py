"""The shipped SmolLM2-135M-Instruct config (Hugging Face source, chat template, the SAE steerkit
trains for it) on the real offline model, cut down to a few units (slow: the first run trains the
SAE, about 20 minutes on 2 CPU cores; later runs load it from the cache)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
from steerkit_runner.config import load_config
from steerkit_runner.runner import run

pytestmark = [pytest.mark.slow, pytest.mark.needs_plugins, pytest.mark.needs_torch]

CONFIG = "smollm2-135m-instruct-offline-sentiment"


def test_a_cut_down_smollm2_run_on_the_real_model(tmp_path: Path) -> None:
    config = load_config(CONFIG)
    assert config.source.name == "huggingface" and config.source.params["sae"] == "offline"
    keep = {"qp", "no_steering", "caa_mean_diff"}
    methods = tuple(
        attrs.evolve(m, grid=m.grid[:1]) if m.grid else m for m in config.methods if m.name in keep
    )
    config = attrs.evolve(
        config,
        methods=methods,
        steering=attrs.evolve(
            config.steering, alphas=(1.0,), max_inputs=4, dev=2, max_new_tokens=4
        ),
    )
    result = run(config, output_dir=tmp_path, progress=False, report=False)
    assert not result.failed_units and result.rows == len(methods) * 4
    rows = result.read_rows()
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["source"]["name"] == "huggingface"
    assert info["source"]["params"]["pretrained"] == "smollm2-135m-instruct-offline"
    assert info["probe"]["accuracy_test"] > 0.8 and info["sae"]["d_sae"] > 0
    qp = [r for r in rows if r["method"] == "qp"]
    assert all(r["status"] == "optimal" and r["flipped"] == 1.0 for r in qp)
    assert all(
        r["kl"] == pytest.approx(0.0, abs=1e-6) for r in rows if r["method"] == "no_steering"
    )
    assert np.isfinite(qp[0]["perplexity"])
