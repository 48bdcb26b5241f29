"""normalize="per_input" and `probe_direction` on plain arrays, against independent oracles: CVXPY
with Clarabel for the smallest scale and the smallest vector under k > 1 constraints, and
steerkit.testing's reference solve (Clarabel, written out by hand) for the optimal SAE-restricted
vectors that probe_direction can never beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from steerkit_baselines import ProbeDirection, SingleFeature

from steerkit import Activations, Concept, InfeasibleError, MethodContext, SteeringProblem
from steerkit.testing.oracle import min_feasible_norm, reference_solve

HOOK = "blocks.0.hook_resid_post"


def context_of(hidden: Any, w: Any, t: Any, decoder: Any = None) -> MethodContext:
    return MethodContext(
        inputs=Activations(hidden=np.asarray(hidden, dtype=np.float64), hook_point=HOOK),
        concept=Concept(directions=np.asarray(w, dtype=np.float64), thresholds=np.asarray(t)),
        decoder=decoder,
    )


def vectors_of(method: Any, context: MethodContext) -> list[Any]:
    result = method.compute(context)
    assert result.shared is False and len(result.vectors) == len(context.inputs)
    assert all(v is not None for v in result.vectors)
    return list(result.vectors)


def cvxpy_smallest_scale(p: np.ndarray, r: np.ndarray) -> float:
    """min c over c ≥ 0 with c·p ≥ r (k constraints), with CVXPY + Clarabel."""
    cp = pytest.importorskip("cvxpy")
    c = cp.Variable()
    problem = cp.Problem(cp.Minimize(c), [c >= 0, c * p >= r])
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL
    return float(c.value)


def cvxpy_smallest_vector(w: np.ndarray, r: np.ndarray) -> np.ndarray | None:
    """argmin ‖v‖² with W v ≥ r, with CVXPY + Clarabel; None when infeasible."""
    cp = pytest.importorskip("cvxpy")
    v = cp.Variable(w.shape[1])
    problem = cp.Problem(cp.Minimize(cp.sum_squares(v)), [w @ v >= r])
    problem.solve(solver=cp.CLARABEL)
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return None
    assert problem.status == cp.OPTIMAL
    return np.asarray(v.value)


# -- the smallest scale of one direction under k constraints --------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_the_smallest_scale_meets_every_constraint_with_one_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d_model, k = 8, 3
    direction = rng.normal(size=d_model)
    w = rng.normal(size=(k, d_model))
    w[w @ direction < 0] *= -1  # every constraint moves along the direction ...
    w[2] -= (1.5 * (w[2] @ direction) / (direction @ direction)) * direction  # ... but one
    p = w @ direction
    hidden = rng.normal(size=(12, d_model))
    t = np.zeros(k)
    t[:2] = np.median(hidden @ w[:2].T, axis=0)  # about half the inputs need steering ...
    hidden[0] += (max(0.0, float(np.max((t[:2] - w[:2] @ hidden[0]) / p[:2]))) + 1) * direction
    t[2] = float((hidden @ w[2]).min()) - 50.0  # ... and the backwards constraint leaves room
    context = context_of(hidden, w, t, decoder=direction[None, :])
    r = t[None, :] - hidden @ w.T
    assert p[2] < 0 and (r[:, 2] < 0).all() and (r > 0).any() and (r <= 0).all(axis=1).any()

    vectors = vectors_of(SingleFeature(feature=0, normalize="per_input"), context)
    for i, vector in enumerate(vectors):
        expected = cvxpy_smallest_scale(p, r[i])
        assert vector.provenance["factor"] == pytest.approx(expected, abs=1e-7)
        slack = w @ (hidden[i] + vector.vector) - t
        assert (slack >= -1e-9).all()
        if (r[i] > 0).any():
            j = vector.provenance["binding_direction"]
            assert slack[j] == pytest.approx(0.0, abs=1e-9) and slack.min() > -1e-9
        else:
            assert not vector.vector.any() and vector.provenance["already_satisfied"] is True
            assert vector.provenance["binding_direction"] is None


def test_a_direction_whose_bounds_cross_is_refused_by_name() -> None:
    """Constraint 0 needs c ≥ 2, constraint 1 (moved backwards) allows c ≤ 1: no scale works."""
    direction = np.array([1.0, 0.0])
    w = np.array([[1.0, 0.0], [-1.0, 1.0]])
    hidden = np.array([[0.0, 0.0], [0.0, 5.0]])  # input 1: c ≥ 2 and c ≤ 7 is fine
    t = np.array([2.0, -1.0])
    with pytest.raises(InfeasibleError, match=r"at least 2 .* at most 1 .*1 of 2 inputs \(0\)"):
        SingleFeature(feature=0, normalize="per_input").compute(
            context_of(hidden, w, t, decoder=direction[None, :])
        )


def test_a_constraint_the_direction_does_not_move_is_refused_by_name() -> None:
    direction = np.array([1.0, 0.0])
    w = np.array([[1.0, 0.0], [0.0, 1.0]])  # the direction is orthogonal to constraint 1
    context = context_of([[0.0, 0.0], [0.0, 3.0]], w, [1.0, 1.0], decoder=direction[None, :])
    with pytest.raises(InfeasibleError, match=r"w_1·v = 0 ≤ 0.* 1 of 2 inputs \(0\)"):
        SingleFeature(feature=0, normalize="per_input").compute(context)


# -- probe_direction: the smallest dense vector -----------------------------------------------


@pytest.mark.parametrize(
    ("seed", "k", "d_model", "shape"),
    [
        (0, 2, 8, "random"),
        (1, 3, 8, "random"),
        (2, 5, 12, "random"),
        (3, 10, 4, "random"),  # more constraints than dimensions
        (4, 4, 8, "duplicated"),  # a direction twice
        (5, 4, 8, "combination"),  # a direction that is a positive mix of two others
        (6, 4, 8, "rank_deficient"),  # four directions in a plane
        (7, 4, 8, "band"),  # w and −w: 0 ≤ w·(h + v) − t_0 ≤ 1
    ],
)
def test_probe_direction_matches_cvxpy_and_clarabel(
    seed: int, k: int, d_model: int, shape: str
) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(k, d_model)) * rng.uniform(0.1, 10.0, size=(k, 1))
    if shape == "duplicated":
        w[3] = w[0]
    elif shape == "combination":
        w[3] = 0.3 * w[0] + 0.7 * w[1]
    elif shape == "rank_deficient":
        w = rng.normal(size=(k, 2)) @ rng.normal(size=(2, d_model))
        w[w[:, 0] < 0] *= -1  # keep the constraints compatible
    hidden = rng.normal(size=(10, d_model)) * 2.0
    t = rng.normal(size=k) + 1.0
    if shape == "band":
        w[3] = -w[0]
        t[3] = -t[0] - 1.0
    r = t[None, :] - hidden @ w.T

    vectors = vectors_of(ProbeDirection(), context_of(hidden, w, t))
    for i, vector in enumerate(vectors):
        v = vector.vector
        expected = cvxpy_smallest_vector(w, r[i])
        assert expected is not None
        np.testing.assert_allclose(v, expected, atol=1e-6 * max(1.0, np.linalg.norm(expected)))
        assert vector.norm <= np.linalg.norm(expected) * (1 + 1e-9) + 1e-12
        slack = w @ (hidden[i] + v) - t
        assert (slack >= -1e-9 * max(1.0, np.abs(r[i]).max())).all()
        mu = np.array(vector.provenance["multipliers"])
        assert (mu >= 0).all()
        np.testing.assert_allclose(v, mu @ w, rtol=1e-12, atol=1e-12)
        active = vector.provenance["active"]
        assert active == [int(j) for j in np.flatnonzero(mu > 0)]
        np.testing.assert_allclose(slack[active], 0.0, atol=1e-9 * max(1.0, np.abs(r[i]).max()))
        if (r[i] <= 0).all():
            assert not v.any() and vector.provenance["already_satisfied"] is True
        else:
            assert active and vector.provenance["already_satisfied"] is False
    assert any(v.provenance["already_satisfied"] for v in vectors) or (r > 0).any(axis=1).all()


def test_probe_direction_with_one_direction_is_r_w_over_w_squared() -> None:
    w = np.array([[3.0, 4.0, 0.0]])  # ‖w‖ = 5
    hidden = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [2.0, 2.0, 2.0]])  # w·h = 0, 7, 14
    vectors = vectors_of(ProbeDirection(), context_of(hidden, w, [10.0]))
    np.testing.assert_allclose(vectors[0].vector, 10.0 * w[0] / 25.0, rtol=1e-15)
    np.testing.assert_allclose(vectors[1].vector, 3.0 * w[0] / 25.0, rtol=1e-15)
    assert not vectors[2].vector.any()
    assert [v.norm for v in vectors] == pytest.approx([2.0, 0.6, 0.0], rel=1e-15)
    assert [v.provenance["factor"] for v in vectors] == pytest.approx([0.4, 0.12, 0.0])


def test_probe_direction_refuses_conflicting_constraints() -> None:
    """w·(h + v) ≥ 1 and −w·(h + v) ≥ 1 cannot both hold; a band 1 ≤ w·(h + v) ≤ 3 can."""
    w = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    hidden = np.array([[5.0, -1.0], [0.0, 0.0]])
    with pytest.raises(InfeasibleError, match=r"2 of 2 inputs \(0, 1\).*check the concept"):
        ProbeDirection().compute(context_of(hidden, w, [1.0, 1.0, 0.0]))
    # input 0 in the band: r = (−4, 2, 2), so v = (−2, 2); input 1: r = (1, 3, 1), v = (1, 1)
    vectors = vectors_of(ProbeDirection(), context_of(hidden, w, [1.0, -3.0, 1.0]))
    np.testing.assert_allclose(vectors[0].vector, [-2.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(vectors[1].vector, [1.0, 1.0], atol=1e-12)
    assert vectors[0].provenance["active"] == [1, 2] and vectors[1].provenance["active"] == [0, 2]


def test_probe_direction_scaled_the_shared_ways_is_the_probe_weight() -> None:
    w = np.array([[3.0, 4.0]])
    context = context_of([[0.0, 0.0], [1.0, 0.0]], w, [5.0])
    (unit,) = ProbeDirection(normalize="unit").compute(context).vectors
    (margin,) = ProbeDirection(normalize="margin").compute(context).vectors
    assert unit is not None and margin is not None
    np.testing.assert_allclose(unit.vector, [0.6, 0.8], rtol=1e-15)
    np.testing.assert_allclose(margin.vector, 3.5 * w[0] / 25.0, rtol=1e-15)  # r = 5 and 2


# -- the SAE-restricted optimum can only be longer ---------------------------------------------


@pytest.mark.parametrize(("seed", "k"), [(0, 1), (1, 1), (2, 2), (3, 2)])
def test_no_sae_restricted_vector_reaching_the_margin_is_shorter(seed: int, k: int) -> None:
    """Against the optimal QP (λ = 1) and the shortest SAE vector, both from Clarabel (steerkit
    .testing's reference, independent of every backend): ‖Dᵀδ‖ ≥ ‖probe_direction‖, and with
    w itself among the decoder rows (k = 1) the two are equal."""
    rng = np.random.default_rng(seed)
    d_model, d_sae = 6, 24
    decoder = rng.normal(size=(d_sae, d_model))
    decoder /= np.linalg.norm(decoder, axis=1, keepdims=True)
    w = rng.normal(size=(k, d_model))
    hidden = rng.normal(size=(5, d_model))
    t = hidden.max(axis=0) @ np.abs(w).T + 0.5  # every input needs steering
    r = t[None, :] - hidden @ w.T
    assert (r > 0).any(axis=1).all()
    shortest = vectors_of(ProbeDirection(), context_of(hidden, w, t))
    for i, vector in enumerate(shortest):
        qp = SteeringProblem.qp(decoder=decoder, directions=w, rhs=r[i], lam=1.0)
        solved = reference_solve(qp)
        assert solved.delta is not None
        optimal = qp.steering_vector(solved.delta)
        assert (w @ optimal >= r[i] - 1e-7).all()  # it reaches the same margin ...
        assert np.linalg.norm(optimal) >= vector.norm * (1 - 1e-9)  # ... and is no shorter
        assert min_feasible_norm(qp) >= vector.norm * (1 - 1e-7)
        if k == 1:
            assert np.linalg.norm(optimal) > 1.01 * vector.norm  # a random dictionary costs
            with_w = np.vstack([decoder, 2.0 * w / np.linalg.norm(w)])
            exact = SteeringProblem.qp(decoder=with_w, directions=w, rhs=r[i], lam=1.0)
            assert min_feasible_norm(exact) == pytest.approx(vector.norm, rel=1e-6)
