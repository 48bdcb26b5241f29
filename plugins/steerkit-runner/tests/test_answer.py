"""The report of a run with a dev split: each unit reported on its test inputs at the α its dev
inputs chose, every mean with a bootstrap interval, the paired difference to the best baseline,
and an opening answer in words — checked against numbers computed here by hand."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np
import pytest
from steerkit_runner.report import write_report
from steerkit_runner.table import bootstrap_interval, comparison_table

HASH = "feed0123"
GRID = (0.5, 1.0, 2.0)
DEV, TEST = range(0, 4), range(4, 44)
# unit → (family, chosen α, the test aggregate's centre)
UNITS = {
    ("qp", "path", "lam", 0.1): ("optimal", 2.0, 0.70),
    ("socp", "path", "eps", 120.0): ("optimal", 1.0, 0.55),
    ("caa_mean_diff", None, None, None): ("baseline", 2.0, 0.50),
    ("random_direction", None, None, None): ("baseline", 0.5, 0.20),
    ("no_steering", None, None, None): ("control", 1.0, 0.15),
}
COLUMNS = [
    {"name": "concept", "header": "concept", "better": "higher", "format": ".3f"},
    {"name": "fluency", "header": "fluency", "better": "higher", "format": ".3f"},
    {"name": "aggregate", "header": "aggregate", "better": "higher", "format": ".3f"},
    {"name": "probe_shift", "header": "Δ probe", "better": "higher", "role": "effect"},
    {"name": "norm", "header": "norm", "better": "lower", "role": "cost"},
]


def _records() -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    records = []
    for unit, (_family, chosen, centre) in UNITS.items():
        method, solver, param, value = unit
        steps = [(a, DEV) for a in GRID] + [(chosen, TEST)]
        for alpha, ids in steps:
            for i in ids:
                # on dev, the chosen α has the best aggregate by construction
                level = centre if alpha == chosen else centre - 0.2
                fluency = float(np.clip(rng.normal(0.8, 0.05), 0.01, 1))
                concept = float(np.clip(rng.normal(level, 0.1), 0.01, 0.99))
                records.append(
                    {
                        "config_hash": HASH,
                        "method": method,
                        "solver": solver,
                        "param": param,
                        "value": value,
                        "alpha": alpha,
                        "input_id": i,
                        "split": "dev" if i < 4 else "test",
                        "status": "optimal" if solver else "ok",
                        "shared": False,
                        "support": [1, 2] if solver else None,
                        "concept": concept,
                        "fluency": fluency,
                        "aggregate": 2 * concept * fluency / (concept + fluency),
                        "probe_shift": float(alpha * rng.uniform(0.2, 0.4)),
                        "norm": float(alpha * 10.0),
                    }
                )
    return records


def _run(tmp_path: pathlib.Path) -> pathlib.Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = {
        "config_hash": HASH,
        "name": "protocol",
        "status": "complete",
        "columns": COLUMNS,
        "methods": {unit[0]: {"name": unit[0], "family": f} for unit, (f, _, _) in UNITS.items()},
        "evaluation": {"concept": "vader_concept", "fluency": "fluency"},
        "dev": 4,
    }
    (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    lines = "".join(json.dumps(r) + "\n" for r in _records())
    (run_dir / "results.jsonl").write_text(lines, encoding="utf-8")
    return run_dir


def _families() -> dict[str, str]:
    return {unit[0]: family for unit, (family, _, _) in UNITS.items()}


def test_bootstrap_interval_agrees_with_scipy() -> None:
    from scipy import stats

    data = np.random.default_rng(0).normal(0.5, 1.0, size=40)
    low, high = bootstrap_interval(list(data), "key")
    assert bootstrap_interval(list(data), "key") == (low, high)  # seeded by the key
    oracle = stats.bootstrap((data,), np.mean, n_resamples=20000, method="percentile", rng=1)
    assert low == pytest.approx(oracle.confidence_interval.low, abs=0.04)
    assert high == pytest.approx(oracle.confidence_interval.high, abs=0.04)
    assert math.isnan(bootstrap_interval([1.0, math.nan], "k")[0])  # one value: no interval


def test_units_are_reported_on_test_inputs_at_the_chosen_alpha_with_paired_differences() -> None:
    records = _records()
    table = {e["method"]: e for e in comparison_table(records, None, _families())}
    best = max(
        (u for u, (f, _, _) in UNITS.items() if f == "baseline"),
        key=lambda u: table[u[0]]["aggregate"],
    )
    assert best[0] == "caa_mean_diff"
    reference = {
        r["input_id"]: r["aggregate"]
        for r in records
        if r["method"] == best[0] and r["split"] == "test"
    }
    for unit, (_family, chosen, _) in UNITS.items():
        entry = table[unit[0]]
        test = [r for r in records if r["method"] == unit[0] and r["split"] == "test"]
        assert entry["alpha"] == chosen and entry["n_inputs"] == len(TEST)
        assert entry["aggregate"] == pytest.approx(np.mean([r["aggregate"] for r in test]))
        low, high = entry["aggregate_ci"]
        assert low < entry["aggregate"] < high
        diffs = [r["aggregate"] - reference[r["input_id"]] for r in test]
        assert entry["vs_best_baseline"] == pytest.approx(np.mean(diffs))
        assert entry["best_baseline"] == "caa_mean_diff"
    assert table["caa_mean_diff"]["vs_best_baseline"] == 0.0
    assert table["qp"]["vs_best_baseline_ci"][0] > 0  # 0.70 vs 0.50 on 40 prompts: clear


def test_the_report_opens_with_the_answer(tmp_path: pathlib.Path) -> None:
    report = write_report(_run(tmp_path)).read_text(encoding="utf-8")
    answer = report[report.index("## The answer") : report.index("| status |")]
    table = {e["method"]: e for e in comparison_table(_records(), None, _families())}
    qp = table["qp"]
    assert "**qp · path · λ=0.1** (α = 2) has the highest aggregate" in answer
    assert f"{qp['aggregate']:.3f} [{qp['aggregate_ci'][0]:.3f}, {qp['aggregate_ci'][1]:.3f}]" in (
        answer
    )
    assert "on 40 test prompts" in answer and "on 4 dev prompts" in answer
    assert "`vader\\_concept`" in answer  # the judge named
    assert "The best baseline is **caa\\_mean\\_diff**" in answer
    low, high = qp["vs_best_baseline_ci"]
    assert f"{qp['vs_best_baseline']:+.3f} [{low:+.3f}, {high:+.3f}]" in answer
    assert "**yes**: the interval lies above 0" in answer
    control = table["no_steering"]
    assert f"Unsteered generations score concept {control['concept']:.3f}" in answer
    assert "![concept against fluency across α](concept_fluency.png)" in report
    assert (tmp_path / "run" / "report" / "concept_fluency.png").read_bytes()[:4] == b"\x89PNG"
    assert "### Every mean with its 95% interval" in report


def test_an_undistinguishable_difference_is_said_plainly(tmp_path: pathlib.Path) -> None:
    records = [r for r in _records() if r["method"] != "qp"]  # socp 0.55 vs caa 0.50: close
    run_dir = _run(tmp_path)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = write_report(run_dir).read_text(encoding="utf-8")
    entry = {e["method"]: e for e in comparison_table(records, None, _families())}["socp"]
    low, high = entry["vs_best_baseline_ci"]
    verdict = (
        "**yes**" if low > 0 else ("**no, it is worse**" if high < 0 else "**not distinguishable**")
    )
    assert verdict in report


def test_methods_with_equal_fluency_are_answered_not_compared_as_rows() -> None:
    # the default run gave several units exactly the same mean fluency (sorting the rows as a
    # tie-break raised TypeError and lost the report)
    from steerkit_runner.answer import _cost

    scored = [
        {"method": m, "solver": None, "param": None, "value": None, "alpha": 1.0, "fluency": f}
        for m, f in (("a", 0.5), ("b", 0.5), ("c", 0.25))
    ]
    control = [{"fluency": 0.75}]
    (line,) = _cost(scored, control)
    assert "by -0.500 (**c** (α = 1)) to -0.250 (" in line


def test_the_answer_counts_the_prompts_judged_not_the_inputs_steered(
    tmp_path: pathlib.Path,
) -> None:
    # the default run judges only the first inputs' generations: the others have no score
    records = _records()
    for r in records:
        if r["split"] == "test" and r["input_id"] >= 14:
            r["concept"] = r["fluency"] = r["aggregate"] = math.nan
    run_dir = _run(tmp_path)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = write_report(run_dir).read_text(encoding="utf-8")
    assert "on 10 test prompts" in report and "on 40 test prompts" not in report
