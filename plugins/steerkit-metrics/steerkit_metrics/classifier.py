"""`classifier`: a downstream text classifier, trained on the task's training texts, reads the
generations. Steering that works moves the steered generations towards the target class."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from steerkit import (
    Column,
    EvalContext,
    Metric,
    Needs,
    UnknownPluginError,
    ValidationError,
)
from steerkit_metrics._context import (
    generation_rows,
    nan_column,
    per_input_vectors,
    training_split,
)
from steerkit_metrics.text_classifiers import (
    CLASSIFIERS,
    TextClassifier,
    fitted_classifier,
    held_out_accuracy,
)

__all__ = ["Classifier"]


class Classifier(Metric):
    """Columns: `classifier_target`, the classifier's P(target class) of the steered generation
    of prompt i; `classifier_base`, of the unsteered one; `classifier_accuracy` (one value), its
    accuracy on the task's held-out test split (NaN when the dataset is not given or cannot be
    loaded). Row i < len(prompts) belongs to prompt i; other rows, inputs without a vector and
    empty generations give NaN.

    model: a name in `steerkit_metrics.CLASSIFIERS` (default `tfidf-logistic`). It is fitted on
    `EvalContext.train` (or, without it, on `dataset.load(seed=seed).train`) with `seed`, once per
    process for the same texts and seed.
    """

    name = "classifier"

    def __init__(self, model: str = "tfidf-logistic") -> None:
        if model not in CLASSIFIERS:
            raise UnknownPluginError("text classifier", model, CLASSIFIERS)
        self.model = model

    def __repr__(self) -> str:
        return f"Classifier(model={self.model!r})"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "classifier_target",
                "clf target",
                better="higher",
                description="the text classifier's P(target) of the steered generation",
            ),
            Column(
                "classifier_base",
                "clf base",
                description="the text classifier's P(target) of the unsteered generation",
            ),
            Column(
                "classifier_accuracy",
                "clf accuracy",
                description="the text classifier's held-out accuracy",
                table=False,
            ),
        )

    def requires(self) -> Needs:
        return Needs(generations=True, text_classifier=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        m = generation_rows(context, self.name)
        vectors = per_input_vectors(context)
        train = training_split(context, self.name, "text classifier")
        classifier = fitted_classifier(self.model, train, context.seed)
        column = _target_column(classifier, context.target_class)
        out: dict[str, Any] = {
            "classifier_target": nan_column(len(vectors)),
            "classifier_base": nan_column(len(vectors)),
        }
        asked: list[tuple[str, int]] = []
        texts: list[str] = []
        sources = {
            "classifier_target": context.generations,
            "classifier_base": context.base_generations,
        }
        for name, generations in sources.items():
            for i, text in enumerate(generations):
                if i < m and vectors[i] is not None and text.strip():
                    asked.append((name, i))
                    texts.append(text)
        if texts:
            probabilities = np.asarray(classifier.predict_proba(texts), dtype=np.float64)
            for (name, i), p in zip(asked, probabilities[:, column]):
                out[name][i] = float(p)
        out["classifier_accuracy"] = (
            held_out_accuracy(self.model, train, context.dataset, context.seed)
            if context.dataset is not None
            else math.nan
        )
        return out


def _target_column(classifier: TextClassifier, target_class: int) -> int:
    classes = list(classifier.classes)
    if target_class not in classes:
        raise ValidationError(
            "EvalContext",
            "target_class",
            f"one of the classes the text classifier was trained on {classes}",
            repr(target_class),
        )
    return classes.index(target_class)
