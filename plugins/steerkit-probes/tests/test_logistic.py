"""`logistic`: recovers a known direction, matches scikit-learn, and its concept means exactly
"logit ≥ τ" (checked by hand)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from steerkit_probes import LogisticProbe

from steerkit import Concept, SteerkitError, ValidationError


def gaussian_task(
    rng: np.random.Generator, n: int = 600, d: int = 16, gap: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two Gaussian classes N(c ± gap·u, I) around an offset c: (hidden, labels, u)."""
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    offset = 3.0 * rng.normal(size=d)
    labels = rng.permutation(np.repeat([0, 1], n // 2))
    hidden = offset + rng.normal(size=(n, d)) + np.outer(2 * labels - 1, gap * u)
    return hidden, labels, u


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_recovers_the_separating_direction(steerkit_rng: np.random.Generator) -> None:
    hidden, labels, u = gaussian_task(steerkit_rng, n=1000)
    probe = LogisticProbe().fit(hidden[:600], labels[:600], seed=0)
    assert probe.converged
    assert cosine(probe.w, u) > 0.9
    assert probe.accuracy > 0.9
    assert probe.score(hidden[600:], labels[600:]) > 0.9  # held out


def test_w_and_b_are_scikit_learns_and_act_on_raw_activations(
    steerkit_rng: np.random.Generator,
) -> None:
    hidden, labels, _ = gaussian_task(steerkit_rng)
    probe = LogisticProbe(C=0.5).fit(hidden, labels)
    reference = LogisticRegression(C=0.5, max_iter=1000, random_state=0).fit(hidden, labels)
    np.testing.assert_allclose(probe.w, reference.coef_[0], rtol=1e-10, atol=1e-12)
    assert probe.b == pytest.approx(reference.intercept_[0], rel=1e-10)
    np.testing.assert_allclose(probe.predict_proba(hidden), reference.predict_proba(hidden))
    np.testing.assert_allclose(probe.decision_function(hidden), reference.decision_function(hidden))
    assert probe.accuracy == pytest.approx(reference.score(hidden, labels))


def test_standardize_is_folded_back_into_w_and_b(steerkit_rng: np.random.Generator) -> None:
    hidden, labels, _ = gaussian_task(steerkit_rng)
    hidden[:, 3] *= 50.0  # scales that differ a lot
    probe = LogisticProbe(standardize=True).fit(hidden, labels)
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        hidden, labels
    )
    np.testing.assert_allclose(
        hidden @ probe.w + probe.b, reference.decision_function(hidden), rtol=1e-9, atol=1e-9
    )


def test_concept_for_the_positive_class_is_logit_at_least_tau(
    steerkit_rng: np.random.Generator,
) -> None:
    hidden, labels, _ = gaussian_task(steerkit_rng)
    probe = LogisticProbe().fit(hidden, labels)
    w, b, tau = probe.w, probe.b, 1.5
    concept = probe.concept(target_class=1, margin=tau)
    assert isinstance(concept, Concept) and concept.k == 1
    np.testing.assert_array_equal(concept.directions[0], w)
    assert concept.thresholds[0] == tau - b
    logits = np.array([sum(wi * hi for wi, hi in zip(w, h)) + b for h in hidden[:20]])  # by hand
    np.testing.assert_allclose(concept.rhs(hidden[:20])[:, 0], tau - logits, atol=1e-12)
    np.testing.assert_array_equal(concept.satisfied(hidden[:20]), logits >= tau)
    # adding exactly r along w / ‖w‖² puts the logit on τ
    r = concept.rhs(hidden[:5])[:, 0]
    steered = hidden[:5] + np.outer(r, w) / (w @ w)
    np.testing.assert_allclose(probe.decision_function(steered), tau, atol=1e-9)


def test_concept_for_the_other_class_is_minus_logit_at_least_tau(
    steerkit_rng: np.random.Generator,
) -> None:
    hidden, labels, _ = gaussian_task(steerkit_rng)
    probe = LogisticProbe().fit(hidden, labels)
    w, b, tau = probe.w, probe.b, 0.75
    concept = probe.concept(target_class=0, margin=tau)
    np.testing.assert_array_equal(concept.directions[0], -w)
    assert concept.thresholds[0] == tau + b
    logits = hidden[:20] @ w + b
    np.testing.assert_allclose(concept.rhs(hidden[:20])[:, 0], tau + logits, atol=1e-12)
    np.testing.assert_array_equal(concept.satisfied(hidden[:20]), -logits >= tau)


def test_any_two_integer_classes(steerkit_rng: np.random.Generator) -> None:
    hidden, labels, u = gaussian_task(steerkit_rng)
    named = np.where(labels == 1, 7, 3)
    probe = LogisticProbe().fit(hidden, named)
    assert probe.classes == (3, 7)
    assert cosine(probe.w, u) > 0.9  # the direction points towards 7, the larger label
    assert set(np.unique(probe.predict(hidden))) == {3, 7}
    assert probe.score(hidden, named) == probe.accuracy > 0.9
    np.testing.assert_array_equal(probe.concept(target_class=7, margin=0.0).directions[0], probe.w)
    with pytest.raises(ValidationError, match=r"target_class: expected one of the fitted classes"):
        probe.concept(target_class=1, margin=0.0)


def test_refuses_before_fit_and_bad_arguments(steerkit_rng: np.random.Generator) -> None:
    probe = LogisticProbe()
    with pytest.raises(SteerkitError, match="not fitted: call fit"):
        probe.concept(target_class=1, margin=0.0)
    with pytest.raises(SteerkitError, match="not fitted"):
        _ = probe.w
    hidden, labels, _ = gaussian_task(steerkit_rng, n=40)
    probe.fit(hidden, labels)
    for margin in (float("nan"), float("inf"), "1"):
        with pytest.raises(ValidationError, match="margin: expected a finite number"):
            probe.concept(target_class=1, margin=margin)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"hidden: expected shape \(n, 16\)"):
        probe.predict_proba(hidden[:, :5])
    with pytest.raises(ValidationError, match="C: expected a positive finite number"):
        LogisticProbe(C=0)
    with pytest.raises(ValidationError, match="max_iter: expected an integer ≥ 1"):
        LogisticProbe(max_iter=0)
    with pytest.raises(ValidationError, match="standardize: expected True or False"):
        LogisticProbe(standardize="yes")  # type: ignore[arg-type]


def test_a_convergence_failure_is_reported_not_hidden(
    steerkit_rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    hidden, labels, _ = gaussian_task(steerkit_rng)
    probe = LogisticProbe(max_iter=1).fit(hidden * 100, labels)
    assert not probe.converged
    assert "did not converge" in caplog.text


@pytest.mark.needs_torch
def test_accepts_torch_tensors(steerkit_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    hidden, labels, _ = gaussian_task(steerkit_rng, n=100)
    from_numpy = LogisticProbe().fit(hidden.astype(np.float32), labels)
    from_torch = LogisticProbe().fit(
        torch.tensor(hidden, dtype=torch.float32), torch.tensor(labels)
    )
    np.testing.assert_allclose(from_torch.w, from_numpy.w)
