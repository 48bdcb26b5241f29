"""Stage 8: evaluation metrics over a steered run."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from steerkit.method import MethodResult
from steerkit.probe import Probe
from steerkit.source import Activations, ActivationSource

__all__ = ["EvalContext", "Metric"]


@attrs.frozen(eq=False)
class EvalContext:
    """What a metric may look at: the inputs, the method's result, the probe and the source."""

    inputs: Activations
    result: MethodResult
    probe: Probe | None = None
    source: ActivationSource | None = None
    target_class: int = 1
    texts: tuple[str, ...] = ()
    seed: int = 0


class Metric(abc.ABC):
    """A named measurement; returns plain numbers so they land in the results table."""

    name: ClassVar[str]

    @abc.abstractmethod
    def compute(self, context: EvalContext) -> Mapping[str, float]:
        """{column name: value}."""

    def requires(self) -> Mapping[str, Any]:
        """What the metric needs beyond activations (e.g. {'source': True} for KL)."""
        return {}
