"""Time the path solver at SAE scale: one input from scratch, a batch of inputs, and a batch
over a grid of λ, each from an empty path cache (so every figure includes building the path).

    python plugins/steerkit-path/benchmarks/bench_path.py                    # GPT-2 and Gemma
    python plugins/steerkit-path/benchmarks/bench_path.py --scales gpt2 --repeat 5

Problems: a unit-norm random decoder (float32 by default, as SAE weights come; --dtype), a
probe direction of norm
1–5, margins r uniform in [0.5, 4] (every one binds: r > 0), λ = 1; the grid is 9 values of λ
log-spaced over [0.1, 10]. Two figures per setting:

- `path`: the path solver's own work (`Path.qp` / `Path.socp` and every dense δ), which is
  what the plugin controls;
- `solve`: `PathSolver.solve_batch` end to end, which adds the core's `Solution.build` per input
  (objective, violation and the KKT certificate over all features, recomputed from δ); measured on
  `--build-sample` inputs and scaled to the batch, since it dominates at this size.

Every answer's certificate is checked: the largest KKT violation over all d_sae features at the
answer (relative), and for the sampled Solutions the core's gap and dual infeasibility.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from steerkit_path import PathSolver, clear_cache, path_for
from steerkit_path.path import PathPoints

from steerkit import SteeringProblem

SCALES = {"gpt2": (24576, 768), "gemma-2-2b": (16384, 2304)}


def make(d_sae: int, d_model: int, n: int, seed: int, dtype: str) -> tuple[Any, Any, Any]:
    """(decoder with unit rows, direction of norm 1–5, n margins in [0.5, 4])."""
    rng = np.random.default_rng(seed)
    decoder = rng.standard_normal((d_sae, d_model), dtype=np.dtype(dtype))
    decoder /= np.linalg.norm(decoder, axis=1, keepdims=True)
    w = rng.normal(size=d_model)
    w *= rng.uniform(1.0, 5.0) / np.linalg.norm(w)
    return decoder, w, rng.uniform(0.5, 4.0, size=n)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds over `repeat` runs from an empty cache, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        clear_cache()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def path_answers(decoder: Any, w: Any, a: Any, lam: Any, rhs: Any, kind: str) -> PathPoints:
    path = path_for(decoder, w, a)
    points = path.qp(lam, rhs) if kind == "qp" else path.socp(lam, rhs)
    for i in range(len(points)):
        points.dense(i)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--grid", type=int, default=9, help="λ values, log-spaced in [0.1, 10]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build-sample", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    lams = np.logspace(-1, 1, args.grid)

    for scale in args.scales:
        d_sae, d_model = SCALES[scale]
        decoder, w, rhs = make(d_sae, d_model, args.batch, args.seed, args.dtype)
        problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=rhs[0], lam=1.0)
        start = time.perf_counter()
        a = problem.constraint_matrix[0]  # the core's A = W Dᵀ (float64), cached on the problem
        a_seconds = time.perf_counter() - start
        print(
            f"== {scale}: decoder {d_sae} × {d_model} {args.dtype}, ‖w‖ = {np.linalg.norm(w):.2f}"
        )
        print(f"   a = D w in float64 (the core's constraint matrix, once): {a_seconds:.3f} s")

        settings = {
            "1 input, λ = 1": (np.array([1.0]), rhs[:1]),
            f"{args.batch} inputs, λ = 1": (np.ones(args.batch), rhs),
            f"{args.batch} inputs × {args.grid} λ": (
                np.repeat(lams, args.batch),
                np.tile(rhs, args.grid),
            ),
        }
        for label, (lam, r) in settings.items():
            run = functools.partial(path_answers, decoder, w, a, lam, r, "qp")
            seconds, points = timed(run, args.repeat)
            path = points.path
            l0 = [len(points.sparse(i)[0]) for i in range(len(points))]
            print(
                f"   {label:<24} path {seconds * 1e3:9.1f} ms  ({seconds / len(points) * 1e3:.2f}"
                f" ms/input)  steps {path.steps:4d}  repairs {path.repairs}  pool "
                f"{path.pool_size}  L0 {min(l0)}–{max(l0)}  max KKT violation "
                f"{float(np.max(points.kkt)):.1e}"
            )

        # end to end through the solver, on a sample (the core's Solution.build dominates)
        sample = [problem.with_rhs(x) for x in rhs[: args.build_sample]]
        clear_cache()
        start = time.perf_counter()
        solutions = PathSolver().solve_batch(sample)
        per_input = (time.perf_counter() - start) / len(sample)
        gaps = max(s.gap for s in solutions)
        dual = max(s.dual_infeasibility for s in solutions)
        print(
            f"   solve_batch (with the core's Solution.build): {per_input * 1e3:.1f} ms/input "
            f"on {len(sample)} inputs → ≈ {per_input * args.batch:.1f} s for {args.batch}; "
            f"certificate gap ≤ {gaps:.1e}, dual infeasibility ≤ {dual:.1e}"
        )

        eps = 1.2 * float(path_for(decoder, w, a).min_eps(rhs[0])[0])
        socp = SteeringProblem.socp(decoder=decoder, directions=w, rhs=rhs[0], eps=eps)
        clear_cache()
        start = time.perf_counter()
        solution = PathSolver().solve(socp)
        print(
            f"   SOCP, ε = 1.2 × smallest (path to its end first): {solution.status.value}, "
            f"L0 {solution.l0}, {time.perf_counter() - start:.2f} s from scratch, "
            f"gap {solution.gap:.1e}, dual infeasibility {solution.dual_infeasibility:.1e}"
        )


if __name__ == "__main__":
    main()
