"""The shipped default config on the real offline Gemma-3-270M, cut down to a few units (slow:
the first run converts the model and trains its SAE; later runs take about a minute)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
from steerkit_runner.config import DEFAULT_CONFIG, load_config
from steerkit_runner.runner import run
from steerkit_runner.steer import steer_prompts

pytestmark = [pytest.mark.slow, pytest.mark.needs_plugins, pytest.mark.needs_torch]


def test_a_cut_down_default_run_on_the_real_model(tmp_path: Path) -> None:
    config = load_config(DEFAULT_CONFIG)
    keep = {"qp", "socp", "no_steering", "caa_mean_diff"}
    methods = tuple(
        attrs.evolve(m, grid=m.grid[:1]) if m.grid else m for m in config.methods if m.name in keep
    )
    config = attrs.evolve(
        config,
        methods=methods,
        steering=attrs.evolve(
            config.steering,
            alphas=(1.0,),
            max_inputs=6,
            dev=2,
            dev_new_tokens=None,
            max_new_tokens=4,
        ),
    )
    result = run(config, output_dir=tmp_path, progress=False, report=False)
    assert not result.failed_units and result.rows == len(methods) * 6
    rows = result.read_rows()
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["probe"]["accuracy_test"] > 0.8 and info["sae"]["d_sae"] > 0
    qp = [r for r in rows if r["method"] == "qp"]
    assert all(r["status"] == "optimal" and r["flipped"] == 1.0 for r in qp)
    assert all(
        r["kl"] == pytest.approx(0.0, abs=1e-6) for r in rows if r["method"] == "no_steering"
    )

    # the saved QP vector steers the model again from its sidecar alone
    vector_file = result.run_dir / "vectors" / "qp_lam1.0.safetensors"
    (out,) = steer_prompts(vector_file, [qp[0]["text"]], max_new_tokens=4)
    generations = [
        json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()
    ]
    saved = next(g for g in generations if g["method"] == "qp" and g["input_id"] == 0)
    assert (out.unsteered, out.steered) == (saved["base"], saved["steered"])
    assert np.isfinite(qp[0]["perplexity"])
