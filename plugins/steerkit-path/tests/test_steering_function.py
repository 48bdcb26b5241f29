"""The steering function v*(r) from one path, against `steerkit.solve` (a fresh, uncached path
solve per r: it finds α from λr or ε/r and rebuilds δ, none of the table's interpolation) and the
independent Clarabel reference, at random margins.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from steerkit_path import steering_function

import steerkit
from steerkit import InfeasibleError, SteeringFunction, SteeringProblem, ValidationError
from steerkit.testing import random_decoder
from steerkit.testing.oracle import reference_solve


def _setup(seed: int, d_sae: int = 80, d_model: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return random_decoder(rng, d_sae, d_model), rng.normal(size=d_model)


def _solve(decoder, w, r, *, lam=None, eps=None, solver="path", **more):
    if lam is not None:
        problem = SteeringProblem.qp(decoder=decoder, directions=w[None], rhs=[r], lam=lam)
    else:
        problem = SteeringProblem.socp(decoder=decoder, directions=w[None], rhs=[r], eps=eps)
    options = {"cache": False, **more} if solver == "path" else more
    solution = steerkit.solve(problem, solver, **options)
    return problem, solution


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_qp_table_equals_solve_at_random_margins(seed: int, lam: float) -> None:
    decoder, w = _setup(seed)
    function = steering_function(decoder, w, 0.5, lam=lam, cache=False)
    assert function.n_breakpoints > 3  # the path turns: interpolation is really tested
    rng = np.random.default_rng(100 + seed)
    # margins inside the table, at its rows, and past its last row (the path's last segment)
    rows = function.margins[1:]
    r = np.concatenate([rng.uniform(0, rows[-1], 20), rows[:5], rows[-1] * rng.uniform(1, 5, 5)])
    table = function(r)
    for i, x in enumerate(r):
        problem, solution = _solve(decoder, w, x, lam=lam)
        assert solution.ok
        expected = problem.steering_vector(solution.delta)
        assert _relative(table[i], expected) < 1e-6, (x, _relative(table[i], expected))
        assert table[i] @ w == pytest.approx(x, rel=1e-9)  # every answer meets the margin


@pytest.mark.parametrize("seed", [0, 3])
def test_socp_table_equals_solve_and_keeps_the_budget(seed: int) -> None:
    decoder, w = _setup(seed)
    eps = 1.5
    function = steering_function(decoder, w, 0.0, eps=eps, cache=False)
    assert function.budget == eps
    rows = function.margins
    assert np.allclose(np.linalg.norm(function.vectors[1:], axis=1), eps)  # ‖v_k‖ = ε
    rng = np.random.default_rng(7 + seed)
    r = np.concatenate([rng.uniform(0, rows[-1], 25), rows[1:4]])
    table = function(r)
    for i, x in enumerate(r):
        problem, solution = _solve(decoder, w, x, eps=eps)
        assert solution.ok, solution.message
        expected = problem.steering_vector(solution.delta)
        assert _relative(table[i], expected) < 1e-6, (x, _relative(table[i], expected))
        if x > rows[1]:
            assert np.linalg.norm(table[i]) == pytest.approx(eps, rel=1e-9)
    # past the last row the SOCP is infeasible: the table gives the least-norm vector that
    # meets the margin, whose norm is r times the path's end ratio (the smallest feasible ε/r)
    far = rows[-1] * 2.0
    problem, solution = _solve(decoder, w, far, eps=eps, min_eps=True)  # its exact value
    assert solution.status is steerkit.Status.INFEASIBLE
    v = function([far])[0]
    assert v @ w == pytest.approx(far, rel=1e-9)
    assert np.linalg.norm(v) == pytest.approx(solution.info["min_eps"], rel=1e-6)


def test_table_agrees_with_the_clarabel_reference() -> None:
    decoder, w = _setup(5, d_sae=40, d_model=8)
    function = steering_function(decoder, w, 0.0, lam=1.0, cache=False)
    for x in (0.3, 1.7, 4.0):
        problem = SteeringProblem.qp(decoder=decoder, directions=w[None], rhs=[x], lam=1.0)
        reference = reference_solve(problem)
        expected = problem.steering_vector(reference.delta)
        assert _relative(function([x])[0], expected) < 1e-5


def test_nonpositive_margins_give_exactly_zero() -> None:
    decoder, w = _setup(1)
    for kw in ({"lam": 1.0}, {"eps": 2.0}):
        function = steering_function(decoder, w, 0.0, **kw)
        out = function([-3.0, -1e-12, 0.0, 0.5])
        assert np.all(out[:3] == 0.0)
        assert np.any(out[3] != 0.0)


def test_margin_reads_the_probe() -> None:
    decoder, w = _setup(2)
    function = steering_function(decoder, w, 0.7, lam=1.0)
    h = np.random.default_rng(0).normal(size=(4, w.size))
    assert np.allclose(function.margin(h), 0.7 - h @ w)
    # the steered activation sits exactly on the threshold
    steered = h + function(function.margin(h))
    r = function.margin(h)
    assert np.allclose(np.where(r > 0, steered @ w, 0.7), 0.7)


def test_partial_table_is_exact_to_r_max() -> None:
    decoder, w = _setup(4, d_sae=200, d_model=24)
    full = steering_function(decoder, w, 0.0, lam=1.0, cache=False)
    partial = steering_function(decoder, w, 0.0, lam=1.0, r_max=full.margins[3], cache=False)
    assert math.isfinite(partial.exact_to) and partial.exact_to >= full.margins[3]
    r = np.linspace(0.0, partial.exact_to, 17)
    assert np.allclose(partial(r), full(r), rtol=1e-9, atol=1e-12)


def test_save_round_trip_and_errors() -> None:
    decoder, w = _setup(0)
    function = steering_function(decoder, w, 0.2, eps=1.0)
    again = SteeringFunction.from_parts(function.arrays(), function.meta())
    assert again.same_as(function)
    with pytest.raises(ValidationError, match="exactly one of lam"):
        steering_function(decoder, w, 0.0)
    with pytest.raises(InfeasibleError, match="no decoder row"):
        steering_function(np.abs(decoder), -np.abs(w) - 1e-3, 0.0, lam=1.0, cache=False)
    with pytest.raises(ValidationError, match="strictly increasing"):
        SteeringFunction(
            direction=w,
            threshold=0.0,
            margins=[0.0, 0.0],
            vectors=np.zeros((2, w.size)),
            slope=w,
        )
