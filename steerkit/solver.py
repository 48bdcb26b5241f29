"""Stage 5: the Solver interface. One backend per class; capabilities are class attributes, and
availability is decided by `importlib.util.find_spec`, so listing solvers imports nothing heavy."""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Sequence
from typing import Any, ClassVar

from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.solution import Solution

__all__ = ["Solver"]


class Solver(abc.ABC):
    """A backend that solves SteeringProblems.

    Subclasses set the class attributes and implement `solve`. `solve` must return a Solution for
    every outcome (infeasible, iteration limit, backend failure), never raise for them, and never
    report a zero δ it did not prove optimal.
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
    #: Automatic selection tries higher priorities first.
    priority: ClassVar[int] = 0
    #: Top-level modules that must be importable; checked without importing them.
    requires: ClassVar[tuple[str, ...]] = ()
    #: What to `pip install` when a required module is missing.
    install: ClassVar[str] = ""
    #: One line for `steerkit solvers`.
    description: ClassVar[str] = ""

    @classmethod
    def missing(cls) -> str | None:
        """Why the backend is not installed (the first missing module), or None if it is."""
        for module in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"module {module!r} is not importable"
        return None

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

    @abc.abstractmethod
    def solve(self, problem: SteeringProblem, **options: Any) -> Solution:
        """Solve one problem. Unknown options raise a TypeError naming them."""

    def solve_batch(self, problems: Sequence[SteeringProblem], **options: Any) -> list[Solution]:
        """Solve many problems that share a decoder and directions (only r differs).

        The default solves them one by one; backends with `batch = True` reuse work.
        """
        return [self.solve(problem, **options) for problem in problems]
