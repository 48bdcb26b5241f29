"""`concept_subspace`: k orthonormal directions that separate two classes, with class-mean
thresholds — a concept of k half-spaces W h ≥ t.

Why these directions. The usual supervised PCA (top eigenvectors of the between-class
scatter, whitened or not by the within-class scatter, as in LDA) gives a single useful direction
for two classes: the between-class scatter has rank one. We use orthogonal Fisher discriminants
(Foley & Sammon, 1975): direction j maximises Fisher's criterion
    (wᵀΔ)² / (wᵀ S w),   Δ = μ₊ − μ₋,  S = (1 − α) S_w + α (tr S_w / d) I,
over unit vectors orthogonal to directions 1 … j−1, so direction 1 is the (shrinkage-)LDA
direction and each later one is the best separator left in the orthogonal complement, in
decreasing order of separation. S_w is the pooled within-class covariance; the shrinkage α keeps
S invertible when d_model exceeds the number of examples. With Q the earlier directions, the
optimum has the closed form w_j ∝ S⁻¹(Δ − Q ν), ν = (Qᵀ S⁻¹ Q)⁻¹ Qᵀ S⁻¹ Δ, and then
w_jᵀΔ = (Δ − Qν)ᵀ S⁻¹ (Δ − Qν) > 0: every direction already points towards the positive class.

Thresholds. For the target class c, the directions are sign-corrected (negated for the other
class) so that the target class scores higher, and t_j = w_jᵀ μ_c + margin · s_j, where
s_j = √(w_jᵀ S_w w_j) is the pooled within-class standard deviation of the projections on w_j.
Margin 0: "at least as far along every direction as the target class's mean"; each unit of
margin asks one more within-class standard deviation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steerkit import Concept, SteerkitError, ValidationError
from steerkit.checks import finite_number, integer
from steerkit_probes._base import BinaryProbe
from steerkit_probes._checks import FloatMatrix, binary_labels, hidden_matrix

__all__ = ["ConceptSubspaceProbe", "orthogonal_fisher_directions"]

#: a direction whose unnormalised length falls below this fraction of the first's carries no
#: separation left (Δ lies in the span of the earlier directions)
_DEGENERATE = 1e-9


def orthogonal_fisher_directions(
    delta: np.ndarray[Any, Any], scatter: np.ndarray[Any, Any], k: int
) -> np.ndarray[Any, Any]:
    """(k, d) orthonormal directions, each maximising (wᵀΔ)²/(wᵀSw) orthogonally to the
    earlier ones (Foley–Sammon); S must be symmetric positive definite."""
    from scipy.linalg import cho_factor, cho_solve

    factor = cho_factor(scatter)
    s_inv_delta = cho_solve(factor, delta)
    directions: list[np.ndarray[Any, Any]] = []
    s_inv_q = np.zeros((len(delta), 0))
    first_length = 0.0
    for j in range(k):
        if directions:
            q = np.array(directions).T  # (d, j)
            nu = np.linalg.solve(q.T @ s_inv_q, q.T @ s_inv_delta)
            w = s_inv_delta - s_inv_q @ nu
            w -= q @ (q.T @ w)  # re-orthogonalise against rounding
        else:
            w = s_inv_delta.copy()
        length = float(np.linalg.norm(w))
        if j == 0:
            first_length = length
        if length <= _DEGENERATE * max(first_length, 1e-300):
            raise SteerkitError(
                f"concept_subspace: only {j} direction(s) separate the classes (the class-mean "
                f"difference lies in their span); use k={max(j, 1)}"
            )
        w /= length
        directions.append(w)
        s_inv_q = np.column_stack([s_inv_q, cho_solve(factor, w)])
    return np.array(directions)


class ConceptSubspaceProbe(BinaryProbe):
    """k orthogonal Fisher directions (module docstring) with class-mean thresholds.

    k: number of directions (≤ d_model); shrinkage: α in [0, 1], the weight of the scaled
    identity in the within-class scatter; C, max_iter: the logistic regression on the k
    projections that gives `predict_proba`.

    After `fit`: `directions` (k, d_model), pointing towards the positive class `classes[1]`;
    `class_means` (2, k), each class's mean projection; `within_std` (k,), the pooled
    within-class standard deviation along each direction; `separation` (k,), the class-mean
    gap in those units (decreasing when shrinkage is 0; nearly so otherwise); `accuracy`
    (training data).
    """

    name = "concept_subspace"

    def __init__(
        self, *, k: int = 3, shrinkage: float = 0.1, C: float = 1.0, max_iter: int = 1000
    ) -> None:
        owner = "ConceptSubspaceProbe"
        self.k = integer(owner, "k", k, minimum=1)
        self.shrinkage = finite_number(owner, "shrinkage", shrinkage, at_most=1.0)
        if self.shrinkage < 0:
            raise ValidationError(owner, "shrinkage", "a number in [0, 1]", repr(shrinkage))
        self.C = finite_number(owner, "C", C, positive=True)
        self.max_iter = integer(owner, "max_iter", max_iter, minimum=1)
        self._directions: np.ndarray[Any, Any] | None = None
        self._class_means = np.zeros((2, 0))
        self._within_std = np.zeros(0)
        self._readout_w = np.zeros(0)
        self._readout_b = 0.0
        self._accuracy = float("nan")

    def __repr__(self) -> str:
        return (
            f"ConceptSubspaceProbe(k={self.k!r}, shrinkage={self.shrinkage!r}, C={self.C!r}, "
            f"max_iter={self.max_iter!r})"
        )

    def fit(self, hidden: Any, labels: Any, *, seed: int = 0) -> ConceptSubspaceProbe:
        """Fit on (n, d_model) activations and (n,) labels of two classes (≥ 2 each)."""
        from sklearn.linear_model import LogisticRegression

        owner = "ConceptSubspaceProbe"
        x = hidden_matrix(owner, "hidden", hidden)
        y, classes = binary_labels(owner, "labels", labels, n=x.shape[0], min_per_class=2)
        seed = integer(owner, "seed", seed, minimum=0)
        n, d = x.shape
        if self.k > d:
            raise ValidationError(owner, "k", f"at most d_model = {d}", repr(self.k))
        negative, positive = x[y == classes[0]], x[y == classes[1]]
        means = np.array([negative.mean(axis=0), positive.mean(axis=0)])
        centred = np.vstack([negative - means[0], positive - means[1]])
        within = centred.T @ centred / (n - 2)
        trace = float(np.trace(within))
        if trace <= 0:
            raise ValidationError(
                owner, "hidden", "activations that vary within each class", "identical rows"
            )
        alpha = self.shrinkage
        scatter = (1 - alpha) * within + alpha * (trace / d) * np.eye(d)
        if alpha == 0 and np.linalg.matrix_rank(within) < d:
            raise ValidationError(
                owner,
                "shrinkage",
                f"> 0 (the within-class covariance is singular: {n} examples, d_model {d})",
                repr(self.shrinkage),
            )
        directions = orthogonal_fisher_directions(means[1] - means[0], scatter, self.k)
        self._directions = directions
        self._class_means = means @ directions.T  # (2, k)
        self._within_std = np.sqrt(np.einsum("kd,de,ke->k", directions, within, directions))
        projections = x @ directions.T
        readout = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)
        readout.fit(projections, (y == classes[1]).astype(np.int64))
        self._readout_w = np.asarray(readout.coef_, dtype=np.float64)[0]
        self._readout_b = float(readout.intercept_[0])
        self._classes = classes
        self._d_model = d
        self._accuracy = float(np.mean(self.predict(x) == y))
        return self

    # -- fitted values ---------------------------------------------------------------------------

    def _fitted(self) -> np.ndarray[Any, Any]:
        self._require_fitted()
        assert self._directions is not None
        return self._directions

    @staticmethod
    def _readonly(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        view: np.ndarray[Any, Any] = array.view()
        view.flags.writeable = False
        return view

    @property
    def directions(self) -> np.ndarray[Any, Any]:
        """(k, d_model) orthonormal directions, pointing towards the positive class."""
        return self._readonly(self._fitted())

    @property
    def class_means(self) -> np.ndarray[Any, Any]:
        """(2, k) mean projection of each class (rows in the order of `classes`)."""
        self._fitted()
        return self._readonly(self._class_means)

    @property
    def within_std(self) -> np.ndarray[Any, Any]:
        """(k,) pooled within-class standard deviation of the projections."""
        self._fitted()
        return self._readonly(self._within_std)

    @property
    def separation(self) -> np.ndarray[Any, Any]:
        """(k,) class-mean gap along each direction in within-class standard deviations."""
        self._fitted()
        gap = self._class_means[1] - self._class_means[0]
        return self._readonly(gap / np.where(self._within_std > 0, self._within_std, np.inf))

    @property
    def accuracy(self) -> float:
        """Accuracy on the training data."""
        self._require_fitted()
        return self._accuracy

    def transform(self, hidden: Any) -> np.ndarray[Any, Any]:
        """(n, k) projections on the directions."""
        result: np.ndarray[Any, Any] = self._hidden(hidden) @ self._fitted().T
        return result

    def _positive_probability(self, hidden: FloatMatrix) -> np.ndarray[Any, Any]:
        from steerkit_probes.logistic import sigmoid

        return sigmoid(hidden @ self._fitted().T @ self._readout_w + self._readout_b)

    def concept(self, *, target_class: int, margin: float) -> Concept:
        """k half-spaces: σ w_j·h ≥ σ m_j + margin · s_j for every j, where σ = +1 for the
        positive class and −1 for the other, m_j the target class's mean projection and s_j
        the within-class standard deviation along w_j."""
        sign, margin = self._orientation(target_class, margin)
        row = 1 if sign > 0 else 0
        thresholds = sign * self._class_means[row] + margin * self._within_std
        return Concept(directions=sign * self._fitted(), thresholds=thresholds)
