"""Small random steering problems shaped like the real thing: unit-norm decoder rows (as SAE
decoders have), a probe direction of norm 1–5, and right-hand sides that bind but are feasible."""

from __future__ import annotations

from typing import Any

import numpy as np

from steerkit.problem import ProblemKind, SteeringProblem

__all__ = ["random_decoder", "random_problem"]


def random_decoder(rng: np.random.Generator, d_sae: int, d_model: int) -> np.ndarray[Any, Any]:
    """(d_sae, d_model) with unit-norm rows."""
    decoder = rng.normal(size=(d_sae, d_model))
    return decoder / np.linalg.norm(decoder, axis=1, keepdims=True)


def random_problem(
    rng: np.random.Generator,
    kind: ProblemKind | str = ProblemKind.QP,
    *,
    d_sae: int = 60,
    d_model: int = 12,
    k: int = 1,
    lam: float = 1.0,
    eps: float | None = None,
    scale: float = 1.0,
    decoder: np.ndarray[Any, Any] | None = None,
) -> SteeringProblem:
    """A feasible problem: r = 0.8 · A δ₀ for a sparse δ₀ ≥ 0, so some δ reaches every margin.

    For an SOCP with no `eps`, ε = 1.5 × ‖Dᵀδ₀‖ (feasible by construction, and usually binding).
    `scale` multiplies the decoder, to probe very small and very large magnitudes.
    """
    kind = ProblemKind(kind)
    if decoder is None:
        decoder = random_decoder(rng, d_sae, d_model) * scale
    d_sae, d_model = decoder.shape
    directions = rng.normal(size=(k, d_model))
    directions *= rng.uniform(1.0, 5.0, size=(k, 1)) / np.linalg.norm(
        directions, axis=1, keepdims=True
    )
    a = directions @ decoder.T
    delta0 = np.zeros(d_sae)
    # a few features that push every direction up, so that A δ₀ > 0 componentwise
    score = a.min(axis=0)
    chosen = np.argsort(score)[-max(2, k) :]
    delta0[chosen] = rng.uniform(0.5, 1.5, size=chosen.size)
    push = a @ delta0
    if np.any(push <= 0):  # fall back: make the chosen rows point along every direction
        decoder = decoder.copy()
        decoder[chosen] = directions.sum(axis=0) / np.linalg.norm(directions.sum(axis=0)) * scale
        a = directions @ decoder.T
        push = a @ delta0
    rhs = 0.8 * push
    if kind is ProblemKind.QP:
        return SteeringProblem.qp(decoder=decoder, directions=directions, rhs=rhs, lam=lam)
    if eps is None:
        eps = 1.5 * float(np.linalg.norm(decoder.T @ delta0))
    return SteeringProblem.socp(decoder=decoder, directions=directions, rhs=rhs, eps=eps)
