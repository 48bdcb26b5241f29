"""normalize="per_input" on plain arrays, against an independent oracle: CVXPY with Clarabel for
the smallest scale under k > 1 constraints."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from steerkit_baselines import SingleFeature

from steerkit import Activations, Concept, InfeasibleError, MethodContext

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
