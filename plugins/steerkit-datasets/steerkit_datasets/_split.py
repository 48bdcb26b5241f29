"""Balanced subsampling per class and stratified train/test splits, shared by every task.

Only numpy at import time; scikit-learn loads inside `stratified_splits`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from steerkit import LabelledTexts, Splits, SteerkitError, ValidationError
from steerkit.checks import fraction, optional_integer

__all__ = [
    "balanced_texts",
    "check_n_per_class",
    "check_test_size",
    "held_out_per_class",
    "normalise",
    "stratified_splits",
]

#: texts fetched per batch while walking a class in random order
_BATCH = 4096


def normalise(text: str) -> str:
    """The key two texts are duplicates under: case and runs of whitespace ignored."""
    return " ".join(text.split()).casefold()


def check_test_size(owner: str, value: Any) -> float:
    """A test fraction strictly between 0 and 1."""
    return fraction(owner, "test_size", value)


def check_n_per_class(owner: str, value: Any) -> int | None:
    """None (as many as the smallest class has) or a positive integer."""
    return optional_integer(
        owner, "n_per_class", value, minimum=1, expected="None or a positive integer"
    )


def balanced_texts(
    owner: str,
    labels: np.ndarray[Any, Any],
    texts_at: Callable[[np.ndarray[Any, Any]], Sequence[Any]],
    *,
    n_per_class: int | None,
    seed: int,
    classes: tuple[int, ...] = (0, 1),
) -> tuple[list[str], np.ndarray[Any, Any]]:
    """n texts of each class, drawn at random (seeded), with no duplicate and no empty text.

    labels: (N,) integer classes of the whole source (other values are never drawn);
    texts_at(indices) returns the texts at those indices, a batch at a time, so a large hub
    dataset is not read whole when n_per_class is small. Each class is walked in a random order
    of the `seed`. Texts are compared up to case and whitespace: a repeat within a class is
    skipped, and a text read in two classes is ambiguous and dropped from both (with
    n_per_class None every text is read, so every such conflict is found). With n_per_class
    None each class keeps as many texts as the smallest one has. Returns the texts of each
    class in turn, and their labels.
    """
    present = set(np.unique(labels).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise SteerkitError(
            f"{owner}: the source data has no example of class {missing[0]} "
            f"(classes present: {sorted(present)}); a balanced split needs every class"
        )
    rng = np.random.default_rng(seed)
    walks = {cls: _Walk(rng.permutation(np.flatnonzero(labels == cls))) for cls in classes}
    banned: set[str] = set()
    while True:
        for walk in walks.values():
            walk.fill(texts_at, n_per_class, banned)
        counts = Counter(key for walk in walks.values() for key in walk.kept)
        conflicts = {key for key, count in counts.items() if count > 1}
        if not conflicts:
            break
        banned |= conflicts
        for walk in walks.values():
            walk.drop(conflicts)
    smallest = min(len(walk.kept) for walk in walks.values())
    if n_per_class is not None and smallest < n_per_class:
        raise ValidationError(
            owner,
            "n_per_class",
            f"at most {smallest} (the distinct texts of the smallest class)",
            repr(n_per_class),
        )
    n = smallest if n_per_class is None else n_per_class
    texts = [text for cls in classes for text in list(walks[cls].kept.values())[:n]]
    return texts, np.repeat(np.asarray(classes, dtype=np.int64), n)


class _Walk:
    """One class's texts in a seeded random order, read lazily: normalised key → text."""

    def __init__(self, order: np.ndarray[Any, Any]) -> None:
        self.order = order
        self.position = 0
        self.kept: dict[str, str] = {}
        self.seen: set[str] = set()

    def fill(
        self,
        texts_at: Callable[[np.ndarray[Any, Any]], Sequence[Any]],
        target: int | None,
        banned: set[str],
    ) -> None:
        while self.position < len(self.order) and (target is None or len(self.kept) < target):
            size = _BATCH if target is None else max(64, 2 * (target - len(self.kept)))
            batch = self.order[self.position : self.position + size]
            for offset, text in enumerate(texts_at(batch), start=1):
                if isinstance(text, str) and text.strip():
                    key = normalise(text)
                    if key not in self.seen and key not in banned:
                        self.kept[key] = text
                    self.seen.add(key)
                if target is not None and len(self.kept) == target:
                    self.position += offset
                    break
            else:
                self.position += len(batch)

    def drop(self, keys: set[str]) -> None:
        for key in keys:
            self.kept.pop(key, None)


def held_out_per_class(n_per_class: int, test_size: float) -> int:
    """Texts of each class held out for testing: test_size × n, rounded half up, at least one.

    The same number for every class, so both splits are exactly balanced.
    """
    return max(1, math.floor(test_size * n_per_class + 0.5))


def stratified_splits(
    owner: str,
    texts: Sequence[str],
    labels: np.ndarray[Any, Any],
    *,
    test_size: float,
    seed: int,
    groups: np.ndarray[Any, Any] | None = None,
) -> Splits:
    """Exactly balanced train and test splits: scikit-learn's train_test_split, stratified on
    the labels, random_state = seed, holding out `held_out_per_class` texts of each class (the
    labels must be balanced already).

    groups: (n,) group ids whose members must land in the same split (a TruthfulQA question's
    true and false answers); each group must hold one text of each class, so splitting the
    groups keeps both splits exactly balanced.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=2)
    n_per_class = int(counts.min())
    if n_per_class != int(counts.max()):
        raise SteerkitError(f"{owner}: unbalanced classes {counts.tolist()} reached the split")
    n_test = held_out_per_class(n_per_class, test_size)
    if n_per_class - n_test < 1:
        needed = 2
        while needed - held_out_per_class(needed, test_size) < 1:
            needed += 1
        raise ValidationError(
            owner,
            "n_per_class",
            f"at least {needed} for a train and a test split (test_size={test_size})",
            repr(n_per_class),
        )
    positions = np.arange(len(labels))
    if groups is None:
        train, test = train_test_split(
            positions, test_size=n_test * len(counts), stratify=labels, random_state=seed
        )
    else:
        unique = np.unique(groups)
        train_groups, test_groups = train_test_split(unique, test_size=n_test, random_state=seed)
        order = np.random.default_rng(seed).permutation(len(labels))
        train = order[np.isin(groups[order], train_groups)]
        test = order[np.isin(groups[order], test_groups)]

    def part(idx: np.ndarray[Any, Any]) -> LabelledTexts:
        return LabelledTexts(texts=[texts[i] for i in idx], labels=labels[idx])

    return Splits(train=part(np.asarray(train)), test=part(np.asarray(test)))
