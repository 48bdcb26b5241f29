"""Small plugins for the core's tests: a solver backed by the reference solve, and broken ones."""

from __future__ import annotations

from typing import Any

from steerkit import ProblemKind, hookimpl

__all__ = ["hookimpl"]
from steerkit.testing import ReferenceSolver as BaseReference


class ReferenceSolver(BaseReference):
    """Solves anything through steerkit.testing's Clarabel reference."""

    name = "toy-reference"
    requires = ("clarabel",)
    install = "clarabel"
    priority = 10
    description = "the reference solve, for tests"


class OneConstraintSolver(ReferenceSolver):
    """Preferred, but only for one constraint: selection must fall through for k > 1."""

    name = "toy-one-constraint"
    max_constraints = 1
    priority = 50


class QPOnlySolver(ReferenceSolver):
    name = "toy-qp-only"
    kinds = frozenset({ProblemKind.QP})
    priority = 5


class MissingSolver(ReferenceSolver):
    """Highest priority, but its module is not installed."""

    name = "toy-missing"
    requires = ("steerkit_module_that_does_not_exist",)
    install = "steerkit-not-a-package"
    priority = 1000


class BrokenCheckSolver(ReferenceSolver):
    """Highest priority, but its installation check itself raises (a third-party bug)."""

    name = "toy-broken-check"
    priority = 2000

    @classmethod
    def missing(cls) -> str | None:
        raise RuntimeError("licence server unreachable")


class SolverPlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        register(ReferenceSolver)
        register(OneConstraintSolver)
        register(QPOnlySolver)
        register(MissingSolver)


class BrokenCheckPlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        register(BrokenCheckSolver)


class SameNamePlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        register(ReferenceSolver)


class RaisingPlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        raise RuntimeError("this plugin is broken")


class MisspeltPlugin:
    @hookimpl
    def register_solver(self, register: Any) -> None:  # no such hook: register_solvers
        register(ReferenceSolver)


class NotASolverPlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        register(object)
