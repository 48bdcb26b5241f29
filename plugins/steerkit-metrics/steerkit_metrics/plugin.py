"""Entry point of the steerkit-metrics distribution: registers its metrics.

Importing this module imports neither scikit-learn, torch nor the sentiment lexicons (they load
inside `compute`).
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_metrics.classifier import Classifier
from steerkit_metrics.fluency import Fluency
from steerkit_metrics.llm_judge import LLMJudge
from steerkit_metrics.model import KL, Perplexity
from steerkit_metrics.probe_shift import ProbeShift
from steerkit_metrics.readback import HeldOutProbe, Readback
from steerkit_metrics.sentiment import TextBlobSentiment, Vader
from steerkit_metrics.truthfulqa import TruthfulQAMC
from steerkit_metrics.vectors import Norm, SolveTime, Sparsity

METRICS = (
    ProbeShift,
    Sparsity,
    Norm,
    KL,
    Perplexity,
    Classifier,
    SolveTime,
    Vader,
    TextBlobSentiment,
    Fluency,
    Readback,
    HeldOutProbe,
    LLMJudge,
    TruthfulQAMC,
)


@steerkit.hookimpl
def register_metrics(register: Register) -> None:
    for metric in METRICS:
        register(metric)
