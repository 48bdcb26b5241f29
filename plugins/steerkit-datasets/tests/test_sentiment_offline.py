"""sentiment-offline: the bundled file (size, balance, duplicates, lengths, a hand-checked
sample) and its splits (balanced, stratified, seeded, n_per_class, validation)."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

import numpy as np
import pytest
from steerkit_datasets import SentimentOffline, read_sentiment_offline
from steerkit_datasets._split import normalise

from steerkit import Splits, ValidationError

#: sentences whose label a person reads off at once, checked against the file
HAND_LABELLED = {
    "This little bakery makes the best croissants I have ever tasted.": 1,
    "The app crashes every single time I try to upload a photo, and the support team keeps "
    "telling me to reinstall it, which changes nothing at all.": 0,
    "Our new puppy is playful, gentle and already learning to sit.": 1,
    "Slugs ate every one of my lettuces overnight.": 0,
    "I finally got the promotion I have been working towards for years.": 1,
    "The shirt shrank two sizes after the first wash.": 0,
}


def file_rows() -> list[dict[str, object]]:
    path = resources.files("steerkit_datasets").joinpath("data/sentiment_offline.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_the_file_is_balanced_large_and_free_of_duplicates() -> None:
    rows = file_rows()
    counts = Counter(row["label"] for row in rows)
    assert len(rows) >= 400
    assert counts[0] == counts[1] >= 200 and set(counts) == {0, 1}
    keys = [normalise(str(row["text"])) for row in rows]
    assert len(set(keys)) == len(keys)
    lengths = [len(str(row["text"]).split()) for row in rows]
    assert min(lengths) >= 6 and max(lengths) <= 30
    assert max(lengths) - min(lengths) >= 15  # varied, not one template
    topics = Counter(str(row["topic"]) for row in rows)
    assert len(topics) >= 10
    for topic in topics:  # every topic has both classes, so topic does not predict the label
        assert {row["label"] for row in rows if row["topic"] == topic} == {0, 1}
    assert read_sentiment_offline()[0] == tuple(str(row["text"]) for row in rows)


def test_the_file_agrees_with_a_hand_labelled_sample() -> None:
    labels = dict(zip(*read_sentiment_offline()[:2]))
    for text, label in HAND_LABELLED.items():
        assert labels[text] == label, text


def labels_of(splits: Splits) -> dict[str, int]:
    return {
        text: int(label)
        for part in (splits.train, splits.test)
        for text, label in zip(part.texts, part.labels)
    }


def test_load_uses_everything_balanced_and_stratified() -> None:
    splits = SentimentOffline().load(seed=0)
    file_labels = dict(zip(*read_sentiment_offline()[:2]))
    assert len(splits.train) + len(splits.test) == len(file_labels)
    assert labels_of(splits) == file_labels  # every text keeps its label
    assert not set(splits.train.texts) & set(splits.test.texts)
    assert np.bincount(splits.train.labels).tolist() == [176, 176]
    assert np.bincount(splits.test.labels).tolist() == [44, 44]


def test_load_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    dataset = SentimentOffline()
    first, again = dataset.load(seed=3), dataset.load(seed=3)
    assert first.train.texts == again.train.texts and first.test.texts == again.test.texts
    np.testing.assert_array_equal(first.train.labels, again.train.labels)
    other = dataset.load(seed=4)
    assert set(other.test.texts) != set(first.test.texts)
    subset, subset_again = (
        dataset.load(seed=3, n_per_class=40),
        dataset.load(seed=3, n_per_class=40),
    )
    assert subset.train.texts == subset_again.train.texts
    assert set(dataset.load(seed=5, n_per_class=40).train.texts) != set(subset.train.texts)


@pytest.mark.parametrize(
    ("n", "train", "test"), [(5, 4, 1), (7, 6, 1), (8, 6, 2), (40, 32, 8), (220, 176, 44)]
)
def test_n_per_class_is_honoured(n: int, train: int, test: int) -> None:
    splits = SentimentOffline().load(seed=1, n_per_class=n)
    assert np.bincount(splits.train.labels).tolist() == [train, train]
    assert np.bincount(splits.test.labels).tolist() == [test, test]
    file_labels = dict(zip(*read_sentiment_offline()[:2]))
    assert all(file_labels[t] == label for t, label in labels_of(splits).items())


def test_test_size_is_an_option() -> None:
    splits = SentimentOffline(test_size=0.5).load(seed=0, n_per_class=30)
    assert np.bincount(splits.train.labels).tolist() == [15, 15]
    assert np.bincount(splits.test.labels).tolist() == [15, 15]


@pytest.mark.parametrize("n", [0, -3, 1.5, True, "10"])
def test_a_bad_n_per_class_names_the_field(n: object) -> None:
    with pytest.raises(ValidationError, match="n_per_class: expected None or a positive integer"):
        SentimentOffline().load(n_per_class=n)  # type: ignore[arg-type]


def test_more_than_the_file_holds_says_how_many_there_are() -> None:
    with pytest.raises(ValidationError, match=r"n_per_class: expected at most 220 .* received 221"):
        SentimentOffline().load(n_per_class=221)


def test_too_few_for_a_stratified_split_is_refused() -> None:
    with pytest.raises(ValidationError, match="n_per_class: expected at least 2 for a train"):
        SentimentOffline().load(n_per_class=1)
    with pytest.raises(ValidationError, match="n_per_class: expected at least 3 .*test_size=0.8"):
        SentimentOffline(test_size=0.8).load(n_per_class=2)
    smallest = SentimentOffline().load(n_per_class=2)  # one of each class in each split
    assert np.bincount(smallest.train.labels).tolist() == [1, 1]
    assert np.bincount(smallest.test.labels).tolist() == [1, 1]


@pytest.mark.parametrize("size", [0, 1, 1.5, -0.2, "0.2", None])
def test_a_bad_test_size_names_the_field(size: object) -> None:
    with pytest.raises(ValidationError, match="test_size: expected a number in"):
        SentimentOffline(test_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.0, "0", None])
def test_a_bad_seed_names_the_field(seed: object) -> None:
    with pytest.raises(ValidationError, match="seed: expected a non-negative integer"):
        SentimentOffline().load(seed=seed)  # type: ignore[arg-type]
