"""Entry point of the steerkit-metrics distribution: registers the seven metrics.

Importing this module imports neither scikit-learn nor torch (they load inside `compute`).
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_metrics.classifier import Classifier
from steerkit_metrics.model import KL, Perplexity
from steerkit_metrics.probe_shift import ProbeShift
from steerkit_metrics.vectors import Norm, SolveTime, Sparsity


@steerkit.hookimpl
def register_metrics(register: Register) -> None:
    for metric in (ProbeShift, Sparsity, Norm, KL, Perplexity, Classifier, SolveTime):
        register(metric)
