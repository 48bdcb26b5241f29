"""The screened positive-Lasso homotopy of a direction w over the decoder rows.

    β(α) = argmin_{β ≥ 0} ½‖Dᵀβ − w‖² + α 1ᵀβ,      α from α₀ = max_i aᵢ (a = D w) down to 0.

Between breakpoints the active set A is fixed and the KKT conditions on it, G_AA β_A = a_A − α 1
with G = D Dᵀ, make β affine in α: β_A(α) = x − α v with x = G⁻¹a_A, v = G⁻¹1. A feature i
outside A has correlation cᵢ(α) = dᵢᵀ(w − Dᵀβ(α)) = eᵢ + α bᵢ, affine too; it enters when cᵢ
reaches α, an active one leaves when its βᵢ reaches 0. So every breakpoint is found in closed
form, and KKT on a whole segment follows from KKT at its two ends.

Screening: the path is followed on a pool of candidate features (the top ones by a); a segment
is trusted only once both its ends pass the KKT check over all d_sae features (one product
D · [residuals]). A feature outside the pool that violates it joins the pool, and the path is
recomputed from the last good breakpoint. The active set's Gram matrix is kept as a Cholesky
factor, updated by one triangular solve when a feature enters and by Givens rotations when one
leaves, so a step costs O(|pool| · d_model + |A| · d_model + |A|²).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
from scipy.linalg import cholesky
from scipy.linalg.lapack import dtrtrs

from steerkit import cores
from steerkit_path._compiled import (
    combine_rows,
    entering_bracket,
    entering_exact,
    gram_column,
    leaving,
    rotate_out,
)
from steerkit_path.projection import ProjectedRows, row_norm_bounds

__all__ = ["Breakpoint", "Homotopy", "PathStepLimitError"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: 1 − bᵢ at or below this: feature i cannot catch up with the active level (a duplicate of an
#: active row, or a row in the span of the active ones); it is never a candidate to enter.
RATE_TOL = 1e-9
#: A new Cholesky pivot² at or below this × ‖dᵢ‖²: the row is (numerically) in the span of the
#: active rows, and the Gram matrix would be singular; the feature is skipped.
PIVOT_TOL = 1e-10
#: An event below this × α₀ is taken to be the path's end, α = 0: it is rounding (rows in the
#: span of the active ones enter only at α = 0 in exact arithmetic).
ALPHA_FLOOR = 1e-11
#: The KKT check at a breakpoint: cᵢ − α ≤ VIOLATION_RTOL · α + VIOLATION_ATOL · α₀.
VIOLATION_RTOL = 1e-9
VIOLATION_ATOL = 1e-12
#: The initial candidate pool: the top features by a = D w (it grows when a check fails, and
#: by anticipation at every check that passes).
DEFAULT_POOL = 256
#: A float32 decoder's pool of at least this many entries (pool size × d_model) is kept in
#: float32 (half the bytes each step reads; at 4374 × 2304 two float32 matrix-vector products
#: take 1.4 ms against 3.1 ms). 0: every pool of a float32 decoder; measured at 24576 × 768,
#: the float32 products with their bracketing cost no more than float64 ones from 257 rows on.
POOL32_SIZE = 0
#: The pool's buffer grows by this factor when it is full, in place (`ndarray.resize`: a large
#: buffer is re-mapped by the kernel, its rows neither copied nor written to fresh memory).
#: Reserving the address space of a whole decoder up front instead counted against the
#: path's peak memory (tracemalloc counts the reservation) as much as a second decoder.
POOL_GROWTH = 1.5
#: The smallest buffer the pool starts in (rows).
POOL_MIN_ROWS = 64
#: Additions between two recomputations of x, v, F, U from the factor (in between, each
#: addition updates them by block elimination; see `Homotopy._extend_direction`).
REFRESH_EVERY = 16
#: At a checkpoint that passes, at most this share of the pool (at least 16) joins it from the
#: outside features whose correlation is at least ANTICIPATE_RATIO · α. On the default run's
#: SAE (4096 × 640) 1/4 and 0.8 (were 1/8 and 0.9) took the walk to 1.01× the smallest ε
#: through 1 repair instead of 5 (each a Cholesky factorisation of up to 445 active rows from
#: scratch, and a pool grown by half), with a pool of 1,113 features instead of 1,998: 0.83×
#: the time; the synthetic grids' paths reach few checkpoints and did not change.
ANTICIPATE_SHARE = 0.25
ANTICIPATE_RATIO = 0.8
#: Breakpoints checked per product with the decoder (bounds the memory of one check).
CHECK_CHUNK = 256
#: A check of at most this many breakpoints (one input's segment ends, typically) screens:
#: they are grouped by spans of SCREEN_SPAN breakpoints, only the middle one of a group is
#: multiplied by the whole decoder, the others are screened against it (`Homotopy._screen`).
#: Larger checks multiply every breakpoint: a product with many columns costs ~0.16 ms per
#: column at 24576 × 768, less than screening one (~0.3 ms), but a product with 2–8 columns
#: costs as much as 4 (OpenBLAS packs the whole decoder first), a screened one ~0.3 ms.
SCREEN_UP_TO = 8
SCREEN_SPAN = 8
#: A screened breakpoint that leaves more than this share of the features to compute is
#: multiplied by the whole decoder instead.
SCREEN_SHARE = 1 / 16
#: float32 unit round-off, for the bound on a float32 product's error.
_U32 = 2.0**-24
#: Breakpoints between KKT checks over all features while the path grows. A check costs one
#: float32 pass over the decoder; a repair recomputes the steps since the last good breakpoint.
CHECK_EVERY = 32
#: Active rows the factor has room for at first; it grows by FACTOR_GROWTH as the active set
#: does, in place (`Homotopy._reserve`), so a small factor costs only a few more moves of R's
#: columns (the Gemma-2-2B-scale grid's largest active set, 1,665, left R and D_A at 2,188 rows
#: growing by half — 79 MB — and at 1,858 rows growing by a quarter — 62 MB).
FACTOR_ROWS = 128
FACTOR_GROWTH = 1.25


class PathStepLimitError(RuntimeError):
    """The homotopy took more steps than allowed (a degenerate, cycling path)."""


@attrs.define(eq=False)
class Breakpoint:
    """One breakpoint and the segment that follows it (towards smaller α).

    On the segment, β_A(α) = x − α v over `active` (global feature indices), the fit
    Dᵀβ(α) = F − α U (d_model,), aᵀβ(α) = P − α Q and 1ᵀβ(α) = S − α T, with
    FF = ‖F‖², FU = FᵀU, UU = ‖U‖². Of the fit only `fitted` = Dᵀβ(α) at this breakpoint is
    kept (one d_model vector a breakpoint, not two: a long path's memory is mostly these): on
    the segment it is linear in α, between this breakpoint's and the next one's.
    `violation`: max over the features outside A of cᵢ(α) − α at this breakpoint once checked
    over all features (None until then).
    """

    alpha: float
    active: IntArray
    x: FloatArray
    v: FloatArray
    fitted: FloatArray
    P: float
    Q: float
    FF: float
    FU: float
    UU: float
    S: float
    T: float
    excluded: frozenset[int] = frozenset()
    violation: float | None = None
    #: rounds of pivoting that found this point away from the walked path (`steerkit_path.jump`);
    #: 0 for a breakpoint of the walked path
    jump: int = 0

    def beta(self, alpha: float) -> FloatArray:
        """β on `active` at α (rounding below zero clipped)."""
        result: FloatArray = np.maximum(self.x - alpha * self.v, 0.0)
        return result

    @property
    def margin(self) -> float:
        """aᵀβ at this breakpoint."""
        return self.P - self.alpha * self.Q

    @property
    def norm(self) -> float:
        """‖Dᵀβ‖ at this breakpoint."""
        a = self.alpha
        return math.sqrt(max(self.FF - 2 * a * self.FU + a * a * self.UU, 0.0))


class Homotopy:
    """The positive-Lasso path of `w` over the rows of `decoder`, computed lazily.

    decoder: (d_sae, d_model), float32 or float64 (kept as given; rows are read as float64);
    w: (d_model,); a = decoder @ w in float64, (d_sae,). Requires max(a) > 0.
    pool_size: the initial candidate pool (default DEFAULT_POOL); max_steps: the most
    breakpoints before the path is declared degenerate (default 20·min(d_sae, d_model) + 200).
    """

    def __init__(
        self,
        decoder: np.ndarray[Any, Any],
        w: FloatArray,
        a: ProjectedRows | FloatArray,
        *,
        pool_size: int | None = None,
        max_steps: int | None = None,
        row_norms: FloatArray | None = None,
    ) -> None:
        self.decoder = decoder
        self.w = np.asarray(w, dtype=np.float64)
        self.a = a if isinstance(a, ProjectedRows) else ProjectedRows.exact(decoder, w, a)
        d_sae, d_model = decoder.shape
        self.d_sae, self.d_model = int(d_sae), int(d_model)
        top = self.a.argmax()
        self.alpha0 = self.a[top]
        if not self.alpha0 > 0:
            raise ValueError("the path needs a decoder row with a positive component along w")
        size = pool_size if pool_size is not None else DEFAULT_POOL
        size = min(self.d_sae, max(1, int(size)))
        self.max_steps = max_steps if max_steps is not None else 20 * min(d_sae, d_model) + 200
        #: steps computed (recomputations after a repair included), repairs, KKT columns checked
        #: through a product with the whole decoder
        self.steps = 0
        self.repairs = 0
        self.checked_columns = 0
        self.screened_columns = 0  # KKT columns screened against a nearby checked one
        self.jump_rounds = 0  # rounds of pivoting towards a point far along (`jump`)
        self.last_violation = 0.0  # of the last `priced` check that found no violator
        self.records: list[Breakpoint] = []
        self.complete = False
        self._row_norms: FloatArray | None = row_norms
        self._g: list[float] = []  # aᵀβ(α_k)/α_k per breakpoint
        self._h: list[float] = []  # ‖Dᵀβ(α_k)‖/aᵀβ(α_k) per breakpoint
        #: per failed breakpoint, the features outside the pool found violating KKT there
        self._wanted: dict[int, IntArray] = {}
        self._excess: FloatArray | None = None  # per feature, max of (cᵢ − α)/α over failed checks
        #: the last breakpoint that passed a check: (k, α, estimate of every cᵢ)
        self._passed: tuple[int, float, FloatArray] | None = None
        #: a float32 pool's products with the fit's pieces, kept up to date (`_PoolProducts`)
        self._products: _PoolProducts | None = None

        # the pool is chosen on the estimate of a; its rows' exact values are computed below
        pool = (
            np.argpartition(-self.a.estimate, size - 1)[:size]
            if size < self.d_sae
            else np.arange(d_sae)
        )
        self.pool_pos = np.full(self.d_sae, -1, dtype=np.int64)
        self.pool = np.empty(0, dtype=np.int64)
        self.Dp = np.empty((0, self.d_model))
        self._Dp_buffer = self.Dp
        self._pool_norms = np.empty(0)
        self.a_p = np.empty(0)
        self._grow_pool(np.union1d(pool, [top]))

        # room for FACTOR_ROWS active rows to start with, grown when full (`_reserve`)
        # up to d_model + 1: reserving that at once took 85 MB at Gemma-2-2B scale for paths
        # whose active sets stay far smaller
        capacity = min(self.d_model, self.d_sae, FACTOR_ROWS) + 1
        # the active rows as the decoder holds them: a float32 decoder's in float32 (exact),
        # multiplied in float64 by compiled loops (`_gram_column`, `_combine`) — half the bytes
        # of the two products every step makes with them, which stream from beyond a core's L2
        rows_dtype = np.float32 if decoder.dtype == np.float32 else np.float64
        self._DA = np.empty((capacity, self.d_model), dtype=rows_dtype)
        # Fortran order: the first n columns are then one contiguous block that LAPACK reads in
        # place (leading dimension = capacity), with no copy of the factor per solve; the flat
        # buffer owns the memory (BLAS level-1 calls address it, `_reserve` grows it in place)
        self._R_flat = np.zeros(capacity * capacity)
        self._R = self._R_flat.reshape((capacity, capacity), order="F")
        #: the active features as an array, in the order of `active` (read every step)
        self._active_buffer = np.empty(capacity, dtype=np.int64)
        self._since_refresh = 0
        #: the current segment's direction (see `Breakpoint`), set by the first addition
        self.x: FloatArray
        self.v: FloatArray
        self.F: FloatArray
        self.U: FloatArray
        with _one_thread():  # scipy's BLAS, left free, spins and slows numpy's for ~0.1 s
            self._start(top)

    # -- pool -------------------------------------------------------------------------------

    def rows(self, index: Iterable[int] | IntArray) -> FloatArray:
        """Decoder rows as float64, shape (len(index), d_model)."""
        idx = np.asarray(index, dtype=np.int64)
        result: FloatArray = np.asarray(self.decoder[idx], dtype=np.float64)
        return result

    def _grow_pool(self, features: Iterable[int] | IntArray) -> None:
        new = np.asarray(list(features) if isinstance(features, set) else features, np.int64)
        new = np.unique(new[self.pool_pos[new] < 0]) if new.size else new
        if new.size == 0:
            return
        self.pool_pos[new] = np.arange(self.pool.size, self.pool.size + new.size)
        self.pool = np.concatenate([self.pool, new])
        # the pool of a float32 decoder is kept in float32 (see POOL32_SIZE and `_entering`)
        f32 = self.decoder.dtype == np.float32 and self.pool.size * self.d_model >= POOL32_SIZE
        dtype = np.float32 if f32 else np.float64
        old = self.Dp.shape[0]
        buffer = self._Dp_buffer
        if buffer.dtype != dtype or buffer.shape[0] < self.pool.size:
            grown = max(int(buffer.shape[0] * POOL_GROWTH), self.pool.size, POOL_MIN_ROWS)
            capacity = min(self.d_sae, grown)
            if buffer.dtype == dtype and buffer.flags.owndata and buffer.flags.c_contiguous:
                # realloc in place; self.Dp, the only view of the buffer, is remade below
                self.Dp = buffer[:0]
                buffer.resize((capacity, self.d_model), refcheck=False)
            else:
                buffer = np.empty((capacity, self.d_model), dtype=dtype)
                buffer[:old] = self.Dp
            self._Dp_buffer = buffer
        block = buffer[old : self.pool.size]
        block[...] = self.decoder[new]  # one gather, converted on the way when dtypes differ
        self.Dp = buffer[: self.pool.size]
        rows = block if block.dtype == np.float64 else block.astype(np.float64)
        if self._row_norms is not None:  # bounds on ‖dᵢ‖ known already (a float32 decoder's)
            norms = self._row_norms[new]
        else:
            norms = np.sqrt(np.einsum("ij,ij->i", rows, rows)) * (1.0 + 1e-12)
        self._pool_norms = np.concatenate([self._pool_norms, norms])
        self.a.learn(new, rows)  # the exact aᵢ from the rows at hand, not another gather
        self.a_p = np.concatenate([self.a_p, self.a[new]])
        self._a_p_slack = 1e-12 * np.abs(self.a_p)  # float64 rounding of aᵢ − dᵢᵀF (_entering)
        self._products = None  # new rows: multiplied afresh

    # -- state ------------------------------------------------------------------------------

    @property
    def DA(self) -> FloatArray:
        """The active rows, (|A|, d_model), in float64: a copy (the buffer grows in place, by
        realloc, so a view of it would not outlive the next growth)."""
        return self._DA[: len(self.active)].astype(np.float64)

    @property
    def R(self) -> FloatArray:
        """Upper Cholesky factor of the active Gram matrix D_A D_Aᵀ = RᵀR: a copy, as `DA`."""
        n = len(self.active)
        return self._R[:n, :n].copy()

    def _start(self, top: int) -> None:
        self.alpha = self.alpha0
        self.active: list[int] = []
        self.excluded: set[int] = set()
        self.dependent: set[int] = set()
        self._add(top)
        self._record(verified=True)  # α₀ = max a over all features: KKT holds everywhere

    def _restore(self, k: int) -> None:
        """Go back to breakpoint k: drop the later ones and rebuild the factorisation."""
        rec = self.records[k]
        del self.records[k + 1 :], self._g[k + 1 :], self._h[k + 1 :]
        self.complete = False
        self.alpha = rec.alpha
        self.active = [int(i) for i in rec.active]
        n = len(self.active)
        self._reserve(n)
        self._active_buffer[:n] = rec.active
        rows = self.rows(rec.active)
        self._DA[:n] = rows  # a float32 decoder's rows exactly, as float64 or float32
        self._R[:n, :n] = cholesky(rows @ rows.T, lower=False)
        self._direction()  # x, v, F, U of segment k, from the new factor
        self.excluded = set(rec.excluded)
        self.dependent = set()

    def _reserve(self, n: int) -> None:
        """Room for n + 1 active rows in the factor, the active rows and the active buffer (as
        many as d_model + 1 at most): grown by FACTOR_GROWTH, the first n kept. R and D_A grow
        in place (`ndarray.resize`, a realloc: a large block is re-mapped, not copied), so the
        old and the new buffers are never held together, and R's columns move to their new
        leading dimension within the buffer."""
        capacity = self._R.shape[0]
        most = min(self.d_model, self.d_sae) + 1
        if n < capacity or capacity >= most:
            return
        grown = min(most, max(n + 1, int(capacity * FACTOR_GROWTH)))
        flat = self._R_flat
        del self._R  # the views are remade below: the realloc may move the buffer
        flat.resize(grown * grown, refcheck=False)
        # column j moves from j·capacity to j·grown (the leading dimension), the last ones
        # first, a run of columns at a time: a run's new place lies beyond every earlier
        # column's old one, and beyond its own old place too (no temporary copy) unless it is
        # one column; the rest is zeroed. A run shrinks by grown/capacity: ~30 runs to grow
        # 612 → 765 columns, where a column at a time took ~2 ms
        stop = capacity
        while stop > 1:
            start = min(stop - 1, max(1, -(-stop * capacity // grown)))
            target = flat[start * grown : stop * grown].reshape(stop - start, grown)
            target[:, :capacity] = flat[start * capacity : stop * capacity].reshape(-1, capacity)
            target[:, capacity:] = 0.0
            stop = start
        flat[capacity:grown] = 0.0
        flat[capacity * grown :] = 0.0
        self._R = flat.reshape((grown, grown), order="F")
        self._DA.resize((grown, self.d_model), refcheck=False)
        active = np.empty(grown, dtype=np.int64)
        active[:capacity] = self._active_buffer
        self._active_buffer = active

    def _solve(self, b: FloatArray, *, transpose: bool = False) -> FloatArray:
        """R⁻¹b (or R⁻ᵀb) with the current factor, read in place by LAPACK (dtrtrs): scipy's
        solve_triangular validates and copies its arguments on every call, which costs more
        than the solve at these sizes."""
        n = len(self.active)
        x, info = dtrtrs(self._R[:, :n], b, lower=0, trans=1 if transpose else 0)
        if info != 0:
            raise np.linalg.LinAlgError(f"singular triangular factor (LAPACK dtrtrs info {info})")
        result: FloatArray = x
        return result

    def _gram_column(self, n: int, row: FloatArray) -> FloatArray:
        """D_A[:n] dᵢ in float64 (dᵢ = `row`): BLAS on float64 rows, compiled on float32 ones
        (45 → 28 µs at |A| ≈ 380 × 768 when the pool's product runs beside it)."""
        if self._DA.dtype == np.float64:
            column: FloatArray = self._DA[:n] @ row
            return column
        return gram_column(self._DA, n, row)  # type: ignore[no-any-return]

    def _combine(self, coefficients: FloatArray) -> FloatArray:
        """D_Aᵀc over the first c.size active rows, in float64 (as `_gram_column`)."""
        if self._DA.dtype == np.float64:
            combined: FloatArray = coefficients @ self._DA[: coefficients.size]
            return combined
        return combine_rows(coefficients, self._DA)  # type: ignore[no-any-return]

    def _add(self, i: int) -> bool:
        """Append feature i to the active set; False (and nothing changes) when its row is in
        the span of the active rows."""
        row = np.asarray(self.decoder[i], dtype=np.float64)
        gamma = float(row @ row)
        n = len(self.active)
        self._reserve(n)
        if n >= self._R.shape[0]:
            return False
        if n:
            column = self._gram_column(n, row)
            z = self._solve(column, transpose=True)
            pivot2 = gamma - float(z @ z)
            if pivot2 <= PIVOT_TOL * gamma:
                return False
            incremental = self._since_refresh < REFRESH_EVERY
            if incremental:
                t = self._solve(z)  # G⁻¹g, with the factor before the new column
            self._R[:n, n] = z
            self._R[n, :n] = 0.0
            self._R[n, n] = math.sqrt(pivot2)
        else:
            self._R[0, 0] = math.sqrt(gamma)
            incremental = False
        self._DA[n] = row
        self._active_buffer[n] = i
        self.active.append(int(i))
        if incremental:
            self._extend_direction(i, row, column, t, pivot2)
        else:
            self._direction()
        return True

    def _extend_direction(
        self, i: int, row: FloatArray, g: FloatArray, t: FloatArray, s: float
    ) -> None:
        """x, v, F and U after feature i joined A, from their values before: with g = D_A dᵢ,
        t = G⁻¹g and the Schur complement s = ‖dᵢ‖² − gᵀt (the new pivot²), block elimination
        gives yᵢ = (bᵢ − gᵀy)/s and y_A ← y_A − t·yᵢ for y = x (b = a) and y = v (b = 1), and the
        fit moves along q = dᵢ − D_Aᵀt: F ← F + xᵢ q, U ← U + vᵢ q. One triangular solve and one
        product with D_A instead of four solves and a two-row product; refreshed from scratch
        every REFRESH_EVERY additions and drops (see `_shrink_direction`) so that rounding cannot
        build up."""
        x_i = (float(self.a_p[self.pool_pos[i]]) - float(g @ self.x)) / s
        v_i = (1.0 - float(g @ self.v)) / s
        n = t.size
        x, v = np.empty(n + 1), np.empty(n + 1)
        np.multiply(t, -x_i, out=x[:n])
        x[:n] += self.x
        x[n] = x_i
        np.multiply(t, -v_i, out=v[:n])
        v[:n] += self.v
        v[n] = v_i
        self.x, self.v = x, v
        q = row - self._combine(t)
        self.F = self.F + x_i * q
        self.U = self.U + v_i * q
        if self._products is not None:
            self._products.move(self.Dp, q, x_i, v_i)
        self._since_refresh += 1

    def _drop(self, position: int) -> None:
        """Remove the active feature at `position`: delete its column of R, then restore the
        triangle with Givens rotations (O(|A|²)); x, v, F, U follow by `_shrink_direction`."""
        n = len(self.active)
        R = self._R
        incremental = self._since_refresh < REFRESH_EVERY and n > 1
        if incremental:  # h = G⁻¹e_p and D_Aᵀh, with the factor and rows before the drop
            unit = np.zeros(n)
            unit[position] = 1.0
            inverse_column = self._solve(self._solve(unit, transpose=True))
            fit_change = self._combine(inverse_column)
        # columns position+1 … n−1 one to the left: one contiguous span of the flat factor
        cap = R.shape[0]
        _move_left(self._R_flat, (position + 1) * cap, n * cap, cap)
        # rotate rows k and k+1 from column k on, in place, compiled (a loop of BLAS drot
        # calls took ~0.3 ms a drop at |A| ≈ 400, most of it the calls' overhead)
        rotate_out(self._R_flat, cap, position, n)
        R[n - 1, :n] = 0.0
        R[:n, n - 1] = 0.0
        negative = np.flatnonzero(np.diag(R)[: n - 1] < 0)
        R[negative, : n - 1] *= -1.0
        d = self.d_model
        _move_left(self._DA.reshape(-1), (position + 1) * d, n * d, d)  # rows up by one
        self._active_buffer[position : n - 1] = self._active_buffer[position + 1 : n].copy()
        del self.active[position]
        if incremental:
            self._shrink_direction(position, inverse_column, fit_change)
        else:
            self._direction()

    def _shrink_direction(self, position: int, h: FloatArray, fit_change: FloatArray) -> None:
        """x, v, F and U after the feature at `position` left A, from their values before:
        with H = G⁻¹ and h = H e_p, the inverse of G without row and column p is
        H₋ₚ₋ₚ − h₋ₚh₋ₚᵀ/h_p, so y' = y₋ₚ − (y_p/h_p) h₋ₚ for y = x and y = v, and the fit moves by
        D_Aᵀh: F' = F − (x_p/h_p) D_Aᵀh, U' = U − (v_p/h_p) D_Aᵀh. Two triangular solves and one
        product with D_A instead of four solves and a two-row product; counted with the
        additions towards the next refresh."""
        h_p = float(h[position])
        keep = np.ones(h.size, dtype=bool)
        keep[position] = False
        x_p, v_p = float(self.x[position]) / h_p, float(self.v[position]) / h_p
        rest = h[keep]
        self.x = self.x[keep] - x_p * rest
        self.v = self.v[keep] - v_p * rest
        self.F = self.F - x_p * fit_change
        self.U = self.U - v_p * fit_change
        if self._products is not None:
            self._products.move(self.Dp, fit_change, -x_p, -v_p)
        self._since_refresh += 1

    def _direction(self) -> None:
        """x = G⁻¹a_A and v = G⁻¹1 from the factor, and the fit's pieces F = D_Aᵀx, U = D_Aᵀv."""
        # one right-hand side per solve: LAPACK's dtrtrs on two columns goes through dtrsm,
        # ~3× the time of two single-column solves at |A| ≈ 600
        self.x = self._solve(self._solve(self._a_active(), transpose=True))
        self.v = self._solve(self._solve(np.ones(len(self.active)), transpose=True))
        # two matrix–vector products: numpy's (2, |A|) @ D_A took 2.2–2.8× their time (|A| 100–600
        # at d_model 768, 300 at 2304)
        self.F, self.U = self._combine(self.x), self._combine(self.v)
        self._since_refresh = 0
        self._products = None  # F and U anew: the pool's products too

    def _a_active(self, idx: IntArray | None = None) -> FloatArray:
        """The exact aᵢ of the active features, from the pool's (every active feature entered
        from the pool, which only grows): a plain index, not a lookup per step."""
        if idx is None:
            idx = self._active_buffer[: len(self.active)]
        values: FloatArray = self.a_p[self.pool_pos[idx]]
        return values

    def _record(self, *, verified: bool = False) -> None:
        idx = self._active_buffer[: len(self.active)].copy()
        a_active = self._a_active(idx)
        rec = Breakpoint(
            alpha=self.alpha,
            active=idx,
            x=self.x,
            v=self.v,
            fitted=self.F - self.alpha * self.U,
            P=float(a_active @ self.x),
            Q=float(a_active @ self.v),
            FF=float(self.F @ self.F),
            FU=float(self.F @ self.U),
            UU=float(self.U @ self.U),
            S=float(self.x.sum()),
            T=float(self.v.sum()),
            excluded=frozenset(self.excluded),
            violation=0.0 if verified else None,
        )
        first = not self.records
        self.records.append(rec)
        margin = rec.margin
        if first:
            self._g.append(0.0)
            self._h.append(math.sqrt(rec.UU) / rec.Q)  # constant on the first segment
        else:
            self._g.append(margin / rec.alpha if rec.alpha > 0 else math.inf)
            self._h.append(rec.norm / margin if margin > 0 else math.inf)

    # -- stepping ---------------------------------------------------------------------------

    def step(self) -> None:
        """Follow the path on the pool to its next breakpoint (or to α = 0)."""
        if self.complete:
            return
        if len(self.records) > self.max_steps or self.steps > 10 * self.max_steps:
            raise PathStepLimitError(
                f"the homotopy took {self.steps} steps ({len(self.records)} breakpoints, "
                f"max_steps = {self.max_steps}) without reaching α = 0; the path is degenerate "
                f"or cycling"
            )
        self.steps += 1
        alpha = self.alpha
        i_in, alpha_in = self._entering(alpha)

        j_out, alpha_out = leaving(self.x, self.v, alpha)

        new_alpha = max(alpha_in, alpha_out, 0.0)
        if new_alpha < alpha:
            self.excluded = set()  # a strictly positive step: a drop's exclusion lapses
        self.alpha = new_alpha
        if new_alpha <= ALPHA_FLOOR * self.alpha0:
            self.alpha = 0.0
            self._record()
            self.complete = True
            return
        if alpha_out >= alpha_in:
            feature = self.active[j_out]
            self._drop(j_out)
            self.excluded.add(feature)  # it must not re-enter at the same α
            self.dependent = set()  # a smaller active set spans less
            self._record()
            return
        feature = int(self.pool[i_in])
        if self._add(feature):
            self._record()
        else:
            self.dependent.add(feature)  # in the span of the active rows: cannot enter

    def _candidates(self) -> npt.NDArray[np.bool_]:
        """Pool features that may enter: not active, not excluded, not in the active span."""
        candidate = np.ones(self.pool.size, dtype=bool)
        if len(self.active) >= self.d_model:
            candidate[:] = False  # every row is in the span of the active ones
        candidate[self.pool_pos[self._active_buffer[: len(self.active)]]] = False
        if self.excluded or self.dependent:
            skip = np.fromiter(self.excluded | self.dependent, dtype=np.int64)
            out = self.pool_pos[skip]
            candidate[out[out >= 0]] = False
        return candidate

    def _entering(self, alpha: float) -> tuple[int, float]:
        """The pool position of the next feature to enter and the α where it does (−1, −inf:
        none). Feature i enters at eᵢ/rateᵢ with eᵢ = aᵢ − dᵢᵀF, rateᵢ = 1 − dᵢᵀU (capped at
        α; the first largest wins, in pool order).

        A float64 pool is multiplied in float64. A float32 pool (a float32 decoder's, half the
        bytes; see POOL32_SIZE) is multiplied in float32, every feature's
        enter-α is bracketed with the product's worst-case rounding bound, and the features
        whose bracket reaches the best lower end are recomputed in float64: the same choice as
        a float64 product would make, to float64 rounding."""
        candidate = self._candidates()
        # two matrix-vector products: OpenBLAS's gemm on two columns takes its slow skinny path
        # (2× the time in float64, 4× in float32, at 4374 × 2304)
        if self.Dp.dtype == np.float64:
            e = self.a_p - self.Dp @ self.F
            return _first_max(e, 1.0 - self.Dp @ self.U, candidate, alpha)
        if self._products is None:
            self._products = _PoolProducts(self.Dp, self.a_p, self.F, self.U)
        products = self._products
        e_hat, r_hat = products.e, products.r
        # rounding F, U to float32 and a float32 dot product of d_model terms:
        # |error| ≤ (d_model + 2)·u·‖dᵢ‖‖F‖ (and ‖U‖), inflated for the float64 steps after;
        # the float64 subtraction errs by less than 1e-12·(|aᵢ| + |dᵢᵀF|), and |dᵢᵀF| ≤ ‖dᵢ‖‖F‖.
        # Products kept up to date since (`_PoolProducts.move`) err by the sum of such bounds.
        # (compiled: the ~20 pool-sized numpy operations it took cost ~50 µs a step)
        scale = (self.d_model + 2) * _U32 * 1.01 + 1.01e-12
        recheck = entering_bracket(
            e_hat,
            r_hat,
            self._pool_norms,
            self._a_p_slack,
            candidate,
            scale * products.F_reach,
            scale * products.U_reach,
            alpha,
            RATE_TOL,
        )
        if recheck.size == 0:
            return -1, -math.inf
        # the pool's own rows (the decoder's float32 values, at hand), not a gather from it,
        # in float64 (compiled: a gather, a conversion and two products took ~30 µs)
        k, alpha_in = entering_exact(self.Dp, recheck, self.a_p, self.F, self.U, alpha, RATE_TOL)
        return (int(recheck[k]), alpha_in) if k >= 0 else (-1, -math.inf)

    # -- queries on the breakpoints ----------------------------------------------------------

    def margins_over_alpha(self) -> FloatArray:
        """g_k = aᵀβ(α_k)/α_k at every breakpoint (0 at the first, inf at α = 0): the QP's λr."""
        return np.array(self._g)

    def norm_ratios(self) -> FloatArray:
        """h_k = ‖Dᵀβ(α_k)‖ / aᵀβ(α_k) at every breakpoint: the SOCP's ε/r. Constant on the first
        segment, where it is ‖U₀‖/Q₀."""
        return np.array(self._h)

    def _reached(self, g_target: float | None, h_target: float | None) -> bool:
        k = len(self.records) - 1
        if self.complete:
            return True
        if k == 0:
            return g_target is None and h_target is None
        return (g_target is None or self._g[k] >= g_target) and (
            h_target is None or self._h[k] <= h_target
        )

    def extend(self, *, g_target: float | None = None, h_target: float | None = None) -> None:
        """Step until the last breakpoint has g ≥ g_target and h ≤ h_target, or α = 0.

        Every CHECK_EVERY-th breakpoint is checked over all features as it is reached, so a pool
        that misses a feature is found out (and repaired) before much of the path is built on it.
        """
        while not self._reached(g_target, h_target):
            stop = _next_checkpoint(len(self.records) - 1)
            with _threads():
                while len(self.records) - 1 < stop and not self._reached(g_target, h_target):
                    self.step()
            if len(self.records) - 1 == stop and not self.complete:
                failed = self.check([stop])
                if failed:
                    self.repair(failed)
                else:
                    self._anticipate(stop)

    def walk(
        self, steps: int, *, g_target: float | None = None, h_target: float | None = None
    ) -> None:
        """Step at most `steps` breakpoints towards the targets (as `extend`, without checks)."""
        with _threads():
            for _ in range(steps):
                if self._reached(g_target, h_target):
                    return
                self.step()

    def complete_path(self) -> None:
        """Step to α = 0 (on the pool: breakpoints are checked only when asked)."""
        with _threads():
            while not self.complete:
                self.step()

    def verified(self) -> list[Breakpoint]:
        """The whole path to α = 0 with every breakpoint checked over all features."""
        while True:
            self.complete_path()
            failed = self.check(range(len(self.records)))
            if not failed:
                return list(self.records)
            self.repair(failed)

    # -- the KKT check over every feature -----------------------------------------------------

    def _tolerance(self, alpha: float) -> float:
        return float(VIOLATION_RTOL * alpha + VIOLATION_ATOL * self.alpha0)

    def correlations(
        self,
        residuals: FloatArray,
        alphas: FloatArray,
        skip: list[IntArray],
        positions: list[int] | None = None,
    ) -> list[tuple[IntArray | None, FloatArray, FloatArray | None]]:
        """For each column r of residuals (d_model, m): (features, cᵢ in float64, an estimate of
        every cᵢ or None). `features` lists those whose cᵢ may exceed α − tolerance, less
        `skip[j]` (None: every feature is given); every other feature has cᵢ < α for sure.

        A float64 decoder is multiplied in float64. A float32 one is multiplied in float32 (one
        pass, no copy), then the features within the product's worst-case error bound of α are
        recomputed in float64.

        With `positions` (the columns' breakpoint indices), columns are grouped by spans of
        SCREEN_SPAN breakpoints and only each group's middle one is multiplied by the whole
        decoder; the others are screened against it (`_screen`), and their estimate is None.
        """
        m = residuals.shape[1]
        anchor = _anchors(positions) if positions is not None else list(range(m))
        full = sorted(set(anchor))
        out: list[tuple[IntArray | None, FloatArray, FloatArray | None] | None] = [None] * m
        computed = self._full(residuals[:, full], alphas[full], [skip[j] for j in full])
        errors: dict[int, tuple[FloatArray, float]] = {}
        for j, (features, values, estimate, error) in zip(full, computed):
            out[j] = (features, values, estimate)
            errors[j] = (estimate, error)
        again = []
        for j in range(m):
            if out[j] is None:
                estimate, error = errors[anchor[j]]
                out[j] = self._screen(
                    residuals[:, j], residuals[:, anchor[j]], estimate, error, alphas[j], skip[j]
                )
                if out[j] is None:
                    again.append(j)
        if again:
            for j, (features, values, estimate, _) in zip(
                again, self._full(residuals[:, again], alphas[again], [skip[j] for j in again])
            ):
                out[j] = (features, values, estimate)
        return [result for result in out if result is not None]

    def _norms(self) -> FloatArray:
        if self._row_norms is None:
            self._row_norms = row_norm_bounds(self.decoder)
        return self._row_norms

    def _full(
        self, residuals: FloatArray, alphas: FloatArray, skip: list[IntArray]
    ) -> list[tuple[IntArray | None, FloatArray, FloatArray, float]]:
        """`correlations` of every column through one product with the whole decoder, each with
        the product's error bound per unit of row norm (0 in float64)."""
        self.checked_columns += residuals.shape[1]
        if self.decoder.dtype == np.float64:
            exact = _product(self.decoder, residuals)
            return [(None, exact[j], exact[j], 0.0) for j in range(residuals.shape[1])]
        widest = float(self._norms().max())
        approx = _product(self.decoder, residuals.astype(np.float32))
        out: list[tuple[IntArray | None, FloatArray, FloatArray, float]] = []
        for j in range(residuals.shape[1]):
            res = residuals[:, j]
            column = approx[j]  # contiguous: one breakpoint's d_sae correlations
            bound = (self.d_model + 4) * _U32 * 1.01 * float(np.linalg.norm(res))
            # one threshold for every row, with the largest row norm's bound: a few more rows
            # to recompute when norms differ, one float32 comparison instead of four passes
            floor = float(alphas[j]) - bound * widest - self._tolerance(float(alphas[j]))
            near = column >= _float32_below(floor)
            near[skip[j]] = False
            flagged = np.flatnonzero(near)
            out.append((flagged, self.rows(flagged) @ res, column, bound))
        return out

    def _screen(
        self,
        res: FloatArray,
        anchor_res: FloatArray,
        estimate: FloatArray,
        error: float,
        alpha: float,
        skip: IntArray,
    ) -> tuple[IntArray, FloatArray, None] | None:
        """The features that may reach α − tolerance at residual `res`, found from the estimate
        at a nearby breakpoint's residual: cᵢ(res) = cᵢ(anchor) + dᵢ·(res − anchor), so
        cᵢ(res) ≤ estimateᵢ + (error + ‖res − anchor‖)·‖dᵢ‖; then their exact values. None when
        more than SCREEN_SHARE of the features are left (a full product is then cheaper)."""
        distance = float(np.linalg.norm(res - anchor_res)) * (1.0 + 1e-9)
        reach = (error + distance) * self._norms()
        near = estimate + reach >= alpha - self._tolerance(alpha)
        near[skip] = False
        flagged = np.flatnonzero(near)
        if flagged.size > SCREEN_SHARE * self.d_sae:
            return None
        self.screened_columns += 1
        return flagged, self.rows(flagged) @ res, None

    def outside_violators(
        self, fitted: FloatArray, alpha: float, active: IntArray
    ) -> tuple[IntArray, FloatArray]:
        """The pool features outside `active` whose cᵢ = aᵢ − dᵢᵀfitted exceeds α beyond the KKT
        tolerance (exact values), and by how much: cᵢ/α (cᵢ at α = 0). A float32 pool is
        multiplied in float32 and the features within its rounding bound of α recomputed."""
        limit = alpha + self._tolerance(alpha)
        if self.Dp.dtype == np.float64:
            c = self.a_p - self.Dp @ fitted
            near = np.flatnonzero(c > limit)
            values = c[near]
        else:
            estimate = np.subtract(self.a_p, self.Dp @ fitted.astype(np.float32), dtype=np.float64)
            scale = (self.d_model + 2) * _U32 * 1.01 * math.sqrt(float(fitted @ fitted))
            near = np.flatnonzero(estimate + self._pool_norms * scale + self._a_p_slack > limit)
            values = self.a_p[near] - self.Dp[near].astype(np.float64) @ fitted
            keep = values > limit
            near, values = near[keep], values[keep]
        features = self.pool[near]
        outside = ~np.isin(features, active, assume_unique=True)
        ratio = values[outside] / alpha if alpha > 0 else values[outside]
        return features[outside], ratio

    def priced(
        self,
        fitted: FloatArray,
        alpha: float,
        active: IntArray,
        *,
        join_pool: bool = False,
        estimate: bool = False,
    ) -> tuple[IntArray, FloatArray]:
        """Every feature outside `active` whose cᵢ = dᵢᵀ(w − fitted) exceeds α beyond the KKT
        tolerance, and cᵢ/α (cᵢ at α = 0), from one product with the whole decoder: for a
        float32 decoder only the features within the product's rounding bound of the threshold
        are recomputed exactly (the others are surely above or below it, and their float32
        value is good enough to rank them). With `join_pool` the violators join the pool. When
        there are none, `last_violation` is the largest cᵢ − α outside `active` (at least 0),
        exactly. With `estimate`, a float32 decoder's product is taken as it is (no feature
        recomputed, `last_violation` left alone): for pivoting rounds that choose which features
        change side, whose answer is then priced exactly."""
        residual = self.w - fitted
        limit = alpha + self._tolerance(alpha)
        self.checked_columns += 1
        exact = self.decoder.dtype == np.float64
        estimate = estimate and not exact  # (a float64 product is exact already)
        if exact:
            values = self.decoder @ residual
        else:
            values = (self.decoder @ residual.astype(np.float32)).astype(np.float64)
        values[active] = -math.inf
        if not (exact or estimate):
            error = (self.d_model + 4) * _U32 * 1.01 * float(np.linalg.norm(residual))
            reach = self._norms() * error
            unsure = np.flatnonzero(np.abs(values - limit) <= reach)
            if unsure.size:
                values[unsure] = self.rows(unsure) @ residual
        over = np.flatnonzero(values > limit)
        if estimate:
            pass  # `last_violation` and the pool left alone
        elif over.size == 0:
            worst = float(values.max(initial=-math.inf))
            if not exact:  # the largest exactly, not its estimate
                top = np.flatnonzero(values + reach >= worst)
                top = top[np.isfinite(values[top])]
                worst = float((self.rows(top) @ residual).max(initial=-math.inf))
            excess = worst - alpha
            self.last_violation = max(excess, 0.0) if math.isfinite(excess) else 0.0
        elif join_pool:
            self._grow_pool(over)
        ratio = values[over] / alpha if alpha > 0 else values[over]
        return over, ratio

    def check(self, indices: Iterable[int]) -> list[int]:
        """Check KKT over all features at the given breakpoints not yet checked, and record each
        one's violation (max over the inactive features of cᵢ − α, at least 0). Returns the
        breakpoints where a feature outside the pool violates it (their violation stays None;
        the violators are remembered for `repair`)."""
        todo = sorted({int(k) for k in indices if self.records[int(k)].violation is None})
        screen = len(todo) <= SCREEN_UP_TO
        failed: list[int] = []
        with _threads():
            for start in range(0, len(todo), CHECK_CHUNK):
                chunk = [self.records[k] for k in todo[start : start + CHECK_CHUNK]]
                failed += self._check(chunk, screen=screen)
        return failed

    def _check(self, recs: list[Breakpoint], *, screen: bool = True) -> list[int]:
        position = {id(rec): k for k, rec in enumerate(self.records)}
        alphas = np.array([rec.alpha for rec in recs])
        residuals = np.column_stack([self.w - rec.fitted for rec in recs])
        skip = [rec.active for rec in recs]
        positions = [position[id(rec)] for rec in recs] if screen else None
        failed: list[int] = []
        again: list[Breakpoint] = []
        for rec, (features, values, estimate) in zip(
            recs, self.correlations(residuals, alphas, skip, positions)
        ):
            k = position[id(rec)]
            idx = np.arange(self.d_sae) if features is None else features
            excess = values - rec.alpha
            if features is None:
                excess[rec.active] = -math.inf
            outside = self.pool_pos[idx] < 0
            bad = outside & (excess > self._tolerance(rec.alpha))
            if bad.any():
                if estimate is None:  # screened: the repair wants every feature's estimate
                    again.append(rec)
                    continue
                failed.append(k)
                self._wanted[k] = idx[bad]
                relative = (estimate - rec.alpha) / max(rec.alpha, VIOLATION_ATOL * self.alpha0)
                if self._excess is None:
                    self._excess = relative
                else:
                    np.maximum(self._excess, relative, out=self._excess)
                continue
            worst = float(excess.max(initial=-math.inf))
            rec.violation = max(worst, 0.0) if math.isfinite(worst) else 0.0
            if estimate is not None:
                self._passed = (k, rec.alpha, estimate)
        if again:
            failed += self._check(again, screen=False)
        return failed

    def _anticipate(self, k: int) -> None:
        """After breakpoint k passed the check: bring into the pool the outside features whose
        correlation is already closest to α there (at most ANTICIPATE_SHARE of the pool, those
        above ANTICIPATE_RATIO · α), so that the pool keeps ahead of the path instead of being
        repaired after a feature outside it has entered."""
        if self._passed is None or self._passed[0] != k:
            return
        _, alpha, estimate = self._passed
        if not alpha > 0:
            return
        score = np.where(self.pool_pos < 0, estimate / alpha, -np.inf)
        count = min(max(16, int(self.pool.size * ANTICIPATE_SHARE)), score.size - 1)
        top = np.argpartition(-score, count)[:count]
        self._grow_pool(top[score[top] >= ANTICIPATE_RATIO])

    def repair(self, failed: list[int]) -> None:
        """Some breakpoints failed the check: find a good breakpoint before the first of them
        (checking k−1, k−2, k−4, … in one product), go back to it, and grow the pool by the
        violators at the earliest failure plus the features that came closest to violating
        (by (cᵢ − α)/α over the failed checks; half the pool again, at least 64)."""
        first = min(failed)
        probes = {first - 2**i for i in range(first.bit_length() + 1)}
        probes = {k for k in probes if k >= 1}
        more = self.check(probes)
        good = max(
            (k for k in range(first) if k not in more and self.records[k].violation is not None),
            default=0,
        )
        violators = self._wanted[min(self._wanted)]  # at the earliest failure found
        extra = max(64, self.pool.size // 2)
        picks = np.empty(0, dtype=np.int64)
        if self._excess is not None:
            score = np.where(self.pool_pos < 0, self._excess, -np.inf)
            top = np.argpartition(-score, min(extra, score.size - 1))[:extra]
            picks = top[np.isfinite(score[top])]
        self._grow_pool(np.concatenate([violators, picks]))
        self._wanted, self._excess = {}, None
        self.repairs += 1
        with _one_thread():
            self._restore(good)


def _float32_below(value: float) -> np.float32:
    """The largest float32 at or below `value` (a comparison threshold that cannot round up)."""
    result: np.float32 = np.float32(value)
    if float(result) > value:
        result = np.float32(np.nextafter(result, np.float32(-np.inf)))
    return result


def _anchors(positions: list[int]) -> list[int]:
    """For each column, the column whose product with the whole decoder screens it (itself for
    the middle of a group): the positions, in order, in groups spanning fewer than SCREEN_SPAN
    breakpoints."""
    order = sorted(range(len(positions)), key=positions.__getitem__)
    anchor = list(range(len(positions)))
    start = 0
    while start < len(order):
        end = start
        first = positions[order[start]]
        while end + 1 < len(order) and positions[order[end + 1]] - first < SCREEN_SPAN:
            end += 1
        group = order[start : end + 1]
        middle = (first + positions[order[end]]) / 2
        best = min(group, key=lambda c: abs(positions[c] - middle))
        for c in group:
            anchor[c] = best
        start = end + 1
    return anchor


def _move_left(flat: FloatArray, start: int, stop: int, by: int) -> None:
    """flat[start − by : stop − by] = flat[start:stop] for a contiguous 1-d view, in one pass:
    C's memmove copies overlapping spans correctly, where numpy copies them through a
    temporary (two passes; a drop shifts 1–4 MB of R and D_A at |A| ≈ 600)."""
    if not (0 < by <= start <= stop <= flat.size and flat.flags.c_contiguous):
        raise ValueError(f"bad span to move: [{start}, {stop}) by {by} in {flat.size}")
    if stop > start:
        source = flat[start:stop]
        ctypes.memmove(flat[start - by :].ctypes.data, source.ctypes.data, source.nbytes)


def _first_max(
    e: FloatArray, rate: FloatArray, candidate: npt.NDArray[np.bool_], alpha: float
) -> tuple[int, float]:
    """argmax of min(eᵢ/rateᵢ, α) over the candidates with rateᵢ > RATE_TOL (the first on
    ties), and its value; (−1, −inf) when there is none."""
    candidate = candidate & (rate > RATE_TOL)
    enter_at = np.full(e.shape, -np.inf)
    np.divide(e, rate, out=enter_at, where=candidate)
    np.minimum(enter_at, alpha, out=enter_at)
    if not enter_at.size:
        return -1, -math.inf
    i = int(np.argmax(enter_at))
    return (i, float(enter_at[i])) if enter_at[i] > -np.inf else (-1, -math.inf)


#: Up to this many columns, D @ X is computed one matrix-vector product per column: OpenBLAS's
#: gemm on a few columns takes ~4× the time of one gemv (measured at 24576 × 768, float32).
_GEMV_COLUMNS = 3


def _product(decoder: np.ndarray[Any, Any], x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """(decoder @ x)ᵀ, shape (m, d_sae), for x of shape (d_model, m): row j is column j's
    correlations, contiguous (a column of a (d_sae, m) array is m times slower to scan). As m
    matrix-vector products when m is small, else one xᵀ @ decoderᵀ."""
    if x.shape[1] > _GEMV_COLUMNS:
        product: np.ndarray[Any, Any] = np.ascontiguousarray(x.T) @ decoder.T
        return product
    out = np.empty((x.shape[1], decoder.shape[0]), dtype=np.result_type(decoder, x))
    for j in range(x.shape[1]):
        out[j] = decoder @ np.ascontiguousarray(x[:, j])
    return out


def _next_checkpoint(k: int) -> int:
    """The next multiple of CHECK_EVERY above k, from 2·CHECK_EVERY on: a pool that misses a
    feature is found out within that many breakpoints, so a repair recomputes at most that
    many. A path shorter than 2·CHECK_EVERY (one input from scratch, typically) is checked only
    where its answers land: one full pass over the decoder fewer, for at most 2·CHECK_EVERY
    steps recomputed when the initial pool missed a feature."""
    return max(k // CHECK_EVERY + 1, 2) * CHECK_EVERY


class _PoolProducts:
    """A float32 pool's e = a_p − D_p F and r = 1 − D_p U (float32 products, kept in float64),
    kept up to date as F and U move along one vector q (an addition or a drop moves both along
    the same one): one product D_p q per step instead of D_p F and D_p U, the two passes over
    the pool that made most of a step's time on long paths. `F_reach` and `U_reach` bound the
    norms the rounding errors scale with: ‖F‖ at the fresh products, plus |moved|·‖q‖ per move
    (each move's float32 product errs like a fresh product of that size). The products are made
    afresh whenever F and U are (`Homotopy._direction`, every REFRESH_EVERY steps) or the pool
    grows."""

    def __init__(self, Dp: Any, a_p: FloatArray, F: FloatArray, U: FloatArray) -> None:
        self.e = np.subtract(a_p, Dp @ F.astype(np.float32), dtype=np.float64)
        self.r = np.subtract(1.0, Dp @ U.astype(np.float32), dtype=np.float64)
        self.F_reach = math.sqrt(float(F @ F))
        self.U_reach = math.sqrt(float(U @ U))

    def move(self, Dp: Any, q: FloatArray, by_F: float, by_U: float) -> None:
        """F += by_F·q and U += by_U·q."""
        moved = (Dp @ q.astype(np.float32)).astype(np.float64)
        self.e -= by_F * moved
        self.r -= by_U * moved
        size = math.sqrt(float(q @ q))
        self.F_reach += abs(by_F) * size
        self.U_reach += abs(by_U) * size


class _NoLimit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


class _Limit:
    """Inside, every library of a threadpoolctl selection at `threads` threads, restored on the
    way out: set through each library's controller directly (~2 µs a switch), where
    threadpoolctl's `limit` reads every library's state again (~20 µs; a pivoted answer switches
    ~15 times)."""

    __slots__ = ("_libraries", "_saved", "_threads")

    def __init__(self, selection: Any, threads: int) -> None:
        self._libraries = selection.lib_controllers
        self._threads = threads
        self._saved: list[int] = []

    def __enter__(self) -> None:
        self._saved = [library.get_num_threads() for library in self._libraries]
        for library in self._libraries:
            library.set_num_threads(self._threads)

    def __exit__(self, *args: object) -> None:
        for library, threads in zip(self._libraries, self._saved):
            library.set_num_threads(threads)


_others: Any = None
_every_blas: Any = None


def _all_blas() -> Any:
    """Every BLAS library loaded (numpy's, scipy's), as one threadpoolctl selection, found
    once; False when there is none or threadpoolctl is missing."""
    global _every_blas
    if _every_blas is None:
        try:
            import scipy.linalg  # noqa: F401  (load its BLAS, so that it is seen)
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _every_blas = False
        else:
            _every_blas = ThreadpoolController().select(user_api="blas") or False
    return _every_blas


def _single_threaded() -> Any:
    """Inside, every BLAS library runs single-threaded, numpy's too: for work made of many small
    products and factorisations (`steerkit_path.jump`), where threads cost more than they
    save, and on a loaded machine much more (a round of pivoting took 30 ms with numpy's two
    threads against 4 ms with one, at load 2.5 on 2 cores)."""
    blas = _all_blas()
    return _Limit(blas, 1) if blas else _NoLimit()


def _spare_threads() -> Any:
    """Inside `_single_threaded`, every BLAS library's threads back for one large product
    (pricing the whole decoder, a pivoting round's new Gram entries) while the machine has a
    core to spare (`steerkit.cores.busy`); one thread still otherwise."""
    blas = _all_blas()
    if cores.busy() or not blas:
        return _NoLimit()
    return _Limit(blas, cores.cpu_count())


def _threads() -> Any:
    """The BLAS threading for a run of steps or checks: numpy's threads while a core is free
    (`steerkit.cores.busy`: other processes leave a core to spare), else one thread for every
    BLAS library."""
    return _single_threaded() if cores.busy() else _one_thread()


def _one_thread() -> Any:
    """Inside, every BLAS library but numpy's runs single-threaded. numpy's products (the pool,
    the active rows) keep their threads: on 2 cores they take about half the time. scipy's
    triangular solves are small, and when scipy brings an OpenBLAS of its own, two spinning
    thread pools fight over the cores (the Gemma-scale grid took 4× as long with both pools
    free, and 1.5× as long with both limited to one thread, on 2 cores)."""
    global _others
    try:
        if _others is None:
            import scipy.linalg  # noqa: F401  (load its BLAS, so that it is seen)
            from threadpoolctl import ThreadpoolController

            controller = ThreadpoolController()
            blas = [c for c in controller.lib_controllers if c.user_api == "blas"]
            others = [c.filepath for c in blas if "numpy" not in c.filepath]
            if len(others) == len(blas):  # no BLAS of numpy's own: one shared pool, no fight
                others = []
            _others = controller.select(filepath=others) if others else False
        return _Limit(_others, 1) if _others else _NoLimit()
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return _NoLimit()
