"""`fluency`: a [0, 1] fluency score per generation from two things that each miss what the other
catches — perplexity under the unsteered model (word salad scores badly) and repetition (a loop
has a low perplexity: the model is sure of every repeated token).

    ppl_score(p)  = clip( log(ppl_high / p) / log(ppl_high / ppl_low), 0, 1 )
    repetition(t) = 1 − distinct n-grams / n-grams of the text's words (0 without any n-gram)
    fluency       = ppl_score · (1 − repetition)

ppl_score is 1 at or below `ppl_low`, 0 at or above `ppl_high`, linear in log-perplexity in
between. Words are lower-cased runs of letters and digits, and each punctuation mark on its own;
n-grams of words with n = 4 is seq-rep-4 of Welleck et al. (2020), "Neural text generation with
unlikelihood training".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from steerkit import Column, EvalContext, Metric, Needs, ValidationError
from steerkit.checks import finite_number, integer
from steerkit_metrics._context import FloatVector, generations_to_score, nan_column, require_source
from steerkit_metrics.model import perplexities

__all__ = ["Fluency", "perplexity_score", "repetition"]

_WORDS = re.compile(r"\w+|[^\w\s]")


def repetition(text: str, n: int = 4) -> float:
    """The share of the text's word n-grams that repeat an earlier one: 1 − distinct / all
    (0.0 for a text of fewer than n words)."""
    words = _WORDS.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def perplexity_score(perplexity: Any, ppl_low: float, ppl_high: float) -> FloatVector:
    """Perplexities as [0, 1] scores: 1 at or below ppl_low, 0 at or above ppl_high, linear in
    log-perplexity between (NaN stays NaN)."""
    p = np.asarray(perplexity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.log(ppl_high / p) / math.log(ppl_high / ppl_low)
    result: FloatVector = np.clip(score, 0.0, 1.0)
    return result


class Fluency(Metric):
    """Columns: `fluency_score`, the fluency (module docstring) of the steered generation of
    prompt i; `repetition`, its share of repeated word n-grams; `fluency_base` and
    `repetition_base`, the same of the unsteered generation. NaN for rows without a generation,
    inputs without a vector and empty generations (a generation of spaces only is scored).

    ppl_low < ppl_high: the perplexities scored 1 and 0; n: the n-gram length of repetition.
    """

    name = "fluency"

    def __init__(self, ppl_low: float = 10.0, ppl_high: float = 1000.0, n: int = 4) -> None:
        self.ppl_low = finite_number("fluency", "ppl_low", ppl_low, positive=True)
        self.ppl_high = finite_number("fluency", "ppl_high", ppl_high, positive=True)
        if self.ppl_high <= self.ppl_low:
            raise ValidationError(
                "fluency",
                "ppl_high",
                f"a perplexity above ppl_low = {self.ppl_low:g} (the one scored 0)",
                repr(ppl_high),
            )
        self.n = integer("fluency", "n", n, minimum=1)

    def __repr__(self) -> str:
        return f"Fluency(ppl_low={self.ppl_low!r}, ppl_high={self.ppl_high!r}, n={self.n!r})"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "fluency_score",
                "fluency score",
                better="higher",
                format=".3f",
                description="fluency of the steered generation in [0, 1]: perplexity under the "
                "unsteered model and repetition",
            ),
            Column(
                "repetition",
                "rep",
                better="lower",
                format=".3f",
                description=f"share of repeated word {self.n}-grams in the steered generation",
            ),
            Column(
                "fluency_base",
                "fluency base",
                format=".3f",
                description="fluency of the unsteered generation",
                table=False,
            ),
            Column(
                "repetition_base",
                "rep base",
                format=".3f",
                description="repetition of the unsteered generation",
                table=False,
            ),
        )

    def requires(self) -> Needs:
        return Needs(model=True, generations=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        source = require_source(
            context, self.name, "log-probabilities of continuations (continuation_logprobs)"
        )
        n = len(context.inputs)
        out = {c.name: nan_column(n) for c in self.columns()}
        scored = generations_to_score(context, self.name, blank=True)
        if not scored:
            return out
        prompts = [context.prompts[i] for _, i, _ in scored]
        ppl = perplexities(source, prompts, [text for _, _, text in scored], self.name)
        fluent = perplexity_score(ppl, self.ppl_low, self.ppl_high)
        for k, (which, i, text) in enumerate(scored):
            rep = repetition(text, self.n)
            suffix = "" if which == "steered" else "_base"
            out[f"repetition{suffix}"][i] = rep
            out["fluency_score" if which == "steered" else "fluency_base"][i] = fluent[k] * (
                1.0 - rep
            )
        return out
