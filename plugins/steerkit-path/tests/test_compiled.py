"""The walk's compiled loops (`steerkit_path._compiled`) against plain numpy statements of what
each computes, and the drop's rotations against a fresh Cholesky factor."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import cholesky
from steerkit_path import _compiled as compiled
from steerkit_path.homotopy import RATE_TOL, _move_left


@pytest.mark.parametrize("position", [0, 7, 28, 29])
def test_rotate_out_leaves_the_factor_of_the_gram_without_that_row(position: int) -> None:
    """R is upper triangular with RᵀR = G (Fortran order, leading dimension above n, as the
    homotopy keeps it). Column `position` moved out as `_drop` does, then the rotations: the
    leading (n−1)×(n−1) block, its rows' signs made positive, is the Cholesky factor of G
    without row and column `position` — computed afresh here."""
    rng = np.random.default_rng(position)
    n, capacity = 30, 41
    rows = rng.normal(size=(n, 50))
    gram = rows @ rows.T
    flat = rng.normal(size=capacity * capacity)  # entries outside the factor: any values
    R = flat.reshape((capacity, capacity), order="F")
    R[:n, :n] = cholesky(gram, lower=False)
    _move_left(flat, (position + 1) * capacity, n * capacity, capacity)
    compiled.rotate_out(flat, capacity, position, n)
    got = R[: n - 1, : n - 1].copy()
    got *= np.where(np.diag(got) < 0, -1.0, 1.0)[:, None]
    keep = np.delete(np.arange(n), position)
    expected = cholesky(gram[np.ix_(keep, keep)], lower=False)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert np.allclose(np.tril(got, -1), 0.0, atol=1e-12 * np.abs(expected).max())


def _bracket_in_numpy(e, r, norms, slack, candidate, e_scale, r_scale, alpha):
    """The bracket as `Homotopy._entering` wrote it in numpy before it was compiled."""
    de = norms * e_scale + slack
    dr = norms * r_scale + 1e-12
    possible = candidate & (r + dr > RATE_TOL)
    sure = possible & (r - dr > RATE_TOL)
    lower = np.full(e.shape, -np.inf)
    upper = np.full(e.shape, np.inf)
    low, high = e - de, e + de
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(low, np.where(low >= 0, r + dr, r - dr), out=lower, where=sure)
        np.divide(high, np.where(high >= 0, r - dr, r + dr), out=upper, where=sure)
    best = min(float(lower.max(initial=-np.inf)), alpha)
    return np.flatnonzero(possible & (np.minimum(upper, alpha) >= best))


@pytest.mark.parametrize("seed", range(6))
def test_entering_bracket_keeps_the_features_numpy_kept(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = 400
    e = rng.normal(size=size)
    r = rng.normal(size=size)
    r[:20] = RATE_TOL * rng.uniform(0.5, 1.5, size=20)  # rates at the tolerance: not sure
    near = rng.choice(size, 30, replace=False)
    e[near] = e[near[0]] * r[near] / r[near[0]]  # ties in e/r: all of them kept
    norms = rng.uniform(0.5, 2.0, size=size)
    slack = 1e-12 * np.abs(e)
    candidate = rng.random(size) < 0.7
    for alpha in (0.05, 0.5, 5.0, math.inf):
        for scales in ((1e-5, 1e-5), (1e-2, 1e-3), (0.0, 0.0)):
            got = compiled.entering_bracket(e, r, norms, slack, candidate, *scales, alpha, RATE_TOL)
            expected = _bracket_in_numpy(e, r, norms, slack, candidate, *scales, alpha)
            np.testing.assert_array_equal(got, expected)
            # and the true first maximiser of min(e/r, α) is among them
            valid = candidate & (r > RATE_TOL)
            enter = np.where(valid, np.minimum(e / np.where(valid, r, 1.0), alpha), -np.inf)
            if np.isfinite(enter.max()):
                assert int(np.argmax(enter)) in set(got.tolist())
    nobody = np.zeros(size, dtype=bool)
    assert (
        compiled.entering_bracket(e, r, norms, slack, nobody, 1e-5, 1e-5, 1.0, RATE_TOL).size == 0
    )


@pytest.mark.parametrize("seed", range(4))
def test_entering_exact_is_numpys_float64_choice(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(300, 64)).astype(np.float32)
    a = rng.normal(size=300)
    F, U = rng.normal(size=64), 0.1 * rng.normal(size=64)
    positions = np.sort(rng.choice(300, 40, replace=False))
    exact = rows[positions].astype(np.float64)
    e, rate = a[positions] - exact @ F, 1.0 - exact @ U
    for alpha in (0.1, 1.0, math.inf):
        k, value = compiled.entering_exact(rows, positions, a, F, U, alpha, RATE_TOL)
        enter = np.where(rate > RATE_TOL, np.minimum(e / rate, alpha), -np.inf)
        assert k == int(np.argmax(enter))  # the first maximiser, as numpy's argmax
        assert value == pytest.approx(float(enter.max()), rel=1e-13)
    none = compiled.entering_exact(rows, positions[:0], a, F, U, 1.0, RATE_TOL)
    assert none == (-1, -math.inf)


def test_leaving_is_the_first_largest_capped_ratio() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 2.0, size=50)
    v = rng.normal(size=50)
    v[[3, 9]] = -1.0
    x[[3, 9]] = -0.5  # a tie: the first one leaves
    for alpha in (0.01, 0.3, 10.0):
        leave_at = np.full(50, -np.inf)
        np.divide(x, v, out=leave_at, where=v < 0)
        np.minimum(leave_at, alpha, out=leave_at)
        j, value = compiled.leaving(x, v, alpha)
        assert j == int(np.argmax(leave_at)) and value == float(leave_at.max())
    assert compiled.leaving(x, np.abs(v), 1.0) == (0, -math.inf)  # none leaves


@pytest.mark.parametrize("seed", range(3))
def test_the_active_rows_products_from_float32_rows_are_float64_products(seed: int) -> None:
    """A float32 decoder's active rows are kept in float32 (exact) and multiplied in float64:
    the same as numpy's product of their float64 values, to float64 rounding."""
    rng = np.random.default_rng(seed)
    rows32 = rng.normal(size=(50, 96)).astype(np.float32)
    rows64 = rows32.astype(np.float64)
    row, coefficients = rng.normal(size=96), rng.normal(size=37)
    scale = np.abs(rows64).sum(axis=1).max() * max(np.abs(row).max(), np.abs(coefficients).max())
    got = compiled.gram_column(rows32, 37, row)
    assert got.dtype == np.float64 and got.shape == (37,)
    np.testing.assert_allclose(got, rows64[:37] @ row, rtol=0, atol=1e-14 * scale)
    combined = compiled.combine_rows(coefficients, rows32)  # the first 37 rows
    np.testing.assert_allclose(combined, coefficients @ rows64[:37], rtol=0, atol=1e-14 * scale)
    # and from float64 rows the same loops give numpy's products too
    np.testing.assert_allclose(
        compiled.gram_column(rows64, 37, row), rows64[:37] @ row, atol=1e-14 * scale
    )
