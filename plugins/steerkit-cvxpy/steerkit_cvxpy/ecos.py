"""`cvxpy-ecos`: CVXPY with ECOS, an interior-point SOCP solver.

ECOS has no quadratic objective; CVXPY passes the QP to it as an SOCP (λ/2‖v‖² becomes an epigraph
variable with a rotated second-order cone), so it solves both kinds. Needs the `ecos` extra.
"""

from __future__ import annotations

from typing import Any, ClassVar

from steerkit import ProblemKind
from steerkit_cvxpy.base import CvxpySolver

__all__ = ["ECOSSolver"]


class ECOSSolver(CvxpySolver):
    """QP (as an SOCP) and SOCP through CVXPY + ECOS. max_iters → max_iters; tol → abstol,
    reltol and feastol."""

    name = "cvxpy-ecos"
    description = "CVXPY + ECOS (interior point): SOCP, and QP as an SOCP"
    kinds = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    priority = 20
    requires = ("cvxpy", "ecos")
    install = "steerkit-cvxpy[ecos]"
    cvxpy_solver = "ECOS"
    defaults: ClassVar[dict[str, Any]] = {
        "abstol": 1e-9,
        "reltol": 1e-9,
        "feastol": 1e-9,
        "max_iters": 200,
    }
    tol_keys = ("abstol", "reltol", "feastol")
    max_iters_key = "max_iters"
