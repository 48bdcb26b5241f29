"""The conformance suite must pass a correct backend and fail broken ones: a suite that cannot
fail would certify anything."""

from __future__ import annotations

import pytest

BACKENDS = '''
import time
import numpy as np
from steerkit import Solution, Solver, Status
from steerkit.testing import SolverConformance
from steerkit.testing.oracle import reference_solve


class Good(Solver):
    name = "good"

    def answer(self, problem):
        return reference_solve(problem)

    def solve(self, problem, **options):
        if options:
            raise TypeError("unknown options: " + ", ".join(options))
        start = time.perf_counter()
        ref = self.answer(problem)
        return Solution.build(problem, ref.delta, status=ref.status, solver=self.name,
                              seconds=time.perf_counter() - start,
                              message="" if ref.delta is not None else ref.raw_status)


class ZeroOnFailure(Good):
    """Returns a silent zero vector as optimal when it cannot solve."""
    name = "zero-on-failure"

    def solve(self, problem, **options):
        solution = super().solve(problem, **options)
        if solution.ok:
            return solution
        return Solution.build(problem, np.zeros(problem.d_sae), status="optimal",
                              solver=self.name, seconds=0.0)


class Sloppy(Good):
    """Feasible but 1e-4 above the optimum."""
    name = "sloppy"

    def answer(self, problem):
        ref = reference_solve(problem)
        if ref.delta is not None and not problem.already_satisfied:
            object.__setattr__(ref, "delta", ref.delta * 1.0001)
        return ref


class Overclaiming(Good):
    """Says it handles one constraint only, but solves anything when asked: fine. Claims SOCP and
    returns the QP answer: wrong."""
    name = "overclaiming"

    def answer(self, problem):
        from steerkit import SteeringProblem
        if problem.kind.value == "socp":
            problem = SteeringProblem.qp(decoder=problem.decoder, directions=problem.directions,
                                         rhs=problem.rhs, lam=1.0)
        return reference_solve(problem)


class TestGood(SolverConformance):
    solver_class = Good


class TestZeroOnFailure(SolverConformance):
    solver_class = ZeroOnFailure


class TestSloppy(SolverConformance):
    solver_class = Sloppy


class TestOverclaiming(SolverConformance):
    solver_class = Overclaiming
'''


@pytest.fixture
def outcomes(pytester: pytest.Pytester) -> dict[str, dict[str, str]]:
    pytester.makepyfile(test_backends=BACKENDS)
    result = pytester.runpytest_subprocess("-q", "-rA", "-p", "no:cacheprovider")
    per_class: dict[str, dict[str, str]] = {}
    for report in result.outlines:
        for status in ("PASSED", "FAILED", "ERROR"):
            if report.startswith(status + " test_backends.py::"):
                node = report.split(" ", 1)[1].split(" - ")[0]
                _, cls, test = node.split("::")
                per_class.setdefault(cls, {})[test] = status
    return per_class


def test_the_suite_separates_good_from_broken(outcomes: dict[str, dict[str, str]]) -> None:
    good = outcomes["TestGood"]
    assert good and set(good.values()) == {"PASSED"}, good
    assert len(good) >= 30

    zero = outcomes["TestZeroOnFailure"]
    assert zero["test_socp_infeasible_below_smallest_eps[1]"] == "FAILED"
    assert zero["test_direction_orthogonal_to_every_row_is_infeasible[qp]"] == "FAILED"

    sloppy = outcomes["TestSloppy"]
    assert sloppy["test_qp_optimum[1-0]"] == "FAILED"
    assert sloppy["test_socp_optimum[1.5-1-0]"] == "FAILED"
    assert sloppy["test_already_satisfied_gives_zero[1-qp]"] == "PASSED"

    over = outcomes["TestOverclaiming"]
    assert over["test_socp_optimum[1.02-1-0]"] == "FAILED"
    assert over["test_qp_optimum[1-0]"] == "PASSED"
