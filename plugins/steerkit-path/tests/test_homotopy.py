"""The screened homotopy itself: breakpoints and coefficients against scikit-learn's
`lars_path(..., positive=True)` (an independent implementation of the same path), the Cholesky
factor kept equal to the active Gram matrix through entries and drops, the KKT check over all
features with a float32 decoder, and the repair of a pool that misses features."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import lars_path
from steerkit_path.homotopy import Homotopy
from steerkit_path.path import Path

from steerkit.testing import random_decoder


def full_path(decoder: np.ndarray, w: np.ndarray, pool_size: int) -> Homotopy:
    h = Homotopy(decoder, w, np.asarray(decoder, dtype=np.float64) @ w, pool_size=pool_size)
    h.verified()
    return h


def beta_at(h: Homotopy, alpha: float) -> np.ndarray:
    """β(α) from the breakpoint whose segment holds α."""
    k = max(i for i, rec in enumerate(h.records) if rec.alpha >= alpha)
    k = min(k, len(h.records) - 1)
    rec = h.records[k]
    beta = np.zeros(h.d_sae)
    beta[rec.active] = rec.beta(alpha)
    return beta


@pytest.mark.parametrize("seed", range(6))
def test_path_matches_scikit_learn_lars_path(seed: int) -> None:
    """Same breakpoints (sklearn's alphas are ours divided by n_samples = d_model) and the same
    β at each, drops included; with a pool of 5 features, so the repairs are exercised too."""
    rng = np.random.default_rng(seed)
    d_model = 8
    decoder = random_decoder(rng, 60, d_model)
    w = rng.normal(size=d_model) * 2
    h = full_path(decoder, w, pool_size=5)
    alphas, _, coefs = lars_path(decoder.T, w, method="lasso", positive=True, alpha_min=0)
    ours = np.array([rec.alpha for rec in h.records])
    np.testing.assert_allclose(ours, alphas * d_model, rtol=1e-9, atol=1e-12)
    for k, alpha in enumerate(alphas * d_model):
        np.testing.assert_allclose(beta_at(h, alpha), coefs[:, k], rtol=1e-8, atol=1e-10)
    assert h.repairs >= 1


def test_some_paths_drop_features() -> None:
    """The Lasso variant: a coefficient reaching zero leaves the active set (more breakpoints
    than entries), and the path still matches scikit-learn's."""
    drops = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        decoder = random_decoder(rng, 60, 8)
        h = full_path(decoder, rng.normal(size=8) * 2, pool_size=60)
        sizes = [rec.active.size for rec in h.records[:-1]]
        drops += sum(b < a for a, b in itertools.pairwise(sizes))
    assert drops >= 3


def test_cholesky_factor_tracks_the_active_gram_matrix() -> None:
    rng = np.random.default_rng(7)
    decoder = random_decoder(rng, 80, 10)
    w = rng.normal(size=10)
    h = Homotopy(decoder, w, decoder @ w)
    dropped = 0
    while not h.complete:
        before = len(h.active)
        h.step()
        dropped += len(h.active) < before
        gram = decoder[h.active] @ decoder[h.active].T
        np.testing.assert_allclose(h.R.T @ h.R, gram, atol=1e-10)
        assert np.all(np.diag(h.R) > 0) and np.allclose(h.R, np.triu(h.R))
    assert dropped >= 1


def test_every_breakpoint_satisfies_kkt_over_all_features() -> None:
    """c_i = d_iᵀ(w − Dᵀβ) ≤ α everywhere, = α on the active set, β ≥ 0; float32 decoder (the
    screening product in float32 with the exact recheck) and a pool of 8."""
    rng = np.random.default_rng(8)
    decoder = random_decoder(rng, 2000, 32).astype(np.float32)
    w = rng.normal(size=32) * 3
    h = full_path(decoder, w, pool_size=8)
    d64 = decoder.astype(np.float64)
    for rec in h.records:
        c = d64 @ (w - rec.fitted)
        assert c.max() <= rec.alpha * (1 + 1e-9) + 1e-12 * h.alpha0
        np.testing.assert_allclose(c[rec.active], rec.alpha, atol=1e-9 * h.alpha0)
        assert np.all(rec.x - rec.alpha * rec.v >= -1e-12 * np.abs(rec.x).max())
    assert h.repairs >= 1 and h.pool.size < 2000


def test_a_one_row_dictionary_and_rank_deficient_rows() -> None:
    """Rows spanning a 3-d subspace of a 6-d space: the path ends (α = 0) with at most 3 active
    features; the end fit is w's projection on the cone of the rows."""
    rng = np.random.default_rng(9)
    basis = rng.normal(size=(3, 6))
    decoder = rng.uniform(0.1, 1.0, size=(20, 3)) @ basis
    w = basis.T @ rng.uniform(0.5, 1.0, size=3) + rng.normal(size=6) * 0.1
    h = full_path(decoder, w, pool_size=4)
    end = h.records[-1]
    assert end.alpha == 0.0 and end.active.size <= 3
    one = Path(decoder[:1], w)
    points = one.qp(1.0, 1.0)
    jumped = points.breakpoints[int(points.segment[0])].jump > 0  # found without walking
    assert one.complete or one.steps >= 1 or jumped
    assert points.dense(0)[0] > 0


@pytest.mark.parametrize("seed", range(3))
def test_a_float32_pool_follows_the_same_path_as_a_float64_one(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The float32 pool brackets every entering α with its rounding bound and recomputes the
    contenders in float64: the breakpoints (α, active sets, x, v) equal those of the float64
    pool, and KKT holds over all features at every breakpoint."""
    import steerkit_path.homotopy as homotopy

    rng = np.random.default_rng(100 + seed)
    decoder = random_decoder(rng, 1500, 24).astype(np.float32)
    w = rng.normal(size=24) * 3
    a = decoder.astype(np.float64) @ w
    monkeypatch.setattr(homotopy, "POOL32_SIZE", 10**12)
    reference = full_path(decoder, w, pool_size=40)
    assert reference.Dp.dtype == np.float64
    monkeypatch.setattr(homotopy, "POOL32_SIZE", 0)
    h = Homotopy(decoder, w, a, pool_size=40)
    h.verified()
    assert h.Dp.dtype == np.float32
    assert len(h.records) == len(reference.records) > 30
    for ours, theirs in zip(h.records, reference.records):
        assert ours.active.tolist() == theirs.active.tolist()
        assert ours.alpha == pytest.approx(theirs.alpha, rel=1e-10, abs=1e-14 * h.alpha0)
        np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-8, atol=1e-10)
    d64 = decoder.astype(np.float64)
    for rec in h.records:
        c = d64 @ (w - rec.fitted)
        assert c.max() <= rec.alpha * (1 + 1e-9) + 1e-12 * h.alpha0


@pytest.mark.parametrize("seed", range(3))
def test_float32_active_rows_follow_the_path_of_the_same_rows_in_float64(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A float32 decoder keeps its active rows in float32 (exact) and multiplies them in float64
    by compiled loops: its path (α, active sets, x, v, the fit) equals the one walked on the
    same values held in float64 (numpy's products), drops and refreshes included."""
    import steerkit_path.homotopy as homotopy

    rng = np.random.default_rng(200 + seed)
    decoder = random_decoder(rng, 1500, 24).astype(np.float32)
    w = rng.normal(size=24) * 3
    monkeypatch.setattr(homotopy, "POOL32_SIZE", 10**12)  # float64 pools for both
    ours = full_path(decoder, w, pool_size=40)
    theirs = full_path(decoder.astype(np.float64), w, pool_size=40)
    assert ours._DA.dtype == np.float32 and theirs._DA.dtype == np.float64
    assert len(ours.records) == len(theirs.records) > 30
    drops = sum(a.active.size > b.active.size for a, b in zip(ours.records, ours.records[1:]))
    assert drops > 0
    for mine, reference in zip(ours.records, theirs.records):
        assert mine.active.tolist() == reference.active.tolist()
        assert mine.alpha == pytest.approx(reference.alpha, rel=1e-10, abs=1e-14 * ours.alpha0)
        np.testing.assert_allclose(mine.x, reference.x, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(mine.fitted, reference.fitted, rtol=1e-8, atol=1e-10)


def test_direction_updates_by_block_elimination_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """x = G⁻¹a_A, v = G⁻¹1 and the fit F = D_Aᵀx, U = D_Aᵀv after long runs of incremental
    additions and drops (no refresh at all) equal a solve from scratch at every breakpoint."""
    import steerkit_path.homotopy as homotopy

    monkeypatch.setattr(homotopy, "REFRESH_EVERY", 10**9)
    rng = np.random.default_rng(11)
    decoder = random_decoder(rng, 400, 48)
    w = rng.normal(size=48) * 2
    h = full_path(decoder, w, pool_size=400)
    assert len(h.records) > 40
    sizes = [rec.active.size for rec in h.records[:-1]]
    assert sum(b < a for a, b in itertools.pairwise(sizes)) >= 10  # drops, updated in place
    for rec in h.records[1:-1]:
        rows = decoder[rec.active]
        gram = rows @ rows.T
        np.testing.assert_allclose(rec.x, np.linalg.solve(gram, decoder[rec.active] @ w), rtol=1e-8)
        np.testing.assert_allclose(
            rec.v, np.linalg.solve(gram, np.ones(rec.active.size)), rtol=1e-8
        )
        fit = rows.T @ (rec.x - rec.alpha * rec.v)
        np.testing.assert_allclose(rec.fitted, fit, atol=1e-9 * np.abs(fit).max())
        F, U = rows.T @ rec.x, rows.T @ rec.v
        np.testing.assert_allclose([rec.FF, rec.FU, rec.UU], [F @ F, F @ U, U @ U], rtol=1e-8)


def test_anticipation_keeps_the_pool_ahead_of_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Features already close to α at a passed checkpoint join the pool: the same breakpoints as
    without anticipation, with fewer repairs (and so fewer recomputed steps)."""
    import steerkit_path.homotopy as homotopy

    rng = np.random.default_rng(12)
    decoder = random_decoder(rng, 4000, 256)
    w = rng.normal(size=256) * 3
    a = decoder @ w

    def grown() -> Homotopy:
        h = Homotopy(decoder, w, a, pool_size=100)
        h.extend(g_target=1e12)  # to the end, through every checkpoint
        h.verified()  # and every breakpoint checked over all features
        return h

    anticipated = grown()
    monkeypatch.setattr(homotopy, "ANTICIPATE_RATIO", math.inf)  # nothing qualifies
    repaired = grown()
    assert len(anticipated.records) == len(repaired.records) > 300
    for ours, theirs in zip(anticipated.records, repaired.records):
        assert ours.active.tolist() == theirs.active.tolist()
        assert ours.alpha == pytest.approx(theirs.alpha, rel=1e-10)
    assert anticipated.repairs < repaired.repairs
    assert anticipated.steps < repaired.steps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_screened_check_finds_what_a_full_product_finds(dtype: type) -> None:
    """A check of a few breakpoints multiplies the middle one by the whole decoder and screens
    the others against it: the breakpoints that fail (a feature outside the pool above α) and
    the violations recorded are those of an exact float64 product at every breakpoint."""
    rng = np.random.default_rng(13)
    decoder = random_decoder(rng, 3000, 80).astype(dtype)
    w = rng.normal(size=80) * 3
    d64 = decoder.astype(np.float64)
    h = Homotopy(decoder, w, d64 @ w, pool_size=40)
    h.complete_path()  # on a pool of 40, unchecked: later breakpoints miss features
    assert len(h.records) > 40
    groups = [[1, 2], [5, 6, 7, 8, 9, 10, 11, 12], [20, 21, 23, 26], [30, 38], [len(h.records) - 1]]
    failures = 0
    for group in groups:
        failed = h.check(group)
        for k in group:
            rec = h.records[k]
            c = d64 @ (w - rec.fitted) - rec.alpha
            c[rec.active] = -np.inf
            tolerance = 1e-9 * rec.alpha + 1e-12 * h.alpha0
            outside = h.pool_pos < 0
            if np.any(outside & (c > tolerance)):
                assert k in failed and rec.violation is None
                failures += 1
            else:
                assert k not in failed
                assert rec.violation == pytest.approx(max(float(c.max()), 0.0), abs=1e-13)
    assert failures >= 1 and h.screened_columns >= 5
    assert h.checked_columns < sum(len(g) for g in groups)
    # the screen's promise, column by column: every feature with cᵢ ≥ α − tolerance is listed
    # with its exact value (here with wider spans, so that the screen reaches further)
    positions = list(range(2, len(h.records), 3))
    recs = [h.records[k] for k in positions]
    alphas = np.array([rec.alpha for rec in recs])
    residuals = np.column_stack([w - rec.fitted for rec in recs])
    no_skip = [np.empty(0, dtype=np.int64)] * len(recs)
    screened = h.screened_columns
    results = h.correlations(residuals, alphas, no_skip, positions)
    assert h.screened_columns > screened
    for j, (features, values, _) in enumerate(results):
        exact = d64 @ residuals[:, j]
        listed = np.arange(h.d_sae) if features is None else features
        close = np.flatnonzero(exact >= alphas[j] * (1 - 1e-9) - 1e-12 * h.alpha0)
        assert set(close.tolist()) <= set(listed.tolist())
        np.testing.assert_allclose(values, exact[listed], rtol=1e-12, atol=1e-12 * h.alpha0)


def test_a_float32_threshold_never_rounds_up() -> None:
    from steerkit_path.homotopy import _float32_below

    for value in (0.1, 1 / 3, -0.7, 2.0**-30, 12345.678, 0.5):
        below = _float32_below(value)
        assert isinstance(below, np.float32) and float(below) <= value
        assert float(np.nextafter(below, np.float32(np.inf))) > value  # and is the largest


def test_moving_a_span_left_equals_a_copy_through_a_temporary() -> None:
    from steerkit_path.homotopy import _move_left

    rng = np.random.default_rng(14)
    for start, stop, by in [(5, 12, 3), (8, 40, 8), (1, 40, 1), (10, 10, 4), (39, 40, 39)]:
        flat = rng.normal(size=40)
        expected = flat.copy()
        expected[start - by : stop - by] = expected[start:stop].copy()
        _move_left(flat, start, stop, by)
        np.testing.assert_array_equal(flat, expected)
    with pytest.raises(ValueError, match="bad span"):
        _move_left(np.zeros(10), 5, 11, 2)
    with pytest.raises(ValueError, match="bad span"):
        _move_left(np.zeros(10), 1, 5, 2)


def test_a_float32_pools_kept_products_stay_within_their_rounding_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A float32 pool's e = a_p − D_p F and r = 1 − D_p U are kept up to date along additions
    and drops (one product per step, not two): over a long run with no refresh, at every step
    they differ from the float64 products by less than the bound `_entering` brackets with
    (so the float64 recheck still picks the exact path), and the products were made afresh
    only when the pool grew."""
    import steerkit_path.homotopy as homotopy

    monkeypatch.setattr(homotopy, "POOL32_SIZE", 0)
    monkeypatch.setattr(homotopy, "REFRESH_EVERY", 10**9)
    made: list[int] = []
    original = homotopy._PoolProducts.__init__

    def counted(self: Any, *args: Any) -> None:
        made.append(1)
        original(self, *args)

    monkeypatch.setattr(homotopy._PoolProducts, "__init__", counted)
    rng = np.random.default_rng(7)
    decoder = random_decoder(rng, 1200, 48).astype(np.float32)
    w = rng.normal(size=48) * 3
    h = Homotopy(decoder, w, decoder.astype(np.float64) @ w, pool_size=1200)
    scale = (h.d_model + 2) * homotopy._U32 * 1.01 + 1.01e-12
    worst = 0.0
    steps = 0
    while not h.complete:
        h.step()
        steps += 1
        products = h._products
        if products is None or h.complete:
            continue
        Dp = h.Dp.astype(np.float64)
        e = h.a_p - Dp @ h.F
        r = 1.0 - Dp @ h.U
        bound_e = h._pool_norms * scale * products.F_reach + h._a_p_slack
        bound_r = h._pool_norms * scale * products.U_reach + 1e-12
        assert (np.abs(products.e - e) <= bound_e).all()
        assert (np.abs(products.r - r) <= bound_r).all()
        worst = max(worst, float((np.abs(products.e - e) / bound_e).max()))
    assert steps > 60 and len(made) <= 2, (steps, len(made))
    assert worst > 1e-4  # the bound is not vacuous: the kept products do carry rounding
    alphas, *_ = lars_path(decoder.astype(np.float64).T, w, method="lasso", positive=True)
    ours = np.array([rec.alpha for rec in h.records])
    np.testing.assert_allclose(ours, alphas * 48, rtol=1e-7, atol=1e-10)
