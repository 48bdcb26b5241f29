"""One homotopy path per (decoder, direction) answers every input, λ and ε in closed form.

With a = D w, the QP  min 1ᵀδ + (λ/2)‖Dᵀδ‖²  s.t. aᵀδ ≥ r > 0, δ ≥ 0  has KKT conditions
1 + λ D Dᵀδ − μ a ≥ 0 (= 0 on the support). Writing δ = β/(λα) with α = 1/μ turns them into those
of the non-negative Lasso at α (see `homotopy`), and the binding margin gives
g(α) = aᵀβ(α)/α = λr. On a segment aᵀβ = P − αQ, so α = P/(λr + Q): one scalar, λr, picks the
point. Multiplier μ = 1/α.

The SOCP  min 1ᵀδ  s.t. aᵀδ ≥ r, ‖Dᵀδ‖ ≤ ε  has 1 − μa + ν D u ≥ 0 with u = Dᵀδ/‖Dᵀδ‖: the
QP's conditions with λ = ν/ε, so its solutions are δ = (r/aᵀβ)β on the same path, where
h(α) = ‖Dᵀβ(α)‖/aᵀβ(α) = ε/r (a quadratic in α on a segment), with μ = 1/α, ν = ‖Dᵀβ‖/α.
h is constant, ‖U₀‖/Q₀, on the first segment: when ε/r is at least that, the solution is the
first segment's direction (the best single feature, ν = 0). It falls to its smallest value at
α = 0 (the non-negative least-squares end of the path): below r·h(0) no δ meets the margin
within ε, and r·h(0) is the exact smallest feasible ε.

Exact duplicates of a decoder row ("twins") never enter the path (their Gram matrix would be
singular); the optimum is then not unique, and δ is spread equally over each group of twins
(the least-‖δ‖₂ optimum, which interior-point solvers also converge to).
"""

from __future__ import annotations

import collections
import enum
import math
import threading
import weakref
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from steerkit_path.homotopy import Breakpoint, Homotopy
from steerkit_path.jump import Target, jump
from steerkit_path.projection import ProjectedRows, row_norm_bounds

__all__ = ["Path", "PathPoints", "Regime", "cache_info", "clear_cache", "path_for"]

FloatArray = npt.NDArray[np.float64]

#: max(a) at or below this × ‖w‖ × max‖dᵢ‖: no decoder row has a positive component along w.
ORTHOGONAL_RTOL = 1e-12
#: A query with at most this many answers past the walked path's end finds each by pivoting
#: (`steerkit_path.jump`) instead of walking there; more answers walk (one walk serves all).
JUMP_TARGETS = 4
#: Breakpoints walked (unchecked, as between the walk's checkpoints) before pivoting to a
#: point past them: the answers on them cost less walked to, an SOCP's pivoting starts at an α
#: predicted from the walked path's last point (better from further along: 1.01 × the smallest
#: ε on the default run's SAE took 1.43× the time after no walk, 1.12× after 8), and a path
#: asked again and again walks on by this much each time, until the walk has reached most
#: answers (a loop of 256 solves on one GPT-2-scale path took 0.93 s so, 2.9 s pivoting every
#: answer). Except a QP's first question on a path: it walks the first segment only (λ = 1
#: 0.83×, λ = 0.1 0.78× the time after 16 on the default run's SAE, interleaved A/B) — a
#: tiny λr lies on it, where β = x − αv cancels to noise near α₀ and only the walked
#: segment's closed form (`_sparse`) is exact.
WALK_FIRST = 16
#: An SOCP answer with ε/r within this share of 1/‖w‖ is walked to, not pivoted to. Every
#: point has ε/r = ‖Dᵀβ‖/wᵀDᵀβ ≥ 1/‖w‖, with equality at the path's end when w lies in the
#: cone of the decoder rows (as it does for the default run's SAE); near it the active set
#: nears d_model (528 of 640 rows at 1.01 × the smallest ε, 617 at 1.001 ×, 640 at the end).
#: Since the rounds keep room below d_model (`jump.ROOM_SHARE`) they settle there too — on
#: that SAE 1.01 × in 27 rounds, 0.17× the walk's time, 1.001 × in 61, 0.28× — but at
#: 1.00001 × they circle until they give up (1.3 s lost before the walk).
NEAR_END = 1e-4
#: Points found by pivoting kept per path, by target: the same target is answered by the same
#: point again (not pivoted to again, nor read off a walk that has reached it since: the
#: routes agree to ~1e-14, not bit for bit), and the next target pivots from the nearest.
KEEP_POINTS = 64
#: An SOCP's ε/r below (1 − this)/‖w‖ is infeasible by Cauchy–Schwarz alone (the margin is this
#: far from the bound: far beyond the rounding of ε/r and ‖w‖).
CERTAINLY_BELOW = 1e-12


class Regime(str, enum.Enum):
    """Where on the path an input's answer lies."""

    PATH = "path"  # on a segment of the path (ν > 0 for an SOCP)
    SINGLE = "single"  # SOCP with ε/r ≥ h₀: the first segment's direction, ν = 0
    SATISFIED = "satisfied"  # r ≤ 0: δ = 0
    BELOW_MIN_EPS = "below_min_eps"  # SOCP with ε below r · h(0): infeasible
    NO_DIRECTION = "no_direction"  # no row has aᵢ > 0 and r > 0: infeasible

    def __str__(self) -> str:
        return self.value


@attrs.frozen(eq=False)
class PathPoints:
    """The answers for n right-hand sides (and λ or ε each), as arrays of shape (n,).

    segment: the path segment of each answer (−1 where there is none); alpha: its point on the
    path; mu, nu: the multipliers (nu: SOCP only, NaN for a QP); min_eps: the smallest feasible
    ε for that r (NaN when not computed); kkt: a bound on max over features of the relative
    violation (cᵢ − α)/α, from the checked ends of the segment.
    """

    path: Path
    breakpoints: tuple[Breakpoint, ...]  # the path as it stood for these answers
    kind: str
    rhs: FloatArray
    parameter: FloatArray
    regime: tuple[Regime, ...]
    segment: npt.NDArray[np.int64]
    alpha: FloatArray
    mu: FloatArray
    nu: FloatArray
    min_eps: FloatArray
    kkt: FloatArray

    def __len__(self) -> int:
        return int(self.rhs.size)

    def sparse(self, i: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """δ of answer i as (feature indices, values > 0), twins spread; empty for r ≤ 0."""
        return self.path._sparse(self, i)

    def dense(self, i: int) -> FloatArray:
        """δ of answer i, shape (d_sae,)."""
        delta = np.zeros(self.path.d_sae)
        idx, values = self.sparse(i)
        delta[idx] = values
        return delta


class Path:
    """The positive-Lasso homotopy of one direction w over a decoder, extended lazily.

    decoder: (d_sae, d_model) float32 or float64 (not copied; it must not change while the path
    is in use); direction: (d_model,); a: decoder @ direction in float64 if already computed.
    """

    def __init__(
        self,
        decoder: Any,
        direction: Any,
        a: Any = None,
        *,
        pool_size: int | None = None,
        max_steps: int | None = None,
        row_norms: Any = None,
        estimate: Any = None,
    ) -> None:
        self.decoder = decoder
        self.w = np.asarray(direction, dtype=np.float64).reshape(-1)
        norms = row_norms() if callable(row_norms) else row_norms
        if norms is None and decoder.dtype == np.float32:
            norms = row_norm_bounds(decoder)  # once, for a's bound and the KKT checks
        self.a = (
            ProjectedRows.exact(decoder, self.w, a)
            if a is not None
            else ProjectedRows(
                decoder, self.w, None if norms is None else (lambda: norms), estimate=estimate
            )
        )
        self.d_sae, self.d_model = (int(n) for n in decoder.shape)
        self._twins: dict[int, npt.NDArray[np.int64]] = {}
        self._twin_count = np.zeros(self.d_sae, dtype=np.int64)  # 0: not looked up yet
        #: per breakpoint (while it lives), the order that sorts its active features
        self._orders: weakref.WeakKeyDictionary[Breakpoint, npt.NDArray[np.int64] | None] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.RLock()
        #: the path's end (α = 0) found by pivoting, before the walk reaches it
        self._end: Breakpoint | None = None
        self._end_failed = False
        #: points found by pivoting, by (kind, target), the latest last
        self._points: dict[tuple[str, float], Breakpoint] = {}
        scale = float(np.linalg.norm(self.w)) * float(np.sqrt((decoder[:64] ** 2).sum(1)).max())
        top = float(self.a.max())
        self.orthogonal = not top > ORTHOGONAL_RTOL * scale
        self.homotopy: Homotopy | None = (
            None
            if self.orthogonal
            else Homotopy(
                decoder,
                self.w,
                self.a,
                pool_size=pool_size,
                max_steps=max_steps,
                row_norms=norms,
            )
        )

    # -- facts about the path ---------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Homotopy steps computed so far (recomputations after a repair included)."""
        return 0 if self.homotopy is None else self.homotopy.steps

    @property
    def pool_size(self) -> int:
        """Features in the homotopy's candidate pool (it grows when a KKT check fails, and by
        the features close to entering at every check that passes)."""
        return 0 if self.homotopy is None else int(self.homotopy.pool.size)

    @property
    def jump_rounds(self) -> int:
        """Rounds of pivoting towards points past the walked path's end (`steerkit_path.jump`)."""
        return 0 if self.homotopy is None else self.homotopy.jump_rounds

    @property
    def repairs(self) -> int:
        """Times a KKT check over all features failed and the pool grew."""
        return 0 if self.homotopy is None else self.homotopy.repairs

    @property
    def breakpoints(self) -> list[Breakpoint]:
        """The breakpoints computed so far (a copy of the list)."""
        return [] if self.homotopy is None else list(self.homotopy.records)

    def breakpoint(self, k: int) -> Breakpoint:
        """Breakpoint k (and the segment after it)."""
        assert self.homotopy is not None
        return self.homotopy.records[k]

    @property
    def complete(self) -> bool:
        return self.homotopy is None or self.homotopy.complete

    def min_eps(self, rhs: Any) -> FloatArray:
        """The exact smallest feasible ε for each r: r · ‖Dᵀβ(0)‖/aᵀβ(0) (completes the path);
        0 for r ≤ 0, inf when no row points along w."""
        r = np.atleast_1d(np.asarray(rhs, dtype=np.float64))
        with self._lock:
            end = self._end_ratio()
        return np.where(r <= 0, 0.0, r * end)

    def _end_ratio(self) -> float:
        """h(0), the path's end ratio, with the end checked against every feature: found by
        pivoting (`steerkit_path.jump`) unless the walked path is complete or that fails."""
        h = self.homotopy
        if h is None:
            return math.inf
        if not h.complete:
            end = self._jump_to_end()
            if end is not None:
                return end.norm / end.margin  # h(0) = ‖Dᵀβ(0)‖/aᵀβ(0)
        while True:
            h.complete_path()
            failed = h.check([len(h.records) - 1])
            if not failed:
                break
            h.repair(failed)
        return float(h.norm_ratios()[-1])

    # -- the two problems --------------------------------------------------------------------

    def qp(self, lam: Any, rhs: Any, *, checked: bool = True) -> PathPoints:
        """The QP's answers for each (λ, r) (broadcast together). With `checked` False, the
        walked answers' segment ends are not checked over every feature (only the walk's own
        checkpoints are): their `kkt` is NaN, for a caller that has each answer certified
        itself and asks again, checked, for any that fails (as the solver does)."""
        lam_a, r = (np.atleast_1d(x).astype(np.float64) for x in np.broadcast_arrays(lam, rhs))
        n = r.size
        regime = _regimes(r, self.orthogonal)
        segment = np.full(n, -1, dtype=np.int64)
        alpha, mu, kkt = np.full(n, math.nan), np.zeros(n), np.zeros(n)
        live = np.flatnonzero([g is Regime.PATH for g in regime])
        snapshot = self._snapshot()
        if live.size:
            h = self.homotopy
            assert h is not None
            target = lam_a[live] * r[live]
            with self._lock:
                far = self._jump_far("qp", target)
                walk = np.array([j not in far for j in range(live.size)], dtype=bool)
                if walk.any():
                    seg = self._locate(
                        lambda: h.margins_over_alpha(),
                        target[walk],
                        g_target=target[walk].max(),
                        checked=checked,
                    )
                recs = tuple(h.records)
                jumped = {int(live[j]): rec for j, rec in far.items()}
                snapshot = recs + _place(jumped, len(recs), segment, alpha, mu, kkt)
            if walk.any():
                P = np.array([recs[k].P for k in seg])
                Q = np.array([recs[k].Q for k in seg])
                hi = np.array([recs[k].alpha for k in seg])
                lo = np.array([recs[k + 1].alpha for k in seg])
                kkt_abs = np.array([_bound(recs[k], recs[k + 1]) for k in seg])
                at = np.clip(P / (target[walk] + Q), lo, hi)
                rows = live[walk]
                segment[rows], alpha[rows], mu[rows] = seg, at, 1.0 / at
                kkt[rows] = kkt_abs / at
        return PathPoints(
            path=self,
            breakpoints=snapshot,
            kind="qp",
            rhs=r,
            parameter=lam_a,
            regime=tuple(regime),
            segment=segment,
            alpha=alpha,
            mu=mu,
            nu=np.full(n, math.nan),
            min_eps=np.full(n, math.nan),
            kkt=kkt,
        )

    def socp(
        self, eps: Any, rhs: Any, *, min_eps: bool = False, checked: bool = True
    ) -> PathPoints:
        """The SOCP's answers for each (ε, r) (broadcast together). With `min_eps`, the exact
        smallest feasible ε of every input is computed (the whole path) even when feasible.
        `checked`: as for `qp` (an answer past the path's end, infeasible, is always checked)."""
        eps_a, r = (np.atleast_1d(x).astype(np.float64) for x in np.broadcast_arrays(eps, rhs))
        n = r.size
        regime = _regimes(r, self.orthogonal)
        segment = np.full(n, -1, dtype=np.int64)
        alpha, mu, nu, kkt = np.full(n, math.nan), np.zeros(n), np.zeros(n), np.zeros(n)
        smallest = np.where(r <= 0, 0.0, math.inf if self.orthogonal else math.nan)
        live = np.flatnonzero([g is Regime.PATH for g in regime])
        h = self.homotopy
        if live.size:
            assert h is not None
            rho = eps_a[live] / r[live]
            with self._lock:
                ratios = h.norm_ratios()
                single = rho >= ratios[0]
                for i in live[single]:
                    regime[i] = Regime.SINGLE
                segment[live[single]] = 0
                alpha[live[single]] = h.alpha0
                mu[live[single]] = 1.0 / h.alpha0
                rest = live[~single]
                jumped: dict[int, Breakpoint] = {}
                if rest.size:
                    jumped = self._socp_on_path(
                        rest, rho[~single], r, regime, segment, alpha, mu, nu, kkt, checked
                    )
                # the answers' segments, before min_eps may repair; then the jumped points
                walked = tuple(h.records)
                snapshot = walked + _place(jumped, len(walked), segment, alpha, mu, kkt)
        else:
            snapshot = self._snapshot()
        if h is not None and live.size and (min_eps or h.complete or self._end is not None):
            smallest[live] = self.min_eps(r[live])
        return PathPoints(
            path=self,
            breakpoints=snapshot,
            kind="socp",
            rhs=r,
            parameter=eps_a,
            regime=tuple(regime),
            segment=segment,
            alpha=alpha,
            mu=mu,
            nu=nu,
            min_eps=smallest,
            kkt=kkt,
        )

    def _socp_on_path(
        self,
        rows: npt.NDArray[np.int64],
        rho: FloatArray,
        r: FloatArray,
        regime: list[Regime],
        segment: npt.NDArray[np.int64],
        alpha: FloatArray,
        mu: FloatArray,
        nu: FloatArray,
        kkt: FloatArray,
        checked: bool = True,
    ) -> dict[int, Breakpoint]:
        """Answers for the inputs with ε/r below the first segment's ratio: a root of a
        quadratic on the right segment, or infeasible past the path's end. Returns the answers
        found by pivoting (`_jump_far`), by row, with only their ν set. Unless `checked`, only
        the path's end is checked (when an answer is infeasible past it)."""
        h = self.homotopy
        assert h is not None
        # ε/r < 1/‖w‖ is infeasible whatever the path: aᵀδ = wᵀDᵀδ ≤ ‖w‖‖Dᵀδ‖ ≤ ‖w‖ε < r.
        # Known at once, not by walking to the path's end (on the real SAE of bench_real, whose
        # end is 1/‖w‖ itself, pivoting there does not settle and the walk took 1.1 s)
        below = rho * float(np.linalg.norm(h.w)) < 1.0 - CERTAINLY_BELOW
        for i in rows[below]:
            regime[i] = Regime.BELOW_MIN_EPS
        rows, rho = rows[~below], rho[~below]
        if rows.size == 0:
            return {}
        far = self._jump_far("socp", rho)
        jumped = {int(rows[j]): rec for j, rec in far.items()}
        for i, rec in jumped.items():  # the rest of each is set by `_place`
            nu[i] = float(np.linalg.norm(rec.fitted)) / rec.alpha
        keep = np.array([j not in far for j in range(rows.size)], dtype=bool)
        rows, rho = rows[keep], rho[keep]
        end = self._end
        if end is not None and not h.complete and rows.size:  # the end is known, not walked to
            below = rho < end.norm / end.margin
            for i in rows[below]:
                regime[i] = Regime.BELOW_MIN_EPS
            rows, rho = rows[~below], rho[~below]
        if rows.size == 0:
            return jumped

        def ratios() -> FloatArray:
            values = np.minimum.accumulate(h.norm_ratios())
            return np.asarray(-values, dtype=np.float64)  # increasing, for searchsorted

        h.extend(h_target=float(rho.min()))
        while True:
            end = len(h.records) - 1
            end_ratio = float(h.norm_ratios()[-1]) if h.complete else -math.inf
            below = rho < end_ratio
            seg = np.searchsorted(ratios(), -rho[~below], side="left") - 1
            seg = np.clip(seg, 1 if end >= 2 else 0, max(end - 1, 0))
            need = set(seg.tolist()) | set((seg + 1).tolist()) if checked else set()
            if below.any():
                need.add(end)
            failed = h.check(need)
            if not failed:
                break
            h.repair(failed)
            h.extend(h_target=float(rho.min()))
        for i in rows[below]:
            regime[i] = Regime.BELOW_MIN_EPS
        on, on_rho = rows[~below], rho[~below]
        first = seg == 0  # a one-segment path: h is constant on it, the first direction holds
        for i in on[first]:
            regime[i] = Regime.SINGLE
        segment[on[first]], alpha[on[first]], mu[on[first]] = 0, h.alpha0, 1.0 / h.alpha0
        on, on_rho, seg = on[~first], on_rho[~first], seg[~first]
        recs = h.records
        roots = np.empty(on.size)
        for j, (k, p) in enumerate(zip(seg, on_rho)):
            roots[j] = _ratio_root(recs[k], recs[k + 1].alpha, p)
        segment[on], alpha[on], mu[on] = seg, roots, 1.0 / roots
        for j, (k, at) in enumerate(zip(seg, roots)):
            rec = recs[k]
            nu[on[j]] = float(np.linalg.norm(_fit_on(rec, recs[k + 1], at))) / at
            kkt[on[j]] = _bound(rec, recs[k + 1]) / at
        return jumped

    def _jump_far(self, kind: str, targets: FloatArray) -> dict[int, Breakpoint]:
        """{j: the path's point at targets[j]} for the targets past the walked path's end (QP:
        λr above its last g; SOCP: ε/r below its last h), found by pivoting, when they are at
        most JUMP_TARGETS; {} when the walk should reach them (then it does). A target whose
        pivoting does not settle is left to the walk; an SOCP target past the path's end too
        (it is infeasible: the caller compares it with the end). A target pivoted to before
        gets that point again, wherever the walk has reached since."""
        h = self.homotopy
        assert h is not None
        if JUMP_TARGETS <= 0:  # pivoting switched off: every answer walked to
            return {}
        out: dict[int, Breakpoint] = {}
        for j, value in enumerate(targets.tolist()):
            known = self._points.get((kind, value))
            if known is not None:
                out[j] = known
        if out:  # answered before: the same points again, the others as below
            left = np.flatnonzero([j not in out for j in range(targets.size)])
            rest = self._jump_far(kind, targets[left]) if left.size else {}
            out.update({int(left[i]): rec for i, rec in rest.items()})
            return out
        if h.complete:
            return {}
        if kind == "socp" and float(targets.min()) * float(np.linalg.norm(h.w)) <= 1 + NEAR_END:
            return {}  # near the path's end: the walk (which serves every target) is cheaper
        # a short walk first: answers near the path's start are cheaper walked to, and the
        # pivoting then starts from a few right features
        if kind == "qp":
            h.walk(WALK_FIRST if self._points else 1, g_target=float(targets.max()))
        else:
            h.walk(WALK_FIRST, h_target=float(targets.min()))
        if h.complete:
            return {}
        if kind == "qp":
            beyond = np.flatnonzero(targets > h.margins_over_alpha()[-1])
        else:
            beyond = np.flatnonzero(targets < h.norm_ratios()[-1])
        if beyond.size == 0 or np.unique(targets[beyond]).size > JUMP_TARGETS:
            return {}
        found: dict[float, Breakpoint | None] = {}
        for j in beyond[np.argsort(targets[beyond])]:
            value = float(targets[j])
            if value not in found:
                target = Target.qp(value) if kind == "qp" else Target.socp(value)
                point = found[value] = jump(h, target, self._nearest_point(kind, value))
                if point is not None:
                    self._points[(kind, value)] = point
                    while len(self._points) > KEEP_POINTS:  # the oldest goes
                        del self._points[next(iter(self._points))]
                elif kind == "socp":
                    self._jump_to_end()  # no point at ε/r: is it past the end?
            rec = found[value]
            if rec is not None:
                out[int(j)] = rec
        return out

    def _nearest_point(self, kind: str, value: float) -> npt.NDArray[np.int64] | None:
        """The active set of the point found by pivoting before whose target (λr for a QP, ε/r
        for an SOCP) is nearest `value` on a log scale, to start from (None: the walked
        path's end)."""
        best, start = math.inf, None
        for rec in self._points.values():
            point = rec.margin / rec.alpha if kind == "qp" else rec.norm / rec.margin
            if point > 0 and value > 0:
                distance = abs(math.log(point / value))
                if distance < best:
                    best, start = distance, rec.active
        return start

    def _jump_to_end(self) -> Breakpoint | None:
        """The path's end found by pivoting (once; None when that did not settle)."""
        h = self.homotopy
        if self._end is None and not self._end_failed and h is not None and JUMP_TARGETS > 0:
            self._end = jump(h, Target.end())
            self._end_failed = self._end is None
        return self._end

    def _locate(
        self, values: Any, target: FloatArray, *, g_target: float, checked: bool = True
    ) -> Any:
        """Segments k with g_k ≤ target < g_{k+1}, both ends checked over all features (unless
        not `checked`)."""
        h = self.homotopy
        assert h is not None
        h.extend(g_target=g_target)
        while True:
            g = np.maximum.accumulate(values())
            end = len(h.records) - 1
            seg = np.clip(np.searchsorted(g, target, side="right") - 1, 0, max(end - 1, 0))
            if not checked:
                return seg
            failed = h.check(set(seg.tolist()) | set((seg + 1).tolist()))
            if not failed:
                return seg
            h.repair(failed)
            h.extend(g_target=g_target)

    def _snapshot(self) -> tuple[Breakpoint, ...]:
        with self._lock:
            return () if self.homotopy is None else tuple(self.homotopy.records)

    # -- δ ------------------------------------------------------------------------------------

    def _sparse(self, points: PathPoints, i: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
        regime = points.regime[i]
        if regime not in (Regime.PATH, Regime.SINGLE):
            return np.empty(0, dtype=np.int64), np.empty(0)
        segment = int(points.segment[i])
        rec = points.breakpoints[segment]
        r = float(points.rhs[i])
        if regime is Regime.SINGLE or (points.kind == "qp" and segment == 0):
            # on the first segment β ∝ v, and the margin is met exactly (μ > 0): δ = r v / aᵀv.
            # The closed form, not β(α)/(λα): for a tiny λr, α is within rounding of the first
            # breakpoint and x − αv cancels to noise (or to a silent zero)
            beta = rec.v
            scale = r / float(self.a[rec.active] @ beta)
        else:
            at = float(points.alpha[i])
            beta = rec.beta(at)
            if points.kind == "qp":
                scale = 1.0 / (float(points.parameter[i]) * at)
            else:
                scale = r / float(self.a[rec.active] @ beta)
        values = scale * beta
        order = self._sorted_support(rec)
        if order is not None:  # no twins: the support in index order, as it is
            sorted_values = values[order]
            keep = sorted_values > 0
            return rec.active[order][keep], sorted_values[keep]
        keep = values > 0
        return self._spread(rec.active[keep], values[keep])

    def _sorted_support(self, rec: Breakpoint) -> npt.NDArray[np.int64] | None:
        """The order that sorts a breakpoint's active features, or None when one of them has
        twins (kept per breakpoint: the answers on one segment share it)."""
        if rec in self._orders:
            return self._orders[rec]
        self._look_up_missing_twins(rec.active)
        single = bool(np.all(self._twin_count[rec.active] == 1))
        order = np.argsort(rec.active) if single else None
        self._orders[rec] = order
        return order

    def twins(self, feature: int) -> npt.NDArray[np.int64]:
        """Every row exactly equal to row `feature` (itself included), sorted."""
        found = self._twins.get(feature)
        if found is None:
            self._look_up_twins(np.array([feature], dtype=np.int64))
            found = self._twins[feature]
        return found

    def _look_up_missing_twins(self, features: npt.NDArray[np.int64]) -> None:
        """Look up the twins of those of `features` not looked up yet."""
        missing = features[self._twin_count[features] == 0]
        if missing.size:
            self._look_up_twins(np.unique(missing))

    def _look_up_twins(self, features: npt.NDArray[np.int64]) -> None:
        """Find the twins of each of `features` (rows with the same a first, then equal rows)."""
        # candidates: the rows in each feature's window of a (equal rows have equal a) with the
        # same first entry, all in one vectorised step; windows hold a few rows (a's float32
        # bound is wide), and usually only the feature itself is left
        which, rows = self.a.window_pairs(features, 1e-12)
        same = self.decoder[rows, 0] == self.decoder[features[which], 0]
        which, rows = which[same], rows[same]
        alone = np.bincount(which, minlength=features.size) <= 1
        for j in features[alone].tolist():
            self._twins[j] = np.array([j], dtype=np.int64)
        self._twin_count[features[alone]] = 1
        for k in np.flatnonzero(~alone).tolist():  # whole rows compared for the rest
            j = int(features[k])
            candidates = np.sort(rows[which == k])
            equal = np.all(np.asarray(self.decoder[candidates]) == self.decoder[j], axis=1)
            found = candidates[equal].astype(np.int64, copy=False)
            self._twins[j] = found
            self._twin_count[j] = found.size

    def _spread(
        self, idx: npt.NDArray[np.int64], values: FloatArray
    ) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Spread each value equally over its feature's twins."""
        self._look_up_missing_twins(idx)
        if np.all(self._twin_count[idx] == 1):  # the usual case: no duplicated rows
            order = np.argsort(idx)
            return idx[order].astype(np.int64), values[order].astype(np.float64)
        out_idx: list[npt.NDArray[np.int64]] = []
        out_val: list[FloatArray] = []
        for j, value in zip(idx, values):
            group = self.twins(int(j))
            out_idx.append(group)
            out_val.append(np.full(group.size, value / group.size))
        if not out_idx:
            return np.empty(0, dtype=np.int64), np.empty(0)
        all_idx = np.concatenate(out_idx)
        all_val = np.concatenate(out_val)
        unique, inverse = np.unique(all_idx, return_inverse=True)
        summed: FloatArray = np.bincount(inverse, weights=all_val).astype(np.float64)
        return unique.astype(np.int64), summed


def _regimes(r: FloatArray, orthogonal: bool) -> list[Regime]:
    return [
        Regime.SATISFIED if x <= 0 else (Regime.NO_DIRECTION if orthogonal else Regime.PATH)
        for x in r
    ]


def _place(
    jumped: dict[int, Breakpoint],
    walked: int,
    segment: npt.NDArray[np.int64],
    alpha: FloatArray,
    mu: FloatArray,
    kkt: FloatArray,
) -> tuple[Breakpoint, ...]:
    """Answers found by pivoting (by row): each one's point goes after the `walked` breakpoints
    (once, however many answers share it), with its α, μ = 1/α and KKT bound. Returns the points
    to append to the answers' breakpoints."""
    extra = tuple(dict.fromkeys(jumped.values()))
    for i, rec in jumped.items():
        segment[i] = walked + extra.index(rec)
        alpha[i], mu[i] = rec.alpha, 1.0 / rec.alpha
        kkt[i] = (rec.violation or 0.0) / rec.alpha
    return extra


def _bound(rec: Breakpoint, after: Breakpoint) -> float:
    """max (cᵢ − α) over the features outside the segment from `rec` to `after`, at its checked
    ends (cᵢ − α is affine in α on a segment: its ends bound it); NaN unless both are checked."""
    if rec.violation is None or after.violation is None:
        return math.nan
    return max(rec.violation, after.violation)


def _fit_on(rec: Breakpoint, after: Breakpoint, alpha: float) -> FloatArray:
    """Dᵀβ(α) on the segment from `rec` to the next breakpoint `after`: linear in α between
    their fits."""
    width = rec.alpha - after.alpha
    if width <= 0:
        same: FloatArray = rec.fitted.copy()
        return same
    t = (rec.alpha - alpha) / width
    result: FloatArray = rec.fitted + t * (after.fitted - rec.fitted)
    return result


def _ratio_root(rec: Breakpoint, lo: float, rho: float) -> float:
    """The α in [lo, rec.alpha] where ‖F − αU‖ = ρ (P − αQ): the root of
    (UU − ρ²Q²) α² − 2 (FU − ρ²PQ) α + (FF − ρ²P²) = 0 that lies on the segment."""
    hi = rec.alpha
    rho2 = rho * rho
    qa = rec.UU - rho2 * rec.Q * rec.Q
    qb = -2.0 * (rec.FU - rho2 * rec.P * rec.Q)
    qc = rec.FF - rho2 * rec.P * rec.P
    candidates: list[float] = []
    disc = qb * qb - 4.0 * qa * qc
    if qa != 0.0:
        root = math.sqrt(max(disc, 0.0))
        q = -0.5 * (qb + math.copysign(root, qb))
        if q != 0.0:
            candidates += [q / qa, qc / q]
        else:
            candidates.append(-qb / (2.0 * qa))
    elif qb != 0.0:
        candidates.append(-qc / qb)
    if not candidates:
        return hi
    width = max(hi - lo, 0.0)

    def distance(x: float) -> float:
        if not math.isfinite(x):
            return math.inf
        return max(lo - x, x - hi, 0.0) / max(width, 1e-300)

    best = min(candidates, key=distance)
    return min(max(best, lo), hi)


# -- the cache: one path per (decoder memory, direction) ---------------------------------------

_CACHE_SIZE = 4
_cache: collections.OrderedDict[tuple[Any, ...], tuple[Any, FloatArray, Path]] = (
    collections.OrderedDict()
)
_stats = {"hits": 0, "misses": 0}
_cache_lock = threading.Lock()


def _memory_key(array: np.ndarray[Any, Any]) -> tuple[Any, ...]:
    interface = array.__array_interface__
    return (interface["data"][0], array.shape, array.strides, array.dtype.str)


def _sample(decoder: np.ndarray[Any, Any]) -> FloatArray:
    """A few rows, to notice a decoder changed in place behind a cached path."""
    picks = np.linspace(0, decoder.shape[0] - 1, num=min(16, decoder.shape[0])).astype(np.int64)
    return np.array(decoder[picks], dtype=np.float64)


def path_for(
    decoder: Any,
    direction: Any,
    a: Any = None,
    *,
    row_norms: Any = None,
    estimate: Any = None,
    **options: Any,
) -> Path:
    """The cached Path for (decoder, direction), built on first use (`a`: D w, or a callable
    returning it, or None to compute it; `row_norms`: bounds on ‖dᵢ‖, or a callable returning
    them, or None to compute them; `estimate`: a callable returning the float32 product D w as
    float64, when it is already computed).

    Keyed by the decoder's memory (address, shape, strides, dtype) and the direction's bytes;
    the cache keeps the decoder alive, so the address cannot be reused while cached. A decoder
    modified in place is noticed through a sample of its rows; `clear_cache()` otherwise.
    """
    decoder_arr = np.asarray(decoder)
    w = np.asarray(direction, dtype=np.float64).reshape(-1)
    key = (*_memory_key(decoder_arr), w.tobytes(), tuple(sorted(options.items())))
    a_fn = a if callable(a) else (lambda: a)  # a callable is called only to build the path
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and np.array_equal(hit[1], _sample(decoder_arr)):
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return hit[2]
        _stats["misses"] += 1
        path = Path(decoder_arr, w, a_fn(), row_norms=row_norms, estimate=estimate, **options)
        _cache[key] = (decoder_arr, _sample(decoder_arr), path)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return path


def clear_cache() -> None:
    """Forget every cached path (and the decoders they keep alive)."""
    with _cache_lock:
        _cache.clear()
        _stats["hits"] = _stats["misses"] = 0


def cache_info() -> dict[str, int]:
    """hits, misses (paths built) and size of the path cache."""
    with _cache_lock:
        return {**_stats, "size": len(_cache)}
