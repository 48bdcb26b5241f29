"""Contrastive activation addition: the mean difference of activations between what the target
class is and what it is not — over the labelled training split (`caa_mean_diff`), over the
dataset's contrastive prompt pairs (`caa_contrastive`), or over neutral queries read after a
positive and a negative persona prefix (`caa_repe`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from steerkit import ActivationSource, Dataset, MethodContext, SteerkitError
from steerkit.checks import string
from steerkit_baselines._common import (
    Direction,
    DirectionBaseline,
    Vector,
    binary_sign,
    d_model,
    target_indicator,
    training_data,
)

__all__ = ["CAAContrastive", "CAAMeanDiff", "CAARepE"]


class CAAMeanDiff(DirectionBaseline):
    """mean(h | target class) − mean(h | other classes) over the training activations
    (`context.train`, labels `context.splits.train.labels`), scaled by `normalize`."""

    name = "caa_mean_diff"

    def direction(self, context: MethodContext) -> Direction:
        train, labels = training_data(self.name, context)
        target = target_indicator(self.name, labels, context.target_class).astype(bool)
        hidden = np.asarray(train.hidden, dtype=np.float64)
        raw = hidden[target].mean(axis=0) - hidden[~target].mean(axis=0)
        return Direction(raw, {"n_target": int(target.sum()), "n_other": int((~target).sum())})


def _source(owner: str, context: MethodContext) -> ActivationSource:
    if context.source is None:
        raise SteerkitError(
            f"method {owner!r} reads activations of the dataset's prompts and needs the model: "
            "pass MethodContext(source=...) (the activation source the inputs came from)"
        )
    return context.source


def _dataset(owner: str, context: MethodContext) -> Dataset:
    if context.dataset is None:
        raise SteerkitError(
            f"method {owner!r} needs the dataset's prompts: pass MethodContext(dataset=...) "
            "(the Dataset the splits came from)"
        )
    return context.dataset


def _prompts(owner: str, dataset: Dataset, what: str) -> Any:
    try:
        return getattr(dataset, what)()
    except NotImplementedError as e:
        raise SteerkitError(
            f"method {owner!r} needs {what.replace('_', ' ')}, and dataset "
            f"{getattr(dataset, 'name', type(dataset).__name__)!r} provides none ({e}); "
            "choose a dataset that implements Dataset." + what + "()"
        ) from e


def _difference(
    owner: str,
    context: MethodContext,
    negatives: Sequence[str],
    positives: Sequence[str],
) -> Vector:
    """mean over i of act(positives[i]) − act(negatives[i]), from one call to the source."""
    source = _source(owner, context)
    hidden = np.asarray(source.activations([*negatives, *positives]).hidden, dtype=np.float64)
    if hidden.shape[1] != d_model(context):
        raise SteerkitError(
            f"method {owner!r}: the source gives d_model {hidden.shape[1]} but the inputs have "
            f"{d_model(context)}; pass the source the inputs came from"
        )
    n = len(negatives)
    result: Vector = (hidden[n:] - hidden[:n]).mean(axis=0)
    return result


class CAAContrastive(DirectionBaseline):
    """mean over the dataset's contrastive pairs of act(positive) − act(negative), times −1 when
    steering towards class 0 (pairs are (class 0, class 1)); scaled by `normalize`."""

    name = "caa_contrastive"

    def direction(self, context: MethodContext) -> Direction:
        sign = binary_sign(self.name, context.target_class)
        pairs = list(_prompts(self.name, _dataset(self.name, context), "contrastive_pairs"))
        if not pairs:
            raise SteerkitError(f"method {self.name!r}: the dataset's contrastive_pairs() is empty")
        bad = [
            i for i, p in enumerate(pairs) if len(p) != 2 or not all(isinstance(s, str) for s in p)
        ]
        if bad:
            raise SteerkitError(
                f"method {self.name!r}: contrastive_pairs() must give (negative, positive) "
                f"pairs of strings; entry {bad[0]} is {pairs[bad[0]]!r}"
            )
        raw = sign * _difference(self.name, context, [p[0] for p in pairs], [p[1] for p in pairs])
        return Direction(raw, {"n_pairs": len(pairs), "target_class": int(context.target_class)})


class CAARepE(DirectionBaseline):
    """RepE persona steering: mean over the dataset's neutral queries q of
    act(positive prefix + separator + q) − act(negative prefix + separator + q), times −1 when
    steering towards class 0 (prefixes are (class 0, class 1)); scaled by `normalize`.

    separator: what joins a persona prefix and a query (a space by default).
    """

    name = "caa_repe"

    def __init__(self, *, separator: str = " ", normalize: str = "margin") -> None:
        super().__init__(normalize=normalize)
        self.separator = string(self.name, "separator", separator)

    def params(self) -> dict[str, Any]:
        return {"separator": self.separator, **super().params()}

    def direction(self, context: MethodContext) -> Direction:
        sign = binary_sign(self.name, context.target_class)
        dataset = _dataset(self.name, context)
        prefixes = _prompts(self.name, dataset, "persona_prefixes")
        if len(prefixes) != 2 or not all(isinstance(p, str) for p in prefixes):
            raise SteerkitError(
                f"method {self.name!r}: persona_prefixes() must give (negative, positive) "
                f"strings, gave {prefixes!r}"
            )
        queries = list(_prompts(self.name, dataset, "neutral_queries"))
        if not queries or not all(isinstance(q, str) for q in queries):
            raise SteerkitError(
                f"method {self.name!r}: neutral_queries() must give at least one string, "
                f"gave {queries!r}"
            )
        negative, positive = prefixes
        raw = sign * _difference(
            self.name,
            context,
            [negative + self.separator + q for q in queries],
            [positive + self.separator + q for q in queries],
        )
        return Direction(
            raw, {"n_queries": len(queries), "target_class": int(context.target_class)}
        )
