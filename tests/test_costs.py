"""Cost-weighted sparsity, min cᵀδ (+ (λ/2)‖Dᵀδ‖²): validation, the core's figures, and every
installed backend against a CVXPY + Clarabel solve of the weighted problem written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest

import steerkit
from steerkit import PluginHost, SteeringProblem, ValidationError
from steerkit.solution import Status

D_SAE, D_MODEL = 40, 6


def _data(seed: int = 0, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    decoder = rng.standard_normal((D_SAE, D_MODEL))
    directions = rng.standard_normal((k, D_MODEL))
    rhs = np.full(k, 1.5)
    costs = rng.uniform(0.2, 3.0, D_SAE)
    return decoder, directions, rhs, costs


def _problem(kind: str, costs: object, seed: int = 0, k: int = 1) -> SteeringProblem:
    decoder, directions, rhs, _ = _data(seed, k)
    if kind == "qp":
        return SteeringProblem.qp(
            decoder=decoder, directions=directions, rhs=rhs, lam=1.0, costs=costs
        )
    # ε between the smallest feasible norm and twice it, found on the unweighted problem
    return SteeringProblem.socp(
        decoder=decoder, directions=directions, rhs=rhs, eps=_eps(seed, k), costs=costs
    )


def _eps(seed: int, k: int) -> float:
    decoder, directions, rhs, _ = _data(seed, k)
    return 1.5 * _min_norm(decoder, directions, rhs)


def _min_norm(decoder: np.ndarray, directions: np.ndarray, rhs: np.ndarray) -> float:
    import cvxpy as cp

    delta = cp.Variable(decoder.shape[0], nonneg=True)
    v = decoder.T @ delta
    prob = cp.Problem(cp.Minimize(cp.norm(v)), [directions @ v >= rhs])
    prob.solve(solver=cp.CLARABEL)
    return float(prob.value)


def _oracle(problem: SteeringProblem) -> tuple[float, np.ndarray]:
    """The weighted problem written directly in CVXPY, solved by Clarabel: (objective, δ)."""
    import cvxpy as cp

    decoder = np.asarray(problem.decoder, dtype=np.float64)
    costs = np.ones(problem.d_sae) if problem.costs is None else np.asarray(problem.costs)
    excluded = np.isinf(costs)
    delta = cp.Variable(problem.d_sae, nonneg=True)
    v = decoder.T @ delta
    objective = np.where(excluded, 0.0, costs) @ delta
    constraints = [problem.directions @ v >= problem.rhs]
    if excluded.any():
        constraints.append(delta[np.flatnonzero(excluded)] == 0)
    if problem.kind.value == "qp":
        objective = objective + problem.lam / 2 * cp.sum_squares(v)
    else:
        constraints.append(cp.norm(v) <= problem.eps)
    prob = cp.Problem(cp.Minimize(objective), constraints)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == "optimal", prob.status
    return float(prob.value), np.asarray(delta.value)


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("costs", "words"),
    [
        (np.ones(D_SAE - 1), "shape (40,)"),
        (np.r_[np.ones(D_SAE - 1), np.nan], "NaN"),
        (np.r_[np.ones(D_SAE - 1), 0.0], "costs > 0"),
        (np.r_[np.ones(D_SAE - 1), -2.0], "costs > 0"),
    ],
)
def test_bad_costs_are_refused_naming_the_field(costs: np.ndarray, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        _problem("qp", costs)
    assert info.value.field == "costs"
    assert words in str(info.value)


def test_all_ones_costs_are_the_unweighted_problem() -> None:
    weighted = _problem("qp", np.ones(D_SAE))
    assert weighted.costs is None
    assert weighted.same_structure(_problem("qp", None))


def test_objective_is_c_dot_delta_and_ignores_excluded_zeros() -> None:
    _, _, _, costs = _data()
    costs = costs.copy()
    costs[3] = math.inf
    problem = _problem("socp", costs)
    delta = np.zeros(D_SAE)
    delta[[0, 5]] = [2.0, 0.5]
    assert problem.objective(delta) == pytest.approx(2.0 * costs[0] + 0.5 * costs[5])
    delta[3] = 1.0
    assert problem.objective(delta) == math.inf


def test_unweighted_form_has_the_same_steering_vector_and_objective() -> None:
    _, _, _, costs = _data()
    costs = costs.copy()
    costs[[1, 7]] = math.inf
    problem = _problem("qp", costs)
    form = problem.unweighted()
    assert form is not None
    plain, kept, scale = form
    assert plain.costs is None and plain.d_sae == D_SAE - 2
    assert 1 not in kept and 7 not in kept
    delta_prime = np.random.default_rng(1).uniform(0, 1, plain.d_sae)
    delta = np.zeros(D_SAE)
    delta[kept] = delta_prime / scale
    np.testing.assert_allclose(plain.steering_vector(delta_prime), problem.steering_vector(delta))
    assert plain.objective(delta_prime) == pytest.approx(problem.objective(delta))


# -- every backend against the weighted oracle --------------------------------------------------


def _backends() -> list[str]:
    host = PluginHost()
    names = []
    for info in steerkit.available_solvers(host=host):
        if info.installed and info.name != "cvxpy-gurobi":
            names.append(info.name)
    return sorted(names)


def _solve(name: str, problem: SteeringProblem) -> steerkit.Solution:
    return steerkit.solve(problem, name, host=PluginHost())


def _assert_matches(name: str, problem: SteeringProblem, solution: steerkit.Solution) -> None:
    value, reference = _oracle(problem)
    assert solution.status is Status.OPTIMAL, (name, solution.message)
    assert solution.objective == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert solution.violation <= 1e-6
    # the weighted optimum's vector (unique for the QP; for the SOCP up to the solver's accuracy)
    np.testing.assert_allclose(
        problem.steering_vector(solution.delta),
        problem.steering_vector(reference),
        atol=2e-3 * max(1.0, float(np.abs(problem.steering_vector(reference)).max())),
    )


def _backend_kinds() -> list[tuple[str, str]]:
    solvers = PluginHost().solvers
    return [
        (name, kind.value)
        for name in _backends()
        for kind in sorted(solvers.get(name).kinds, key=str)
    ]


@pytest.mark.needs_plugins
@pytest.mark.parametrize(("name", "kind"), _backend_kinds())
def test_backend_solves_the_weighted_problem(name: str, kind: str) -> None:
    _, _, _, costs = _data()
    costs = costs.copy()
    costs[np.argsort(_problem(kind, None).constraint_matrix[0])[-3:]] = math.inf
    problem = _problem(kind, costs)
    solution = _solve(name, problem)
    _assert_matches(name, problem, solution)
    assert solution.gap <= 1e-5
    # the unweighted optimum is not the weighted one: the costs change the answer
    plain = _oracle(_problem(kind, None))[1]
    assert problem.objective(plain) > solution.objective + 1e-6


@pytest.mark.needs_plugins
@pytest.mark.parametrize("name", _backends())
def test_infinite_cost_features_are_never_used(name: str) -> None:
    plain = _solve(name, _problem("qp", None))
    assert plain.ok, plain.message
    used = plain.support()
    costs = np.ones(D_SAE)
    costs[used] = math.inf
    problem = _problem("qp", costs)
    solution = _solve(name, problem)
    if solution.ok:
        assert solution.delta is not None
        assert np.all(solution.delta[used] == 0.0)
        _assert_matches(name, problem, solution)
    else:
        assert solution.status is Status.INFEASIBLE, solution.message


@pytest.mark.needs_plugins
@pytest.mark.parametrize("name", _backends())
def test_all_ones_costs_give_the_unweighted_answer(name: str) -> None:
    ones = _solve(name, _problem("qp", np.ones(D_SAE), seed=2))
    plain = _solve(name, _problem("qp", None, seed=2))
    assert ones.ok and plain.ok
    assert ones.objective == pytest.approx(plain.objective, rel=1e-9)
    np.testing.assert_allclose(ones.delta, plain.delta, rtol=1e-9, atol=1e-12)


@pytest.mark.needs_plugins
def test_a_batch_of_weighted_problems_is_mapped_back_in_order() -> None:
    _, _, _, costs = _data()
    base = _problem("qp", costs)
    problems = [base.with_rhs(r) for r in (0.5, -1.0, 2.0)]
    solutions = steerkit.solve_batch(problems, "path", host=PluginHost())
    assert [s.status for s in solutions] == [Status.OPTIMAL] * 3
    assert solutions[1].objective == 0.0
    for problem, solution in zip(problems, solutions):
        if problem.rhs[0] > 0:
            assert solution.objective == pytest.approx(_oracle(problem)[0], rel=1e-6)


@pytest.mark.needs_plugins
def test_every_feature_excluded_is_infeasible_with_a_reason() -> None:
    problem = _problem("qp", np.full(D_SAE, math.inf))
    solution = _solve("path", problem)
    assert solution.status is Status.INFEASIBLE
    assert "excluded" in solution.message


@pytest.mark.needs_plugins
def test_a_weighted_answer_that_ignores_the_costs_is_refused() -> None:
    """The core's certificate knows the costs: the unweighted optimum, claimed optimal for the
    weighted problem, is not vouched for."""
    from steerkit.answer import check

    _, _, _, costs = _data()
    problem = _problem("qp", costs)
    wrong = _solve("path", _problem("qp", None))
    claimed = steerkit.Solution.build(
        problem, wrong.delta, status=Status.OPTIMAL, solver="liar", seconds=0.0
    )
    assert not check(problem, claimed).ok


@pytest.mark.needs_plugins
@pytest.mark.parametrize("name", ["path", "clarabel"])
def test_a_float32_decoder_with_costs_matches_the_oracle(name: str) -> None:
    """SAE decoders are float32: the rescaled rows are float64, the answer checked against the
    float32 problem."""
    decoder, directions, rhs, costs = _data(5)
    problem = SteeringProblem.qp(
        decoder=decoder.astype(np.float32), directions=directions, rhs=rhs, lam=0.5, costs=costs
    )
    assert problem.decoder.dtype == np.float32
    solution = _solve(name, problem)
    _assert_matches(name, problem, solution)
