"""Which layer holds the concept: cross-validated probe accuracy at every layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from steerkit import Probe, ValidationError
from steerkit.checks import integer
from steerkit_probes._checks import binary_labels, hidden_matrix

__all__ = ["LayerSweep", "sweep_layers"]


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _fold_rows(rows: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(_floats(row) for row in rows)


@attrs.frozen
class LayerSweep:
    """Cross-validated accuracy of one probe at each layer (immutable and picklable).

    layers: the layers swept, increasing; mean / std: accuracy over the folds at each layer
    (std with ddof 0); fold_accuracy: each fold's accuracy at each layer; best_layer: the
    highest mean accuracy (the earliest layer on a tie).
    """

    probe: str
    folds: int
    seed: int
    layers: tuple[int, ...] = attrs.field(converter=_ints)
    mean: tuple[float, ...] = attrs.field(converter=_floats)
    std: tuple[float, ...] = attrs.field(converter=_floats)
    fold_accuracy: tuple[tuple[float, ...], ...] = attrs.field(converter=_fold_rows)
    best_layer: int

    @property
    def accuracy(self) -> dict[int, tuple[float, float]]:
        """layer → (mean, std) of the accuracy over the folds."""
        return {layer: (m, s) for layer, m, s in zip(self.layers, self.mean, self.std)}

    @property
    def best_accuracy(self) -> float:
        """The mean accuracy at `best_layer`."""
        return self.mean[self.layers.index(self.best_layer)]


def _probe_class(probe: str | type[Probe]) -> tuple[str, type[Probe]]:
    if isinstance(probe, type) and issubclass(probe, Probe):
        return getattr(probe, "name", probe.__name__), probe
    if not isinstance(probe, str):
        raise ValidationError(
            "sweep_layers", "probe", "a probe name or Probe subclass", repr(probe)
        )
    from steerkit_probes.logistic import LogisticProbe
    from steerkit_probes.subspace import ConceptSubspaceProbe

    own: dict[str, type[Probe]] = {
        LogisticProbe.name: LogisticProbe,
        ConceptSubspaceProbe.name: ConceptSubspaceProbe,
    }
    if probe in own:
        return probe, own[probe]
    import steerkit

    return probe, steerkit.get_host().registry("probe").get(probe)  # lists the names if unknown


def sweep_layers(
    activations_by_layer: Mapping[int, Any],
    labels: Any,
    *,
    probe: str | type[Probe] = "logistic",
    folds: int = 5,
    seed: int = 0,
    probe_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> LayerSweep:
    """Fit `probe` on each layer's (n, d_model) activations with stratified k-fold
    cross-validation (scikit-learn's StratifiedKFold, shuffled with `seed`; the same folds at
    every layer) and return the accuracy per layer and the best layer.

    probe: a registered probe name or a Probe subclass, built with `probe_options`.
    progress: a progress bar over layers (None: only on a terminal).
    """
    from sklearn.model_selection import StratifiedKFold
    from tqdm.auto import tqdm

    owner = "sweep_layers"
    if not isinstance(activations_by_layer, Mapping) or not activations_by_layer:
        raise ValidationError(
            owner,
            "activations_by_layer",
            "a non-empty mapping layer → (n, d_model) activations",
            repr(type(activations_by_layer).__name__),
        )
    bad = [k for k in activations_by_layer if isinstance(k, bool) or not isinstance(k, int)]
    if bad:
        raise ValidationError(owner, "activations_by_layer", "integer layer keys", repr(bad[0]))
    layers = sorted(activations_by_layer)
    first = hidden_matrix(
        owner, f"activations_by_layer[{layers[0]}]", activations_by_layer[layers[0]]
    )
    n = first.shape[0]
    y, _ = binary_labels(owner, "labels", labels, n=n)
    folds = integer(owner, "folds", folds, minimum=2)
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if folds > smallest:
        raise ValidationError(
            owner, "folds", f"at most {smallest} (the examples of the smallest class)", repr(folds)
        )
    seed = integer(owner, "seed", seed, minimum=0)
    name, probe_class = _probe_class(probe)
    options = dict(probe_options or {})
    probe_class(**options)  # bad options fail here, before any fitting
    hidden = {
        layer: hidden_matrix(
            owner, f"activations_by_layer[{layer}]", activations_by_layer[layer], n=n
        )
        for layer in layers
    }
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(first, y))
    per_fold: list[list[float]] = []
    disable = None if progress is None else not progress
    for layer in tqdm(layers, desc=f"{name} probe per layer", disable=disable, leave=False):
        x = hidden[layer]
        scores = []
        for train, test in splits:
            fitted = probe_class(**options).fit(x[train], y[train], seed=seed)
            scores.append(float(fitted.score(x[test], y[test])))
        per_fold.append(scores)
    means = [float(np.mean(scores)) for scores in per_fold]
    return LayerSweep(
        probe=name,
        folds=folds,
        seed=seed,
        layers=layers,
        mean=means,
        std=[float(np.std(scores)) for scores in per_fold],
        fold_accuracy=per_fold,
        best_layer=layers[int(np.argmax(means))],
    )
