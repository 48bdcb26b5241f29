"""The homotopy's pool buffer grows in place by POOL_GROWTH (no reserve of a whole decoder):
a pool that starts at one feature and grows through many in-place resizes gives the same path
as scikit-learn's `lars_path(..., positive=True)` (an independent implementation), and its
buffer stays within POOL_GROWTH of the pool it holds."""

from __future__ import annotations

import numpy as np
import pytest
import steerkit_path.homotopy as homotopy
from sklearn.linear_model import lars_path
from steerkit_path.homotopy import Homotopy

from steerkit import cores
from steerkit.testing import random_decoder


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_pool_grown_in_place_gives_the_scikit_learn_path(
    monkeypatch: pytest.MonkeyPatch, dtype: type
) -> None:
    monkeypatch.setattr(homotopy, "POOL_MIN_ROWS", 1)
    monkeypatch.setattr(homotopy, "POOL_GROWTH", 1.05)  # many small resizes
    rng = np.random.default_rng(21)
    d_model = 10
    decoder = random_decoder(rng, 300, d_model).astype(dtype)
    w = rng.normal(size=d_model) * 2
    h = Homotopy(decoder, w, decoder.astype(np.float64) @ w, pool_size=1)
    sizes = []
    while not h.complete:
        h.step()
        sizes.append((h.pool.size, h._Dp_buffer.shape[0]))
    h.verified()
    assert h.pool.size > 20  # the pool grew many times
    assert all(rows <= max(capacity, 1) for rows, capacity in sizes)
    assert h._Dp_buffer.shape[0] <= max(int(h.pool.size * 1.05) + 1, h.pool.size + 1)
    np.testing.assert_array_equal(h.Dp, decoder[h.pool])  # the rows survived every resize
    alphas, *_ = lars_path(
        decoder.astype(np.float64).T, w, method="lasso", positive=True, alpha_min=0
    )
    ours = np.array([rec.alpha for rec in h.records])
    np.testing.assert_allclose(ours, alphas * d_model, rtol=1e-7, atol=1e-10)


def test_a_factor_grown_row_by_row_gives_the_scikit_learn_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The factor R, the active rows and the active buffer start with room for one row and
    grow as the active set does (with drops and a repair of a missed pool feature along the
    way): the path is scikit-learn's, and the room stays within half again of the rows held."""
    monkeypatch.setattr(homotopy, "FACTOR_ROWS", 1)
    rng = np.random.default_rng(5)
    d_model = 40
    decoder = random_decoder(rng, 400, d_model)
    w = rng.normal(size=d_model) * 2
    h = Homotopy(decoder, w, decoder @ w, pool_size=8)  # a small pool: repairs restore
    records = h.verified()  # walks on the pool, checks, repairs (restores), walks on
    assert h.repairs > 0
    most = max(rec.active.size for rec in records)
    assert most > 20  # grown many times from room for one row
    assert most + 1 <= h._R.shape[0] <= max(2, most + most // 2 + 2)
    assert h._DA.shape[0] == h._R.shape[0] == h._active_buffer.shape[0]
    alphas, *_ = lars_path(decoder.T, w, method="lasso", positive=True, alpha_min=0)
    ours = np.array([rec.alpha for rec in h.records])
    np.testing.assert_allclose(ours, alphas * d_model, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(("load", "busy"), [(0.9, False), (8.0, True)])
def test_walks_take_numpy_threads_only_with_a_core_to_spare(
    monkeypatch: pytest.MonkeyPatch, load: float, busy: bool
) -> None:
    """On a machine whose cores are all taken, a walk runs every BLAS library on one thread
    (numpy's spinning threads cost 5–9× there); with a core free, numpy keeps its threads.
    The path is the same either way."""
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores, "_cpu_count", None)  # asked again
    monkeypatch.setattr(cores, "others", lambda: None)  # unmeasured: the load average
    monkeypatch.setattr(cores.os, "getloadavg", lambda: (load, load, load))
    assert cores.busy() is busy
    chosen: list[str] = []
    monkeypatch.setattr(homotopy, "_single_threaded", lambda: chosen.append("one") or _Nothing())
    monkeypatch.setattr(homotopy, "_one_thread", lambda: chosen.append("numpy") or _Nothing())
    rng = np.random.default_rng(8)
    decoder = random_decoder(rng, 200, 12)
    w = rng.normal(size=12)
    h = Homotopy(decoder, w, decoder @ w)
    chosen.clear()
    h.complete_path()
    assert chosen == (["one"] if busy else ["numpy"])
    alphas, *_ = lars_path(decoder.T, w, method="lasso", positive=True, alpha_min=0)
    ours = np.array([rec.alpha for rec in h.verified()])
    np.testing.assert_allclose(ours, alphas * 12, rtol=1e-7, atol=1e-10)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def test_the_factor_grows_in_place_keeping_every_entry() -> None:
    """`_reserve` grows R (Fortran order, its leading dimension the capacity) and D_A in place:
    every entry kept where a fresh zero matrix with the old block copied in would have it, and
    the old and new buffers never held together (tracemalloc's peak is the new size)."""
    import tracemalloc

    rng = np.random.default_rng(3)
    decoder = random_decoder(rng, 2000, 600)
    w = rng.normal(size=600)
    tracemalloc.start()  # before the buffers are made: a realloc of a traced block counts once
    h = Homotopy(decoder, w, decoder @ w)
    capacity = h._R.shape[0]
    h._R[...] = rng.normal(size=h._R.shape)  # every entry, not only the triangle in use
    h._DA[...] = rng.normal(size=h._DA.shape)
    h._active_buffer[...] = rng.integers(0, 2000, size=capacity)
    before_R, before_DA = h._R.copy(), h._DA.copy()
    before_active = h._active_buffer.copy()
    start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    h._reserve(capacity)
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    grown = h._R.shape[0]
    assert grown == int(capacity * homotopy.FACTOR_GROWTH) > capacity
    expected = np.zeros((grown, grown))
    expected[:capacity, :capacity] = before_R
    np.testing.assert_array_equal(h._R, expected)
    assert h._R.flags.f_contiguous and np.shares_memory(h._R, h._R_flat)
    np.testing.assert_array_equal(h._DA[:capacity], before_DA)
    np.testing.assert_array_equal(h._active_buffer[:capacity], before_active)
    # a copy would hold old and new R and D_A together: more than the growth itself
    growth = (grown**2 - capacity**2) * 8 + (grown - capacity) * 600 * 8
    assert peak < growth + capacity * 8 * 4 + 2**16, (peak, growth)


class _Library:
    """A stand-in for a threadpoolctl library controller: its thread count, and every change."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.changes: list[int] = []

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, threads: int) -> None:
        self.threads = threads
        self.changes.append(threads)


def test_a_thread_limit_sets_every_library_and_restores_each_own_count() -> None:
    """`_Limit` (the path's thread switch, set through each library's controller instead of
    threadpoolctl's `limit`): every library of the selection at the limit inside, each back to
    its own count after — nested limits unwound in order, and on an exception too."""
    libraries = [_Library(4), _Library(2)]
    selection = type("Selection", (), {"lib_controllers": libraries})()
    with homotopy._Limit(selection, 1):
        assert [lib.threads for lib in libraries] == [1, 1]
        with homotopy._Limit(selection, 3):
            assert [lib.threads for lib in libraries] == [3, 3]
        assert [lib.threads for lib in libraries] == [1, 1]
    assert [lib.threads for lib in libraries] == [4, 2]
    with pytest.raises(RuntimeError), homotopy._Limit(selection, 1):
        raise RuntimeError("inside")
    assert [lib.threads for lib in libraries] == [4, 2]


def test_the_real_blas_libraries_are_limited_and_restored() -> None:
    """The same on numpy's and scipy's BLAS as threadpoolctl itself reports them (for the
    libraries the path found): one thread each inside `_single_threaded`, numpy's own count
    kept by `_one_thread`, every original count back after."""
    from threadpoolctl import threadpool_info

    found = {c.filepath for c in homotopy._all_blas().lib_controllers}
    assert found

    def counts() -> dict[str, int]:
        return {
            i["filepath"]: i["num_threads"] for i in threadpool_info() if i["filepath"] in found
        }

    before = counts()
    with homotopy._single_threaded():
        assert set(counts().values()) == {1}
    assert counts() == before
    with homotopy._one_thread():
        inside = counts()
        numpy_own = {path for path in inside if "numpy" in path}
        assert all(inside[path] == before[path] for path in numpy_own)
        if numpy_own:  # a BLAS of numpy's own: every other one single-threaded
            assert all(inside[path] == 1 for path in inside if path not in numpy_own)
    assert counts() == before
