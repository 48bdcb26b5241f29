"""Stage 3: a probe turns labelled activations into a concept — half-spaces W h ≥ t."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit._arrays import FloatArray, describe, float_array, to_numpy
from steerkit.errors import ValidationError

__all__ = ["Concept", "Probe"]


@attrs.frozen(eq=False)
class Concept:
    """The target class as k half-spaces: an activation h is in it when W h ≥ t.

    directions: (k, d_model); thresholds: (k,).
    """

    directions: FloatArray
    thresholds: FloatArray

    def __attrs_post_init__(self) -> None:
        raw = to_numpy("Concept", "directions", self.directions)
        if raw.ndim == 1:
            raw = raw[None, :]
        directions = float_array("Concept", "directions", raw, ndim=2)
        raw_t = to_numpy("Concept", "thresholds", self.thresholds).reshape(-1)
        if raw_t.shape != (directions.shape[0],):
            raise ValidationError(
                "Concept",
                "thresholds",
                f"shape ({directions.shape[0]},)",
                describe(self.thresholds),
            )
        object.__setattr__(self, "directions", directions)
        object.__setattr__(self, "thresholds", float_array("Concept", "thresholds", raw_t, ndim=1))

    @property
    def k(self) -> int:
        return int(self.directions.shape[0])

    def rhs(self, hidden: Any) -> FloatArray:
        """r = t − W h for each input: (n, k). Steering must add at least r along W."""
        h = to_numpy("Concept", "hidden", hidden).astype(np.float64, copy=False)
        if h.ndim == 1:
            h = h[None, :]
        if h.shape[1] != self.directions.shape[1]:
            raise ValidationError(
                "Concept", "hidden", f"shape (n, {self.directions.shape[1]})", describe(hidden)
            )
        result: FloatArray = self.thresholds[None, :] - h @ self.directions.T
        return result

    def satisfied(self, hidden: Any) -> np.ndarray[Any, Any]:
        """(n,) booleans: is each input already in the target class?"""
        satisfied: np.ndarray[Any, Any] = np.all(self.rhs(hidden) <= 0, axis=1)
        return satisfied


class Probe(abc.ABC):
    """A classifier on activations that can express its target class as a Concept."""

    name: ClassVar[str]

    @abc.abstractmethod
    def fit(self, hidden: Any, labels: Any, *, seed: int = 0) -> Probe:
        """Train on (n, d_model) activations and (n,) labels; returns self."""

    @abc.abstractmethod
    def concept(self, *, target_class: int, margin: float) -> Concept:
        """The half-spaces an activation must reach to be classed `target_class` by `margin`."""

    def predict_proba(self, hidden: Any) -> FloatArray:
        """(n, n_classes) class probabilities."""
        raise NotImplementedError(f"probe {self.name!r} gives no probabilities")

    def score(self, hidden: Any, labels: Any) -> float:
        """Accuracy on (n, d_model) activations."""
        predicted = np.argmax(self.predict_proba(hidden), axis=1)
        return float(np.mean(predicted == np.asarray(labels)))
