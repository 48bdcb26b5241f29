"""Per-input steering to the concept's margin, in closed form: the smallest scale of one
direction that puts each input on the margin (`smallest_scales`). Inputs already past the margin
get exactly zero.

The concept is k half-spaces W h ≥ t; for input i the right-hand side is r_i = t − W h_i (k,).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from steerkit import Concept, InfeasibleError

__all__ = ["Scales", "smallest_scales"]

Vector = npt.NDArray[np.float64]

#: w·v at or below this fraction of ‖w‖‖v‖ counts as not moving the probe at all.
ORTHOGONAL = 1e-12
#: Relative slack under which a constraint counts as met (k > 1 only: k = 1 is exact).
_FEASIBLE = 1e-9


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
