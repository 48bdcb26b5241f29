"""`clarabel`: the steering QP and SOCP handed to Clarabel (interior point) directly, no CVXPY.

The conic form, with Clarabel's A x + s = b, s in the cones (rows in this order):
    zero cone     D₀ᵀy − u = 0                         (lifted form only)
    nonnegative   y ≥ 0,  (Wᵢ/‖Wᵢ‖) u − r'ᵢ ≥ 0         (gram form: (Aᵢ/‖Aᵢ‖) y − r'ᵢ ≥ 0)
    second order  (ε', u)  or (ε', R y)                (SOCP only)
(`steerkit_direct._model` gives the scaling.) The multipliers z of the r' rows are μ̂ ≥ 0, and the
first entry of the second-order cone's z is ν̂.

A batch sets Clarabel up once per (decoder, directions, kind, λ/ε) and, for every further input,
replaces b with `DefaultSolver.update(b=...)`: the KKT structure, its ordering and symbolic
factorisation, and the equilibration are kept; each solve still runs its own interior-point
iterations from a cold start (Clarabel has no warm start). If Clarabel refuses the update
(`is_data_update_allowed()` is False, e.g. after presolve removed rows) the model is set up again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from steerkit import ProblemKind
from steerkit_direct._base import DirectSolver, Outcome, RawResult, _Model
from steerkit_direct._model import ConicData

__all__ = ["ClarabelSolver"]

#: Clarabel's settings unless overridden.
DEFAULTS: Mapping[str, Any] = {
    "tol_gap_abs": 1e-9,
    "tol_gap_rel": 1e-9,
    "tol_feas": 1e-9,
    "max_iter": 200,
}
#: Unless `settings` names a `direct_solve_method`: faer (supernodal) for the dense gram form
#: (4–5× faster than qdldl) and for lifted models with d_sae · d_model² ≥ this; qdldl below it
#: (1.3–1.5× faster than faer at d_sae 1000–2000, d_model 128). Measured; see the README.
FAER_FROM_WORK = 1e8

_OUTCOMES: Mapping[str, Outcome] = {
    "Solved": Outcome.OPTIMAL,
    "AlmostSolved": Outcome.INACCURATE,
    "PrimalInfeasible": Outcome.INFEASIBLE,
    "AlmostPrimalInfeasible": Outcome.INFEASIBLE_INACCURATE,
    "MaxIterations": Outcome.LIMIT,
    "MaxTime": Outcome.LIMIT,
}


@attrs.define(eq=False)
class _Handle:
    solver: Any  # clarabel.DefaultSolver
    b: np.ndarray[Any, Any]  # the full right-hand side; the linear rows are b[rows]
    rows: slice  # the linear rows' slice of b and z
    cone_row: int | None  # the second-order cone's first row (SOCP)


def _clarabel() -> Any:
    import clarabel

    return clarabel


class ClarabelSolver(DirectSolver):
    """QP and SOCP, any k, through Clarabel directly; one set-up per batch structure.

    Options: verbose, max_iter, tol (gap and feasibility tolerances; default 1e-9), time_limit,
    form, settings (Clarabel `DefaultSettings` attributes, e.g. {"direct_solve_method": "qdldl"}).
    """

    name = "clarabel"
    description = "Clarabel called directly (interior point, tolerance 1e-9): QP and SOCP, any k"
    kinds = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    priority = 50
    warm_start = False  # reuses the set-up across a batch, but every solve starts cold
    requires = ("clarabel", "scipy")
    install = "steerkit-direct"
    gram_ratio = 5.0

    def _settings(self, options: Mapping[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = dict(DEFAULTS)
        settings["verbose"] = bool(options.get("verbose", False))
        if options.get("max_iter") is not None:
            settings["max_iter"] = int(options["max_iter"])
        if options.get("tol") is not None:
            tol = float(options["tol"])
            settings.update(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
        if options.get("time_limit") is not None:
            settings["time_limit"] = float(options["time_limit"])
        settings.update(options.get("settings") or {})
        clarabel = _clarabel()
        defaults = clarabel.DefaultSettings()
        unknown = sorted(key for key in settings if not hasattr(defaults, key))
        if unknown:
            raise TypeError(
                f"{self.name}: unknown Clarabel setting(s) {', '.join(map(repr, unknown))} "
                f"in settings=; see clarabel.DefaultSettings"
            )
        return settings

    def _setup(self, data: ConicData, scaled_rhs: np.ndarray[Any, Any], settings: Any) -> Any:
        import scipy.sparse as sp

        clarabel = _clarabel()
        n, k, aux = data.n, scaled_rhs.shape[0], data.n_vars - data.n
        blocks, b_parts, cones = [], [], []
        if data.eq is not None:
            blocks.append(data.eq)
            b_parts.append(np.zeros(data.eq.shape[0]))
            cones.append(clarabel.ZeroConeT(data.eq.shape[0]))
        bound = sp.hstack([-sp.identity(n, format="csr"), sp.csr_matrix((n, aux))], format="csr")
        blocks += [bound, -data.linear]
        b_parts += [np.zeros(n), -scaled_rhs]
        cones.append(clarabel.NonnegativeConeT(n + k))
        start_linear = sum(part.shape[0] for part in b_parts[:-1])
        cone_row = None
        if data.cone is not None:
            cone_row = start_linear + k
            blocks += [sp.csr_matrix((1, data.n_vars)), -data.cone]
            b_parts += [np.array([data.radius]), np.zeros(data.cone.shape[0])]
            cones.append(clarabel.SecondOrderConeT(data.cone.shape[0] + 1))
        a = sp.vstack(blocks, format="csr").tocsc()
        b = np.concatenate(b_parts)
        options = clarabel.DefaultSettings()
        for key, value in settings.items():
            setattr(options, key, value)
        if "direct_solve_method" not in settings:
            work = data.n * (data.n_vars - data.n) ** 2
            lifted = data.eq is not None
            options.direct_solve_method = "qdldl" if lifted and work < FAER_FROM_WORK else "faer"
        solver = clarabel.DefaultSolver(data.p_upper, data.q, a, b, cones, options)
        return _Handle(solver, b, slice(start_linear, start_linear + k), cone_row)

    def _update(self, model: _Model, scaled_rhs: np.ndarray[Any, Any]) -> bool:
        handle: _Handle = model.handle
        if not handle.solver.is_data_update_allowed():
            return False
        handle.b[handle.rows] = -scaled_rhs
        handle.solver.update(b=handle.b)
        return True

    def _run(self, model: _Model, *, resume: bool) -> RawResult:
        handle: _Handle = model.handle
        result = handle.solver.solve()
        raw = str(result.status).rsplit(".", 1)[-1]
        outcome = _OUTCOMES.get(raw, Outcome.ERROR)
        info = {
            "clarabel_status": raw,
            "backend_seconds": float(result.solve_time),
            "direct_solve_method": handle.solver.get_settings().direct_solve_method,
        }
        x = mu_hat = nu_hat = None
        if outcome in (Outcome.OPTIMAL, Outcome.INACCURATE):
            x = np.asarray(result.x, dtype=np.float64)
            z = np.asarray(result.z, dtype=np.float64)
            mu_hat = z[handle.rows]
            nu_hat = float(z[handle.cone_row]) if handle.cone_row is not None else None
        return RawResult(outcome, raw, x, mu_hat, nu_hat, int(result.iterations), info)
