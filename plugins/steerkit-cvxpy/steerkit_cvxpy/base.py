"""The shared machinery of the CVXPY backends: one model, built once per (decoder, directions, λ/ε)
with the right-hand side r as a `cp.Parameter`, solved by whichever CVXPY solver a subclass names.

Model, over δ (d_sae,) ≥ 0 and an auxiliary u (d_model,), with D = s D₀ (s the decoder's RMS row
norm), aᵢ = ‖Aᵢ‖ and δ = c y (c a typical size of δ):

    qp:   min (c/γ) 1ᵀy + (λ s² c²/2γ)‖u‖²   s.t.  u = D₀ᵀy,  (Aᵢ/aᵢ) y ≥ rᵢ/(c aᵢ)
    socp: min 1ᵀy                          s.t.  u = D₀ᵀy,  (Aᵢ/aᵢ) y ≥ rᵢ/(c aᵢ),
                                                  ‖u‖ ≤ ε/(s c)

which is the steering problem divided by γ (qp) or c (socp); δ = c y, μᵢ = μ̂ᵢ γ/(c aᵢ) and
ν = ν̂ γ/(s c) undo the scaling. The auxiliary u keeps the model at d_sae · d_model non-zeros
(the Gram form δᵀ(DDᵀ)δ is d_sae² dense, and CVXPY checks it for PSD-ness by an
eigendecomposition).

With `normalise = True` (Clarabel, ECOS, OSQP, Gurobi), c = maxᵢ rᵢ / maxⱼ Aᵢⱼ (the δ that meets
the hardest margin with the single best feature) and γ = max(c, λ s² c²), so y, the rows and the
larger objective coefficient are all of order 1 whatever the decoder's scale. Without it, ECOS
stops "inaccurate" (3e-6 off) on QPs with a decoder scaled by 1e3, and OSQP hits its iteration
limit more often. SCS keeps the plain model (s = c = γ = aᵢ = 1): with its tight tolerances it
is accurate there, and it stalls on a normalised QP whose linear term is 1e-8 of the objective.

cvxpy is imported inside the methods only: importing this module (and the plugin) stays light, and
availability is decided by `find_spec` on the class's `requires`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit import Answer, Duals, Outcome, ProblemKind, Solution, Solver, SteeringProblem
from steerkit.answer import accept, clean, infeasible_message

__all__ = ["ADVICE", "OPTIONS", "CvxpySolver", "clean", "infeasible_message"]

#: The options every CVXPY backend accepts; `solve(problem, **options)` rejects any other.
OPTIONS: Mapping[str, str] = {
    "verbose": "bool: print the backend's log (default False)",
    "max_iters": "int: the backend's iteration limit (default: the backend's own, see the class)",
    "tol": "float: the backend's convergence tolerances, all set to this value",
    "solver_options": "dict: passed through to cvxpy.Problem.solve, overriding everything else",
}


@attrs.define(eq=False)
class _Model:
    """A built CVXPY problem, the handles a solve needs back, and the scaling to undo."""

    problem: Any  # cvxpy.Problem
    y: Any  # cvxpy.Variable (d_sae,): δ = c y
    rhs: Any  # cvxpy.Parameter (k,): r / (c a)
    linear: Any  # (A/a) y ≥ r/(c a); its dual μ̂ gives μ = μ̂ γ / (c a)
    norm: Any | None  # ‖u‖ ≤ ε/(s c), SOCP only; its dual ν̂ gives ν = ν̂ γ / (s c)
    s: float
    rows: np.ndarray[Any, Any]  # a (k,)
    c: float
    gamma: float
    setup_seconds: float
    solves: int = 0


class CvxpySolver(Solver):
    """Base of the CVXPY backends. Subclasses name the CVXPY solver and its option keys.

    Options (all backends): verbose, max_iters, tol, solver_options (see `OPTIONS`).
    """

    #: CVXPY's name of the solver, e.g. "CLARABEL".
    cvxpy_solver: ClassVar[str]
    #: Options passed to CVXPY by default (the backend's own key names).
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: The backend's keys that `tol` sets, and the key `max_iters` sets.
    tol_keys: ClassVar[tuple[str, ...]] = ()
    max_iters_key: ClassVar[str] = ""
    #: Rescale the model so that its data and solution are of order 1 (see the module's doc).
    normalise: ClassVar[bool] = True
    #: Reuse the previous solution on a re-solve of the same model (`solve_batch`).
    warm_start = True
    batch = True

    # -- options ------------------------------------------------------------------------------

    def _solver_options(self, options: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """(verbose, keyword arguments for the CVXPY solve); unknown options raise TypeError."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(
                f"{self.name}: unknown option(s) {', '.join(repr(u) for u in unknown)}; "
                f"accepted: {', '.join(OPTIONS)} (backend-specific settings go in "
                f"solver_options={{...}})"
            )
        settings = dict(self.defaults)
        if options.get("tol") is not None:
            tol = float(options["tol"])
            if not (math.isfinite(tol) and tol > 0):
                raise ValueError(f"{self.name}: tol must be a positive number, received {tol!r}")
            settings.update(dict.fromkeys(self.tol_keys, tol))
        if options.get("max_iters") is not None:
            settings[self.max_iters_key] = int(options["max_iters"])
        extra = options.get("solver_options") or {}
        if not isinstance(extra, Mapping):
            raise TypeError(
                f"{self.name}: solver_options must be a dict, received {type(extra).__name__}"
            )
        settings.update(extra)
        return bool(options.get("verbose", False)), settings

    def _prepare(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Last-moment additions to the CVXPY keyword arguments (a fresh dict on every solve)."""
        return dict(settings)

    # -- model --------------------------------------------------------------------------------

    def _build(self, problem: SteeringProblem, rhs_max: np.ndarray[Any, Any]) -> _Model:
        """The CVXPY model of `problem`, with r a Parameter so re-solves skip canonicalisation.

        rhs_max (k,): the largest r of the problems the model will solve, to choose c from.
        """
        cp = _cvxpy()
        start = time.perf_counter()
        decoder_t = np.ascontiguousarray(problem.decoder.T, dtype=np.float64)  # (d_model, d_sae)
        a = problem.constraint_matrix
        s, c, rows = 1.0, 1.0, np.ones(problem.n_constraints)
        if self.normalise:
            s = _positive(float(np.sqrt(np.einsum("ij,ij->", decoder_t, decoder_t) / a.shape[1])))
            rows = np.linalg.norm(a, axis=1)
            rows = np.where(np.isfinite(rows) & (rows > 0), rows, 1.0)
            # the size of δ that meets the hardest margin with the single best feature
            best = a.max(axis=1)
            c = _positive(float(np.max(rhs_max / np.where(best > 0, best, rows))))
            decoder_t = decoder_t / s
        # nonneg as an attribute, not a constraint: backends with variable bounds (Gurobi) get a
        # bound instead of d_sae extra rows
        y = cp.Variable(problem.d_sae, nonneg=True, name="y")
        u = cp.Variable(problem.d_model, name="u")
        rhs = cp.Parameter(problem.n_constraints, name="rhs")
        linear = (a / rows[:, None]) @ y >= rhs
        constraints = [u == decoder_t @ y, linear]
        norm = None
        if problem.kind is ProblemKind.QP:
            assert problem.lam is not None
            quadratic = problem.lam * s * s * c * c
            gamma = max(c, quadratic) if self.normalise else 1.0
            objective = (c / gamma) * cp.sum(y) + (0.5 * quadratic / gamma) * cp.sum_squares(u)
        else:
            assert problem.eps is not None
            gamma = c
            norm = cp.norm(u, 2) <= problem.eps / (s * c)
            constraints.append(norm)
            objective = cp.sum(y)
        model = cp.Problem(cp.Minimize(objective), constraints)
        return _Model(model, y, rhs, linear, norm, s, rows, c, gamma, time.perf_counter() - start)

    # -- solving (the core's template: steerkit.Solver.solve_batch) ---------------------------

    def check_options(self, options: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """(verbose, keyword arguments for the CVXPY solve); unknown options raise TypeError."""
        return self._solver_options(options)

    def solve_group(
        self, problems: Sequence[SteeringProblem], settings: tuple[bool, dict[str, Any]]
    ) -> Iterator[Answer]:
        """One model for the group (r a Parameter, c chosen from the largest r), re-solved warm
        for each problem."""
        verbose, options = settings
        try:
            model = self._build(problems[0], np.max([p.rhs for p in problems], axis=0))
        except Exception as e:  # cvxpy rejected the data (NaN, size): a failure, never a raise
            for _ in problems:
                yield Answer(Outcome.ERROR, message=f"building the CVXPY model failed: {e!r}")
            return
        for problem in problems:
            yield self._solve_model(problem, model, verbose, options, warm=model.solves > 0)

    def _solve_model(
        self,
        problem: SteeringProblem,
        model: _Model,
        verbose: bool,
        settings: dict[str, Any],
        warm: bool,
    ) -> Answer:
        model.rhs.value = np.asarray(problem.rhs, dtype=np.float64) / (model.c * model.rows)
        try:
            with warnings.catch_warnings():
                # "Solution may be inaccurate": reported as a flag on the Solution instead
                warnings.simplefilter("ignore", UserWarning)
                model.problem.solve(
                    solver=self.cvxpy_solver,
                    warm_start=warm,
                    verbose=verbose,
                    **self._prepare(settings),
                )
        except Exception as e:  # cvxpy.SolverError or the backend's own: never raised out
            return self._on_error(problem, model, e)
        finally:
            model.solves += 1
        return self._answer(model)

    def _on_error(self, problem: SteeringProblem, model: _Model, error: BaseException) -> Answer:
        """The Answer for a solve that raised (an error, unless a backend knows better)."""
        return Answer(Outcome.ERROR, message=self._explain_error(problem, error))

    def _status(self, model: _Model) -> str:
        """CVXPY's status of the last solve (a backend may correct CVXPY's mapping)."""
        return str(model.problem.status)

    def _explain_error(self, problem: SteeringProblem, error: BaseException) -> str:
        """The message of an error Solution; backends add what they know (e.g. a licence)."""
        return f"{self.cvxpy_solver} via CVXPY failed on {problem.describe()}: {error}"

    # -- results ------------------------------------------------------------------------------

    def _stats(self, model: _Model) -> tuple[int | None, dict[str, Any]]:
        stats = model.problem.solver_stats
        iterations = getattr(stats, "num_iters", None)
        info: dict[str, Any] = {
            "cvxpy_status": model.problem.status,
            "cvxpy_solver": self.cvxpy_solver,
            "backend_seconds": getattr(stats, "solve_time", None),
            "compile_seconds": getattr(model.problem, "compilation_time", None),
            "setup_seconds": model.setup_seconds if model.solves <= 1 else 0.0,
            "warm": model.solves > 1,
        }
        return (int(iterations) if iterations is not None else None), info

    def _answer(self, model: _Model) -> Answer:
        """CVXPY's outcome of the last solve as an Answer (δ and multipliers unscaled)."""
        status = self._status(model)
        iterations, info = self._stats(model)
        label = f"{self.cvxpy_solver} {status}"
        if status in ("optimal", "optimal_inaccurate"):
            raw = model.y.value
            if raw is None:
                return Answer(
                    Outcome.ERROR,
                    iterations=iterations,
                    message=f"{self.cvxpy_solver} reported {status} but returned no δ",
                    info=info,
                )
            return Answer(
                Outcome.OPTIMAL,
                delta=model.c * np.asarray(raw, dtype=np.float64),
                duals=_duals(model),
                iterations=iterations,
                inaccurate=status == "optimal_inaccurate",
                message=label,
                advice=ADVICE,
                info=info,
            )
        if status in ("infeasible", "infeasible_inaccurate", "infeasible_or_unbounded"):
            return Answer(
                Outcome.INFEASIBLE,
                iterations=iterations,
                inaccurate=status != "infeasible",
                message=label,
                info=info,
            )
        if status == "user_limit":
            return _limit(self.cvxpy_solver, iterations, info)
        # unbounded cannot happen (the objective is ≥ 0 on δ ≥ 0): a numerical failure
        return Answer(
            Outcome.ERROR,
            iterations=iterations,
            message=f"{self.cvxpy_solver} ended with status {status!r}",
            info=info,
        )

    def _result(self, problem: SteeringProblem, model: _Model, start: float) -> Solution:
        """The core's Solution for the last solve of `model` (`steerkit.answer.accept`)."""
        seconds = time.perf_counter() - start
        return accept(problem, self._answer(model), solver=self.name, seconds=seconds)


#: What to change when a CVXPY backend's "optimal" point is refused by the core.
ADVICE = "tighten tol, raise max_iters, or use cvxpy-clarabel"


def _limit(cvxpy_solver: str, iterations: int | None, info: Mapping[str, Any] | None) -> Answer:
    """The Answer of a solve stopped by an iteration or time limit: no δ."""
    return Answer(
        Outcome.LIMIT,
        iterations=iterations,
        message=f"{cvxpy_solver} at its limit",
        advice="raise max_iters (or tol) and solve again",
        info=dict(info or {}),
    )


def _duals(model: _Model) -> Duals | None:
    """μ ≥ 0 (k,) for A δ ≥ r and ν ≥ 0 for ‖Dᵀδ‖ ≤ ε, undoing the model's scaling; None when
    the backend gave none."""
    raw = model.linear.dual_value
    if raw is None:
        return None
    mu_hat = np.maximum(np.asarray(raw, dtype=np.float64).reshape(-1), 0.0)
    mu = mu_hat * model.gamma / (model.c * model.rows)
    nu: float | None = None
    if model.norm is not None:
        value = model.norm.dual_value
        if value is None:
            return None
        nu_hat = max(0.0, float(np.asarray(value, dtype=np.float64).reshape(-1)[0]))
        nu = nu_hat * model.gamma / (model.s * model.c)
    return Duals(linear=mu, norm=nu)


def _cvxpy() -> Any:
    """cvxpy, imported on first use (its atoms are re-exported dynamically, hence Any)."""
    import cvxpy

    return cvxpy


def _positive(value: float) -> float:
    """value if it is a positive finite number, else 1 (no rescaling)."""
    return value if math.isfinite(value) and value > 0 else 1.0
