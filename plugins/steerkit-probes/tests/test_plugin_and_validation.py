"""Discovery through the entry point (light: no scikit-learn or scipy at import), and the
checks every probe applies to its input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from steerkit_probes import ConceptSubspaceProbe, LogisticProbe

import steerkit
from steerkit import ValidationError

PROBES = [LogisticProbe, ConceptSubspaceProbe]


def test_the_entry_point_registers_both_probes_with_their_distribution() -> None:
    host = steerkit.PluginHost(allow=["steerkit-probes"], block=())
    rows = {r.name: r for r in host.rows() if r.kind == "probe"}
    assert set(rows) == {"logistic", "concept_subspace"}
    for row in rows.values():
        assert (row.distribution, row.status, row.plugin) == ("steerkit-probes", "loaded", "probes")
    assert host.registry("probe").get("logistic") is LogisticProbe
    assert host.registry("probe").get("concept_subspace") is ConceptSubspaceProbe


def test_discovery_imports_neither_sklearn_nor_scipy() -> None:
    code = (
        "import sys, steerkit_probes.plugin, steerkit_probes\n"
        "heavy = [m for m in ('sklearn', 'scipy', 'torch', 'tqdm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat([0, 1], 10)
    return rng.normal(size=(20, 4)) + labels[:, None], labels


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_wrong_shapes_one_class_and_nan_name_the_field(
    probe: type, steerkit_rng: np.random.Generator
) -> None:
    hidden, labels = data(steerkit_rng)
    owner = probe.__name__
    cases = [
        (hidden[:, 0], labels, rf"{owner}.hidden: expected a 2-d array"),
        (hidden[None], labels, rf"{owner}.hidden: expected a 2-d array"),
        (hidden[:0], labels[:0], rf"{owner}.hidden: expected a 2-d array .*non-empty"),
        (hidden, labels[:-1], rf"{owner}.labels: expected a 1-d array of 20 labels"),
        (hidden, labels[:, None], rf"{owner}.labels: expected a 1-d array of 20 labels"),
        (hidden, np.zeros(20), rf"{owner}.labels: expected two classes .*one class only"),
        (hidden, np.arange(20) % 3, rf"{owner}.labels: expected two classes .*3 classes"),
        (hidden, labels + 0.5, rf"{owner}.labels: expected integer class labels"),
        (hidden, ["a"] * 20, rf"{owner}.labels: expected an array of numbers"),
        (np.where(np.eye(20, 4) > 0, np.nan, hidden), labels, rf"{owner}.hidden: expected finite"),
        (np.where(np.eye(20, 4) > 0, np.inf, hidden), labels, rf"{owner}.hidden: expected finite"),
        (hidden, np.where(np.arange(20) == 3, np.nan, labels), rf"{owner}.labels: expected finite"),
    ]
    for bad_hidden, bad_labels, message in cases:
        with pytest.raises(ValidationError, match=message):
            probe().fit(bad_hidden, bad_labels)
    fitted = probe().fit(hidden, labels)
    with pytest.raises(ValidationError, match=rf"{owner}.hidden: expected shape \(n, 4\)"):
        fitted.predict_proba(hidden[:, :3])
    with pytest.raises(ValidationError, match=rf"{owner}.labels: expected a 1-d array of 20"):
        fitted.score(hidden, labels[:5])
    with pytest.raises(ValidationError, match=rf"{owner}.seed: expected an integer ≥ 0"):
        probe().fit(hidden, labels, seed=-1)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_predict_proba_rows_are_probabilities(
    probe: type, steerkit_rng: np.random.Generator
) -> None:
    hidden, labels = data(steerkit_rng)
    proba = probe().fit(hidden, labels).predict_proba(hidden)
    assert proba.shape == (20, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all((proba >= 0) & (proba <= 1))
