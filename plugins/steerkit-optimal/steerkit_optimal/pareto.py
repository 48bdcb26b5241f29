"""Pareto sweeps: sparsity and steering norm against λ (QP) or ε (SOCP).

With the path solver the whole grid costs one homotopy path per (decoder, direction): every λ and
ε is a lookup on it. Infeasible ε values stay in the sweep with their status, as part of the
frontier's shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

import steerkit
from steerkit import SteeringProblem, ValidationError
from steerkit.checks import positive_scalar

__all__ = ["ParetoPoint", "pareto"]


@attrs.frozen
class ParetoPoint:
    """One (input, λ or ε) point. shift: min over directions of A δ (how far steering moves the
    concept); margin: min of A δ − r (≥ 0 once past the margin). NaN where there is no solution."""

    input: int
    kind: str
    parameter: float
    status: str
    l0: int
    l1: float
    norm: float
    shift: float
    margin: float
    objective: float
    seconds: float
    solver: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def pareto(
    decoder: Any,
    directions: Any,
    rhs: Any,
    *,
    lams: Iterable[float] | None = None,
    eps: Iterable[float] | None = None,
    solver: str | None = None,
    host: steerkit.PluginHost | None = None,
    **options: Any,
) -> list[ParetoPoint]:
    """Solve over a grid of λ (QP) or ε (SOCP) for each right-hand side, through `host`'s
    solver registry (default: the process-wide one).

    rhs: a scalar, (k,) for one input, or (n, k) for n inputs. Exactly one of `lams`, `eps`.
    """
    if (lams is None) == (eps is None):
        raise ValidationError(
            "pareto",
            "lams, eps",
            "exactly one grid, lams=[...] (QP) or eps=[...] (SOCP)",
            "both" if lams is not None else "neither",
        )
    field = "lams" if lams is not None else "eps"
    values = list(lams if lams is not None else eps)  # type: ignore[arg-type]
    if not values:
        raise ValidationError("pareto", field, "a non-empty grid of positive numbers", "[]")
    grid = [positive_scalar("pareto", f"{field}[{i}]", v) for i, v in enumerate(values)]
    rows = np.atleast_1d(np.asarray(rhs, dtype=np.float64))
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    points: list[ParetoPoint] = []
    for value in grid:
        if lams is not None:
            base = SteeringProblem.qp(
                decoder=decoder, directions=directions, rhs=rows[0], lam=value
            )
        else:
            base = SteeringProblem.socp(
                decoder=decoder, directions=directions, rhs=rows[0], eps=value
            )
        problems = [base.with_rhs(r) for r in rows]
        for index, (problem, solution) in enumerate(
            zip(problems, steerkit.solve_batch(problems, solver, host=host, **options))
        ):
            if solution.delta is None:
                l1 = norm = shift = margin = math.nan
            else:
                achieved = problem.constraint_matrix @ solution.delta
                l1 = solution.l1
                norm = float(np.linalg.norm(problem.steering_vector(solution.delta)))
                shift = float(achieved.min())
                margin = float((achieved - problem.rhs).min())
            points.append(
                ParetoPoint(
                    input=index,
                    kind=problem.kind.value,
                    parameter=value,
                    status=solution.status.value,
                    l0=solution.l0,
                    l1=l1,
                    norm=norm,
                    shift=shift,
                    margin=margin,
                    objective=solution.objective,
                    seconds=solution.seconds,
                    solver=solution.solver,
                    message=solution.message,
                )
            )
    return points
