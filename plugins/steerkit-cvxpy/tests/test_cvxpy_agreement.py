"""`steerkit.solve` through these backends agrees with a direct CVXPY solve written out here,
with plain cvxpy and numpy only (no steerkit code in the model), to 1e-6 relative objective."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest

import steerkit
from steerkit import PluginHost, SteeringProblem

Array = np.ndarray[Any, Any]
NAMES = ["cvxpy-clarabel", "cvxpy-ecos", "cvxpy-scs", "cvxpy-osqp", "cvxpy-gurobi"]


def data(
    seed: int, k: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A decoder (80, 16) with unit rows, k directions and margins that bind."""
    rng = np.random.default_rng(seed)
    decoder = rng.normal(size=(80, 16))
    decoder /= np.linalg.norm(decoder, axis=1, keepdims=True)
    directions = rng.normal(size=(k, 16))
    # r from a feasible δ₀ ≥ 0 on a few features that push every direction up
    a = directions @ decoder.T
    chosen = np.argsort(a.min(axis=0))[-3:]
    rhs = 0.7 * a[:, chosen].sum(axis=1)
    assert np.all(rhs > 0)
    return decoder, directions, rhs


def direct(
    decoder: Array,
    directions: Array,
    rhs: Array,
    *,
    lam: float | None = None,
    eps: float | None = None,
) -> float:
    """min 1ᵀδ (+ λ/2 ‖Dᵀδ‖²) s.t. W Dᵀ δ ≥ r, δ ≥ 0 (, ‖Dᵀδ‖ ≤ ε), as anyone would write it."""
    delta = cp.Variable(decoder.shape[0])
    constraints = [delta >= 0, (directions @ decoder.T) @ delta >= rhs]
    objective = cp.sum(delta)
    if lam is not None:
        objective = objective + lam / 2 * cp.sum_squares(decoder.T @ delta)
    if eps is not None:
        constraints.append(cp.norm(decoder.T @ delta, 2) <= eps)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL, problem.status
    return float(problem.value)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("name", [None, *NAMES])
def test_qp_agrees_with_a_direct_cvxpy_solve(name: str | None, k: int) -> None:
    decoder, directions, rhs = data(k, k)
    expected = direct(decoder, directions, rhs, lam=2.0)
    problem = SteeringProblem.qp(decoder=decoder, directions=directions, rhs=rhs, lam=2.0)
    solution = steerkit.solve(problem, name, host=PluginHost(allow=["steerkit-cvxpy"]))
    assert solution.solver == (name or "cvxpy-clarabel")  # automatic: the highest priority
    assert solution.ok, solution.message
    assert abs(solution.objective - expected) <= 1e-6 * expected


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("name", [None, *(n for n in NAMES if n != "cvxpy-osqp")])
def test_socp_agrees_with_a_direct_cvxpy_solve(name: str | None, k: int) -> None:
    decoder, directions, rhs = data(10 + k, k)
    # ε: 1.2 × the norm of the QP's optimum for a large λ, i.e. close to the smallest feasible
    smallest = cp.Variable(decoder.shape[0])
    cp.Problem(
        cp.Minimize(cp.norm(decoder.T @ smallest, 2)),
        [smallest >= 0, (directions @ decoder.T) @ smallest >= rhs],
    ).solve(solver=cp.CLARABEL)
    eps = 1.2 * float(np.linalg.norm(decoder.T @ smallest.value))
    expected = direct(decoder, directions, rhs, eps=eps)
    problem = SteeringProblem.socp(decoder=decoder, directions=directions, rhs=rhs, eps=eps)
    solution = steerkit.solve(problem, name, host=PluginHost(allow=["steerkit-cvxpy"]))
    assert solution.solver == (name or "cvxpy-clarabel")
    assert solution.ok, solution.message
    assert abs(solution.objective - expected) <= 1e-6 * expected
    assert float(np.linalg.norm(decoder.T @ solution.delta)) <= eps * (1 + 1e-6)
