"""`concept_subspace`: orthonormal, sign-corrected orthogonal Fisher directions (checked
against an independent computation in the orthogonal complement), class-mean thresholds and
margins by hand, and its readout against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import null_space
from sklearn.linear_model import LogisticRegression
from steerkit_probes import ConceptSubspaceProbe

from steerkit import SteerkitError, ValidationError


def anisotropic_task(
    rng: np.random.Generator, n_per_class: int = 300, d: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Two classes with a shared, strongly anisotropic covariance whose means differ in three
    coordinates, so several directions carry separation."""
    mixing = rng.normal(size=(d, d)) * np.linspace(0.3, 3.0, d)
    delta = np.zeros(d)
    delta[:3] = [4.0, -3.0, 2.0]
    noise = rng.normal(size=(2 * n_per_class, d)) @ mixing.T
    labels = np.repeat([0, 1], n_per_class)
    hidden = noise + np.outer(labels, delta) + 5.0
    order = rng.permutation(len(labels))
    return hidden[order], labels[order]


def hand_statistics(
    hidden: np.ndarray, labels: np.ndarray, shrinkage: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(μ₀, μ₁, pooled within-class covariance S_w, shrunk scatter S), written out plainly."""
    mu0, mu1 = hidden[labels == 0].mean(0), hidden[labels == 1].mean(0)
    d = hidden.shape[1]
    within = np.zeros((d, d))
    for row, label in zip(hidden, labels):
        centred = row - (mu1 if label else mu0)
        within += np.outer(centred, centred)
    within /= len(labels) - 2
    scatter = (1 - shrinkage) * within + shrinkage * np.trace(within) / d * np.eye(d)
    return mu0, mu1, within, scatter


def fisher(w: np.ndarray, delta: np.ndarray, scatter: np.ndarray) -> float:
    return float((w @ delta) ** 2 / (w @ scatter @ w))


Fitted = tuple[ConceptSubspaceProbe, np.ndarray, np.ndarray]


@pytest.fixture
def fitted(steerkit_rng: np.random.Generator) -> Fitted:
    hidden, labels = anisotropic_task(steerkit_rng)
    return ConceptSubspaceProbe(k=3, shrinkage=0.1).fit(hidden, labels), hidden, labels


def test_directions_are_orthonormal_and_point_to_the_positive_class(fitted: Fitted) -> None:
    probe, hidden, labels = fitted
    w = probe.directions
    assert w.shape == (3, 12)
    np.testing.assert_allclose(w @ w.T, np.eye(3), atol=1e-10)
    mu0, mu1, _, _ = hand_statistics(hidden, labels, 0.1)
    assert np.all(w @ mu1 > w @ mu0)
    np.testing.assert_allclose(probe.class_means, np.array([w @ mu0, w @ mu1]), atol=1e-9)


def test_directions_are_the_orthogonal_fisher_discriminants(fitted: Fitted) -> None:
    """Direction j, recomputed independently as the Fisher direction inside the orthogonal
    complement of directions 1 … j−1 (an explicit basis B: w ∝ B (BᵀSB)⁻¹ BᵀΔ)."""
    probe, hidden, labels = fitted
    mu0, mu1, _, scatter = hand_statistics(hidden, labels, 0.1)
    delta = mu1 - mu0
    rng = np.random.default_rng(0)
    for j in range(3):
        basis = np.eye(12) if j == 0 else null_space(probe.directions[:j])
        expected = basis @ np.linalg.solve(basis.T @ scatter @ basis, basis.T @ delta)
        expected /= np.linalg.norm(expected)
        np.testing.assert_allclose(probe.directions[j], expected, atol=1e-8)
        # and no random unit vector in that complement separates better
        best = fisher(probe.directions[j], delta, scatter)
        for _ in range(200):
            v = basis @ rng.normal(size=basis.shape[1])
            assert fisher(v / np.linalg.norm(v), delta, scatter) <= best * (1 + 1e-9)
    ratios = [fisher(w, delta, scatter) for w in probe.directions]
    assert ratios[0] > ratios[1] > ratios[2] > 0


def test_thresholds_are_the_target_class_mean_projections(fitted: Fitted) -> None:
    probe, hidden, labels = fitted
    mu0, mu1, _, _ = hand_statistics(hidden, labels, 0.1)
    w = probe.directions
    positive = probe.concept(target_class=1, margin=0.0)
    np.testing.assert_array_equal(positive.directions, w)
    np.testing.assert_allclose(positive.thresholds, w @ mu1, atol=1e-9)
    negative = probe.concept(target_class=0, margin=0.0)
    np.testing.assert_array_equal(negative.directions, -w)
    np.testing.assert_allclose(negative.thresholds, -(w @ mu0), atol=1e-9)
    # sign-corrected: the target class's mean scores higher than the other's on every row
    assert np.all(positive.directions @ mu1 > positive.directions @ mu0)
    assert np.all(negative.directions @ mu0 > negative.directions @ mu1)
    # each class mean sits exactly on its own thresholds (rhs 0) and short of the other's
    np.testing.assert_allclose(positive.rhs(mu1)[0], 0.0, atol=1e-9)
    assert np.all(positive.rhs(mu0)[0] > 0)


def test_margin_is_counted_in_within_class_standard_deviations(fitted: Fitted) -> None:
    probe, hidden, labels = fitted
    mu0, mu1, _, _ = hand_statistics(hidden, labels, 0.1)
    w = probe.directions
    projections = hidden @ w.T
    means = np.where(labels[:, None] == 1, w @ mu1, w @ mu0)
    std = np.sqrt(((projections - means) ** 2).sum(0) / (len(labels) - 2))  # by hand
    np.testing.assert_allclose(probe.within_std, std, rtol=1e-10)
    margin = 0.5
    np.testing.assert_allclose(
        probe.concept(target_class=1, margin=margin).thresholds, w @ mu1 + margin * std
    )
    np.testing.assert_allclose(
        probe.concept(target_class=0, margin=margin).thresholds, -(w @ mu0) + margin * std
    )
    np.testing.assert_allclose(probe.separation, (w @ mu1 - w @ mu0) / std)


def test_predict_proba_is_a_logistic_fit_on_the_projections(fitted: Fitted) -> None:
    probe, hidden, labels = fitted
    projections = hidden @ probe.directions.T
    reference = LogisticRegression(max_iter=1000, random_state=0).fit(projections, labels)
    np.testing.assert_allclose(
        probe.predict_proba(hidden), reference.predict_proba(projections), atol=1e-10
    )
    np.testing.assert_allclose(probe.transform(hidden), projections)
    assert probe.accuracy == pytest.approx(reference.score(projections, labels))
    assert probe.accuracy > 0.9


def test_one_direction_on_isotropic_data_is_the_mean_difference(
    steerkit_rng: np.random.Generator,
) -> None:
    d = 10
    u = steerkit_rng.normal(size=d)
    u /= np.linalg.norm(u)
    labels = np.repeat([0, 1], 400)
    hidden = steerkit_rng.normal(size=(800, d)) + np.outer(2 * labels - 1, 1.5 * u)
    probe = ConceptSubspaceProbe(k=1).fit(hidden, labels)
    assert float(probe.directions[0] @ u) > 0.95
    assert probe.accuracy > 0.9


def test_a_direction_that_separates_nothing_is_refused(steerkit_rng: np.random.Generator) -> None:
    """shrinkage 1: S ∝ I, so direction 1 is Δ itself and nothing orthogonal to it separates."""
    hidden, labels = anisotropic_task(steerkit_rng)
    with pytest.raises(
        SteerkitError, match=r"only 1 direction\(s\) separate the classes .*; use k=1"
    ):
        ConceptSubspaceProbe(k=2, shrinkage=1.0).fit(hidden, labels)


def test_bad_options_and_data_name_the_field(steerkit_rng: np.random.Generator) -> None:
    hidden, labels = anisotropic_task(steerkit_rng, n_per_class=20)
    with pytest.raises(ValidationError, match="k: expected at most d_model = 12"):
        ConceptSubspaceProbe(k=13).fit(hidden, labels)
    with pytest.raises(ValidationError, match="k: expected an integer ≥ 1"):
        ConceptSubspaceProbe(k=0)
    with pytest.raises(ValidationError, match="shrinkage: expected"):
        ConceptSubspaceProbe(shrinkage=1.5)
    with pytest.raises(ValidationError, match="shrinkage: expected a number in"):
        ConceptSubspaceProbe(shrinkage=-0.1)
    with pytest.raises(ValidationError, match="shrinkage: expected > 0 .*singular"):
        ConceptSubspaceProbe(shrinkage=0.0).fit(hidden[:8], labels[:8] * 0 + np.arange(8) % 2)
    with pytest.raises(ValidationError, match="labels: expected at least 2 examples of each"):
        ConceptSubspaceProbe().fit(hidden[:3], [0, 0, 1])
    with pytest.raises(ValidationError, match="hidden: expected activations that vary"):
        ConceptSubspaceProbe().fit(np.ones((6, 4)), [0, 1, 0, 1, 0, 1])
