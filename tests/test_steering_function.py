"""steerkit.SteeringFunction on hand-built tables: the numpy evaluator against hand computation
(linear for a QP table, norm-keeping for an SOCP table, past the end, gated at r ≤ 0), and the
checks on construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerkit import Positions, SteeringFunction, SteeringVector, ValidationError

QP = SteeringFunction(
    direction=[1.0, 0.0],
    threshold=0.0,
    margins=[0.0, 1.0, 3.0],
    vectors=[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]],
    slope=[0.0, 1.0],
)


def test_qp_table_interpolates_linearly_and_continues_past_the_end() -> None:
    out = QP([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0])
    expected = [[0, 0], [0, 0], [0.5, 0], [1, 0], [1, 1], [1, 2], [1, 4]]
    assert np.array_equal(out, np.array(expected, dtype=float))
    assert np.all(QP([-5.0, 0.0]) == 0.0)


def test_socp_table_keeps_the_norm_on_the_line_between_rows() -> None:
    # ε = 1: row 1 at r = 1 (u = [1, 0]), row 2 at r = 2 (u = [0.3, 0.4], ‖u‖ = ε/r = 0.5)
    f = SteeringFunction(
        direction=[1.0, 0.0],
        threshold=0.0,
        margins=[0.0, 1.0, 2.0],
        vectors=[[0.0, 0.0], [1.0, 0.0], [0.6, 0.8]],
        slope=[0.3, 0.4],
        kind="socp",
        parameter=1.0,
    )
    assert f.budget == 1.0
    r = 1.5
    v = f([r])[0]
    # by hand: bisection for θ with ‖(1 − θ) u₁ + θ u₂‖ = ε/r on [0, 1] (the norm decreases)
    u1, u2 = np.array([1.0, 0.0]), np.array([0.3, 0.4])
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.linalg.norm((1 - mid) * u1 + mid * u2) > 1.0 / r:
            lo = mid
        else:
            hi = mid
    assert np.allclose(v, r * ((1 - lo) * u1 + lo * u2), atol=1e-12)
    assert np.linalg.norm(v) == pytest.approx(1.0)
    assert np.allclose(f([0.5])[0], [0.5, 0.0])  # below row 1: one direction, linear
    assert np.allclose(f([4.0])[0], [1.2, 1.6])  # past the end: r · u_end


def test_margin_and_round_trip() -> None:
    assert np.allclose(QP.margin([[2.0, 5.0], [-1.0, 0.0]]), [-2.0, 1.0])
    again = SteeringFunction.from_parts(QP.arrays(), QP.meta())
    assert again.same_as(QP) and math.isinf(again.exact_to)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"margins": [0.0, 2.0, 1.0]}, "margins"),
        ({"margins": [0.5, 1.0, 3.0]}, "margins"),
        ({"margins": [0.0, 1.0]}, "margins"),
        ({"vectors": [[1.0, 0.0], [1.0, 0.0], [1.0, 2.0]]}, "vectors"),
        ({"slope": [1.0]}, "slope"),
        ({"kind": "lp"}, "kind"),
        ({"parameter": 0.0}, "parameter"),
        ({"threshold": math.nan}, "threshold"),
    ],
)
def test_bad_tables_are_named(change: dict, field: str) -> None:
    parts = {**QP.arrays(), "threshold": 0.0, **change}
    with pytest.raises(ValidationError) as info:
        SteeringFunction(**parts)
    assert info.value.field == field


def test_adaptive_vectors_need_a_matching_function() -> None:
    with pytest.raises(ValidationError, match="k = 1"):
        SteeringVector(vector=[1.0, 0.0], hook_point="h", positions=Positions.ADAPTIVE)
    with pytest.raises(ValidationError, match="width 3"):
        SteeringVector(vector=[1.0, 0.0, 0.0], hook_point="h", positions="adaptive", function=QP)
    ok = SteeringVector(vector=[1.0, 0.0], hook_point="h", positions="adaptive", function=QP)
    assert ok.function is QP
