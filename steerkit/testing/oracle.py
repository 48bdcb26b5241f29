"""The independent reference solve every backend is checked against: Clarabel called directly.

No CVXPY, no steerkit backend code: the conic program is written out here by hand, so a mistake
in a backend's modelling cannot hide behind the same mistake in the reference.

Variables x = [δ (d_sae); v (d_model)], constraints A x + s = b with s in the cones:
    zero cone      Dᵀδ − v = 0
    nonnegative    δ ≥ 0,  W v − r ≥ 0
    second order   (ε, v)                     (SOCP only)
objective ½ xᵀPx + qᵀx with q = [1; 0] and P = blockdiag(0, λ I) (QP) or 0 (SOCP).

Clarabel's tolerances are absolute, so the program is first rescaled to unit size (decoder rows of
norm about 1, unit directions, right-hand sides of size 1) and the answer mapped back; the answer's
objective and violation are then recomputed from δ on the original problem, and a "Solved" point
that violates the original constraints is reported as an error rather than trusted.
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


@attrs.frozen
class _Scaling:
    """δ = t·δ̃ with D = s·D̃ and W_i = ω_i·W̃_i: the unit-size problem's data and the maps back."""

    decoder: np.ndarray[Any, Any]
    directions: np.ndarray[Any, Any]
    rhs: np.ndarray[Any, Any]
    row_scale: float  # s
    direction_scale: np.ndarray[Any, Any]  # ω
    delta_scale: float  # t

    @classmethod
    def of(cls, problem: SteeringProblem) -> _Scaling:
        decoder = np.asarray(problem.decoder, dtype=np.float64)
        norms = np.linalg.norm(decoder, axis=1)
        s = float(np.median(norms[norms > 0])) if np.any(norms > 0) else 1.0
        directions = np.asarray(problem.directions, dtype=np.float64)
        omega = np.linalg.norm(directions, axis=1)
        omega = np.where(omega > 0, omega, 1.0)
        reduced = np.asarray(problem.rhs, dtype=np.float64) / (omega * s)
        t = float(np.abs(reduced).max())
        t = t if t > 0 else 1.0
        return cls(decoder / s, directions / omega[:, None], reduced / t, s, omega, t)


def _solve(
    problem: SteeringProblem, *, quadratic: float, linear: bool, eps: float | None
) -> Reference:
    """Solve the rescaled program; δ and the multipliers come back in the original units."""
    n, m, k = problem.d_sae, problem.d_model, problem.n_constraints
    if np.all(problem.rhs <= 0):
        # δ = 0 is feasible and both objectives are ≥ 0 with equality only there: exact answer,
        # not an interior point's 1e-11 approximation of it
        zero = np.zeros(n)
        return Reference(
            Status.OPTIMAL,
            0.0,
            zero,
            Duals(linear=np.zeros(k), norm=0.0 if eps is not None else None),
            "trivial",
        )
    sc = _Scaling.of(problem)
    s, t = sc.row_scale, sc.delta_scale
    # QP: 1ᵀδ + (λ/2)‖Dᵀδ‖² = t·(1ᵀδ̃ + (λ s² t/2)‖D̃ᵀδ̃‖²); SOCP: ‖Dᵀδ‖ ≤ ε ⇔ ‖D̃ᵀδ̃‖ ≤ ε/(s t).
    # Without the linear term (the min-norm solve) the quadratic is only rescaled by s² t².
    scaled_quadratic = quadratic * s * s * t if linear else quadratic
    scaled_eps = None if eps is None else eps / (s * t)
    raw, x, z = _clarabel_solve(sc, problem.n_constraints, scaled_quadratic, linear, scaled_eps)
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

    delta = np.maximum(x[:n], 0.0) * t
    # stationarity: ∇f(δ) = ∇f̃(δ̃), Ã_i = A_i/(ω_i s) and ∇‖D̃ᵀδ̃‖ = ∇‖Dᵀδ‖·(t/(s t))
    mu = z[m + n : m + n + k] / (sc.direction_scale * s)
    nu = float(z[m + n + k]) / s if eps is not None else None
    # the point must satisfy the original problem: Clarabel's "Solved" is not taken on trust
    size = max(1.0, float(np.abs(problem.rhs).max()))
    violation = max(0.0, float(np.max(problem.rhs - problem.constraint_matrix @ delta)))
    if eps is not None:
        violation = max(violation, float(np.linalg.norm(problem.steering_vector(delta))) - eps)
    if violation > 1e-7 * size + 1e-6 * (eps or 0.0):
        return Reference(
            Status.ERROR, math.nan, None, None, f"{raw}, but the point violates by {violation:.2e}"
        )
    objective = float(delta.sum())
    if problem.kind is ProblemKind.QP and linear:
        objective = problem.objective(delta)
    return Reference(status, objective, delta, Duals(linear=mu, norm=nu), raw)


def _clarabel_solve(
    sc: _Scaling, k: int, quadratic: float, linear: bool, eps: float | None
) -> tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    import scipy.sparse as sp

    clarabel = _clarabel()
    n, m = sc.decoder.shape
    identity_m = sp.identity(m, format="csc")

    p = sp.block_diag([sp.csc_matrix((n, n)), quadratic * identity_m], format="csc")
    q = np.concatenate([np.ones(n) if linear else np.zeros(n), np.zeros(m)])

    blocks = [
        sp.hstack([sp.csc_matrix(sc.decoder.T), -identity_m]),  # zero: Dᵀδ − v = 0
        sp.hstack([-sp.identity(n), sp.csc_matrix((n, m))]),  # nonneg: δ
        sp.hstack([sp.csc_matrix((k, n)), -sp.csc_matrix(sc.directions)]),  # Wv − r
    ]
    rhs = [np.zeros(m), np.zeros(n), -sc.rhs]
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
    return str(result.status), np.asarray(result.x), np.asarray(result.z)


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
