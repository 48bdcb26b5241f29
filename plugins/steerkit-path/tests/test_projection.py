"""a = D w from a float32 estimate with a rounding bound, exact where asked: checked against the
float64 product of the same decoder values (the oracle)."""

from __future__ import annotations

import numpy as np
from steerkit_path.projection import ProjectedRows, row_norm_bounds


def _decoder(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    decoder = rng.normal(size=(4000, 300)).astype(np.float32)
    w = rng.normal(size=300) * 3.0
    # near-ties at the top: rows that differ from the best one in a single low-order bit
    best = int(np.argmax(decoder.astype(np.float64) @ w))
    for i in (10, 2000, 3999):
        decoder[i] = decoder[best]
        decoder[i, 0] = np.nextafter(decoder[i, 0], np.float32(np.sign(w[0]) * np.inf))
    decoder[17] = decoder[best]  # an exact twin
    return decoder, w, decoder.astype(np.float64) @ w


def test_estimates_are_within_their_bound_and_exact_values_are_exact() -> None:
    rng = np.random.default_rng(4)
    decoder, w, exact = _decoder(rng)
    a = ProjectedRows(decoder, w)
    assert np.all(np.abs(a.estimate - exact) <= a.bound)
    assert np.all(a.bound < 1e-3 * np.abs(exact).max())  # and the bound is not vacuous
    idx = rng.integers(0, 4000, size=50)
    np.testing.assert_allclose(a[idx], exact[idx], rtol=1e-14)  # float64 sums, another order
    assert a[int(idx[0])] == a[idx][0]
    assert a.argmax() == int(np.argmax(exact))
    assert a.max() == exact.max() or abs(a.max() - exact.max()) <= 1e-14 * exact.max()

    def twins(j: int) -> list[int]:
        return sorted(int(i) for i in a.near(j, 1e-12) if np.array_equal(decoder[i], decoder[j]))

    # rows 10, 2000 and 3999 are one bit above row 17's original, which row 17 duplicates
    assert a.argmax() == 10 and twins(10) == [10, 2000, 3999]
    original = [int(i) for i in np.flatnonzero((decoder == decoder[17]).all(axis=1))]
    assert len(original) == 2 and twins(17) == original


def test_row_norm_bounds_bound_the_norms_tightly() -> None:
    decoder = np.random.default_rng(5).normal(size=(500, 2304)).astype(np.float32)
    norms = np.linalg.norm(decoder.astype(np.float64), axis=1)
    bounds = row_norm_bounds(decoder)
    assert np.all(bounds >= norms) and np.all(bounds <= norms * (1 + 2e-4))


def test_a_float64_decoder_is_exact_from_the_start() -> None:
    rng = np.random.default_rng(6)
    decoder = rng.normal(size=(50, 8))
    w = rng.normal(size=8)
    a = ProjectedRows(decoder, w)
    np.testing.assert_array_equal(a.estimate, decoder @ w)
    assert not a.bound.any()


def test_near_many_finds_what_a_scan_of_every_row_finds() -> None:
    """The sorted-window lookup against the definition, checked row by row: every i with
    |estimateᵢ − aⱼ| ≤ boundᵢ + boundⱼ + rtol·(|aⱼ| + max|estimate|), for features at the top,
    in the crowded middle and at the bottom, with wide tolerances that catch many rows."""
    rng = np.random.default_rng(7)
    decoder, w, _ = _decoder(rng)
    decoder[123] = decoder[2500]  # a twin in the middle of the distribution
    exact = decoder.astype(np.float64) @ w
    a = ProjectedRows(decoder, w)
    order = np.argsort(exact)
    features = np.concatenate([order[-5:], order[1990:2010], order[:5], [17, 123, 2500]])
    for rtol in (1e-12, 1e-4, 1e-2):
        found = a.near_many(features, rtol)
        assert len(found) == features.size
        for j, got in zip(features, found):
            a_j = exact[j]
            slack = a.bound + a.bound[j] + rtol * (abs(a_j) + np.abs(a.estimate).max())
            expected = np.flatnonzero(np.abs(a.estimate - a_j) <= slack)
            np.testing.assert_array_equal(got, expected)
            assert j in got
    assert 2500 in a.near(123, 1e-12) and len(a.near(1990, 1e-2)) > 10  # crowded windows too


def test_learned_rows_give_the_exact_values_and_keep_known_ones() -> None:
    rng = np.random.default_rng(8)
    decoder, w, exact = _decoder(rng)
    a = ProjectedRows(decoder, w)
    first = a[np.array([5, 6])]  # computed by a itself
    idx = np.array([5, 40, 41, 3000])
    a.learn(idx, decoder[idx].astype(np.float64))
    np.testing.assert_allclose(a[idx], exact[idx], rtol=1e-14)
    assert a[5] == first[0] and a[6] == first[1]  # known values stay as they were
    a.learn(np.array([41]), np.zeros((1, 300)))  # a known value is not learned again
    assert a[41] == a[np.array([41])][0] != 0.0
