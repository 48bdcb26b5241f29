"""The independent reference solve every backend is checked against: Clarabel called directly.

No CVXPY, no steerkit backend code: the conic program is written out here by hand, so a mistake
in a backend's modelling cannot hide behind the same mistake in the reference.

Variables x = [δ (d_sae); v (d_model)], constraints A x + s = b with s in the cones:
    zero cone      Dᵀδ − v = 0
    nonnegative    δ ≥ 0,  W v − r ≥ 0
    second order   (ε, v)                     (SOCP only)
objective ½ xᵀPx + qᵀx with q = [1; 0] and P = blockdiag(0, λ I) (QP) or 0 (SOCP).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.solution import Duals, Status

__all__ = ["Reference", "min_feasible_norm", "reference_solve"]


@attrs.frozen(eq=False)
class Reference:
    """The reference answer: status, objective, δ and multipliers (when solved)."""

    status: Status
    objective: float
    delta: np.ndarray[Any, Any] | None
    duals: Duals | None
    raw_status: str


def _clarabel() -> Any:
    try:
        import clarabel
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "steerkit.testing's reference solve needs Clarabel: pip install 'steerkit[testing]'"
        ) from e
    return clarabel


def _solve(
    problem: SteeringProblem, *, quadratic: float, linear: bool, eps: float | None
) -> Reference:
    import scipy.sparse as sp

    clarabel = _clarabel()
    n, m, k = problem.d_sae, problem.d_model, problem.n_constraints
    decoder = np.asarray(problem.decoder, dtype=np.float64)
    identity_m = sp.identity(m, format="csc")

    p = sp.block_diag([sp.csc_matrix((n, n)), quadratic * identity_m], format="csc")
    q = np.concatenate([np.ones(n) if linear else np.zeros(n), np.zeros(m)])

    blocks = [
        sp.hstack([sp.csc_matrix(decoder.T), -identity_m]),  # zero: Dᵀδ − v = 0
        sp.hstack([-sp.identity(n), sp.csc_matrix((n, m))]),  # nonneg: δ
        sp.hstack([sp.csc_matrix((k, n)), -sp.csc_matrix(problem.directions)]),  # Wv − r
    ]
    rhs = [np.zeros(m), np.zeros(n), -np.asarray(problem.rhs)]
    cones = [clarabel.ZeroConeT(m), clarabel.NonnegativeConeT(n + k)]
    if eps is not None:
        blocks.append(
            sp.vstack([sp.csc_matrix((1, n + m)), sp.hstack([sp.csc_matrix((m, n)), -identity_m])])
        )
        rhs.append(np.concatenate([[eps], np.zeros(m)]))
        cones.append(clarabel.SecondOrderConeT(m + 1))
    a = sp.vstack(blocks, format="csc")
    b = np.concatenate(rhs)

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = 1e-9
    settings.tol_gap_rel = 1e-9
    settings.tol_feas = 1e-9
    settings.max_iter = 500
    result = clarabel.DefaultSolver(sp.triu(p, format="csc"), q, a, b, cones, settings).solve()

    raw = str(result.status)
    if raw.endswith("Solved") and "Almost" not in raw:
        status = Status.OPTIMAL
    elif "Infeasible" in raw:
        status = Status.INFEASIBLE
    elif "MaxIterations" in raw or "MaxTime" in raw:
        status = Status.ITERATION_LIMIT
    else:
        status = Status.ERROR
    if status is not Status.OPTIMAL:
        return Reference(status, math.nan, None, None, raw)

    x = np.asarray(result.x)
    z = np.asarray(result.z)
    delta = np.maximum(x[:n], 0.0)
    mu = z[m + n : m + n + k]
    nu = float(z[m + n + k]) if eps is not None else None
    return Reference(status, float(result.obj_val), delta, Duals(linear=mu, norm=nu), raw)


def reference_solve(problem: SteeringProblem) -> Reference:
    """Solve `problem` with Clarabel to tolerance 1e-9, independently of any steerkit backend."""
    if problem.kind is ProblemKind.QP:
        assert problem.lam is not None
        return _solve(problem, quadratic=problem.lam, linear=True, eps=None)
    return _solve(problem, quadratic=0.0, linear=True, eps=problem.eps)


def min_feasible_norm(problem: SteeringProblem) -> float:
    """The smallest ‖Dᵀδ‖ over δ ≥ 0 with A δ ≥ r: the SOCP is feasible exactly when ε ≥ this.

    inf when no δ ≥ 0 satisfies the linear constraints at all.
    """
    ref = _solve(problem, quadratic=1.0, linear=False, eps=None)
    if ref.status is Status.INFEASIBLE:
        return math.inf
    if ref.status is not Status.OPTIMAL or ref.delta is None:
        raise RuntimeError(f"reference min-norm solve failed: {ref.raw_status}")
    return float(np.linalg.norm(problem.steering_vector(ref.delta)))
