"""Lexicon sentiment judges of generated text: `vader` (vaderSentiment's compound score) and
`textblob` (TextBlob's polarity). Both packages ship their lexicon, so they judge offline, and
neither took part in the optimisation: a concept score independent of the steering probe.

A polarity p in [−1, 1] becomes a concept score toward the target class in [0, 1]:
(1 + p) / 2 when the target is the positive class, (1 − p) / 2 when it is not.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from steerkit import Column, EvalContext, Metric, Needs, SteerkitError
from steerkit.checks import integer
from steerkit_metrics._context import FloatVector, generations_to_score, nan_column

__all__ = ["LexiconSentiment", "TextBlobSentiment", "Vader", "concept_score"]


def concept_score(polarity: Any, *, towards_positive: bool) -> FloatVector:
    """Polarities in [−1, 1] as scores in [0, 1] of how far they are toward the target side."""
    p = np.clip(np.asarray(polarity, dtype=np.float64), -1.0, 1.0)
    score: FloatVector = (1.0 + p) / 2.0 if towards_positive else (1.0 - p) / 2.0
    return score


class LexiconSentiment(Metric):
    """A sentiment judge over generations. Columns `<name>`, the concept score of the steered
    generation of prompt i, and `<name>_base`, of the unsteered one; NaN for rows without a
    generation, inputs without a vector and blank generations.

    positive_class: the dataset's label of positive sentiment (steerkit-datasets: 1); the score
    is toward positive sentiment when the target class is this one, toward negative otherwise.
    """

    name: ClassVar[str]
    #: the package that provides the lexicon (named in the error when it is missing)
    package: ClassVar[str]
    what: ClassVar[str]

    def __init__(self, positive_class: int = 1) -> None:
        self.positive_class = integer(self.name, "positive_class", positive_class)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(positive_class={self.positive_class!r})"

    @abc.abstractmethod
    def polarity(self, texts: Sequence[str]) -> FloatVector:
        """(n,) polarity of each text in [−1, 1] (−1 most negative)."""

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                self.name,
                self.name,
                better="higher",
                format=".3f",
                description=f"{self.what} of the steered generation as a [0, 1] score toward "
                "the target sentiment",
                role="effect",
            ),
            Column(
                f"{self.name}_base",
                f"{self.name} base",
                format=".3f",
                description="the same score of the unsteered generation",
                table=False,
            ),
        )

    def requires(self) -> Needs:
        return Needs(generations=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        n = len(context.inputs)
        out = {self.name: nan_column(n), f"{self.name}_base": nan_column(n)}
        scored = generations_to_score(context, self.name)
        if not scored:
            return out
        towards_positive = context.target_class == self.positive_class
        scores = concept_score(
            self.polarity([text for _, _, text in scored]), towards_positive=towards_positive
        )
        for (which, i, _), score in zip(scored, scores):
            out[self.name if which == "steered" else f"{self.name}_base"][i] = float(score)
        return out


def _missing(package: str, module: str, metric: str) -> SteerkitError:
    return SteerkitError(
        f"the {metric!r} metric needs the {package!r} package (import {module!r} failed): "
        f"pip install {package}"
    )


class Vader(LexiconSentiment):
    """`vader`: VADER's compound score (vaderSentiment's SentimentIntensityAnalyzer
    `polarity_scores(text)["compound"]`, in [−1, 1]) of each generation."""

    name = "vader"
    package = "vaderSentiment"
    what = "VADER's compound sentiment"

    def __init__(self, positive_class: int = 1) -> None:
        super().__init__(positive_class)
        self._analyzer: Any = None

    def polarity(self, texts: Sequence[str]) -> FloatVector:
        if self._analyzer is None:
            try:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
            except ImportError as e:
                raise _missing(self.package, "vaderSentiment", self.name) from e
            self._analyzer = SentimentIntensityAnalyzer()
        return np.array(
            [self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64
        )


class TextBlobSentiment(LexiconSentiment):
    """`textblob`: TextBlob's polarity (`TextBlob(text).sentiment.polarity`, its pattern
    lexicon, in [−1, 1]) of each generation."""

    name = "textblob"
    package = "textblob"
    what = "TextBlob's polarity"

    def polarity(self, texts: Sequence[str]) -> FloatVector:
        try:
            from textblob import TextBlob
        except ImportError as e:
            raise _missing(self.package, "textblob", self.name) from e
        return np.array([TextBlob(t).sentiment.polarity for t in texts], dtype=np.float64)
