"""One point far along the path without walking to it: an active-set solve at the target.

A point of the path is fixed by its active set A alone: on A, β_A(α) = x − α v with
x = G_AA⁻¹ a_A and v = G_AA⁻¹ 1 (see `homotopy`), and the target picks α in closed form —
the QP's λr = aᵀβ(α)/α gives α = P/(λr + Q), the SOCP's ε/r = ‖Dᵀβ(α)‖/aᵀβ(α) is a quadratic
in α, and the path's end (the smallest feasible ε) is α = 0. A is right when β_A(α) ≥ 0 and no
feature outside A has cᵢ(α) = dᵢᵀ(w − Dᵀβ(α)) above α: the KKT conditions of the
non-negative Lasso at α, so the point is then the path's point at the target exactly.

Real SAE decoders have correlated rows and paths of hundreds of breakpoints; when one answer
lies far along, walking every breakpoint costs a product of the pool per breakpoint. Here A is
found by block principal pivoting (Júdice & Pires; Kim & Park for NNLS) from the walked path's
last breakpoint: every infeasible feature changes side at once — the features with β < 0 leave,
the outside ones above α enter (at most half as many as A holds, the largest cᵢ/α first, so that
a cold start does not overshoot) — and after three rounds without fewer infeasible features, one
at a time (the largest index: Murty's rule, which cannot cycle). A round costs a Cholesky
factorisation of G_AA — of the part behind the first leaver's place only (`_Gram`: the
entries and the factor's leading rows of the features that stay are carried to the next
round) — and one pricing product; for a float32 decoder both in float32, and the answer's
point is then recomputed in float64 on its active set and priced again (the rounds go on in
float64 if that disagrees). An SOCP's rounds start at an α predicted from the walked path
(`_predicted_alpha`) and follow ε/r's own root on A as soon as A has one.

Pricing is on the whole decoder when it is small (`WHOLE_PRICING`), else on the homotopy's
pool; an answer settled on the pool is then priced over every feature (`Homotopy.priced`,
exact near the threshold), and a feature outside the pool that violates KKT joins the pool and
the rounds go on. So an answer that comes back is certified like a walked breakpoint; when the
rounds do not settle (or G_AA is singular: duplicated rows), the result is None and the caller
walks the path instead.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy.linalg import LinAlgError, cho_factor
from scipy.linalg.blas import get_blas_funcs

from steerkit_path.homotopy import Breakpoint, _single_threaded, _spare_threads

if TYPE_CHECKING:
    from steerkit_path.homotopy import Homotopy

__all__ = ["Target", "jump"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Rounds of pivoting before giving up (the caller then walks the path).
MAX_ROUNDS = 60
#: Rounds without fewer infeasible features before pivoting one feature at a time, and before
#: giving up: near the path's end (|A| close to d_model) the rounds can circle for long, and the
#: walk is then cheaper than circling.
STALL_ROUNDS = 3
GIVE_UP_ROUNDS = 8
#: At most this share of |A| (at least MIN_ENTER, or d_model/8 when smaller) enters in one
#: round. On the default run's SAE (4096 × 640) MIN_ENTER 64 took λ = 1 from a 16-breakpoint
#: walk in 11 rounds (median over the 31 inputs; 13 with 32), ~5–10% less time; the
#: growth of A is what the first rounds do, and larger shares overshoot into rounds of leaving.
ENTER_SHARE = 0.5
MIN_ENTER = 64
#: ... and at most this share of the room left below d_model (|A| ≤ d_model: more rows are
#: linearly dependent), except towards the end, whose A spans the space. Near the path's end
#: (|A| 528 of 640 at 1.01 × the smallest ε on the default run's SAE) entering all the room
#: at once overshot to |A| = 640, where some 300 features left and entered every round and the
#: rounds never settled; a quarter of the room settles in 27 rounds there (and λ = 10 in 21,
#: where it used to give up and walk 1,071 breakpoints).
ROOM_SHARE = 0.25
#: An SOCP's point is approached through at most this many QP points, and its own pivoting
#: from one of them gets this many rounds to settle.
SOCP_ROUNDS = 30
SOCP_SETTLE = 6
#: β_j below −this × max β: feature j leaves (rounding at a breakpoint's zero stays).
NEGATIVE_RTOL = 1e-12
#: Steps of iterative refinement that settle a float32 round's answer in float64 (`_Round.
#: refined`), and the relative size of the last step at which it has: the steps shrink by
#: about cond(G_AA) × 6e-8 each, so a well-conditioned A settles in 2–3.
REFINE_STEPS = 6
REFINED = 1e-15
#: ... or the step no longer shrinks by 4 while below this: the float64 residual's own rounding
#: (about cond(G_AA) × 1e-16 of (x, v)), where a float64 factorisation's answer is as well.
REFINE_FLOOR = 1e-12
#: A round's product for its entering features' Gram entries takes the machine's spare threads
#: (`_spare_threads`) from this many multiply-adds on: at 1.01 × the smallest ε on the default
#: run's SAE (|enter| ≈ 50 against ~500 slots) 42.3 ms against 43.6–44.2 without; for the
#: small products of λ = 0.1 and 1 no difference could be measured either way.
SPARE_THREADS_FROM = 2**23
#: A decoder of at most this many entries is priced whole every round (one float32 pass costs
#: little more than the pool's, and the best features to enter are then never missed: 14
#: rounds instead of 19–36 for λ = 1 on the 4096 × 640 SAE); a larger one on the pool.
WHOLE_PRICING = 2**22


class Target:
    """Where on the path: `qp(λr)`, `socp(ε/r)` or `end()` (α = 0)."""

    def __init__(self, kind: str, value: float = math.nan, guess: float = math.nan) -> None:
        self.kind = kind
        self.value = float(value)
        #: an SOCP's α to pivot at while the active set has no root of its own (see `_socp`)
        self.guess = float(guess)

    @classmethod
    def qp(cls, g: float) -> Target:
        return cls("qp", g)

    @classmethod
    def socp(cls, rho: float, guess: float = math.nan) -> Target:
        return cls("socp", rho, guess)

    @classmethod
    def end(cls) -> Target:
        return cls("end")

    def alpha(
        self, P: float, Q: float, FF: float, FU: float, UU: float, top: float
    ) -> tuple[float, bool]:
        """(α on A's segment where the target holds, in (0, top] (0 for the end), True); with no
        such α on A, (the end of (0, top] to move towards, False)."""
        if self.kind == "end":
            return 0.0, True
        if self.kind == "qp":
            denominator = self.value + Q
            if not denominator > 0 or P / denominator > top:
                return top, False  # g(α) = P/α − Q exceeds the target for every α ≤ top
            return P / denominator, True
        alpha, found = self._socp_root(P, Q, FF, FU, UU, top)
        if not found and self.guess > 0:  # pivot at the guess until A has a root of its own
            return min(self.guess, top), False
        return alpha, found

    def _socp_root(
        self, P: float, Q: float, FF: float, FU: float, UU: float, top: float
    ) -> tuple[float, bool]:
        """`alpha` for the SOCP, without its guess."""
        rho2 = self.value * self.value
        if FF * UU - FU * FU <= 1e-12 * FF * UU:
            # F ∥ U (one feature): h is constant on A's segment, its "root" is β = 0; further
            return top * 1e-9, False
        qa = UU - rho2 * Q * Q
        qb = -2.0 * (FU - rho2 * P * Q)
        qc = FF - rho2 * P * P
        roots: list[float] = []
        if qa != 0.0:
            disc = qb * qb - 4.0 * qa * qc
            if disc >= 0.0:
                root = math.sqrt(disc)
                q = -0.5 * (qb + math.copysign(root, qb))
                roots = [q / qa] + ([qc / q] if q != 0.0 else [])
        elif qb != 0.0:
            roots = [-qc / qb]
        # a root at α₀ itself is the first breakpoint's β = 0 (h is constant on the first
        # segment): never the answer
        valid = [r for r in roots if 0.0 < r < top * (1 - 1e-9) and P - r * Q > 1e-9 * abs(P)]
        if valid:
            return max(valid), True
        # h(0⁺) on A = ‖F‖/P: above the target, the answer lies further (smaller α)
        further = rho2 * P * P < FF
        return (top * 1e-9 if further else top), False


class _Gram:
    """G_AA = D_A D_Aᵀ of the last round's active set and its Cholesky factor, carried to the
    next round. Each feature of A holds a slot of two buffers, its row and its Gram entries,
    from the round it enters until it leaves (a leaver's slot goes to the next one to enter),
    so nothing is moved: an entering feature's entries come from one product of its row with
    the slots' rows (|enter| × slots a round), and only the part of G_AA that is factored again
    is gathered. A's order is the factor's: the features before the first place that a leaver
    held keep their places (the prefix), then the other stayers, the largest β of the last
    round first, then the entering ones. The factor's rows for the prefix stay as they are:
    only the entering columns are solved for there, and the rest (the stayers behind the
    prefix and the entering ones) is factored from its Schur complement. On the default run's
    SAE at 1.01 × the smallest ε (24 rounds at |A| 330–530) the features that leave are mostly
    those with small β: the prefix holds 1–20% of A in rounds 5–11, 24–51% in rounds 12–19 and
    69–100% in the last five, where a factorisation of the whole G_AA was most of each round's
    time (the Cholesky went from ~14 to ~6 ms a solve). In float32 for a
    float32 decoder (half the time of float64 for the products, the updates and the
    factorisations; good enough to choose which features change side), else in float64.
    `exactly()` switches to float64, and an answer is always settled in float64 (`_pivot`)."""

    def __init__(self, h: Homotopy) -> None:
        self.h = h
        self._reset(np.float32 if h.decoder.dtype == np.float32 else np.float64)

    def _reset(self, dtype: type) -> None:
        self.dtype = dtype
        #: A in the factor's order, and each one's slot
        self.order = np.empty(0, dtype=np.int64)
        self.slot = np.empty(0, dtype=np.int64)
        #: the slots handed out so far ([0, used)) and those of them free again
        self.used = 0
        self.free = np.empty(0, dtype=np.int64)
        #: the upper Cholesky factor of G_AA in `order` (Fortran-ordered), None before one
        self.R: npt.NDArray[np.floating] | None = None
        self.rows: npt.NDArray[np.floating] = np.zeros((0, self.h.d_model), dtype=dtype)
        self.G: npt.NDArray[np.floating] = np.zeros((0, 0), dtype=dtype)

    def _buffers(self, capacity: int) -> None:
        """Room for `capacity` slots (the used ones kept): twice what is asked, so that A's
        growth over the first rounds reallocates a few times, not every round. (Slots are
        reused: no more are ever used than A's largest size, at most d_model; a free slot keeps
        its last row, finite, which the products read but nothing else does.)"""
        size = min(max(2 * capacity, 64), self.h.d_model)
        u = self.used
        rows: npt.NDArray[np.floating] = np.empty((size, self.h.d_model), dtype=self.dtype)
        G: npt.NDArray[np.floating] = np.empty((size, size), dtype=self.dtype)
        rows[:u] = self.rows[:u]
        G[:u, :u] = self.G[:u, :u]
        self.rows, self.G = rows, G

    @property
    def exact(self) -> bool:
        return self.dtype == np.float64

    def exactly(self) -> None:
        """From now on in float64 (the entries so far are dropped)."""
        if not self.exact:
            self._reset(np.float64)

    def _entries(self, new: IntArray, slots: IntArray) -> npt.NDArray[np.floating]:
        """The entering features' rows of the Gram against every used slot's row,
        (|new|, used), their own rows written to their `slots` first."""
        joined = self.h.decoder[new] if not self.exact else self.h.rows(new)
        # their exact aᵢ from the rows at hand: the round's h.a[A] then gathers none again
        # (~40 µs a round at 1.01 × the smallest ε on the default run's SAE)
        self.h.a.learn(new, joined)
        self.rows[slots] = joined
        rows = self.rows[: self.used]
        large = new.size * rows.size >= SPARE_THREADS_FROM  # the round's one large product
        with _spare_threads() if large else contextlib.nullcontext():
            block: npt.NDArray[np.floating] = joined @ rows.T
        return block

    def factored(self, A: IntArray, last: FloatArray | None = None) -> IntArray:
        """G_AA's factor for A (`R`, in `order`, which this returns), in the Gram's dtype.
        `last` is the last round's β in the current order (it orders the stayers behind the
        prefix). Raises LinAlgError when G_AA is not positive definite in this dtype (or
        |A| > d_model); the next call then factors its A whole."""
        if A.size > self.h.d_model:  # (before anything changes: the caller may go on)
            raise LinAlgError(f"{A.size} active rows in {self.h.d_model} dimensions")
        if self.used > 4 * max(A.size, 64):  # A shrank far below the slots in use: start
            self._reset(self.dtype)  # afresh, rather than multiply free slots' rows each round
        member = np.zeros(self.h.d_sae, dtype=bool)
        member[A] = True
        order, slot, n = self.order, self.slot, self.order.size
        keep = member[order]
        member[order[keep]] = False
        new = A[member[A]]
        kept = int(np.count_nonzero(keep))
        m = kept + new.size
        old = self.R
        # the prefix: the places before the first leaver's (none without a factor to keep)
        q = 0 if old is None else int(np.argmin(keep)) if kept < n else n
        behind = q + np.flatnonzero(keep[q:])  # the other stayers' places
        if last is not None and last.size == n:
            behind = behind[np.argsort(-last[behind], kind="stable")]
        free = np.concatenate([self.free, slot[~keep]])
        fresh = new.size - free.size
        if fresh > 0:
            if self.used + fresh > self.G.shape[0]:
                self._buffers(self.used + fresh)
            free = np.concatenate([free, np.arange(self.used, self.used + fresh)])
            self.used += fresh
        joined, self.free = free[: new.size], free[new.size :]
        if new.size:
            block = self._entries(new, joined)
            self.G[joined, : self.used] = block
            self.G[: self.used, joined] = block.T
        slots = np.concatenate([slot[:q], slot[behind], joined])
        self.order = np.concatenate([order[:q], order[behind], new])
        self.slot = slots
        self.R = None  # (until the new factor is whole)
        G = self.G
        R: npt.NDArray[np.floating] = np.empty((m, m), dtype=self.dtype, order="F")
        if q:
            assert old is not None
            R[:q, :q] = old[:q, :q]
            R[:q, q:kept] = old[:q, behind]
            if new.size:  # R[:q, :q]⁻ᵀ G[prefix, joined], by BLAS (scipy's wrapper: 75 µs more)
                prefix = np.asfortranarray(old[:q, :q])
                trsm = get_blas_funcs("trsm", (prefix,))
                # G[prefix, joined] as the transpose of G[joined, prefix] (symmetric): |enter|
                # rows gathered, not q, and Fortran-ordered as BLAS takes it
                R[:q, kept:] = trsm(1.0, prefix, _block(G, joined, slots[:q]).T, trans_a=1)
        if m > q:
            tail = slots[q:]
            rest = _block(G, tail, tail).T  # symmetric: Fortran-ordered as it is
            if q:  # the prefix's Schur complement: less R[:q, q:]ᵀR[:q, q:] (upper triangle)
                syrk = get_blas_funcs("syrk", (rest,))
                rest = syrk(-1.0, R[:q, q:], beta=1.0, c=rest, trans=1, lower=0, overwrite_c=1)
            R[q:, q:] = cho_factor(rest, lower=False, overwrite_a=True, check_finite=False)[0]
        self.R = R
        return self.order

    def fits(self, xv: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
        """(D_Aᵀx, D_Aᵀv) as rows, for xv = (x, v) as columns in `order`: one product with
        the used slots' rows (a free slot's weight is 0), not a gathered D_A."""
        weights = np.zeros((self.used, xv.shape[1]), dtype=xv.dtype)
        weights[self.slot] = xv
        return _fits(self.rows[: self.used], weights)


class _Round:
    """A's point at the target: β_A(α) = x − α v, its fit F − α U and the sums that place α."""

    def __init__(
        self,
        h: Homotopy,
        xv: npt.NDArray[np.floating],
        fits: npt.NDArray[np.floating],
        A: IntArray,
        target: Target,
        factor: tuple[npt.NDArray[np.floating], bool] | None = None,
        a_A: FloatArray | None = None,
    ) -> None:
        """From xv = G_AA⁻¹(a_A, 1) (x and v as columns) and fits = (D_Aᵀx, D_Aᵀv) as rows;
        `factor` is G_AA's Cholesky factor (scipy's cho_factor pair) when the round made one,
        for `refined`; `a_A` the exact h.a[A] when the caller has it already."""
        self.factor = factor
        a_A = h.a[A] if a_A is None else a_A
        self.finite = bool(np.isfinite(xv).all())
        F, U = fits.astype(np.float64)
        xv = xv.astype(np.float64)
        self.x, self.v = xv[:, 0].copy(), xv[:, 1].copy()
        self.P, self.Q = float(a_A @ self.x), float(a_A @ self.v)
        self.FF, self.FU, self.UU = float(F @ F), float(F @ U), float(U @ U)
        #: whether A has an α where the target holds (else `alpha` is a placeholder)
        self.alpha, self.at_target = target.alpha(
            self.P, self.Q, self.FF, self.FU, self.UU, h.alpha0
        )
        beta = self.beta = self.x - self.alpha * self.v
        floor = -NEGATIVE_RTOL * max(float(np.abs(beta).max(initial=0.0)), 1e-300)
        self.leave = A[beta < floor]
        self.fitted = F - self.alpha * U

    @classmethod
    def factored(
        cls,
        h: Homotopy,
        G: npt.NDArray[np.floating],
        DA: npt.NDArray[np.floating],
        A: IntArray,
        target: Target,
    ) -> _Round:
        """A's point by a Cholesky factorisation of G_AA (in G's dtype; G is overwritten)."""
        # G is symmetric: its transpose is the same matrix, in the Fortran order LAPACK factors
        # in place (a C-ordered G is copied first: 1 MB a round at |A| = 500 in float32)
        factor = cho_factor(G.T, lower=False, overwrite_a=True, check_finite=False)
        a_A = h.a[A]
        xv = _solved_for(factor, a_A)
        return cls(h, xv, _fits(DA, xv), A, target, factor, a_A)

    @classmethod
    def solved(cls, h: Homotopy, gram: _Gram, target: Target) -> _Round:
        """The point of the Gram's A from its factor (`_Gram.factored`)."""
        assert gram.R is not None
        A, factor = gram.order, (gram.R, False)
        a_A = h.a[A]
        xv = _solved_for(factor, a_A)
        return cls(h, xv, gram.fits(xv), A, target, factor, a_A)

    @classmethod
    def refined(
        cls, h: Homotopy, rough: _Round, rows: FloatArray, A: IntArray, target: Target
    ) -> _Round | None:
        """A's point in float64 from `rough`, a float32 round on the same A, by iterative
        refinement: each step solves with the float32 factor for the residual
        (a_A, 1) − D_A(D_Aᵀ(x, v)) taken in float64 from the rows (`rows`, float64), so the
        answer is G_AA's float64 solution (to its conditioning) without forming G_AA in float64
        and factoring it (|A|² d_model + |A|³/3 multiply-adds, ~3 ms at |A| = 250 on the
        4096 × 640 SAE, against two products with D_A per step). None when the steps do not
        shrink to REFINED of (x, v) within REFINE_STEPS (G_AA too ill-conditioned for float32):
        the caller then factors G_AA in float64."""
        a_A = h.a[A]
        rhs = np.column_stack([a_A, np.ones(A.size)])
        xv = np.zeros_like(rhs)
        residual, before = rhs, math.inf
        assert rough.factor is not None
        for _ in range(REFINE_STEPS):
            scale = np.abs(residual).max(axis=0)
            scale[scale == 0] = 1.0
            step = _cho_solve(rough.factor, (residual / scale).astype(np.float32))
            step = step.astype(np.float64) * scale
            xv += step
            if not np.isfinite(xv).all():
                return None
            size = float((np.abs(step).max(axis=0) / np.abs(xv).max(axis=0)).max())
            # settled: below float64's own noise, or no longer shrinking once close to it
            if size <= REFINED or (size <= REFINE_FLOOR and size > 0.25 * before):
                return cls(h, xv, _fits(rows, xv), A, target, a_A=a_A)
            before = size
            residual = rhs - rows @ _fits(rows, xv).T
        return None

    def breakpoint(self, h: Homotopy, A: IntArray, rounds: int) -> Breakpoint:
        """The settled point, as a Breakpoint at α (its segment's other end is not known)."""
        return Breakpoint(
            alpha=self.alpha,
            active=A,
            x=self.x,
            v=self.v,
            fitted=self.fitted,
            P=self.P,
            Q=self.Q,
            FF=self.FF,
            FU=self.FU,
            UU=self.UU,
            S=float(self.x.sum()),
            T=float(self.v.sum()),
            violation=h.last_violation,
            jump=rounds,
        )


def jump(h: Homotopy, target: Target, start: IntArray | None = None) -> Breakpoint | None:
    """The path's point at `target`, found by pivoting from `start` (default: the last walked
    breakpoint's active set) and checked over every feature; None when the pivoting does not
    settle (walk the path then). The Breakpoint's `jump` counts the rounds."""
    with _single_threaded():  # small products and factorisations: threads cost more
        gram = _Gram(h)
        if target.kind == "socp":
            return _socp(h, gram, target.value, start)
        return _pivot(h, gram, target, start, MAX_ROUNDS)


def _socp(h: Homotopy, gram: _Gram, rho: float, start: IntArray | None) -> Breakpoint | None:
    """The SOCP's point at ε/r = ρ: pivoting at a predicted α until the active set has a root
    of its own for ρ, then following it (see `Target.guess`); when that does not settle,
    through QP points: h(g), the norm ratio at the QP's point for λr = g, falls as g grows, so
    g is moved (by the root of ρ on the last point's segment, within a bracket, else doubled
    or bisected) until the SOCP's own pivoting, started from the last QP point's active set,
    settles in a few rounds."""
    top = h.alpha0
    first = h.records[-1] if start is None else None
    lo, hi = 0.0, math.inf  # g with h(g) ≥ ρ, and with h(g) ≤ ρ
    A = first.active if first is not None else start
    # The prediction: ρ‖w‖ − 1 ≥ 0 at every point (ε/r ≥ 1/‖w‖), and on real SAEs h(α)‖w‖ − 1
    # is close to proportional to α (1.09–1.18 × α/α₀ from the 50th breakpoint on along the
    # default run's path), so the walked path's last point (α_k, h_k) predicts the answer's α.
    known = h.records[-1]
    ratio = known.norm / known.margin if known.margin > 0 else math.inf
    guess = _predicted_alpha(h, rho, known.alpha, ratio)
    if guess > 0:
        found = _pivot(h, gram, Target.socp(rho, guess), A, MAX_ROUNDS)
        if found is not None:
            return found
    g = 2.0 * h.a[A].max() / top  # the QP's λr at α₀/2 on the first feature, as a start
    for _ in range(SOCP_ROUNDS):
        point = _pivot(h, gram, Target.qp(g), A, MAX_ROUNDS, final=False)
        if point is None:
            return None
        A = point.active
        if point.norm / point.margin >= rho:
            lo = g
        else:
            hi = g
        alpha, found = Target.socp(rho).alpha(point.P, point.Q, point.FF, point.FU, point.UU, top)
        if found:
            found = _pivot(h, gram, Target.socp(rho), A, SOCP_SETTLE)
            if found is not None:
                return found
            g_next = point.P / alpha - point.Q
        else:
            g_next = 2.0 * g
        if not lo < g_next < hi:
            g_next = 2.0 * lo if math.isinf(hi) else math.sqrt(max(lo, hi * 1e-6) * hi)
        g = g_next
    return None


def _predicted_alpha(h: Homotopy, rho: float, alpha: float, ratio: float) -> float:
    """The α where h(α) = ρ if h(α)‖w‖ − 1 is proportional to α through the point (α, ratio);
    0 when that cannot place it (ρ at or below 1/‖w‖, or not below the point's ratio)."""
    scale = float(np.linalg.norm(h.w))
    if not (alpha > 0 and 1.0 < rho * scale < ratio * scale):
        return 0.0
    return alpha * (rho * scale - 1.0) / (ratio * scale - 1.0)


def _pivot(
    h: Homotopy,
    gram: _Gram,
    target: Target,
    start: IntArray | None,
    limit: int,
    *,
    final: bool = True,
) -> Breakpoint | None:
    """The point at `target` by block principal pivoting from `start`. Rounds run on the
    Gram's dtype; a `final` answer found in float32 is recomputed in float64 on its active set
    and checked again (else the rounds go on in float64); a point that only starts further
    pivoting (not `final`) is returned as the rounds found it."""
    A = np.sort(np.asarray(h.records[-1].active if start is None else start, dtype=np.int64))
    best, stall = math.inf, 0
    whole = h.d_sae * h.d_model <= WHOLE_PRICING

    def price(point: _Round, *, estimate: bool = False) -> tuple[IntArray, FloatArray]:
        """The features outside A above α: on the whole decoder (a product that two threads
        take in ~0.6× the time) when it is small, else on the pool. A float32 round's
        `estimate` takes the float32 product as it is (the settled answer is priced exactly)."""
        if whole:
            with _spare_threads():
                return h.priced(point.fitted, point.alpha, A, estimate=estimate)
        return h.outside_violators(point.fitted, point.alpha, A)

    seen: set[tuple[bytes, float, bool]] = set()
    last: FloatArray | None = None  # the last round's β, in the Gram's order
    for rounds in range(1, limit + 1):
        h.jump_rounds += 1
        if A.size == 0 or A.size > h.d_model:
            return None
        # back at an active set already priced (at the same guess, in the same precision): the
        # rounds circle — an SOCP's α moves with A, so Murty's rule does not prevent it, and
        # float32 prices near the threshold can swap one feature in and out for ever
        # (no guess is NaN: as a key, NaN only matches the very same float object)
        key = (A.tobytes(), target.guess if target.guess > 0 else 0.0, gram.exact)
        if key in seen:
            if gram.exact:
                return None
            gram.exactly()
            key = (key[0], key[1], True)
        seen.add(key)
        try:
            ordered = gram.factored(A, last)  # A in the Gram's order from here on
            point = _Round.solved(h, gram, target)
        except LinAlgError:
            if gram.exact:
                return None  # rows in the span of the others (duplicates): walk instead
            gram.exactly()  # float32 lost G_AA's definiteness: the same A in float64
            continue
        if not point.finite:
            return None
        last = point.beta
        leave = point.leave
        enter, excess = price(point, estimate=not gram.exact)
        if leave.size == 0 and enter.size == 0:
            if not point.at_target and target.guess > 0:  # settled at the SOCP's guess: a new one
                margin = point.P - point.alpha * point.Q
                ratio = float(np.linalg.norm(point.fitted)) / margin if margin > 0 else math.inf
                target.guess = _predicted_alpha(h, target.value, point.alpha, ratio)
                if target.guess > 0:
                    continue
            if not point.at_target:
                return None  # a consistent A with no α at the target: past the path's end
            if not final:
                return point.breakpoint(h, ordered, rounds)
            if not gram.exact:  # settle in float64: this A's point exactly, checked again
                rows = h.rows(ordered)
                settled = _Round.refined(h, point, rows, ordered, target)
                if settled is None:
                    try:
                        settled = _Round.factored(h, rows @ rows.T, rows, ordered, target)
                    except LinAlgError:
                        return None
                point = settled
                leave = point.leave
                if leave.size == 0 and point.at_target:  # priced as the rounds are (below: all)
                    enter, excess = price(point)
                if leave.size or enter.size or not point.at_target:
                    gram.exactly()
                    continue
            if not whole:  # settled on the pool: check every feature (violators join it)
                with _spare_threads():  # a pass over the whole decoder, as `price`'s
                    enter, excess = h.priced(point.fitted, point.alpha, A, join_pool=True)
                best = math.inf  # the pool grew: a new problem to count from
            if enter.size == 0:
                return point.breakpoint(h, ordered, rounds)
        count = leave.size + enter.size
        if not point.at_target:
            pass  # α is a placeholder (A has none at the target): no count to compare with
        elif count < best:
            best, stall = count, 0
        else:
            stall += 1
        if stall >= GIVE_UP_ROUNDS:
            return None
        if stall >= STALL_ROUNDS:  # one feature, the largest index: no cycling
            j = np.array([max(leave.max(initial=-1), enter.max(initial=-1))], dtype=np.int64)
            none = j[:0]
            A = _moved(h.d_sae, A, j, none) if j[0] in leave else _moved(h.d_sae, A, none, j)
            continue
        # at most d_model active rows (more are linearly dependent: G_AA singular)
        room = h.d_model - (A.size - leave.size)
        most = min(max(min(MIN_ENTER, h.d_model // 8 + 1), int(ENTER_SHARE * A.size)), room)
        if target.kind != "end":  # (the end's A spans the space: no room to keep)
            most = min(most, max(1, int(ROOM_SHARE * room)))
        if most <= 0 and leave.size == 0:
            if gram.exact:
                return None
            gram.exactly()  # A spans the space (the path's end): float32 leaves a residual
            continue
        if enter.size > most:
            enter = enter[np.argsort(-excess, kind="stable")[:most]]
        A = _moved(h.d_sae, A, leave, enter)
    return None


def _solved_for(
    factor: tuple[npt.NDArray[np.floating], bool], a_A: FloatArray
) -> npt.NDArray[np.floating]:
    """G_AA⁻¹(a_A, 1), x and v as columns, in the factor's dtype."""
    rhs = np.column_stack([a_A, np.ones(a_A.size)]).astype(factor[0].dtype)
    return _cho_solve(factor, rhs)


def _cho_solve(
    factor: tuple[npt.NDArray[np.floating], bool], B: npt.NDArray[np.floating]
) -> npt.NDArray[np.floating]:
    """G⁻¹B from scipy's cho_factor pair (c, lower), one column at a time through BLAS trsv:
    cho_solve's LAPACK potrs on the two columns (x, v) took 2.5–3× as long (74 against 30 µs
    at 268², 204 against 71 µs at 500², float32). A C-ordered c is read as its transpose,
    Fortran-ordered (the factor in the other triangle), which BLAS takes without a copy. B must
    be in c's dtype: the routine is chosen by c's (cho_solve would promote a float64 B; here it
    would be rounded to float32), so both callers cast first."""
    c, lower = factor
    M, low = (c, lower) if c.flags.f_contiguous else (c.T, not lower)
    trsv = get_blas_funcs("trsv", (M,))
    out = np.empty(B.shape, dtype=M.dtype)
    first, second = (0, 1) if low else (1, 0)  # G = L Lᵀ: L y = b, Lᵀ x = y (Rᵀ R: the reverse)
    for j in range(B.shape[1]):
        y = trsv(M, B[:, j], trans=first, lower=low)
        out[:, j] = trsv(M, y, trans=second, lower=low)
    return out


def _fits(rows: npt.NDArray[np.floating], xv: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """(rowsᵀx, rowsᵀv) as rows, for xv = (x, v) as columns: one product over the rows (at most
    d_model of them), 2.5× as fast as `homotopy._product`'s two matrix–vector products there
    (0.017 against 0.042 ms at 528 × 640 in float32; on a whole decoder it is the other way)."""
    fits: npt.NDArray[np.floating] = xv.T @ rows
    return fits


def _block(
    G: npt.NDArray[np.floating], rows: IntArray, columns: IntArray
) -> npt.NDArray[np.floating]:
    """G[rows][:, columns], C-ordered: a gather of whole rows, then of their columns (three
    times as fast as np.ix_'s gather at these sizes)."""
    block: npt.NDArray[np.floating] = G.take(rows, axis=0).take(columns, axis=1)
    return block


def _moved(d_sae: int, A: IntArray, leave: IntArray, enter: IntArray) -> IntArray:
    """Sorted (A without `leave`) with `enter`, through a mask: np.union1d and setdiff1d sort,
    which cost more at these sizes."""
    member = np.zeros(d_sae, dtype=bool)
    member[A] = True
    member[leave] = False
    member[enter] = True
    moved: IntArray = np.flatnonzero(member)
    return moved
