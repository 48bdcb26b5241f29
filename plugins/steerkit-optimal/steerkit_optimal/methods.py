"""The convex steering methods: per-input SOCP and QP, and one shared vector for a batch.

Each builds SteeringProblems from the concept (W h ≥ t) and hands them to the solver registry
(`steerkit.solve_batch`), so the best installed backend answers — the exact path solver for one
constraint, a general backend for k > 1. Inputs already past the margin are gated to δ = 0 without
a solve. A failed input raises by default (never a silent zero vector); `on_failure="keep"` keeps
going and returns its Solution with no vector.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

import steerkit
from steerkit import (
    InfeasibleError,
    MethodContext,
    MethodResult,
    ProblemKind,
    Solution,
    SolverError,
    Status,
    SteeringMethod,
    SteeringProblem,
    SteeringVector,
    ValidationError,
)
from steerkit.checks import choice, optional_integer, positive_scalar, string
from steerkit_optimal.costs import check_costs, check_exclude, resolve_costs
from steerkit_optimal.prefilter import prefilter_pool

__all__ = ["QPMethod", "SOCPMethod", "SharedMethod"]

#: A reduced cost below −this over the full dictionary means a pre-filtered optimum is not optimal.
PREFILTER_TOLERANCE = 1e-6
#: Relative slack under which a constraint counts as binding.
BINDING_TOLERANCE = 1e-6

_FAILURE_MODES = ("raise", "keep")


def _options(method: str, value: Any) -> dict[str, Any]:
    """The backend options: a mapping (a TOML table), or None for none."""
    if value is not None and not isinstance(value, Mapping):
        raise ValidationError(
            method, "solver_options", "a table of backend options (a mapping)", repr(value)
        )
    return dict(value or {})


def _decoder(context: MethodContext, method: str) -> Any:
    if context.decoder is None:
        raise ValidationError(
            method,
            "context.decoder",
            "the SAE decoder (the method steers through SAE features and needs the SAE decoder: "
            "pass MethodContext(decoder=...); an activation source with an SAE provides it)",
            "None",
        )
    return context.decoder


def _build(
    kind: ProblemKind,
    decoder: Any,
    directions: Any,
    rhs: Any,
    lam: float | None,
    eps: float | None,
    costs: Any = None,
) -> SteeringProblem:
    if kind is ProblemKind.QP:
        assert lam is not None
        return SteeringProblem.qp(
            decoder=decoder, directions=directions, rhs=rhs, lam=lam, costs=costs
        )
    assert eps is not None
    return SteeringProblem.socp(
        decoder=decoder, directions=directions, rhs=rhs, eps=eps, costs=costs
    )


def _weights(method: SteeringMethod, context: MethodContext, decoder: Any) -> Any:
    """The method's per-feature costs for this context (None: all ones)."""
    d_sae = int(np.shape(decoder)[0])
    return resolve_costs(method.name, method.costs, method.exclude, context, d_sae)


def already_satisfied(problem: SteeringProblem) -> Solution:
    """δ = 0 with its certificate (μ = 0: every reduced cost is 1): no solve needed."""
    return Solution.satisfied(problem, solver="none")


def _raise(method: str, where: str, solution: Solution, more: str = "") -> None:
    text = f"method {method!r}, {where}: {solution.message or solution.status.value}{more}"
    if solution.status is Status.INFEASIBLE:
        raise InfeasibleError(text)
    raise SolverError(text)


def _provenance(
    method: str, problem: SteeringProblem, solution: Solution, **extra: Any
) -> dict[str, Any]:
    support = solution.support()
    assert solution.delta is not None
    return {
        "method": method,
        "kind": problem.kind.value,
        "lam": problem.lam,
        "eps": problem.eps,
        "solver": solution.solver,
        "status": solution.status.value,
        "objective": solution.objective,
        "support": support.tolist(),
        "support_values": solution.delta[support].tolist(),
        "cost_weighted": problem.costs is not None,
        "flags": sorted(solution.flags),
        **extra,
    }


class _PerInputMethod(SteeringMethod):
    """One problem per input, solved as a batch (shared decoder, only r differs)."""

    family = "optimal"
    kind: ClassVar[ProblemKind]

    def __init__(
        self,
        *,
        lam: float | None = None,
        eps: float | None = None,
        solver: str | None = None,
        prefilter: int | None = None,
        on_failure: str = "raise",
        solver_options: Mapping[str, Any] | None = None,
        costs: Any = None,
        exclude: Any = None,
    ) -> None:
        self.costs = check_costs(self.name, costs)
        self.exclude = check_exclude(self.name, exclude)
        qp = self.kind is ProblemKind.QP
        self.lam = positive_scalar(self.name, "lam", lam) if qp else None
        self.eps = None if qp else positive_scalar(self.name, "eps", eps)
        self.solver = None if solver is None else string(self.name, "solver", solver)
        self.prefilter = optional_integer(
            self.name,
            "prefilter",
            prefilter,
            minimum=1,
            expected="a number of features ≥ 1, or None (the full dictionary)",
        )
        self.on_failure = choice(self.name, "on_failure", on_failure, _FAILURE_MODES)
        self.solver_options = _options(self.name, solver_options)

    def problems(self, context: MethodContext) -> list[SteeringProblem]:
        """One problem per input; they share the decoder and its constraint matrix."""
        rhs = context.concept.rhs(context.inputs.hidden)
        decoder = _decoder(context, self.name)
        base = _build(
            self.kind,
            decoder,
            context.concept.directions,
            rhs[0],
            self.lam,
            self.eps,
            _weights(self, context, decoder),
        )
        base.constraint_matrix  # computed once, shared by with_rhs  # noqa: B018
        return [base.with_rhs(r) for r in rhs]

    def compute(self, context: MethodContext) -> MethodResult:
        problems = self.problems(context)
        solutions: list[Solution | None] = [
            already_satisfied(p) if p.already_satisfied else None for p in problems
        ]
        todo = [i for i, s in enumerate(solutions) if s is None]
        solver = self.solver or context.solver
        options = {**context.solver_options, **self.solver_options}
        start = time.perf_counter()
        if self.prefilter is None:
            solved = steerkit.solve_batch(
                [problems[i] for i in todo], solver, host=context.host, **options
            )
        else:
            features = context.inputs.features
            solved = [
                self._prefiltered(
                    problems[i],
                    None if features is None else features[i],
                    solver,
                    options,
                    context.host,
                )
                for i in todo
            ]
        seconds = time.perf_counter() - start
        for i, solution in zip(todo, solved):
            solutions[i] = solution
        final = [s for s in solutions if s is not None]
        assert len(final) == len(problems)

        failures = [(i, s) for i, s in enumerate(final) if not s.ok]
        if failures and self.on_failure == "raise":
            index, first = failures[0]
            more = f" ({len(failures)} of {len(final)} inputs failed)" if len(failures) > 1 else ""
            _raise(self.name, f"input {index}", first, more)
        vectors = [
            None
            if not s.ok
            else SteeringVector(
                vector=p.steering_vector(s.delta),
                hook_point=context.inputs.hook_point,
                provenance=_provenance(self.name, p, s, input=i, prefilter=self.prefilter),
            )
            for i, (p, s) in enumerate(zip(problems, final))
        ]
        info = {
            "seconds": seconds,
            "solved": len(todo),
            "already_satisfied": len(problems) - len(todo),
            "failed": [i for i, _ in failures],
        }
        return MethodResult(vectors=vectors, solutions=final, shared=False, info=info)

    def _prefiltered(
        self,
        problem: SteeringProblem,
        features: Any,
        solver: str | None,
        options: dict[str, Any],
        host: steerkit.PluginHost | None,
    ) -> Solution:
        """Solve over the pre-filtered pool, then certify the answer over the full dictionary."""
        assert self.prefilter is not None
        pool = prefilter_pool(
            np.asarray(problem.decoder), problem.directions, self.prefilter, features
        )
        sub = _build(
            problem.kind,
            problem.decoder[pool],
            problem.directions,
            problem.rhs,
            problem.lam,
            problem.eps,
            None if problem.costs is None else problem.costs[pool],
        )
        answer = steerkit.solve(sub, solver, host=host, **options)
        info = {**answer.info, "prefilter_pool": int(pool.size)}
        if answer.delta is None:
            return Solution.build(
                problem,
                None,
                status=answer.status,
                solver=answer.solver,
                seconds=answer.seconds,
                iterations=answer.iterations,
                message=f"{answer.message} (over a pre-filtered pool of {pool.size} features; "
                "the full dictionary may do better: set prefilter=None)",
                flags=answer.flags | {"prefiltered"},
                info=info,
            )
        delta = np.zeros(problem.d_sae)
        delta[pool] = answer.delta
        lifted = Solution.build(
            problem,
            delta,
            status=answer.status,
            solver=answer.solver,
            seconds=answer.seconds,
            iterations=answer.iterations,
            message=answer.message,
            duals=answer.duals,
            flags=answer.flags | {"prefiltered"},
            info=info,
        )
        if answer.duals is None:
            note, flag = (
                (
                    "the backend gave no multipliers, so the pre-filtered optimum could not "
                    "be checked against the full dictionary"
                ),
                "prefilter_unverified",
            )
        elif lifted.dual_infeasibility > PREFILTER_TOLERANCE:
            note, flag = (
                (
                    f"the pre-filtered optimum is not optimal over the full dictionary "
                    f"(a feature outside the pool of {pool.size} has reduced cost "
                    f"−{lifted.dual_infeasibility:.3g}); set prefilter=None for the exact "
                    "optimum"
                ),
                "prefilter_suboptimal",
            )
        else:
            return lifted
        return Solution.build(
            problem,
            delta,
            status=answer.status,
            solver=answer.solver,
            seconds=answer.seconds,
            iterations=answer.iterations,
            message="; ".join(m for m in (answer.message, note) if m),
            duals=answer.duals,
            flags=lifted.flags | {flag},
            info=info,
        )


class SOCPMethod(_PerInputMethod):
    """min cᵀδ s.t. W(h + Dᵀδ) ≥ t, ‖Dᵀδ‖₂ ≤ ε, δ ≥ 0, for each input h (c: `costs`, all
    ones by default; see `steerkit_optimal.costs`)."""

    name = "socp"
    kind = ProblemKind.SOCP

    def __init__(self, *, eps: float, **kwargs: Any) -> None:
        super().__init__(eps=eps, **kwargs)


class QPMethod(_PerInputMethod):
    """min cᵀδ + (λ/2)‖Dᵀδ‖₂² s.t. W(h + Dᵀδ) ≥ t, δ ≥ 0, for each input h (c: `costs`, all
    ones by default; see `steerkit_optimal.costs`)."""

    name = "qp"
    kind = ProblemKind.QP

    def __init__(self, *, lam: float = 1.0, **kwargs: Any) -> None:
        super().__init__(lam=lam, **kwargs)


class SharedMethod(SteeringMethod):
    """One δ for the whole batch: every input's constraints hold at once.

    Each direction's constraint over the batch reduces to its largest right-hand side, so the
    robust problem has k constraints however many inputs there are; with one direction it is
    exactly the hardest input's problem. `info["binding_inputs"]` lists the inputs that bind.
    """

    name = "shared"
    family = "optimal"

    def __init__(
        self,
        *,
        kind: str = "qp",
        lam: float | None = None,
        eps: float | None = None,
        solver: str | None = None,
        on_failure: str = "raise",
        solver_options: Mapping[str, Any] | None = None,
        costs: Any = None,
        exclude: Any = None,
    ) -> None:
        self.costs = check_costs(self.name, costs)
        self.exclude = check_exclude(self.name, exclude)
        self.kind = ProblemKind(choice(self.name, "kind", kind, [k.value for k in ProblemKind]))
        if self.kind is ProblemKind.QP:
            self.lam: float | None = positive_scalar(self.name, "lam", 1.0 if lam is None else lam)
            self.eps: float | None = None
        else:
            self.lam, self.eps = None, positive_scalar(self.name, "eps", eps)
        self.solver = None if solver is None else string(self.name, "solver", solver)
        self.on_failure = choice(self.name, "on_failure", on_failure, _FAILURE_MODES)
        self.solver_options = _options(self.name, solver_options)

    def compute(self, context: MethodContext) -> MethodResult:
        rhs: npt.NDArray[np.float64] = context.concept.rhs(context.inputs.hidden)  # (n, k)
        worst = rhs.max(axis=0)
        decoder = _decoder(context, self.name)
        problem = _build(
            self.kind,
            decoder,
            context.concept.directions,
            worst,
            self.lam,
            self.eps,
            _weights(self, context, decoder),
        )
        if problem.already_satisfied:
            solution = already_satisfied(problem)
        else:
            options = {**context.solver_options, **self.solver_options}
            solver = self.solver or context.solver
            solution = steerkit.solve(problem, solver, host=context.host, **options)
        if not solution.ok and self.on_failure == "raise":
            _raise(self.name, f"the batch of {rhs.shape[0]} inputs", solution)

        binding_directions: list[int] = []
        binding_inputs: list[int] = []
        if solution.delta is not None:
            achieved = problem.constraint_matrix @ solution.delta
            slack_tol = BINDING_TOLERANCE * np.maximum(1.0, np.abs(worst))
            active = (worst > 0) & (achieved - worst <= slack_tol)
            binding_directions = np.flatnonzero(active).tolist()
            hits = (rhs >= worst - slack_tol) & active[None, :]
            binding_inputs = np.flatnonzero(hits.any(axis=1)).tolist()
        info = {
            "n_inputs": int(rhs.shape[0]),
            "worst_rhs": worst.tolist(),
            "binding_directions": binding_directions,
            "binding_inputs": binding_inputs,
        }
        vector = None
        if solution.ok:
            vector = SteeringVector(
                vector=problem.steering_vector(solution.delta),
                hook_point=context.inputs.hook_point,
                provenance=_provenance(
                    self.name, problem, solution, shared=True, binding_inputs=binding_inputs
                ),
            )
        return MethodResult(vectors=(vector,), solutions=(solution,), shared=True, info=info)
