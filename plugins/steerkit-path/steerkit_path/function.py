"""The steering function v*(r) of one (probe, SAE, λ or ε), tabulated from one path.

Every breakpoint k ≥ 1 of the path gives a row: its unit-margin vector u_k = Dᵀβ_k / aᵀβ_k and
the margin where the problem's answer sits there — r_k = g_k/λ for the QP (g = aᵀβ/α, the λr
that picks the point, see `path`) and r_k = ε/h_k for the SOCP (h = ‖Dᵀβ‖/aᵀβ, the ε/r that
picks it) — with v*(r_k) = r_k u_k. The path's first segment (one feature, α₀ → α₁) is the table's
first row segment from r = 0. So ε maps to margins through ε/h_k: an SOCP table at ε is the same
path read with another ruler, and its row vectors all have norm ε.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from steerkit import InfeasibleError, SteeringFunction, ValidationError
from steerkit_path.path import Path, path_for

__all__ = ["steering_function"]


def steering_function(
    decoder: Any,
    direction: Any,
    threshold: float,
    *,
    lam: float | None = None,
    eps: float | None = None,
    r_max: float | None = None,
    cache: bool = True,
    **options: Any,
) -> SteeringFunction:
    """The table of v*(r) for the probe w·h ≥ t (`direction` w (d_model,), `threshold` t) over
    `decoder` (d_sae, d_model), for the QP at `lam` or the SOCP at `eps` (give exactly one).

    r_max None: the whole path, every breakpoint checked over all features (exact for every r);
    a number: only the breakpoints up to the first past r_max (exact up to `exact_to`, and
    beyond it the last segment continued, which still meets the margin). `options`: the path's
    pool_size and max_steps.
    """
    if (lam is None) == (eps is None):
        raise ValidationError(
            "steering_function",
            "lam, eps",
            "exactly one of lam (QP) or eps (SOCP)",
            f"lam={lam!r}, eps={eps!r}",
        )
    parameter = float(lam if lam is not None else eps)  # type: ignore[arg-type]
    if not (math.isfinite(parameter) and parameter > 0):
        raise ValidationError(
            "steering_function",
            "lam" if eps is None else "eps",
            "a finite number > 0",
            repr(parameter),
        )
    decoder_arr = np.asarray(decoder)
    w = np.asarray(direction, dtype=np.float64).reshape(-1)
    path = path_for(decoder_arr, w, **options) if cache else Path(decoder_arr, w, **options)
    h = path.homotopy
    if h is None:
        raise InfeasibleError(
            "no steering function: no decoder row has a positive component along the probe "
            "direction, so no δ ≥ 0 reaches any margin r > 0; choose another direction or SAE"
        )
    socp = eps is not None
    with path._lock:
        records = _checked(path, parameter, socp, r_max)
        g = h.margins_over_alpha()[: len(records)]
        ratio = h.norm_ratios()[: len(records)]
    margins = [0.0]
    units: list[np.ndarray[Any, Any]] = []
    for k in range(1, len(records)):
        rec = records[k]
        r = parameter / ratio[k] if socp else g[k] / parameter
        if not math.isfinite(r) or rec.margin <= 0:
            continue  # α = 0 of a QP (r = ∞): its direction is the slope
        if r <= margins[-1]:  # a tie of breakpoints: one margin, one vector
            continue
        margins.append(float(r))
        units.append(np.asarray(rec.fitted, dtype=np.float64) / rec.margin)
    end = records[-1]
    slope = np.asarray(end.fitted, dtype=np.float64) / end.margin if end.margin > 0 else units[-1]
    if not units:  # a one-segment path: the best single feature for every r
        margins.append(1.0)
        units.append(slope)
    u = np.vstack(units)
    vectors = np.vstack([np.zeros(path.d_model), np.asarray(margins[1:])[:, None] * u])
    if not h.complete and not socp:  # continue the last segment of the partial table
        slope = (vectors[-1] - vectors[-2]) / (margins[-1] - margins[-2])
    return SteeringFunction(
        direction=w,
        threshold=float(threshold),
        margins=np.asarray(margins),
        vectors=vectors,
        slope=slope,
        kind="socp" if socp else "qp",
        parameter=parameter,
        exact_to=math.inf if h.complete else margins[-1],
    )


def _checked(path: Path, parameter: float, socp: bool, r_max: float | None) -> list[Any]:
    """The breakpoints the table needs, each checked over all features (repairing the path's
    candidate pool when a check fails)."""
    h = path.homotopy
    assert h is not None
    if r_max is None:
        return h.verified()
    target = {"h_target": parameter / r_max} if socp else {"g_target": parameter * r_max}
    while True:
        h.extend(**target)
        failed = h.check(range(len(h.records)))
        if not failed:
            return list(h.records)
        h.repair(failed)
