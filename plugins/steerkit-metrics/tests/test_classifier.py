"""The `classifier` metric and its text classifiers: `tfidf-logistic` against the same
scikit-learn pipeline built here, on `sentiment-offline`; the registry; memoisation; the held-out
accuracy on the run's own test split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import steerkit_metrics
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from steerkit_datasets import SentimentOffline
from steerkit_metrics import (
    CLASSIFIERS,
    Classifier,
    TextClassifier,
    TfidfLogistic,
    fitted_classifier,
    held_out_accuracy,
    held_out_split,
)

from steerkit import (
    Activations,
    EvalContext,
    LabelledTexts,
    MethodResult,
    Needs,
    SteeringVector,
    UnknownPluginError,
    ValidationError,
)

HOOK = "blocks.0.hook_resid_pre"
PROMPTS = ["I thought the film was", "The hotel room", "Our waiter", "The new phone"]
STEERED = [
    " wonderful, moving and beautifully acted.",
    " was spotless and the staff were lovely.",
    "",
    " is a delight to use every day.",
]
BASE = [
    " dull and far too long.",
    " smelled of smoke and the sheets were dirty.",
    " ignored us for an hour.",
    " broke within a week.",
]


@pytest.fixture(scope="module")
def splits() -> Any:
    return SentimentOffline().load(seed=0, n_per_class=60)  # 48 + 12 per class


def independent_pipeline(train: LabelledTexts, seed: int) -> Any:
    """The tfidf-logistic recipe, written out with scikit-learn alone."""
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    model = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    return make_pipeline(features, model).fit(list(train.texts), train.labels)


def inputs(n: int = 6) -> Activations:
    return Activations(hidden=np.random.default_rng(0).normal(size=(n, 4)), hook_point=HOOK)


def shared(scale: float = 1.0) -> MethodResult:
    return MethodResult([SteeringVector(np.ones(4), hook_point=HOOK, scale=scale)], shared=True)


def test_probabilities_match_the_sklearn_pipeline(splits: Any) -> None:
    ctx = EvalContext(
        inputs=inputs(),
        result=shared(),
        train=splits.train,
        dataset=SentimentOffline(),
        prompts=PROMPTS,
        generations=STEERED,
        base_generations=BASE,
        seed=0,  # the seed the splits were loaded with: the held-out split is found again
    )
    out = Classifier().compute(ctx)
    assert set(out) == {"classifier_target", "classifier_base", "classifier_accuracy"}
    oracle = independent_pipeline(splits.train, seed=0)
    positive = list(oracle.classes_).index(1)
    expected_steered = oracle.predict_proba(STEERED)[:, positive]
    expected_base = oracle.predict_proba(BASE)[:, positive]
    np.testing.assert_allclose(out["classifier_target"][[0, 1, 3]], expected_steered[[0, 1, 3]])
    np.testing.assert_allclose(out["classifier_base"][:4], expected_base, rtol=1e-12)
    assert math.isnan(out["classifier_target"][2])  # an empty generation
    assert (
        np.isnan(out["classifier_target"][4:]).all() and np.isnan(out["classifier_base"][4:]).all()
    )
    # a real classifier (on 96 training sentences): positive texts score higher on average
    assert out["classifier_target"][[0, 1, 3]].mean() > out["classifier_base"][:4].mean() + 0.2
    # the held-out accuracy is the pipeline's on the exact test split of this load
    accuracy = oracle.score(list(splits.test.texts), splits.test.labels)
    assert out["classifier_accuracy"] == pytest.approx(accuracy)

    other = Classifier().compute(attrs_evolve(ctx, target_class=0))
    np.testing.assert_allclose(other["classifier_base"][:4], 1 - expected_base, rtol=1e-12)


def attrs_evolve(ctx: EvalContext, **changes: Any) -> EvalContext:
    import attrs

    return attrs.evolve(ctx, **changes)


def test_failed_inputs_and_missing_dataset(splits: Any) -> None:
    vectors: list[Any] = [SteeringVector(np.ones(4), hook_point=HOOK)] * 6
    vectors[1] = None
    out = Classifier().compute(
        EvalContext(
            inputs=inputs(),
            result=MethodResult(vectors),
            train=splits.train,
            prompts=PROMPTS,
            generations=STEERED,
            base_generations=BASE,
        )
    )
    assert math.isnan(out["classifier_target"][1]) and math.isnan(out["classifier_base"][1])
    assert not math.isnan(out["classifier_target"][0])
    assert math.isnan(out["classifier_accuracy"])  # no dataset given


@pytest.mark.needs_torch
def test_classifier_on_generations_of_the_tiny_model(splits: Any) -> None:
    from steerkit_transformerlens.source import TransformerLensSource
    from steerkit_transformerlens.testing import tiny_model

    source = TransformerLensSource(model=tiny_model(seed=1), hook_point=HOOK, cache=False)
    prompts = ["the cat is", "a dog was", "the bird"]
    hidden = source.activations(prompts)
    vector = SteeringVector(np.full(16, 0.5), hook_point=HOOK, scale=4.0)
    steered = source.generate(prompts, max_new_tokens=5, vector=vector, stop_at_eos=False)
    base = source.generate(prompts, max_new_tokens=5, stop_at_eos=False)
    out = Classifier().compute(
        EvalContext(
            inputs=hidden,
            result=MethodResult([vector], shared=True),
            train=splits.train,
            prompts=prompts,
            generations=steered,
            base_generations=base,
        )
    )
    oracle = independent_pipeline(splits.train, seed=0)
    np.testing.assert_allclose(out["classifier_target"], oracle.predict_proba(steered)[:, 1])
    np.testing.assert_allclose(out["classifier_base"], oracle.predict_proba(base)[:, 1])


def test_fitted_once_per_texts_and_seed(splits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[int] = []

    class Counting(TfidfLogistic):
        name = "counting"

        def fit(self, texts: Sequence[str], labels: Sequence[int], seed: int = 0) -> Counting:
            fits.append(seed)
            super().fit(texts, labels, seed)
            return self

    monkeypatch.setitem(CLASSIFIERS, "counting", Counting)
    first = fitted_classifier("counting", splits.train, seed=0)
    assert fitted_classifier("counting", splits.train, seed=0) is first
    same_texts = LabelledTexts(list(splits.train.texts), splits.train.labels.tolist())
    assert fitted_classifier("counting", same_texts, seed=0) is first
    assert fitted_classifier("counting", splits.train, seed=1) is not first
    shorter = LabelledTexts(splits.train.texts[:-2], splits.train.labels[:-2])
    fitted_classifier("counting", shorter, seed=0)
    assert fits == [0, 1, 0]
    metric = Classifier(model="counting")
    ctx = EvalContext(
        inputs=inputs(), result=shared(), train=splits.train, prompts=PROMPTS, generations=STEERED
    )
    metric.compute(ctx)
    metric.compute(attrs_evolve(ctx, result=shared(2.0)))
    assert fits == [0, 1, 0]  # the metric reuses the fitted classifier


def test_a_third_party_classifier(splits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class KeywordClassifier(TextClassifier):
        """P(positive) = 0.9 when the text says "good", else 0.2."""

        name = "keyword"

        def fit(self, texts: Sequence[str], labels: Sequence[int], seed: int = 0) -> Any:
            self._classes = tuple(sorted(set(int(x) for x in labels)))
            return self

        @property
        def classes(self) -> tuple[int, ...]:
            return self._classes

        def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
            p = np.array([0.9 if "good" in t else 0.2 for t in texts])
            return np.column_stack([1 - p, p])

    with pytest.raises(UnknownPluginError, match="unknown text classifier 'keyword'; available: "):
        Classifier(model="keyword")
    monkeypatch.setitem(steerkit_metrics.CLASSIFIERS, "keyword", KeywordClassifier)
    out = Classifier(model="keyword").compute(
        EvalContext(
            inputs=inputs(2),
            result=shared(),
            train=splits.train,
            prompts=["a", "b"],
            generations=["a good day", "a day"],
        )
    )
    np.testing.assert_allclose(out["classifier_target"], [0.9, 0.2])


def test_held_out_split_is_never_trained_on(splits: Any) -> None:
    dataset = SentimentOffline()
    exact = held_out_split(dataset, splits.train, seed=0)
    assert exact.texts == splits.test.texts  # the run's own test split, found again
    # a training set no load reproduces: the full test split, less what was trained on
    mixed = LabelledTexts(
        splits.train.texts[:30] + dataset.load(seed=0).test.texts[:10],
        list(splits.train.labels[:30]) + list(dataset.load(seed=0).test.labels[:10]),
    )
    fallback = held_out_split(dataset, mixed, seed=0)
    full = dataset.load(seed=0).test
    assert not set(fallback.texts) & set(mixed.texts)
    assert len(fallback) == len(full) - len(set(full.texts) & set(mixed.texts)) > 0


def test_accuracy_on_sentiment_offline() -> None:
    """The offline default is a real classifier: held-out accuracy on sentiment-offline's test
    split (88 texts, seed 0; measured 0.864)."""
    dataset = SentimentOffline()
    full = dataset.load(seed=0)
    accuracy = held_out_accuracy("tfidf-logistic", full.train, dataset, seed=0)
    oracle = independent_pipeline(full.train, seed=0)
    assert accuracy == pytest.approx(oracle.score(list(full.test.texts), full.test.labels))
    assert accuracy > 0.8


def test_classifier_says_what_is_missing(splits: Any) -> None:
    assert Classifier().requires() == Needs(generations=True, text_classifier=True)
    ctx = EvalContext(
        inputs=inputs(), result=shared(), train=splits.train, prompts=PROMPTS, generations=STEERED
    )
    with pytest.raises(ValidationError, match=r"EvalContext\.generations: expected prompts and"):
        Classifier().compute(attrs_evolve(ctx, generations=()))
    with pytest.raises(ValidationError, match=r"EvalContext\.train: expected the task's training"):
        Classifier().compute(attrs_evolve(ctx, train=None))
    with pytest.raises(ValidationError, match="target_class: expected one of the classes"):
        Classifier().compute(attrs_evolve(ctx, target_class=5))
    with pytest.raises(ValidationError, match="TfidfLogistic.C"):
        TfidfLogistic(C=0)
    with pytest.raises(ValidationError, match="at least two classes"):
        TfidfLogistic().fit(["a", "b"], [1, 1])
    # without train, the dataset's training split is used
    out = Classifier().compute(attrs_evolve(ctx, train=None, dataset=SentimentOffline()))
    assert not math.isnan(out["classifier_target"][0])
