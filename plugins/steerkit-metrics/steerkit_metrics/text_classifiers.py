"""Downstream text classifiers for the `classifier` metric: a small interface, the offline default
`tfidf-logistic`, and `CLASSIFIERS`, the registry a third party adds its own to.

A classifier is fitted on the task's training texts once per (classifier, training texts and
labels, seed) and kept in memory for the rest of the process (`fitted_classifier`).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from steerkit import Dataset, LabelledTexts, SteerkitError, UnknownPluginError, ValidationError
from steerkit.checks import finite_number, integer

__all__ = [
    "CLASSIFIERS",
    "TextClassifier",
    "TfidfLogistic",
    "fitted_classifier",
    "get_classifier",
    "held_out_accuracy",
    "held_out_split",
]

logger = logging.getLogger(__name__)


class TextClassifier(abc.ABC):
    """A classifier of texts. `fit` learns from labelled texts; `predict_proba` gives (n, C)
    probabilities whose columns are in the order of `classes` (the labels seen in `fit`)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def fit(self, texts: Sequence[str], labels: Sequence[int], seed: int = 0) -> TextClassifier:
        """Train on texts and their integer labels, deterministically for `seed`; returns self."""

    @property
    @abc.abstractmethod
    def classes(self) -> tuple[int, ...]:
        """The class labels, in the order of predict_proba's columns."""

    @abc.abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """(n, len(classes)) class probabilities of each text."""


class TfidfLogistic(TextClassifier):
    """TF-IDF features — word 1–2-grams and character 2–5-grams within word boundaries
    (`char_wb`), both with sublinear term frequency — into an L2-regularised logistic regression
    (scikit-learn, lbfgs). Offline, CPU-only, and trained in well under a second on a few
    thousand sentences. C: inverse regularisation strength."""

    name = "tfidf-logistic"

    def __init__(self, *, C: float = 10.0, max_iter: int = 2000) -> None:
        self.C = finite_number("TfidfLogistic", "C", C, positive=True)
        self.max_iter = integer("TfidfLogistic", "max_iter", max_iter, minimum=1)
        self._pipeline: Any = None

    def __repr__(self) -> str:
        return f"TfidfLogistic(C={self.C!r}, max_iter={self.max_iter!r})"

    def fit(self, texts: Sequence[str], labels: Sequence[int], seed: int = 0) -> TfidfLogistic:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        given: Any = texts  # LabelledTexts validates: strings, integer labels, same length
        train = LabelledTexts(given, labels)
        if len(np.unique(train.labels)) < 2:
            raise ValidationError(
                "TfidfLogistic", "labels", "at least two classes", f"{np.unique(train.labels)}"
            )
        features = make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        )
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)
        self._pipeline = make_pipeline(features, model).fit(list(train.texts), train.labels)
        return self

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self._fitted().classes_)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        if isinstance(texts, str):
            raise ValidationError(
                "TfidfLogistic", "texts", "a sequence of strings (a list, not one string)", "str"
            )
        return np.asarray(self._fitted().predict_proba(list(texts)), dtype=np.float64)

    def _fitted(self) -> Any:
        if self._pipeline is None:
            raise SteerkitError("TfidfLogistic is not fitted: call fit(texts, labels) first")
        return self._pipeline


#: Name → a callable of no arguments that returns an unfitted TextClassifier (a class will do).
#: Add yours from your plugin module: ``CLASSIFIERS["my-model"] = MyClassifier``.
CLASSIFIERS: dict[str, Callable[[], TextClassifier]] = {TfidfLogistic.name: TfidfLogistic}


def get_classifier(name: str) -> TextClassifier:
    """A new, unfitted classifier registered as `name`."""
    if name not in CLASSIFIERS:
        raise UnknownPluginError("text classifier", name, CLASSIFIERS)
    classifier = CLASSIFIERS[name]()
    if not isinstance(classifier, TextClassifier):
        raise SteerkitError(
            f"CLASSIFIERS[{name!r}] returned {type(classifier).__name__}, "
            "not a steerkit_metrics.TextClassifier"
        )
    return classifier


def _digest(train: LabelledTexts) -> str:
    h = hashlib.sha256()
    for text in train.texts:
        h.update(text.encode("utf-8"))
        h.update(b"\x00")
    h.update(np.asarray(train.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


_MEMO_SIZE = 8
_FITTED: OrderedDict[tuple[str, str, int], TextClassifier] = OrderedDict()
_ACCURACY: dict[tuple[str, str, str, int], float] = {}


def fitted_classifier(name: str, train: LabelledTexts, seed: int = 0) -> TextClassifier:
    """The classifier `name` fitted on `train` with `seed`: fitted once, then kept in memory
    (the last few are kept)."""
    key = (name, _digest(train), int(seed))
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key]
    classifier = get_classifier(name)
    classifier.fit(train.texts, train.labels.tolist(), seed)
    _FITTED[key] = classifier
    while len(_FITTED) > _MEMO_SIZE:
        _FITTED.popitem(last=False)
    return classifier


def held_out_split(dataset: Dataset, train: LabelledTexts, seed: int = 0) -> LabelledTexts:
    """The dataset's test split that goes with `train`: when `dataset.load(seed=seed,
    n_per_class=N)` gives exactly `train` for some N that fits its size, that load's test split;
    otherwise the test split of `dataset.load(seed=seed)` without any text that is in `train`."""
    counts = np.bincount(np.asarray(train.labels) - int(np.min(train.labels)))
    counts = counts[counts > 0]
    if len(counts) and np.all(counts == counts[0]):
        per_class = int(counts[0])
        test_size = float(getattr(dataset, "test_size", 0.2))
        for n in range(per_class + 1, math.ceil(per_class / max(1e-9, 1 - test_size)) + 3):
            if n - round(test_size * n) != per_class:
                continue
            try:
                splits = dataset.load(seed=seed, n_per_class=n)
            except ValidationError:
                continue
            if splits.train.texts == train.texts:
                return splits.test
    splits = dataset.load(seed=seed)
    seen = set(train.texts)
    keep = [i for i, text in enumerate(splits.test.texts) if text not in seen]
    texts: Any = [splits.test.texts[i] for i in keep]
    return LabelledTexts(texts, np.asarray(splits.test.labels)[keep].tolist())


def held_out_accuracy(name: str, train: LabelledTexts, dataset: Dataset, seed: int = 0) -> float:
    """Accuracy of `fitted_classifier(name, train, seed)` on `held_out_split(dataset, train,
    seed)`; NaN when the dataset cannot be loaded (logged) or has no held-out text. Memoised."""
    key = (name, _digest(train), f"{type(dataset).__module__}.{dataset!r}", int(seed))
    if key in _ACCURACY:
        return _ACCURACY[key]
    try:
        test = held_out_split(dataset, train, seed)
    except (SteerkitError, NotImplementedError, OSError) as e:
        logger.warning("classifier accuracy: could not load the test split of %r: %s", dataset, e)
        return math.nan
    accuracy = math.nan
    if len(test):
        classifier = fitted_classifier(name, train, seed)
        predicted = np.asarray(classifier.classes)[
            np.argmax(classifier.predict_proba(test.texts), axis=1)
        ]
        accuracy = float(np.mean(predicted == np.asarray(test.labels)))
    _ACCURACY[key] = accuracy
    return accuracy
