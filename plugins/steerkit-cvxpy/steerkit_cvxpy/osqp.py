"""`cvxpy-osqp`: CVXPY with OSQP, a first-order (ADMM) QP solver; QPs only.

Polishing (an exact solve on the active set found by ADMM) is what makes OSQP accurate, so it is
on for every solve, warm re-solves included: CVXPY turns it off by default on a warm re-solve of a
parameterised problem (DESIGN.md: gaps 1–2e-4 and hundreds of spurious non-zeros).
"""

from __future__ import annotations

from typing import Any, ClassVar

from steerkit import ProblemKind
from steerkit_cvxpy.base import CvxpySolver, _Model

__all__ = ["OSQPSolver"]


class OSQPSolver(CvxpySolver):
    """QP through CVXPY + OSQP. max_iters → max_iter; tol → eps_abs and eps_rel."""

    name = "cvxpy-osqp"
    description = "CVXPY + OSQP (first order, polished): QP only"
    kinds = frozenset({ProblemKind.QP})
    priority = 5
    requires = ("cvxpy", "osqp")
    install = "steerkit-cvxpy"
    cvxpy_solver = "OSQP"
    defaults: ClassVar[dict[str, Any]] = {
        "eps_abs": 1e-7,
        "eps_rel": 1e-7,
        "max_iter": 20_000,
        "polishing": True,
        "polish_refine_iter": 10,
    }
    tol_keys = ("eps_abs", "eps_rel")
    max_iters_key = "max_iter"

    def _stats(self, model: _Model) -> tuple[int | None, dict[str, Any]]:
        """Adds info["polish"]: OSQP's polish status (1 succeeded, 0 not run, -1 failed)."""
        iterations, info = super()._stats(model)
        results = getattr(model.problem.solver_stats, "extra_stats", None)
        polish = getattr(getattr(results, "info", None), "status_polish", None)
        info["polish"] = int(polish) if polish is not None else None
        return iterations, info
