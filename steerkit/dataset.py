"""Stage 1: labelled texts. A Dataset plugin turns a task name into train and test splits."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit._arrays import describe, readonly, to_numpy
from steerkit.errors import ValidationError

__all__ = ["Dataset", "LabelledTexts", "Splits"]


def _labels(value: Any) -> np.ndarray[Any, Any]:
    array = to_numpy("LabelledTexts", "labels", value)
    if array.ndim != 1 or not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValidationError(
            "LabelledTexts", "labels", "a 1-d array of integer classes", describe(value)
        )
    return readonly(array.astype(np.int64))


@attrs.frozen(eq=False)
class LabelledTexts:
    """texts (n,) with integer class labels (n,)."""

    texts: tuple[str, ...] = attrs.field(converter=tuple)
    labels: np.ndarray[Any, Any] = attrs.field(converter=_labels)

    def __attrs_post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValidationError(
                "LabelledTexts",
                "labels",
                f"{len(self.texts)} labels, one per text",
                f"{len(self.labels)} labels",
            )
        bad = [i for i, t in enumerate(self.texts) if not isinstance(t, str)]
        if bad:
            raise ValidationError(
                "LabelledTexts",
                "texts",
                "strings",
                f"{type(self.texts[bad[0]]).__name__} at index {bad[0]}",
            )

    def __len__(self) -> int:
        return len(self.texts)


@attrs.frozen
class Splits:
    """A task's train and test splits."""

    train: LabelledTexts
    test: LabelledTexts


class Dataset(abc.ABC):
    """A labelled task, with the extra prompts the heuristic baselines need.

    `load` must be deterministic for a given seed.
    """

    name: ClassVar[str]
    #: The licence its texts are under (an SPDX identifier where there is one), for provenance.
    licence: ClassVar[str | None] = None

    @abc.abstractmethod
    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        """Balanced, stratified train and test splits."""

    def all_texts(self) -> Sequence[str]:
        """Every text of the task, unlabelled, in a fixed order (e.g. to train an SAE on)."""
        raise NotImplementedError(f"dataset {self.name!r} does not list its texts")

    def contrastive_pairs(self) -> Sequence[tuple[str, str]]:
        """(negative, positive) prompt pairs for contrastive activation addition."""
        raise NotImplementedError(f"dataset {self.name!r} provides no contrastive pairs")

    def persona_prefixes(self) -> tuple[str, str]:
        """(negative, positive) persona prefixes for RepE-style steering."""
        raise NotImplementedError(f"dataset {self.name!r} provides no persona prefixes")

    def neutral_queries(self) -> Sequence[str]:
        """Prompts with no class of their own, to steer generation from."""
        raise NotImplementedError(f"dataset {self.name!r} provides no neutral queries")
