"""The CLI commands, through `steerkit.cli.main` with an isolated plugin host."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner import runner as runner_module
from steerkit_runner.commands import SteerCommand, time_line
from steerkit_runner.config import DEFAULT_CONFIG, shipped_configs

import steerkit
from steerkit.cli import main

pytestmark = pytest.mark.needs_torch


def test_the_commands_are_registered(toy_host: steerkit.PluginHost) -> None:
    names = toy_host.registry("command").names()
    assert {"run", "sweep", "report", "steer", "configs"} <= set(names)


def test_configs_lists_every_shipped_config(
    toy_host: steerkit.PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for name in shipped_configs():
        assert name in out
    assert f"{DEFAULT_CONFIG}  " in out and "(default)" in out


def test_run_prints_the_run_directory_the_table_and_the_report(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import steerkit_runner.report

    monkeypatch.setattr(
        runner_module, "run", functools.partial(runner_module.run, source=tiny_source)
    )
    monkeypatch.setattr(
        steerkit_runner.report, "write_report", lambda run_dir: run_dir / "report" / "report.md"
    )
    path = write_config()
    assert main(["run", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    run_dir = Path(lines[0].removeprefix("run directory: "))
    assert (run_dir / "results.jsonl").is_file()
    header = next(line for line in lines if line.startswith("method"))
    # the one comparison table (the report's): one line per unit, at α = 1
    assert header.split()[:6] == ["method", "solver", "setting", "α", "n", "failed"]
    assert "p_after" in header and "probe_shift" in header  # the toy metric's undescribed columns
    table = [line for line in lines if line.startswith(("toy_direction", "toy_shared", "qp"))]
    assert len(table) == 4
    assert any("boost=2" in line and line.split()[3:6] == ["1", "6", "0"] for line in table)
    assert lines[-1] == f"report: {run_dir / 'report' / 'report.md'}"
    # the wall-clock time, at least the stages' sum (metrics included), and the largest stages
    took = lines[-2]
    seconds = float(took.split()[1])
    info = json.loads((run_dir / "run.json").read_text())
    assert took.startswith("time: ") and seconds >= round(sum(info["timings"].values())) - 1
    assert time_line(514.3, {"generation": 231.5, "metric.fluency": 112.8, "probe": 0.1}) == (
        "time: 514 s (generation 232 s, metric fluency 113 s)"
    )

    assert main(["run", str(path), "--no-progress"]) == 0  # again: everything resumed
    assert "resumed: 8 units were already done, 0 computed now" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_run_and_sweep_pass_their_options_to_the_runner(
    toy_host: steerkit.PluginHost, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    seen: dict[str, Any] = {}

    def fake(config: Any, *args: Any, **kwargs: Any) -> Any:
        seen.update(config=config, args=args, **kwargs)
        raise steerkit.SteerkitError("stop here")

    # `steerkit sweep` sweeps layers when asked (one run per layer): through sweep_layers
    monkeypatch.setattr(runner_module, "run" if command == "run" else "sweep_layers", fake)
    extra = ["--mode", "shared", "--layers", "3,6,9"] if command == "sweep" else []
    argv = [command, "my.toml", *extra, "--no-resume", "--no-report", "--output-dir", "out"]
    assert main([*argv, "--executor", "ray", "--address", "auto"]) == 1
    assert seen == {
        "config": "my.toml",
        "args": ([3, 6, 9],) if command == "sweep" else (),
        "resume": False,
        "progress": True,
        "output_dir": "out",
        "report": False,
        "executor": "ray",
        "address": "auto",
        **({"mode": "shared"} if command == "sweep" else {}),
    }
    seen.clear()
    assert main(argv) == 1  # no --executor: the config's [execution] decides
    assert seen["executor"] is None and seen["address"] is None


def test_sweep_refuses_a_malformed_layers_option(
    toy_host: steerkit.PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "my.toml", "--layers", "3,x"])
    assert "expected block indices separated by commas" in capsys.readouterr().err


def test_run_reports_a_bad_config_with_its_line(
    toy_host: steerkit.PluginHost,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from .conftest import TINY_CONFIG

    path = write_config(TINY_CONFIG.replace("margin = 1.0", 'margin = "big"'))
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    line = TINY_CONFIG.splitlines().index("margin = 1.0") + 2  # + the output_dir line added
    assert f"ConfigError: {path}:{line}: probe.margin: expected a number" in err


def test_steer_generates_with_a_saved_vector(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from steerkit_runner.vectors import load_vector

    result = runner_module.run(write_config(), source=tiny_source, report=False, progress=False)
    vector_file = result.run_dir / "vectors" / "toy_shared.safetensors"
    monkeypatch.setattr(SteerCommand, "source_factory", lambda sidecar: tiny_source)
    prompts = ["the cat sat on the mat", "a dog is"]
    argv = ["steer", str(vector_file), "--max-new-tokens", "4", "--alpha", "3"]
    assert main([*argv, "--prompt", prompts[0], "--prompt", prompts[1]]) == 0
    out = capsys.readouterr().out

    vector = load_vector(vector_file).scaled(3.0)
    for prompt in prompts:
        base = tiny_source.generate([prompt], max_new_tokens=4)[0]
        steered = tiny_source.generate([prompt], max_new_tokens=4, vector=vector)[0]
        assert f"prompt:    {prompt}\nunsteered: {base}\nsteered (α=3): {steered}\n" in out
    assert out.startswith("vector: toy_shared at blocks.1.hook_resid_pre")

    stack = result.run_dir / "vectors" / "toy_direction_boost2.0_inputs.safetensors"
    assert (
        main(["steer", str(stack), "--prompt", "a dog", "--index", "3", "--max-new-tokens", "2"])
        == 0
    )
    assert "steered (α=1): " in capsys.readouterr().out


def test_steer_without_a_preset_says_what_to_pass(
    toy_host: steerkit.PluginHost,
    tiny_source: Any,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = runner_module.run(write_config(), source=tiny_source, report=False, progress=False)
    vector_file = result.run_dir / "vectors" / "toy_shared.safetensors"
    assert main(["steer", str(vector_file), "--prompt", "a dog"]) == 1
    assert "pass --source-param KEY=VALUE" in capsys.readouterr().err


def test_report_needs_a_run_directory(
    toy_host: steerkit.PluginHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "is not a run directory" in capsys.readouterr().err


def test_discovery_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, steerkit\n"
        "host = steerkit.PluginHost(entry_points=False, plugins=[('runner', "
        "__import__('steerkit_runner.plugin', fromlist=['x']))])\n"
        "assert 'run' in host.registry('command').names()\n"
        "heavy = [m for m in ('torch', 'transformer_lens', 'sae_lens', 'matplotlib', "
        "'safetensors', 'tqdm', 'sklearn') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _offline_vector(folder: Path, width: int) -> Path:
    """A saved vector whose sidecar records the offline Gemma preset as its source."""
    from steerkit_runner.vectors import save_vector

    import steerkit

    hook = "blocks.6.hook_resid_post"
    info = steerkit.SourceInfo(
        name="transformerlens",
        hook_point=hook,
        layer=6,
        d_model=640,
        params={"preset": "gemma-3-270m-offline", "layer": 6, "hook": "resid_post"},
    )
    vector = steerkit.SteeringVector(vector=np.ones(width), hook_point=hook)
    save_vector(vector, folder / "v", metadata={"source": info.to_dict()})
    return folder / "v.safetensors"


def test_steer_checks_the_device_and_the_width_before_any_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from steerkit_transformerlens.source import TransformerLensSource

    def no_loading(self: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(TransformerLensSource, "_load", no_loading)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fits = _offline_vector(tmp_path, 640)
    assert main(["steer", str(fits), "--prompt", "a", "--device", "cuda"]) == 1
    assert "torch sees no CUDA device on this machine" in capsys.readouterr().err
    narrow = _offline_vector(tmp_path / "narrow", 16)
    assert main(["steer", str(narrow), "--prompt", "a"]) == 1
    assert "the source's model has d_model 640" in capsys.readouterr().err
    sidecar = json.loads(narrow.with_suffix(".json").read_text())
    del sidecar["hook_point"]
    narrow.with_suffix(".json").write_text(json.dumps(sidecar))
    assert main(["steer", str(narrow), "--prompt", "a"]) == 1
    assert "has no valid 'hook_point'" in capsys.readouterr().err
