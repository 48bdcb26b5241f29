"""A solver backend built on the reference solve, so that method and runner tests (and plugin
authors') can solve real problems without depending on any backend plugin."""

from __future__ import annotations

import time
from typing import Any

from steerkit.hookspecs import hookimpl
from steerkit.problem import SteeringProblem
from steerkit.registry import Register
from steerkit.solution import Solution
from steerkit.solver import Solver
from steerkit.testing.oracle import reference_solve

__all__ = ["ReferencePlugin", "ReferenceSolver"]


class ReferenceSolver(Solver):
    """Clarabel through steerkit.testing.oracle: slow, exact, any k; for tests."""

    name = "reference"
    requires = ("clarabel", "scipy")
    install = "steerkit[testing]"
    description = "the test kit's reference solve (Clarabel, tolerance 1e-9)"

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
            message="" if ref.delta is not None else f"Clarabel: {ref.raw_status}",
        )


class ReferencePlugin:
    """Register with ``steerkit_host_factory(("reference", ReferencePlugin()))``."""

    @hookimpl
    def register_solvers(self, register: Register) -> None:
        register(ReferenceSolver)
