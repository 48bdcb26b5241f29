"""The path backend passes steerkit's solver conformance suite at its default tolerances (1e-6
relative objective against the independent reference solve, 1e-6 feasibility); the suite checks
that k = 3 problems are declined. Looked up by name through the installed entry point."""

from __future__ import annotations

from typing import Any, ClassVar

from steerkit.testing import SolverConformance


class TestPath(SolverConformance):
    solver_name = "path"


class TestPathUncached(SolverConformance):
    """The same without the path cache, and with a pool of 4 features: every KKT repair path."""

    solver_name = "path"
    options: ClassVar[dict[str, Any]] = {"cache": False, "pool_size": 4}
