"""The runner end to end on the tiny TransformerLens model and SAE: what it writes, that an
interrupted run resumes without duplicating or losing a row, that failures are recorded."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner import runner as runner_module
from steerkit_runner.config import ConfigError, load_config
from steerkit_runner.results import RESULT_KEY, ResultsTable
from steerkit_runner.runner import RunResult, run, sweep
from steerkit_runner.vectors import load_vector, load_vectors, read_sidecar

import steerkit
from steerkit import SteerkitError

from . import conftest
from .conftest import HOOK, TINY_CONFIG, TinySentiment, ToyProbeShift

pytestmark = pytest.mark.needs_torch


def tiny_run(path: Path, source: Any, **kwargs: Any) -> RunResult:
    kwargs.setdefault("report", False)
    kwargs.setdefault("progress", False)
    return run(path, source=source, **kwargs)


def keys(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in RESULT_KEY) for r in rows]


def test_a_tiny_run_writes_results_run_json_vectors_and_generations(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    path = write_config()
    config = load_config(path)
    result = tiny_run(path, tiny_source)

    folder = result.run_dir
    assert folder == Path(config.run.output_dir) / f"tiny-{config.hash[:10]}"
    # units: toy_direction × 2 boosts + toy_shared + qp × 1 λ = 4 settings, × 2 α
    n = 6  # the negative test texts (n_test = 6 per class)
    assert (result.units_run, result.units_skipped, result.failed_units) == (8, 0, ())
    rows = ResultsTable(folder / "results.jsonl").rows
    assert len(rows) == result.rows == result.new_rows == 8 * n
    assert len(set(keys(rows))) == len(rows)
    assert {r["method"] for r in rows} == {"toy_direction", "toy_shared", "qp"}
    assert {r["label"] for r in rows} == {0} and all(r["config_hash"] == config.hash for r in rows)

    # the texts steered: the negative test texts, in split order
    splits = TinySentiment(n_test=6).load(seed=0, n_per_class=16)
    negatives = [t for t, y in zip(splits.test.texts, splits.test.labels) if y == 0]
    first = [r for r in rows if r["method"] == "toy_direction" and r["alpha"] == 1.0]
    assert [r["text"] for r in first[:n]] == negatives

    # the toy metric against an independent oracle: the probe refitted here, on activations
    # from a plain forward pass, at h + α·v
    from sklearn.linear_model import LogisticRegression

    def hidden(texts: Any) -> np.ndarray:
        model = tiny_source.model
        out = []
        for text in texts:
            _, cache = model.run_with_cache(model.to_tokens(text))
            out.append(cache[HOOK][0, -1].detach().numpy())
        return np.stack(out).astype(np.float64)

    oracle = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(
        hidden(splits.train.texts), splits.train.labels
    )
    h = hidden(negatives)
    w, b = oracle.coef_[0], oracle.intercept_[0]
    for alpha in (0.5, 1.0):
        got = sorted(
            (
                r
                for r in rows
                if r["method"] == "toy_direction" and r["value"] == 2.0 and r["alpha"] == alpha
            ),
            key=lambda r: r["input_id"],
        )
        # toy_direction adds boost · max(r, 0) · w/‖w‖² with r = margin − (w·h + b)
        r_needed = np.maximum(1.0 - (h @ w + b), 0.0)
        expected = 1 / (1 + np.exp(-(h @ w + b + alpha * 2.0 * r_needed)))
        np.testing.assert_allclose([g["p_after"] for g in got], expected, atol=2e-3)
        assert all(g["status"] == "ok" and g["shared"] is False for g in got)

    # QP rows carry the solver's status and the SAE support
    qp = [r for r in rows if r["method"] == "qp"]
    assert {r["status"] for r in qp} <= {"optimal"} and all(r["solver"] == "path" for r in qp)
    assert all(isinstance(r["support"], list) for r in qp)
    assert all(r["param"] == "lam" and r["value"] == 1.0 for r in qp)
    assert all(r["method_seconds"] >= 0 for r in qp)

    # generations: n_generate = 2 prompts per unit; the batch-level metric is repeated per row
    generations = [json.loads(x) for x in (folder / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == 8 * 2
    assert {g["input_id"] for g in generations} == {0, 1}
    assert all(g["prompt"] == negatives[g["input_id"]] for g in generations)
    base = tiny_source.generate([negatives[0]], max_new_tokens=3)[0]
    assert all(g["base"] == base for g in generations if g["input_id"] == 0)
    with_words = [r for r in rows if not math.isnan(r["generated_words"])]
    assert {r["input_id"] for r in with_words} == {0, 1}
    assert all(r["n_prompts"] == 2.0 for r in rows)

    # run.json
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "complete" and info["config_hash"] == config.hash
    assert info["n_inputs"] == n and info["hook_point"] == HOOK and info["layer"] == 1
    assert info["sae"]["d_sae"] == 64 and info["target_class"] == 1 and info["margin"] == 1.0
    assert info["probe"]["name"] == "logistic"
    assert info["probe"]["accuracy_train"] == pytest.approx(
        oracle.score(hidden(splits.train.texts), splits.train.labels), abs=1e-9
    )
    assert 0.0 <= info["probe"]["accuracy_test"] <= 1.0
    for stage in ("dataset", "source", "activations", "probe", "methods", "generation"):
        assert info["timings"][stage] >= 0.0
    assert (folder / "config.toml").read_text() == path.read_text()

    # vectors: one file per shared/baseline unit, input 0 and a stack for per-input ones
    files = sorted(p.name for p in (folder / "vectors").glob("*.safetensors"))
    assert files == [
        "qp_lam1.0.safetensors",
        "qp_lam1.0_inputs.safetensors",
        "toy_direction_boost1.0.safetensors",
        "toy_direction_boost1.0_inputs.safetensors",
        "toy_direction_boost2.0.safetensors",
        "toy_direction_boost2.0_inputs.safetensors",
        "toy_shared.safetensors",
    ]
    stack = load_vectors(folder / "vectors" / "qp_lam1.0_inputs")
    assert len(stack) == n
    sidecar = read_sidecar(folder / "vectors" / "qp_lam1.0")
    assert sidecar["config_hash"] == config.hash and sidecar["hook_point"] == HOOK
    assert sidecar["method"] == "qp" and sidecar["lam"] == 1.0 and sidecar["solver"] == "path"
    assert sidecar["support"] == qp[0]["support"] or sidecar["input_id"] == 0
    single = load_vector(folder / "vectors" / "qp_lam1.0")
    assert np.array_equal(single.vector, stack[0].vector) and single.layer == 1


def test_the_same_config_resumes_and_a_changed_one_gets_a_new_directory(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    path = write_config()
    first = tiny_run(path, tiny_source)
    before = (first.run_dir / "results.jsonl").read_bytes()
    again = tiny_run(path, tiny_source)
    assert again.run_dir == first.run_dir
    assert (again.units_run, again.units_skipped, again.new_rows) == (0, 8, 0)
    assert (first.run_dir / "results.jsonl").read_bytes() == before

    changed = write_config(TINY_CONFIG.replace("margin = 1.0", "margin = 1.5"), name="b.toml")
    other = tiny_run(changed, tiny_source)
    assert other.run_dir != first.run_dir and other.run_dir.parent == first.run_dir.parent

    fresh = tiny_run(path, tiny_source, resume=False)
    assert fresh.run_dir.name == first.run_dir.name + "-2" and fresh.units_run == 8


class Killed(BaseException):
    """Stands for the process being killed: not an Exception, so nothing records it."""


def test_a_run_killed_mid_way_resumes_without_duplicating_or_losing_rows(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = tiny_run(write_config(output="reference"), tiny_source).read_rows()

    path = write_config(output="killed")
    real = ToyProbeShift.compute
    calls = {"n": 0}

    def dies_on_the_fifth_unit(self: Any, context: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed
        return real(self, context)

    monkeypatch.setattr(ToyProbeShift, "compute", dies_on_the_fifth_unit)
    with pytest.raises(Killed):
        tiny_run(path, tiny_source)
    folder = runner_module.run_dir_for(load_config(path))
    partial = ResultsTable(folder / "results.jsonl").rows
    assert len(partial) == 4 * 6  # four complete units, nothing of the fifth
    assert json.loads((folder / "run.json").read_text())["status"] == "running"

    # and the last write was cut short as well
    with open(folder / "results.jsonl", "ab") as handle:
        handle.write(b'{"config_hash": "' + b"x" * 20)
    damaged = (folder / "results.jsonl").read_bytes()

    monkeypatch.setattr(ToyProbeShift, "compute", real)
    resumed = tiny_run(path, tiny_source)
    assert (resumed.units_skipped, resumed.units_run) == (4, 4)
    assert [s.line for s in resumed.skipped_lines] == [25]
    data = (folder / "results.jsonl").read_bytes()
    assert data.startswith(damaged)  # nothing rewritten
    rows = resumed.read_rows()
    got, want = keys(rows), keys(reference)
    assert len(got) == len(set(got)) == len(want)  # no duplicates, nothing lost
    assert sorted(got, key=repr) == sorted(want, key=repr)
    by_key = {k: r for k, r in zip(want, reference)}
    for k, r in zip(got, rows):
        assert r["p_after"] == pytest.approx(by_key[k]["p_after"], abs=1e-12)
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"
    generations = (folder / "generations.jsonl").read_text().splitlines()
    assert len(generations) == len(
        {tuple(json.loads(g)[c] for c in RESULT_KEY) for g in generations}
    )
    assert len(generations) == 8 * 2


def test_a_failing_unit_is_recorded_and_the_others_are_kept(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    text = TINY_CONFIG + '\n[[methods]]\nname = "toy_infeasible"\neps = [1.0]\n'
    with pytest.raises(ConfigError, match="does not take a parameter 'eps'"):
        tiny_run(write_config(text), tiny_source)  # found before anything runs
    path = write_config(TINY_CONFIG + '\n[[methods]]\nname = "toy_infeasible"\n', name="f.toml")
    result = tiny_run(path, tiny_source)
    assert len(result.failed_units) == 2 and "smallest feasible ε is 3" in result.failed_units[0]
    rows = result.read_rows()
    failed = [r for r in rows if r["method"] == "toy_infeasible"]
    assert len(failed) == 2 * 6 and {r["status"] for r in failed} == {"infeasible"}
    assert all("InfeasibleError: toy_infeasible" in r["message"] for r in failed)
    assert all(math.isnan(r["method_seconds"]) and r["support"] is None for r in failed)
    assert len(rows) == 10 * 6  # the other 8 units are all there

    raising = write_config(
        TINY_CONFIG.replace("[steering]\n", '[steering]\non_failure = "raise"\n')
        + '\n[[methods]]\nname = "toy_infeasible"\n',
        name="r.toml",
    )
    with pytest.raises(steerkit.InfeasibleError):
        tiny_run(raising, tiny_source)


def test_an_infeasible_input_of_the_socp_is_recorded_per_input(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    socp = '\n[[methods]]\nname = "socp"\nsolver = "path"\neps = [1e-3]\n'
    result = tiny_run(write_config(TINY_CONFIG + socp), tiny_source)
    rows = [r for r in result.read_rows() if r["method"] == "socp"]
    infeasible = [r for r in rows if r["status"] == "infeasible"]
    kept = [r for r in rows if r["status"] != "infeasible"]
    assert len(rows) == 2 * 6 and infeasible and not result.failed_units
    assert all(r["message"] and math.isnan(r["p_after"]) for r in infeasible)  # no vector
    # the inputs already past the margin need δ = 0: optimal, and evaluated
    assert all(r["status"] == "optimal" and r["support"] == [] for r in kept)
    assert all(r["probe_shift"] == 0.0 for r in kept)


def test_the_report_is_written_at_the_end(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import steerkit_runner.report

    seen: list[Path] = []

    def fake_report(run_dir: Path) -> Path:
        assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
        seen.append(run_dir)
        return run_dir / "report" / "report.md"

    monkeypatch.setattr(steerkit_runner.report, "write_report", fake_report)
    result = tiny_run(write_config(), tiny_source, report=True)
    assert seen == [result.run_dir] and result.report == result.run_dir / "report" / "report.md"


def test_the_sweep_runs_qp_and_socp_over_the_grids(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    path = write_config()
    result = sweep(path, source=tiny_source, report=False, progress=False)
    assert result.run_dir.name.startswith("tiny-sweep-")
    rows = result.read_rows()
    settings = {(r["method"], r["param"], r["value"], r["alpha"]) for r in rows}
    assert settings == {
        ("qp", "lam", 0.5, 1.0),
        ("qp", "lam", 2.0, 1.0),
        ("socp", "eps", 50.0, 1.0),
    }
    assert {c for r in rows for c in r} >= {"p_after", "probe_shift"}
    assert "generated_words" not in rows[0]  # the sweep's metrics only

    shared = sweep(path, mode="shared", source=tiny_source, report=False, progress=False)
    rows = shared.read_rows()
    assert {(r["method"], r["param"], r["value"]) for r in rows} == {
        ("shared", "lam", 0.5),
        ("shared", "lam", 2.0),
        ("shared", "eps", 50.0),
    }
    assert all(r["shared"] for r in rows) and shared.run_dir != result.run_dir
    # a larger λ penalises ‖Dᵀδ‖ more: the shared QP vector is no longer
    norms = {v: load_vector(shared.run_dir / "vectors" / f"shared_lam{v}").norm for v in (0.5, 2.0)}
    assert norms[2.0] <= norms[0.5] + 1e-9


def test_the_dataset_can_be_passed_in(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    text = TINY_CONFIG.replace('name = "tiny-sentiment"', 'name = "not-registered"')
    text = text.replace("n_test = 6\n", "")
    result = run(
        write_config(text),
        source=tiny_source,
        dataset=conftest.TinySentiment(n_test=4),
        report=False,
        progress=False,
    )
    assert result.rows == 8 * 4


def test_a_failing_generation_is_recorded_and_the_metrics_still_run(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the tokenizer fell over")

    monkeypatch.setattr(tiny_source, "generate", broken)
    result = tiny_run(write_config(), tiny_source)
    rows = result.read_rows()
    assert len(rows) == 8 * 6 and len(result.failed_units) == 8
    assert all("generation: ValueError: the tokenizer fell over" in r["message"] for r in rows)
    assert all(np.isfinite(r["p_after"]) for r in rows)  # the other metrics are there
    assert not (result.run_dir / "generations.jsonl").exists()


KILLED_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
import conftest
import steerkit
from steerkit import SteerkitError
from steerkit_runner.runner import run

def slow(self, context, real=conftest.ToyProbeShift.compute):
    time.sleep(0.4)
    return real(self, context)

conftest.ToyProbeShift.compute = slow
model, sae = conftest.tiny_model_and_sae()
from steerkit_transformerlens.source import TransformerLensSource
source = TransformerLensSource(model=model, sae=sae, hook_point=conftest.HOOK, cache=False,
                               progress=False)
with steerkit.use_host(steerkit.PluginHost(entry_points=False, plugins=conftest.toy_plugins())):
    run({config!r}, source=source, report=False, progress=False)
"""


def test_a_run_killed_by_a_signal_resumes_without_duplicating_or_losing_rows(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    reference = tiny_run(write_config(output="reference"), tiny_source).read_rows()
    path = write_config(output="killed")
    folder = runner_module.run_dir_for(load_config(path))
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), config=str(path))
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            table = folder / "results.jsonl"
            if table.exists() and len(table.read_bytes().splitlines()) >= 2 * 6:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    partial = ResultsTable(folder / "results.jsonl")
    assert 2 * 6 <= len(partial) < 8 * 6

    resumed = tiny_run(path, tiny_source)
    assert resumed.units_skipped == len(partial) // 6 and resumed.units_run > 0
    got, want = keys(resumed.read_rows()), keys(reference)
    assert len(got) == len(set(got)) and sorted(got, key=repr) == sorted(want, key=repr)


class SpySolver(steerkit.Solver):
    """The exact path solver under another name, counting its batches."""

    name = "spy-path"
    kinds = frozenset({steerkit.ProblemKind.QP, steerkit.ProblemKind.SOCP})
    batch = True
    calls = 0

    def solve(self, problem: Any, **options: Any) -> Any:
        return self.solve_batch([problem], **options)[0]

    def solve_batch(self, problems: Any, **options: Any) -> Any:
        from steerkit_path.solver import PathSolver

        type(self).calls += 1
        return PathSolver().solve_batch(problems, **options)


class SpyPlugin:
    @steerkit.hookimpl
    def register_solvers(self, register: Any) -> None:
        register(SpySolver)


def test_the_host_a_run_is_given_is_the_one_its_methods_solve_through(
    tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    host = steerkit.PluginHost(
        entry_points=False, plugins=[*conftest.toy_plugins(), ("spy", SpyPlugin())]
    )
    text = TINY_CONFIG.replace('solver = "path"', 'solver = "spy-path"')
    path = write_config(text)
    SpySolver.calls = 0
    # the process-wide host knows no "spy-path": only the host handed to run() does
    with steerkit.use_host(steerkit.PluginHost(entry_points=False, plugins=conftest.toy_plugins())):
        result = run(path, source=tiny_source, host=host, report=False, progress=False)
    qp = [r for r in result.read_rows() if r["method"] == "qp"]
    assert qp and {r["status"] for r in qp} == {"optimal"} and not result.failed_units
    assert SpySolver.calls == 1  # one batch for the unit's inputs, through the given host


def test_a_resumed_run_writes_lost_or_torn_vectors_again(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    import shutil

    path = write_config()
    first = tiny_run(path, tiny_source)
    folder = first.run_dir / "vectors"
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    rows = (first.run_dir / "results.jsonl").read_bytes()

    # a crash between the tensor and its sidecar, and a tensor torn by a non-atomic writer
    (folder / "qp_lam1.0.json").unlink()
    stack = folder / "toy_direction_boost2.0_inputs.safetensors"
    stack.write_bytes(stack.read_bytes()[:100])
    again = tiny_run(path, tiny_source)
    assert again.units_run == 0 and again.new_rows == 0  # nothing evaluated again
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved  # the same vectors back
    assert len(again.notes) == 2 and all("saved again" in n for n in again.notes)
    assert (first.run_dir / "results.jsonl").read_bytes() == rows

    shutil.rmtree(folder)  # a deleted vectors/ folder
    third = tiny_run(path, tiny_source)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved
    assert len(third.notes) == 4  # every unit with a vector: toy_direction × 2, toy_shared, qp
    assert not tiny_run(path, tiny_source).notes  # and then all is well


def test_a_run_that_fails_says_so_in_run_json(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from steerkit_probes.logistic import LogisticProbe

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the probe fell over")

    monkeypatch.setattr(LogisticProbe, "fit", broken)
    path = write_config()
    with pytest.raises(RuntimeError, match="the probe fell over"):
        tiny_run(path, tiny_source)
    info = json.loads((runner_module.run_dir_for(load_config(path)) / "run.json").read_text())
    assert info["status"] == "failed" and "RuntimeError: the probe fell over" in info["error"]


PROTOCOL = TINY_CONFIG.replace(
    "alphas = [0.5, 1.0]", "alphas = [0.5, 1.0, 2.0, 4.0]\ndev = 2"
).replace(
    'metrics = ["toy_probe_shift", "toy_generation"]',
    'metrics = ["toy_probe_shift", "toy_generation", "toy_scores"]\n'
    'concept = "toy_concept"\nfluency = "toy_fluency"',
)


def test_alpha_is_chosen_on_the_dev_inputs_and_reported_on_the_test_inputs(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    result = tiny_run(write_config(PROTOCOL), tiny_source)
    rows = result.read_rows()
    grid = (0.5, 1.0, 2.0, 4.0)
    assert {r["split"] for r in rows} == {"dev", "test"}
    for method in ("toy_direction", "toy_shared", "qp"):
        for value in {r["value"] for r in rows if r["method"] == method}:
            mine = [r for r in rows if r["method"] == method and r["value"] == value]
            dev = [r for r in mine if r["split"] == "dev"]
            test = [r for r in mine if r["split"] == "test"]
            assert {r["input_id"] for r in dev} == {0, 1}  # the first dev = 2 inputs
            assert {r["input_id"] for r in test} == {2, 3, 4, 5}
            assert sorted({r["alpha"] for r in dev}) == list(grid)  # every α on dev
            for r in dev + test:  # the aggregate is the harmonic mean of the named columns
                c, f = r["toy_concept"], r["toy_fluency"]
                assert (r["concept"], r["fluency"]) == (c, f)
                assert r["aggregate"] == pytest.approx(0.0 if c * f == 0 else 2 * c * f / (c + f))
            means = {a: np.mean([r["aggregate"] for r in dev if r["alpha"] == a]) for a in grid}
            best = max(grid, key=lambda a: (means[a], -a))
            assert {r["alpha"] for r in test} == {best}, (method, value, means)
    generated = {(g["method"], g["input_id"]) for g in map(json.loads, open_lines(result))}
    assert {i for _, i in generated} == set(range(6))  # every input is generated

    again = tiny_run(write_config(PROTOCOL, name="again.toml"), tiny_source)
    assert again.run_dir == result.run_dir and again.units_run == 0 and again.new_rows == 0
    info = json.loads((result.run_dir / "run.json").read_text())
    assert [c["name"] for c in info["columns"][:3]] == ["concept", "fluency", "aggregate"]


def open_lines(result: RunResult) -> list[str]:
    return (result.run_dir / "generations.jsonl").read_text().splitlines()


def test_a_dev_split_needs_scores_and_test_inputs(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> None:
    text = TINY_CONFIG.replace("alphas = [0.5, 1.0]", "alphas = [0.5, 1.0]\ndev = 2")
    with pytest.raises(ConfigError, match=r"steering\.dev: a dev split chooses α"):
        load_config(write_config(text))
    wrong = PROTOCOL.replace('concept = "toy_concept"', 'concept = "p_after"')
    with pytest.raises(ConfigError, match=r"evaluation\.concept: 'p_after' is not a column"):
        tiny_run(write_config(wrong, name="w.toml"), tiny_source)
    every = PROTOCOL.replace("dev = 2", "dev = 6")
    with pytest.raises(SteerkitError, match="the test inputs would be none"):
        tiny_run(write_config(every, name="e.toml"), tiny_source)


def test_a_zero_vector_reuses_the_unsteered_continuation(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    real = tiny_source.generate

    def counting(prompts: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("vector"))
        return real(prompts, **kwargs)

    monkeypatch.setattr(tiny_source, "generate", counting)
    text = TINY_CONFIG.replace("boost = [1.0, 2.0]", "boost = [0.0]")
    text = text.split('[[methods]]\nname = "toy_shared"')[0] + (
        '[evaluation]\nmetrics = ["toy_generation"]\n'
    )
    result = tiny_run(write_config(text), tiny_source)
    assert calls == [None]  # the unsteered batch only: α · 0 adds nothing
    generations = [json.loads(x) for x in open_lines(result)]
    assert generations and all(g["steered"] == g["base"] for g in generations)


def test_the_dev_grid_is_generated_in_one_call_at_its_own_length(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_generate_calls(tiny_source, monkeypatch)
    text = PROTOCOL.replace("dev = 2", "dev = 2\ndev_new_tokens = 1")
    text = text.split('[[methods]]\nname = "toy_shared"')[0] + text[text.index("[evaluation]") :]
    result = tiny_run(write_config(text), tiny_source)
    units = {(r["method"], r["value"]) for r in result.read_rows()}
    # per unit: the 4 α × 2 dev prompts in one steered call of 1 new token, then the 4 test
    # prompts at the chosen α (3 tokens); the unsteered continuations once per input
    steered = [c for c in calls if c[2]]
    assert [c[1] for c in steered] == [1, 3] * len(units)
    assert all(n == 8 for n, _, _ in steered[::2])  # 4 α × 2 dev prompts
    assert all(0 < n <= 4 for n, _, _ in steered[1::2])  # (a zero vector reuses the base text)
    assert sorted(c for c in calls if not c[2]) == [(2, 1, False), (4, 3, False)]
    generations = [json.loads(x) for x in open_lines(result)]
    for g in generations:  # a dev generation is one token long, a test one up to three
        tokens = tiny_source.model.to_tokens(g["steered"], prepend_bos=False)[0]
        assert (len(tokens) <= 1) if g["split"] == "dev" else (len(tokens) <= 3)
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["new_tokens"] == {"dev": 1, "test": 3}


def test_dev_new_tokens_needs_a_dev_split(write_config: Callable[..., Path]) -> None:
    text = TINY_CONFIG.replace("alphas = [0.5, 1.0]", "alphas = [0.5, 1.0]\ndev_new_tokens = 4")
    with pytest.raises(ConfigError, match=r"steering\.dev_new_tokens: .*set dev"):
        load_config(write_config(text))


def test_units_can_share_one_generation_call(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = PROTOCOL.replace("dev = 2", "dev = 2\ndev_new_tokens = 1")
    text = text.split('[[methods]]\nname = "toy_shared"')[0] + text[text.index("[evaluation]") :]
    alone = tiny_run(write_config(text, name="alone.toml"), tiny_source).read_rows()
    calls = count_generate_calls(tiny_source, monkeypatch)
    paired = text.replace("dev = 2\n", "dev = 2\nunits_per_batch = 2\n")
    together = tiny_run(write_config(paired, name="paired.toml"), tiny_source)
    # both units' dev grids (2 × 4 α × 2 prompts) in one call, then both units' test inputs
    steered = [c for c in calls if c[2]]
    assert [(n, t) for n, t, _ in steered][:1] == [(16, 1)] and len(steered) == 2
    assert steered[1][1] == 3 and 0 < steered[1][0] <= 8
    rows = together.read_rows()
    key = lambda r: (r["method"], r["value"], r["alpha"], r["input_id"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, alone))  # the same rows, none lost or twice
    by_key = {key(r): r for r in alone}
    for r in rows:
        assert r["p_after"] == pytest.approx(by_key[key(r)]["p_after"], abs=1e-6)
        assert r["aggregate"] == pytest.approx(by_key[key(r)]["aggregate"], abs=1e-6)


def count_generate_calls(
    source: Any, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, int, bool]]:
    """The source's generate calls from now on, as (prompts, new tokens, steered)."""
    calls: list[tuple[int, int, bool]] = []
    real = source.generate

    def counting(prompts: Any, **kwargs: Any) -> Any:
        calls.append((len(prompts), kwargs["max_new_tokens"], kwargs.get("vector") is not None))
        return real(prompts, **kwargs)

    monkeypatch.setattr(source, "generate", counting)
    return calls


def test_units_with_different_interventions_are_generated_in_separate_calls(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # two adaptive units (two steering functions) and fixed vectors, four units per batch
    text = PROTOCOL.replace("dev = 2", "dev = 2\nunits_per_batch = 4").replace(
        "[evaluation]", '[[methods]]\nname = "qp_adaptive"\nlam = [0.5, 1.0]\n\n[evaluation]'
    )
    text = text.replace('[[methods]]\nname = "toy_shared"\n\n', "")
    calls = count_generate_calls(tiny_source, monkeypatch)
    result = tiny_run(write_config(text), tiny_source)
    assert not result.failed_units
    rows = result.read_rows()
    assert {r["method"] for r in rows} == {"toy_direction", "qp", "qp_adaptive"}
    assert all(np.isfinite(r["aggregate"]) for r in rows), [r["message"] for r in rows]
    # per phase: one call for the fixed vectors of toy_direction ×2 and qp, one per table (an
    # input already past the margin adds nothing and reuses the unsteered text)
    steered = [n for n, _, is_steered in calls if is_steered]
    assert len(steered) == 6  # dev, then test: 3 calls each
    assert steered[0] == 3 * 4 * 2 and all(0 < n <= 4 * 2 for n in steered[1:3])
