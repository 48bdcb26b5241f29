"""Both direct backends pass steerkit's solver conformance suite at its default tolerances
(1e-6 relative objective against the independent reference solve, 1e-6 feasibility).

Backends are looked up by name through the installed `steerkit` entry point, so discovery is
exercised too; a backend whose module is missing fails (the suite's fixture fails, not skips).
Each backend runs the suite three times: with form="auto" (the suite's 60 × 12 problems get the
gram form from Clarabel and the lifted one from OSQP), and with each form forced.
"""

from __future__ import annotations

from typing import Any, ClassVar

from steerkit.testing import SolverConformance


class TestClarabel(SolverConformance):
    solver_name = "clarabel"


class TestClarabelLifted(SolverConformance):
    solver_name = "clarabel"
    options: ClassVar[dict[str, Any]] = {"form": "lifted"}


class TestClarabelGram(SolverConformance):
    solver_name = "clarabel"
    options: ClassVar[dict[str, Any]] = {"form": "gram"}


class TestOSQP(SolverConformance):
    solver_name = "osqp"


class TestOSQPLifted(SolverConformance):
    solver_name = "osqp"
    options: ClassVar[dict[str, Any]] = {"form": "lifted"}


class TestOSQPGram(SolverConformance):
    solver_name = "osqp"
    options: ClassVar[dict[str, Any]] = {"form": "gram"}
