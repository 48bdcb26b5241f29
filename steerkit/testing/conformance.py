"""The solver conformance suite: what every backend, ours or a third party's, must pass.

Use it by subclassing in a test module::

    from steerkit.testing import SolverConformance

    class TestMySolver(SolverConformance):
        solver_class = MySolver          # or: solver_name = "my-solver" (looked up in the host)

Every optimum is checked against `reference_solve` (Clarabel, called directly, to 1e-9),
feasibility is recomputed from δ by the core, and what a backend does not declare it must decline.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest

from steerkit.errors import SolverCapabilityError
from steerkit.plugins import get_host
from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.solution import Solution, Status
from steerkit.solve import select_solver
from steerkit.solver import Solver
from steerkit.testing.oracle import min_feasible_norm, reference_solve
from steerkit.testing.problems import random_decoder, random_problem

__all__ = ["SolverConformance"]


class SolverConformance:
    """Subclass and set `solver_class` (or `solver_name`); override the tolerances if you must,
    and say why in your docs."""

    solver_class: ClassVar[type[Solver] | None] = None
    solver_name: ClassVar[str | None] = None
    #: |objective − reference| ≤ rtol · |reference|
    rtol: ClassVar[float] = 1e-6
    #: largest constraint violation allowed, relative to max(1, max |r|)
    feasibility_tol: ClassVar[float] = 1e-6
    #: options passed to every solve
    options: ClassVar[dict[str, Any]] = {}

    # -- helpers ------------------------------------------------------------------------------

    @classmethod
    def backend_class(cls) -> type[Solver]:
        if cls.solver_class is not None:
            return cls.solver_class
        if cls.solver_name is None:
            raise TypeError(f"{cls.__name__}: set solver_class or solver_name")
        return get_host().solvers.get(cls.solver_name)

    @pytest.fixture
    def backend(self) -> Solver:
        cls = self.backend_class()
        missing = cls.missing()
        if missing is not None:
            pytest.fail(f"{cls.name} is not installed ({missing}); pip install {cls.install}")
        return cls()

    def supports(self, kind: ProblemKind, k: int = 1) -> bool:
        cls = self.backend_class()
        return kind in cls.kinds and (cls.max_constraints is None or k <= cls.max_constraints)

    def solve(self, backend: Solver, problem: SteeringProblem) -> Solution:
        solution = backend.solve(problem, **self.options)
        assert isinstance(solution, Solution), f"solve returned {type(solution).__name__}"
        assert solution.solver, "Solution.solver must name the backend"
        assert solution.seconds >= 0
        return solution

    def assert_matches_reference(self, solution: Solution, problem: SteeringProblem) -> None:
        reference = reference_solve(problem)
        assert reference.status is Status.OPTIMAL, f"reference: {reference.raw_status}"
        assert solution.status is Status.OPTIMAL, (
            f"{solution.solver}: {solution.status.value}: {solution.message}"
        )
        assert solution.delta is not None and solution.delta.shape == (problem.d_sae,)
        top = max(1.0, float(np.abs(problem.rhs).max()))
        assert solution.violation <= self.feasibility_tol * top, (
            f"constraint violation {solution.violation:.3e} (tolerance "
            f"{self.feasibility_tol * top:.1e})"
        )
        relative = abs(solution.objective - reference.objective) / max(
            abs(reference.objective), 1e-300
        )
        assert relative <= self.rtol, (
            f"objective {solution.objective!r} vs reference {reference.objective!r}: "
            f"relative difference {relative:.2e} > {self.rtol:.0e} ({problem.describe()})"
        )

    def declines(self, problem: SteeringProblem) -> None:
        cls = self.backend_class()
        assert cls.cannot_solve(problem) is not None, (
            f"{cls.name} does not declare {problem.describe()} but does not decline it"
        )
        with pytest.raises(SolverCapabilityError):
            select_solver(problem, cls.name) if cls.name in get_host().solvers else (
                _raise_capability(cls, problem)
            )

    # -- the suite ----------------------------------------------------------------------------

    def test_declares_capabilities(self) -> None:
        cls = self.backend_class()
        assert isinstance(cls.name, str) and cls.name
        assert cls.kinds, "a solver must solve at least one kind of problem"
        assert all(isinstance(k, ProblemKind) for k in cls.kinds)
        if cls.requires:
            assert cls.install, "name the pip package that provides the required modules"

    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize("k", [1, 3])
    def test_qp_optimum(self, backend: Solver, seed: int, k: int) -> None:
        rng = np.random.default_rng([seed, k, 1])
        lam = float(rng.choice([0.1, 1.0, 10.0]))
        problem = random_problem(rng, "qp", k=k, lam=lam)
        if not self.supports(ProblemKind.QP, k):
            self.declines(problem)
            return
        self.assert_matches_reference(self.solve(backend, problem), problem)

    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize("k", [1, 3])
    @pytest.mark.parametrize("slack", [1.02, 1.5])
    def test_socp_optimum(self, backend: Solver, seed: int, k: int, slack: float) -> None:
        rng = np.random.default_rng([seed, k, 2])
        problem = random_problem(rng, "socp", k=k)
        eps = slack * min_feasible_norm(problem)
        problem = SteeringProblem.socp(
            decoder=problem.decoder, directions=problem.directions, rhs=problem.rhs, eps=eps
        )
        if not self.supports(ProblemKind.SOCP, k):
            self.declines(problem)
            return
        self.assert_matches_reference(self.solve(backend, problem), problem)

    @pytest.mark.parametrize("k", [1, 3])
    def test_socp_infeasible_below_smallest_eps(self, backend: Solver, k: int) -> None:
        rng = np.random.default_rng([k, 3])
        problem = random_problem(rng, "socp", k=k)
        eps = 0.7 * min_feasible_norm(problem)
        problem = SteeringProblem.socp(
            decoder=problem.decoder, directions=problem.directions, rhs=problem.rhs, eps=eps
        )
        if not self.supports(ProblemKind.SOCP, k):
            self.declines(problem)
            return
        solution = self.solve(backend, problem)
        assert solution.status is Status.INFEASIBLE, (
            f"ε = {eps:.4g} is below the smallest feasible ε; got {solution.status.value}"
        )
        assert solution.message, "an infeasible status must say why"

    @pytest.mark.parametrize("kind", ["qp", "socp"])
    def test_direction_orthogonal_to_every_row_is_infeasible(
        self, backend: Solver, kind: str
    ) -> None:
        rng = np.random.default_rng(4)
        decoder = random_decoder(rng, 40, 10)
        decoder[:, -1] = 0.0  # every row lies in the first 9 coordinates
        direction = np.zeros(10)
        direction[-1] = 2.0
        build = SteeringProblem.qp if kind == "qp" else SteeringProblem.socp
        parameter = {"lam": 1.0} if kind == "qp" else {"eps": 10.0}
        problem = build(decoder=decoder, directions=direction, rhs=1.0, **parameter)
        if not self.supports(ProblemKind(kind)):
            self.declines(problem)
            return
        solution = self.solve(backend, problem)
        assert solution.status is Status.INFEASIBLE, f"got {solution.status.value}"

    @pytest.mark.parametrize("kind", ["qp", "socp"])
    @pytest.mark.parametrize("k", [1, 3])
    def test_already_satisfied_gives_zero(self, backend: Solver, kind: str, k: int) -> None:
        rng = np.random.default_rng([k, 5])
        problem = random_problem(rng, kind, k=k)
        problem = problem.with_rhs(-np.abs(problem.rhs) - 0.1)
        if not self.supports(ProblemKind(kind), k):
            self.declines(problem)
            return
        solution = self.solve(backend, problem)
        assert solution.status is Status.OPTIMAL
        assert solution.delta is not None
        assert solution.objective <= 1e-7, (
            f"r ≤ 0 needs no steering; objective {solution.objective}"
        )

    @pytest.mark.parametrize("kind", ["qp", "socp"])
    def test_duplicated_decoder_rows(self, backend: Solver, kind: str) -> None:
        rng = np.random.default_rng(6)
        base = random_decoder(rng, 30, 10)
        decoder = np.concatenate([base, base, base[:5]])
        problem = random_problem(rng, kind, decoder=decoder)
        if kind == "socp":
            problem = SteeringProblem.socp(
                decoder=decoder,
                directions=problem.directions,
                rhs=problem.rhs,
                eps=1.2 * min_feasible_norm(problem),
            )
        if not self.supports(ProblemKind(kind)):
            self.declines(problem)
            return
        self.assert_matches_reference(self.solve(backend, problem), problem)

    @pytest.mark.parametrize("kind", ["qp", "socp"])
    @pytest.mark.parametrize("scale", [1e-3, 1e3])
    def test_extreme_scales(self, backend: Solver, kind: str, scale: float) -> None:
        rng = np.random.default_rng(7)
        problem = random_problem(rng, kind, scale=scale)
        if kind == "socp":
            problem = SteeringProblem.socp(
                decoder=problem.decoder,
                directions=problem.directions,
                rhs=problem.rhs,
                eps=1.3 * min_feasible_norm(problem),
            )
        if not self.supports(ProblemKind(kind)):
            self.declines(problem)
            return
        self.assert_matches_reference(self.solve(backend, problem), problem)

    @pytest.mark.parametrize("kind", ["qp", "socp"])
    def test_batch_equals_one_at_a_time(self, backend: Solver, kind: str) -> None:
        rng = np.random.default_rng(8)
        problem = random_problem(rng, kind)
        if not self.supports(ProblemKind(kind)):
            self.declines(problem)
            return
        problems = [problem.with_rhs(problem.rhs * f) for f in (0.5, 1.0, -1.0, 0.9)]
        batch = backend.solve_batch(problems, **self.options)
        assert len(batch) == len(problems)
        for one, p in zip(batch, problems):
            alone = self.solve(backend, p)
            assert one.status is alone.status
            assert math.isclose(one.objective, alone.objective, rel_tol=self.rtol, abs_tol=1e-9)

    def test_unknown_option_is_rejected(self, backend: Solver) -> None:
        kind = sorted(self.backend_class().kinds, key=lambda k: k.value)[0]
        problem = random_problem(np.random.default_rng(9), kind)
        with pytest.raises(TypeError, match="no_such_option"):
            backend.solve(problem, no_such_option=1)


def _raise_capability(cls: type[Solver], problem: SteeringProblem) -> None:
    reason = cls.cannot_solve(problem)
    if reason is not None:
        raise SolverCapabilityError(reason)
