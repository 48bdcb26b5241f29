"""The executors. The oracle is the local executor (the run as it always was): the Ray executor's
results.jsonl holds the same rows (same keys, same values; the timing column aside; in another
order), also when a worker dies mid-run and when the driver resumes a table it left half written.
One local Ray (2 CPUs, no dashboard) serves the whole module."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner.config import ConfigError, load_config, parse_config
from steerkit_runner.executors import LocalExecutor, RayExecutor
from steerkit_runner.results import RESULT_KEY
from steerkit_runner.runner import run, run_dir_for, sweep_config, sweep_layers

import steerkit
from steerkit import MethodContext, MethodResult, SteeringMethod, SteeringVector

from .conftest import HOOK, TINY_CONFIG, TinySentiment, toy_plugins

#: Columns that measure time, not results: they differ between any two runs.
TIMINGS = ("method_seconds",)


class DiesOnce(SteeringMethod):
    """Test-only fault injection: the first call in any process (recorded in the file `marker`)
    kills its process outright, as a worker lost to the OOM killer would; later calls steer
    along the probe direction like `toy_direction`."""

    name = "dies_once"

    def __init__(self, *, marker: str) -> None:
        self.marker = marker

    def compute(self, context: MethodContext) -> MethodResult:
        path = Path(self.marker)
        first = not path.exists()
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        if first:
            os._exit(1)
        w = context.concept.directions[0]
        rhs = np.maximum(context.concept.rhs(context.inputs.hidden)[:, 0], 0.0)
        return MethodResult(
            vectors=[
                SteeringVector(vector=r * w / float(w @ w), hook_point=context.inputs.hook_point)
                for r in rhs
            ]
        )


class DiesPlugin:
    @steerkit.hookimpl
    def register_steering_methods(self, register: Any) -> None:
        register(DiesOnce)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """One local Ray for the module; the test modules' classes travel by value (pytest's
    importlib mode leaves them unimportable by name on a worker)."""
    import ray
    import ray.cloudpickle

    for module in {TinySentiment.__module__, DiesOnce.__module__}:
        ray.cloudpickle.register_pickle_by_value(sys.modules[module])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=128 * 1024 * 1024,
        log_to_driver=False,
        logging_level="WARNING",
    )
    yield ray
    ray.shutdown()


def rows_of(run_dir: Path, torn: int | None = None) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's rows by key, timing columns left out; no key may repeat. torn: the one line
    (1-based) a kill cut short, left out."""
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    if torn is not None:
        with pytest.raises(ValueError):
            json.loads(lines[torn - 1])
        del lines[torn - 1]
    rows = [json.loads(line) for line in lines if line.strip()]
    out = {tuple(row[k] for k in RESULT_KEY): row for row in rows}
    assert len(out) == len(rows), "a key is written twice"
    for row in out.values():
        for column in TIMINGS:
            row.pop(column, None)
    return out


def same_rows(ours: dict[Any, Any], oracle: dict[Any, Any]) -> None:
    assert sorted(ours, key=repr) == sorted(oracle, key=repr)
    for key, row in oracle.items():
        assert set(ours[key]) == set(row), key
        for column, value in row.items():
            if isinstance(value, float):  # another process: BLAS may sum in another order
                assert ours[key][column] == pytest.approx(value, rel=1e-9, abs=1e-12), column
            else:
                assert ours[key][column] == value, (key, column)


def run_tiny(config: Path | Any, tiny_source: Any, out: Path, executor: str, **options: Any) -> Any:
    return run(
        config,
        source=tiny_source,
        dataset=TinySentiment(),
        output_dir=out,
        progress=False,
        report=False,
        executor=executor,
        **options,
    )


# -- config, CLI and errors (no Ray needed) -----------------------------------------------------


def test_execution_table_is_read_and_does_not_change_the_hash() -> None:
    plain = parse_config(TINY_CONFIG)
    text = TINY_CONFIG + '\n[execution]\nexecutor = "ray"\naddress = "auto"\nnum_cpus = 2\n'
    config = parse_config(text)
    assert config.execution.executor == "ray"
    assert config.execution.num_cpus == 2.0 and config.execution.num_gpus is None
    assert dict(config.execution.params) == {"address": "auto"}
    assert plain.execution.executor == "local" and not plain.execution.params
    assert config.hash == plain.hash  # where units run does not change what they compute
    assert parse_config(config.to_toml()).execution == config.execution


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[execution]\nnum_cpus = 0\n", "execution.num_cpus: expected a number > 0"),
        ("[execution]\nnum_gpus = -1\n", "execution.num_gpus: expected a number ≥ 0"),
        ("[execution]\nexecutor = 3\n", "execution.executor: expected a string"),
    ],
)
def test_bad_execution_values_name_their_key_and_line(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_config(TINY_CONFIG + "\n" + extra, path="tiny.toml")
    assert error.value.line is not None and error.value.line > TINY_CONFIG.count("\n")


def test_an_unknown_executor_lists_the_registered_ones(
    toy_host: steerkit.PluginHost, write_config: Callable[..., Path], tiny_source: Any
) -> None:
    with pytest.raises(steerkit.UnknownPluginError, match="unknown executor 'dask'") as error:
        run_tiny(write_config(), tiny_source, Path("unused"), "dask")
    assert error.value.available == ["local", "ray"]
    path = write_config(TINY_CONFIG + '\n[execution]\nexecutor = "dask"\n')
    with pytest.raises(ConfigError, match=r"execution\.executor: unknown executor 'dask'.*local"):
        run_tiny(path, tiny_source, Path("unused"), None)
    path = write_config(TINY_CONFIG + '\n[execution]\naddress = "auto"\n')
    with pytest.raises(ConfigError, match="executor 'local' does not take a parameter 'address'"):
        run_tiny(path, tiny_source, Path("unused"), None)


def test_a_missing_ray_names_the_package_to_install(
    toy_host: steerkit.PluginHost,
    write_config: Callable[..., Path],
    tiny_source: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RayExecutor, "requires", ("ray_is_not_installed_here",))
    with pytest.raises(steerkit.ExecutorNotInstalledError, match="`pip install ray`"):
        run_tiny(write_config(), tiny_source, tmp_path / "out", "ray")
    assert RayExecutor.missing() == "module 'ray_is_not_installed_here' is not importable"
    assert LocalExecutor.missing() is None


def test_sweep_layers_are_read_and_each_layer_is_its_own_config() -> None:
    config = parse_config(TINY_CONFIG.replace("eps = [50.0]", "eps = [50.0]\nlayers = [0, 1]"))
    assert config.sweep is not None and config.sweep.layers == (0, 1)
    for bad, message in (("[0, 0]", "distinct"), ("[-1]", "≥ 0"), ('"1"', "a list")):
        with pytest.raises(ConfigError, match=message):
            parse_config(TINY_CONFIG.replace("eps = [50.0]", f"eps = [50.0]\nlayers = {bad}"))


# -- the Ray executor against the local one -----------------------------------------------------


def test_ray_writes_the_rows_the_local_executor_writes(
    ray_cluster: Any,
    toy_host: steerkit.PluginHost,
    write_config: Callable[..., Path],
    tiny_source: Any,
    tmp_path: Path,
) -> None:
    path = write_config()
    local = run_tiny(path, tiny_source, tmp_path / "local", "local")
    remote = run_tiny(path, tiny_source, tmp_path / "ray", "ray")
    assert remote.config_hash == local.config_hash
    assert remote.units_run == local.units_run == 8 and remote.new_rows == local.new_rows
    same_rows(rows_of(remote.run_dir), rows_of(local.run_dir))
    # the generations too, and the vectors the driver saved from what the workers computed
    for name in ("generations.jsonl",):
        ours = sorted((remote.run_dir / name).read_text().splitlines())
        assert ours == sorted((local.run_dir / name).read_text().splitlines())
    vectors = sorted(p.name for p in (local.run_dir / "vectors").iterdir())
    assert sorted(p.name for p in (remote.run_dir / "vectors").iterdir()) == vectors
    info = json.loads((remote.run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["executor"] == "ray"
    assert "methods" in info["timings"]  # the workers' stage timings reach run.json

    again = run_tiny(path, tiny_source, tmp_path / "ray", "ray")  # nothing left to do
    assert again.units_run == 0 and again.new_rows == 0 and again.units_skipped == 8


def test_a_worker_that_dies_loses_and_duplicates_nothing(
    ray_cluster: Any,
    steerkit_host_factory: Callable[..., steerkit.PluginHost],
    write_config: Callable[..., Path],
    tiny_source: Any,
    tmp_path: Path,
) -> None:
    steerkit_host_factory(*toy_plugins(), ("dies", DiesPlugin()))
    marker = tmp_path / "attempts.txt"
    # two units per task (their generations share calls, on Ray as locally)
    text = TINY_CONFIG.replace("max_new_tokens = 3\n", "max_new_tokens = 3\nunits_per_batch = 2\n")
    text = text.replace(
        '[[methods]]\nname = "toy_shared"\n',
        '[[methods]]\nname = "toy_shared"\n\n'
        f'[[methods]]\nname = "dies_once"\nmarker = "{marker}"\n',
    )
    path = write_config(text)
    remote = run_tiny(path, tiny_source, tmp_path / "ray", "ray")
    attempts = marker.read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # one worker died, Ray retried
    assert os.getpid() not in {int(a) for a in attempts}  # not in this process
    assert not remote.failed_units
    local = run_tiny(path, tiny_source, tmp_path / "local", "local")  # the marker is there now
    same_rows(rows_of(remote.run_dir), rows_of(local.run_dir))
    assert any(key[1] == "dies_once" for key in rows_of(remote.run_dir))


def test_a_driver_stopped_mid_run_resumes_without_losing_or_repeating_a_row(
    ray_cluster: Any,
    toy_host: steerkit.PluginHost,
    write_config: Callable[..., Path],
    tiny_source: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from steerkit_runner import execution

    path = write_config()
    local = run_tiny(path, tiny_source, tmp_path / "local", "local")
    # the driver stops (Ctrl-C, a kill) after writing two batches, with tasks still in flight
    write = execution._write
    written: list[int] = []

    def write_then_stop(*args: Any) -> None:
        write(*args)
        written.append(1)
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(execution, "_write", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(path, tiny_source, tmp_path / "ray", "ray")
    monkeypatch.setattr(execution, "_write", write)
    run_dir = run_dir_for(load_config(path), tmp_path / "ray")
    table = run_dir / "results.jsonl"
    assert len(table.read_text().splitlines()) == 2 * 2 * 6  # two units, 2 α, 6 inputs
    with open(table, "a", encoding="utf-8") as handle:  # and a kill cut its last write short
        handle.write('{"config_hash": "' + local.config_hash[:20])
    remote = run_tiny(path, tiny_source, tmp_path / "ray", "ray")
    assert remote.units_skipped == 2 * 2 and remote.units_run == 8 - 4
    assert remote.new_rows == 48 - 24 and [s.line for s in remote.skipped_lines] == [25]
    same_rows(rows_of(run_dir, torn=25), rows_of(local.run_dir))


def test_a_layer_sweep_runs_one_probe_and_sae_per_layer_on_ray(
    ray_cluster: Any,
    toy_host: steerkit.PluginHost,
    write_config: Callable[..., Path],
    tiny: tuple[Any, Any],
    tmp_path: Path,
) -> None:
    from steerkit_transformerlens.source import TransformerLensSource
    from steerkit_transformerlens.testing import tiny_sae

    model, _ = tiny
    built: list[int] = []

    def source_at(layer: int) -> TransformerLensSource:
        built.append(layer)
        hook = HOOK.replace("blocks.1.", f"blocks.{layer}.")
        sae = tiny_sae(hook_name=hook, seed=10 + layer)
        return TransformerLensSource(
            model=model, sae=sae, hook_point=hook, cache=False, progress=False
        )

    path = write_config(TINY_CONFIG.replace("eps = [50.0]", "eps = [50.0]\nlayers = [0, 1]"))
    options = dict(dataset=TinySentiment(), progress=False, report=False, source=source_at)
    results = sweep_layers(path, output_dir=tmp_path / "ray", executor="ray", **options)
    assert built == [0, 1] and len(results) == 2
    config = load_config(path)
    for layer, result in zip((0, 1), results):
        info = json.loads((result.run_dir / "run.json").read_text())
        assert info["hook_point"] == f"blocks.{layer}.hook_resid_pre"
        assert info["layer"] == layer and info["sae"]["d_sae"] == 64
        assert result.run_dir.name.startswith(f"tiny-layer{layer}-sweep-")
        assert result.units_run == 3 and not result.failed_units  # λ 0.5, 2 and ε 50
        # the same layer's sweep on the local executor is the oracle
        (single,) = sweep_layers(
            path, [layer], output_dir=tmp_path / "local", executor="local", **options
        )
        same_rows(rows_of(result.run_dir), rows_of(single.run_dir))
    # each layer has its own probe and SAE: its rows differ from the other layer's
    first, second = (rows_of(r.run_dir) for r in results)
    assert {k[0] for k in first} != {k[0] for k in second}
    assert sweep_config(config).methods  # the λ/ε grid itself is the plain sweep's
