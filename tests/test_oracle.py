"""The reference solve itself, against hand computations: the oracle must be right too."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerkit import Status, SteeringProblem
from steerkit.testing.oracle import min_feasible_norm, reference_solve


@pytest.mark.parametrize(("r", "lam"), [(2.0, 0.5), (0.3, 10.0), (5.0, 0.01)])
def test_orthonormal_decoder_qp(r: float, lam: float) -> None:
    # D = I, w = e₁: only feature 1 helps; δ₁ = r, objective r + λr²/2, multiplier 1 + λr
    problem = SteeringProblem.qp(decoder=np.eye(5), directions=np.eye(5)[1], rhs=r, lam=lam)
    ref = reference_solve(problem)
    assert ref.status is Status.OPTIMAL
    assert ref.objective == pytest.approx(r + lam * r * r / 2, rel=1e-8)
    np.testing.assert_allclose(ref.delta, r * np.eye(5)[1], atol=1e-7)
    assert ref.duals is not None
    assert ref.duals.linear[0] == pytest.approx(1 + lam * r, rel=1e-6)


def test_two_features_split_by_hand() -> None:
    # rows e₀ and e₁, w = (1, 1): by symmetry δ₀ = δ₁ = r/2; objective r + λ r²/4
    problem = SteeringProblem.qp(decoder=np.eye(2), directions=[1.0, 1.0], rhs=3.0, lam=2.0)
    ref = reference_solve(problem)
    np.testing.assert_allclose(ref.delta, [1.5, 1.5], atol=1e-7)
    assert ref.objective == pytest.approx(3.0 + 2.0 * 9 / 4, rel=1e-8)


def test_socp_feasibility_boundary_by_hand() -> None:
    # D = I, w = 2 e₀: a·δ = 2δ₀ ≥ r needs δ₀ = r/2, whose norm is r/2: feasible iff ε ≥ r/2
    decoder, w, r = np.eye(3), 2 * np.eye(3)[0], 3.0
    loose = SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=1.6)
    assert min_feasible_norm(loose) == pytest.approx(1.5, rel=1e-7)
    ref = reference_solve(loose)
    assert ref.status is Status.OPTIMAL and ref.objective == pytest.approx(1.5, rel=1e-7)
    tight = SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=1.4)
    assert reference_solve(tight).status is Status.INFEASIBLE


def test_no_nonnegative_solution_is_infeasible() -> None:
    # every decoder row points against w: no δ ≥ 0 can raise w·Dᵀδ
    decoder = -np.eye(3)
    problem = SteeringProblem.qp(decoder=decoder, directions=np.ones(3), rhs=1.0, lam=1.0)
    assert reference_solve(problem).status is Status.INFEASIBLE
    assert math.isinf(min_feasible_norm(problem))
