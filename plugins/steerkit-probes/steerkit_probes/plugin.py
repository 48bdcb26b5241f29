"""Entry point of the steerkit-probes distribution: registers `logistic` and `concept_subspace`.

Importing this module imports neither scikit-learn nor scipy (they load inside `fit`).
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_probes.logistic import LogisticProbe
from steerkit_probes.subspace import ConceptSubspaceProbe


@steerkit.hookimpl
def register_probes(register: Register) -> None:
    register(LogisticProbe)
    register(ConceptSubspaceProbe)
