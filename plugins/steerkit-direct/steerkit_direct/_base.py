"""What the direct backends share: options, batching by structure, the rescaled model, and the
mapping of a backend's outcome to a Solution.

A subclass implements three steps on a backend handle: `_setup` (build the solver object from the
model and a first right-hand side), `_update` (change the right-hand side of the linear rows only;
False when the backend does not allow it, and then the model is set up again), and `_run`.
"""

from __future__ import annotations

import abc
import enum
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit import Answer, ProblemKind, Solution, Solver, SteeringProblem
from steerkit import Outcome as CoreOutcome
from steerkit.answer import accept, allowed_violation, infeasible_message
from steerkit_direct._model import ConicData, Form, build, choose_form

__all__ = ["COMMON_OPTIONS", "DirectSolver", "Outcome", "RawResult", "infeasible_message"]

#: The options of every direct backend; a backend adds its own.
COMMON_OPTIONS: Mapping[str, str] = {
    "verbose": "bool: print the backend's log (default False)",
    "max_iter": "int: the backend's iteration limit",
    "tol": "float: every convergence tolerance of the backend, set to this value",
    "time_limit": "float: seconds per solve before the backend stops (iteration_limit)",
    "form": "'auto' (default), 'lifted' or 'gram': how ‖Dᵀδ‖ enters the model (see _model)",
    "settings": "dict: raw backend settings by the backend's own names, applied last",
}

#: An optimal answer is certified when its relative duality gap and its largest negative reduced
#: cost (relative to a feature's unit cost) are both at most this.
CERTIFIED_TOL = 1e-7


class Outcome(str, enum.Enum):
    """A backend's status, in the few classes steerkit distinguishes."""

    OPTIMAL = "optimal"
    INACCURATE = "inaccurate"  # almost solved / solved inaccurate
    INFEASIBLE = "infeasible"
    INFEASIBLE_INACCURATE = "infeasible_inaccurate"
    LIMIT = "limit"  # iteration or time limit
    ERROR = "error"


@attrs.frozen(eq=False)
class RawResult:
    """What one backend solve returned, in the scaled model's terms."""

    outcome: Outcome
    raw_status: str
    x: np.ndarray[Any, Any] | None
    mu_hat: np.ndarray[Any, Any] | None  # (k,) multipliers of the scaled linear rows, ≥ 0
    nu_hat: float | None  # multiplier of the scaled norm bound (SOCP)
    iterations: int | None
    info: dict[str, Any] = attrs.field(factory=dict)
    #: the backend's own dual vector, kept to warm-start the next solve (OSQP)
    dual: np.ndarray[Any, Any] | None = None


@attrs.define(eq=False)
class _Model:
    """A set-up backend and the model it solves; reused across a batch's problems."""

    data: ConicData
    handle: Any
    setup_seconds: float
    solves: int = 0
    last_x: np.ndarray[Any, Any] | None = None  # the last optimal (x, dual) for warm starts
    last_dual: np.ndarray[Any, Any] | None = None


class DirectSolver(Solver):
    """Base of the direct backends. Options: `options_doc()` (COMMON_OPTIONS + extra_options)."""

    #: Options this backend accepts beyond COMMON_OPTIONS.
    extra_options: ClassVar[Mapping[str, str]] = {}
    #: form="auto" picks the gram form when d_sae ≤ gram_ratio · d_model (measured crossover).
    gram_ratio: ClassVar[float] = 4.0
    batch = True

    def __init__(self) -> None:
        #: How many times a backend model was set up (factorisation structure built): a batch
        #: of problems sharing decoder, directions and λ/ε sets up once.
        self.setups = 0

    # -- backend steps ------------------------------------------------------------------------

    @abc.abstractmethod
    def _settings(self, options: Mapping[str, Any]) -> Any:
        """The backend's settings from the (validated) options."""

    @abc.abstractmethod
    def _setup(self, data: ConicData, scaled_rhs: np.ndarray[Any, Any], settings: Any) -> Any:
        """A backend solver object for `data` with the given scaled right-hand side."""

    @abc.abstractmethod
    def _update(self, model: _Model, scaled_rhs: np.ndarray[Any, Any]) -> bool:
        """Replace the right-hand side of the linear rows; False if the backend refuses."""

    @abc.abstractmethod
    def _run(self, model: _Model, *, resume: bool) -> RawResult:
        """Solve the model as it stands: a fresh solve (warm-started where the backend can), or
        with `resume`, continue the previous one after `_tighten`."""

    # -- options ------------------------------------------------------------------------------

    @classmethod
    def options_doc(cls) -> dict[str, str]:
        """Every accepted option and what it does."""
        return {**COMMON_OPTIONS, **cls.extra_options}

    def _validate(self, options: Mapping[str, Any]) -> tuple[str, Any]:
        """(form, backend settings); an unknown option raises TypeError naming it."""
        accepted = self.options_doc()
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(
                f"{self.name}: unknown option(s) {', '.join(repr(u) for u in unknown)}; "
                f"accepted: {', '.join(accepted)}"
            )
        for key in ("tol", "time_limit"):
            value = options.get(key)
            if value is not None and not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"{self.name}: {key} must be a positive number, got {value!r}")
        extra = options.get("settings") or {}
        if not isinstance(extra, Mapping):
            raise TypeError(f"{self.name}: settings must be a dict, got {type(extra).__name__}")
        form = str(options.get("form", "auto"))
        if form not in ("auto", *(f.value for f in Form)):
            raise ValueError(f"{self.name}: form must be 'auto', 'lifted' or 'gram', got {form!r}")
        return form, self._settings(options)

    # -- solving (the core's template: steerkit.Solver.solve_batch) ---------------------------

    def check_options(self, options: Mapping[str, Any]) -> tuple[str, Any]:
        """(form, backend settings); an unknown option raises TypeError naming it."""
        return self._validate(options)

    def solve_group(
        self, problems: Sequence[SteeringProblem], settings: tuple[str, Any]
    ) -> Iterator[Answer | Solution]:
        """One set-up (one model, one symbolic factorisation) for problems sharing decoder,
        directions, kind and λ/ε; each is re-solved with only r changed."""
        form_option, backend_settings = settings
        form = choose_form(form_option, problems[0], self.gram_ratio)
        rhs_max = np.max([problem.rhs for problem in problems], axis=0)
        model: _Model | None = None
        for problem in problems:
            start = time.perf_counter()
            try:
                if model is not None and not self._update(
                    model, model.data.scaled_rhs(problem.rhs)
                ):
                    model = None  # the backend refused the update: set up again
                if model is None:
                    model = self._new_model(problem, form, rhs_max, backend_settings)
                yield self._solve_model(problem, model, start, backend_settings)
            except Exception as e:  # a backend exception is a Solution, never raised
                yield Answer(CoreOutcome.ERROR, message=f"failed on {problem.describe()}: {e!r}")
                model = None

    def _solve_model(
        self, problem: SteeringProblem, model: _Model, start: float, settings: Any
    ) -> Solution:
        """Run the set-up model; while its answer is not certified and the backend can tighten
        its tolerance, continue from where it stopped."""
        setup = model.solves == 0
        raw = self._run(model, resume=False)
        iterations, passes = raw.iterations or 0, 1
        best: tuple[Solution, RawResult] | None = None
        while True:
            info = {
                "form": model.data.form.value,
                "setup": setup,
                "setup_seconds": model.setup_seconds if setup else 0.0,
                "passes": passes,
                **raw.info,
            }
            result = attrs.evolve(raw, iterations=iterations)
            solution = self._result(problem, model, result, start, info, settings)
            if solution.ok:
                best = (solution, raw)
            if not _needs_refining(solution) or not self._tighten(model):
                break
            raw = self._run(model, resume=True)
            iterations, passes = iterations + (raw.iterations or 0), passes + 1
        model.solves += 1
        if best is not None:  # a refining pass that failed does not discard an earlier optimum
            solution, raw = best
            model.last_x, model.last_dual = raw.x, raw.dual
        return solution

    def _tighten(self, model: _Model) -> bool:
        """Tighten the backend's tolerance for a resumed solve; False when it cannot."""
        return False

    def _new_model(
        self,
        problem: SteeringProblem,
        form: Form,
        rhs_max: np.ndarray[Any, Any],
        settings: Any,
    ) -> _Model:
        start = time.perf_counter()
        data = build(problem, form, rhs_max)
        handle = self._setup(data, data.scaled_rhs(problem.rhs), settings)
        self.setups += 1
        return _Model(data=data, handle=handle, setup_seconds=time.perf_counter() - start)

    # -- results ------------------------------------------------------------------------------

    def _result(
        self,
        problem: SteeringProblem,
        model: _Model,
        raw: RawResult,
        start: float,
        info: dict[str, Any],
        settings: Any,
    ) -> Solution:
        """The core's Solution (`steerkit.answer.accept`) for one backend run."""
        answer = self._answer(problem, model, raw, info, settings)
        return accept(problem, answer, solver=self.name, seconds=time.perf_counter() - start)

    def _answer(
        self,
        problem: SteeringProblem,
        model: _Model,
        raw: RawResult,
        info: dict[str, Any],
        settings: Any,
    ) -> Answer:
        outcome = raw.outcome
        common: dict[str, Any] = {
            "iterations": raw.iterations,
            "message": raw.raw_status,
            "info": info,
        }
        if outcome in (Outcome.OPTIMAL, Outcome.INACCURATE):
            if raw.x is None or raw.mu_hat is None:
                common["message"] = f"{raw.raw_status}: returned no solution"
                return Answer(CoreOutcome.ERROR, **common)
            return Answer(
                CoreOutcome.OPTIMAL,
                delta=model.data.delta(raw.x),
                duals=model.data.duals(raw.mu_hat, raw.nu_hat),
                inaccurate=outcome is Outcome.INACCURATE,
                advice="tighten tol or raise max_iter",
                **common,
            )
        if outcome in (Outcome.INFEASIBLE, Outcome.INFEASIBLE_INACCURATE):
            smallest = None
            if problem.kind is ProblemKind.SOCP:
                smallest = self._min_norm(problem, settings)
            info["smallest_eps"] = smallest
            return Answer(
                CoreOutcome.INFEASIBLE,
                inaccurate=outcome is Outcome.INFEASIBLE_INACCURATE,
                min_eps=smallest,
                **common,
            )
        if outcome is Outcome.LIMIT:
            return Answer(
                CoreOutcome.LIMIT,
                advice="raise max_iter or time_limit (or loosen tol) and solve again",
                **common,
            )
        common["message"] = f"{raw.raw_status}: the solve failed"
        return Answer(CoreOutcome.ERROR, **common)

    def _min_norm(self, problem: SteeringProblem, settings: Any) -> float | None:
        """min ‖Dᵀδ‖ over δ ≥ 0, A δ ≥ r, solved by this backend as a QP: the smallest ε for
        which the SOCP is feasible (inf if none is; None if the solve failed)."""
        try:
            data = build(
                problem, choose_form("auto", problem, self.gram_ratio), problem.rhs, min_norm=True
            )
            model = _Model(data, self._setup(data, data.scaled_rhs(problem.rhs), settings), 0.0)
            raw = self._run(model, resume=False)
        except Exception:  # only an explanation: its failure must not mask the first answer
            return None
        if raw.outcome in (Outcome.INFEASIBLE, Outcome.INFEASIBLE_INACCURATE):
            return math.inf
        if raw.outcome not in (Outcome.OPTIMAL, Outcome.INACCURATE) or raw.x is None:
            return None
        delta = np.maximum(data.delta(raw.x), 0.0)
        shortfall = float(np.max(problem.rhs - problem.constraint_matrix @ delta))  # margins only
        if shortfall > allowed_violation(problem):
            return None
        return float(np.linalg.norm(problem.steering_vector(delta)))


def _needs_refining(solution: Solution) -> bool:
    """An answer flagged inaccurate, or optimal without a tight KKT certificate."""
    if "inaccurate" in solution.flags:
        return True
    if not solution.ok:
        return False
    return not (solution.gap <= CERTIFIED_TOL and solution.dual_infeasibility <= CERTIFIED_TOL)
