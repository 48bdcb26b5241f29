"""The path solver on the default run's real instances, against the research code's reference in
the same run: the Gemma-3-270M SAE steerkit trains (4096 × 640), the run's probe, and the test
inputs that need steering (the default config's 40 negative test sentences less its 8 dev ones).

    python benchmarks/bench_real.py                       # every setting, 3 reference solves each
    python benchmarks/bench_real.py --settings qp1 socp1.01 --ref-inputs 5

Needs the offline model and SAE (built and cached by the default run, `bash scripts/run.sh`).
Each input is solved from scratch through `steerkit.solve`, exactly as a user calls it: the
problem is built from the arrays inside the timed call, with an empty path cache and no Decoder
kept for the array (so the array is validated — and copied, were it writeable: the source's
decoder is a read-only array that owns its memory, which the core uses as it is — and the
core's certificate finds no dual point kept from an earlier answer); the reference (CVXPY
builds the problem on every call, SCS solves it after a 2000-feature pre-filter, as the
research code does) is timed on the first
`--ref-inputs` inputs of each setting. Per setting it prints the median and largest time, the
ratio of the reference's median to ours, the paired ratio (each reference input's time over
ours on that input, timed warm just before and after it: the median and the range over the
reference inputs — this machine's speed drifts by ±30% within a minute, and a pair sees the
same drift), L0, and what the path did: breakpoints walked, rounds of pivoting, passes over
the decoder (KKT columns checked by a full product), and time per breakpoint or round. Every
answer is optimal with the core's certificate; the reference's objective is compared with ours.
The paired ratio speaks of the reference inputs only; the ratio compares the median over every
input with the reference's median over its inputs.

Settings: qp0.1, qp1 (λ), socp120 (ε = 120), socp1.1 and socp1.01 (ε = 1.1 and 1.01 × the
input's smallest feasible ε, computed first and not timed), socp0.99 (ε = 0.99 × that: every
answer must be infeasible, the reference's too — its "objective" column says whether SCS found
it infeasible).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import steerkit
from steerkit import SteeringProblem

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_solvers import (
    PREFILTER,
    clear_path_cache,
    forget_decoder_copies,
    pool,
    reference_solve,
)

SETTINGS = {
    "qp0.1": ("qp", 0.1),
    "qp1": ("qp", 1.0),
    "socp120": ("socp", 120.0),
    "socp1.1": ("near", 1.1),
    "socp1.01": ("near", 1.01),
    "socp0.99": ("near", 0.99),  # infeasible: below the smallest feasible ε
}


def instances(config: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decoder float32, probe direction, r of each test input that needs steering) of the
    config's run: its dataset, source, probe and steered inputs, through the plugins."""
    from steerkit_runner import load_config

    host = steerkit.get_host()
    cfg = load_config(config)
    dataset = host.registry("dataset").get(cfg.dataset.name)(**cfg.dataset.params)
    splits = dataset.load(seed=cfg.run.seed, n_per_class=cfg.dataset.n_per_class)
    source = host.registry("activation_source").get(cfg.source.name)(**cfg.source.params)
    train = source.activations(list(splits.train.texts))
    test = source.activations(list(splits.test.texts))
    probe = host.registry("probe").get(cfg.probe.name)(**cfg.probe.params)
    probe = probe.fit(train.hidden, splits.train.labels, seed=cfg.run.seed)
    concept = probe.concept(target_class=cfg.probe.target_class, margin=cfg.probe.margin)
    labels = np.asarray(splits.test.labels)
    steered = np.flatnonzero(labels != cfg.probe.target_class)[: cfg.steering.max_inputs]
    hidden = np.asarray(test.hidden)[steered][cfg.steering.dev :]  # the test inputs
    rhs = concept.rhs(hidden)[:, 0]
    return np.asarray(source.decoder()), concept.directions[0], rhs[rhs > 0]


def reference_socp(decoder: Any, w: Any, r: float, eps: float) -> np.ndarray:
    """The reference for the SOCP: CVXPY built on this call, SCS, the same pre-filter."""
    import cvxpy as cp

    keep = pool(decoder, w)
    sub = decoder[keep].astype(np.float64)
    delta = cp.Variable(keep.size, nonneg=True)
    constraints = [(sub @ w) @ delta >= r, cp.norm(sub.T @ delta, 2) <= eps]
    cp.Problem(cp.Minimize(cp.sum(delta)), constraints).solve(solver=cp.SCS)
    full = np.zeros(decoder.shape[0])
    if delta.value is not None:
        full[keep] = np.maximum(delta.value, 0)
    return full


def smallest_eps(decoder: Any, w: Any) -> float:
    """The smallest feasible ε for r = 1 (exact, from the path's end; scales with r)."""
    from steerkit_path import PathSolver

    problem = SteeringProblem.socp(decoder=decoder, directions=w, rhs=1.0, eps=1.0)
    return float(PathSolver.path(problem, cache=False).min_eps(1.0)[0])


def problem_for(setting: str, decoder: Any, w: Any, r: float, end: float) -> SteeringProblem:
    kind, value = SETTINGS[setting]
    if kind == "qp":
        return SteeringProblem.qp(decoder=decoder, directions=w, rhs=r, lam=value)
    eps = value if kind == "socp" else value * end * r
    return SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=eps)


def ours(build: Callable[[], SteeringProblem]) -> tuple[float, Any, dict[str, Any]]:
    """One solve from scratch through the public API — the problem built in the timed call,
    nothing derived from the decoder kept from before — and what the path did."""
    from steerkit_path import PathSolver

    clear_path_cache()
    forget_decoder_copies()
    start = time.perf_counter()
    problem = build()
    solution = steerkit.solve(problem, solver="path")
    seconds = time.perf_counter() - start
    path = PathSolver.path(problem)  # the cached path that answered (no new work)
    h = path.homotopy
    work = {
        "steps": path.steps,
        "rounds": path.jump_rounds,
        "passes": 0 if h is None else h.checked_columns,
    }
    return seconds, solution, work


def warm(build: Callable[[], SteeringProblem]) -> float:
    """`ours` (from scratch) timed warm: once untimed, then timed (the CPU caches hold the
    rows; nothing of the first solve is kept)."""
    ours(build)
    return ours(build)[0]


def walked(build: Callable[[], SteeringProblem]) -> float:
    """The same solve with pivoting switched off (the path walked to the answer, as before
    issue 15): seconds."""
    import steerkit_path.path as path_module

    saved = path_module.JUMP_TARGETS
    path_module.JUMP_TARGETS = 0
    try:
        return ours(build)[0]
    finally:
        path_module.JUMP_TARGETS = saved


def reference(setting: str, problem: SteeringProblem) -> tuple[float, float]:
    decoder, w = problem.decoder, problem.directions[0]
    r = float(problem.rhs[0])
    start = time.perf_counter()
    if problem.lam is not None:
        delta = reference_solve(decoder, w, r, problem.lam)
    else:
        assert problem.eps is not None
        delta = reference_socp(decoder, w, r, problem.eps)
    seconds = time.perf_counter() - start
    # the reference's objective, with its violation (SCS's tolerance) beside it
    return seconds, problem.objective(delta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="gemma-3-270m-offline-sentiment")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--ref-inputs", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=0, help="at most this many (0: all)")
    args = parser.parse_args()

    decoder, w, rhs = instances(args.config)
    if args.inputs:
        rhs = rhs[: args.inputs]
    end = smallest_eps(decoder, w)
    load = os.getloadavg()
    print(
        f"decoder {decoder.shape[0]} × {decoder.shape[1]} {decoder.dtype}, {rhs.size} inputs "
        f"needing steering, ‖w‖ = {np.linalg.norm(w):.3f}, smallest feasible ε / r = {end:.4f}; "
        f"pre-filter {PREFILTER}; load {load[0]:.2f}",
        flush=True,
    )
    print(
        "| setting | ours, median (max) | reference, median | ratio | paired ratio "
        "| walked only, median | L0 | walked breakpoints | rounds | passes "
        "| per breakpoint or round | objective vs reference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for setting in args.settings:
        infeasible = SETTINGS[setting][0] == "near" and SETTINGS[setting][1] < 1
        times, l0, steps, rounds, passes = [], [], [], [], []
        objectives = []
        for r in rhs:
            seconds, solution, work = ours(
                functools.partial(problem_for, setting, decoder, w, float(r), end)
            )
            if solution.ok == infeasible:
                raise SystemExit(f"{setting}, r = {r:.4g}: {solution.status}: {solution.message}")
            times.append(seconds)
            l0.append(solution.l0)
            steps.append(work["steps"])
            rounds.append(work["rounds"])
            passes.append(work["passes"])
            objectives.append(solution.objective)
        ref_times, worse, walks, paired = [], [], [], []
        for r, objective in list(zip(rhs, objectives))[: args.ref_inputs]:
            build = functools.partial(problem_for, setting, decoder, w, float(r), end)
            before = warm(build)
            seconds, ref_objective = reference(setting, build())
            after = warm(build)
            # this VM's speed drifts by ±30% within a minute: the same input timed on both sides
            # of its reference solve gives a ratio that drift moves less
            paired.append(seconds / (0.5 * (before + after)))
            ref_times.append(seconds)
            worse.append(ref_objective / objective - 1.0 if not infeasible else ref_objective)
            walks.append(walked(build))
        median, ref_median = statistics.median(times), statistics.median(ref_times)
        walk = statistics.median(walks)
        work_units = statistics.median([s + k for s, k in zip(steps, rounds)])
        print(
            f"| {setting} | {median:.4f} s ({max(times):.3f}) | {ref_median:.3f} s "
            f"| {ref_median / median:.0f}× "
            f"| {statistics.median(paired):.0f}× ({min(paired):.0f}–{max(paired):.0f}) "
            f"| {walk:.3f} s ({ref_median / walk:.0f}×) "
            f"| {statistics.median(l0):.0f} "
            f"| {statistics.median(steps):.0f} (max {max(steps)}) "
            f"| {statistics.median(rounds):.0f} (max {max(rounds)}) "
            f"| {statistics.median(passes):.0f} "
            f"| {median / max(work_units, 1) * 1e3:.2f} ms "
            + (
                f"| reference {min(worse):+.2%} … {max(worse):+.2%} |"
                if not infeasible
                else f"| reference infeasible on {sum(x == 0 for x in worse)}/{len(worse)} |"
            ),
            flush=True,
        )
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
