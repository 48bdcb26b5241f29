"""`cvxpy-scs`: CVXPY with SCS, a first-order (ADMM) conic solver for QPs and SOCPs.

SCS's defaults stop far too early for steerkit (DESIGN.md measured gaps up to 8.6e-4), so the
defaults here are eps_abs = eps_rel = 1e-9 with up to 100,000 iterations: slower, but within the
conformance suite's 1e-6 relative objective.
"""

from __future__ import annotations

from typing import Any, ClassVar

from steerkit import ProblemKind
from steerkit_cvxpy.base import CvxpySolver

__all__ = ["SCSSolver"]


class SCSSolver(CvxpySolver):
    """QP and SOCP through CVXPY + SCS. max_iters → max_iters; tol → eps_abs and eps_rel."""

    name = "cvxpy-scs"
    description = "CVXPY + SCS (first order): QP and SOCP, tight tolerances by default"
    kinds = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    priority = 10
    requires = ("cvxpy", "scs")
    install = "steerkit-cvxpy"
    cvxpy_solver = "SCS"
    defaults: ClassVar[dict[str, Any]] = {
        "eps_abs": 1e-9,
        "eps_rel": 1e-9,
        "max_iters": 100_000,
    }
    tol_keys = ("eps_abs", "eps_rel")
    max_iters_key = "max_iters"
    #: SCS does better on the plain model (see steerkit_cvxpy.base)
    normalise = False
