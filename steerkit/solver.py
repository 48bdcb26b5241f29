"""Stage 5: the Solver interface. One backend per class; capabilities are class attributes, and
availability is decided by `importlib.util.find_spec`, so listing solvers imports nothing heavy."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from steerkit._blas import one_thread_when_busy
from steerkit.answer import Answer, accept_many, all_excluded, check, prechecks, reweigh
from steerkit.executor import Requirements
from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.solution import Solution

__all__ = ["Solver"]

#: Answers of a group the core accepts together (`steerkit.answer.accept_many`): one gather
#: of their decoder rows and one screen per chunk; a chunk's dense δ are alive at once. 128
#: against 64: the certified 256 × 9 grid 734 → 712 ms at GPT-2 scale, 3.97 → 3.92 s at
#: Gemma-2-2B scale (fewer screens), its peak memory 0.67 → 0.74× and 1.34 → 1.44× the decoder.
ACCEPT_CHUNK = 128


class Solver(Requirements, abc.ABC):
    """A backend that solves SteeringProblems.

    Subclasses set the class attributes and implement either

    - the template (recommended): `solve_group(problems, settings)`, which solves problems that
      share decoder, directions, kind and λ/ε (only r differs) and yields one `Answer` per
      problem, plus `check_options(options)` if the backend takes options. The core's
      `solve_batch` does the rest: it validates the options, decides what needs no backend
      (`steerkit.answer.prechecks`: capability, r ≤ 0, unreachable directions, out-of-range
      numbers), groups the problems by structure, and turns every Answer into a Solution it
      checks itself (`steerkit.answer.accept`: δ cleaned, an optimal claim verified); or
    - `solve` (and optionally `solve_batch`) directly. It must return a Solution for every outcome
      (infeasible, iteration limit, backend failure), never raise for them, and never report a
      zero δ it did not prove optimal; the front door (`steerkit.solve`) still checks every
      optimal claim.
    """

    #: The name users select the backend by, e.g. "cvxpy-clarabel".
    name: ClassVar[str]
    #: Which problems it solves.
    kinds: ClassVar[frozenset[ProblemKind]] = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    #: The largest number of linear constraints k it handles (None: any).
    max_constraints: ClassVar[int | None] = None
    #: The largest number of SAE features d_sae it handles (None: any), e.g. a size-limited licence.
    max_features: ClassVar[int | None] = None
    #: Reuses work across the problems of a batch (factorisations, warm starts, a path).
    warm_start: ClassVar[bool] = False
    batch: ClassVar[bool] = False
    #: Hand r ≤ 0 problems to `solve_group` too, instead of the core's δ = 0 (a backend that
    #: reports more about them, e.g. the path solver's smallest feasible ε).
    answers_satisfied: ClassVar[bool] = False
    #: Automatic selection tries higher priorities first.
    priority: ClassVar[int] = 0

    @classmethod
    def is_installed(cls) -> bool:
        return cls.missing() is None

    @classmethod
    def cannot_solve(cls, problem: SteeringProblem) -> str | None:
        """Why this backend cannot solve `problem`, or None if it can."""
        if problem.kind not in cls.kinds:
            kinds = ", ".join(sorted(k.value.upper() for k in cls.kinds))
            return f"solves {kinds} only, not {problem.kind.value.upper()}"
        if cls.max_constraints is not None and problem.n_constraints > cls.max_constraints:
            return (
                f"handles at most {cls.max_constraints} linear constraint(s), "
                f"the problem has {problem.n_constraints}"
            )
        if cls.max_features is not None and problem.d_sae > cls.max_features:
            return f"handles at most {cls.max_features} features, the problem has {problem.d_sae}"
        return None

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        """The capability flags as plain values."""
        return {
            "kinds": sorted(k.value for k in cls.kinds),
            "max_constraints": cls.max_constraints,
            "max_features": cls.max_features,
            "warm_start": cls.warm_start,
            "batch": cls.batch,
            "priority": cls.priority,
        }

    # -- the template -------------------------------------------------------------------------

    def check_options(self, options: Mapping[str, Any]) -> Any:
        """The backend's settings from the user's options (handed to `solve_group`); an unknown
        option raises TypeError naming it. The default accepts none."""
        if options:
            unknown = ", ".join(repr(key) for key in sorted(options))
            raise TypeError(f"{self.name}: unknown option(s) {unknown}; it accepts none")
        return None

    def same_group(self, first: SteeringProblem, other: SteeringProblem) -> bool:
        """Whether `other` joins the group whose first problem is `first` (one `solve_group`
        call). Default: the same structure, only r differs (`SteeringProblem.same_structure`)."""
        return first.same_structure(other)

    @abc.abstractmethod
    def solve_group(
        self, problems: Sequence[SteeringProblem], settings: Any
    ) -> Iterable[Answer | Solution]:
        """Solve problems that share decoder, directions, kind and λ/ε (`same_group`); yield
        one Answer per problem, in order (a Solution made with `steerkit.answer.accept` is taken
        as it is). Raising fails the rest of the group with the exception as the message.

        A backend that implements `solve` itself instead need not implement this."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a backend written against `solve` (the interface before the template) stays concrete
        if "solve" in cls.__dict__ and getattr(cls.solve_group, "__isabstractmethod__", False):
            cls.solve_group = _by_solve  # type: ignore[method-assign]

    # -- the entry points -----------------------------------------------------------------------

    def solve(self, problem: SteeringProblem, **options: Any) -> Solution:
        """Solve one problem. Unknown options raise a TypeError naming them."""
        return self.solve_batch([problem], **options)[0]

    def solve_batch(self, problems: Sequence[SteeringProblem], **options: Any) -> list[Solution]:
        """Solve many problems; those sharing a decoder, directions and λ/ε (only r differs)
        share one set-up. A backend without `solve_group` solves them one by one with `solve`."""
        if any(problem.costs is not None for problem in problems):
            return self._solve_weighted(problems, options)
        if type(self).solve_group is _by_solve:
            return [self.solve(problem, **options) for problem in problems]
        settings = self.check_options(options)
        groups: list[list[int]] = []
        solutions = prechecks(problems, self, satisfied=not self.answers_satisfied)
        for i, problem in enumerate(problems):
            if solutions[i] is None:
                group = next((g for g in groups if self.same_group(problems[g[0]], problem)), None)
                if group is None:
                    groups.append([i])
                else:
                    group.append(i)
        for group in groups:
            for i, solution in zip(group, self._run_group([problems[i] for i in group], settings)):
                solutions[i] = solution
        return [solution for solution in solutions if solution is not None]

    def _solve_weighted(
        self, problems: Sequence[SteeringProblem], options: Mapping[str, Any]
    ) -> list[Solution]:
        """Cost-weighted problems through the backend's unweighted solve: each as the problem over
        the rows dᵢ / cᵢ of its finite-cost features, answers mapped back and checked again
        against the weighted problem (every backend serves costs, a third party's included)."""
        forms = [problem.unweighted() for problem in problems]
        inner = [form[0] for form in forms if form is not None]
        solved = iter(self.solve_batch(inner, **options)) if inner else iter(())
        solutions = []
        for problem, form in zip(problems, forms):
            if form is None:
                solutions.append(all_excluded(problem, self.name))
                continue
            solution = next(solved)
            if problem.costs is not None:
                solution = reweigh(problem, solution, form[1], form[2])
            solutions.append(solution)
        return solutions

    def _run_group(self, problems: Sequence[SteeringProblem], settings: Any) -> list[Solution]:
        """One Solution per problem of a group: the backend's answers, accepted by the core a
        chunk at a time (`accept_many` certifies a chunk's sparse answers together); an
        exception (or a missing answer) becomes an error Solution for the problems it leaves."""
        solutions: list[Solution] = []
        pending: list[tuple[SteeringProblem, Answer | Solution, float]] = []
        start = time.perf_counter()
        error: Exception | None = None
        try:
            for problem, answer in zip(problems, self.solve_group(problems, settings)):
                now = time.perf_counter()
                pending.append((problem, answer, now - start))
                if len(pending) == ACCEPT_CHUNK:
                    solutions += self._accepted(pending)
                    pending = []
                start = time.perf_counter()
        except Exception as e:  # a backend's exception is a Solution, never raised
            error = e
        if pending:
            try:
                solutions += self._accepted(pending)
            except Exception as e:
                error = error or e
        if error is not None and len(solutions) < len(problems):
            seconds = (time.perf_counter() - start) / max(1, len(problems) - len(solutions))
            message = f"{self.name} failed on {problems[len(solutions)].describe()}: {error!r}"
            solutions += [
                Solution.failure(solver=self.name, message=message, seconds=seconds)
                for _ in problems[len(solutions) :]
            ]
        if len(solutions) < len(problems):
            solutions += [
                Solution.failure(
                    solver=self.name, message=f"{self.name} gave no answer", seconds=0.0
                )
                for _ in problems[len(solutions) :]
            ]
        return solutions

    def _accepted(
        self, pending: Sequence[tuple[SteeringProblem, Answer | Solution, float]]
    ) -> list[Solution]:
        """The core's Solutions of a chunk of (problem, answer, seconds); its products with one
        BLAS thread while the machine is busy (`steerkit._blas`)."""
        with one_thread_when_busy():
            return self._accept_chunk(pending)

    def _accept_chunk(
        self, pending: Sequence[tuple[SteeringProblem, Answer | Solution, float]]
    ) -> list[Solution]:
        solutions: list[Solution | None] = [None] * len(pending)
        answers = []
        for j, (problem, answer, seconds) in enumerate(pending):
            if isinstance(answer, Solution):
                solutions[j] = check(problem, answer)
            else:
                own = seconds if answer.seconds is None else answer.seconds
                answers.append((j, problem, answer, own))
        if answers:
            accepted = accept_many(
                [problem for _, problem, _, _ in answers],
                [answer for _, _, answer, _ in answers],
                solver=self.name,
                seconds=[seconds for _, _, _, seconds in answers],
            )
            for (j, *_), solution in zip(answers, accepted):
                solutions[j] = solution
        return [s for s in solutions if s is not None]


def _by_solve(
    self: Solver, problems: Sequence[SteeringProblem], settings: Any
) -> Iterable[Answer | Solution]:
    """The `solve_group` of a backend that implements `solve` itself (never called: its
    `solve_batch` calls `solve` for each problem)."""
    raise NotImplementedError(f"{type(self).__name__} solves through solve")
