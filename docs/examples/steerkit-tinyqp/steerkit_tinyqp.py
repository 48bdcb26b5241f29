"""A steerkit plugin in one module: the QP min 1ᵀδ + (λ/2)‖Dᵀδ‖² s.t. A δ ≥ r, δ ≥ 0, handed to
Clarabel as a dense problem in δ alone (P = λ D Dᵀ, d_sae × d_sae: for small dictionaries).

Written against steerkit's solver template: `solve_group` only solves and returns an Answer per
problem. steerkit decides what needs no solve (r ≤ 0, a direction no decoder row reaches, numbers
out of range), groups the problems that share decoder, directions and λ, and checks every answer
called optimal (violation, duality gap) before anyone sees it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import steerkit
from steerkit import Answer, Outcome


class TinyQPSolver(steerkit.Solver):
    """QPs only, any number of constraints; Clarabel's tolerances set to 1e-10."""

    name = "tinyqp"
    kinds = frozenset({steerkit.ProblemKind.QP})
    requires = ("clarabel", "scipy")  # checked with find_spec: nothing is imported to list us
    install = "clarabel scipy"
    description = "Clarabel on the dense QP in δ (an example plugin)"

    def solve_group(
        self, problems: Sequence[steerkit.SteeringProblem], settings: Any
    ) -> Iterator[Answer]:
        import clarabel  # imported here, so that discovery stays light
        import scipy.sparse as sp

        first = problems[0]  # the group shares decoder, directions and λ: one P and one A
        n, k = first.d_sae, first.n_constraints
        decoder = np.asarray(first.decoder, dtype=np.float64)
        p = sp.triu(first.lam * (decoder @ decoder.T), format="csc")
        # Clarabel's form: A x + s = b, s ≥ 0. Rows: −A δ ≤ −r (the concept), −δ ≤ 0.
        a = sp.csc_matrix(np.vstack([-first.constraint_matrix, -np.eye(n)]))
        options = clarabel.DefaultSettings()
        options.verbose = False
        options.tol_gap_abs = options.tol_gap_rel = options.tol_feas = 1e-10
        cones = [clarabel.NonnegativeConeT(k + n)]
        for problem in problems:
            b = np.concatenate([-problem.rhs, np.zeros(n)])
            result = clarabel.DefaultSolver(p, np.ones(n), a, b, cones, options).solve()
            raw = str(result.status).rsplit(".", 1)[-1]
            iterations = int(result.iterations)
            if raw in ("Solved", "AlmostSolved"):
                yield Answer(
                    Outcome.OPTIMAL,
                    delta=np.asarray(result.x),  # steerkit clips rounding below 0
                    duals=steerkit.Duals(linear=np.asarray(result.z)[:k]),  # μ for A δ ≥ r
                    iterations=iterations,
                    inaccurate=raw == "AlmostSolved",
                    message=f"Clarabel {raw}",
                )
            elif "Infeasible" in raw:  # steerkit writes the reason and the setting to change
                yield Answer(Outcome.INFEASIBLE, iterations=iterations, message=f"Clarabel {raw}")
            elif raw in ("MaxIterations", "MaxTime"):
                yield Answer(Outcome.LIMIT, iterations=iterations, advice="use a larger solver")
            else:  # no δ without a proof: never a silent zero vector
                yield Answer(Outcome.ERROR, iterations=iterations, message=f"Clarabel {raw}")


@steerkit.hookimpl
def register_solvers(register: steerkit.Register) -> None:
    register(TinyQPSolver)
