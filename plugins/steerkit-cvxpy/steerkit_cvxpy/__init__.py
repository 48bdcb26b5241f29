"""steerkit-cvxpy: steerkit's solver backends over CVXPY (Clarabel, ECOS, SCS, OSQP, Gurobi).

Found by steerkit through the `steerkit` entry point (`cvxpy = "steerkit_cvxpy.plugin"`); nothing
here imports cvxpy until a backend solves.
"""

from __future__ import annotations

from steerkit_cvxpy.base import OPTIONS, CvxpySolver
from steerkit_cvxpy.clarabel import ClarabelSolver
from steerkit_cvxpy.ecos import ECOSSolver
from steerkit_cvxpy.gurobi import GurobiSolver
from steerkit_cvxpy.osqp import OSQPSolver
from steerkit_cvxpy.scs import SCSSolver

__version__ = "0.1.0"

__all__ = [
    "OPTIONS",
    "ClarabelSolver",
    "CvxpySolver",
    "ECOSSolver",
    "GurobiSolver",
    "OSQPSolver",
    "SCSSolver",
    "__version__",
]
