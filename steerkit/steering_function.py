"""The steering function of a one-constraint problem (k = 1): v*(r) for any margin r.

For a probe w·h ≥ t, the optimal added vector depends on an activation h only through its
margin r = t − w·h, and a path solver gives it for every r at once. A `SteeringFunction` is that
answer as a table — the margins r_k of the path's breakpoints and v*(r_k) at each — so that v*(r)
for any r is a sorted search and one interpolation, with no solver call:

- QP at a fixed λ: v*(r) is piecewise linear in r (δ(λ, r) = δ(1, λr)/λ walks the path), so
  between two rows it is the linear interpolation of theirs (`budget` None).
- SOCP at a fixed ε (`budget` = ε): the answers lie on the same path, at the point where
  ‖Dᵀβ‖/aᵀβ = ε/r. The vector per unit margin u = v/r moves on the straight line between two
  rows' u (a ratio of two affine functions of the path parameter), and ‖v‖ = ε holds: the
  interpolation weight θ is the root of ‖(1 − θ) u_k + θ u_{k+1}‖ = ε/r. On the first row
  segment (one feature) v = r u_1 is linear.

Beyond the last row, v*(r) = v_last + (r − r_last) · `slope` (the path's end direction: exact for
a QP over the whole path; for an SOCP, past the smallest feasible ε, it is the least-norm vector
that meets the margin, with ‖v‖ > ε). Every answer meets the margin: w·v*(r) = r. For r ≤ 0 the
answer is exactly zero. The table is plain numpy; a source evaluates it on its own device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from steerkit._arrays import FloatArray, float_array, to_numpy
from steerkit.errors import ValidationError

__all__ = ["SteeringFunction"]

_OWNER = "SteeringFunction"
_KINDS = ("qp", "socp")


def _direction(value: Any) -> FloatArray:
    return float_array(_OWNER, "direction", value, ndim=1)


def _margins(value: Any) -> FloatArray:
    return float_array(_OWNER, "margins", value, ndim=1)


def _slope(value: Any) -> FloatArray:
    return float_array(_OWNER, "slope", value, ndim=1)


def _matrix(value: Any) -> FloatArray:
    return float_array(_OWNER, "vectors", value, ndim=2)


@attrs.frozen(eq=False)
class SteeringFunction:
    """v*(r) for one (probe direction, SAE decoder, λ or ε), tabulated at the path's breakpoints.

    direction: w (d_model,) and threshold: t — the margin of an activation h is r = t − w·h;
    margins: (n,) strictly increasing, margins[0] = 0; vectors: (n, d_model), v*(margins[k]),
    vectors[0] = 0; slope: (d_model,) beyond margins[-1]; kind: "qp" (λ = parameter) or "socp"
    (ε = parameter; interpolation keeps ‖v‖ = ε); exact_to: the largest r answered exactly
    (inf when the table holds the whole path).
    """

    direction: FloatArray = attrs.field(converter=_direction)
    threshold: float
    margins: FloatArray = attrs.field(converter=_margins)
    vectors: FloatArray = attrs.field(converter=_matrix)
    slope: FloatArray = attrs.field(converter=_slope)
    kind: str = "qp"
    parameter: float = 1.0
    exact_to: float = math.inf

    def __attrs_post_init__(self) -> None:
        n, d = self.vectors.shape
        if self.kind not in _KINDS:
            raise ValidationError(_OWNER, "kind", "one of qp, socp", repr(self.kind))
        if not (isinstance(self.parameter, (int, float)) and self.parameter > 0):
            raise ValidationError(_OWNER, "parameter", "λ or ε > 0", repr(self.parameter))
        if not isinstance(self.threshold, (int, float)) or not math.isfinite(self.threshold):
            raise ValidationError(_OWNER, "threshold", "a finite number", repr(self.threshold))
        if self.margins.shape != (n,) or n < 2:
            raise ValidationError(
                _OWNER,
                "margins",
                f"shape ({n},), one per row of vectors, n ≥ 2",
                f"shape {self.margins.shape}",
            )
        if self.margins[0] != 0 or np.any(np.diff(self.margins) <= 0):
            raise ValidationError(
                _OWNER, "margins", "strictly increasing from 0", str(self.margins[:4]) + "…"
            )
        if np.any(self.vectors[0] != 0):
            raise ValidationError(_OWNER, "vectors", "a first row of zeros (v*(0) = 0)", "non-zero")
        for field in ("direction", "slope"):
            if getattr(self, field).shape != (d,):
                raise ValidationError(
                    _OWNER,
                    field,
                    f"shape ({d},) (d_model of vectors)",
                    f"shape {getattr(self, field).shape}",
                )

    @property
    def d_model(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_breakpoints(self) -> int:
        return int(self.margins.shape[0])

    @property
    def budget(self) -> float | None:
        """ε for an SOCP table (‖v‖ = ε between rows), None for a QP."""
        return float(self.parameter) if self.kind == "socp" else None

    def margin(self, hidden: Any) -> FloatArray:
        """r = t − w·h for each row of hidden (n, d_model) (or one (d_model,) activation)."""
        h = to_numpy(_OWNER, "hidden", hidden).astype(np.float64, copy=False)
        if h.shape[-1] != self.d_model:
            raise ValidationError(
                _OWNER, "hidden", f"activations of width {self.d_model}", f"shape {h.shape}"
            )
        result: FloatArray = self.threshold - h @ self.direction
        return result

    def segment_terms(self) -> dict[str, FloatArray]:
        """Per row segment k (rows k → k+1) of an SOCP table: A = u_k, B = u_{k+1} − u_k with
        u = v/r, and AA, AB, BB (n − 1,) — what the norm-keeping interpolation needs."""
        units = np.zeros_like(self.vectors)
        units[1:] = self.vectors[1:] / self.margins[1:, None]
        units[0] = units[1]
        start, step = units[:-1], np.diff(units, axis=0)
        return {
            "units": units,
            "AA": np.einsum("ij,ij->i", start, start),
            "AB": np.einsum("ij,ij->i", start, step),
            "BB": np.einsum("ij,ij->i", step, step),
        }

    def __call__(self, rhs: Any) -> FloatArray:
        """v*(r) for each margin r (shape (n,) → (n, d_model)); zero rows where r ≤ 0."""
        r = np.atleast_1d(to_numpy(_OWNER, "rhs", rhs).astype(np.float64)).reshape(-1)
        out = np.zeros((r.size, self.d_model))
        live = np.flatnonzero(r > 0)
        if not live.size:
            return out
        x = r[live]
        m, v = self.margins, self.vectors
        k = np.clip(np.searchsorted(m, x, side="right") - 1, 0, m.size - 1)
        beyond = k == m.size - 1
        inside = ~beyond
        out[live[beyond]] = v[-1] + (x[beyond] - m[-1])[:, None] * self.slope
        ki, xi = k[inside], x[inside]
        t = (xi - m[ki]) / (m[ki + 1] - m[ki])
        lerp = v[ki] + t[:, None] * (v[ki + 1] - v[ki])
        if self.kind == "socp":
            terms = self.segment_terms()
            theta = _norm_weight(
                terms["AA"][ki], terms["AB"][ki], terms["BB"][ki], self.parameter / xi
            )
            units = terms["units"]
            sphere = xi[:, None] * (units[ki] + theta[:, None] * (units[ki + 1] - units[ki]))
            lerp = np.where((ki == 0)[:, None], lerp, sphere)
        out[live[inside]] = lerp
        return out

    # -- saving -----------------------------------------------------------------------------

    def arrays(self) -> dict[str, FloatArray]:
        """The table's arrays, for a safetensors file (`from_parts` reads them back)."""
        return {
            "direction": self.direction,
            "margins": self.margins,
            "vectors": self.vectors,
            "slope": self.slope,
        }

    def meta(self) -> dict[str, Any]:
        """The table's scalars, for a JSON sidecar (exact_to: None for the whole path)."""
        return {
            "kind": self.kind,
            "parameter": float(self.parameter),
            "threshold": float(self.threshold),
            "exact_to": None if math.isinf(self.exact_to) else float(self.exact_to),
        }

    @classmethod
    def from_parts(cls, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> SteeringFunction:
        """A table from `arrays()` and `meta()` (as saved)."""
        exact_to = meta.get("exact_to")
        return cls(
            direction=arrays["direction"],
            threshold=float(meta["threshold"]),
            margins=arrays["margins"],
            vectors=arrays["vectors"],
            slope=arrays["slope"],
            kind=str(meta["kind"]),
            parameter=float(meta["parameter"]),
            exact_to=math.inf if exact_to is None else float(exact_to),
        )

    def same_as(self, other: SteeringFunction) -> bool:
        """Equal tables (same arrays and scalars)."""
        return self is other or (
            self.meta() == other.meta()
            and all(
                np.array_equal(a, b)
                for a, b in zip(self.arrays().values(), other.arrays().values())
            )
        )


def _norm_weight(aa: Any, ab: Any, bb: Any, s: Any) -> Any:
    """θ in [0, 1] with ‖A + θB‖ = s, where ‖A + θB‖ decreases on [0, 1]: the smaller root of
    BB θ² + 2 AB θ + AA − s² = 0, in the form that stays exact when BB is tiny."""
    c = np.maximum(aa - s * s, 0.0)
    disc = np.sqrt(np.maximum(ab * ab - bb * c, 0.0))
    denom = -ab + disc
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(denom > 0, c / denom, 0.0)
    return np.clip(theta, 0.0, 1.0)
