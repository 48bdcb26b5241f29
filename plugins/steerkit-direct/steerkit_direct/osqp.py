"""`osqp`: the steering QP handed to OSQP (ADMM) directly, no CVXPY; QPs only.

The model, with OSQP's l ≤ A x ≤ u (`steerkit_direct._model` gives the scaling):
    D₀ᵀy − u = 0        l = u = 0                    (lifted form only)
    y ≥ 0               l = 0, u = ∞
    (Wᵢ/‖Wᵢ‖) u ≥ r'ᵢ   l = r', u = ∞               (gram form: (Aᵢ/‖Aᵢ‖) y ≥ r'ᵢ)
OSQP's multiplier y of a row at its lower bound is ≤ 0, so μ̂ = −y of the r' rows.

Accuracy comes from polishing (an exact solve on the active set ADMM found; without it OSQP's
points are 1e-4 off with hundreds of spurious non-zeros, DESIGN.md), checked by the core's KKT
certificate: each solve runs ADMM to a loose tolerance (1e-5) and polishes; while the polished
point is not certified (duality gap or dual infeasibility above 1e-7, or polishing failed) ADMM
continues from where it stopped with the tolerance ×0.01, at most twice.

A batch sets OSQP up (and factorises its KKT matrix) once per (decoder, directions, λ), then per
input changes l with `update(l=...)`. With `warm=True` each input starts from the previous
input's optimum; the default starts from zero, which took fewer iterations in our measurements
(inputs whose r differ by tens of percent change the active set; see the README).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit import ProblemKind
from steerkit_direct._base import DirectSolver, Outcome, RawResult, _Model
from steerkit_direct._model import ConicData

__all__ = ["OSQPSolver"]

#: OSQP's settings unless overridden (eps_abs/eps_rel are the first pass's tolerance).
DEFAULTS: Mapping[str, Any] = {
    "eps_abs": 1e-5,
    "eps_rel": 1e-5,
    "max_iter": 20_000,
    "polishing": True,
    "polish_refine_iter": 10,
    "warm_starting": True,
}
#: Each refining pass multiplies the tolerance by this, at most REFINE_PASSES times.
REFINE_FACTOR = 1e-2
REFINE_PASSES = 2

_OUTCOMES: Mapping[str, Outcome] = {
    "OSQP_SOLVED": Outcome.OPTIMAL,
    "OSQP_SOLVED_INACCURATE": Outcome.INACCURATE,
    "OSQP_PRIMAL_INFEASIBLE": Outcome.INFEASIBLE,
    "OSQP_PRIMAL_INFEASIBLE_INACCURATE": Outcome.INFEASIBLE_INACCURATE,
    "OSQP_MAX_ITER_REACHED": Outcome.LIMIT,
    "OSQP_TIME_LIMIT_REACHED": Outcome.LIMIT,
}


@attrs.define(eq=False)
class _Handle:
    solver: Any  # osqp.OSQP
    lower: np.ndarray[Any, Any]  # l; the linear rows are lower[rows]
    rows: slice
    warm: bool  # start each new input from the previous optimum
    tolerances: tuple[float, ...]  # the first pass's, then each refining pass's
    level: int = 0  # index into tolerances of the current setting


def _osqp() -> Any:
    import osqp

    return osqp


class OSQPSolver(DirectSolver):
    """QP only, any k, through OSQP directly: one set-up and factorisation per batch structure,
    polished, refined until the KKT certificate is tight.

    Options: verbose, max_iter (per pass; default 20,000), tol (the first pass's eps_abs and
    eps_rel; default 1e-5), time_limit (per pass), form, warm, refine, settings (OSQP settings by
    name, e.g. {"rho": 0.1}).
    """

    name = "osqp"
    description = "OSQP called directly (ADMM, polished, KKT-checked): QP only, any k"
    kinds = frozenset({ProblemKind.QP})
    priority = 30
    warm_start = True
    requires = ("osqp", "scipy")
    install = "steerkit-direct"
    gram_ratio = 3.0
    extra_options: ClassVar[Mapping[str, str]] = {
        "warm": "bool: start each input of a batch from the previous optimum (default False)",
        "refine": "bool: tighten tol ×0.01 (twice at most) while the polished point is not "
        "certified optimal (default True)",
    }

    def _settings(self, options: Mapping[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = dict(DEFAULTS)
        settings["verbose"] = bool(options.get("verbose", False))
        if options.get("max_iter") is not None:
            settings["max_iter"] = int(options["max_iter"])
        if options.get("tol") is not None:
            settings.update(eps_abs=float(options["tol"]), eps_rel=float(options["tol"]))
        if options.get("time_limit") is not None:
            settings["time_limit"] = float(options["time_limit"])
        settings.update(options.get("settings") or {})
        known = _osqp().OSQP().ext.OSQPSettings()
        unknown = sorted(key for key in settings if not hasattr(known, key))
        if unknown:
            raise TypeError(
                f"{self.name}: unknown OSQP setting(s) {', '.join(map(repr, unknown))} in settings="
            )
        passes = REFINE_PASSES if options.get("refine", True) else 0
        first = float(settings["eps_abs"])
        settings["_tolerances"] = tuple(first * REFINE_FACTOR**i for i in range(passes + 1))
        settings["_warm"] = bool(options.get("warm", False))
        return settings

    def _setup(self, data: ConicData, scaled_rhs: np.ndarray[Any, Any], settings: Any) -> Any:
        import scipy.sparse as sp

        osqp = _osqp()
        n, aux = data.n, data.n_vars - data.n
        blocks = [] if data.eq is None else [data.eq]
        rows_eq = 0 if data.eq is None else data.eq.shape[0]
        bound = sp.hstack([sp.identity(n, format="csr"), sp.csr_matrix((n, aux))], format="csr")
        blocks += [bound, data.linear]
        a = sp.vstack(blocks, format="csr").tocsc()
        k = scaled_rhs.shape[0]
        lower = np.concatenate([np.zeros(rows_eq + n), scaled_rhs])
        upper = np.concatenate([np.zeros(rows_eq), np.full(n + k, np.inf)])
        solver = osqp.OSQP()
        own = {key: value for key, value in settings.items() if not key.startswith("_")}
        solver.setup(data.p_upper, data.q, a, lower, upper, **own)
        rows = slice(rows_eq + n, rows_eq + n + k)
        return _Handle(solver, lower, rows, settings["_warm"], settings["_tolerances"])

    def _update(self, model: _Model, scaled_rhs: np.ndarray[Any, Any]) -> bool:
        handle: _Handle = model.handle
        handle.lower[handle.rows] = scaled_rhs
        handle.solver.update(l=handle.lower)
        return True

    def _tighten(self, model: _Model) -> bool:
        handle: _Handle = model.handle
        if handle.level + 1 >= len(handle.tolerances):
            return False
        handle.level += 1
        tol = handle.tolerances[handle.level]
        handle.solver.update_settings(eps_abs=tol, eps_rel=tol)
        return True

    def _run(self, model: _Model, *, resume: bool) -> RawResult:
        handle: _Handle = model.handle
        warm = False
        if not resume:
            if handle.level:
                handle.level = 0
                tol = handle.tolerances[0]
                handle.solver.update_settings(eps_abs=tol, eps_rel=tol)
            warm = handle.warm and model.last_x is not None
            if warm:
                handle.solver.warm_start(x=model.last_x, y=model.last_dual)
            elif model.solves > 0:  # not from the previous input's iterate
                handle.solver.warm_start(
                    x=np.zeros(model.data.n_vars), y=np.zeros(handle.lower.shape[0])
                )
        result = handle.solver.solve(raise_error=False)  # statuses are mapped below
        info = result.info
        raw = _osqp().SolverStatus(int(info.status_val)).name
        outcome = _OUTCOMES.get(raw, Outcome.ERROR)
        polish = int(info.status_polish)
        details = {
            "osqp_status": str(info.status),
            "polish": polish,
            "tol": handle.tolerances[handle.level],
            "warm": warm,
            "backend_seconds": float(info.run_time),
            "rho_updates": int(info.rho_updates),
        }
        x = mu_hat = dual = None
        if outcome in (Outcome.OPTIMAL, Outcome.INACCURATE):
            x = np.asarray(result.x, dtype=np.float64)
            dual = np.asarray(result.y, dtype=np.float64)
            mu_hat = -dual[handle.rows]
            if polish != 1 and outcome is Outcome.OPTIMAL:
                # without a successful polish the ADMM point is only tol-accurate
                outcome, raw = Outcome.INACCURATE, f"{raw}, polish {polish}"
        return RawResult(outcome, raw, x, mu_hat, None, int(info.iter), details, dual)
