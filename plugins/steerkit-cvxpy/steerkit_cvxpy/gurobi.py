"""`cvxpy-gurobi`: CVXPY with Gurobi (barrier) for QPs and SOCPs. Needs the `gurobi` extra.

The licence that ships with gurobipy is size-limited. Measured with gurobipy 13: at most 2000
linear constraints, and at most 2000 variables for a linear model but only **200 variables for
a model with quadratic terms**, which every steering QP and SOCP has. CVXPY swallows Gurobi's
"Model too large for size-limited license" error and raises a bare "Solver 'GUROBI' failed",
so this backend decides up front instead:

- `max_features` stays None, because with a full licence Gurobi solves any size, and a static
  cap would refuse those users;
- when the model CVXPY will build is over the limits, the licence is probed once per process
  (optimising a tiny model one variable over the limit; milliseconds) and, if it is the
  size-limited one, `cannot_solve` declines (automatic selection passes over Gurobi; an explicit
  `solver="cvxpy-gurobi"` raises SolverCapabilityError) and `solve` returns an error Solution;
  both messages give the model's size and the fix.

Gurobi's banner is silenced by starting its environment with OutputFlag = 0 (verbose=True
turns the log back on per model). CVXPY reports a Gurobi iteration limit as a failure or as
"infeasible_inaccurate"; the model's own status is read back to report iteration_limit instead.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from steerkit import Answer, ProblemKind, SteeringProblem
from steerkit_cvxpy.base import CvxpySolver, _limit, _Model

__all__ = [
    "LICENCE_CONSTRAINTS",
    "LICENCE_VARIABLES",
    "GurobiSolver",
    "licence_message",
    "model_size",
    "size_limited",
]

#: Variables allowed by gurobipy's bundled licence in a model with quadratic terms (LPs: 2000).
LICENCE_VARIABLES = 200
#: Linear constraints allowed by gurobipy's bundled licence.
LICENCE_CONSTRAINTS = 2000
#: Gurobi's error code for a model over a size-limited licence.
_TOO_LARGE = 10010
#: Gurobi's model statuses for a stop on a limit: iterations, nodes, time, solutions, work, memory.
_LIMITS = frozenset({7, 8, 9, 10, 16, 17})

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _env() -> Any:
    """One silent Gurobi environment per process (starting one checks out the licence)."""
    with _lock:
        if "env" not in _state:
            import gurobipy

            env = gurobipy.Env(empty=True)
            env.setParam("OutputFlag", 0)
            env.start()
            _state["env"] = env
        return _state["env"]


def size_limited() -> bool:
    """True when the licence gurobipy finds is size-limited; probed once, then cached."""
    env = _env()
    with _lock:
        if "limited" not in _state:
            import gurobipy

            model = gurobipy.Model(env=env)
            try:
                x = model.addMVar(LICENCE_VARIABLES + 1)
                model.setObjective(x[0] * x[0] + x.sum())
                model.optimize()
                limited = False
            except gurobipy.GurobiError as e:
                limited = e.errno == _TOO_LARGE or "size-limited" in str(e)
            finally:
                model.dispose()
            _state["limited"] = limited
        return bool(_state["limited"])


def model_size(problem: SteeringProblem) -> tuple[int, int]:
    """(variables, linear constraints) of the Gurobi model CVXPY builds from our formulation.

    δ ≥ 0 are variable bounds; u = D₀ᵀy adds d_model variables and rows; the SOCP's cone adds
    d_model + 2 auxiliary variables and rows (measured with CVXPY 1.9).
    """
    n, m, k = problem.d_sae, problem.d_model, problem.n_constraints
    if problem.kind is ProblemKind.QP:
        return n + m, m + k
    return n + 2 * m + 2, 2 * m + 2 + k


def over_licence(problem: SteeringProblem) -> bool:
    """True when the model is larger than the size-limited licence allows."""
    variables, constraints = model_size(problem)
    return variables > LICENCE_VARIABLES or constraints > LICENCE_CONSTRAINTS


def licence_message(problem: SteeringProblem) -> str:
    """Why the size-limited licence cannot solve `problem`, and the fix."""
    variables, constraints = model_size(problem)
    return (
        f"needs a full Gurobi licence: gurobipy's bundled size-limited license allows at most "
        f"{LICENCE_VARIABLES} variables in a model with quadratic terms (2000 in an LP) and "
        f"{LICENCE_CONSTRAINTS} linear constraints, and this model has {variables} variables "
        f"and {constraints} constraints ({problem.describe()}); point GRB_LICENSE_FILE at a "
        f"full licence's gurobi.lic, or choose another solver (e.g. solver='cvxpy-clarabel')"
    )


def _gurobi_status(model: _Model) -> int | None:
    """The status of the last Gurobi model CVXPY built for `model` (CVXPY caches it)."""
    cached = getattr(model.problem, "_solver_cache", {}).get("GUROBI")
    try:
        return int(cached.Status) if cached is not None else None
    except Exception:  # a disposed or half-built model
        return None


class GurobiSolver(CvxpySolver):
    """QP and SOCP through CVXPY + Gurobi. max_iters → BarIterLimit; tol → BarConvTol,
    BarQCPConvTol, FeasibilityTol and OptimalityTol."""

    name = "cvxpy-gurobi"
    description = "CVXPY + Gurobi (barrier): QP and SOCP; the pip licence stops at 200 variables"
    kinds = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    priority = 0
    requires = ("cvxpy", "gurobipy")
    install = "steerkit-cvxpy[gurobi]"
    cvxpy_solver = "GUROBI"
    defaults: ClassVar[dict[str, Any]] = {
        "BarConvTol": 1e-9,
        "BarQCPConvTol": 1e-9,
        "FeasibilityTol": 1e-9,
        "OptimalityTol": 1e-9,
    }
    tol_keys = ("BarConvTol", "BarQCPConvTol", "FeasibilityTol", "OptimalityTol")
    max_iters_key = "BarIterLimit"

    @classmethod
    def cannot_solve(cls, problem: SteeringProblem) -> str | None:
        """Also declines a model over the size-limited licence, when that is the licence."""
        reason = super().cannot_solve(problem)
        if reason is not None or not over_licence(problem):
            return reason
        if cls.missing() is not None:
            return None  # not installed: select_solver and solve say so
        try:
            limited = size_limited()
        except Exception:  # no licence at all: solve reports Gurobi's own error
            return None
        return licence_message(problem) if limited else None

    def _prepare(self, settings: dict[str, Any]) -> dict[str, Any]:
        prepared = dict(settings)
        prepared.setdefault("env", _env())
        return prepared

    def _status(self, model: _Model) -> str:
        status = super()._status(model)
        if status == "infeasible_inaccurate" and _gurobi_status(model) in _LIMITS:
            return "user_limit"  # CVXPY's name for a limit with no solution found yet
        return status

    def _on_error(self, problem: SteeringProblem, model: _Model, error: BaseException) -> Answer:
        if _gurobi_status(model) in _LIMITS:
            return _limit(self.cvxpy_solver, None, None)
        return super()._on_error(problem, model, error)

    def _explain_error(self, problem: SteeringProblem, error: BaseException) -> str:
        text = str(error)
        try:
            limited = size_limited()
        except Exception as e:
            return f"Gurobi could not start (is a licence available?): {e}; {text}"
        if limited and ("size-limited" in text or over_licence(problem)):
            return f"{self.name} {licence_message(problem)}"
        message = super()._explain_error(problem, error)
        if limited:
            message += (
                f" (gurobipy's size-limited license is in use: a model with quadratic terms "
                f"and over {LICENCE_VARIABLES} variables fails this way)"
            )
        return message
