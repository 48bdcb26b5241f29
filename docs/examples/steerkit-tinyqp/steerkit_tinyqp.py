"""A steerkit plugin in one module: the QP min 1ᵀδ + (λ/2)‖Dᵀδ‖² s.t. A δ ≥ r, δ ≥ 0, handed to
Clarabel as a dense problem in δ alone (P = λ D Dᵀ, d_sae × d_sae: for small dictionaries)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import steerkit


class TinyQPSolver(steerkit.Solver):
    """QPs only, any number of constraints; Clarabel's tolerances set to 1e-10."""

    name = "tinyqp"
    kinds = frozenset({steerkit.ProblemKind.QP})
    requires = ("clarabel", "scipy")  # checked with find_spec: nothing is imported to list us
    install = "clarabel scipy"
    description = "Clarabel on the dense QP in δ (an example plugin)"

    def solve(self, problem: steerkit.SteeringProblem, **options: Any) -> steerkit.Solution:
        if options:
            raise TypeError(f"{self.name}: unknown options: {', '.join(sorted(options))}")
        if problem.kind is not steerkit.ProblemKind.QP:
            raise steerkit.SolverCapabilityError(f"{self.name} solves QPs only")
        import clarabel  # imported here, so that discovery stays light
        import scipy.sparse as sp

        start = time.perf_counter()
        n, k = problem.d_sae, problem.n_constraints
        decoder = np.asarray(problem.decoder, dtype=np.float64)
        p = sp.triu(problem.lam * (decoder @ decoder.T), format="csc")
        # Clarabel's form: A x + s = b, s ≥ 0. Rows: −A δ ≤ −r (the concept), −δ ≤ 0.
        a = sp.csc_matrix(np.vstack([-problem.constraint_matrix, -np.eye(n)]))
        b = np.concatenate([-problem.rhs, np.zeros(n)])
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-10
        result = clarabel.DefaultSolver(
            p, np.ones(n), a, b, [clarabel.NonnegativeConeT(k + n)], settings
        ).solve()

        raw = str(result.status)
        seconds = time.perf_counter() - start
        if raw.endswith("Solved") and "Almost" not in raw:
            return steerkit.Solution.build(
                problem,
                np.maximum(np.asarray(result.x), 0.0),
                status=steerkit.Status.OPTIMAL,
                solver=self.name,
                seconds=seconds,
                iterations=int(result.iterations),
                duals=steerkit.Duals(linear=np.asarray(result.z)[:k]),  # μ for A δ ≥ r
            )
        status = steerkit.Status.INFEASIBLE if "Infeasible" in raw else steerkit.Status.ERROR
        if "MaxIterations" in raw:
            status = steerkit.Status.ITERATION_LIMIT
        return steerkit.Solution.build(
            problem,
            None,  # no δ without a proof: never a silent zero vector
            status=status,
            solver=self.name,
            seconds=seconds,
            iterations=int(result.iterations),
            message=f"Clarabel: {raw}",
        )


@steerkit.hookimpl
def register_solvers(register: steerkit.Register) -> None:
    register(TinyQPSolver)
