"""What the two binary probes share: the fitted state, predictions, accuracy and the checks on
`target_class` and `margin`."""

from __future__ import annotations

from typing import Any

import numpy as np

from steerkit import Probe, SteerkitError, ValidationError
from steerkit.checks import finite_number
from steerkit_probes._checks import FloatMatrix, hidden_matrix, integer_labels

__all__ = ["BinaryProbe"]


class BinaryProbe(Probe):
    """A probe of two classes; `classes` are the two labels seen in `fit`, sorted, and the
    probe's directions point towards the second (the "positive" class, 1 for 0/1 labels)."""

    _classes: tuple[int, int] | None = None
    _d_model: int | None = None

    # -- state -------------------------------------------------------------------------------

    def _require_fitted(self) -> tuple[int, int]:
        if self._classes is None:
            raise SteerkitError(
                f"probe {self.name!r} is not fitted: call fit(hidden, labels) first"
            )
        return self._classes

    @property
    def classes(self) -> tuple[int, int]:
        """The two class labels seen in `fit`, sorted."""
        return self._require_fitted()

    @property
    def d_model(self) -> int:
        """The activation width seen in `fit`."""
        self._require_fitted()
        assert self._d_model is not None
        return self._d_model

    # -- prediction --------------------------------------------------------------------------

    def _hidden(self, hidden: Any) -> FloatMatrix:
        self._require_fitted()
        return hidden_matrix(type(self).__name__, "hidden", hidden, d_model=self._d_model)

    def _positive_probability(self, hidden: FloatMatrix) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    def predict_proba(self, hidden: Any) -> FloatMatrix:
        """(n, 2) class probabilities, columns in the order of `classes`."""
        p1 = self._positive_probability(self._hidden(hidden))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, hidden: Any) -> np.ndarray[Any, Any]:
        """(n,) the more probable class of each row."""
        classes = np.asarray(self.classes)
        predicted: np.ndarray[Any, Any] = classes[
            (self._positive_probability(self._hidden(hidden)) > 0.5).astype(int)
        ]
        return predicted

    def score(self, hidden: Any, labels: Any) -> float:
        """Accuracy on (n, d_model) activations and (n,) labels."""
        predicted = self.predict(hidden)
        truth = integer_labels(type(self).__name__, "labels", labels, n=len(predicted))
        return float(np.mean(predicted == truth))

    # -- concept arguments -------------------------------------------------------------------

    def _orientation(self, target_class: Any, margin: Any) -> tuple[float, float]:
        """+1 when target_class is the positive class, −1 for the other; and the margin."""
        classes = self._require_fitted()
        owner = type(self).__name__
        if isinstance(target_class, bool) or target_class not in classes:
            raise ValidationError(
                owner,
                "target_class",
                f"one of the fitted classes {list(classes)}",
                repr(target_class),
            )
        return (1.0 if target_class == classes[1] else -1.0), finite_number(owner, "margin", margin)
