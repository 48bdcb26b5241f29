"""`logistic`: a linear probe, logit = w·h + b, fitted by scikit-learn's LogisticRegression.

Its concept is one half-space: for the positive class, logit ≥ τ ⟺ w·h ≥ τ − b.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from steerkit import Concept, ValidationError
from steerkit.checks import finite_number, integer
from steerkit_probes._base import BinaryProbe
from steerkit_probes._checks import FloatMatrix, binary_labels, hidden_matrix

__all__ = ["LogisticProbe", "sigmoid"]

logger = logging.getLogger(__name__)


def sigmoid(z: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """1 / (1 + e^−z) without overflow."""
    result: np.ndarray[Any, Any] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


class LogisticProbe(BinaryProbe):
    """L2-regularised logistic regression on raw activations.

    C: inverse regularisation strength (scikit-learn's); max_iter: lbfgs iterations.
    standardize: fit on standardised activations (the penalty then treats every dimension
    alike), then fold the scaling back so that `w` and `b` act on raw activations.

    After `fit`: `w` (d_model,), `b`, `accuracy` (on the training data), `converged`.
    """

    name = "logistic"

    def __init__(self, *, C: float = 1.0, max_iter: int = 1000, standardize: bool = False) -> None:
        self.C = finite_number("LogisticProbe", "C", C, positive=True)
        self.max_iter = integer("LogisticProbe", "max_iter", max_iter, minimum=1)
        if not isinstance(standardize, bool):
            raise ValidationError(
                "LogisticProbe", "standardize", "True or False", repr(standardize)
            )
        self.standardize = standardize
        self._w: np.ndarray[Any, Any] | None = None
        self._b = 0.0
        self._accuracy = float("nan")
        self.converged = False

    def __repr__(self) -> str:
        return (
            f"LogisticProbe(C={self.C!r}, max_iter={self.max_iter!r}, "
            f"standardize={self.standardize!r})"
        )

    def fit(self, hidden: Any, labels: Any, *, seed: int = 0) -> LogisticProbe:
        """Fit on (n, d_model) activations and (n,) labels of two classes; returns self."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        x = hidden_matrix("LogisticProbe", "hidden", hidden)
        y, classes = binary_labels("LogisticProbe", "labels", labels, n=x.shape[0])
        seed = integer("LogisticProbe", "seed", seed, minimum=0)
        mean = np.zeros(x.shape[1])
        scale = np.ones(x.shape[1])
        if self.standardize:
            mean = x.mean(axis=0)
            scale = x.std(axis=0)
            scale[scale == 0] = 1.0
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit((x - mean) / scale, (y == classes[1]).astype(np.int64))
        self.converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if not self.converged:
            logger.warning(
                "logistic probe: lbfgs did not converge in %d iterations; raise max_iter, "
                "lower C, or set standardize=True",
                self.max_iter,
            )
        coef = np.asarray(model.coef_, dtype=np.float64)[0] / scale
        self._w = coef
        self._b = float(model.intercept_[0]) - float(coef @ mean)
        self._classes = classes
        self._d_model = x.shape[1]
        self._accuracy = float(np.mean(self.predict(x) == y))
        return self

    # -- fitted values ---------------------------------------------------------------------------

    @property
    def w(self) -> np.ndarray[Any, Any]:
        """(d_model,) weights on raw activations; the logit of the positive class is w·h + b."""
        self._require_fitted()
        assert self._w is not None
        view: np.ndarray[Any, Any] = self._w.view()
        view.flags.writeable = False
        return view

    @property
    def b(self) -> float:
        """The intercept on raw activations."""
        self._require_fitted()
        return self._b

    @property
    def accuracy(self) -> float:
        """Accuracy on the training data (`score` gives it on any other)."""
        self._require_fitted()
        return self._accuracy

    def decision_function(self, hidden: Any) -> np.ndarray[Any, Any]:
        """(n,) logits of the positive class, w·h + b."""
        result: np.ndarray[Any, Any] = self._hidden(hidden) @ self.w + self._b
        return result

    def _positive_probability(self, hidden: FloatMatrix) -> np.ndarray[Any, Any]:
        return sigmoid(hidden @ self.w + self._b)

    def concept(self, *, target_class: int, margin: float) -> Concept:
        """The half-space where the probe classes `target_class` with a logit margin τ:
        positive class: w·h + b ≥ τ → W = w, t = τ − b;
        other class: −(w·h + b) ≥ τ → W = −w, t = τ + b."""
        sign, tau = self._orientation(target_class, margin)
        return Concept(
            directions=sign * self.w[None, :], thresholds=np.array([tau - sign * self._b])
        )
