"""Per-input steering to the concept's margin, in closed form or nearly: the smallest scale of one
direction that puts each input on the margin (`smallest_scales`), and the smallest dense vector
that does (`min_norm_steps`). Inputs already past the margin get exactly zero.

The concept is k half-spaces W h ≥ t; for input i the right-hand side is r_i = t − W h_i (k,).
Plain numpy: a concept has a handful of directions, so the k > 1 problems are tiny.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from steerkit import Concept, InfeasibleError, SteerkitError

__all__ = ["MinNormSteps", "Scales", "min_norm_steps", "smallest_scales"]

Vector = npt.NDArray[np.float64]

#: w·v at or below this fraction of ‖w‖‖v‖ counts as not moving the probe at all.
ORTHOGONAL = 1e-12
#: Relative slack under which a constraint counts as met (k > 1 only: k = 1 is exact).
_FEASIBLE = 1e-9
#: A least-distance residual at or below this means the constraints conflict, or nearly (on
#: unit rows and unit-size r: the smallest vector would be longer than 1/this).
_CONFLICT = 1e-8


def _rhs(concept: Concept, hidden: Any) -> Vector:
    rhs: Vector = np.asarray(concept.rhs(hidden), dtype=np.float64)
    return rhs


def _inputs(indices: Any, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


@attrs.frozen(eq=False)
class Scales:
    """factors: (n,) the smallest c ≥ 0 with W(h_i + c·d) ≥ t (0 for an input already there);
    binding: (n,) the constraint that sets c (−1 where c = 0); projections: (k,) W d;
    rhs: (n, k)."""

    factors: Vector
    binding: npt.NDArray[np.int64]
    projections: Vector
    rhs: Vector


def smallest_scales(owner: str, direction: Vector, concept: Concept, hidden: Any) -> Scales:
    """For each input, the smallest scale c ≥ 0 of `direction` (d_model,) that meets every
    constraint: c·(w_j·d) ≥ r_ij for all j. With one constraint c = max(r, 0) / (w·d).

    Raises InfeasibleError naming the inputs that no scale brings to the margin: those that need
    steering along a constraint the direction does not move (w_j·d ≤ 0), or (k > 1) whose lower
    and upper bounds on c cross. Never a silent zero.
    """
    d = np.asarray(direction, dtype=np.float64)
    w = np.asarray(concept.directions, dtype=np.float64)
    rhs = _rhs(concept, hidden)
    p = w @ d  # (k,)
    moving = p > ORTHOGONAL * float(np.linalg.norm(d)) * np.linalg.norm(w, axis=1)
    backwards = p < -ORTHOGONAL * float(np.linalg.norm(d)) * np.linalg.norm(w, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        bounds = rhs / np.where(moving | backwards, p, np.inf)[None, :]  # (n, k)
    lower = np.where(moving[None, :], bounds, -np.inf)
    factors: Vector = np.maximum(lower.max(axis=1), 0.0)
    binding = np.where(factors > 0, np.argmax(lower, axis=1), -1).astype(np.int64)

    # a positive r along a constraint the direction does not move: no scale reaches it
    stuck = (rhs > 0) & ~moving[None, :]
    # a constraint the direction moves backwards allows c only up to r/p (≥ 0 when r ≤ 0)
    upper = np.where(backwards[None, :] & (rhs <= 0), bounds, np.inf).min(axis=1)
    crossed = factors > upper + _FEASIBLE * np.maximum(1.0, np.abs(upper))
    failed = np.flatnonzero(stuck.any(axis=1) | crossed)
    if failed.size:
        raise InfeasibleError(_unreachable(owner, failed, stuck, crossed, p, rhs, factors, upper))
    return Scales(factors=factors, binding=binding, projections=p, rhs=rhs)


def _unreachable(
    owner: str,
    failed: npt.NDArray[np.int64],
    stuck: npt.NDArray[np.bool_],
    crossed: npt.NDArray[np.bool_],
    p: Vector,
    rhs: Vector,
    factors: Vector,
    upper: Vector,
) -> str:
    first = int(failed[0])
    where = f"{len(failed)} of {rhs.shape[0]} inputs ({_inputs(failed)})"
    if stuck[first].any():
        j = int(np.flatnonzero(stuck[first])[0])
        name = "w·v" if p.shape[0] == 1 else f"w_{j}·v"
        why = (
            f"the direction does not move the probe towards the target class ({name} = "
            f"{p[j]:.6g} ≤ 0), so no positive scale puts {where} on the margin (input {first} "
            f"needs {rhs[first, j]:.6g} along it)"
        )
    else:
        why = (
            f"along this direction, input {first} needs a scale of at least {factors[first]:.6g} "
            f"to meet one constraint of the concept and at most {upper[first]:.6g} to keep "
            f"another, so no scale puts {where} on the margin"
        )
    return (
        f"method {owner!r}, normalize='per_input': {why}; the probe and this baseline disagree "
        "on the target direction — check target_class, or use normalize='unit' or 'none' to "
        "keep the raw direction"
    )


@attrs.frozen(eq=False)
class MinNormSteps:
    """vectors: (n, d_model) the smallest v_i with W(h_i + v_i) ≥ t (0 where already there);
    multipliers: (n, k) μ_i ≥ 0 with v_i = Wᵀμ_i; rhs: (n, k)."""

    vectors: Vector
    multipliers: Vector
    rhs: Vector

    def active(self, i: int) -> list[int]:
        """The constraints input i's vector meets with equality (those with μ > 0)."""
        return [int(j) for j in np.flatnonzero(self.multipliers[i] > 0)]


def min_norm_steps(owner: str, concept: Concept, hidden: Any) -> MinNormSteps:
    """For each input, argmin ‖v‖ subject to W(h_i + v) ≥ t.

    k = 1: v = max(r, 0)·w/‖w‖². k > 1: a least-distance program, solved through a non-negative
    least squares over the k multipliers and polished on its active constraints, so that those
    hold with equality to rounding. Raises InfeasibleError for inputs whose constraints conflict.
    """
    w = np.asarray(concept.directions, dtype=np.float64)
    rhs = _rhs(concept, hidden)
    norms = np.linalg.norm(w, axis=1)
    if not (norms > 0).all():
        raise SteerkitError(
            f"method {owner!r}: the concept's direction {int(np.argmin(norms))} is zero, so "
            "nothing moves the probe; check the probe"
        )
    n, k = rhs.shape
    multipliers = np.zeros((n, k))
    if k == 1:
        multipliers[:, 0] = np.maximum(rhs[:, 0], 0.0) / float(norms[0] ** 2)
    else:
        conflicting = []
        for i in np.flatnonzero((rhs > 0).any(axis=1)):
            mu = _least_distance(w, rhs[i])
            if mu is None:
                conflicting.append(int(i))
            else:
                multipliers[i] = mu
        if conflicting:
            raise InfeasibleError(
                f"method {owner!r}: no vector meets every constraint of the concept for "
                f"{len(conflicting)} of {n} inputs ({_inputs(conflicting)}): a non-negative "
                "combination of its directions is zero (or nearly) while the margins it needs "
                "are positive, so the constraints conflict (or nearly, beyond working "
                "precision); check the concept's directions and thresholds"
            )
    vectors: Vector = multipliers @ w
    return MinNormSteps(vectors=vectors, multipliers=multipliers, rhs=rhs)


def _least_distance(w: Vector, r: Vector) -> Vector | None:
    """μ ≥ 0 (k,) with v = Wᵀμ = argmin ‖v‖ s.t. W v ≥ r; None when no v meets W v ≥ r, or
    none can be found to working precision (constraints that nearly conflict).

    Lawson and Hanson's reduction of a least-distance program to non-negative least squares:
    with E = [Wᵀ; rᵀ] and f = e_{d+1}, min ‖E u − f‖ over u ≥ 0 leaves a residual that is zero
    exactly when the constraints conflict, and otherwise u > 0 on the constraints the answer
    meets with equality. Solved on unit rows and unit-size r (so that "zero" has a scale), then
    polished on the original W and r: v is the minimum-norm solution of W_A v = r_A on that
    active set A, which the KKT conditions checked below certify as the optimum.
    Constraints that nearly conflict (a smallest vector over 1/_CONFLICT times longer than any
    single constraint asks) count as conflicting.
    """
    norms = np.linalg.norm(w, axis=1)
    unit, target = w / norms[:, None], r / norms
    target = target / float(np.abs(target).max())
    d = w.shape[1]
    e = np.vstack([unit.T, target[None, :]])
    f = np.zeros(d + 1)
    f[d] = 1.0
    u = _nnls(e, f)
    if float(np.linalg.norm(e @ u - f)) <= _CONFLICT:
        return None
    active = u > 0
    v = np.linalg.lstsq(w[active], r[active], rcond=None)[0]
    mu = np.zeros(w.shape[0])
    mu[active] = np.linalg.lstsq(w[active].T, v, rcond=None)[0]
    v = mu @ w
    scale = max(float(np.abs(r).max()), float(norms.max() * np.linalg.norm(v)))
    slack = w @ v - r
    certified = (
        (mu >= -_FEASIBLE * float(np.abs(mu).max())).all()  # dual feasible
        and (slack >= -_FEASIBLE * scale).all()  # primal feasible
        and (np.abs(slack[active]) <= _FEASIBLE * scale).all()  # complementary
    )
    if not certified:  # v = Wᵀμ holds by construction: these are all of the KKT conditions
        return None  # constraints that nearly conflict: no answer to working precision
    result: Vector = np.maximum(mu, 0.0)
    return result


def _nnls(a: Vector, b: Vector) -> Vector:
    """argmin ‖a x − b‖ over x ≥ 0 for an (m, n) `a` with few columns: Lawson and Hanson's
    active-set method, each step a least squares on the free columns.

    Rounding guards: a column whose least-squares coefficient would not come out positive does
    not enter (it is passed over until x changes), entries at rounding level leave, and the
    search stops at its best point after a generous number of steps; the caller checks the
    answer's optimality conditions either way.
    """
    n = a.shape[1]
    x = np.zeros(n)
    free = np.zeros(n, dtype=bool)
    passed_over = np.zeros(n, dtype=bool)
    size = float(np.abs(a).max())
    best, best_residual = x, float(np.linalg.norm(b))
    for _ in range(50 * (n + 1)):
        gradient = a.T @ (b - a @ x)
        tolerance = 100 * np.finfo(float).eps * max(a.shape) * size * max(1.0, size * x.sum())
        candidates = ~free & ~passed_over & (gradient > tolerance)
        if not candidates.any():
            return x
        entering = int(np.argmax(np.where(candidates, gradient, -np.inf)))
        trial = free.copy()
        trial[entering] = True
        z = np.zeros(n)
        z[trial] = np.linalg.lstsq(a[:, trial], b, rcond=None)[0]
        if z[entering] <= _tiny(z):
            passed_over[entering] = True
            continue
        free, passed_over = trial, np.zeros(n, dtype=bool)
        for _ in range(n + 1):
            if (z[free] > _tiny(z)).all():
                x = z
                break
            leaving = free & (z <= _tiny(z))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = x[leaving] / (x[leaving] - z[leaving])
            step = float(np.nan_to_num(ratios, nan=0.0, posinf=1.0).min())
            x = x + step * (z - x)
            free &= x > _tiny(x)
            x[~free] = 0.0
            z = np.zeros(n)
            z[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
        x = np.where(free, np.maximum(x, 0.0), 0.0)
        residual = float(np.linalg.norm(a @ x - b))
        if residual < best_residual:
            best, best_residual = x, residual
    return best


def _tiny(x: Vector) -> float:
    """Entries of x at or below this are rounding: zero."""
    return 1e-14 * max(float(np.abs(x).max()), np.finfo(float).tiny)
