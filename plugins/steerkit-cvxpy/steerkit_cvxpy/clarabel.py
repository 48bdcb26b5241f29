"""`cvxpy-clarabel`: CVXPY with Clarabel, an interior-point solver for QPs and SOCPs.

Accurate (tolerances 1e-9 by default, tighter than Clarabel's own 1e-8) and the default choice:
the highest priority of the CVXPY backends.
"""

from __future__ import annotations

from typing import Any, ClassVar

from steerkit import ProblemKind
from steerkit_cvxpy.base import CvxpySolver

__all__ = ["ClarabelSolver"]


class ClarabelSolver(CvxpySolver):
    """QP and SOCP through CVXPY + Clarabel. max_iters → max_iter; tol → gap and feasibility
    tolerances."""

    name = "cvxpy-clarabel"
    description = "CVXPY + Clarabel (interior point): QP and SOCP, accurate"
    kinds = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    priority = 40
    requires = ("cvxpy", "clarabel")
    install = "steerkit-cvxpy"
    cvxpy_solver = "CLARABEL"
    defaults: ClassVar[dict[str, Any]] = {
        "tol_gap_abs": 1e-9,
        "tol_gap_rel": 1e-9,
        "tol_feas": 1e-9,
        "max_iter": 200,
    }
    tol_keys = ("tol_gap_abs", "tol_gap_rel", "tol_feas")
    max_iters_key = "max_iter"
