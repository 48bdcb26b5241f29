"""Metrics of the vectors and solutions themselves: `sparsity` (the SAE code's L0 and L1, from
provenance), `norm` (‖α·v‖₂) and `solve_time` (the solver's seconds)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from steerkit import Column, EvalContext, Metric, ValidationError
from steerkit_metrics._context import nan_column, per_input_vectors

__all__ = ["Norm", "SolveTime", "Sparsity"]


class Sparsity(Metric):
    """Columns: `l0`, the number of SAE features in the vector's code (len(provenance
    ["support"]); 0 at α = 0), and `l1`, |α| · Σ |support_values| (the L1 norm of the code α·δ
    of α·v = Dᵀ(α·δ)). NaN for vectors without a `support` in their provenance (not SAE-based)
    and for inputs without a vector; `l1` is NaN too when `support_values` is missing."""

    name = "sparsity"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "l0",
                "L0",
                better="lower",
                description="SAE features in the vector's code",
                role="cost",
            ),
            Column("l1", "L1", better="lower", description="L1 norm of the code α·δ"),
        )

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        vectors = per_input_vectors(context)
        l0, l1 = nan_column(len(vectors)), nan_column(len(vectors))
        for i, vector in enumerate(vectors):
            if vector is None or vector.provenance.get("support") is None:
                continue
            support = list(vector.provenance["support"])
            scale = abs(float(vector.scale))
            l0[i] = len(support) if scale > 0 else 0
            values = vector.provenance.get("support_values")
            if values is None:
                continue
            code = np.asarray(values, dtype=np.float64).reshape(-1)
            if code.shape != (len(support),):
                raise ValidationError(
                    "SteeringVector",
                    "provenance",
                    f"support_values of the same length as support ({len(support)})",
                    f"{code.shape[0]} values (input {i})",
                )
            l1[i] = scale * float(np.abs(code).sum())
        return {"l0": l0, "l1": l1}


class Norm(Metric):
    """Column `norm`: ‖α·v‖₂, the size of what is added (for an SAE code δ at α = 1, ‖Dᵀδ‖₂).
    NaN for inputs without a vector."""

    name = "norm"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "norm", "norm", better="lower", description="‖α·v‖₂, what is added", role="cost"
            ),
        )

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        vectors = per_input_vectors(context)
        norms = nan_column(len(vectors))
        for i, vector in enumerate(vectors):
            if vector is not None:
                added = float(vector.scale) * np.asarray(vector.vector, dtype=np.float64)
                norms[i] = float(np.linalg.norm(added))
        return {"norm": norms}


class SolveTime(Metric):
    """Column `solve_seconds`: each input's `Solution.seconds` (also for a solve that failed:
    the time was spent); for a shared result, the shared solve's seconds (one value for every
    input). NaN for methods without solutions (the baselines)."""

    name = "solve_time"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "solve_seconds",
                "solve s",
                better="lower",
                description="seconds per solve",
                role="time",
            ),
        )

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        solutions = context.result.solutions
        n = len(context.inputs)
        if not solutions:
            return {"solve_seconds": math.nan}
        if context.result.shared:
            return {"solve_seconds": float(sum(s.seconds for s in solutions))}
        if len(solutions) != n:
            raise ValidationError(
                "MethodResult",
                "solutions",
                f"{n} solutions, one per input, or none",
                f"{len(solutions)}",
            )
        return {"solve_seconds": np.array([s.seconds for s in solutions], dtype=np.float64)}
