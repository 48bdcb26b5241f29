"""Per-token optimal steering: `qp_adaptive` and `socp_adaptive` (one constraint, k = 1).

Each returns, for every input, a vector at positions `adaptive` carrying the steering function
v*(r) of (probe, SAE, λ or ε), tabulated once from one homotopy path (steerkit-path). The source
then evaluates v*(r_t) at every token of the prompt and of the generated text; the vector itself
is the input's answer at its prompt's last token (what `qp` / `socp` return), kept for reporting.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from steerkit import (
    MethodContext,
    MethodResult,
    Positions,
    SolverNotInstalledError,
    SteeringFunction,
    SteeringVector,
    ValidationError,
)
from steerkit_optimal.methods import QPMethod, SOCPMethod, _decoder, _weights

__all__ = ["QPAdaptiveMethod", "SOCPAdaptiveMethod", "steering_function_for"]


def steering_function_for(
    method: str,
    context: MethodContext,
    *,
    lam: float | None = None,
    eps: float | None = None,
    costs: Any = None,
) -> SteeringFunction:
    """The steering function of the context's concept and SAE decoder (needs k = 1). With
    per-feature `costs` (d_sae,), the function of the rows dᵢ / cᵢ of the finite-cost features:
    the same vectors v* = Dᵀδ as the cost-weighted problem's."""
    concept = context.concept
    if concept.k != 1:
        raise ValidationError(
            method,
            "concept",
            "one probe direction (k = 1): adaptive mode evaluates the steering function v*(r) of "
            "one margin r at every token; with k > 1 directions the optimum is no function of "
            "one margin — use qp or socp (a fixed vector per input), or solve per token "
            "through steerkit.solve_batch",
            f"k = {concept.k} directions",
        )
    try:
        from steerkit_path import steering_function
    except ImportError as e:
        raise SolverNotInstalledError("path", "steerkit_path", "steerkit-path") from e
    decoder = _decoder(context, method)
    if costs is not None:
        kept = np.flatnonzero(np.isfinite(costs))
        decoder = np.asarray(decoder, dtype=np.float64)[kept] / np.asarray(costs)[kept, None]
    return steering_function(
        decoder,
        concept.directions[0],
        float(concept.thresholds[0]),
        lam=lam,
        eps=eps,
    )


def _adaptive(
    name: str, result: MethodResult, context: MethodContext, function: SteeringFunction
) -> MethodResult:
    """The per-input result with every vector at positions `adaptive` carrying `function`; an
    input whose fixed solve failed (an SOCP past its smallest ε) gets the function's answer."""
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    vectors = []
    for i, vector in enumerate(result.vectors):
        extra = {"method": name, "adaptive": True, "breakpoints": function.n_breakpoints}
        if vector is None:
            solution = result.solution_for(i)
            vector = SteeringVector(
                vector=function(rhs[i : i + 1])[0],
                hook_point=context.inputs.hook_point,
                provenance={
                    "kind": function.kind,
                    "status": "function" if solution is None else solution.status.value,
                    "input": i,
                },
            )
        vectors.append(
            attrs.evolve(
                vector,
                positions=Positions.ADAPTIVE,
                function=function,
                provenance={**vector.provenance, **extra},
            )
        )
    info = {
        **result.info,
        "breakpoints": function.n_breakpoints,
        "table_bytes": int(function.vectors.nbytes),
    }
    return attrs.evolve(result, vectors=tuple(vectors), info=info)


class QPAdaptiveMethod(QPMethod):
    """The QP at λ as a steering function: at every token, the least intervention (in
    1ᵀδ + (λ/2)‖Dᵀδ‖²) that puts it on the target side of the probe."""

    name = "qp_adaptive"

    def compute(self, context: MethodContext) -> MethodResult:
        costs = _weights(self, context, _decoder(context, self.name))
        function = steering_function_for(self.name, context, lam=self.lam, costs=costs)
        return _adaptive(self.name, super().compute(context), context, function)


class SOCPAdaptiveMethod(SOCPMethod):
    """The SOCP at ε as a steering function (‖v‖ = ε once past one feature; where no vector
    within ε meets a token's margin, the least-norm one that does)."""

    name = "socp_adaptive"

    def __init__(self, *, eps: float, on_failure: str = "keep", **kwargs: Any) -> None:
        super().__init__(eps=eps, on_failure=on_failure, **kwargs)

    def compute(self, context: MethodContext) -> MethodResult:
        costs = _weights(self, context, _decoder(context, self.name))
        function = steering_function_for(self.name, context, eps=self.eps, costs=costs)
        return _adaptive(self.name, super().compute(context), context, function)
