"""Gurobi under gurobipy's bundled size-limited licence: a model over the limit is declined with
a message that names the licence, the model's size and the fix; never a crash or a zero vector.
(With a full licence, found by the same probe, the same problems must be solved instead.)"""

from __future__ import annotations

import numpy as np
import pytest
from steerkit_cvxpy import GurobiSolver, gurobi
from steerkit_cvxpy.gurobi import LICENCE_VARIABLES, model_size, size_limited

import steerkit
from steerkit import SolverCapabilityError, Status, SteeringProblem
from steerkit.testing import random_problem
from steerkit.testing.oracle import reference_solve


def large(d_sae: int, kind: str = "qp") -> SteeringProblem:
    problem = random_problem(np.random.default_rng(d_sae), "qp", d_sae=d_sae, d_model=8)
    if kind == "qp":
        return problem
    return SteeringProblem.socp(
        decoder=problem.decoder, directions=problem.directions, rhs=problem.rhs, eps=100.0
    )


@pytest.mark.parametrize(("d_sae", "kind"), [(2100, "qp"), (2100, "socp"), (300, "qp")])
def test_over_the_licence_is_an_error_naming_it(d_sae: int, kind: str) -> None:
    problem = large(d_sae, kind)
    solution = GurobiSolver().solve(problem)
    if not size_limited():  # a full licence: the model is solved
        assert solution.status is Status.OPTIMAL
        return
    variables, constraints = model_size(problem)
    assert solution.status is Status.ERROR and solution.delta is None
    assert "size-limited license" in solution.message
    assert f"{variables} variables and {constraints} constraints" in solution.message
    assert f"QP over {d_sae} features" in solution.message or f"SOCP over {d_sae}" in (
        solution.message
    )
    assert "GRB_LICENSE_FILE" in solution.message and "cvxpy-clarabel" in solution.message
    assert solution.seconds < 1.0  # declined before building the model
    with pytest.raises(SolverCapabilityError, match="size-limited license"):
        steerkit.select_solver(problem, "cvxpy-gurobi")


def test_a_wrong_size_estimate_still_names_the_licence(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the up-front check misses (another CVXPY version builds a larger model), Gurobi's own
    failure is caught and the message still points at the licence."""
    monkeypatch.setattr(gurobi, "over_licence", lambda problem: False)
    problem = large(LICENCE_VARIABLES + 50)
    solution = GurobiSolver().solve(problem)
    if not size_limited():  # a full licence: the model is solved
        assert solution.status is Status.OPTIMAL
        return
    assert solution.status is Status.ERROR and solution.delta is None
    assert "size-limited license" in solution.message


def test_under_the_licence_it_solves() -> None:
    problem = random_problem(np.random.default_rng(0), "qp", d_sae=150, d_model=16, k=2)
    assert max(model_size(problem)) <= LICENCE_VARIABLES
    assert GurobiSolver.cannot_solve(problem) is None
    solution = GurobiSolver().solve(problem)
    reference = reference_solve(problem)
    assert solution.status is Status.OPTIMAL
    assert abs(solution.objective - reference.objective) <= 1e-6 * reference.objective
