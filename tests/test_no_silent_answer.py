"""Never a silent wrong answer, for every installed backend (issue 12, item 1): an unreachable
direction is infeasible with a reason, extreme scales are solved right or declined naming the
supported range, and a problem does not change when the caller's array does."""

from __future__ import annotations

import numpy as np
import pytest

import steerkit
from steerkit import PluginHost, ProblemKind, Status, SteeringProblem
from steerkit.answer import allowed_violation
from steerkit.testing.oracle import reference_solve

pytestmark = pytest.mark.needs_plugins


def _backends(kind: str) -> list[str]:
    host = PluginHost()
    return sorted(
        name
        for name in host.solvers.names()
        if ProblemKind(kind) in host.solvers.get(name).kinds
        and host.solvers.get(name).is_installed()
        and name != "cvxpy-gurobi"  # the pip licence stops at 200 variables; see its own tests
    )


def _build(kind: str, **arrays: object) -> SteeringProblem:
    if kind == "qp":
        return SteeringProblem.qp(lam=1.0, **arrays)  # type: ignore[arg-type]
    return SteeringProblem.socp(eps=10.0, **arrays)  # type: ignore[arg-type]


def _solve(name: str, problem: SteeringProblem) -> steerkit.Solution:
    return steerkit.solve(problem, name, host=PluginHost())


def _never_optimal_with_violation(solution: steerkit.Solution, problem: SteeringProblem) -> None:
    if solution.ok:
        assert solution.violation <= allowed_violation(problem), solution
        assert np.isfinite(solution.objective)
    else:
        assert solution.message, "a non-optimal status must say why"
        with pytest.raises(steerkit.SteerkitError):
            solution.raise_for_status()


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_direction_orthogonal_to_every_row_up_to_rounding_is_infeasible(kind: str) -> None:
    rng = np.random.default_rng(11)
    decoder = rng.normal(size=(64, 16))
    decoder[:, -1] = 1e-15 * rng.normal(size=64)  # max Dw ≈ 1e-15
    direction = np.zeros(16)
    direction[-1] = 1.0
    problem = _build(kind, decoder=decoder, directions=direction, rhs=1.0)
    for name in _backends(kind):
        solution = _solve(name, problem)
        assert solution.status is Status.INFEASIBLE, f"{name}: {solution}: {solution.message}"
        assert "no decoder row has a positive component" in solution.message, name
        assert "tighten" not in solution.message


@pytest.mark.parametrize("kind", ["qp", "socp"])
@pytest.mark.parametrize("case", ["rhs 1e300", "decoder x 1e155"])
def test_extreme_scales_are_declined_naming_the_range(kind: str, case: str) -> None:
    rng = np.random.default_rng(12)
    decoder = rng.normal(size=(64, 16)) / 4.0
    direction = rng.normal(size=16)
    rhs = 1e300 if case == "rhs 1e300" else 1.0
    if case != "rhs 1e300":
        decoder *= 1e155
    problem = _build(kind, decoder=decoder, directions=direction, rhs=rhs)
    for name in _backends(kind):
        solution = _solve(name, problem)
        assert solution.status is Status.ERROR, f"{name}: {solution}"
        assert "outside the range the solvers support [1e-100, 1e+100]" in solution.message


def test_tiny_lambda_is_the_lp_limit_on_the_path_and_never_a_silent_zero() -> None:
    """λ = 1e-16 on a 64 × 16 problem with r = 1: the QP's answer is the LP's, one feature, the
    one most aligned with w: δ = r / max Dw there (hand computation; the KKT conditions hold for
    any λ small enough that λ r ‖d‖² / max Dw is below the gap to the second-best alignment)."""
    solved = 0
    for seed in range(20):
        rng = np.random.default_rng([13, seed])
        decoder = rng.normal(size=(64, 16))
        direction = rng.normal(size=16)
        problem = SteeringProblem.qp(decoder=decoder, directions=direction, rhs=1.0, lam=1e-16)
        a = decoder @ direction
        best = int(np.argmax(a))
        expected = np.zeros(64)
        expected[best] = 1.0 / a[best]
        solution = _solve("path", problem)
        assert solution.ok, f"seed {seed}: {solution.message}"
        np.testing.assert_allclose(solution.delta, expected, rtol=1e-9, atol=1e-300)
        assert solution.violation <= allowed_violation(problem)
        for name in _backends("qp"):
            other = _solve(name, problem)
            _never_optimal_with_violation(other, problem)
            solved += other.ok
    assert solved > 0  # the generic backends solve most of them too


def test_tiny_lambda_matches_the_reference_on_the_path() -> None:
    rng = np.random.default_rng(14)
    for lam in (1e-14, 1e-10, 1e-6):
        decoder = rng.normal(size=(64, 16))
        problem = SteeringProblem.qp(
            decoder=decoder, directions=rng.normal(size=16), rhs=1.0, lam=lam
        )
        solution = _solve("path", problem)
        reference = reference_solve(problem)
        assert solution.ok, solution.message
        assert solution.objective == pytest.approx(reference.objective, rel=1e-7)


@pytest.mark.parametrize("name", ["clarabel", "path", "cvxpy-clarabel"])
def test_a_decoder_changed_in_place_does_not_change_the_problem(name: str) -> None:
    rng = np.random.default_rng(15)
    decoder = rng.normal(size=(40, 8))
    direction = rng.normal(size=8)
    problem = SteeringProblem.qp(decoder=decoder, directions=direction, rhs=1.0, lam=1.0)
    first = _solve(name, problem)
    decoder *= 0.1  # the caller's array changes under the problem's feet
    decoder[0] += 3.0
    again = _solve(name, problem)
    assert first.ok and again.ok
    assert again.objective == pytest.approx(first.objective, rel=1e-7)
    assert again.objective == pytest.approx(reference_solve(problem).objective, rel=1e-6)
    # a problem built from the changed array is a new problem
    changed = SteeringProblem.qp(decoder=decoder, directions=direction, rhs=1.0, lam=1.0)
    assert changed.decoder is not problem.decoder
    fresh = _solve(name, changed)
    assert fresh.objective == pytest.approx(reference_solve(changed).objective, rel=1e-6)
    assert abs(fresh.objective - first.objective) > 1e-3
