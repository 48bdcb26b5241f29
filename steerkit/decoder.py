"""The SAE decoder as a value validated once: `Decoder`.

Checking a large decoder (finiteness, shape) and deriving what depends on it alone (row norms, a
fingerprint of its content) is a pass over d_sae × d_model numbers. A `Decoder` makes that pass
once; every SteeringProblem built on it reuses the result instead of passing over the decoder
again. It also keeps what later problems on the same decoder share: the quantities derived from
the decoder and a direction (D w, its maximum), and dual points whose reduced costs the core has
computed over every feature, so that a certificate screens against them (see `min_reduced_cost`)
instead of reading the whole decoder for each answer.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from steerkit import cores
from steerkit._arrays import (
    FloatArray,
    blocks64,
    check_finite,
    float_array,
    gathered64,
    readonly,
    squares_by_row,
)

__all__ = ["Decoder"]

_OWNER = "Decoder"

#: Rows per block of the validation pass (the block stays in cache for both sums).
_PASS_BLOCK = 256
#: A copying validation pass over at least this many entries is split between two threads
#: (`_validation_pass_with`).
_PARALLEL_FROM = 2**23
#: Rows of a float32 decoder converted to float64 at a time.
_BLOCK = 2048
#: Rows per float64 block of a gathered product (`_rows_times`).
_BLOCK_ROWS64 = 256
#: Direction families (D w, max D w, ...) a Decoder keeps, least recently used dropped first.
_FAMILIES_KEPT = 8
#: Memory for the dual points a Decoder keeps for screening (each costs d_sae numbers in the
#: decoder's precision: 256 of them at d_sae 16384, float32, fill 16 MB); at least 8 are kept.
_POINTS_BYTES = 16 * 2**20
#: A screen that leaves more than d_sae / _SCREEN_FRACTION rows to recompute is not worth it:
#: the certificate then makes a full pass and keeps its dual point.
_SCREEN_FRACTION = 16


def _validation_pass(decoder: np.ndarray[Any, Any]) -> tuple[FloatArray, FloatArray]:
    """(Σⱼ dᵢⱼ² per row, D g for a fixed random g) in one blocked pass over the decoder: the row
    norms, a finiteness check (a NaN or inf makes its row's sum non-finite), and a fingerprint of
    the content (an in-place change alters D g)."""
    squares, prints, _ = _validation_pass_with(decoder, None)
    return squares, prints


def _validation_pass_with(
    decoder: np.ndarray[Any, Any],
    columns: np.ndarray[Any, Any] | None,
    into: np.ndarray[Any, Any] | None = None,
) -> tuple[FloatArray, FloatArray, np.ndarray[Any, Any] | None]:
    """`_validation_pass`, and D c for each column c of `columns` (d_model, m), in the decoder's
    precision, from the same pass: each block is multiplied while it is in cache, so a problem
    built from an array gets its D w (`SteeringProblem.alignment_estimate`) without a second
    pass over the decoder. The products are (m, d_sae).

    With `into` (C-ordered, the decoder's shape and dtype), each block is first copied there and
    read back from the copy while it is in cache: the private copy a Decoder needs and its
    validation in one pass, the figures those of the copy (4096 × 640 float32: 1.2 ms against
    1.3 for the pass and then the copy). On a decoder of at least `_PARALLEL_FROM` entries and
    two blocks, while the machine has a core to spare (`steerkit.cores.busy`), the blocks of the
    second half (the first holds the odd one) are copied and validated by another thread (not
    once the interpreter is shutting down: then one thread does all). On 2 cores, 24576 × 768
    float32: 8.0 ms against 11.2 with one thread — but 12.0 against 11.6 within ~0.1 s of a
    product on numpy's BLAS threads, whose idle thread spins on the spare core for a while
    (below the threshold the thread cost more than it saved either way). A block's figures do
    not depend on which thread made them."""
    n, d_model = decoder.shape
    probe = np.random.default_rng(20261206).standard_normal(d_model).astype(decoder.dtype)
    squares = np.empty(n)
    prints = np.empty(n)
    products = None if columns is None else np.empty((columns.shape[1], n), dtype=decoder.dtype)
    vectors = [] if columns is None else [np.ascontiguousarray(c) for c in columns.T]

    def rows(first: int, last: int) -> None:
        # the figures are always of C-ordered blocks (a strided source's block copied to a
        # buffer first): a sum's rounding depends on the layout, and a later pass over the
        # caller's array must reproduce the figures of the copy to the bit
        scratch = None
        if into is None and not decoder.flags.c_contiguous:
            scratch = np.empty((min(_PASS_BLOCK, n), d_model), dtype=decoder.dtype)
        for start in range(first, last, _PASS_BLOCK):
            stop = min(last, start + _PASS_BLOCK)
            block = decoder[start:stop]
            target = into[start:stop] if into is not None else None
            if target is None and scratch is not None:
                target = scratch[: stop - start]
            if target is not None:
                np.copyto(target, block)
                block = target
            squares[start:stop] = squares_by_row(block)
            prints[start:stop] = block @ probe
            for j, vector in enumerate(vectors):  # matrix-vector products: no skinny gemm
                products[j, start:stop] = block @ vector  # type: ignore[index]

    # the halves split on a block boundary (every block is the one a single pass makes), the
    # first holding the extra block of an odd count
    half = (-(-n // _PASS_BLOCK) // 2) * _PASS_BLOCK
    other = None
    if into is not None and half > 0 and decoder.size >= _PARALLEL_FROM and not cores.busy():
        try:
            other = _helper().submit(rows, half, n)
        except RuntimeError:  # the interpreter is shutting down: no new thread, one pass
            other = None
    if other is None:
        rows(0, n)
    else:
        try:
            rows(0, half)
        finally:
            other.result()
    if not np.isfinite(squares).all():
        # raises unless finite entries overflowed the sums
        check_finite("SteeringProblem", "decoder", into if into is not None else decoder)
    return squares, prints, products


_helper_pool: concurrent.futures.ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


def _helper() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that takes half of a copying validation pass (made on first use)."""
    global _helper_pool
    with _helper_lock:
        if _helper_pool is None:
            _helper_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="steerkit-decoder-pass"
            )
        return _helper_pool


def _forget_helper() -> None:
    """In a forked child: the pool came without its thread (work handed to it would never run)
    and the lock perhaps held by a thread that is not there. Both made afresh."""
    global _helper_pool, _helper_lock
    _helper_pool = None
    _helper_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def private_copy(
    decoder: np.ndarray[Any, Any], columns: np.ndarray[Any, Any] | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, np.ndarray[Any, Any] | None]:
    """(a read-only C-ordered copy of `decoder`, and its row squares, fingerprint and
    products with `columns` as `_validation_pass_with` computes them), copied and validated in
    one pass. Raises ValidationError (naming the decoder) for a NaN or inf entry."""
    own = np.empty(decoder.shape, dtype=decoder.dtype)
    squares, prints, products = _validation_pass_with(decoder, columns, into=own)
    return readonly(own), squares, prints, products


def _rounding(d_model: int, dtype: np.dtype[Any]) -> float:
    """c with |dᵢ·u − fl(dᵢ·u)| ≤ c·‖dᵢ‖‖u‖ for the product in `dtype` (u rounded to it too)."""
    unit = 2.0**-24 if dtype == np.float32 else 2.0**-53
    return (d_model + 2) * unit * 1.01


class _Point:
    """A dual point u (d_model,) and D u (d_sae,) as the decoder's precision computed it (a
    float32 product is kept in float32: no rounding is added by keeping it), with a checksum."""

    __slots__ = ("checksum", "radius", "u", "values")

    def __init__(self, u: FloatArray, values: FloatArray, radius: float, weights: FloatArray):
        self.u = readonly(u)
        self.values = readonly(values)
        self.radius = radius  # |dᵢ·u − valuesᵢ| ≤ radius · ‖dᵢ‖
        self.checksum = self._sum(weights)

    def _sum(self, weights: FloatArray) -> float:
        # einsum: no BLAS threads for a d_sae-long dot product
        return float(
            np.einsum("i,i->", weights[: self.values.size], self.values, dtype=np.float64)
        ) + float(np.einsum("i,i->", weights[: self.u.size], self.u))

    def intact(self, weights: FloatArray) -> bool:
        return self._sum(weights) == self.checksum


class Decoder:
    """An SAE decoder D (d_sae × d_model), validated once: finite, 2-d, non-empty.

    Built once from an array (numpy, torch, lists): float32 stays float32, anything else becomes
    float64. It owns a read-only copy (a read-only array that owns its memory is adopted as it
    is), so later changes to the caller's array do not change it. Accepted wherever a decoder
    array is (`SteeringProblem.qp/socp(decoder=...)`, methods, the path solver); `np.asarray`
    gives the read-only array.
    """

    __slots__ = (
        "__weakref__",
        "_array",
        "_bounds",
        "_centres",
        "_families",
        "_float64",
        "_lock",
        "_max_norm",
        "_points",
        "_prints",
        "_squares",
        "_weights",
    )

    def __init__(self, array: Any) -> None:
        if isinstance(array, Decoder):
            raise TypeError("Decoder(Decoder): use the Decoder itself (Decoder.of)")
        converted = float_array(
            "SteeringProblem", "decoder", array, ndim=2, keep_float32=True, check=False
        )
        if _needs_copy(converted, array):
            own, squares, prints, _ = private_copy(converted)
        else:
            squares, prints = _validation_pass(converted)
            own = readonly(converted)
        self._init(own, squares, prints)

    def _init(self, own: FloatArray, squares: FloatArray, prints: FloatArray) -> None:
        self._array = own
        self._squares = readonly(squares)
        self._prints = readonly(prints)
        self._bounds: FloatArray | None = None
        self._max_norm: float | None = None
        self._float64: FloatArray | None = None
        self._families: collections.OrderedDict[bytes, dict[str, Any]] = collections.OrderedDict()
        self._points: collections.OrderedDict[int, _Point] = collections.OrderedDict()
        self._weights: FloatArray | None = None
        self._centres: FloatArray | None = None
        self._lock = threading.Lock()

    @classmethod
    def _validated(cls, own: FloatArray, squares: FloatArray, prints: FloatArray) -> Decoder:
        """A Decoder over `own` (already the core's read-only array) and its validation pass."""
        decoder = cls.__new__(cls)
        decoder._init(own, squares, prints)
        return decoder

    @classmethod
    def of(cls, value: Any) -> Decoder:
        """`value` itself when it is a Decoder, else a new Decoder made from it."""
        return value if isinstance(value, Decoder) else cls(value)

    # -- the array ----------------------------------------------------------------------------

    @property
    def array(self) -> FloatArray:
        """The read-only decoder (d_sae, d_model), float32 or float64."""
        return self._array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        if dtype is None or np.dtype(dtype) == self._array.dtype:
            return self._array.copy() if copy else self._array
        return self._array.astype(dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._array.shape[0]), int(self._array.shape[1]))

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._array.dtype

    @property
    def d_sae(self) -> int:
        return self.shape[0]

    @property
    def d_model(self) -> int:
        return self.shape[1]

    @property
    def nbytes(self) -> int:
        return int(self._array.nbytes)

    def __repr__(self) -> str:
        return f"Decoder({self.d_sae} × {self.d_model}, {self._array.dtype})"

    # -- what derives from the decoder alone ----------------------------------------------------

    @property
    def row_squares(self) -> FloatArray:
        """Σⱼ dᵢⱼ² per row (d_sae,), float64, summed in the decoder's own precision."""
        return self._squares

    @property
    def fingerprint(self) -> FloatArray:
        """D g for a fixed random g (d_sae,): tells an in-place change of the content."""
        return self._prints

    @property
    def row_norm_bounds(self) -> FloatArray:
        """Upper bounds on ‖dᵢ‖ (d_sae,), within (d_model + 8)·2⁻²⁴ relative of the norms for a
        float32 decoder (float32 sums of d_model squares err by at most (d_model + 1)·2⁻²⁴)."""
        if self._bounds is None:
            slack = (self.d_model + 8) * 2.0**-24 if self.dtype == np.float32 else 1e-12
            self._bounds = readonly(np.sqrt(self._squares) * (1.0 + slack))
        return self._bounds

    @property
    def max_row_norm(self) -> float:
        """maxⱼ ‖dⱼ‖ (inf when the squares overflow float64); computed once (every precheck
        reads it)."""
        if self._max_norm is None:
            self._max_norm = float(np.sqrt(float(np.max(self._squares))))
        return self._max_norm

    def float64(self) -> FloatArray:
        """The decoder as a read-only float64 array, made on first use (twice a float32 decoder's
        memory: the core's own products never need it, they convert a block at a time)."""
        if self._array.dtype == np.float64:
            return self._array
        with self._lock:
            if self._float64 is None:
                self._float64 = readonly(self._array.astype(np.float64))
        return self._float64

    def blocks64(self) -> Iterator[tuple[int, FloatArray]]:
        """(first row, rows as float64) block by block, through one reused buffer."""
        return blocks64(self._array, _BLOCK)

    def times(self, x: Any) -> FloatArray:
        """D x in float64: (d_sae,) for x (d_model,), (d_sae, m) for x (d_model, m); a float32
        decoder is converted a block of rows at a time (no d_sae × d_model allocation)."""
        x = np.ascontiguousarray(x, dtype=np.float64)  # BLAS needs it; a view of Wᵀ is not
        if x.ndim == 2 and x.shape[1] == 1:
            return self.times(x[:, 0])[:, None]
        if self._array.dtype == np.float64:
            result: FloatArray = self._array @ x
            return result
        result = np.empty((self.d_sae, *x.shape[1:]))
        for start, block in self.blocks64():
            result[start : start + block.shape[0]] = block @ x
        return result

    def family(self, directions: FloatArray) -> dict[str, Any]:
        """The cache of what derives from this decoder and `directions` (D w and its maximum),
        shared by every problem built on both; the least recently used of a few is dropped."""
        key = directions.tobytes() + str(directions.shape).encode()
        with self._lock:
            found = self._families.get(key)
            if found is None:
                found = self._families[key] = {}
                while len(self._families) > _FAMILIES_KEPT:
                    self._families.popitem(last=False)
            else:
                self._families.move_to_end(key)
            return found

    # -- reduced costs ------------------------------------------------------------------------

    def min_reduced_cost(
        self,
        u: FloatArray,
        known: tuple[np.ndarray[Any, Any], FloatArray] | None = None,
    ) -> float:
        """m with max(0, −m) = max(0, −minᵢ (1 + dᵢ·u)) to float64 accuracy: the dual
        infeasibility of the unit-cost reduced costs 1 + D u. `known`: (rows, their reduced costs
        computed in float64), e.g. δ's support, which the certificate has already computed.

        Screened against kept dual points whose D u' a full pass computed: with u within η of
        the convex combination (1 − θ)u_a + θu_b of two of them (θ ∈ [0, 1]; b = a, θ = 0 for one),
        1 + dᵢ·u ≥ (1 − θ)(1 + (D u_a)ᵢ) + θ(1 + (D u_b)ᵢ) − ‖dᵢ‖(η + rounding). Along a path
        segment the dual point moves affinely, so an answer between two kept points on it has
        η ≈ 0 and only the rows whose reduced cost is truly near 0 are recomputed in float64:
        O(d_sae) work. When the screen leaves too many rows (or a kept point fails its checksum)
        a full pass computes D u, and u is kept for the answers that follow.
        """
        u = np.ascontiguousarray(u, dtype=np.float64)
        norm_u = float(np.linalg.norm(u))
        if not np.isfinite(norm_u):
            return -np.inf
        bounds = self.row_norm_bounds
        screen = self._screen(u)
        if screen is not None:
            near = _unknown(np.flatnonzero(screen <= 1e-9), known)
            if near.size <= max(64, self.d_sae // _SCREEN_FRACTION):
                return self._exact_min(u, near, screen, known)
        values, radius = self._product(u, norm_u)
        self._keep(u, values, radius)
        floor = 1.0 + values - bounds * radius
        near = np.flatnonzero(floor <= float((1.0 + values + bounds * radius).min()))
        return self._exact_min(u, _unknown(near, known), floor, known)

    def min_reduced_costs(
        self,
        us: FloatArray,
        known: list[tuple[np.ndarray[Any, Any], FloatArray]] | None = None,
        *,
        depth: int = 0,
    ) -> FloatArray:
        """`min_reduced_cost` of every row of `us` (m, d_model) — the dual points of a batch's
        answers — with the screen shared: the answers whose nearest kept points are the same
        pair (a, b) are screened together. Their bound is affine in θ, so its minimum over the
        group's θ range is at one end: one O(d_sae) floor per pair (with the group's largest
        distance η and rounding allowance) instead of one per answer, and the rows it leaves are
        gathered once in float64 and multiplied by the group's dual points in one product. A
        group whose screen leaves too many rows keeps its farthest answer's full pass and screens
        the others again (twice at most); such a group then, and an answer with no kept point
        near, take `min_reduced_cost` one by one (full pass, point kept)."""
        us = np.ascontiguousarray(us, dtype=np.float64)
        m = us.shape[0]
        known = known if known is not None else [None] * m  # type: ignore[list-item]
        result = np.full(m, np.nan)
        groups = self._pairs(us)
        limit = max(64, self.d_sae // _SCREEN_FRACTION)
        for (a, b), members, thetas, slacks in groups:
            span = (float(thetas.min()), float(thetas.max()))
            floor = self._chord_floor(a, b, span, float(slacks.max()))
            near = np.flatnonzero(floor <= 1e-9)
            # every member's support is known (its reduced costs ~0: always near): not again
            near = _unknown_to_all(near, [known[j] for j in members], self.d_sae)
            if near.size > limit:
                if len(members) > 2 and depth < 2:
                    # the farthest answer's full pass is kept: the others screen against it
                    far = members[int(np.argmax(slacks))]
                    result[far] = self.min_reduced_cost(us[far], known[far])
                    rest = [j for j in members if j != far]
                    result[rest] = self.min_reduced_costs(
                        us[rest], [known[j] for j in rest], depth=depth + 1
                    )
                continue  # else left to the one-by-one pass below
            exact = self._rows_times(near, us[members].T) + 1.0 if near.size else None
            for column, j in enumerate(members):
                smallest = np.inf
                if known[j] is not None and known[j][0].size:
                    smallest = float(known[j][1].min())
                if exact is not None:
                    smallest = min(smallest, float(exact[:, column].min()))
                elif not np.isfinite(smallest):
                    smallest = float(floor.min())
                result[j] = smallest
        self._one_by_one(us, known, np.flatnonzero(np.isnan(result)), result)
        return result

    def _one_by_one(
        self,
        us: FloatArray,
        known: Sequence[tuple[np.ndarray[Any, Any], FloatArray] | None],
        which: np.ndarray[Any, Any],
        result: FloatArray,
    ) -> None:
        """`min_reduced_cost` of the answers `which` (into `result`), in order — each screened
        against the points kept by then, a full pass (its point kept) where the screen leaves too
        many rows — with the rows the screens leave multiplied together at the end: one gather
        of their union and one product with those answers' dual points, instead of one gather
        and one matrix-vector product per answer (the same figures, to float64 rounding)."""
        limit = max(64, self.d_sae // _SCREEN_FRACTION)
        pending: list[tuple[int, np.ndarray[Any, Any], float]] = []
        for j in which:
            u = us[j]
            screen = self._screen(u) if np.isfinite(float(np.linalg.norm(u))) else None
            if screen is not None:
                near = _unknown(np.flatnonzero(screen <= 1e-9), known[j])
                if near.size <= limit:
                    pending.append((int(j), near, float(screen.min())))
                    continue
            result[j] = self.min_reduced_cost(u, known[j])
        if not pending:
            return
        union = np.unique(np.concatenate([near for _, near, _ in pending]))
        columns = [j for j, _, _ in pending]
        exact = self._rows_times(union, us[columns].T) + 1.0 if union.size else None
        for column, (j, near, floor) in enumerate(pending):
            smallest = np.inf
            entry = known[j]
            if entry is not None and entry[0].size:
                smallest = float(entry[1].min())
            elif near.size == 0:
                result[j] = floor
                continue
            if near.size:
                assert exact is not None
                rows = np.searchsorted(union, near)
                smallest = min(smallest, float(exact[rows, column].min()))
            result[j] = smallest

    def _rows_times(self, index: np.ndarray[Any, Any], x: FloatArray) -> FloatArray:
        """D[index] x in float64 (len(index), m): the rows gathered and converted a block at a
        time."""
        result = np.empty((index.size, x.shape[1]))
        for start, part in gathered64(self._array, index, _BLOCK_ROWS64):
            result[start : start + part.shape[0]] = part @ x
        return result

    def _pairs(
        self, us: FloatArray
    ) -> list[tuple[tuple[_Point, _Point], list[int], FloatArray, FloatArray]]:
        """The answers (rows of `us`) grouped by the kept pair (a, b) nearest each, with each
        one's θ and rounding allowance (`_screen`'s, for u within η of (1 − θ)u_a + θu_b);
        answers with non-finite u or no intact point near are in no group."""
        points, centres = self._kept()
        if not points:
            return []
        assert centres is not None
        finite = np.asarray(np.isfinite(us).all(axis=1))
        # nearest three centres by ‖c‖² − 2 c·u (a choice only: the distances that enter the
        # bound are recomputed from the differences below)
        squares = np.einsum("ij,ij->i", centres, centres)
        rank = squares[None, :] - 2.0 * (np.where(finite[:, None], us, 0.0) @ centres.T)
        order = np.argsort(rank, axis=1)[:, :3]
        weights = self._checksum_weights()
        broken = {int(i) for i in np.unique(order) if not points[int(i)].intact(weights)}
        if broken:  # their figures can no longer be trusted: dropped, and those answers alone
            with self._lock:
                for i in broken:
                    self._points.pop(id(points[i]), None)
                self._centres = None
        first = centres[order[:, 0]]
        offsets = us - first
        best_eta = np.sqrt(np.einsum("ij,ij->i", offsets, offsets))
        best_theta = np.zeros(us.shape[0])
        best_other = order[:, 0].copy()
        for column in range(1, order.shape[1]):
            chord = centres[order[:, column]] - first
            length = np.einsum("ij,ij->i", chord, chord)
            with np.errstate(invalid="ignore", divide="ignore"):
                t = np.clip(np.einsum("ij,ij->i", offsets, chord) / length, 0.0, 1.0)
            residual = offsets - t[:, None] * chord
            eta = np.sqrt(np.einsum("ij,ij->i", residual, residual))
            better = (length > 0.0) & (eta < best_eta)
            best_eta = np.where(better, eta, best_eta)
            best_theta = np.where(better, t, best_theta)
            best_other = np.where(better, order[:, column], best_other)
        groups: dict[tuple[int, int], list[int]] = {}
        for j in np.flatnonzero(finite & np.isfinite(best_eta)):
            a, b = int(order[j, 0]), int(best_other[j])
            if a in broken or b in broken:
                continue
            groups.setdefault((a, b), []).append(int(j))
        out: list[tuple[tuple[_Point, _Point], list[int], FloatArray, FloatArray]] = []
        norms = np.sqrt(squares)
        for (a, b), members in groups.items():
            pa, pb = points[a], points[b]
            theta = best_theta[members]
            slack = best_eta[members] * (1 + 1e-12) + (1 - theta) * pa.radius + theta * pb.radius
            sizes = norms[a] + norms[b] + pa.radius + pb.radius + slack
            slack = slack + 1e-15 * sizes
            out.append(((pa, pb), members, theta, slack))
        return out

    def _kept(self) -> tuple[list[_Point], FloatArray | None]:
        """The kept points and their u stacked (P, d_model), as they are now."""
        with self._lock:
            points = list(self._points.values())
            centres = self._centres
            if centres is None and points:
                centres = self._centres = np.stack([p.u for p in points])
        return points, centres

    def _chord_floor(
        self, a: _Point, b: _Point, thetas: tuple[float, float], slack: float
    ) -> FloatArray:
        """Lower bounds on 1 + dᵢ·u (d_sae,) for every u within the allowance `slack` of
        (1 − θ)u_a + θu_b with θ in [thetas]: affine in θ, the bound is least at an end."""
        floor = np.multiply(a.values, 1.0 - thetas[0], dtype=np.float64)
        if b is not a:
            floor += np.multiply(b.values, thetas[0], dtype=np.float64)
            if thetas[1] != thetas[0]:
                other = np.multiply(a.values, 1.0 - thetas[1], dtype=np.float64)
                other += np.multiply(b.values, thetas[1], dtype=np.float64)
                np.minimum(floor, other, out=floor)
        floor += 1.0 - 1e-15
        floor -= self.row_norm_bounds * slack
        result: FloatArray = floor
        return result

    def _screen(self, u: FloatArray) -> FloatArray | None:
        """Lower bounds on 1 + dᵢ·u (d_sae,) from the kept points nearest u, or None."""
        points, centres = self._kept()
        if not points:
            return None
        assert centres is not None
        gaps = centres - u
        distances = np.sqrt(np.einsum("ij,ij->i", gaps, gaps))
        order = np.argsort(distances)[:3]
        weights = self._checksum_weights()
        for i in order:
            if not points[int(i)].intact(weights):
                with self._lock:  # its figures can no longer be trusted: a full pass instead
                    self._points.pop(id(points[int(i)]), None)
                    self._centres = None
                return None
        a = points[int(order[0])]
        theta, eta, b = 0.0, float(distances[order[0]]), a
        for j in order[1:]:
            other = points[int(j)]
            chord = other.u - a.u
            length = float(chord @ chord)
            if length == 0.0:
                continue
            t = min(1.0, max(0.0, float((u - a.u) @ chord) / length))
            residual = float(np.linalg.norm(u - a.u - t * chord))
            if residual < eta:
                theta, eta, b = t, residual, other
        slack = eta * (1 + 1e-12) + (1 - theta) * a.radius + theta * b.radius
        # the float64 rounding of the lines below: |D u'| ≤ ‖dᵢ‖(‖u'‖ + ρ'), a few ulps of each
        sizes = float(np.linalg.norm(a.u) + np.linalg.norm(b.u)) + a.radius + b.radius + slack
        slack += 1e-15 * sizes
        return self._chord_floor(a, b, (theta, theta), slack)

    def _exact_min(
        self,
        u: FloatArray,
        near: np.ndarray[Any, Any],
        floor: FloatArray,
        known: tuple[np.ndarray[Any, Any], FloatArray] | None,
    ) -> float:
        """The minimum over the rows in `known` and `near` (not in `known`) in float64, or a
        positive floor of the others when none is."""
        smallest = np.inf
        if known is not None and known[0].size:
            smallest = float(known[1].min())
        elif near.size == 0:
            return float(floor.min())
        if near.size:  # gathered and converted a block at a time (up to d_sae / 16 rows)
            smallest = min(smallest, 1.0 + float(self._rows_times(near, u[:, None]).min()))
        return smallest

    def _product(self, u: FloatArray, norm_u: float) -> tuple[FloatArray, float]:
        """(D u in the decoder's precision, ρ) with |dᵢ·u − (D u)ᵢ| ≤ ρ‖dᵢ‖."""
        radius = _rounding(self.d_model, self.dtype) * norm_u
        if self.dtype == np.float64:
            return self._array @ u, radius
        return self._array @ u.astype(np.float32), radius

    def _checksum_weights(self) -> FloatArray:
        if self._weights is None:
            self._weights = np.random.default_rng(7).standard_normal(max(self.shape))
        return self._weights

    def _keep(self, u: FloatArray, values: FloatArray, radius: float) -> None:
        point = _Point(u.copy(), values, radius, self._checksum_weights())
        limit = max(8, _POINTS_BYTES // max(1, values.nbytes))
        with self._lock:
            self._points[id(point)] = point
            while len(self._points) > limit:
                self._points.popitem(last=False)
            self._centres = None

    def forget_points(self) -> None:
        """Drop the kept dual points (the next certificate makes a full pass)."""
        with self._lock:
            self._points.clear()
            self._centres = None

    @property
    def kept_points(self) -> int:
        """How many dual points with fully computed reduced costs are kept for screening."""
        return len(self._points)


def _unknown_to_all(
    rows: np.ndarray[Any, Any],
    known: Sequence[tuple[np.ndarray[Any, Any], FloatArray] | None],
    d_sae: int,
) -> np.ndarray[Any, Any]:
    """`rows` less those whose reduced cost every one of `known` holds: a group's shared screen
    leaves every member's support (reduced costs ~0), which the batch has computed already; the
    rows some member lacks stay (computed for all of them)."""
    indices = [entry[0] for entry in known if entry is not None and entry[0].size]
    if rows.size == 0 or len(indices) < len(known):
        return rows
    # each row counted once per member (a support is sorted and unique; anything else is made so)
    indices = [i if np.all(i[1:] > i[:-1]) else np.unique(i) for i in indices]
    counts = np.bincount(np.concatenate(indices), minlength=d_sae)
    wanted: np.ndarray[Any, Any] = rows[counts[rows] < len(known)]
    return wanted


def _unknown(
    rows: np.ndarray[Any, Any], known: tuple[np.ndarray[Any, Any], FloatArray] | None
) -> np.ndarray[Any, Any]:
    """`rows` less those whose reduced cost is `known` already."""
    if known is None or known[0].size == 0 or rows.size == 0:
        return rows
    return rows[~np.isin(rows, known[0], assume_unique=True)]


def _needs_copy(converted: FloatArray, source: Any) -> bool:
    """Whether the Decoder must copy `converted` to own it: not when converting made it a new
    array (another dtype), nor when the source is a read-only numpy array that owns its
    memory (adopted as it is)."""
    if isinstance(source, np.ndarray):
        if not np.may_share_memory(converted, source):
            return False
        if not source.flags.writeable and source.flags.owndata:
            return False
    return True
