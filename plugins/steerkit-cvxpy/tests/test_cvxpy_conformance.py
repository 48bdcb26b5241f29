"""Every CVXPY backend passes steerkit's solver conformance suite at its default tolerances
(1e-6 relative objective against the independent reference solve, 1e-6 feasibility).

Backends are looked up by name through the process-wide host, i.e. through the installed
`steerkit` entry point, so discovery is exercised too. A backend whose module is missing fails
(the suite's `backend` fixture fails, it does not skip).
"""

from __future__ import annotations

from steerkit.testing import SolverConformance


class TestClarabel(SolverConformance):
    solver_name = "cvxpy-clarabel"


class TestSCS(SolverConformance):
    solver_name = "cvxpy-scs"


class TestOSQP(SolverConformance):
    solver_name = "cvxpy-osqp"


class TestECOS(SolverConformance):
    solver_name = "cvxpy-ecos"


class TestGurobi(SolverConformance):
    solver_name = "cvxpy-gurobi"
