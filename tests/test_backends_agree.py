"""Every installed solver backend agrees with the independent reference solve on random, often
degenerate, problems drawn by hypothesis (1e-6 relative objective; the same status)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import steerkit
from steerkit import PluginHost, Status
from steerkit.testing.oracle import reference_solve
from steerkit.testing.strategies import steering_problems

pytestmark = pytest.mark.needs_plugins

FIRST_PARTY = {
    "path",
    "clarabel",
    "osqp",
    "cvxpy-clarabel",
    "cvxpy-scs",
    "cvxpy-osqp",
    "cvxpy-ecos",
    "cvxpy-gurobi",
}


#: First-order (ADMM / splitting) backends: on the most degenerate draws (d_model 3, a hundred
#: features, five constraints) they may stop at their iteration limit. That is an honest answer,
#: status and message, never a wrong optimum; it is allowed on at most a fifth of the draws.
FIRST_ORDER = {"osqp", "cvxpy-osqp", "cvxpy-scs"}


def _backends() -> list[str]:
    return sorted(PluginHost().solvers.names())


def test_every_first_party_backend_is_installed() -> None:
    infos = {info.name: info for info in steerkit.available_solvers(host=PluginHost())}
    missing = FIRST_PARTY - {name for name, info in infos.items() if info.installed}
    assert not missing, f"not registered or not installed: {sorted(missing)}"


@pytest.mark.parametrize("name", _backends())
def test_backend_agrees_with_the_reference(name: str) -> None:
    cls = PluginHost().solvers.get(name)
    kinds = tuple(sorted(k.value for k in cls.kinds))
    stopped: list[str] = []
    drawn: list[int] = []

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(
        steering_problems(
            kinds=kinds,
            max_constraints=cls.max_constraints,
            max_features=min(120, cls.max_features or 120),
        )
    )
    def check(problem: steerkit.SteeringProblem) -> None:
        drawn.append(1)
        solution = cls().solve(problem)
        reference = reference_solve(problem)
        if name in FIRST_ORDER and solution.status is Status.ITERATION_LIMIT:
            assert solution.message, (name, problem)
            stopped.append(solution.message)
            return
        if reference.status is Status.INFEASIBLE:
            assert solution.status is Status.INFEASIBLE, (name, problem, solution)
            return
        assert reference.status is Status.OPTIMAL
        assert solution.status is Status.OPTIMAL, (name, problem, solution.message)
        # relative 1e-6, with an absolute floor for the optimum 0 (r ≤ 0: δ = 0); a point that
        # violates the constraints by v may undercut the optimum by about μᵀv (sensitivity)
        assert reference.duals is not None
        slack = float(np.abs(reference.duals.linear).sum()) * solution.violation
        tolerance = 1e-6 * abs(reference.objective) + 1e-12 + slack
        assert abs(solution.objective - reference.objective) <= tolerance, (
            name,
            problem,
            solution.objective,
            reference.objective,
        )
        top = max(1.0, float(abs(problem.rhs).max()))
        assert solution.violation <= 1e-6 * top, (name, problem, solution.violation)

    check()
    assert len(stopped) <= len(drawn) // 5, (name, len(stopped), len(drawn), stopped[:3])


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(steering_problems())
def test_the_reference_agrees_with_a_plain_cvxpy_clarabel_model(
    problem: steerkit.SteeringProblem,
) -> None:
    """The oracle itself, against the textbook CVXPY model of the problem solved by Clarabel:
    so every backend above agrees with CVXPY + Clarabel too."""
    cp = pytest.importorskip("cvxpy")
    decoder = np.asarray(problem.decoder, dtype=np.float64)
    delta = cp.Variable(problem.d_sae, nonneg=True)
    steering = decoder.T @ delta
    constraints = [problem.directions @ steering >= problem.rhs]
    if problem.kind.value == "qp":
        objective = cp.sum(delta) + problem.lam / 2 * cp.sum_squares(steering)
    else:
        objective = cp.sum(delta)
        constraints.append(cp.norm(steering, 2) <= problem.eps)
    model = cp.Problem(cp.Minimize(objective), constraints)
    model.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    reference = reference_solve(problem)
    if reference.status is Status.INFEASIBLE:
        assert model.status in ("infeasible", "infeasible_inaccurate"), (problem, model.status)
        return
    assert reference.status is Status.OPTIMAL, (problem, reference.raw_status)
    assert model.status == "optimal", (problem, model.status)
    value = problem.objective(np.maximum(delta.value, 0.0))
    size = max(1.0, float(np.abs(problem.rhs).max()))
    assert abs(value - reference.objective) <= 1e-6 * abs(reference.objective) + 1e-9 * size, (
        problem,
        value,
        reference.objective,
    )
