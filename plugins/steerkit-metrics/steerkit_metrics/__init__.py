"""steerkit-metrics: how a steering vector did — `probe_shift`, `sparsity`, `norm`, `kl`,
`perplexity`, `classifier` (a downstream text classifier on generated text, pluggable through
`CLASSIFIERS`) and `solve_time` — each a steerkit.Metric returning one value per input."""

from __future__ import annotations

from steerkit_metrics.classifier import Classifier
from steerkit_metrics.model import KL, Perplexity, kl_divergence, log_softmax
from steerkit_metrics.probe_shift import ProbeShift, target_column
from steerkit_metrics.text_classifiers import (
    CLASSIFIERS,
    TextClassifier,
    TfidfLogistic,
    fitted_classifier,
    get_classifier,
    held_out_accuracy,
    held_out_split,
)
from steerkit_metrics.vectors import Norm, SolveTime, Sparsity

__all__ = [
    "CLASSIFIERS",
    "KL",
    "Classifier",
    "Norm",
    "Perplexity",
    "ProbeShift",
    "SolveTime",
    "Sparsity",
    "TextClassifier",
    "TfidfLogistic",
    "fitted_classifier",
    "get_classifier",
    "held_out_accuracy",
    "held_out_split",
    "kl_divergence",
    "log_softmax",
    "target_column",
]
