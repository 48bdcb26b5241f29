"""steerkit-direct: solver backends that call Clarabel and OSQP directly (no CVXPY), set up once
per batch structure and re-solved with only the right-hand side changed."""

from steerkit_direct._base import COMMON_OPTIONS, DirectSolver
from steerkit_direct.clarabel import ClarabelSolver
from steerkit_direct.osqp import OSQPSolver

__all__ = ["COMMON_OPTIONS", "ClarabelSolver", "DirectSolver", "OSQPSolver"]
