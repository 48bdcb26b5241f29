"""steerkit-metrics: how a steering vector did — `probe_shift`, `sparsity`, `norm`, `kl`,
`perplexity`, `classifier` (a downstream text classifier on generated text, pluggable through
`CLASSIFIERS`), `solve_time`, and the judges of generated text: `vader` and `textblob`
(lexicon sentiment), `readback` and `heldout_probe` (a probe at another layer), `fluency`
(perplexity and repetition), `truthfulqa_mc` (MC1/MC2) and the optional `llm_judge` — each a
steerkit.Metric returning one value per input."""

from __future__ import annotations

from steerkit_metrics.classifier import Classifier
from steerkit_metrics.fluency import Fluency, perplexity_score, repetition
from steerkit_metrics.llm_judge import LLMJudge, parse_rating
from steerkit_metrics.model import KL, Perplexity, kl_divergence, log_softmax, perplexities
from steerkit_metrics.probe_shift import ProbeShift, probe_shift_columns, target_column
from steerkit_metrics.readback import HeldOutProbe, Readback, held_out_hook
from steerkit_metrics.sentiment import LexiconSentiment, TextBlobSentiment, Vader, concept_score
from steerkit_metrics.text_classifiers import (
    CLASSIFIERS,
    TextClassifier,
    TfidfLogistic,
    fitted_classifier,
    get_classifier,
    held_out_accuracy,
    held_out_split,
)
from steerkit_metrics.truthfulqa import TruthfulQAMC, mc_scores, question_of
from steerkit_metrics.vectors import Norm, SolveTime, Sparsity

__all__ = [
    "CLASSIFIERS",
    "KL",
    "Classifier",
    "Fluency",
    "HeldOutProbe",
    "LLMJudge",
    "LexiconSentiment",
    "Norm",
    "Perplexity",
    "ProbeShift",
    "Readback",
    "SolveTime",
    "Sparsity",
    "TextBlobSentiment",
    "TextClassifier",
    "TfidfLogistic",
    "TruthfulQAMC",
    "Vader",
    "concept_score",
    "fitted_classifier",
    "get_classifier",
    "held_out_accuracy",
    "held_out_hook",
    "held_out_split",
    "kl_divergence",
    "log_softmax",
    "mc_scores",
    "parse_rating",
    "perplexities",
    "perplexity_score",
    "probe_shift_columns",
    "question_of",
    "repetition",
    "target_column",
]
