"""hypothesis strategies for steering problems, degenerate ones included: duplicated decoder
rows, directions orthogonal to every row, r ≤ 0, scales from 1e-3 to 1e3, ε on both sides of
feasibility, k = 1 and k > 1."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.testing.oracle import min_feasible_norm
from steerkit.testing.problems import random_decoder, random_problem

__all__ = ["steering_problems"]


@st.composite
def steering_problems(
    draw: Any,
    kinds: tuple[str, ...] = ("qp", "socp"),
    max_constraints: int | None = 5,
    max_features: int = 120,
) -> SteeringProblem:
    """A random, possibly degenerate, steering problem of one of `kinds`."""
    kind = ProblemKind(draw(st.sampled_from(kinds)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = (
        draw(st.sampled_from([1, 1, 2, 5]))
        if max_constraints is None
        else draw(st.integers(1, max(1, min(5, max_constraints))))
    )
    d_model = draw(st.integers(3, 16))
    d_sae = draw(st.integers(max(5, k + 1), max_features))
    scale = 10.0 ** draw(st.sampled_from([-3, -1, 0, 0, 0, 1, 3]))
    decoder = random_decoder(rng, d_sae, d_model) * scale
    degenerate = draw(st.sampled_from(["none", "none", "duplicates", "orthogonal", "satisfied"]))
    if degenerate == "duplicates":
        copies = rng.integers(0, d_sae, size=max(1, d_sae // 3))
        decoder[rng.integers(0, d_sae, size=copies.size)] = decoder[copies]
    lam = 10.0 ** draw(st.floats(-2, 2))
    base = random_problem(rng, "qp", k=k, lam=lam, decoder=decoder)
    directions, rhs = base.directions, base.rhs
    if degenerate == "orthogonal":
        decoder = decoder.copy()
        decoder[:, -1] = 0.0
        directions = np.zeros_like(directions)
        directions[:, -1] = 1.0
        rhs = np.abs(rhs) + 0.1
    elif degenerate == "satisfied":
        rhs = -np.abs(rhs)
    if kind is ProblemKind.QP:
        return SteeringProblem.qp(decoder=decoder, directions=directions, rhs=rhs, lam=lam)
    probe = SteeringProblem.socp(decoder=decoder, directions=directions, rhs=rhs, eps=1.0)
    needed = min_feasible_norm(probe)
    factor = draw(st.sampled_from([0.5, 0.9, 1.01, 1.2, 2.0, 10.0]))
    eps = factor * needed if np.isfinite(needed) and needed > 0 else scale
    return SteeringProblem.socp(decoder=decoder, directions=directions, rhs=rhs, eps=eps)
