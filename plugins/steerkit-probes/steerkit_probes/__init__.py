"""steerkit-probes: linear probes that hand steering methods a concept (steerkit.Concept, the
half-spaces W h ≥ t) — `logistic` (one direction) and `concept_subspace` (k orthogonal Fisher
directions) — and `sweep_layers`, cross-validated probe accuracy per layer."""

from __future__ import annotations

from steerkit_probes.logistic import LogisticProbe
from steerkit_probes.subspace import ConceptSubspaceProbe, orthogonal_fisher_directions
from steerkit_probes.sweep import LayerSweep, sweep_layers

__all__ = [
    "ConceptSubspaceProbe",
    "LayerSweep",
    "LogisticProbe",
    "orthogonal_fisher_directions",
    "sweep_layers",
]
