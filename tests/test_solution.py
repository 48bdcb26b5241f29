"""Solution: figures computed by the core from δ, the KKT certificate, and status handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerkit import (
    Duals,
    InfeasibleError,
    Solution,
    SolverError,
    Status,
    SteeringProblem,
    ValidationError,
)
from steerkit.solution import certificate


def _one_feature_qp(r: float = 2.0, lam: float = 0.5) -> SteeringProblem:
    # D = I, w = e₀: the optimum is δ = r e₀ with multiplier μ = 1 + λ r (hand computation)
    return SteeringProblem.qp(decoder=np.eye(4), directions=[1.0, 0, 0, 0], rhs=r, lam=lam)


def test_build_computes_objective_and_violation() -> None:
    problem = _one_feature_qp()
    solution = Solution.build(
        problem, [2.0, 0, 0, 0], status="optimal", solver="hand", seconds=0.01
    )
    assert solution.status is Status.OPTIMAL and solution.ok
    assert solution.objective == pytest.approx(2.0 + 0.5 / 2 * 4)
    assert solution.violation == 0.0
    assert math.isnan(solution.gap) and math.isnan(solution.dual_infeasibility)
    assert solution.l0 == 1 and solution.l1 == pytest.approx(2.0)
    np.testing.assert_array_equal(solution.support(), [0])


def test_certificate_is_zero_at_the_hand_optimum() -> None:
    problem = _one_feature_qp(r=2.0, lam=0.5)
    delta = np.array([2.0, 0, 0, 0])
    cert = certificate(problem, delta, Duals(linear=np.array([1 + 0.5 * 2.0])))
    assert cert.gap == pytest.approx(0.0, abs=1e-15)
    assert cert.dual_infeasibility == 0.0


def test_certificate_exposes_a_wrong_multiplier_and_a_wrong_point() -> None:
    problem = _one_feature_qp(r=2.0, lam=0.5)
    delta = np.array([2.0, 0, 0, 0])
    # μ too large: reduced cost of feature 0 is 1 + λ·2 − 3 = −1 → dual infeasible by 1
    assert certificate(problem, delta, Duals(np.array([3.0]))).dual_infeasibility == pytest.approx(
        1
    )
    # a feasible but suboptimal point (extra mass on a useless feature) has a positive gap
    worse = np.array([2.0, 0.5, 0, 0])
    cert = certificate(problem, worse, Duals(np.array([2.0])))
    assert cert.gap > 0.1


def test_socp_certificate_by_hand() -> None:
    # D = I, w = e₀, r = 2, ε = 3: δ = 2 e₀, the norm constraint is slack (ν = 0), μ = 1
    problem = SteeringProblem.socp(decoder=np.eye(3), directions=[1.0, 0, 0], rhs=2.0, eps=3.0)
    delta = np.array([2.0, 0, 0])
    cert = certificate(problem, delta, Duals(np.array([1.0]), norm=0.0))
    assert cert.gap == pytest.approx(0.0, abs=1e-15)
    assert cert.dual_infeasibility == 0.0
    # a slack norm constraint with ν > 0 is not complementary: the gap says so (ν ε = 0.5 · 3)
    assert certificate(problem, delta, Duals(np.array([1.0]), norm=0.5)).gap > 0.2


def test_wrong_dual_shape_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"Duals.linear: expected shape \(1,\)"):
        certificate(_one_feature_qp(), np.array([2.0, 0, 0, 0]), Duals(np.ones(2)))


def test_infeasible_has_no_delta_and_raises_on_request() -> None:
    problem = _one_feature_qp()
    solution = Solution.build(
        problem,
        None,
        status=Status.INFEASIBLE,
        solver="hand",
        seconds=0.0,
        message="ε = 1 is below the smallest feasible ε = 2",
    )
    assert solution.delta is None and not solution.ok
    assert math.isnan(solution.objective) and math.isnan(solution.l1) and solution.l0 == 0
    with pytest.raises(InfeasibleError, match="smallest feasible ε = 2"):
        solution.raise_for_status()
    failed = Solution.build(
        problem, None, status="error", solver="hand", seconds=0.0, message="backend crashed"
    )
    with pytest.raises(SolverError, match="hand: error: backend crashed"):
        failed.raise_for_status()


def test_optimal_needs_a_delta_and_validates_it() -> None:
    problem = _one_feature_qp()
    with pytest.raises(ValidationError, match="Solution.delta: expected an array"):
        Solution(
            status="optimal",
            delta=None,
            objective=0.0,
            gap=0.0,
            violation=0.0,
            dual_infeasibility=0.0,
            iterations=None,
            seconds=0.0,
            solver="x",
        )
    with pytest.raises(ValidationError, match=r"Solution.delta: expected shape \(4,\)"):
        Solution.build(problem, np.ones(3), status="optimal", solver="x", seconds=0.0)
    with pytest.raises(ValidationError, match="finite"):
        Solution.build(problem, [np.nan, 0, 0, 0], status="optimal", solver="x", seconds=0.0)
    with pytest.raises(ValidationError, match="Solution.status: expected one of optimal"):
        Solution.build(problem, np.ones(4), status="solved", solver="x", seconds=0.0)
    with pytest.raises(ValidationError, match="Solution.seconds"):
        Solution.build(problem, np.ones(4), status="optimal", solver="x", seconds=-1.0)


def test_l0_uses_a_relative_threshold() -> None:
    problem = SteeringProblem.qp(decoder=np.eye(4), directions=np.ones(4), rhs=1.0, lam=1.0)
    delta = np.array([1.0, 2e-5, 5e-6, 0.0])  # 5e-6 < 1e-5 × max: numerical dust
    solution = Solution.build(problem, delta, status="optimal", solver="x", seconds=0.0)
    assert solution.l0 == 2
    assert solution.summary()["l0"] == 2
    assert solution.summary()["status"] == "optimal"
    assert solution.delta is not None
    with pytest.raises(ValueError):
        solution.delta[0] = 5.0  # read-only


def test_satisfied_is_zero_with_an_exact_certificate() -> None:
    problem = _one_feature_qp(r=-1.0)
    solution = Solution.satisfied(problem, solver="hand", seconds=0.5, info={"k": 1})
    assert solution.ok and "already_satisfied" in solution.flags
    np.testing.assert_array_equal(solution.delta, np.zeros(4))
    assert solution.gap == 0.0 and solution.dual_infeasibility == 0.0
    assert solution.seconds == 0.5 and solution.info == {"k": 1}
    socp = SteeringProblem.socp(decoder=np.eye(4), directions=[1.0, 0, 0, 0], rhs=0.0, eps=1.0)
    assert Solution.satisfied(socp, solver="hand").duals.norm == 0.0  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=r"every right-hand side ≤ 0.*max r = 2"):
        Solution.satisfied(_one_feature_qp(r=2.0), solver="hand")


def test_failure_carries_no_delta_and_needs_a_reason() -> None:
    solution = Solution.failure(
        solver="hand", message="stopped", seconds=1.0, status="iteration_limit", iterations=7
    )
    assert solution.status is Status.ITERATION_LIMIT and solution.delta is None
    assert math.isnan(solution.objective) and solution.iterations == 7
    with pytest.raises(SolverError, match="hand: iteration_limit: stopped"):
        solution.raise_for_status()
    with pytest.raises(ValidationError, match="Solution.message"):
        Solution.failure(solver="hand", message="", seconds=0.0)
    with pytest.raises(ValidationError, match="Solution.status"):
        Solution.failure(solver="hand", message="x", seconds=0.0, status="optimal")


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_certificate_of_a_float32_decoder_equals_the_float64_one(kind: str) -> None:
    # oracle: the same decoder values held in float64, where every product is plain float64
    from steerkit.testing.oracle import min_feasible_norm, reference_solve

    rng = np.random.default_rng(11)
    decoder = rng.normal(size=(3000, 24)).astype(np.float32)
    decoder /= np.linalg.norm(decoder, axis=1, keepdims=True)
    decoder[1500:1600] = decoder[:100]  # duplicated rows: exact ties among reduced costs
    w = rng.normal(size=24)
    if kind == "qp":
        build = lambda d: SteeringProblem.qp(decoder=d, directions=w, rhs=2.0, lam=0.7)  # noqa: E731
    else:
        probe = SteeringProblem.socp(decoder=decoder, directions=w, rhs=2.0, eps=1.0)
        eps = 1.5 * min_feasible_norm(probe)
        build = lambda d: SteeringProblem.socp(decoder=d, directions=w, rhs=2.0, eps=eps)  # noqa: E731
    single, double = build(decoder), build(decoder.astype(np.float64))
    ref = reference_solve(double)
    assert ref.delta is not None and ref.duals is not None
    for duals in (ref.duals, Duals(linear=ref.duals.linear * 1.3, norm=ref.duals.norm)):
        got, want = certificate(single, ref.delta, duals), certificate(double, ref.delta, duals)
        assert got.gap == pytest.approx(want.gap, rel=1e-9, abs=1e-13)
        assert got.dual_infeasibility == pytest.approx(want.dual_infeasibility, rel=1e-9, abs=1e-13)
    # and the wrong multiplier is seen as such (μ × 1.3 makes reduced costs negative)
    assert (
        certificate(
            single, ref.delta, Duals(ref.duals.linear * 1.3, ref.duals.norm)
        ).dual_infeasibility
        > 0.01
    )
