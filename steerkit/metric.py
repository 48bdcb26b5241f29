"""Stage 8: evaluation metrics over a steered run."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from steerkit.dataset import Dataset, LabelledTexts
from steerkit.method import MethodResult
from steerkit.probe import Probe
from steerkit.source import Activations, ActivationSource

__all__ = ["EvalContext", "Metric"]


@attrs.frozen(eq=False)
class EvalContext:
    """What a metric may look at.

    inputs: the unsteered activations of `texts` (n rows); result: the method's vectors (one per
    input, or one shared) at the scale being evaluated; probe: the trained probe; source: the
    model, for metrics that run it (KL, perplexity); target_class: the class steered towards;
    dataset and train: the task and its training split (e.g. to fit a downstream classifier);
    prompts and generations: continuations of `prompts` generated under steering (prompt i steered
    by input i's vector, or by the shared one), filled by the runner when a metric's `requires()`
    asks for {"generations": True}; base_generations: the same prompts without steering.
    """

    inputs: Activations
    result: MethodResult
    probe: Probe | None = None
    source: ActivationSource | None = None
    target_class: int = 1
    texts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    dataset: Dataset | None = None
    train: LabelledTexts | None = None
    prompts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    generations: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    base_generations: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    seed: int = 0


class Metric(abc.ABC):
    """A named measurement; returns plain numbers so they land in the results table.

    compute returns {column name: values}: a sequence with one float per input (the results table
    has a row per input), or one float for the whole batch (repeated on every row). NaN marks a
    value that does not apply (e.g. L0 of a vector that has no SAE code); never 0 for "unknown".
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def compute(self, context: EvalContext) -> Mapping[str, Sequence[float] | float]:
        """{column name: per-input values (n,) or one value}."""

    def requires(self) -> Mapping[str, Any]:
        """What the metric needs beyond activations: {'source': True} to run the model,
        {'generations': True} for steered continuations in EvalContext.generations."""
        return {}
