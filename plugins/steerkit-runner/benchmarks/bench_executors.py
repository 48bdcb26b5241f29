"""What a Ray cluster costs and buys against the local executor, measured in one process.

Two figures, each as a ratio against the local executor measured in the same run, through the
public API (`steerkit_runner.run`, `Executor.map`):

1. overhead per task: `map` of a task that does nothing over `--tasks` items, with a shared value
   the size of a run's prepared data (`--shared-mb`), on "local" and on "ray";
2. a sweep: the same config (a tiny TransformerLens model and SAE, per-input QP over a λ grid of
   `--units` values and SOCP over an ε grid, α ∈ {0.5, 1}, metrics probe_shift, sparsity, norm
   and kl — kl runs the model, no generation) on "local" and on "ray", in separate output
   folders; units per second over the units stage (the run's time less its preparation), the
   median of `--repeats` interleaved runs, after one Ray run on fresh workers (reported apart:
   a fresh worker imports torch and the plugins before its first unit).

With `--preset gemma-3-270m-offline`, the sweep is on the real offline model instead (dataset
`sentiment-offline`, 8 steered inputs, 4 of them generated for 8 tokens, metrics probe_shift,
sparsity, kl and perplexity): units that cost seconds, and a prepared run (the model) of ~1 GB
that each worker receives once.

A local Ray is started once with `--cpus` CPUs (not counted); its start-up time is printed.

    python plugins/steerkit-runner/benchmarks/bench_executors.py
    python plugins/steerkit-runner/benchmarks/bench_executors.py --units 64 --cpus 2
    python plugins/steerkit-runner/benchmarks/bench_executors.py --preset gemma-3-270m-offline \
        --units 4 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from steerkit_runner import parse_config, run
from steerkit_runner.executors import LocalExecutor, RayExecutor

import steerkit
from steerkit import Dataset, LabelledTexts, Resources, Splits

#: Stages of a run that prepare it (driver only); the rest is the units stage.
PREPARE = ("dataset", "source", "activations", "probe", "decoder", "features", "report")


class WordsData(Dataset):
    """Two classes of short texts over the tiny tokenizer's words (label 1 ends well)."""

    name = "bench-words"

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        rng = np.random.default_rng(seed)
        things = ["the cat", "a dog", "the bird", "a big cat", "the small dog", "a red bird"]
        acts = ["sat", "ran", "flew", "sat on the mat", "ran under the tree", "was slow"]
        n = n_per_class or 20

        def texts(ends: list[str]) -> list[str]:
            return [
                f"{things[rng.integers(6)]} {acts[rng.integers(6)]} and is {ends[k % len(ends)]}"
                for k in range(n)
            ]

        good, bad = texts(["good", "happy", "very good"]), texts(["bad", "sad", "very bad"])
        k = n // 4
        train = LabelledTexts(good[k:] + bad[k:], [1] * (n - k) + [0] * (n - k))
        test = LabelledTexts(good[:k] + bad[:k], [1] * k + [0] * k)
        return Splits(train=train, test=test)


def config_text(units: int, output: str, preset: str | None = None) -> str:
    half = max(1, units // 2)
    lams = ", ".join(repr(float(x)) for x in np.geomspace(0.1, 10.0, half))
    epss = ", ".join(repr(float(x)) for x in np.geomspace(5.0, 100.0, units - half))
    if preset is None:
        data, source = 'name = "bench-words"\nn_per_class = 20', 'name = "transformerlens"'
        steering, metrics = "n_generate = 0", '"probe_shift", "sparsity", "norm", "kl"'
    else:
        data = 'name = "sentiment-offline"\nn_per_class = 40\ntest_size = 0.4'
        source = f'name = "transformerlens"\npreset = "{preset}"\nlayer = 6\nhook = "resid_post"'
        steering = "max_inputs = 8\nn_generate = 4\nmax_new_tokens = 8"
        metrics = '"probe_shift", "sparsity", "kl", "perplexity"'
    return f"""
[run]
name = "bench-executors"
output_dir = "{output}"

[dataset]
{data}

[source]
{source}

[probe]
name = "logistic"
margin = 1.0

[steering]
alphas = [0.5, 1.0]
{steering}

[[methods]]
name = "qp"
solver = "path"
lam = [{lams}]

[[methods]]
name = "socp"
solver = "path"
eps = [{epss}]

[evaluation]
metrics = [{metrics}]
"""


def tiny_source() -> Any:
    from steerkit_transformerlens.source import TransformerLensSource
    from steerkit_transformerlens.testing import tiny_model, tiny_sae

    hook = "blocks.1.hook_resid_pre"
    return TransformerLensSource(
        model=tiny_model(seed=0),
        sae=tiny_sae(hook_name=hook, seed=1),
        hook_point=hook,
        cache=False,
        progress=False,
    )


def _nothing(shared: Any, item: Any) -> int:
    return int(item)


def overhead(executor: Any, tasks: int, shared_mb: float) -> float:
    """Seconds per task of `map` over tasks that do nothing."""
    shared = np.zeros(int(shared_mb * 2**20 // 8))
    start = time.perf_counter()
    done = sorted(i for i, _ in executor.map(_nothing, shared, range(tasks), resources=Resources()))
    seconds = time.perf_counter() - start
    assert done == list(range(tasks))
    return seconds / tasks


def sweep(executor: str, units: int, folder: Path, preset: str | None) -> tuple[float, int]:
    """(seconds of the units stage, units run) of the benchmark config on `executor`."""
    config = parse_config(config_text(units, str(folder / executor), preset))
    result = run(
        config,
        source=tiny_source() if preset is None else None,
        dataset=WordsData() if preset is None else None,
        progress=False,
        report=False,
        executor=executor,
    )
    assert not result.failed_units, result.failed_units[:3]
    prepared = sum(result.timings.get(stage, 0.0) for stage in PREPARE)
    return result.seconds - prepared, result.units_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=32, help="λ and ε settings (default: 32)")
    parser.add_argument("--tasks", type=int, default=200, help="no-op tasks (default: 200)")
    parser.add_argument("--shared-mb", type=float, default=16.0, help="shared value (16 MB)")
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray's CPUs (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="median of (default: 3)")
    parser.add_argument(
        "--preset", default=None, help="a real model's preset, e.g. gemma-3-270m-offline"
    )
    args = parser.parse_args()

    import ray

    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    started = time.perf_counter() - start
    steerkit.get_host().registry("dataset")  # plugins loaded before any timing
    local, remote = LocalExecutor(), RayExecutor()
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": os.getloadavg(),
        "ray_cpus": args.cpus,
        "ray_start_s": round(started, 2),
    }
    overhead(remote, 20, args.shared_mb)  # workers started and warm
    per_local = statistics.median(overhead(local, args.tasks, args.shared_mb) for _ in range(3))
    per_ray = statistics.median(overhead(remote, args.tasks, args.shared_mb) for _ in range(3))
    out["overhead_per_task_ms"] = {
        "local": round(per_local * 1e3, 4),
        "ray": round(per_ray * 1e3, 3),
        "ray_minus_local": round((per_ray - per_local) * 1e3, 3),
        "n_tasks": args.tasks,
        "shared_mb": args.shared_mb,
    }
    with tempfile.TemporaryDirectory() as folder:  # fresh workers import torch and the plugins
        seconds, units = sweep("ray", args.units, Path(folder), args.preset)
    cold = units / seconds
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    for _ in range(args.repeats):
        for executor in ("local", "ray"):  # interleaved: the machine's load hits both
            with tempfile.TemporaryDirectory() as folder:
                seconds, units = sweep(executor, args.units, Path(folder), args.preset)
            rates[executor].append(units / seconds)
    local_rate, ray_rate = statistics.median(rates["local"]), statistics.median(rates["ray"])
    out["sweep"] = {
        "units": args.units,
        "model": args.preset or "tiny",
        "units_per_s_local": round(local_rate, 2),
        "units_per_s_ray": round(ray_rate, 2),
        "ray_over_local": round(ray_rate / local_rate, 3),
        "ms_per_unit_local": round(1e3 / local_rate, 2),
        "ms_per_unit_ray": round(1e3 / ray_rate, 2),
        "units_per_s_ray_first_run": round(cold, 2),
        "repeats": args.repeats,
        "all_units_per_s": {k: [round(v, 2) for v in vs] for k, vs in rates.items()},
    }
    out["load_after"] = os.getloadavg()
    ray.shutdown()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
