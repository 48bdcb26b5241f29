"""Stage 4: a steering method. Heuristic baselines return vectors directly; convex methods build
SteeringProblems and hand them to `context.solve`, so methods never import a solver."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from steerkit.dataset import Splits
from steerkit.probe import Concept
from steerkit.problem import SteeringProblem
from steerkit.solution import Solution
from steerkit.source import Activations, ActivationSource
from steerkit.vector import SteeringVector

__all__ = ["MethodContext", "MethodResult", "SteeringMethod"]


@attrs.frozen(eq=False)
class MethodContext:
    """Everything a method may use: the inputs to steer, the concept, the decoder, a solve
    function bound to the chosen solver, and the data for baselines that need it."""

    inputs: Activations
    concept: Concept
    solve: Callable[[SteeringProblem], Solution]
    decoder: Any = None
    source: ActivationSource | None = None
    splits: Splits | None = None
    train: Activations | None = None
    seed: int = 0


@attrs.frozen(eq=False)
class MethodResult:
    """One vector per input, or a single shared vector; with the solutions behind them."""

    vectors: tuple[SteeringVector, ...] = attrs.field(converter=tuple)
    solutions: tuple[Solution, ...] = attrs.field(default=(), converter=tuple)
    shared: bool = False


class SteeringMethod(abc.ABC):
    """A rule that produces steering vectors for a batch of inputs."""

    name: ClassVar[str]

    @abc.abstractmethod
    def compute(self, context: MethodContext) -> MethodResult:
        """Steering vectors for `context.inputs`."""
