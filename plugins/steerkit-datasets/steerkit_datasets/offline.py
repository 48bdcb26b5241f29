"""`sentiment-offline`: 440 English sentences written for steerkit, shipped with the package."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import numpy as np

from steerkit import Splits, SteerkitError
from steerkit_datasets._split import balanced_texts, check_n_per_class, stratified_splits
from steerkit_datasets.base import TaskDataset
from steerkit_datasets.prompts import SENTIMENT

__all__ = ["DATA_FILE", "SentimentOffline", "read_sentiment_offline"]

#: the package data file: one JSON object per line, {"text", "label" (1 positive), "topic"}
DATA_FILE = "data/sentiment_offline.jsonl"


@functools.cache
def read_sentiment_offline() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """(texts, labels, topics) of the bundled file, in file order."""
    path = resources.files("steerkit_datasets").joinpath(DATA_FILE)
    texts: list[str] = []
    labels: list[int] = []
    topics: list[str] = []
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, label, topic = row["text"], row["label"], row["topic"]
            except (ValueError, KeyError, TypeError) as e:
                raise SteerkitError(f"{DATA_FILE} line {number} is malformed: {e}") from e
            if label not in (0, 1) or not isinstance(text, str):
                raise SteerkitError(f"{DATA_FILE} line {number}: label {label!r} is not 0 or 1")
            texts.append(text)
            labels.append(int(label))
            topics.append(str(topic))
    return tuple(texts), tuple(labels), tuple(topics)


class SentimentOffline(TaskDataset):
    """Positive (1) and negative (0) English sentences about films, food, travel, products,
    weather, work, books, music, service and more: 220 of each, written for steerkit, so a
    sentiment task runs with no hub at all."""

    name = "sentiment-offline"
    licence = "Apache-2.0"
    prompts = SENTIMENT

    def all_texts(self) -> tuple[str, ...]:
        """The 440 sentences in file order."""
        return read_sentiment_offline()[0]

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        """Balanced (n_per_class of each class, default all 220), stratified, seeded splits."""
        seed = self._check_seed(seed)
        n = check_n_per_class(self.name, n_per_class)
        texts, labels, _ = read_sentiment_offline()
        label_array = np.asarray(labels, dtype=np.int64)

        def texts_at(indices: np.ndarray[Any, Any]) -> list[str]:
            return [texts[i] for i in indices]

        chosen, chosen_labels = balanced_texts(
            self.name, label_array, texts_at, n_per_class=n, seed=seed
        )
        return stratified_splits(
            self.name, chosen, chosen_labels, test_size=self.test_size, seed=seed
        )
