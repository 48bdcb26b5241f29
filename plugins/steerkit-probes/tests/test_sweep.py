"""`sweep_layers`: picks the separable layer, and its fold accuracies are scikit-learn's
cross-validation of the same estimator on the same folds."""

from __future__ import annotations

import pickle

import attrs
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from steerkit_probes import ConceptSubspaceProbe, LayerSweep, sweep_layers

import steerkit
from steerkit import UnknownPluginError, ValidationError


def three_layers(rng: np.random.Generator) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Layers 0 and 8 are noise; layer 4 separates the classes along one direction."""
    n, d = 200, 8
    labels = rng.permutation(np.repeat([0, 1], n // 2))
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    layers = {
        0: rng.normal(size=(n, d)),
        4: rng.normal(size=(n, d)) + np.outer(2 * labels - 1, 2.0 * u),
        8: 10.0 * rng.normal(size=(n, d)),
    }
    return layers, labels


def test_picks_the_separable_layer(steerkit_rng: np.random.Generator) -> None:
    layers, labels = three_layers(steerkit_rng)
    sweep = sweep_layers(layers, labels, folds=5, seed=0)
    assert isinstance(sweep, LayerSweep)
    assert sweep.best_layer == 4 and sweep.layers == (0, 4, 8)
    assert sweep.accuracy[4][0] > 0.9 and sweep.best_accuracy == sweep.accuracy[4][0]
    assert sweep.accuracy[0][0] < 0.75 and sweep.accuracy[8][0] < 0.75
    assert all(len(folds) == 5 for folds in sweep.fold_accuracy)


def test_fold_accuracies_are_scikit_learns_cross_validation(
    steerkit_rng: np.random.Generator,
) -> None:
    layers, labels = three_layers(steerkit_rng)
    sweep = sweep_layers(layers, labels, folds=4, seed=3)
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=3)
    for i, layer in enumerate(sweep.layers):
        estimator = LogisticRegression(max_iter=1000, random_state=3)
        expected = cross_val_score(estimator, layers[layer], labels, cv=folds)
        np.testing.assert_allclose(sweep.fold_accuracy[i], expected)
        assert sweep.accuracy[layer] == pytest.approx((expected.mean(), expected.std()))


def test_other_probes_options_and_determinism(steerkit_rng: np.random.Generator) -> None:
    layers, labels = three_layers(steerkit_rng)
    by_name = sweep_layers(layers, labels, probe="concept_subspace", probe_options={"k": 2})
    by_class = sweep_layers(layers, labels, probe=ConceptSubspaceProbe, probe_options={"k": 2})
    assert by_name == by_class and by_name.probe == "concept_subspace"
    assert by_name.best_layer == 4
    assert pickle.loads(pickle.dumps(by_name)) == by_name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        by_name.best_layer = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        sweep_layers(layers, labels, probe_options={"no_such_option": 1})


def test_an_unknown_probe_lists_the_registered_ones(steerkit_rng: np.random.Generator) -> None:
    layers, labels = three_layers(steerkit_rng)
    with (
        steerkit.use_host(steerkit.PluginHost(entry_points=False)),
        pytest.raises(UnknownPluginError, match="unknown probe 'svm'"),
    ):
        sweep_layers(layers, labels, probe="svm")


def test_bad_input_names_the_field(steerkit_rng: np.random.Generator) -> None:
    layers, labels = three_layers(steerkit_rng)
    with pytest.raises(ValidationError, match="activations_by_layer: expected a non-empty"):
        sweep_layers({}, labels)
    with pytest.raises(ValidationError, match="activations_by_layer: expected integer layer keys"):
        sweep_layers({"4": layers[4]}, labels)
    with pytest.raises(
        ValidationError, match=r"activations_by_layer\[8\]: expected shape \(200, d_model\)"
    ):
        sweep_layers({0: layers[0], 8: layers[8][:150]}, labels)
    broken = layers[4].copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValidationError, match=r"activations_by_layer\[4\]: expected finite values"):
        sweep_layers({0: layers[0], 4: broken}, labels)
    with pytest.raises(ValidationError, match="labels: expected two classes"):
        sweep_layers(layers, np.zeros(200, dtype=int))
    with pytest.raises(ValidationError, match="folds: expected at most 3"):
        sweep_layers(layers, np.r_[np.zeros(197, dtype=int), [1, 1, 1]])
    with pytest.raises(ValidationError, match="folds: expected an integer ≥ 2"):
        sweep_layers(layers, labels, folds=1)
