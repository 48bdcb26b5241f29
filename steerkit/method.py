"""Stage 4: a steering method. Heuristic baselines return vectors directly; convex methods build
SteeringProblems and hand them to the solver registry (`steerkit.solve_batch`), so a method never
imports a solver backend."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from steerkit.dataset import Dataset, Splits
from steerkit.probe import Concept
from steerkit.solution import Solution
from steerkit.source import Activations, ActivationSource
from steerkit.vector import SteeringVector

__all__ = ["MethodContext", "MethodResult", "SteeringMethod"]


@attrs.frozen(eq=False)
class MethodContext:
    """Everything a method may use.

    inputs: the activations to steer (n rows); concept: the target half-spaces W h ≥ t;
    decoder: the SAE decoder D (d_sae, d_model), for SAE-based methods; solver: a backend name,
    or None for automatic selection; solver_options: passed to every solve; source, splits and
    train: for baselines that need the model or the training data (train: activations of
    splits.train, in order); dataset: the task, for its contrastive pairs, persona prefixes and
    neutral queries; target_class: the class to steer towards; seed: for every random choice.
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


class SteeringMethod(abc.ABC):
    """A rule that produces steering vectors for a batch of inputs."""

    name: ClassVar[str]

    @abc.abstractmethod
    def compute(self, context: MethodContext) -> MethodResult:
        """Steering vectors for `context.inputs`."""
