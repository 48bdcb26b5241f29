"""Small plugins for the core's tests: a solver backed by the reference solve, and broken ones."""

from __future__ import annotations

import time
from typing import Any

from steerkit import ProblemKind, Solution, Solver, SteeringProblem, hookimpl

__all__ = ["hookimpl"]
from steerkit.testing.oracle import reference_solve


class ReferenceSolver(Solver):
    """Solves anything through steerkit.testing's Clarabel reference."""

    name = "toy-reference"
    requires = ("clarabel",)
    install = "clarabel"
    priority = 10
    description = "the reference solve, for tests"

    def solve(self, problem: SteeringProblem, **options: Any) -> Solution:
        if options:
            raise TypeError(f"{self.name}: unknown options: {', '.join(sorted(options))}")
        start = time.perf_counter()
        ref = reference_solve(problem)
        return Solution.build(
            problem,
            ref.delta,
            status=ref.status,
            solver=self.name,
            seconds=time.perf_counter() - start,
            duals=ref.duals,
            message="" if ref.delta is not None else ref.raw_status,
        )


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


class SolverPlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        register(ReferenceSolver)
        register(OneConstraintSolver)
        register(QPOnlySolver)
        register(MissingSolver)


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
