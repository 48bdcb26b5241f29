"""Stage 4: a steering method. Heuristic baselines return vectors directly; convex methods build
SteeringProblems and hand them to the solver registry (`steerkit.solve_batch`), so a method never
imports a solver backend."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from steerkit.dataset import Dataset, Splits
from steerkit.errors import ValidationError
from steerkit.probe import Concept
from steerkit.solution import Solution
from steerkit.source import Activations, ActivationSource
from steerkit.vector import SteeringVector

if TYPE_CHECKING:
    from steerkit.plugins import PluginHost

__all__ = ["MethodContext", "MethodResult", "SteeringMethod"]


@attrs.frozen(eq=False)
class MethodContext:
    """Everything a method may use.

    inputs: the activations to steer (n rows); concept: the target half-spaces W h ≥ t;
    decoder: the SAE decoder D (d_sae, d_model), for SAE-based methods; solver: a backend name,
    or None for automatic selection; solver_options: passed to every solve; source, splits and
    train: for baselines that need the model or the training data (train: activations of
    splits.train, in order); dataset: the task, for its contrastive pairs, persona prefixes and
    neutral queries; target_class: the class to steer towards; seed: for every random choice;
    host: the plugin host whose solver registry the method solves through (`solve_batch(...,
    host=context.host)`); None: the process-wide one.
    """

    inputs: Activations
    concept: Concept
    decoder: Any = None
    solver: str | None = None
    solver_options: Mapping[str, Any] = attrs.field(factory=dict)
    source: ActivationSource | None = None
    splits: Splits | None = None
    train: Activations | None = None
    dataset: Dataset | None = None
    target_class: int = 1
    seed: int = 0
    host: PluginHost | None = None


def _vectors(value: Iterable[SteeringVector | None]) -> tuple[SteeringVector | None, ...]:
    return tuple(value)


def _solutions(value: Iterable[Solution]) -> tuple[Solution, ...]:
    return tuple(value)


@attrs.frozen(eq=False)
class MethodResult:
    """Per-input vectors (one per input, None where the method failed and was told to keep
    going), or a single shared vector; with the solutions behind them, in input order."""

    vectors: tuple[SteeringVector | None, ...] = attrs.field(converter=_vectors)
    solutions: tuple[Solution, ...] = attrs.field(default=(), converter=_solutions)
    shared: bool = False
    info: Mapping[str, Any] = attrs.field(factory=dict)

    def per_input(self, n: int) -> tuple[SteeringVector | None, ...]:
        """The vector steering each of n inputs: the shared one repeated, or one per input
        (None where the method failed on that input). A count that does not fit is an error."""
        for i, vector in enumerate(self.vectors):
            if vector is not None and not isinstance(vector, SteeringVector):
                raise ValidationError(
                    "MethodResult",
                    f"vectors[{i}]",
                    "a steerkit.SteeringVector or None",
                    type(vector).__name__,
                )
        if self.shared:
            if len(self.vectors) != 1:
                raise ValidationError(
                    "MethodResult",
                    "vectors",
                    "one vector for a shared result",
                    f"{len(self.vectors)}",
                )
            return self.vectors * n
        if len(self.vectors) != n:
            raise ValidationError(
                "MethodResult",
                "vectors",
                f"{n} vectors, one per input (None where the method failed)",
                f"{len(self.vectors)}",
            )
        return self.vectors

    def solution_for(self, i: int) -> Solution | None:
        """The solution behind input i's vector: the shared solve for a shared result, input
        i's for a per-input one; None for a method without solutions."""
        if not self.solutions:
            return None
        if self.shared:
            return self.solutions[0]
        return self.solutions[i] if len(self.solutions) == len(self.vectors) else None

    def scaled(self, alpha: float) -> MethodResult:
        """The same result with every vector at scale α."""
        return attrs.evolve(
            self, vectors=tuple(None if v is None else v.scaled(alpha) for v in self.vectors)
        )

    def take(self, indices: Sequence[int]) -> MethodResult:
        """The result for the inputs `indices` (in that order); a shared result stays shared."""
        if self.shared:
            return self
        solutions = (
            tuple(self.solutions[i] for i in indices)
            if len(self.solutions) == len(self.vectors)
            else self.solutions
        )
        return attrs.evolve(
            self, vectors=tuple(self.vectors[i] for i in indices), solutions=solutions
        )


class SteeringMethod(abc.ABC):
    """A rule that produces steering vectors for a batch of inputs.

    `family` says what kind of method it is, for reports: "optimal" (a convex program over SAE
    features, solved with a certificate), "baseline" (a heuristic direction) or "control" (no
    intervention: the unsteered reference).
    """

    name: ClassVar[str]
    family: ClassVar[str] = "baseline"

    @abc.abstractmethod
    def compute(self, context: MethodContext) -> MethodResult:
        """Steering vectors for `context.inputs`."""
