"""Time the direct backends on random steering QPs/SOCPs: one solve, and a batch per input.

    python plugins/steerkit-direct/benchmarks/bench_direct.py --d-sae 2000 --d-model 128 --k 1 5
    python plugins/steerkit-direct/benchmarks/bench_direct.py --d-sae 24576 --d-model 768 \
        --k 1 --batch 0 --solvers clarabel

Each figure is checked against the reference solve (relative objective difference) unless
--no-reference. Prints one line per (solver, k, kind, setting).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from steerkit_direct import ClarabelSolver, OSQPSolver

from steerkit import SteeringProblem
from steerkit.testing import random_problem
from steerkit.testing.oracle import min_feasible_norm, reference_solve

BACKENDS = {"clarabel": ClarabelSolver, "osqp": OSQPSolver}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--d-sae", type=int, default=2000)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--kinds", nargs="+", default=["qp"])
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=10, help="inputs per batch (0: none)")
    parser.add_argument("--solvers", nargs="+", default=list(BACKENDS))
    parser.add_argument("--settings", nargs="*", default=[], help="key=value backend settings")
    parser.add_argument("--form", default="auto")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings: dict[str, Any] = {}
    for item in args.settings:
        key, value = item.split("=", 1)
        try:
            settings[key] = float(value)
        except ValueError:
            settings[key] = value

    for k in args.k:
        rng = np.random.default_rng([args.seed, k])
        base = random_problem(rng, "qp", d_sae=args.d_sae, d_model=args.d_model, k=k, lam=args.lam)
        for kind in args.kinds:
            problem = base
            if kind == "socp":
                eps = 1.5 * min_feasible_norm(base)
                problem = SteeringProblem.socp(
                    decoder=base.decoder, directions=base.directions, rhs=base.rhs, eps=eps
                )
            reference = None if args.no_reference else reference_solve(problem)
            factors = rng.uniform(0.5, 1.5, size=args.batch)
            batch = [problem.with_rhs(problem.rhs * f) for f in factors]
            for name in args.solvers:
                backend = BACKENDS[name]()
                if kind not in {k.value for k in backend.kinds}:
                    continue
                options = (
                    {"form": args.form, "settings": settings} if settings else {"form": args.form}
                )
                start = time.perf_counter()
                one = backend.solve(problem, **options)
                single = time.perf_counter() - start
                rel = (
                    abs(one.objective - reference.objective) / abs(reference.objective)
                    if reference is not None
                    else float("nan")
                )
                line = (
                    f"{name:9s} {kind:4s} d_sae {problem.d_sae} d_model {problem.d_model} k {k}: "
                    f"single {single:.3f} s ({one.status.value}, {one.iterations} it, "
                    f"set-up {one.info.get('setup_seconds', 0):.3f} s, form "
                    f"{one.info.get('form')}, rel {rel:.1e}, gap {one.gap:.1e}, "
                    f"dinf {one.dual_infeasibility:.1e})"
                )
                if batch:
                    start = time.perf_counter()
                    many = backend.solve_batch(batch, **options)
                    total = time.perf_counter() - start
                    statuses = {s.status.value for s in many}
                    line += (
                        f"; batch of {len(batch)}: {total / len(batch):.3f} s per input "
                        f"({sorted(statuses)}, worst gap {max(s.gap for s in many):.1e})"
                    )
                print(line, flush=True)


if __name__ == "__main__":
    main()
