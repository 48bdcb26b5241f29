"""Generation cost of per-token optimal steering (positions `adaptive`) against a fixed vector.

Same run, same prompts, same source, greedy, a fixed number of new tokens (no early stop):
(a) unsteered, (b) each prompt's fixed QP vector at every position (positions `all`), and
(c) the steering function of the same (probe, SAE, λ) evaluated at every position (`adaptive`).
Timings are interleaved over repeats and the medians compared; the figure is the ratio (c)/(b).
Target (issue 14): ≤ 1.25. Everything goes through the public API
(`TransformerLensSource.generate_tokens`, `steerkit_path.steering_function`).

    python benchmarks/bench_adaptive.py                          # a tiny random model (CPU)
    python benchmarks/bench_adaptive.py --preset gemma-3-270m-offline --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

from steerkit import SteeringVector

PROMPTS = [
    "the cat sat on the mat and",
    "a dog ran under the tree",
    "the big red bird flew very fast",
    "a small blue cat was happy and",
    "the dog is not good and",
    "a bird sat on a big tree",
    "the cat was very sad and the",
    "a red dog ran fast",
]
TEXT_PROMPTS = [
    "The weather today is",
    "My favourite film is about",
    "The restaurant we went to last night",
    "When I opened the letter I felt",
    "The new phone I bought",
    "Our team played the final match and",
    "The book I am reading now",
    "After a long day at work I",
]


def tiny_source(batch_size: int) -> Any:
    from steerkit_transformerlens.source import TransformerLensSource
    from steerkit_transformerlens.testing import tiny_model, tiny_sae

    model = tiny_model(seed=0, d_model=64, n_layers=4)
    sae = tiny_sae(d_in=64, d_sae=512, seed=0)
    return TransformerLensSource(
        model=model,
        sae=sae,
        hook_point="blocks.1.hook_resid_post",
        batch_size=batch_size,
        cache=False,
        progress=False,
    )


def _hook_seconds(fixed: Any, adaptive: Any, batch: int, d_model: int) -> dict[str, float]:
    """One hook call on a KV-cached generation step's activation (batch, 1, d_model), median of
    many: the per-step cost the two modes add, without the model's noise around it."""
    import torch
    from steerkit_transformerlens.steering import PositionWindow, SteeringHook

    activation = torch.randn(batch, 1, d_model)
    out = {}
    for name, vector in (("fixed", fixed), ("adaptive", adaptive)):
        hook = SteeringHook(vector, PositionWindow())
        hook(activation, None)  # type: ignore[arg-type]
        samples = []
        for _ in range(30):
            begin = time.perf_counter()
            for _ in range(100):
                hook(activation, None)  # type: ignore[arg-type]
            samples.append((time.perf_counter() - begin) / 100)
        out[name] = round(statistics.median(samples) * 1e6, 1)
    return {"fixed_us": out["fixed"], "adaptive_us": out["adaptive"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None, help="a TransformerLens preset (default: tiny)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument(
        "--quantile",
        type=float,
        default=0.9,
        help="threshold: this quantile of the prompts' probe scores",
    )
    args = parser.parse_args()

    from steerkit_path import steering_function

    if args.preset is None:
        source = tiny_source(batch_size=args.prompts)
        base, new_tokens = PROMPTS, args.new_tokens or 20  # the tiny model's n_ctx is 32
    else:
        from steerkit_transformerlens.source import TransformerLensSource

        source = TransformerLensSource(
            preset=args.preset, device=args.device, batch_size=args.prompts, progress=False
        )
        base, new_tokens = TEXT_PROMPTS, args.new_tokens or 32
    prompts = [base[i % len(base)] for i in range(args.prompts)]
    hidden = np.asarray(source.hidden_states(prompts), dtype=np.float64)  # last real tokens
    decoder = source.decoder()
    w = np.random.default_rng(0).normal(size=hidden.shape[1])
    w /= np.linalg.norm(w)
    t = float(np.quantile(hidden @ w, args.quantile))
    start = time.perf_counter()
    function = steering_function(decoder, w, t, lam=args.lam)
    table_seconds = time.perf_counter() - start
    hook = source.hook_point
    fixed_rows = function(function.margin(hidden))
    fixed = [SteeringVector(vector=v, hook_point=hook, positions="all") for v in fixed_rows]
    adaptive = [
        SteeringVector(vector=v, hook_point=hook, positions="adaptive", function=function)
        for v in fixed_rows
    ]

    def run(vector: Any) -> float:
        begin = time.perf_counter()
        source.generate_tokens(prompts, max_new_tokens=new_tokens, vector=vector, stop_at_eos=False)
        if args.device and args.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return time.perf_counter() - begin

    settings = {"unsteered": None, "fixed": fixed, "adaptive": adaptive}
    for vector in settings.values():  # warm-up
        run(vector)
    times: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(args.repeats):
        for name, vector in settings.items():
            times[name].append(run(vector))
    medians = {k: statistics.median(v) for k, v in times.items()}
    fastest = {k: min(v) for k, v in times.items()}  # less sensitive to a loaded machine
    hook_seconds = _hook_seconds(fixed[0], adaptive[0], len(prompts), hidden.shape[1])
    report = {
        "model": args.preset or "tiny (d_model 64, 4 layers, d_sae 512)",
        "device": args.device or "default",
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "repeats": args.repeats,
        "breakpoints": function.n_breakpoints,
        "table_seconds": round(table_seconds, 4),
        "median_seconds": {k: round(v, 4) for k, v in medians.items()},
        "adaptive_over_fixed": round(medians["adaptive"] / medians["fixed"], 3),
        "fixed_over_unsteered": round(medians["fixed"] / medians["unsteered"], 3),
        "min_seconds": {k: round(v, 4) for k, v in fastest.items()},
        "adaptive_over_fixed_min": round(fastest["adaptive"] / fastest["fixed"], 3),
        "target": "adaptive_over_fixed <= 1.25",
        "hook_seconds_per_cached_step": hook_seconds,
        # what the adaptive hook adds to one cached step, as a share of the fixed run's step
        "hook_share_of_step": round(
            (hook_seconds["adaptive_us"] - hook_seconds["fixed_us"])
            * 1e-6
            / (medians["fixed"] / new_tokens),
            5,
        ),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
