"""`probe_direction`: steer along the probe itself. Per input (its default) it is the smallest
dense vector that reaches the concept's margin, v = r·w/‖w‖² — the reference for what
restricting a vector to SAE features costs: no method that reaches the same margin can be
shorter."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from steerkit import MethodContext, MethodResult
from steerkit_baselines._common import Direction, DirectionBaseline
from steerkit_baselines._margin import min_norm_steps

__all__ = ["ProbeDirection"]


class ProbeDirection(DirectionBaseline):
    """The probe's own direction w (the concept's first), scaled by `normalize`.

    normalize="per_input" (the default, and what this baseline is for): for each input the
    minimum-norm v with W(h + v) ≥ t — v = max(r, 0)·w/‖w‖² for one direction; with k > 1 the
    least-distance solution v = Wᵀμ, μ ≥ 0, exact on the constraints it meets with equality.
    "margin", "unit" and "none" scale the one direction w as for every baseline.
    """

    name = "probe_direction"

    def __init__(self, *, normalize: str = "per_input") -> None:
        super().__init__(normalize=normalize)

    def direction(self, context: MethodContext) -> Direction:
        return Direction(np.asarray(context.concept.directions[0], dtype=np.float64), {})

    def compute(self, context: MethodContext) -> MethodResult:
        if self.normalize != "per_input":
            return super().compute(context)
        start = time.perf_counter()
        concept = context.concept
        steps = min_norm_steps(self.name, concept, context.inputs.hidden)
        w = np.asarray(concept.directions, dtype=np.float64)
        vectors = []
        for i, vector in enumerate(steps.vectors):
            mu = steps.multipliers[i]
            extra: dict[str, Any] = {
                "direction": self.name,
                "input": i,
                "multipliers": [float(m) for m in mu],
                "active": steps.active(i),
                "rhs": [float(r) for r in steps.rhs[i]],
                "probe_projection": float(w[0] @ vector),
                "already_satisfied": bool(not mu.any()),
            }
            if concept.k == 1:  # v is a scale of w: the scale, as every per-input baseline's
                extra = {**extra, "raw_norm": float(np.linalg.norm(w[0])), "factor": float(mu[0])}
            vectors.append((vector, extra))
        satisfied = int((~steps.multipliers.any(axis=1)).sum())
        return self.result(
            context, vectors, shared=False, start=start, info={"already_satisfied": satisfied}
        )
