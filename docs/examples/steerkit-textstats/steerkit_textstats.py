"""A steerkit metric in one module: the length of each steered generation in words, and the share
of its words that are distinct (low when steering makes the model repeat itself)."""

from __future__ import annotations

from typing import Any

import numpy as np

import steerkit


class TextStats(steerkit.Metric):
    """Columns `words` and `distinct_words`, for the inputs that have a steered generation
    (NaN for the others: "does not apply", never 0)."""

    name = "textstats"

    def columns(self) -> tuple[steerkit.Column, ...]:
        # what the runner's table and report show, and which way is better
        return (
            steerkit.Column("words", "words", description="words in the steered generation"),
            steerkit.Column(
                "distinct_words",
                "distinct",
                better="higher",
                format=".1%",
                description="share of the generation's words that are distinct",
            ),
        )

    def requires(self) -> steerkit.Needs:
        return steerkit.Needs(generations=True)  # the runner generates only when asked

    def compute(self, context: steerkit.EvalContext) -> dict[str, Any]:
        n = len(context.inputs)
        words = np.full(n, np.nan)
        distinct = np.full(n, np.nan)
        for i, text in enumerate(context.generations):  # generation i belongs to input i
            tokens = text.lower().split()
            words[i] = len(tokens)
            if tokens:
                distinct[i] = len(set(tokens)) / len(tokens)
        return {"words": words, "distinct_words": distinct}


@steerkit.hookimpl
def register_metrics(register: Any) -> None:
    register(TextStats)
