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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit import Duals, ProblemKind, Solution, Solver, Status, SteeringProblem

__all__ = ["OPTIONS", "CvxpySolver"]

#: The options every CVXPY backend accepts; `solve(problem, **options)` rejects any other.
OPTIONS: Mapping[str, str] = {
    "verbose": "bool: print the backend's log (default False)",
    "max_iters": "int: the backend's iteration limit (default: the backend's own, see the class)",
    "tol": "float: the backend's convergence tolerances, all set to this value",
    "solver_options": "dict: passed through to cvxpy.Problem.solve, overriding everything else",
}

#: Negative entries of δ smaller in magnitude than this fraction of max |δ| are rounding: clipped.
CLIP_RELATIVE = 1e-7
#: A point the backend calls optimal (or optimal_inaccurate) is reported as optimal only if it
#: violates no constraint by more than this, relative to max(1, max |r|) (the conformance
#: suite's feasibility tolerance).
FEASIBILITY_RTOL = 1e-6


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

    # -- solving ------------------------------------------------------------------------------

    def solve(self, problem: SteeringProblem, **options: Any) -> Solution:
        """Solve one problem. Options: verbose, max_iters, tol, solver_options (a dict)."""
        verbose, settings = self._solver_options(options)
        start = time.perf_counter()
        if problem.already_satisfied:
            return self._satisfied(problem, start)
        refusal = self._refuse(problem, start)
        if refusal is not None:
            return refusal
        try:
            model = self._build(problem, problem.rhs)
        except Exception as e:  # cvxpy rejected the data (NaN, size): a failure, never a raise
            return self._failure(problem, start, f"building the CVXPY model failed: {e!r}")
        return self._solve_model(problem, model, verbose, settings, start, warm=False)

    def solve_batch(self, problems: Sequence[SteeringProblem], **options: Any) -> list[Solution]:
        """Solve problems that differ in r only: one model per structure, re-solved warm."""
        verbose, settings = self._solver_options(options)
        solutions: list[Solution | None] = [None] * len(problems)
        groups: list[list[int]] = []  # indices of problems that share a model
        for i, problem in enumerate(problems):
            start = time.perf_counter()
            if problem.already_satisfied:
                solutions[i] = self._satisfied(problem, start)
                continue
            solutions[i] = self._refuse(problem, start)
            if solutions[i] is not None:
                continue
            group = next((g for g in groups if problems[g[0]].same_structure(problem)), None)
            if group is None:
                groups.append([i])
            else:
                group.append(i)
        for group in groups:
            start = time.perf_counter()
            rhs_max = np.max([problems[i].rhs for i in group], axis=0)
            try:
                model = self._build(problems[group[0]], rhs_max)
            except Exception as e:
                for i in group:
                    solutions[i] = self._failure(
                        problems[i], start, f"building the CVXPY model failed: {e!r}"
                    )
                continue
            for i in group:
                warm = model.solves > 0
                solutions[i] = self._solve_model(problems[i], model, verbose, settings, start, warm)
                start = time.perf_counter()
        return [solution for solution in solutions if solution is not None]

    def _refuse(self, problem: SteeringProblem, start: float) -> Solution | None:
        """An error Solution when the backend knows up front that it cannot solve `problem`."""
        reason = self.cannot_solve(problem)
        if reason is None:
            return None
        return self._failure(problem, start, f"{self.name} {reason}")

    def _solve_model(
        self,
        problem: SteeringProblem,
        model: _Model,
        verbose: bool,
        settings: dict[str, Any],
        start: float,
        warm: bool,
    ) -> Solution:
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
            return self._on_error(problem, model, e, start)
        finally:
            model.solves += 1
        return self._result(problem, model, start)

    def _on_error(
        self, problem: SteeringProblem, model: _Model, error: BaseException, start: float
    ) -> Solution:
        """The Solution for a solve that raised (an error, unless a backend knows better)."""
        return self._failure(problem, start, self._explain_error(problem, error))

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

    def _result(self, problem: SteeringProblem, model: _Model, start: float) -> Solution:
        status = self._status(model)
        iterations, info = self._stats(model)
        if status in ("optimal", "optimal_inaccurate"):
            raw = model.y.value
            if raw is None:
                return self._failure(
                    problem, start, f"{self.cvxpy_solver} reported {status} but returned no δ"
                )
            delta, flags, notes = _clean(model.c * np.asarray(raw, dtype=np.float64))
            message = "; ".join(notes)
            violation = problem.violation(delta)
            allowed = FEASIBILITY_RTOL * max(1.0, float(np.abs(problem.rhs).max()))
            if violation > allowed:  # not optimal, whatever the backend says
                inaccurate = status == "optimal_inaccurate"
                return Solution.build(
                    problem,
                    None,
                    status=Status.ITERATION_LIMIT if inaccurate else Status.ERROR,
                    solver=self.name,
                    seconds=time.perf_counter() - start,
                    iterations=iterations,
                    message=(
                        f"{self.cvxpy_solver} "
                        f"{'stopped before converging' if inaccurate else 'reported optimal'}, "
                        f"but its point violates the constraints by {violation:.3g} "
                        f"(> {allowed:.1g}): the problem may be infeasible or badly scaled; "
                        f"tighten tol, raise max_iters, or use cvxpy-clarabel"
                    ),
                    flags={"inaccurate"},
                    info=info,
                )
            if status == "optimal_inaccurate":
                flags.add("inaccurate")
                message = "; ".join(
                    [f"{self.cvxpy_solver} reports the solution as inaccurate", *notes]
                )
            return Solution.build(
                problem,
                delta,
                status=Status.OPTIMAL,
                solver=self.name,
                seconds=time.perf_counter() - start,
                iterations=iterations,
                message=message,
                duals=_duals(model),
                flags=flags,
                info=info,
            )
        if status in ("infeasible", "infeasible_inaccurate", "infeasible_or_unbounded"):
            flags = {"inaccurate"} if status != "infeasible" else set()
            return Solution.build(
                problem,
                None,
                status=Status.INFEASIBLE,
                solver=self.name,
                seconds=time.perf_counter() - start,
                iterations=iterations,
                message=infeasible_message(problem),
                flags=flags,
                info=info,
            )
        if status == "user_limit":
            return self._limit(problem, start, iterations, info)
        # unbounded cannot happen (the objective is ≥ 0 on δ ≥ 0): a numerical failure
        return self._failure(
            problem, start, f"{self.cvxpy_solver} ended with status {status!r}", info
        )

    def _limit(
        self,
        problem: SteeringProblem,
        start: float,
        iterations: int | None,
        info: Mapping[str, Any] | None = None,
    ) -> Solution:
        """The Solution of a solve stopped by an iteration or time limit: no δ."""
        return Solution.build(
            problem,
            None,
            status=Status.ITERATION_LIMIT,
            solver=self.name,
            seconds=time.perf_counter() - start,
            iterations=iterations,
            message=(
                f"{self.cvxpy_solver} stopped at its iteration or time limit before "
                f"converging; raise max_iters (or tol) and solve again"
            ),
            info=info,
        )

    def _failure(
        self,
        problem: SteeringProblem,
        start: float,
        message: str,
        info: Mapping[str, Any] | None = None,
    ) -> Solution:
        seconds = time.perf_counter() - start
        return Solution.failure(solver=self.name, message=message, seconds=seconds, info=info)

    def _satisfied(self, problem: SteeringProblem, start: float) -> Solution:
        """r ≤ 0: δ = 0 is feasible and the objective is ≥ 0 on δ ≥ 0, so δ = 0 is optimal,
        certified by μ = 0, ν = 0 (reduced costs 1, gap 0). No solve needed."""
        return Solution.satisfied(
            problem,
            solver=self.name,
            seconds=time.perf_counter() - start,
            info={"cvxpy_solver": self.cvxpy_solver},
        )


def _clean(delta: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], set[str], list[str]]:
    """Clip negative entries of δ that are rounding (≥ −1e-7 · max |δ|) to 0; leave larger ones
    for the core's violation figure, and say so."""
    flags: set[str] = set()
    notes: list[str] = []
    top = float(np.abs(delta).max(initial=0.0))
    tiny = delta >= -CLIP_RELATIVE * top
    delta = np.where(tiny & (delta < 0), 0.0, delta)
    if not tiny.all():
        flags.add("negative_entries")
        notes.append(
            f"{int((~tiny).sum())} entries of δ are negative beyond rounding "
            f"(min {float(delta.min()):.3g})"
        )
    return delta, flags, notes


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


def infeasible_message(problem: SteeringProblem) -> str:
    """Why the problem has no solution, and the setting to change."""
    a, r = problem.constraint_matrix, problem.rhs
    # a constraint with r > 0 whose row has no positive entry can never be met by δ ≥ 0
    blocked = [i for i in range(problem.n_constraints) if r[i] > 0 and a[i].max() <= 0]
    if blocked:
        return (
            f"no δ ≥ 0 reaches the margin at any "
            f"{'ε' if problem.kind is ProblemKind.SOCP else 'λ'}: direction(s) {blocked} have "
            f"r > 0 but no decoder row with a positive component along them (max A = "
            f"{float(a[blocked].max()):.3g}); choose another concept direction or SAE"
        )
    if problem.kind is ProblemKind.SOCP:
        return (
            f"no δ ≥ 0 reaches the margin with ‖Dᵀδ‖ ≤ ε = {problem.eps:.6g}; increase ε "
            f"(or lower the margin r)"
        )
    return (
        "no δ ≥ 0 satisfies A δ ≥ r for every direction at once: the directions cannot be "
        "reached together by non-negative combinations of the decoder rows; lower the margin r "
        "or drop a direction"
    )
