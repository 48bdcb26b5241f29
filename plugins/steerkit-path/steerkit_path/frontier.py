"""The sparsity / norm / margin frontier over a grid of λ (QP) or ε (SOCP), from one path."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from steerkit import ProblemKind, SolverCapabilityError, SteeringProblem
from steerkit.solution import L0_RELATIVE_THRESHOLD
from steerkit_path.path import Path, Regime
from steerkit_path.solver import PathSolver

__all__ = ["Pareto", "pareto"]

FloatArray = npt.NDArray[np.float64]


@attrs.frozen(eq=False)
class Pareto:
    """One problem's δ over a grid of λ or ε; every array has the grid's shape (n,).

    l0 counts entries above 1e-5 × the largest; norm is ‖Dᵀδ‖₂; margin is aᵀδ (= r when the
    margin binds); objective is the problem's; NaN (l0: −1) where infeasible. min_eps: the
    smallest feasible ε for this r (SOCP; NaN when the path was not completed).
    """

    kind: str
    rhs: float
    values: FloatArray
    status: tuple[str, ...]
    l0: npt.NDArray[np.int64]
    l1: FloatArray
    norm: FloatArray
    margin: FloatArray
    objective: FloatArray
    alpha: FloatArray
    min_eps: float

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per grid value, for tables."""
        name = "lam" if self.kind == "qp" else "eps"
        return [
            {
                name: float(self.values[i]),
                "status": self.status[i],
                "l0": int(self.l0[i]),
                "l1": float(self.l1[i]),
                "norm": float(self.norm[i]),
                "margin": float(self.margin[i]),
                "objective": float(self.objective[i]),
            }
            for i in range(self.values.size)
        ]


def pareto(
    problem: SteeringProblem, values: Iterable[float], *, path: Path | None = None
) -> Pareto:
    """δ's L0, L1, ‖Dᵀδ‖ and margin over a grid of λ (a QP problem) or ε (an SOCP problem),
    for the problem's r, all from one path (the cached one unless `path` is given)."""
    grid = np.asarray([float(v) for v in values], dtype=np.float64)
    if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
        raise ValueError(f"pareto: values must be a non-empty grid of positive numbers: {grid}")
    if path is None:
        path = PathSolver.path(problem)  # SolverCapabilityError when k > 1
    elif PathSolver.cannot_solve(problem) is not None:
        raise SolverCapabilityError(f"pareto: the path solver {PathSolver.cannot_solve(problem)}")
    r = float(problem.rhs[0])
    qp = problem.kind is ProblemKind.QP
    points = path.qp(grid, r) if qp else path.socp(grid, r)
    n = grid.size
    l0 = np.full(n, -1, dtype=np.int64)
    l1, norm, margin, objective = (np.full(n, math.nan) for _ in range(4))
    status: list[str] = []
    for i in range(n):
        regime = points.regime[i]
        if regime in (Regime.BELOW_MIN_EPS, Regime.NO_DIRECTION):
            status.append("infeasible")
            continue
        status.append("optimal")
        idx, vals = points.sparse(i)
        top = float(vals.max(initial=0.0))
        l0[i] = int(np.count_nonzero(vals > L0_RELATIVE_THRESHOLD * top)) if top > 0 else 0
        l1[i] = float(vals.sum())
        v = np.asarray(path.decoder[idx], dtype=np.float64).T @ vals
        norm[i] = float(np.linalg.norm(v))
        margin[i] = float(path.a[idx] @ vals)
        objective[i] = l1[i] + (0.5 * grid[i] * norm[i] ** 2 if qp else 0.0)
    smallest = float(points.min_eps[0]) if not qp else math.nan
    return Pareto(
        kind=problem.kind.value,
        rhs=r,
        values=grid,
        status=tuple(status),
        l0=l0,
        l1=l1,
        norm=norm,
        margin=margin,
        objective=objective,
        alpha=np.asarray(points.alpha, dtype=np.float64),
        min_eps=smallest,
    )
